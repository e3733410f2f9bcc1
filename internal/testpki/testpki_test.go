package testpki

import (
	"crypto/x509"
	"testing"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	ca := New(t, "CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := ca.Server(t, "server")
	cli := ca.Client(t, "client")
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("server cert: %v", err)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("client cert must not be valid for serverAuth")
	}
	if srv.Cert.KeyUsage == 0 || cli.Cert.KeyUsage == 0 {
		t.Fatal("stock openvpn's remote-cert-tls needs a keyUsage extension")
	}
	paths := ca.WriteFiles(t, t.TempDir(), map[string]*Leaf{"server": srv})
	if paths["ca.crt"] == "" || paths["server.key"] == "" {
		t.Fatalf("paths %v", paths)
	}
}
