package ikecrypto

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// PRF is an IKEv2 pseudorandom function (RFC 7296 §2.13). Only HMAC PRFs
// are implemented. The zero PRF is invalid: Sum returns nil and Plus fails.
type PRF struct {
	id      uint16
	newHash func() hash.Hash
	size    int
}

// NewPRF returns the PRF with the given transform ID.
func NewPRF(id uint16) (PRF, error) {
	switch id {
	case PRFHMACSHA1:
		return PRF{id, sha1.New, sha1.Size}, nil
	case PRFHMACSHA256:
		return PRF{id, sha256.New, sha256.Size}, nil
	case PRFHMACSHA384:
		return PRF{id, sha512.New384, sha512.Size384}, nil
	case PRFHMACSHA512:
		return PRF{id, sha512.New, sha512.Size}, nil
	}
	return PRF{}, fmt.Errorf("%w: PRF %d", ErrUnsupportedAlgorithm, id)
}

// ID is the transform ID.
func (p PRF) ID() uint16 { return p.id }

// Size is the output length in bytes, which is also the preferred key
// length (RFC 7296 §2.13).
func (p PRF) Size() int { return p.size }

func (p PRF) valid() bool { return p.newHash != nil }

// Sum is prf(key, data[0] | data[1] | ...).
func (p PRF) Sum(key []byte, data ...[]byte) []byte {
	if !p.valid() {
		return nil
	}
	m := hmac.New(p.newHash, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// Plus is prf+(key, seed) truncated to n bytes (RFC 7296 §2.13):
//
//	T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), prf+ = T1 | T2 | ...
//
// The counter is one byte, so at most 255 blocks exist.
func (p PRF) Plus(key, seed []byte, n int) ([]byte, error) {
	if !p.valid() {
		return nil, fmt.Errorf("%w: zero PRF", ErrUnsupportedAlgorithm)
	}
	if n < 0 || n > 255*p.size {
		return nil, fmt.Errorf("ikecrypto: prf+ cannot produce %d bytes with a %d-byte PRF", n, p.size)
	}
	out := make([]byte, 0, (n+p.size-1)/p.size*p.size)
	m := hmac.New(p.newHash, key)
	var t []byte
	for i := 1; len(out) < n; i++ {
		m.Reset()
		m.Write(t)
		m.Write(seed)
		m.Write([]byte{byte(i)})
		out = m.Sum(out)
		t = out[len(out)-p.size:]
	}
	return out[:n], nil
}
