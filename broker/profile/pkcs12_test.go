package profile

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/pki"
	"software.sslmate.com/src/go-pkcs12"
)

// TestPKCS12 decodes what it writes: the participant's key and certificate
// and the CA, behind the password.
func TestPKCS12(t *testing.T) {
	ca := testpki.New(t, "profile CA")
	leaf := ca.Client(t, "u1")
	var b bytes.Buffer
	n, err := PKCS12{Key: leaf.Key, Cert: leaf.Cert, Chain: []*x509.Certificate{ca.Cert}, Password: "s3cret"}.WriteTo(&b)
	if err != nil || n != int64(b.Len()) {
		t.Fatalf("%d bytes, %v", n, err)
	}
	key, cert, chain, err := pkcs12.DecodeChain(b.Bytes(), "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(leaf.Cert) || len(chain) != 1 || !chain[0].Equal(ca.Cert) {
		t.Errorf("decoded %v with chain %v", cert.Subject, chain)
	}
	if k, ok := key.(crypto.Signer); !ok || !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.Key.Public()) {
		t.Errorf("decoded another key")
	}
	if _, _, _, err := pkcs12.DecodeChain(b.Bytes(), "wrong"); err == nil {
		t.Error("decoded with the wrong password")
	}

	other := ca.Client(t, "u2")
	for name, p := range map[string]PKCS12{
		"no password":   {Key: leaf.Key, Cert: leaf.Cert},
		"no key":        {Cert: leaf.Cert, Password: "x"},
		"no cert":       {Key: leaf.Key, Password: "x"},
		"nil in chain":  {Key: leaf.Key, Cert: leaf.Cert, Chain: []*x509.Certificate{nil}, Password: "x"},
		"another's key": {Key: other.Key, Cert: leaf.Cert, Password: "x"},
	} {
		var b bytes.Buffer
		if _, err := p.WriteTo(&b); !errors.Is(err, ErrInvalid) || b.Len() != 0 {
			t.Errorf("%s: %v, %d bytes written", name, err, b.Len())
		}
	}
	if _, err := (PKCS12{Key: other.Key, Cert: leaf.Cert, Password: "x"}).Marshal(); !errors.Is(err, pki.ErrInvalidRequest) {
		t.Errorf("another's key: %v, want pki's reason too", err)
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		in, contentType, file string
	}{
		{"ovpn", "application/x-openvpn-profile", "gw1.ovpn"},
		{"swanctl", "application/x-tar", "gw1.tar"},
		{"pkcs12", "application/x-pkcs12", "gw1.p12"},
	} {
		f, err := ParseFormat(c.in)
		if err != nil {
			t.Fatal(err)
		}
		name, err := f.FileName("gw1")
		if string(f) != c.in || f.ContentType() != c.contentType || name != c.file || err != nil {
			t.Errorf("%s: %q %q %q %v", c.in, f, f.ContentType(), name, err)
		}
		if _, err := f.FileName("../x"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: file name for ../x: %v", c.in, err)
		}
	}
	if _, err := ParseFormat("p12"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseFormat(p12): %v", err)
	}
	if _, err := Format("x").FileName("gw1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("FileName of format x: %v", err)
	}
}
