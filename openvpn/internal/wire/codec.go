package wire

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/remotegate/remotegate/internal/replay"
)

// Mode is a control-channel protection.
type Mode uint8

// Protection modes.
const (
	ModeNone Mode = iota
	ModeTLSAuth
	ModeTLSCrypt
	ModeTLSCryptV2
)

// Role says which side of the key halves a codec uses.
type Role uint8

// Roles.
const (
	RoleClient Role = iota
	RoleServer
)

// Protection configures control-channel protection.
type Protection struct {
	Mode Mode
	// Key is the tls-auth or tls-crypt key.
	Key *StaticKey
	// KeyDirection is for tls-auth: -1 none (keys[0] both ways), 0 or 1.
	KeyDirection int
	// Digest is the tls-auth HMAC; 0 means SHA-1.
	Digest crypto.Hash
	// ServerKey (servers) and ClientKey (clients) are for tls-crypt-v2.
	ServerKey *V2ServerKey
	ClientKey *V2ClientKey
}

// Validate checks that p has what role needs.
func (p *Protection) Validate(role Role) error {
	switch p.Mode {
	case ModeNone:
	case ModeTLSAuth:
		if p.Key == nil {
			return errors.New("wire: tls-auth needs a key")
		}
		if p.KeyDirection < -1 || p.KeyDirection > 1 {
			return fmt.Errorf("wire: tls-auth key direction %d, want -1, 0 or 1", p.KeyDirection)
		}
		if digestFunc(p.Digest) == nil {
			return fmt.Errorf("wire: unsupported tls-auth digest %v", p.Digest)
		}
	case ModeTLSCrypt:
		if p.Key == nil {
			return errors.New("wire: tls-crypt needs a key")
		}
	case ModeTLSCryptV2:
		if role == RoleServer && p.ServerKey == nil {
			return errors.New("wire: tls-crypt-v2 server needs the server key")
		}
		if role == RoleClient && p.ClientKey == nil {
			return errors.New("wire: tls-crypt-v2 client needs a client key")
		}
		if role == RoleClient && (len(p.ClientKey.WKc) < wkcMin || len(p.ClientKey.WKc) > wkcMax) {
			return fmt.Errorf("wire: tls-crypt-v2 client key has a WKc of %d bytes", len(p.ClientKey.WKc))
		}
	default:
		return fmt.Errorf("wire: unknown protection mode %d", p.Mode)
	}
	return nil
}

func digestFunc(h crypto.Hash) func() hash.Hash {
	switch h {
	case 0, crypto.SHA1:
		return sha1.New
	case crypto.SHA256:
		return sha256.New
	case crypto.SHA384:
		return sha512.New384
	case crypto.SHA512:
		return sha512.New
	}
	return nil
}

// Codec is the per-session protection state: keys, the outgoing replay
// packet id and timestamp, and the incoming replay window.
type Codec struct {
	mode Mode
	role Role
	prot *Protection

	// tls-auth
	sendMAC, recvMAC hash.Hash
	// tls-crypt
	sendKe, recvKe cipher.Block
	sendKa, recvKa hash.Hash
	haveKeys       bool
	metadata       []byte
	wkc            []byte // client: appended to opcodes 10 and 11

	pid    uint32
	ts     uint32
	window replay.Window

	lastPID, lastTS uint32 // replay id of the last packet Decode accepted
}

// NewCodec makes a codec; now sets the replay timestamp it sends.
func NewCodec(p *Protection, role Role, now time.Time) (*Codec, error) {
	if err := p.Validate(role); err != nil {
		return nil, err
	}
	c := &Codec{mode: p.Mode, role: role, prot: p, ts: uint32(now.Unix())}
	switch p.Mode {
	case ModeTLSAuth:
		send, recv := 0, 0
		switch {
		case p.KeyDirection == 0:
			send, recv = 0, 1
		case p.KeyDirection == 1:
			send, recv = 1, 0
		}
		h := digestFunc(p.Digest)
		size := h().Size()
		c.sendMAC = hmac.New(h, p.Key.hmacKey(send)[:size])
		c.recvMAC = hmac.New(h, p.Key.hmacKey(recv)[:size])
	case ModeTLSCrypt:
		if err := c.setCryptKey(p.Key); err != nil {
			return nil, err
		}
	case ModeTLSCryptV2:
		if role == RoleClient {
			if err := c.setCryptKey(&p.ClientKey.Key); err != nil {
				return nil, err
			}
			c.wkc = p.ClientKey.WKc
		}
	}
	return c, nil
}

// setCryptKey installs a tls-crypt key: the server sends with keys[0], the
// client with keys[1].
func (c *Codec) setCryptKey(k *StaticKey) error {
	send, recv := 1, 0
	if c.role == RoleServer {
		send, recv = 0, 1
	}
	var err error
	if c.sendKe, err = aes.NewCipher(k.cipherKey(send)[:32]); err != nil {
		return err
	}
	if c.recvKe, err = aes.NewCipher(k.cipherKey(recv)[:32]); err != nil {
		return err
	}
	c.sendKa = hmac.New(sha256.New, k.hmacKey(send)[:32])
	c.recvKa = hmac.New(sha256.New, k.hmacKey(recv)[:32])
	c.haveKeys = true
	return nil
}

// LastReplayID is the replay packet id and timestamp of the last packet
// Decode accepted (zeros in ModeNone or before the first).
func (c *Codec) LastReplayID() (pid, ts uint32) { return c.lastPID, c.lastTS }

// ClientMetadata is the metadata of an unwrapped tls-crypt-v2 client key.
func (c *Codec) ClientMetadata() []byte { return c.metadata }

// Overhead is the number of bytes the protection adds to an unprotected
// control packet: 0 for none, H+8 for tls-auth (HMAC and replay id), 40 for
// tls-crypt and tls-crypt-v2 (replay id and tag; CTR adds no padding). It
// does not count the 9-byte opcode and session id, which every mode has, nor
// the WKc a tls-crypt-v2 client appends to opcodes 10 and 11 (len(WKc)).
// Unprotected size = 9 + 1 + 4*len(Acks) (+8 with acks) + 4 (not for
// P_ACK_V1) + len(Payload).
func (c *Codec) Overhead() int {
	switch c.mode {
	case ModeTLSAuth:
		return c.sendMAC.Size() + 8
	case ModeTLSCrypt, ModeTLSCryptV2:
		return 8 + 32
	}
	return 0
}

// EarlyNegotiationPacketID is the first replay packet id of a 2.6
// tls-crypt-v2 client that supports early negotiation (notes 4.6): the top
// byte 0x0f tells the server it may ask for the WKc again with a TLV in its
// reset. A client that wants this calls SetTime(EarlyNegotiationPacketID, ts)
// before its first Encode; a server sees it in LastReplayID.
const EarlyNegotiationPacketID = 0x0f000001

// SetTime fixes the replay packet id and timestamp of the next Encode: the
// next packet carries id pid and timestamp ts, later ones pid+1, ... Tests use
// it to reproduce captured packets, clients to signal early negotiation.
func (c *Codec) SetTime(pid, ts uint32) {
	c.pid = pid - 1
	c.ts = ts
}

// Encode appends the protected wire packet to dst.
func (c *Codec) Encode(dst []byte, p *Packet) ([]byte, error) {
	orig := dst
	if !p.Opcode.IsControl() || p.KeyID > 7 {
		return orig, fmt.Errorf("%w: cannot encode opcode %v key id %d", ErrMalformed, p.Opcode, p.KeyID)
	}
	if len(p.Acks) > MaxAcks {
		return orig, fmt.Errorf("%w: %d ACKs, at most %d", ErrMalformed, len(p.Acks), MaxAcks)
	}
	if p.Opcode == OpAckV1 && (len(p.Payload) > 0 || p.MessageID != 0) {
		return orig, fmt.Errorf("%w: P_ACK_V1 carries no message id or payload", ErrMalformed)
	}
	if c.mode == ModeTLSCrypt || c.mode == ModeTLSCryptV2 {
		if !c.haveKeys {
			return orig, fmt.Errorf("%w: no tls-crypt-v2 client key yet", ErrKey)
		}
	}
	start := len(dst)
	dst = append(dst, JoinOpcode(p.Opcode, p.KeyID))
	dst = append(dst, p.SessionID[:]...)
	if c.mode == ModeNone {
		return appendReliable(dst, p), nil
	}
	if c.pid == ^uint32(0) {
		// OpenVPN never wraps the control replay id; a session that
		// gets here must renegotiate.
		return orig, errors.New("wire: replay packet ids exhausted")
	}
	c.pid++
	var replayID [8]byte
	binary.BigEndian.PutUint32(replayID[:4], c.pid)
	binary.BigEndian.PutUint32(replayID[4:], c.ts)
	var sum [64]byte
	switch c.mode {
	case ModeTLSAuth:
		// op|sid ‖ HMAC ‖ replay id ‖ body; the HMAC covers
		// replay id ‖ op|sid ‖ body, so reserve its room first.
		h := c.sendMAC.Size()
		macAt := len(dst)
		dst = append(dst, sum[:h]...)
		dst = append(dst, replayID[:]...)
		bodyAt := len(dst)
		dst = appendReliable(dst, p)
		c.sendMAC.Reset()
		c.sendMAC.Write(replayID[:])
		c.sendMAC.Write(dst[start : start+9])
		c.sendMAC.Write(dst[bodyAt:])
		copy(dst[macAt:], c.sendMAC.Sum(sum[:0]))
		return dst, nil
	default: // tls-crypt, tls-crypt-v2: header17 ‖ tag ‖ AES-CTR(body)
		dst = append(dst, replayID[:]...)
		tagAt := len(dst)
		dst = append(dst, sum[:32]...)
		bodyAt := len(dst)
		dst = appendReliable(dst, p)
		c.sendKa.Reset()
		c.sendKa.Write(dst[start : start+17])
		c.sendKa.Write(dst[bodyAt:])
		tag := dst[tagAt:bodyAt]
		copy(tag, c.sendKa.Sum(sum[:0]))
		cipher.NewCTR(c.sendKe, tag[:16]).XORKeyStream(dst[bodyAt:], dst[bodyAt:])
		if c.role == RoleClient && c.mode == ModeTLSCryptV2 &&
			(p.Opcode == OpControlHardResetClientV3 || p.Opcode == OpControlWKCV1) {
			dst = append(dst, c.wkc...)
		}
		return dst, nil
	}
}

// Decode removes the protection, checks the replay id and parses the packet.
// Payload and WKc alias b. tls-crypt decrypts b in place; when Decode fails
// with ErrAuth (or any error before decryption) b is left as it was, so a
// server may try the same bytes with another codec.
func (c *Codec) Decode(b []byte) (Packet, error) {
	had := c.haveKeys
	p, err := c.decode(b)
	if err != nil && !had && c.haveKeys {
		// A valid WKc in front of a packet that fails must not leave the
		// client key adopted: anyone who saw a WKc could replay it.
		c.haveKeys, c.metadata = false, nil
	}
	return p, err
}

func (c *Codec) decode(b []byte) (Packet, error) {
	var p Packet
	if len(b) < 9 {
		return p, ErrShort
	}
	p.Opcode, p.KeyID = SplitOpcode(b[0])
	if !p.Opcode.IsControl() {
		return p, fmt.Errorf("%w: opcode %v is not a control opcode", ErrMalformed, p.Opcode)
	}
	copy(p.SessionID[:], b[1:9])
	var body []byte
	var pid, ts uint32
	switch c.mode {
	case ModeNone:
		body = b[9:]
	case ModeTLSAuth:
		h := c.recvMAC.Size()
		if len(b) < 9+h+8 {
			return p, ErrShort
		}
		c.recvMAC.Reset()
		c.recvMAC.Write(b[9+h : 9+h+8])
		c.recvMAC.Write(b[:9])
		c.recvMAC.Write(b[9+h+8:])
		var sum [64]byte
		if !hmac.Equal(c.recvMAC.Sum(sum[:0]), b[9:9+h]) {
			return p, ErrAuth
		}
		pid = binary.BigEndian.Uint32(b[9+h:])
		ts = binary.BigEndian.Uint32(b[9+h+4:])
		body = b[9+h+8:]
	default:
		if c.mode == ModeTLSCryptV2 && c.role == RoleServer &&
			(p.Opcode == OpControlHardResetClientV3 || p.Opcode == OpControlWKCV1) {
			if len(b) < 2 {
				return p, ErrShort
			}
			l := int(binary.BigEndian.Uint16(b[len(b)-2:]))
			if l < wkcMin || l > len(b)-9-40 {
				return p, fmt.Errorf("%w: WKc length %d", ErrMalformed, l)
			}
			p.WKc = b[len(b)-l:]
			b = b[:len(b)-l]
			if !c.haveKeys {
				kc, md, err := c.prot.ServerKey.UnwrapClientKey(p.WKc)
				if err != nil {
					return p, err
				}
				if err := c.setCryptKey(kc); err != nil {
					return p, err
				}
				c.metadata = md
			}
		}
		if !c.haveKeys {
			return p, fmt.Errorf("%w: tls-crypt-v2 packet before the client key", ErrAuth)
		}
		if len(b) < 9+8+32 {
			return p, ErrShort
		}
		tag := b[17:49]
		body = b[49:]
		ctr := cipher.NewCTR(c.recvKe, tag[:16])
		ctr.XORKeyStream(body, body)
		c.recvKa.Reset()
		c.recvKa.Write(b[:17])
		c.recvKa.Write(body)
		var sum [32]byte
		if !hmac.Equal(c.recvKa.Sum(sum[:0]), tag) {
			// Encrypt back, so that a caller trying another codec (a
			// server probing an unknown peer) still has the wire bytes.
			cipher.NewCTR(c.recvKe, tag[:16]).XORKeyStream(body, body)
			return p, ErrAuth
		}
		pid = binary.BigEndian.Uint32(b[9:])
		ts = binary.BigEndian.Uint32(b[13:])
	}
	if err := parseReliable(body, &p); err != nil {
		return p, err
	}
	if c.mode != ModeNone {
		// The timestamp is the sender's start time and stays fixed while
		// its ids last. As in OpenVPN, an older one is a replay and a newer
		// one starts a new id sequence.
		if c.lastPID != 0 && ts != c.lastTS {
			if ts < c.lastTS {
				return p, fmt.Errorf("%w: timestamp went back", ErrReplay)
			}
			c.window.Reset()
		}
		if !c.window.Check(uint64(pid)) {
			return p, ErrReplay
		}
		c.lastPID, c.lastTS = pid, ts
	}
	return p, nil
}
