package app

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/store"
)

// apiLab serves the management API's TLS (with a stand-in handler) on
// loopback with the broker's keys.
type apiLab struct {
	t    *testing.T
	st   *store.Store
	k    *keys
	addr string
}

func newAPILab(t *testing.T) *apiLab {
	t.Helper()
	st, _, err := openStore(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, err := openKeys(context.Background(), st, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &apiLab{t: t, st: st, k: k}
}

// serve loads the API certificate for -api apiAddr and the -api-name
// names, and serves on a loopback port whatever apiAddr says.
func (l *apiLab) serve(apiAddr string, names ...string) {
	l.t.Helper()
	if err := l.k.loadAPICert(context.Background(), apiAddr, names, slog.New(slog.DiscardHandler)); err != nil {
		l.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.t.Fatal(err)
	}
	hs := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }), l.k.apiTLS(), slog.New(slog.DiscardHandler))
	lln, err := limitHTTP(hs, ln, apiConnLimits, slog.New(slog.DiscardHandler))
	if err != nil {
		l.t.Fatal(err)
	}
	go func() { _ = hs.ServeTLS(lln, "", "") }()
	l.t.Cleanup(func() { hs.Close() })
	l.addr = ln.Addr().String()
}

// handshake connects as a client that trusts the broker's CA and expects
// the server under name; adjust changes the client's TLS settings.
func (l *apiLab) handshake(name string, adjust func(*tls.Config)) (*tls.ConnectionState, error) {
	cfg := &tls.Config{RootCAs: l.k.roots(), ServerName: name}
	if adjust != nil {
		adjust(cfg)
	}
	c, err := tls.Dial("tcp", l.addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cs := c.ConnectionState()
	return &cs, nil
}

// The API's certificate names the address -api exposes it on and every
// -api-name, so that clients verify it there; a stored certificate that
// lacks a configured name is issued again, one that has them all is kept.
func TestAPICertificateNamesTheConfiguredAddresses(t *testing.T) {
	l := newAPILab(t)
	l.serve("127.0.0.1:8443")
	if _, err := l.handshake("10.1.2.3", nil); err == nil {
		t.Fatal("the local-only certificate verified for 10.1.2.3")
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := l.handshake(name, nil); err != nil {
			t.Errorf("the default certificate does not verify for %s: %v", name, err)
		}
	}
	first := l.k.api.Leaf.SerialNumber

	l.serve("10.1.2.3:8443", "broker.example", "192.0.2.7", "Plant-Gateway.Example.")
	for _, name := range []string{"10.1.2.3", "broker.example", "192.0.2.7", "plant-gateway.example", "localhost", "127.0.0.1"} {
		if _, err := l.handshake(name, nil); err != nil {
			t.Errorf("the certificate for -api 10.1.2.3:8443 does not verify for %s: %v", name, err)
		}
	}
	if _, err := l.handshake("other.example", nil); err == nil || !strings.Contains(err.Error(), "other.example") {
		t.Errorf("a name not configured verified: %v", err)
	}
	second := l.k.api.Leaf.SerialNumber
	if second.Cmp(first) == 0 {
		t.Fatal("the certificate was not issued again for the new names")
	}

	// The next start with the same names (or fewer) keeps it.
	l.serve("0.0.0.0:8443", "10.1.2.3", "broker.example")
	if got := l.k.api.Leaf.SerialNumber; got.Cmp(second) != 0 {
		t.Fatalf("a certificate that carries every configured name was replaced (serial %v, was %v)", got, second)
	}
	if _, err := l.handshake("192.0.2.7", nil); err != nil {
		t.Errorf("the kept certificate does not verify for 192.0.2.7: %v", err)
	}
}

func TestAPICertNamesRefusesBadNames(t *testing.T) {
	for _, c := range []struct {
		api   string
		names []string
		want  string
	}{
		{"8443", nil, `API address "8443"`},
		{"127.0.0.1:8443", []string{"*.example"}, `API name "*.example": not an IP address or a DNS name`},
		{"127.0.0.1:8443", []string{"a b"}, `API name "a b": not an IP address or a DNS name`},
		{"127.0.0.1:8443", []string{""}, `API name "": not an IP address or a DNS name`},
		{"127.0.0.1:8443", []string{"-x.example"}, `not an IP address or a DNS name`},
		{"127.0.0.1:8443", []string{"fe80::1%eth0"}, `an address with a zone cannot be in a certificate`},
	} {
		if _, _, err := apiCertNames(c.api, c.names); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("-api %s -api-name %q: %v; want an error saying %q", c.api, c.names, err, c.want)
		}
	}
}

// The API's TLS 1.2 takes AEAD suites only: a client offering nothing but
// CBC suites fails the handshake.
func TestAPIRefusesCBCSuites(t *testing.T) {
	l := newAPILab(t)
	l.serve("127.0.0.1:8443")
	_, err := l.handshake("localhost", func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
			tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		}
	})
	if err == nil || !strings.Contains(err.Error(), "handshake failure") {
		t.Fatalf("TLS 1.2 with CBC suites only: %v; want a handshake failure", err)
	}
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		cs, err := l.handshake("localhost", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{suite}
		})
		if err != nil || cs.CipherSuite != suite {
			t.Errorf("TLS 1.2 with %s: %v", tls.CipherSuiteName(suite), err)
		}
	}
	if cs, err := l.handshake("localhost", nil); err != nil || cs.Version != tls.VersionTLS13 {
		t.Errorf("a default client: %v, %+v; want TLS 1.3", err, cs)
	}
}
