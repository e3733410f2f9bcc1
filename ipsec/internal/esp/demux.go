package esp

import (
	"encoding/binary"
	"fmt"
)

// Kind is what a datagram received on UDP port 4500 carries (RFC 3948 §2).
type Kind uint8

// The kinds of Classify. The zero Kind is KindInvalid.
const (
	KindInvalid   Kind = iota // too short or malformed: drop
	KindESP                   // ESP packet; the first 4 bytes are the SPI
	KindIKE                   // non-ESP marker; the IKE message follows it
	KindKeepalive             // NAT-keepalive: drop silently
)

// String names the kind for logs and metrics labels.
func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindESP:
		return "esp"
	case KindIKE:
		return "ike"
	case KindKeepalive:
		return "keepalive"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// MarkerLen is the length of the non-ESP marker in front of IKE messages on
// port 4500.
const MarkerLen = 4

// ikeHeaderLen is the fixed IKE header; a marker followed by less cannot be
// an IKE message.
const ikeHeaderLen = 28

// minESPLen is SPI and sequence number, the least of an ESP header (RFC 3948
// §2.1); shorter datagrams that are not a keepalive carry nothing.
const minESPLen = 8

// Keepalive is the NAT-keepalive datagram payload (RFC 3948 §2.3).
var Keepalive = [1]byte{0xFF}

// Classify tells what a datagram received on UDP port 4500 carries:
// exactly one byte 0xFF is a keepalive; four zero bytes (the non-ESP marker)
// followed by at least an IKE header are IKE, the message being
// b[MarkerLen:]; at least 8 bytes with a non-zero first word are ESP;
// everything else is invalid. Classify does not allocate.
func Classify(b []byte) Kind {
	switch {
	case len(b) == 1 && b[0] == Keepalive[0]:
		return KindKeepalive
	case len(b) < minESPLen:
		return KindInvalid
	case binary.BigEndian.Uint32(b) != 0:
		return KindESP
	case len(b) >= MarkerLen+ikeHeaderLen:
		return KindIKE
	}
	return KindInvalid
}

// SPIOf is the SPI of an ESP packet, its first 4 bytes; the caller has
// checked that Classify(b) == KindESP. It returns 0, which no SA uses, for
// shorter input.
func SPIOf(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}
