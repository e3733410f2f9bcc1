package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Sentinel errors for key handling. Callers match them with errors.Is; the
// returned errors wrap them with details (file name, algorithm, ...).
var (
	// ErrUnsupportedKey is returned for key types, curves or encodings this
	// package deliberately does not handle.
	ErrUnsupportedKey = errors.New("pki: unsupported key")
	// ErrUnsupportedAlgorithm is returned for a KeyAlgorithm value outside the
	// defined constants.
	ErrUnsupportedAlgorithm = errors.New("pki: unsupported key algorithm")
)

// KeyAlgorithm selects the type and size of a newly generated key, in
// software (GenerateKey) or on a PKCS#11 token (Token.GenerateKey).
//
// The zero value is ECDSAP256 so that a zero-valued configuration picks the
// cheapest algorithm that is still acceptable for a CA and for TLS 1.2/1.3.
type KeyAlgorithm int

// The supported key algorithms.
const (
	// ECDSAP256 is ECDSA on NIST P-256; the default.
	ECDSAP256 KeyAlgorithm = iota
	// ECDSAP384 is ECDSA on NIST P-384.
	ECDSAP384
	// RSA2048 is RSA with a 2048-bit modulus.
	RSA2048
	// RSA3072 is RSA with a 3072-bit modulus.
	RSA3072
	// RSA4096 is RSA with a 4096-bit modulus.
	RSA4096
)

// String returns a short, stable name such as "ECDSA-P256" or "RSA-3072",
// suitable for logs and configuration files.
func (a KeyAlgorithm) String() string {
	switch a {
	case ECDSAP256:
		return "ECDSA-P256"
	case ECDSAP384:
		return "ECDSA-P384"
	case RSA2048:
		return "RSA-2048"
	case RSA3072:
		return "RSA-3072"
	case RSA4096:
		return "RSA-4096"
	default:
		return fmt.Sprintf("KeyAlgorithm(%d)", int(a))
	}
}

// ParseKeyAlgorithm is the inverse of KeyAlgorithm.String, so that an
// algorithm can be read back from a configuration file.
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	for a := ECDSAP256; a <= RSA4096; a++ {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, s)
}

// curve returns the elliptic curve of an ECDSA algorithm, or nil.
func (a KeyAlgorithm) curve() elliptic.Curve {
	switch a {
	case ECDSAP256:
		return elliptic.P256()
	case ECDSAP384:
		return elliptic.P384()
	default:
		return nil
	}
}

// rsaBits returns the modulus size of an RSA algorithm, or 0.
func (a KeyAlgorithm) rsaBits() int {
	switch a {
	case RSA2048:
		return 2048
	case RSA3072:
		return 3072
	case RSA4096:
		return 4096
	default:
		return 0
	}
}

// GenerateKey generates a software key of the given algorithm using
// crypto/rand. The result is an *ecdsa.PrivateKey or *rsa.PrivateKey.
func GenerateKey(alg KeyAlgorithm) (crypto.Signer, error) {
	if c := alg.curve(); c != nil {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("pki: generating %v key: %w", alg, err)
		}
		return k, nil
	}
	if bits := alg.rsaBits(); bits != 0 {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, fmt.Errorf("pki: generating %v key: %w", alg, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, alg)
}

// checkSignerKey reports whether key is one of the private key types this
// package can serialise; it exists so that every entry point rejects the same
// set with the same error, and so that a typed nil pointer is an error rather
// than a panic inside crypto/x509.
func checkSignerKey(key crypto.Signer) error {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k == nil {
			return fmt.Errorf("%w: nil *rsa.PrivateKey", ErrUnsupportedKey)
		}
		return nil
	case *ecdsa.PrivateKey:
		if k == nil {
			return fmt.Errorf("%w: nil *ecdsa.PrivateKey", ErrUnsupportedKey)
		}
		return nil
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return fmt.Errorf("%w: Ed25519 key of %d bytes", ErrUnsupportedKey, len(k))
		}
		return nil
	case nil:
		return fmt.Errorf("%w: nil key", ErrUnsupportedKey)
	default:
		return fmt.Errorf("%w: %T (not an exportable software key)", ErrUnsupportedKey, key)
	}
}
