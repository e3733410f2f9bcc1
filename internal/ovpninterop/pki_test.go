package ovpninterop

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/pki"
)

// pkiLab issues the certificates of one test with package pki: a server,
// a device and two users, one of whom is revoked; the CRL comes from the
// CA. Keys are written as PKCS#8.
func pkiLab(t *testing.T) Files {
	t.Helper()
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "Plant Access CA"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := Files{"dir": dir, "ca.crt": WriteFile(t, dir, "ca.crt", string(pki.EncodeCertificatesPEM(ca.Certificate())))}
	for _, p := range []struct {
		name    string
		profile pki.Profile
	}{{"server", pki.ProfileServer}, {"plant7-gw", pki.ProfileDevice}, {"bob", pki.ProfileUser}, {"mallory", pki.ProfileUser}} {
		key, err := pki.GenerateKey(pki.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ca.Issue(pki.Request{Profile: p.profile, CommonName: p.name, PublicKey: key.Public()})
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		files[p.name+".crt"] = WriteFile(t, dir, p.name+".crt", string(pki.EncodeCertificatesPEM(cert)))
		files[p.name+".key"] = WriteFile(t, dir, p.name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
		if p.name == "mallory" {
			if err := ca.Revoke(cert.SerialNumber, pki.ReasonPrivilegeWithdrawn); err != nil {
				t.Fatal(err)
			}
		}
	}
	crl, err := ca.CRLPEM()
	if err != nil {
		t.Fatal(err)
	}
	files["crl.pem"] = WriteFile(t, dir, "crl.pem", string(crl))
	files["tc.key"] = GenKey(t, dir, "tls-crypt", "tc.key")
	return files
}

// TestPKICertificatesInterop: certificates from package pki work with
// stock openvpn on both sides (stock server checks remote-cert-tls client,
// stock clients check remote-cert-tls server), with our server and client,
// and a revoked user is refused by our server reading the CA's CRL.
func TestPKICertificatesInterop(t *testing.T) {
	netns.Require(t, "openvpn", "ping")
	binaries(t)
	files := pkiLab(t)
	o := Options{Proto: "udp", Protection: "tls-crypt", Cipher: "AES-256-GCM", ServerAddr: serverAddr.String(), Port: 1194}
	so := o
	so.Extra = []string{"remote-cert-tls client", "crl-verify " + files["crl.pem"]}
	start := func(t *testing.T, server, client peer, name string) (*netns.Process, *netns.Process, *netns.NS) {
		srv, cli := topology(t)
		s := srv.Start(t, server.args[0], append(server.args[1:], WriteFile(t, t.TempDir(), "server.conf", ServerConfig(so, files)))...)
		s.WaitLog(t, server.ready, openvpnTimeout)
		c := cli.Start(t, client.args[0], append(client.args[1:], WriteFile(t, t.TempDir(), "c.ovpn", ClientConfig(t, o, files, name)))...)
		return s, c, cli
	}
	ourServer := peer{[]string{serverBin, "-config"}, "listening"}
	ourClient := peer{[]string{clientBin, "-config"}, "tunnel up"}
	for _, c := range []struct {
		name           string
		server, client peer
		who            string
	}{
		{"stock server, stock device", stockServer, stockClient, "plant7-gw"},
		{"stock server, our device", stockServer, ourClient, "plant7-gw"},
		{"our server, stock user", ourServer, stockClient, "bob"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, cl, cli := start(t, c.server, c.client, c.who)
			cl.WaitLog(t, c.client.ready, openvpnTimeout)
			if got := ping(t, cli, tunnelGateway, 3); got != 3 {
				t.Fatalf("%d of 3 pings answered", got)
			}
		})
	}
	t.Run("our server refuses a revoked user", func(t *testing.T) {
		s, cl, _ := start(t, ourServer, stockClient, "mallory")
		cl.WaitLog(t, `TLS Error|alert|AUTH_FAILED`, openvpnTimeout)
		// The server logs the reason once the alert is out (it waits for
		// the client to acknowledge it first): wait for the line.
		s.WaitLog(t, "certificate revoked", 10*time.Second)
		if strings.Contains(cl.Log(), "Initialization Sequence Completed") {
			t.Fatal("a revoked user got a tunnel")
		}
	})
}
