package ikecrypto_test

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
)

// Example derives the keys of an IKE SA from a Curve25519 exchange and
// protects an IKE_AUTH message with them, as the initiator seals and the
// responder opens it.
func Example() {
	suite := ikecrypto.Suite{
		Encr: ikecrypto.EncrAESGCM16, EncrKeyBits: 256,
		PRF: ikecrypto.PRFHMACSHA256, DH: ikecrypto.DHCurve25519,
	}
	// Both sides' KE payloads; normally one of them comes off the wire.
	initiator, _ := ikecrypto.NewDH(suite.DH, nil)
	responder, _ := ikecrypto.NewDH(suite.DH, nil)
	gir, err := responder.SharedSecret(initiator.Public())
	if err != nil {
		fmt.Println(err)
		return
	}
	ni, nr := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	spii, spir := [8]byte{1}, [8]byte{2}
	keys, err := ikecrypto.DeriveIKEKeys(suite, ni, nr, gir, spii, spir)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("SK_d", len(keys.D), "SK_ai", len(keys.Ai), "SK_ei", len(keys.Ei), "SK_pi", len(keys.Pi))

	// Initiator → responder traffic uses SK_ei (and SK_ai for CBC).
	out, _ := ikecrypto.NewSKCipher(suite, keys.Ei, keys.Ai, nil)
	in, _ := ikecrypto.NewSKCipher(suite, keys.Ei, keys.Ai, nil)

	inner := []byte("IDi | AUTH | SA | TSi | TSr") // stands in for encoded payloads
	body := out.BodyLen(len(inner))
	// IKE header (28 bytes) and SK payload header (4), lengths final.
	msg := append(spii[:], spir[:]...)
	msg = append(msg, 46, 0x20, 35, 0x08) // next payload SK, IKEv2, IKE_AUTH, initiator
	msg = binary.BigEndian.AppendUint32(msg, 1)
	msg = binary.BigEndian.AppendUint32(msg, uint32(28+4+body))
	msg = append(msg, 35, 0) // first inner payload: IDi
	msg = binary.BigEndian.AppendUint16(msg, uint16(4+body))
	prefixLen := len(msg)

	msg, err = out.Seal(msg, inner)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("message", len(msg), "bytes")

	plain, err := in.Open(msg[:prefixLen], msg[prefixLen:])
	fmt.Printf("%s %v\n", plain, err)

	msg[20] ^= 1 // tamper with the header
	_, err = in.Open(msg[:prefixLen], msg[prefixLen:])
	fmt.Println(err)
	// Output:
	// SK_d 32 SK_ai 0 SK_ei 36 SK_pi 32
	// message 84 bytes
	// IDi | AUTH | SA | TSi | TSr <nil>
	// ikecrypto: authentication failed: SK payload ICV
}
