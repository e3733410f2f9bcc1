package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	ca := New(t, "CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := ca.Server(t, "server", "vpn.example")
	cli := ca.Client(t, "client")
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "vpn.example", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("server cert: %v", err)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client cert: %v", err)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("client cert must not be valid for serverAuth")
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("server cert must not be valid for clientAuth")
	}
	// Exact usages: stock openvpn's remote-cert-tls requires the keyUsage
	// extension (and these bits) besides the EKU.
	if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement; srv.Cert.KeyUsage != want {
		t.Errorf("server keyUsage %v, want %v", srv.Cert.KeyUsage, want)
	}
	if want := x509.KeyUsageDigitalSignature; cli.Cert.KeyUsage != want {
		t.Errorf("client keyUsage %v, want %v", cli.Cert.KeyUsage, want)
	}
	if srv.Cert.SerialNumber.Cmp(cli.Cert.SerialNumber) == 0 {
		t.Error("leaves share a serial number")
	}
	now := time.Now()
	for _, c := range []*x509.Certificate{ca.Cert, srv.Cert, cli.Cert} {
		if nb := now.Sub(c.NotBefore); nb < 59*time.Minute || nb > 61*time.Minute {
			t.Errorf("%s NotBefore %v is not about an hour ago", c.Subject.CommonName, c.NotBefore)
		}
		if na := c.NotAfter.Sub(now); na < 23*time.Hour || na > 25*time.Hour {
			t.Errorf("%s NotAfter %v is not about a day ahead", c.Subject.CommonName, c.NotAfter)
		}
	}
}

// The leaves' tls.Certificate values work in a mutually authenticated
// handshake, the way the project's OpenVPN control channel uses them.
func TestMutualTLS(t *testing.T) {
	ca := New(t, "CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv, cli := ca.Server(t, "server"), ca.Client(t, "client")
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	sc := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{srv.TLS}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	cc := tls.Client(b, &tls.Config{Certificates: []tls.Certificate{cli.TLS}, RootCAs: pool, ServerName: "server",
		// No DNS SANs: openvpn checks EKUs, not names, so neither do we.
		InsecureSkipVerify: true, VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		}})
	errc := make(chan error, 1)
	go func() { errc <- sc.Handshake() }()
	if err := cc.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if got := sc.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "client" {
		t.Errorf("server saw peer %q", got)
	}
}

func TestWriteFiles(t *testing.T) {
	ca := New(t, "CA")
	srv := ca.Server(t, "server")
	dir := t.TempDir()
	paths := ca.WriteFiles(t, dir, map[string]*Leaf{"server": srv})
	if len(paths) != 3 || paths["ca.crt"] != filepath.Join(dir, "ca.crt") || paths["server.crt"] != filepath.Join(dir, "server.crt") {
		t.Fatalf("paths %v", paths)
	}
	keyPEM, err := os.ReadFile(paths["server.key"])
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(paths["server.crt"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("written pair does not load: %v", err)
	}
	caPEM, _ := os.ReadFile(paths["ca.crt"])
	if blk, _ := pem.Decode(caPEM); blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("ca.crt is not a PEM certificate")
	}
	if fi, err := os.Stat(paths["server.key"]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}
