package ikecrypto

import (
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
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	saltLen   = 4  // RFC 5282 §7.1, RFC 7634 §4
	aeadIVLen = 8  // RFC 5282 §3.1, RFC 7634 §2
	aeadICV   = 16 // AES-GCM-16, Poly1305
	cbcIVLen  = aes.BlockSize
)

// zeroPad is the CBC padding source (at most one block less one byte).
var zeroPad [aes.BlockSize]byte

var errIVExhausted = errors.New("ikecrypto: SK IV counter exhausted; rekey the IKE SA")

// SKCipher protects the Encrypted payload (SK, RFC 7296 §3.14; SKF, RFC
// 7383 §2.5) in one direction of an IKE SA. Its methods are safe for
// concurrent use.
type SKCipher struct {
	// AEAD (AES-GCM-16, ChaCha20-Poly1305).
	aead cipher.AEAD
	salt [saltLen]byte
	// The 8-byte IV is ivBase + a counter: unique per key as RFC 5282
	// §3.1 requires, without reading random bytes per message. The random
	// base keeps IVs apart should a key ever (wrongly) end up in two
	// SKCiphers; two counters from zero would collide at once, and a
	// repeated GCM nonce gives away the authentication key.
	ivBase uint64
	ivCtr  atomic.Uint64

	// AES-CBC + HMAC.
	block  cipher.Block
	icvLen int

	mu   sync.Mutex // guards rand and mac
	rand io.Reader
	mac  hash.Hash
}

// NewSKCipher makes the SK protection of one direction: SK_ei/SK_ai for
// what the original initiator sends, SK_er/SK_ar for the other direction.
// encrKey is the KEYMAT slice including the salt for AEAD ciphers;
// integKey is empty for them. rand (crypto/rand if nil) supplies CBC IVs
// and the base of AEAD IVs.
func NewSKCipher(s Suite, encrKey, integKey []byte, rand io.Reader) (*SKCipher, error) {
	// Only the protection transforms matter here; the PRF and group of the
	// suite are checked where they are used.
	if err := validateProtection(s.Encr, s.EncrKeyBits, s.Integ); err != nil {
		return nil, err
	}
	if rand == nil {
		rand = defaultRand
	}
	want, _ := EncrKeyLen(s.Encr, s.EncrKeyBits)
	if len(encrKey) != want {
		return nil, fmt.Errorf("%w: encryption key of %d bytes, want %d", ErrInvalidKeyLength, len(encrKey), want)
	}
	wantI, _ := IntegKeyLen(s.Integ)
	if len(integKey) != wantI {
		return nil, fmt.Errorf("%w: integrity key of %d bytes, want %d", ErrInvalidKeyLength, len(integKey), wantI)
	}
	c := &SKCipher{rand: rand}
	var err error
	switch s.Encr {
	case EncrAESGCM16, EncrChaCha20Poly1305:
		key := encrKey[:len(encrKey)-saltLen]
		copy(c.salt[:], encrKey[len(key):])
		if s.Encr == EncrAESGCM16 {
			var b cipher.Block
			if b, err = aes.NewCipher(key); err == nil {
				c.aead, err = cipher.NewGCM(b)
			}
		} else {
			c.aead, err = chacha20poly1305.New(key)
		}
		if err != nil {
			return nil, fmt.Errorf("ikecrypto: %w", err)
		}
		var base [8]byte
		if _, err := io.ReadFull(rand, base[:]); err != nil {
			return nil, fmt.Errorf("ikecrypto: reading IV base: %w", err)
		}
		c.ivBase = binary.BigEndian.Uint64(base[:])
	case EncrAESCBC:
		if c.block, err = aes.NewCipher(encrKey); err != nil {
			return nil, fmt.Errorf("ikecrypto: %w", err)
		}
		c.mac = hmac.New(integHash(s.Integ), integKey) // copies the key
		c.icvLen = ICVLen(s.Integ)
	}
	return c, nil
}

func integHash(integ uint16) func() hash.Hash {
	switch integ {
	case IntegHMACSHA196:
		return sha1.New
	case IntegHMACSHA384192:
		return sha512.New384
	case IntegHMACSHA512256:
		return sha512.New
	}
	return sha256.New
}

// BodyLen is the length of the SK payload body (IV, ciphertext of inner
// payloads, padding and pad length, ICV) that Seal produces for innerLen
// bytes of inner payloads. Callers need it to fill in the IKE header and SK
// payload lengths, which are authenticated, before sealing.
func (c *SKCipher) BodyLen(innerLen int) int {
	innerLen = max(innerLen, 0)
	if c.aead != nil {
		// No padding: RFC 5282 allows any, and strongSwan uses none.
		return aeadIVLen + innerLen + 1 + aeadICV
	}
	return cbcIVLen + (innerLen+1+aes.BlockSize-1)/aes.BlockSize*aes.BlockSize + c.icvLen
}

// Seal encrypts inner (the chain of inner payloads) and returns
// append(prefix, IV | ciphertext | ICV). prefix is the message from the
// start of the IKE header through the end of the SK (or SKF, including its
// fragment numbers) payload header, with all lengths already final. It is
// the AAD of AEAD ciphers (RFC 5282 §5.1) and the start of the HMAC input
// of CBC (RFC 7296 §3.14). If prefix has capacity for BodyLen more bytes,
// Seal writes there instead of allocating a new message; inner must not
// overlap that space.
func (c *SKCipher) Seal(prefix, inner []byte) ([]byte, error) {
	n := len(prefix)
	out := slices.Grow(prefix, c.BodyLen(len(inner)))
	if c.aead != nil {
		ctr := c.ivCtr.Add(1)
		if ctr == 0 {
			c.ivCtr.Store(^uint64(0)) // stay exhausted
			return nil, errIVExhausted
		}
		iv := c.ivBase + ctr
		out = binary.BigEndian.AppendUint64(out, iv)
		var nonce [saltLen + aeadIVLen]byte
		copy(nonce[:], c.salt[:])
		binary.BigEndian.PutUint64(nonce[saltLen:], iv)
		pt := len(out)
		out = append(out, inner...)
		out = append(out, 0) // pad length
		// Encrypt in place: dst ends exactly where the plaintext starts,
		// which the AEAD contract allows, and the capacity reserved above
		// keeps the result contiguous with prefix.
		return c.aead.Seal(out[:pt], nonce[:], out[pt:], out[:n]), nil
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	out = out[:n+cbcIVLen]
	if _, err := io.ReadFull(c.rand, out[n:]); err != nil {
		return nil, fmt.Errorf("ikecrypto: reading IV: %w", err)
	}
	pt := len(out)
	out = append(out, inner...)
	// Minimal padding so that inner | padding | pad length fills whole
	// blocks. The padding's value is not checked by receivers (RFC 7296
	// §3.14) and is encrypted, so zeros are as good as random bytes.
	pad := (aes.BlockSize - (len(inner)+1)%aes.BlockSize) % aes.BlockSize
	out = append(out, zeroPad[:pad]...)
	out = append(out, byte(pad))
	cipher.NewCBCEncrypter(c.block, out[n:pt]).CryptBlocks(out[pt:], out[pt:])
	c.mac.Reset()
	c.mac.Write(out)
	var sum [sha512.Size]byte
	return append(out, c.mac.Sum(sum[:0])[:c.icvLen]...), nil
}

// Open authenticates and decrypts an SK payload body (IV | ciphertext |
// ICV) received after prefix (as for Seal, the message bytes before the
// body) and returns the inner payloads without padding. It fails with
// ErrShort for an impossible length, ErrAuthentication if the ICV does not
// verify (for CBC checked in constant time before decrypting) and
// ErrInvalidPadding for an authentic message whose pad length does not
// fit. body is not modified.
func (c *SKCipher) Open(prefix, body []byte) ([]byte, error) {
	if c.aead != nil {
		if len(body) < aeadIVLen+1+aeadICV {
			return nil, fmt.Errorf("%w: SK body of %d bytes", ErrShort, len(body))
		}
		var nonce [saltLen + aeadIVLen]byte
		copy(nonce[:], c.salt[:])
		copy(nonce[saltLen:], body[:aeadIVLen])
		pt, err := c.aead.Open(nil, nonce[:], body[aeadIVLen:], prefix)
		if err != nil {
			return nil, fmt.Errorf("%w: SK payload ICV", ErrAuthentication)
		}
		return unpad(pt)
	}

	if len(body) < cbcIVLen+aes.BlockSize+c.icvLen {
		return nil, fmt.Errorf("%w: SK body of %d bytes", ErrShort, len(body))
	}
	ctLen := len(body) - cbcIVLen - c.icvLen
	if ctLen%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: SK ciphertext of %d bytes is not whole blocks", ErrShort, ctLen)
	}
	var sum [sha512.Size]byte
	c.mu.Lock()
	c.mac.Reset()
	c.mac.Write(prefix)
	c.mac.Write(body[:cbcIVLen+ctLen])
	icv := c.mac.Sum(sum[:0])[:c.icvLen]
	c.mu.Unlock()
	if !hmac.Equal(icv, body[cbcIVLen+ctLen:]) {
		return nil, fmt.Errorf("%w: SK payload ICV", ErrAuthentication)
	}
	pt := make([]byte, ctLen)
	cipher.NewCBCDecrypter(c.block, body[:cbcIVLen]).CryptBlocks(pt, body[cbcIVLen:cbcIVLen+ctLen])
	return unpad(pt)
}

// unpad strips padding and the pad length byte. Any pad length that fits
// is accepted (RFC 7296 §3.14: "the recipient MUST accept any length that
// results in proper alignment"); one that does not fit is an error rather
// than a slice out of range.
func unpad(pt []byte) ([]byte, error) {
	if len(pt) == 0 {
		return nil, fmt.Errorf("%w: no pad length", ErrInvalidPadding)
	}
	pad := int(pt[len(pt)-1])
	if pad+1 > len(pt) {
		return nil, fmt.Errorf("%w: pad length %d in %d bytes", ErrInvalidPadding, pad, len(pt))
	}
	return pt[:len(pt)-1-pad], nil
}
