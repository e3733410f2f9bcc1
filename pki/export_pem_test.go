package pki

import (
	"bytes"
	"errors"
	"testing"
)

// ParseCertificatesPEM returns every certificate in order, skips other
// blocks, and refuses data without one or with a broken one.
func TestParseCertificatesPEM(t *testing.T) {
	a, b := newTestCA(t, ECDSAP256).Certificate(), newTestCA(t, ECDSAP256).Certificate()
	key := []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	data := bytes.Join([][]byte{EncodeCertificatesPEM(a), key, EncodeCertificatesPEM(b)}, nil)
	got, err := ParseCertificatesPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(a) || !got[1].Equal(b) {
		t.Fatalf("got %d certificates, want a and b in order", len(got))
	}
	broken := []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	for name, in := range map[string][]byte{"none": key, "empty": nil, "broken": broken} {
		if _, err := ParseCertificatesPEM(in); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: %v, want ErrInvalidRequest", name, err)
		}
	}
}
