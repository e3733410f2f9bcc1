package ikecrypto

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"math/big"
)

// DH is one side of a Diffie-Hellman exchange (RFC 7296 §1.2, §3.4).
type DH interface {
	// Group is the transform ID of the group.
	Group() uint16
	// Public is the Key Exchange Data of our KE payload, always
	// DHPublicLen(Group()) bytes.
	Public() []byte
	// SharedSecret validates the peer's Key Exchange Data and returns g^ir
	// in its fixed width (RFC 7296 §2.14: MODP left-padded to the prime's
	// length; ECP the X coordinate, RFC 5903 §7; Curve25519 32 bytes).
	SharedSecret(peerPublic []byte) ([]byte, error)
}

// DHPublicLen is the length of the Key Exchange Data of a group, or 0 if
// the group is not implemented.
func DHPublicLen(group uint16) int {
	switch group {
	case DHMODP2048:
		return 256
	case DHMODP3072:
		return 384
	case DHECP256:
		return 64
	case DHECP384:
		return 96
	case DHECP521:
		return 132
	case DHCurve25519:
		return 32
	}
	return 0
}

// NewDH makes a fresh private value of the group, read from rand
// (crypto/rand if nil).
func NewDH(group uint16, rand io.Reader) (DH, error) {
	if rand == nil {
		rand = defaultRand
	}
	switch group {
	case DHMODP2048:
		return newMODP(group, modp2048, rand)
	case DHMODP3072:
		return newMODP(group, modp3072, rand)
	case DHECP256:
		return newECDH(group, ecdh.P256(), rand)
	case DHECP384:
		return newECDH(group, ecdh.P384(), rand)
	case DHECP521:
		return newECDH(group, ecdh.P521(), rand)
	case DHCurve25519:
		return newECDH(group, ecdh.X25519(), rand)
	}
	return nil, fmt.Errorf("%w: %d", ErrUnsupportedGroup, group)
}

var defaultRand io.Reader = rand.Reader

// MODP groups (RFC 3526), generator 2. The primes are safe primes
// p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) π) + c); the tests
// recompute them from that formula.
var (
	modp2048 = mustHex("" +
		"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
		"29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
		"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
		"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D" +
		"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
		"83655D23DCA3AD961C62F356208552BB9ED529077096966D" +
		"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9" +
		"DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
		"15728E5A8AACAA68FFFFFFFFFFFFFFFF")
	modp3072 = mustHex("" +
		"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
		"29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
		"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
		"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D" +
		"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
		"83655D23DCA3AD961C62F356208552BB9ED529077096966D" +
		"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9" +
		"DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
		"15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64" +
		"ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
		"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B" +
		"F12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
		"BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31" +
		"43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF")
)

// mustHex parses a constant; nil (never for the constants above, which the
// tests check) makes newMODP fail instead of panicking at init.
func mustHex(s string) *big.Int {
	p, ok := new(big.Int).SetString(s, 16)
	if !ok {
		return nil
	}
	return p
}

// modpExpBytes is the size of MODP private exponents. RFC 3526 §8 puts
// the strength of the 2048- and 3072-bit groups at no more than 160 and 210
// bits and suggests exponents of twice that (320 and 420 bits); 512 bits
// covers both with margin and costs a quarter of a full-length exponent.
const modpExpBytes = 64

type modpDH struct {
	group uint16
	p     *big.Int
	x     *big.Int
	pub   []byte
}

func newMODP(group uint16, p *big.Int, rand io.Reader) (*modpDH, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedGroup, group)
	}
	b := make([]byte, modpExpBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("ikecrypto: reading random exponent: %w", err)
	}
	// The top bit makes every exponent the same length, so the (variable
	// time) exponentiation does not leak it, and keeps x far from 0 and 1.
	b[0] |= 0x80
	x := new(big.Int).SetBytes(b)
	clear(b)
	return newMODPWithExponent(group, p, x), nil
}

func newMODPWithExponent(group uint16, p, x *big.Int) *modpDH {
	d := &modpDH{group: group, p: p, x: x}
	y := new(big.Int).Exp(big.NewInt(2), x, p)
	d.pub = y.FillBytes(make([]byte, d.size()))
	return d
}

func (d *modpDH) size() int { return (d.p.BitLen() + 7) / 8 }

func (d *modpDH) Group() uint16 { return d.group }

func (d *modpDH) Public() []byte { return append([]byte(nil), d.pub...) }

// SharedSecret checks 1 < y < p-1 (RFC 7296 §5: 0, 1 and p-1 would force
// a predictable secret; p is a safe prime, so every other y has order q or
// 2q) and returns y^x mod p left-padded to the prime's length.
//
// math/big is not constant time; the exponent is ephemeral and used for
// one exchange only, which keeps a timing leak out of reach in practice.
func (d *modpDH) SharedSecret(peer []byte) ([]byte, error) {
	if len(peer) != d.size() {
		return nil, fmt.Errorf("%w: %d bytes for group %d, want %d", ErrInvalidPublicKey, len(peer), d.group, d.size())
	}
	y := new(big.Int).SetBytes(peer)
	pm1 := new(big.Int).Sub(d.p, big.NewInt(1))
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pm1) >= 0 {
		return nil, fmt.Errorf("%w: MODP value out of range", ErrInvalidPublicKey)
	}
	z := new(big.Int).Exp(y, d.x, d.p)
	return z.FillBytes(make([]byte, d.size())), nil
}

type ecDH struct {
	group uint16
	curve ecdh.Curve
	priv  *ecdh.PrivateKey
	pub   []byte
	nist  bool
}

// newECDH draws the private scalar from rand itself rather than calling
// Curve.GenerateKey, which since Go 1.26 ignores its reader: callers (and
// tests) that pass a reader get what they passed.
func newECDH(group uint16, curve ecdh.Curve, rand io.Reader) (*ecDH, error) {
	nist := curve != ecdh.X25519()
	n := 32
	switch group {
	case DHECP384:
		n = 48
	case DHECP521:
		n = 66
	}
	b := make([]byte, n)
	defer clear(b)
	var priv *ecdh.PrivateKey
	// For the NIST curves a scalar ≥ the order is refused; rejection
	// sampling keeps the distribution uniform. P-256 and P-384 reject with
	// probability < 2^-32, P-521 (with the top 7 bits cleared) < 1/2, so 64
	// rounds failing means a broken reader.
	for range 64 {
		if _, err := io.ReadFull(rand, b); err != nil {
			return nil, fmt.Errorf("ikecrypto: reading random scalar: %w", err)
		}
		if group == DHECP521 {
			b[0] &= 0x01
		}
		k, err := curve.NewPrivateKey(b)
		if err == nil {
			priv = k
			break
		}
	}
	if priv == nil {
		return nil, fmt.Errorf("ikecrypto: no valid private scalar for group %d from the random source", group)
	}
	pub := priv.PublicKey().Bytes()
	if nist {
		pub = pub[1:] // RFC 5903 §7: X‖Y without the SEC 1 0x04 prefix
	}
	return &ecDH{group: group, curve: curve, priv: priv, pub: pub, nist: nist}, nil
}

func (d *ecDH) Group() uint16 { return d.group }

func (d *ecDH) Public() []byte { return append([]byte(nil), d.pub...) }

// SharedSecret parses the peer's value with crypto/ecdh, which checks that
// a NIST point is on the curve, and refuses an all-zero X25519 value and
// the all-zero X25519 result of a low-order point (RFC 8031 §2.3).
func (d *ecDH) SharedSecret(peer []byte) ([]byte, error) {
	if len(peer) != len(d.pub) {
		return nil, fmt.Errorf("%w: %d bytes for group %d, want %d", ErrInvalidPublicKey, len(peer), d.group, len(d.pub))
	}
	enc := peer
	if d.nist {
		enc = append([]byte{4}, peer...)
	} else if subtle.ConstantTimeCompare(peer, make([]byte, len(peer))) == 1 {
		return nil, fmt.Errorf("%w: all-zero Curve25519 value", ErrInvalidPublicKey)
	}
	pub, err := d.curve.NewPublicKey(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPublicKey, err)
	}
	z, err := d.priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPublicKey, err)
	}
	return z, nil
}
