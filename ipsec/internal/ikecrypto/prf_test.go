package ikecrypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPRFPlusByHand checks prf+ against T1 | T2 | T3 written out with
// crypto/hmac, for HMAC-SHA2-256.
func TestPRFPlusByHand(t *testing.T) {
	key := []byte("a SKEYSEED stand-in")
	seed := []byte("Ni | Nr | SPIi | SPIr")
	mac := func(data ...[]byte) []byte {
		m := hmac.New(sha256.New, key)
		for _, d := range data {
			m.Write(d)
		}
		return m.Sum(nil)
	}
	t1 := mac(seed, []byte{1})
	t2 := mac(t1, seed, []byte{2})
	t3 := mac(t2, seed, []byte{3})
	want := append(append(append([]byte{}, t1...), t2...), t3...)

	p, err := NewPRF(PRFHMACSHA256)
	require.NoError(t, err)
	require.Equal(t, uint16(5), p.ID())
	require.Equal(t, 32, p.Size())
	for _, n := range []int{0, 1, 31, 32, 33, 64, 70, 96} {
		got, err := p.Plus(key, seed, n)
		require.NoError(t, err)
		require.Equal(t, want[:n], got, "n=%d", n)
	}
}

func TestPRFAll(t *testing.T) {
	for _, id := range []uint16{2, 5, 6, 7} {
		p, err := NewPRF(id)
		require.NoError(t, err)
		h := hashFor(t, id)
		require.Equal(t, h().Size(), p.Size())
		key, seed := pattern(p.Size(), 1), pattern(100, 0x40)

		// Sum over several pieces is the HMAC of their concatenation.
		require.Equal(t, refHMAC(h, key, seed), p.Sum(key, seed[:10], seed[10:60], nil, seed[60:]))

		for _, n := range []int{1, p.Size(), 7*p.Size() + 3, 255 * p.Size()} {
			got, err := p.Plus(key, seed, n)
			require.NoError(t, err)
			require.Equal(t, refPlus(h, key, seed, n), got, "PRF %d n=%d", id, n)
		}
		_, err = p.Plus(key, seed, 255*p.Size()+1)
		require.Error(t, err, "prf+ has only 255 blocks")
		_, err = p.Plus(key, seed, -1)
		require.Error(t, err)
	}
}

func TestPRFInvalid(t *testing.T) {
	for _, id := range []uint16{0, 1, 3, 4, 8, 9} {
		_, err := NewPRF(id)
		require.ErrorIs(t, err, ErrUnsupportedAlgorithm, "PRF %d", id)
	}
	var zero PRF
	require.Nil(t, zero.Sum([]byte("k"), []byte("d")))
	_, err := zero.Plus([]byte("k"), nil, 1)
	require.ErrorIs(t, err, ErrUnsupportedAlgorithm)
}

func TestPRFKeyNotRetained(t *testing.T) {
	p, _ := NewPRF(PRFHMACSHA256)
	key := pattern(32, 0)
	a := p.Sum(key, []byte("x"))
	key[0] ^= 1
	b := p.Sum(key, []byte("x"))
	require.False(t, bytes.Equal(a, b))
}
