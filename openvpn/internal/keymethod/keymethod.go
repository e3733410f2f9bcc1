package keymethod

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors.
var (
	ErrShort     = errors.New("keymethod: message truncated")
	ErrMalformed = errors.New("keymethod: malformed message")
	ErrTooLong   = errors.New("keymethod: field too long")
)

// maxString bounds one string field; Debian's openvpn (PKCS#11 builds)
// accepts usernames and passwords up to 4096 bytes.
const maxString = 4096

// Message is the key-method-2 message, one TLS record each way.
type Message struct {
	PreMaster []byte // 48 bytes, client only
	Random1   [32]byte
	Random2   [32]byte
	Options   string // OCC options string without the NUL
	Username  string
	Password  string
	HasAuth   bool // username/password fields were present and non-empty
	PeerInfo  string
}

// String omits the password.
func (m *Message) String() string {
	return fmt.Sprintf("keymethod.Message{options %q, user %q, auth %v, peer-info %d bytes}", m.Options, m.Username, m.HasAuth, len(m.PeerInfo))
}

// ParseClient parses the client's message (with the 48-byte pre-master).
// Trailing bytes are ignored, as OpenVPN does.
func ParseClient(b []byte) (*Message, error) { return parse(b, true) }

// ParseServer parses the server's message.
func ParseServer(b []byte) (*Message, error) { return parse(b, false) }

func parse(b []byte, client bool) (*Message, error) {
	r := reader{b: b}
	if v := r.u32(); r.err == nil && v != 0 {
		return nil, fmt.Errorf("%w: leading word %#x, want 0", ErrMalformed, v)
	}
	if km := r.u8(); r.err == nil && km&0x0F != 2 {
		return nil, fmt.Errorf("%w: key method %d, only 2 is supported", ErrMalformed, km&0x0F)
	}
	m := &Message{}
	if client {
		m.PreMaster = append([]byte(nil), r.bytes(48)...)
	}
	copy(m.Random1[:], r.bytes(32))
	copy(m.Random2[:], r.bytes(32))
	m.Options = r.str()
	if r.err != nil {
		return nil, r.err
	}
	// Username, password and peer info are optional at the end.
	if r.left() >= 2 {
		m.Username = r.str()
		m.Password = r.str()
		m.HasAuth = m.Username != "" || m.Password != ""
	}
	if r.err == nil && r.left() >= 2 {
		m.PeerInfo = r.str()
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// MarshalClient encodes the client's message.
func (m *Message) MarshalClient() ([]byte, error) {
	if len(m.PreMaster) != 48 {
		return nil, fmt.Errorf("%w: pre-master is %d bytes, want 48", ErrMalformed, len(m.PreMaster))
	}
	return m.marshal(true)
}

// MarshalServer encodes the server's message: no pre-master, and empty
// username, password and peer info.
func (m *Message) MarshalServer() ([]byte, error) { return m.marshal(false) }

func (m *Message) marshal(client bool) ([]byte, error) {
	b := make([]byte, 0, 256+len(m.Options)+len(m.PeerInfo))
	b = append(b, 0, 0, 0, 0, 2)
	if client {
		b = append(b, m.PreMaster...)
	}
	b = append(b, m.Random1[:]...)
	b = append(b, m.Random2[:]...)
	var err error
	if b, err = appendStr(b, m.Options); err != nil {
		return nil, err
	}
	user, pass, info := "", "", ""
	if client {
		if m.HasAuth {
			user, pass = m.Username, m.Password
		}
		info = m.PeerInfo
	}
	for _, s := range []string{user, pass, info} {
		if b, err = appendStr(b, s); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendStr writes OpenVPN's string: u16 length including a NUL, the bytes,
// the NUL; an empty string is just 00 00.
func appendStr(b []byte, s string) ([]byte, error) {
	if len(s) == 0 {
		return append(b, 0, 0), nil
	}
	if len(s)+1 > maxString {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLong, len(s))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)+1))
	b = append(b, s...)
	return append(b, 0), nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) left() int { return len(r.b) }

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = ErrShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() byte {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u32() uint32 {
	v := r.bytes(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *reader) str() string {
	v := r.bytes(2)
	if v == nil {
		return ""
	}
	n := int(binary.BigEndian.Uint16(v))
	if n == 0 {
		return ""
	}
	if n > maxString {
		r.err = fmt.Errorf("%w: string of %d bytes", ErrTooLong, n)
		return ""
	}
	s := r.bytes(n)
	if s == nil {
		return ""
	}
	if s[n-1] != 0 {
		r.err = fmt.Errorf("%w: string not NUL-terminated", ErrMalformed)
		return ""
	}
	return string(s[:n-1])
}
