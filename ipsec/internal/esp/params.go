package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// Encryption transform ids (IKEv2 transform type 1, IANA).
const (
	EncrAESCBC           = 12 // AES-CBC, RFC 3602; key 16, 24 or 32 bytes
	EncrAESGCM16         = 20 // AES-GCM with a 16-byte ICV, RFC 4106; key + 4-byte salt
	EncrChaCha20Poly1305 = 28 // RFC 7634; 32-byte key + 4-byte salt
)

// Integrity transform ids (IKEv2 transform type 3, IANA).
const (
	IntegNone          = 0  // with AEAD ciphers
	IntegHMACSHA256128 = 12 // RFC 4868; key 32, ICV 16
	IntegHMACSHA384192 = 13 // RFC 4868; key 48, ICV 24
	IntegHMACSHA512256 = 14 // RFC 4868; key 64, ICV 32
)

// Errors. The per-packet ones (everything Open returns) are plain
// sentinels, never wrapped, so that counting them costs nothing; compare
// with == or errors.Is.
var (
	ErrShort          = errors.New("esp: packet too short or not a whole number of cipher blocks")
	ErrSPI            = errors.New("esp: packet for another SPI")
	ErrReplay         = errors.New("esp: replayed or too old sequence number")
	ErrAuthentication = errors.New("esp: integrity check failed")
	ErrPadding        = errors.New("esp: invalid padding")
	// ErrDummy is a dummy packet (next header 59, RFC 4303 §2.6), which
	// the receiver drops silently. It is authentic and used up its
	// sequence number.
	ErrDummy       = errors.New("esp: dummy packet")
	ErrNextHeader  = errors.New("esp: next header is neither IPv4 nor IPv6 or does not match the inner packet")
	ErrInnerLength = errors.New("esp: inner packet shorter than its IP header says")

	ErrSequenceExhausted = errors.New("esp: sequence numbers exhausted; rekey the SA")
	ErrBuffer            = errors.New("esp: not enough headroom or tailroom in the buffer")
	ErrNotIP             = errors.New("esp: inner packet is neither IPv4 nor IPv6")

	ErrParams   = errors.New("esp: invalid SA parameters")
	ErrSPIInUse = errors.New("esp: SPI already in use")
	ErrNoSPI    = errors.New("esp: no free SPI found")
)

// Next header values (IANA protocol numbers) of tunnel-mode ESP.
const (
	NextHeaderIPv4  = 4
	NextHeaderIPv6  = 41
	NextHeaderDummy = 59
)

// Params are one SA's parameters in one direction, as negotiated by IKE.
type Params struct {
	// SPI is the SPI on the wire for this direction, chosen by the receiver
	// of the packets. Values below 256 are reserved (RFC 4303 §2.1) and
	// refused.
	SPI  uint32
	Encr uint16
	// EncrKey is the encryption key; for AES-GCM and ChaCha20-Poly1305 the
	// 4-byte salt is its last 4 bytes, as KEYMAT delivers it (RFC 4106 §8.1,
	// RFC 7634). The constructors copy what they need.
	EncrKey  []byte
	Integ    uint16
	IntegKey []byte
	// ESN enables 64-bit extended sequence numbers (RFC 4303 §2.2.1). Only
	// the low 32 bits are sent; the high half is authenticated (AEAD: AAD
	// SPI|SeqHi|SeqLo, RFC 4106 §5; HMAC: SeqHi appended to the ICV input,
	// RFC 4303 §3.3.2.1).
	ESN bool
}

const (
	saltLen    = 4
	aeadICVLen = 16
	aeadIVLen  = 8
	// aeadAlign: GCM and ChaCha20 are stream-like, ESP still aligns the
	// trailer so that the ICV starts on a 4-byte boundary (RFC 4303 §2.4).
	aeadAlign = 4
	// aeadScratch is room behind the ICV that Seal uses for the nonce and,
	// with ESN, the AAD. They cannot live on Seal's stack, because passing
	// them to the AEAD interface would move them to the heap, nor in the
	// Outbound, because Seal runs concurrently.
	aeadScratch = 12 + 12
	// replayWidth is W of RFC 4303 Appendix A: the window covers
	// highest-W+1 .. highest, exactly what replay.Window accepts.
	replayWidth = 1984
)

// suite is the parsed, validated algorithm choice with its keyed primitives.
type suite struct {
	aead cipher.AEAD // nil for AES-CBC
	salt [saltLen]byte

	block    cipher.Block     // AES-CBC
	hashNew  func() hash.Hash // HMAC
	integKey []byte           // copy of Params.IntegKey
	icvLen   int
	ivLen    int
	align    int
}

func newSuite(p Params) (*suite, error) {
	if p.SPI < 256 {
		return nil, fmt.Errorf("%w: SPI %d is reserved", ErrParams, p.SPI)
	}
	s := new(suite)
	switch p.Encr {
	case EncrAESGCM16, EncrChaCha20Poly1305:
		if p.Integ != IntegNone {
			return nil, fmt.Errorf("%w: AEAD transform %d with integrity transform %d", ErrParams, p.Encr, p.Integ)
		}
		n := len(p.EncrKey) - saltLen
		var err error
		if p.Encr == EncrChaCha20Poly1305 {
			if n != chacha20poly1305.KeySize {
				return nil, fmt.Errorf("%w: ChaCha20-Poly1305 key material is %d bytes, want 36", ErrParams, len(p.EncrKey))
			}
			s.aead, err = chacha20poly1305.New(p.EncrKey[:n])
		} else {
			if n != 16 && n != 24 && n != 32 {
				return nil, fmt.Errorf("%w: AES-GCM key material is %d bytes, want 20, 28 or 36", ErrParams, len(p.EncrKey))
			}
			var b cipher.Block
			if b, err = aes.NewCipher(p.EncrKey[:n]); err == nil {
				s.aead, err = cipher.NewGCM(b)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrParams, err)
		}
		copy(s.salt[:], p.EncrKey[n:])
		s.icvLen, s.ivLen, s.align = aeadICVLen, aeadIVLen, aeadAlign
	case EncrAESCBC:
		switch len(p.EncrKey) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("%w: AES-CBC key is %d bytes, want 16, 24 or 32", ErrParams, len(p.EncrKey))
		}
		var err error
		if s.block, err = aes.NewCipher(p.EncrKey); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrParams, err)
		}
		var keyLen int
		switch p.Integ {
		case IntegHMACSHA256128:
			s.hashNew, keyLen, s.icvLen = sha256.New, 32, 16
		case IntegHMACSHA384192:
			s.hashNew, keyLen, s.icvLen = sha512.New384, 48, 24
		case IntegHMACSHA512256:
			s.hashNew, keyLen, s.icvLen = sha512.New, 64, 32
		default:
			return nil, fmt.Errorf("%w: AES-CBC needs an HMAC-SHA2 integrity transform, got %d", ErrParams, p.Integ)
		}
		if len(p.IntegKey) != keyLen {
			return nil, fmt.Errorf("%w: integrity key is %d bytes, want %d", ErrParams, len(p.IntegKey), keyLen)
		}
		s.integKey = append([]byte(nil), p.IntegKey...)
		s.ivLen, s.align = aes.BlockSize, aes.BlockSize
	default:
		return nil, fmt.Errorf("%w: unsupported encryption transform %d", ErrParams, p.Encr)
	}
	return s, nil
}

func (s *suite) newMAC() hash.Hash { return hmac.New(s.hashNew, s.integKey) }

// ivBlockMode is implemented by the standard library's CBC modes; keeping
// one and resetting its IV avoids an allocation per packet.
type ivBlockMode interface {
	cipher.BlockMode
	SetIV([]byte)
}
