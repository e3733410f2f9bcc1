//go:build !cgo || nopkcs11

package pki

import "crypto"

// pkcs11Available tells tests which implementation is compiled in.
const pkcs11Available = false

// Token is an open PKCS#11 token. In this build (no cgo, or the nopkcs11
// tag) PKCS#11 is not compiled in: OpenToken always fails with
// ErrPKCS11Unavailable and no Token can exist.
type Token struct{}

// OpenToken always returns ErrPKCS11Unavailable in this build.
func OpenToken(cfg PKCS11Config) (*Token, error) { return nil, ErrPKCS11Unavailable }

// Label returns the empty string in this build.
func (t *Token) Label() string { return "" }

// Serial returns the empty string in this build.
func (t *Token) Serial() string { return "" }

// Close returns ErrPKCS11Unavailable in this build.
func (t *Token) Close() error { return ErrPKCS11Unavailable }

// GenerateKey returns ErrPKCS11Unavailable in this build.
func (t *Token) GenerateKey(label string, id []byte, alg KeyAlgorithm) (crypto.Signer, error) {
	return nil, ErrPKCS11Unavailable
}

// Signer returns ErrPKCS11Unavailable in this build.
func (t *Token) Signer(label string, id []byte) (crypto.Signer, error) {
	return nil, ErrPKCS11Unavailable
}

// DeleteKey returns ErrPKCS11Unavailable in this build.
func (t *Token) DeleteKey(label string, id []byte) error { return ErrPKCS11Unavailable }
