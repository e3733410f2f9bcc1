package message_test

import (
	"fmt"

	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// Build an INFORMATIONAL request that deletes a child SA, as it would look
// before encryption (in a real exchange the payloads go inside an SK
// payload: see AppendPayloads), and parse it back.
func Example() {
	h := message.Header{
		SPIi:      [8]byte{0xce, 0x9c, 0x57, 0xa8, 0xa5, 0x44, 0xd7, 0x97},
		SPIr:      [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
		Version:   message.Version2,
		Exchange:  message.Informational,
		MessageID: 2,
	}
	msg, err := message.Marshal(h, []message.Payload{
		&message.Delete{Protocol: message.ProtoESP, SPISize: 4, SPIs: [][]byte{{0x8a, 0xbf, 0x06, 0x28}}},
		&message.Notify{NotifyType: message.NotifyInitialContact},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d bytes: % x\n", len(msg), msg[16:28])

	got, ps, err := message.Parse(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.Exchange, "MID", got.MessageID, "response:", got.IsResponse())
	if d, ok := message.Find[*message.Delete](ps); ok {
		fmt.Printf("delete %v SPI %x\n", d.Protocol, d.SPIs[0])
	}
	for _, n := range message.Notifies(ps) {
		fmt.Println("notify", n.NotifyType, "error:", n.NotifyType.IsError())
	}
	// Output:
	// 48 bytes: 2a 20 25 00 00 00 00 02 00 00 00 30
	// INFORMATIONAL MID 2 response: false
	// delete ESP SPI 8abf0628
	// notify INITIAL_CONTACT error: false
}
