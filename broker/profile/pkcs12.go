package profile

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/remotegate/remotegate/pki"
)

// PKCS12 is a participant's identity as a password-protected PKCS#12 file
// (.p12), for systems that import identities that way (Windows, macOS,
// many gateways). It is encoded by pki.EncodePKCS12: AES-256 and
// PBKDF2-SHA256, as OpenSSL 3 writes it.
type PKCS12 struct {
	// Key is the participant's private key: a software key (a key on a
	// token cannot leave it). Required.
	Key crypto.Signer
	// Cert is the participant's certificate, for Key. Required.
	Cert *x509.Certificate
	// Chain are the CA certificates that go with it (the broker's CA).
	Chain []*x509.Certificate
	// Password protects the file. Required: an unprotected key is not
	// handed out.
	Password string
}

// Marshal returns the DER of the PKCS#12 file. A missing part, an empty
// password or a key that does not belong to the certificate is an error
// wrapping ErrInvalid (and pki.ErrInvalidRequest where pki found it).
func (p PKCS12) Marshal() ([]byte, error) {
	switch {
	case p.Key == nil:
		return nil, invalid(nil, "PKCS#12: no key")
	case p.Cert == nil:
		return nil, invalid(nil, "PKCS#12: no certificate")
	case p.Password == "":
		return nil, invalid(nil, "PKCS#12: no password")
	}
	for _, c := range p.Chain {
		if c == nil {
			return nil, invalid(nil, "PKCS#12: a nil certificate in the chain")
		}
	}
	der, err := pki.EncodePKCS12(p.Key, p.Cert, p.Chain, p.Password)
	if errors.Is(err, pki.ErrInvalidRequest) {
		return nil, invalid(err, "PKCS#12")
	}
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return der, nil
}

// WriteTo writes the PKCS#12 file to w; one that cannot be encoded writes
// nothing. It implements io.WriterTo.
func (p PKCS12) WriteTo(w io.Writer) (int64, error) {
	der, err := p.Marshal()
	if err != nil {
		return 0, err
	}
	return write(w, der)
}
