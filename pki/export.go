package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// EncodeCertificatesPEM writes certificates as consecutive PEM blocks, leaf
// first: a chain as OpenVPN's <cert> and <ca> blocks and most tools take it.
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// EncodePKCS12 bundles a key, its certificate and the CA chain into a
// password-protected PKCS#12 file, for systems that import identities
// that way (Windows, macOS, many gateways). It uses AES-256 and
// PBKDF2-SHA256 (the modern encoding OpenSSL 3 writes); the key must be a
// software key, since a key on a token cannot leave it.
func EncodePKCS12(key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate, password string) ([]byte, error) {
	if password == "" {
		return nil, fmt.Errorf("%w: PKCS#12 export needs a password", ErrInvalidRequest)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%w: the key does not belong to the certificate", ErrInvalidRequest)
	}
	der, err := pkcs12.Modern.Encode(key, cert, chain, password)
	if err != nil {
		return nil, fmt.Errorf("pki: encode PKCS#12: %w", err)
	}
	return der, nil
}

// ParseCertificatePEM returns the first certificate in PEM data.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrInvalidRequest)
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
			}
			return c, nil
		}
	}
}

// ParseCertificatesPEM returns every certificate in PEM data, in order,
// skipping blocks of other types; data without one is refused.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrInvalidRequest)
	}
	return certs, nil
}
