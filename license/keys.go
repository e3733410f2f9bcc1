package license

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
)

// PEM block types of vendor key files.
const (
	// VendorPublicKeyPEM is the PEM type of a vendor public key (PKIX DER).
	VendorPublicKeyPEM = "REMOTEGATE VENDOR PUBLIC KEY"
	// VendorPrivateKeyPEM is the PEM type of a vendor private key (PKCS#8
	// DER, unencrypted: keep the file on the vendor's signing machine).
	VendorPrivateKeyPEM = "REMOTEGATE VENDOR PRIVATE KEY"
)

// GenerateVendorKey creates a vendor key pair from rand; nil means
// crypto/rand.
func GenerateVendorKey(rand io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("license: generating vendor key: %w", err)
	}
	return pub, priv, nil
}

// MarshalVendorPublicKey returns the PEM file of a vendor public key. It
// panics if pub is not ed25519.PublicKeySize bytes long.
func MarshalVendorPublicKey(pub ed25519.PublicKey) []byte {
	if len(pub) != ed25519.PublicKeySize {
		panic("license: invalid Ed25519 public key length")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic("license: " + err.Error()) // cannot happen for a valid key
	}
	return pem.EncodeToMemory(&pem.Block{Type: VendorPublicKeyPEM, Bytes: der})
}

// ParseVendorPublicKey parses a file written by MarshalVendorPublicKey.
// Text around the PEM block is ignored.
func ParseVendorPublicKey(data []byte) (ed25519.PublicKey, error) {
	der, err := pemBlock(data, VendorPublicKeyPEM)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("license: vendor public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("license: vendor public key is a %T, not Ed25519", k)
	}
	return pub, nil
}

// MarshalVendorPrivateKey returns the PEM file of a vendor private key. It
// panics if priv is not ed25519.PrivateKeySize bytes long.
func MarshalVendorPrivateKey(priv ed25519.PrivateKey) []byte {
	if len(priv) != ed25519.PrivateKeySize {
		panic("license: invalid Ed25519 private key length")
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		panic("license: " + err.Error()) // cannot happen for a valid key
	}
	return pem.EncodeToMemory(&pem.Block{Type: VendorPrivateKeyPEM, Bytes: der})
}

// ParseVendorPrivateKey parses a file written by MarshalVendorPrivateKey.
// Text around the PEM block is ignored.
func ParseVendorPrivateKey(data []byte) (ed25519.PrivateKey, error) {
	der, err := pemBlock(data, VendorPrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("license: vendor private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("license: vendor private key is a %T, not Ed25519", k)
	}
	return priv, nil
}

// pemBlock returns the content of the one PEM block of type typ in data.
func pemBlock(data []byte, typ string) ([]byte, error) {
	var found *pem.Block
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != typ {
			return nil, fmt.Errorf("license: found a PEM block %q, want %q", b.Type, typ)
		}
		if found != nil {
			return nil, fmt.Errorf("license: more than one %q PEM block", typ)
		}
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("license: unexpected headers in %q PEM block", typ)
		}
		found = b
	}
	if found == nil {
		return nil, fmt.Errorf("license: no %q PEM block found", typ)
	}
	return found.Bytes, nil
}

// NewInstallationID returns a new random installation ID: 128 bits from
// r (nil means crypto/rand) as 32 lowercase hex digits. The embedding
// product creates it once, when it is installed, and stores it; this
// package never derives it from hardware.
func NewInstallationID(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("license: generating installation ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
