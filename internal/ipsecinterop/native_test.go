package ipsecinterop

import (
	"crypto"
	"crypto/x509"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/internal/nativeclient"
	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/tunnel"
	"software.sslmate.com/src/go-pkcs12"
)

// nativePKI is the broker's PKI as the broker makes it: its CA, its IKE
// certificate (pki.ProfileServer, named by profile.ServerNames for the
// address its profiles give) and a user's certificate (pki.ProfileUser,
// named by profile.ClientNames).
type nativePKI struct {
	ca         *pki.CA
	server     *x509.Certificate
	serverKey  crypto.Signer
	user       *x509.Certificate
	userKey    crypto.Signer
	serverAddr string
}

const nativeUser = "engineer"

func newNativePKI(t *testing.T) *nativePKI {
	t.Helper()
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "remotegate broker CA"})
	if err != nil {
		t.Fatal(err)
	}
	p := &nativePKI{ca: ca, serverAddr: swaninterop.ResponderAddr.Addr().String()}
	dns, ips, err := profile.ServerNames(p.serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	if p.serverKey, err = pki.GenerateKey(pki.ECDSAP256); err != nil {
		t.Fatal(err)
	}
	if p.server, err = ca.Issue(pki.Request{Profile: pki.ProfileServer, CommonName: "remotegate broker", DNSNames: dns, IPAddresses: ips, PublicKey: p.serverKey.Public()}); err != nil {
		t.Fatal(err)
	}
	udns, email, err := profile.ClientNames(nativeUser)
	if err != nil {
		t.Fatal(err)
	}
	if p.userKey, err = pki.GenerateKey(pki.ECDSAP256); err != nil {
		t.Fatal(err)
	}
	if p.user, err = ca.Issue(pki.Request{Profile: pki.ProfileUser, CommonName: nativeUser, DNSNames: udns, EmailAddresses: email, PublicKey: p.userKey.Public()}); err != nil {
		t.Fatal(err)
	}
	return p
}

// brokerLike configures the Go responder as the broker configures its
// own: its IKE certificate, LocalID its subject (what clients that ask
// for no identity see), peers verified against the CA with the
// clientAuth usage, named by their certificate's common name.
func (p *nativePKI) brokerLike(cfg *ipsec.Config) {
	cfg.LocalID = ipsec.ID{Type: ipsec.IDDN, Value: p.server.RawSubject}
	cfg.Certificate = []*x509.Certificate{p.server}
	cfg.PrivateKey = p.serverKey
	cfg.CertificateAuthorities = []*x509.Certificate{p.ca.Certificate()}
	cfg.VerifyPeer = func(_ ipsec.ID, chain []*x509.Certificate) (tunnel.Identity, error) {
		v := &pki.Verifier{CA: p.ca}
		name, err := v.Verify(chain)
		return tunnel.Identity{Name: name}, err
	}
}

// install puts the identity of a native profile's PKCS#12 file and the CA
// into strongSwan's directories, as the client imports them.
func (p *nativePKI) install(t *testing.T, c *swaninterop.Charon, p12 []byte, password string) {
	t.Helper()
	key, cert, chain, err := pkcs12.DecodeChain(p12, password)
	if err != nil {
		t.Fatalf("the profile's PKCS#12 file: %v", err)
	}
	if len(chain) != 1 || !chain[0].Equal(p.ca.Certificate()) {
		t.Fatalf("the profile's PKCS#12 file has %d CA certificates", len(chain))
	}
	keyPEM, err := pki.MarshalPrivateKeyPEM(key.(crypto.Signer), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.AddFile(t, "x509ca/remotegate-ca.pem", pki.EncodeCertificatesPEM(p.ca.Certificate()))
	c.AddFile(t, "x509/user.pem", pki.EncodeCertificatesPEM(cert))
	c.AddFile(t, "private/user.pem", keyPEM)
}

// nativeConn is a client of the lab as a native client is one: it starts
// on port 500, asks for a virtual address and sends everything.
func nativeConn(l *swaninterop.Lab) swaninterop.Conn {
	c := l.InitiatorConn()
	c.LocalID, c.RemoteID, c.CertFile = "", "", "user.pem"
	c.RemoteTS = "0.0.0.0/0"
	c.SendCert = "always"
	return c
}

// Issue 16, point 7: a user with the IKEv2 client of Windows, macOS/iOS or
// Android connects with the profile the broker hands out, gets a virtual
// address and pings through. strongSwan plays each client with the
// proposals read back from the rendered profile (internal/nativeclient)
// and the identities the client sends: Windows its certificate's subject
// and no IDr; Apple its LocalIdentifier (the user's name, a host name
// identity its certificate names) and RemoteIdentifier (the broker's
// address) as IDr, and RFC 7427 signatures off; the strongSwan app its
// certificate's subject, the broker's address as IDr, and strongSwan's
// default proposals. The responder is configured like the broker's.
// Windows' default offer (MODP-1024 only) is refused with
// NO_PROPOSAL_CHOSEN.
func TestNativeClients(t *testing.T) {
	swaninterop.Require(t, "ping")
	const password = "password of the p12 file"
	type client struct {
		name     string
		conn     func(t *testing.T, l *swaninterop.Lab, p *nativePKI, c *swaninterop.Charon) swaninterop.Conn
		settings string
	}
	clients := []client{
		{name: "windows", conn: func(t *testing.T, l *swaninterop.Lab, p *nativePKI, c *swaninterop.Charon) swaninterop.Conn {
			script, err := profile.Windows{Name: nativeUser, ServerAddress: p.serverAddr, Cert: p.user, Key: p.userKey, CA: p.ca.Certificate(), Password: password}.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			w, err := nativeclient.ReadWindows(script)
			if err != nil {
				t.Fatal(err)
			}
			p.install(t, c, w.PKCS12, password)
			conn := nativeConn(l)
			conn.RemoteAddr = w.Server
			conn.Proposals, conn.ESPProposals = []string{w.IKE}, []string{w.ESP}
			return conn
		}},
		{name: "apple", settings: "signature_authentication = no", conn: func(t *testing.T, l *swaninterop.Lab, p *nativePKI, c *swaninterop.Charon) swaninterop.Conn {
			data, err := profile.Apple{Name: nativeUser, RemoteAddress: p.serverAddr, Cert: p.user, Key: p.userKey, CA: p.ca.Certificate(), Password: password}.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			a, err := nativeclient.ReadApple(data)
			if err != nil {
				t.Fatal(err)
			}
			p.install(t, c, a.PKCS12, password)
			conn := nativeConn(l)
			conn.RemoteAddr = a.RemoteAddress
			conn.LocalID, conn.RemoteID = a.LocalIdentifier, a.RemoteIdentifier
			conn.Proposals, conn.ESPProposals = []string{a.IKE}, []string{a.ESP}
			return conn
		}},
		{name: "android", conn: func(t *testing.T, l *swaninterop.Lab, p *nativePKI, c *swaninterop.Charon) swaninterop.Conn {
			p12, err := profile.PKCS12{Key: p.userKey, Cert: p.user, Chain: []*x509.Certificate{p.ca.Certificate()}, Password: password}.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			p.install(t, c, p12, password)
			conn := nativeConn(l)
			conn.RemoteID = p.serverAddr
			conn.Proposals, conn.ESPProposals = []string{"default"}, []string{"default"}
			return conn
		}},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
			p := newNativePKI(t)
			g, logTo := captureLog(t)
			r := startGoResponder(t, l, "", p.brokerLike, logTo)
			c := swaninterop.Start(t, l.I, swaninterop.Options{Settings: cl.settings})
			conn := cl.conn(t, l, p, c)
			c.Load(t, conn.String())
			if err := c.Initiate(t, swaninterop.ChildName); err != nil {
				t.Fatalf("the %s client could not connect: %v\ncharon log:\n%s", cl.name, err, c.Log())
			}
			select {
			case s := <-r.hub.ups:
				if s.Identity().Name != nativeUser {
					t.Fatalf("session of %q", s.Identity().Name)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no session came up")
			}
			sas := c.ListSAs(t)
			if !strings.Contains(sas, swaninterop.FirstVIP.String()) {
				t.Fatalf("no virtual address %s:\n%s", swaninterop.FirstVIP, sas)
			}
			if got := l.I.Ping(t, l.Target(), 3); got != 3 {
				t.Fatalf("%d of 3 pings through the tunnel answered\n%s", got, sas)
			}
			esp := conn.ESPProposals[0]
			if !strings.Contains(esp, "-") || esp == "default" {
				return
			}
			// The profile's PFS group is used when the child SA is rekeyed:
			// the new child's keys come from a key exchange in it.
			rekeyed := countLog(c.Log(), `closing CHILD_SA `+swaninterop.ChildName+`\{`)
			if out, err := c.Swanctl(15*time.Second, "--rekey", "--child", swaninterop.ChildName); err != nil {
				t.Fatalf("rekey: %v\n%s", err, out)
			}
			waitCharonLog(t, c, `closing CHILD_SA `+swaninterop.ChildName+`\{`, rekeyed+1, 10*time.Second)
			if got := l.I.Ping(t, l.Target(), 3); got != 3 {
				t.Fatalf("after the child rekey %d of 3 pings answered\n%s", got, c.ListSAs(t))
			}
			if g.count(`proposal=`+regexp.QuoteMeta(esp)+`$`) == 0 {
				t.Errorf("no child SA with %s after the rekey", esp)
			}
		})
	}

	t.Run("windows-defaults-refused", func(t *testing.T) {
		l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
		p := newNativePKI(t)
		startGoResponder(t, l, "", p.brokerLike)
		c := swaninterop.Start(t, l.I, swaninterop.Options{})
		p12, err := profile.PKCS12{Key: p.userKey, Cert: p.user, Chain: []*x509.Certificate{p.ca.Certificate()}, Password: password}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p.install(t, c, p12, password)
		conn := nativeConn(l)
		// Windows 10 and 11 without Set-VpnConnectionIPsecConfiguration.
		conn.Proposals = []string{"3des-aes128-aes192-aes256-sha1-sha256-sha384-modp1024"}
		conn.ESPProposals = []string{"aes256-aes128-3des-sha1"}
		c.Load(t, conn.String())
		start := time.Now()
		err = c.Initiate(t, swaninterop.ChildName)
		if err == nil {
			t.Fatal("the broken Windows defaults were accepted")
		}
		if !strings.Contains(c.Log(), "received NO_PROPOSAL_CHOSEN notify error") {
			t.Fatalf("refused with %v, not NO_PROPOSAL_CHOSEN:\n%s", err, c.Log())
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the refusal took %v", d)
		}
	})
}
