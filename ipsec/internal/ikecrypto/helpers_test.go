package ikecrypto

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"strings"
	"testing"
)

// fromHex decodes hex with optional spaces and newlines (as RFCs print it).
func fromHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// pattern is n bytes counting up from start: distinct, recognisable keys.
func pattern(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// hashFor maps a PRF id to its hash without going through NewPRF, so that
// the reference computations below share no code with the package.
func hashFor(t testing.TB, id uint16) func() hash.Hash {
	t.Helper()
	switch id {
	case 2:
		return sha1.New
	case 5:
		return sha256.New
	case 6:
		return sha512.New384
	case 7:
		return sha512.New
	}
	t.Fatalf("no hash for PRF %d", id)
	return nil
}

func refHMAC(h func() hash.Hash, key []byte, data ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// refPlus is prf+ spelled out per RFC 7296 §2.13, block by block.
func refPlus(h func() hash.Hash, key, seed []byte, n int) []byte {
	var out, t []byte
	for i := byte(1); len(out) < n; i++ {
		in := append(append(append([]byte{}, t...), seed...), i)
		t = refHMAC(h, key, in)
		out = append(out, t...)
	}
	return out[:n]
}

// zeroReader is an io.Reader of zeros, for deterministic IV bases.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// countReader yields 0, 1, 2, ... so every read differs but runs repeat.
type countReader struct{ n byte }

func (c *countReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}
