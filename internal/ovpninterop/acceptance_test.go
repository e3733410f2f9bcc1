package ovpninterop

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"encoding/pem"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/testpki"
	"golang.org/x/crypto/bcrypt"
)

// TestClientToClient: two stock clients reach each other through
// examples/ovpn-server with client-to-client (relayed in userspace).
func TestClientToClient(t *testing.T) {
	netns.Require(t, "openvpn", "ping")
	binaries(t)
	files := lab(t)
	srv := netns.New(t, "rgs")
	c1 := netns.New(t, "rgc")
	c2 := netns.New(t, "rgc")
	netns.Link(t, srv, netip.MustParsePrefix("10.99.0.1/24"), c1, netip.MustParsePrefix("10.99.0.2/24"))
	netns.Link(t, srv, netip.MustParsePrefix("10.99.1.1/24"), c2, netip.MustParsePrefix("10.99.1.2/24"))
	o := Options{Proto: "udp", Protection: "tls-crypt", Cipher: "AES-256-GCM", Port: 1194, Extra: []string{"client-to-client"}}
	sconf := WriteFile(t, t.TempDir(), "server.conf", ServerConfig(o, files))
	s := srv.Start(t, serverBin, "-config", sconf)
	s.WaitLog(t, "listening", 10*time.Second)
	o1, o2 := o, o
	o1.ServerAddr, o2.ServerAddr = "10.99.0.1", "10.99.1.1"
	o1.Extra, o2.Extra = nil, nil
	p1 := c1.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "c1.ovpn", ClientConfig(t, o1, files, "client1")))
	p1.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	p2 := c2.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "c2.ovpn", ClientConfig(t, o2, files, "client2")))
	p2.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	a1 := tunnelAddr(t, p1.Log())
	a2 := tunnelAddr(t, p2.Log())
	if got := ping(t, c1, a2, 5); got != 5 {
		t.Fatalf("client1 -> client2 (%v): %d of 5 answered", a2, got)
	}
	if got := ping(t, c2, a1, 5); got != 5 {
		t.Fatalf("client2 -> client1 (%v): %d of 5 answered", a1, got)
	}
}

// tunnelAddr finds the address a stock client put on its TUN device.
func tunnelAddr(t *testing.T, log string) netip.Addr {
	t.Helper()
	m := regexp.MustCompile(`net_addr_v4_add: ([0-9.]+)/`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no tunnel address in the client log")
	}
	return netip.MustParseAddr(m[1])
}

// TestRenegotiationUnderLoad: renegotiation every 10 s, set on the server
// and then on the client, during a 30 s iperf3 run: no gap in the
// traffic for more than 1 s, and no decryption or replay errors on either side.
func TestRenegotiationUnderLoad(t *testing.T) {
	netns.Require(t, "openvpn", "iperf3", "ping")
	binaries(t)
	files := lab(t)
	for _, side := range []string{"server", "client"} {
		t.Run(side, func(t *testing.T) {
			srv, cli := topology(t)
			o := Options{Proto: "udp", Protection: "tls-crypt", Cipher: "AES-256-GCM", ServerAddr: serverAddr.String(), Port: 1194}
			so, co := o, o
			if side == "server" {
				so.RenegSec = 10
			} else {
				co.RenegSec = 10
			}
			s := srv.Start(t, serverBin, "-v", "-config", WriteFile(t, t.TempDir(), "server.conf", ServerConfig(so, files)))
			s.WaitLog(t, "listening", 10*time.Second)
			c := cli.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "client.ovpn", ClientConfig(t, co, files, "client1")))
			c.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
			res := iperf3(t, cli, srv, tunnelGateway, 30*time.Second)
			if d := res.duration(); d < 29*time.Second {
				t.Fatalf("iperf3 intervals cover %v of a 30 s run", d)
			}
			if gap := res.longestGap(); gap > time.Second {
				t.Errorf("traffic stopped for %v during renegotiation, want at most 1 s", gap)
			} else {
				t.Logf("longest gap in traffic: %v", gap)
			}
			clog := c.Log()
			if n := strings.Count(clog, "Control Channel: TLS"); n < 3 {
				t.Errorf("the client saw %d TLS handshakes in 30 s with reneg-sec 10, want >= 3", n)
			}
			for _, bad := range []string{"AEAD Decrypt error", "bad packet ID", "replay", "Authenticate/Decrypt packet error", "key IDs out of sync"} {
				if strings.Contains(clog, bad) {
					t.Errorf("client log contains %q", bad)
				}
			}
			t.Logf("iperf3 %.0f Mbit/s with renegotiation every 10 s", res.BitsPerSecond/1e6)
		})
	}
}

// TestRefusals: a revoked certificate gets a TLS alert and no tunnel; a
// wrong password gets AUTH_FAILED; a wrong tls-crypt key gets no answer at
// all.
func TestRefusals(t *testing.T) {
	netns.Require(t, "openvpn", "tcpdump")
	binaries(t)
	files := lab(t)
	dir := files["dir"]

	t.Run("revoked certificate", func(t *testing.T) {
		ca := testpki.New(t, "revoking CA")
		paths := ca.WriteFiles(t, t.TempDir(), map[string]*testpki.Leaf{
			"server": ca.Server(t, "server"), "client1": ca.Client(t, "client1"), "client2": ca.Client(t, "client2"),
		})
		f := Files(paths)
		f["tc.key"] = files["tc.key"]
		c2, _ := os.ReadFile(paths["client2.crt"])
		b, _ := pem.Decode(c2)
		cert, _ := x509.ParseCertificate(b.Bytes)
		crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(time.Hour),
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: cert.SerialNumber, RevocationTime: time.Now()}},
		}, ca.Cert, ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		crlPath := WriteFile(t, t.TempDir(), "crl.pem", string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl})))
		srv, cli := topology(t)
		o := Options{Proto: "udp", Protection: "tls-crypt", Cipher: "AES-256-GCM", ServerAddr: serverAddr.String(), Port: 1194}
		so := o
		so.Extra = []string{"crl-verify " + crlPath}
		s := srv.Start(t, serverBin, "-config", WriteFile(t, t.TempDir(), "server.conf", ServerConfig(so, f)))
		s.WaitLog(t, "listening", 10*time.Second)
		c := cli.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "c2.ovpn", ClientConfig(t, o, f, "client2")))
		c.WaitLog(t, `TLS Error|alert|AUTH_FAILED`, openvpnTimeout)
		if strings.Contains(c.Log(), "Initialization Sequence Completed") {
			t.Fatal("a revoked client got a tunnel")
		}
		// The server logs the reason once the alert is out (it waits for
		// the client to acknowledge it first): wait for the line.
		s.WaitLog(t, "certificate revoked", 10*time.Second)
		// The unrevoked client still connects.
		_ = c.Stop()
		c1 := cli.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "c1.ovpn", ClientConfig(t, o, f, "client1")))
		c1.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	})

	t.Run("wrong password", func(t *testing.T) {
		hash, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
		users := WriteFile(t, t.TempDir(), "users", "alice:"+string(hash)+"\n")
		srv, cli := topology(t)
		o := Options{Proto: "udp", Protection: "tls-crypt", Cipher: "AES-256-GCM", ServerAddr: serverAddr.String(), Port: 1194}
		s := srv.Start(t, serverBin, "-users", users, "-config", WriteFile(t, t.TempDir(), "server.conf", ServerConfig(o, files)))
		s.WaitLog(t, "listening", 10*time.Second)
		for _, pw := range []string{"wrong", "right"} {
			co := o
			co.Extra = []string{"auth-user-pass " + WriteFile(t, t.TempDir(), "pass", "alice\n"+pw+"\n")}
			c := cli.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "c.ovpn", ClientConfig(t, co, files, "client1")))
			if pw == "wrong" {
				c.WaitLog(t, "AUTH_FAILED", openvpnTimeout)
				if strings.Contains(c.Log(), "Initialization Sequence Completed") {
					t.Fatal("wrong password got a tunnel")
				}
				_ = c.Stop()
			} else {
				c.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
			}
		}
	})

	t.Run("wrong tls-crypt key gets no answer", func(t *testing.T) {
		other := GenKey(t, dir, "tls-crypt", "other-tc.key")
		srv, cli := topology(t)
		o := Options{Proto: "udp", Protection: "tls-crypt", Cipher: "AES-256-GCM", ServerAddr: serverAddr.String(), Port: 1194}
		s := srv.Start(t, serverBin, "-config", WriteFile(t, t.TempDir(), "server.conf", ServerConfig(o, files)))
		s.WaitLog(t, "listening", 10*time.Second)
		pcap := filepath.Join(t.TempDir(), "answers.pcap")
		dump := cli.Start(t, "tcpdump", "-i", "any", "-n", "-U", "-w", pcap, "udp and src host "+serverAddr.String())
		time.Sleep(time.Second)
		fo := Files{}
		for k, v := range files {
			fo[k] = v
		}
		fo["tc.key"] = other
		c := cli.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "c.ovpn", ClientConfig(t, o, fo, "client1")))
		time.Sleep(6 * time.Second) // the client sends its reset at 0, 2 and 4 s
		_ = c.Stop()
		_ = dump.Stop()
		out, _ := cli.RunErr(10*time.Second, "tcpdump", "-n", "-r", pcap)
		if !strings.Contains(out, "reading from file") {
			t.Fatalf("tcpdump could not read its capture:\n%s", out)
		}
		if n := strings.Count(out, " IP "); n != 0 {
			t.Fatalf("the server sent %d packets to a client with the wrong key:\n%s", n, out)
		}
		if !strings.Contains(c.Log(), "UDPv4 link remote") {
			t.Fatalf("the client did not even start:\n%s", c.Log())
		}
	})
}

// TestCompressionFramingInterop: configs that carry a compress or comp-lzo
// directive (common in deployed client profiles) work against the other
// implementation when both sides have it, and when the server pushes it.
// Pings cross in both directions of the pairing.
func TestCompressionFramingInterop(t *testing.T) {
	netns.Require(t, "openvpn", "ping")
	binaries(t)
	files := lab(t)
	ourServer := peer{[]string{serverBin, "-config"}, "listening"}
	ourClient := peer{[]string{clientBin, "-config"}, "tunnel up"}
	for _, tc := range []struct {
		name                  string
		serverExtra, cliExtra []string
		server, client        peer
	}{
		{"stock client/comp-lzo no", []string{"comp-lzo no"}, []string{"comp-lzo no"}, ourServer, stockClient},
		{"stock client/compress", []string{"compress"}, []string{"compress"}, ourServer, stockClient},
		{"stock client/compress stub-v2", []string{"compress stub-v2"}, []string{"compress stub-v2"}, ourServer, stockClient},
		{"our client/pushed compress", []string{"compress", `push "compress"`}, nil, stockServer, ourClient},
		{"our client/comp-lzo no", []string{"comp-lzo no"}, []string{"comp-lzo no"}, stockServer, ourClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Proto: "udp", Protection: "tls-crypt", Cipher: "AES-256-GCM", ServerAddr: serverAddr.String(), Port: 1194}
			srv, cli := topology(t)
			so, co := o, o
			so.Extra, co.Extra = tc.serverExtra, tc.cliExtra
			sconf := WriteFile(t, t.TempDir(), "server.conf", ServerConfig(so, files))
			cconf := WriteFile(t, t.TempDir(), "client.ovpn", ClientConfig(t, co, files, "client1"))
			s := srv.Start(t, tc.server.args[0], append(tc.server.args[1:], sconf)...)
			s.WaitLog(t, tc.server.ready, openvpnTimeout)
			c := cli.Start(t, tc.client.args[0], append(tc.client.args[1:], cconf)...)
			c.WaitLog(t, tc.client.ready, openvpnTimeout)
			if got := ping(t, cli, tunnelGateway, 3); got != 3 {
				t.Fatalf("%d of 3 pings through the tunnel answered", got)
			}
			for _, p := range []*netns.Process{s, c} {
				if strings.Contains(p.Log(), "Bad compression stub") || strings.Contains(p.Log(), "decompression") {
					t.Fatalf("framing error in a log:\n%s", p.Log())
				}
			}
		})
	}
}
