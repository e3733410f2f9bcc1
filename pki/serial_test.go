package pki

import (
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
)

func TestSerialString(t *testing.T) {
	for _, c := range []struct {
		n    *big.Int
		want string
	}{
		{big.NewInt(1), "1"},
		{big.NewInt(255), "ff"},
		{new(big.Int).Lsh(big.NewInt(1), 64), "10000000000000000"},
		{nil, ""},
	} {
		if got := SerialString(c.n); got != c.want {
			t.Errorf("SerialString(%v) = %q, want %q", c.n, got, c.want)
		}
	}
}

// The refusals a transport turns into events and log lines (revoked, not
// issued by this CA) name the serial in the form the API shows, never in
// decimal.
func TestRefusalsNameTheSerialInHex(t *testing.T) {
	ca := newTestCA(t, ECDSAP256)
	cert, _ := issue(t, ca, ProfileUser, "bob")
	hex, dec := SerialString(cert.SerialNumber), cert.SerialNumber.String()
	if err := ca.Revoke(cert.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	_, err := (&Verifier{CA: ca}).Verify([]*x509.Certificate{cert})
	if !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "serial "+hex+")") || strings.Contains(err.Error(), dec) {
		t.Fatalf("refusal of a revoked certificate: %v; want serial %s", err, hex)
	}
	if _, err := ca.Renew(cert, nil); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "serial "+hex+" ") {
		t.Fatalf("renewing a revoked certificate: %v; want serial %s", err, hex)
	}
	foreign, _ := issue(t, newTestCA(t, ECDSAP256), ProfileUser, "bob")
	if err := ca.CheckCertificate(foreign); !errors.Is(err, ErrNotIssued) || !strings.Contains(err.Error(), "serial "+SerialString(foreign.SerialNumber)+" ") {
		t.Fatalf("a certificate of another CA: %v", err)
	}
	if err := ca.Revoke(big.NewInt(0xabc), ReasonUnspecified); !errors.Is(err, ErrNotIssued) || !strings.HasSuffix(err.Error(), "serial abc") {
		t.Fatalf("revoking an unknown serial: %v", err)
	}
}
