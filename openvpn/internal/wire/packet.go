package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Opcode is the high five bits of a packet's first byte.
type Opcode uint8

// OpenVPN opcodes.
const (
	OpControlSoftResetV1       Opcode = 3
	OpControlV1                Opcode = 4
	OpAckV1                    Opcode = 5
	OpDataV1                   Opcode = 6
	OpControlHardResetClientV2 Opcode = 7
	OpControlHardResetServerV2 Opcode = 8
	OpDataV2                   Opcode = 9
	OpControlHardResetClientV3 Opcode = 10
	OpControlWKCV1             Opcode = 11
)

var opNames = map[Opcode]string{
	OpControlSoftResetV1: "P_CONTROL_SOFT_RESET_V1", OpControlV1: "P_CONTROL_V1", OpAckV1: "P_ACK_V1",
	OpDataV1: "P_DATA_V1", OpControlHardResetClientV2: "P_CONTROL_HARD_RESET_CLIENT_V2",
	OpControlHardResetServerV2: "P_CONTROL_HARD_RESET_SERVER_V2", OpDataV2: "P_DATA_V2",
	OpControlHardResetClientV3: "P_CONTROL_HARD_RESET_CLIENT_V3", OpControlWKCV1: "P_CONTROL_WKC_V1",
}

func (o Opcode) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("Opcode(%d)", uint8(o))
}

// IsControl reports whether o is a control-channel opcode.
func (o Opcode) IsControl() bool {
	switch o {
	case OpControlSoftResetV1, OpControlV1, OpAckV1, OpControlHardResetClientV2,
		OpControlHardResetServerV2, OpControlHardResetClientV3, OpControlWKCV1:
		return true
	}
	return false
}

// IsReset reports whether o opens a key state (a hard or soft reset). A
// reset is always message 0 of its key state.
func (o Opcode) IsReset() bool {
	switch o {
	case OpControlSoftResetV1, OpControlHardResetClientV2, OpControlHardResetServerV2, OpControlHardResetClientV3:
		return true
	}
	return false
}

// IsData reports whether o is a data-channel opcode.
func (o Opcode) IsData() bool { return o == OpDataV1 || o == OpDataV2 }

// SplitOpcode splits a first byte into opcode and key id.
func SplitOpcode(b byte) (Opcode, uint8) { return Opcode(b >> 3), b & 7 }

// JoinOpcode builds a first byte.
func JoinOpcode(o Opcode, keyID uint8) byte { return byte(o)<<3 | keyID&7 }

// MaxAcks is the most ACKs a control packet may carry.
const MaxAcks = 8

// SessionID is an 8-byte session id.
type SessionID [8]byte

// IsZero reports whether s is all zero (never a valid session id).
func (s SessionID) IsZero() bool { return s == SessionID{} }

// NewSessionID returns a random, non-zero session id.
func NewSessionID(rand io.Reader) (SessionID, error) {
	var s SessionID
	for s.IsZero() {
		if _, err := io.ReadFull(rand, s[:]); err != nil {
			return s, fmt.Errorf("wire: session id: %w", err)
		}
	}
	return s, nil
}

// Packet is a control packet without its protection.
type Packet struct {
	Opcode          Opcode
	KeyID           uint8
	SessionID       SessionID // the sender's
	Acks            []uint32
	RemoteSessionID SessionID // the receiver's; on the wire only with ACKs
	MessageID       uint32    // absent on the wire for P_ACK_V1
	Payload         []byte
	WKc             []byte // wrapped client key of opcodes 10 and 11
}

// Errors.
var (
	ErrShort     = errors.New("wire: packet too short")
	ErrMalformed = errors.New("wire: malformed packet")
	ErrAuth      = errors.New("wire: packet authentication failed")
	ErrReplay    = errors.New("wire: replayed packet id")
	ErrKey       = errors.New("wire: bad key")
)

// PeekHeader reads the opcode, key id and sender session id without
// authenticating anything, for demultiplexing.
func PeekHeader(b []byte) (op Opcode, keyID uint8, sid SessionID, err error) {
	if len(b) < 9 {
		return 0, 0, sid, ErrShort
	}
	op, keyID = SplitOpcode(b[0])
	if !op.IsControl() {
		return op, keyID, sid, fmt.Errorf("%w: opcode %v is not a control opcode", ErrMalformed, op)
	}
	copy(sid[:], b[1:9])
	return op, keyID, sid, nil
}

// appendReliable appends the reliable header and payload; the caller has
// checked len(p.Acks) <= MaxAcks.
func appendReliable(b []byte, p *Packet) []byte {
	b = append(b, byte(len(p.Acks)))
	for _, a := range p.Acks {
		b = binary.BigEndian.AppendUint32(b, a)
	}
	if len(p.Acks) > 0 {
		b = append(b, p.RemoteSessionID[:]...)
	}
	if p.Opcode != OpAckV1 {
		b = binary.BigEndian.AppendUint32(b, p.MessageID)
	}
	return append(b, p.Payload...)
}

// parseReliable parses the reliable header and payload into p.
func parseReliable(b []byte, p *Packet) error {
	if len(b) < 1 {
		return ErrShort
	}
	n := int(b[0])
	if n > MaxAcks {
		return fmt.Errorf("%w: %d ACKs", ErrMalformed, n)
	}
	b = b[1:]
	if len(b) < 4*n {
		return ErrShort
	}
	if n > 0 {
		p.Acks = make([]uint32, n)
		for i := range p.Acks {
			p.Acks[i] = binary.BigEndian.Uint32(b[4*i:])
		}
		b = b[4*n:]
		if len(b) < 8 {
			return ErrShort
		}
		copy(p.RemoteSessionID[:], b[:8])
		b = b[8:]
	}
	if p.Opcode != OpAckV1 {
		if len(b) < 4 {
			return ErrShort
		}
		p.MessageID = binary.BigEndian.Uint32(b)
		b = b[4:]
	} else if len(b) > 0 {
		return fmt.Errorf("%w: payload in P_ACK_V1", ErrMalformed)
	}
	p.Payload = b
	return nil
}
