package ikecrypto

import (
	"bytes"
	"errors"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

var allGroups = []struct {
	name   string
	group  uint16
	pubLen int
	secLen int
}{
	{"MODP-2048", DHMODP2048, 256, 256},
	{"MODP-3072", DHMODP3072, 384, 384},
	{"ECP-256", DHECP256, 64, 32},
	{"ECP-384", DHECP384, 96, 48},
	{"ECP-521", DHECP521, 132, 66},
	{"Curve25519", DHCurve25519, 32, 32},
}

func TestDHAgreement(t *testing.T) {
	for _, g := range allGroups {
		t.Run(g.name, func(t *testing.T) {
			require.Equal(t, g.pubLen, DHPublicLen(g.group))
			a, err := NewDH(g.group, nil)
			require.NoError(t, err)
			b, err := NewDH(g.group, nil)
			require.NoError(t, err)
			require.Equal(t, g.group, a.Group())
			require.Len(t, a.Public(), g.pubLen)
			require.NotEqual(t, a.Public(), b.Public())

			za, err := a.SharedSecret(b.Public())
			require.NoError(t, err)
			zb, err := b.SharedSecret(a.Public())
			require.NoError(t, err)
			require.Len(t, za, g.secLen)
			require.Equal(t, za, zb)

			// Public returns a copy: the caller cannot corrupt our value.
			p := a.Public()
			p[0] ^= 0xff
			require.NotEqual(t, p, a.Public())

			// Wrong lengths are refused, never mis-parsed.
			for _, n := range []int{0, g.pubLen - 1, g.pubLen + 1} {
				_, err := a.SharedSecret(make([]byte, n))
				require.ErrorIs(t, err, ErrInvalidPublicKey, "length %d", n)
			}
		})
	}
}

func TestDHUsesGivenRand(t *testing.T) {
	for _, g := range allGroups {
		a, err := NewDH(g.group, &countReader{})
		require.NoError(t, err)
		b, err := NewDH(g.group, &countReader{})
		require.NoError(t, err)
		require.Equal(t, a.Public(), b.Public(), g.name)
	}
	_, err := NewDH(DHECP256, bytes.NewReader([]byte{1, 2, 3}))
	require.Error(t, err)
	_, err = NewDH(DHMODP2048, bytes.NewReader(nil))
	require.Error(t, err)
}

func TestDHUnsupported(t *testing.T) {
	for _, g := range []uint16{0, 1, 2, 5, 16, 22, 28, 32} {
		_, err := NewDH(g, nil)
		require.ErrorIs(t, err, ErrUnsupportedGroup, "group %d", g)
		require.Zero(t, DHPublicLen(g))
	}
}

// piFloor returns floor(2^bits * π), from Machin's formula
// π = 16 atan(1/5) - 4 atan(1/239) in fixed point with guard bits.
func piFloor(bits uint) *big.Int {
	const guard = 64
	one := new(big.Int).Lsh(big.NewInt(1), bits+guard)
	atanInv := func(x int64) *big.Int {
		// atan(1/x) = Σ (-1)^k / ((2k+1) x^(2k+1))
		sum := new(big.Int)
		xx := big.NewInt(x * x)
		term := new(big.Int).Div(one, big.NewInt(x))
		for k := int64(0); term.Sign() != 0; k++ {
			q := new(big.Int).Div(term, big.NewInt(2*k+1))
			if k%2 == 0 {
				sum.Add(sum, q)
			} else {
				sum.Sub(sum, q)
			}
			term.Div(term, xx)
		}
		return sum
	}
	pi := new(big.Int).Mul(atanInv(5), big.NewInt(16))
	pi.Sub(pi, new(big.Int).Mul(atanInv(239), big.NewInt(4)))
	return pi.Rsh(pi, guard)
}

// TestMODPPrimes recomputes the RFC 3526 primes from their definition
// p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) π) + c), and checks
// that they are safe primes.
func TestMODPPrimes(t *testing.T) {
	for _, tc := range []struct {
		p *big.Int
		n uint
		c int64
	}{
		{modp2048, 2048, 124476},
		{modp3072, 3072, 1690314},
	} {
		want := new(big.Int).Lsh(big.NewInt(1), tc.n)
		want.Sub(want, new(big.Int).Lsh(big.NewInt(1), tc.n-64))
		want.Sub(want, big.NewInt(1))
		f := piFloor(tc.n - 130)
		f.Add(f, big.NewInt(tc.c))
		want.Add(want, f.Lsh(f, 64))
		require.Equal(t, 0, want.Cmp(tc.p), "MODP-%d", tc.n)
		require.True(t, tc.p.ProbablyPrime(8))
		q := new(big.Int).Rsh(tc.p, 1)
		require.True(t, q.ProbablyPrime(8), "safe prime")
	}
}

// TestMODPPadding builds small values on purpose: with exponent 1 the
// public value is g = 2 and the secret is the peer's y itself, so both
// need 255 leading zero bytes.
func TestMODPPadding(t *testing.T) {
	d := newMODPWithExponent(DHMODP2048, modp2048, big.NewInt(1))
	pub := d.Public()
	require.Len(t, pub, 256)
	require.Equal(t, append(make([]byte, 255), 2), pub)

	peer := make([]byte, 256)
	peer[255] = 3
	z, err := d.SharedSecret(peer)
	require.NoError(t, err)
	require.Equal(t, append(make([]byte, 255), 3), z)

	// Exponent 8: 2^8 = 256 = 0x0100.
	d = newMODPWithExponent(DHMODP3072, modp3072, big.NewInt(8))
	require.Equal(t, append(make([]byte, 382), 1, 0), d.Public())
}

func TestMODPInvalidPeer(t *testing.T) {
	for _, tc := range []struct {
		group uint16
		p     *big.Int
	}{{DHMODP2048, modp2048}, {DHMODP3072, modp3072}} {
		d, err := NewDH(tc.group, nil)
		require.NoError(t, err)
		n := DHPublicLen(tc.group)
		fixed := func(v *big.Int) []byte { return v.FillBytes(make([]byte, n)) }
		pm1 := new(big.Int).Sub(tc.p, big.NewInt(1))
		max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(8*n)), big.NewInt(1))
		for name, y := range map[string]*big.Int{
			"0": big.NewInt(0), "1": big.NewInt(1), "p-1": pm1, "p": tc.p,
			"p+1": new(big.Int).Add(tc.p, big.NewInt(1)), "2^n-1": max,
		} {
			_, err := d.SharedSecret(fixed(y))
			require.ErrorIs(t, err, ErrInvalidPublicKey, "y = %s", name)
		}
		for _, y := range []*big.Int{big.NewInt(2), new(big.Int).Sub(tc.p, big.NewInt(2))} {
			_, err := d.SharedSecret(fixed(y))
			require.NoError(t, err)
		}
	}
}

func TestECPInvalidPeer(t *testing.T) {
	for _, g := range allGroups[2:5] {
		d, err := NewDH(g.group, nil)
		require.NoError(t, err)
		offCurve := make([]byte, g.pubLen)
		offCurve[g.pubLen/2-1] = 1 // X = 1
		offCurve[g.pubLen-1] = 1   // Y = 1
		_, err = d.SharedSecret(offCurve)
		require.ErrorIs(t, err, ErrInvalidPublicKey, g.name)
		_, err = d.SharedSecret(make([]byte, g.pubLen)) // the point at infinity's usual stand-in
		require.ErrorIs(t, err, ErrInvalidPublicKey, g.name)

		// A valid point with Y flipped to the other root is still on the
		// curve; one with a corrupted Y is not.
		other, _ := NewDH(g.group, nil)
		bad := other.Public()
		bad[len(bad)-1] ^= 1
		_, err = d.SharedSecret(bad)
		require.ErrorIs(t, err, ErrInvalidPublicKey, g.name)

		// The SEC 1 prefixed form is not what goes on the wire.
		_, err = d.SharedSecret(append([]byte{4}, other.Public()...))
		require.ErrorIs(t, err, ErrInvalidPublicKey, g.name)
	}
}

func TestX25519InvalidPeer(t *testing.T) {
	d, err := NewDH(DHCurve25519, nil)
	require.NoError(t, err)
	_, err = d.SharedSecret(make([]byte, 32))
	require.ErrorIs(t, err, ErrInvalidPublicKey)
	// u = 1 has order 4: the clamped scalar maps it to the identity, and
	// the all-zero result must be refused (RFC 8031 §2.3).
	one := make([]byte, 32)
	one[0] = 1
	_, err = d.SharedSecret(one)
	require.ErrorIs(t, err, ErrInvalidPublicKey)
}

// TestECDHLeadingZeros loops until the public X coordinate and, separately,
// the shared secret start with a zero byte (1 in 256 each) and checks that
// the widths stay fixed and both sides still agree: the classic bug is a
// big.Int.Bytes() that drops the zero.
func TestECDHLeadingZeros(t *testing.T) {
	for _, g := range []struct {
		group          uint16
		pubLen, secLen int
	}{{DHECP256, 64, 32}, {DHCurve25519, 32, 32}} {
		a, err := NewDH(g.group, nil)
		require.NoError(t, err)
		var pubZero, secZero bool
		for i := 0; i < 4000 && !(pubZero && secZero); i++ {
			b, err := NewDH(g.group, nil)
			require.NoError(t, err)
			pb := b.Public()
			require.Len(t, pb, g.pubLen)
			za, err := a.SharedSecret(pb)
			require.NoError(t, err)
			require.Len(t, za, g.secLen)
			if pb[0] == 0 || za[0] == 0 {
				zb, err := b.SharedSecret(a.Public())
				require.NoError(t, err)
				require.Equal(t, za, zb)
				pubZero = pubZero || pb[0] == 0
				secZero = secZero || za[0] == 0
			}
		}
		require.True(t, pubZero, "no public value with a leading zero in 4000 tries (p ≈ e^-15)")
		require.True(t, secZero, "no shared secret with a leading zero in 4000 tries")
	}
}

func TestDHErrorsWrapped(t *testing.T) {
	d, _ := NewDH(DHECP256, nil)
	_, err := d.SharedSecret([]byte{1})
	require.True(t, errors.Is(err, ErrInvalidPublicKey))
	require.Contains(t, err.Error(), "ikecrypto: ")
}
