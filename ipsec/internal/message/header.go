package message

import (
	"encoding/binary"
	"fmt"
)

// Header is the fixed 28-byte IKE header (RFC 7296 §3.1).
type Header struct {
	SPIi, SPIr  [8]byte
	NextPayload PayloadType
	// Version is the whole version octet: major version in the high nibble,
	// minor in the low one. ParseHeader refuses a major version other than
	// 2 and keeps the minor version as received (RFC 7296 §2.5: it must be
	// ignored); AppendTo writes Version2 when it is zero.
	Version  uint8
	Exchange ExchangeType
	// Flags is kept as the raw octet, including the bits RFC 7296 reserves,
	// so that a parsed header re-encodes to the same bytes.
	Flags     uint8
	MessageID uint32
	// Length is the size of the whole message including this header and
	// excluding a non-ESP marker.
	Length uint32
}

// IsResponse reports whether the R flag is set.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// IsInitiator reports whether the I flag is set, i.e. the sender is the
// original initiator of the IKE SA.
func (h *Header) IsInitiator() bool { return h.Flags&FlagInitiator != 0 }

// ParseHeader decodes the IKE header at the start of b. b must be exactly
// one message: the header's Length has to equal len(b), so a caller that
// received the datagram on port 4500 strips the non-ESP marker first. A
// datagram with trailing bytes is refused rather than truncated, since the
// checksum and AUTH computations are over the exact message.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, fmt.Errorf("%w: header needs %d bytes, have %d", ErrShort, HeaderLen, len(b))
	}
	copy(h.SPIi[:], b[0:8])
	copy(h.SPIr[:], b[8:16])
	h.NextPayload = PayloadType(b[16])
	h.Version = b[17]
	h.Exchange = ExchangeType(b[18])
	h.Flags = b[19]
	h.MessageID = binary.BigEndian.Uint32(b[20:24])
	h.Length = binary.BigEndian.Uint32(b[24:28])
	if h.Version>>4 != 2 {
		return h, fmt.Errorf("%w: version octet %#02x", ErrVersion, h.Version)
	}
	if h.Length < HeaderLen || uint64(h.Length) != uint64(len(b)) {
		return h, lengthf("header Length %d, datagram %d bytes", h.Length, len(b))
	}
	return h, nil
}

// AppendTo appends the 28-byte encoding of h to b. It writes the fields as
// they are; Marshal fills in NextPayload and Length, and a caller that
// assembles a message itself (an SK payload it encrypts afterwards) sets
// them or patches Length with PutLength.
func (h *Header) AppendTo(b []byte) []byte {
	v := h.Version
	if v == 0 {
		v = Version2
	}
	b = append(b, h.SPIi[:]...)
	b = append(b, h.SPIr[:]...)
	b = append(b, byte(h.NextPayload), v, byte(h.Exchange), h.Flags)
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	b = binary.BigEndian.AppendUint32(b, h.Length)
	return b
}

// PutLength patches the Length field of the encoded message msg in place. It
// does nothing if msg is shorter than a header, rather than panic on a
// caller's bug in a network path.
func PutLength(msg []byte, n uint32) {
	if len(msg) < HeaderLen {
		return
	}
	binary.BigEndian.PutUint32(msg[24:28], n)
}
