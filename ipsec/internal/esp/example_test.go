package esp_test

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/remotegate/remotegate/ipsec/internal/esp"
	"github.com/remotegate/remotegate/tunnel"
)

// Seal one IPv4 packet with AES-GCM-256 and open it on the other side, the
// way the send and receive loops do it.
func Example() {
	keymat := bytes.Repeat([]byte{0x42}, 36) // 32-byte key | 4-byte salt, from KEYMAT
	p := esp.Params{SPI: 0xc0ffee01, Encr: esp.EncrAESGCM16, EncrKey: keymat}
	out, err := esp.NewOutbound(p)
	if err != nil {
		panic(err)
	}
	in, err := esp.NewInbound(p, true)
	if err != nil {
		panic(err)
	}

	// An 84-byte IPv4 packet (an ICMP echo), read from the TUN device into a
	// buffer with the SDK's headroom and tailroom.
	buf := make([]byte, tunnel.BufferSize)
	inner := buf[tunnel.Headroom : tunnel.Headroom+84]
	inner[0] = 0x45
	binary.BigEndian.PutUint16(inner[2:], 84)
	inner[9] = 1
	want := bytes.Clone(inner)

	pkt, err := out.Seal(buf, tunnel.Headroom, len(inner))
	if err != nil {
		panic(err)
	}
	fmt.Printf("UDP payload: %d bytes, SPI %#x, seq %d, %v\n", len(pkt), esp.SPIOf(pkt), binary.BigEndian.Uint32(pkt[4:]), esp.Classify(pkt))

	// Receive side: demultiplex, look the SA up by SPI, open.
	var sas esp.Table[*esp.Inbound]
	if err := sas.Add(in.SPI(), in); err != nil {
		panic(err)
	}
	sa, ok := sas.Lookup(esp.SPIOf(pkt))
	if !ok {
		panic("unknown SPI")
	}
	got, nextHeader, err := sa.Open(pkt)
	fmt.Println(len(got), nextHeader, bytes.Equal(got, want), err)
	_, _, err = sa.Open(pkt)
	fmt.Println(err)
	// Output:
	// UDP payload: 120 bytes, SPI 0xc0ffee01, seq 1, esp
	// 84 4 true <nil>
	// esp: replayed or too old sequence number
}
