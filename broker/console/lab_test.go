package console_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/console"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// lab is an in-process broker as a browser meets it: the management API
// and the console behind one TLS listener on 127.0.0.1, routed as the
// product routes them (/api/ to the API, the rest to the console). Its
// certificate is issued by the broker's CA and names 127.0.0.1, so a
// browser that trusts the CA accepts it as it would the product's; the
// listener asks for an optional client certificate of that CA, as the
// product's does for certificate (smartcard) login.
//
// Everything reads the real clock: the browser checks certificates and
// cookie expiry against it, so a fixed date would be mixed with it.
type lab struct {
	t       testing.TB
	url     string // https://127.0.0.1:port
	ca      *pki.CA
	store   *store.Store
	broker  *broker.Broker
	api     *api.Server
	console *console.Console
	client  *http.Client // trusts the CA, presents no certificate
	// bootstrapPassword is the one-time password of "admin".
	bootstrapPassword string

	// With labOptions.licenses: the vendor's key and the installation
	// the product's license state is bound to.
	vendor       ed25519.PrivateKey
	installation string
}

type labOptions struct {
	// licenses runs the API with participant licenses (base 4) of a
	// vendor key the lab holds, so license files can be added.
	licenses bool
}

const (
	labPassword = "correct horse battery"
	labAdmin    = "root"
)

// newLab starts a fresh broker whose bootstrap is still pending.
func newLab(t testing.TB, opts labOptions) *lab {
	t.Helper()
	ctx := context.Background()
	l := &lab{t: t}
	st, err := store.OpenWith(filepath.Join(t.TempDir(), "broker.db"), store.Options{SecretKey: bytes.Repeat([]byte{0x5a}, store.SecretKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l.store = st
	snap, err := policy.Compile(&policy.Model{})
	if err != nil {
		t.Fatal(err)
	}
	// The broker's connects and disconnects go to the event log, as the
	// product's do.
	b, err := broker.New(broker.Config{Policy: snap, Pool: netip.MustParsePrefix("10.8.0.0/24"),
		Events: func(ev broker.Event) {
			_, _ = st.Append(ctx, store.Event{Kind: ev.Kind, Participant: ev.Participant, Message: ev.Message, Attrs: ev.Attrs})
		}})
	if err != nil {
		t.Fatal(err)
	}
	l.broker = b
	ca, err := pki.NewCA(pki.CAConfig{OnIssue: func(r pki.Record) error { return st.PutCertificate(ctx, r) }})
	if err != nil {
		t.Fatal(err)
	}
	l.ca = ca
	serverCert := l.issue(pki.Request{Profile: pki.ProfileServer, CommonName: "broker.plant.example",
		DNSNames: []string{"broker.plant.example"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})

	cfg := api.Config{
		Store: st, Broker: b, CA: ca, Verifier: &pki.Verifier{CA: ca},
		Profile:      l.renderProfile,
		PasswordCost: api.PasswordCost{Time: 1, MemoryKiB: 64, Threads: 1},
	}
	if opts.licenses {
		pub, priv, err := license.GenerateVendorKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		if l.installation, err = license.NewInstallationID(nil); err != nil {
			t.Fatal(err)
		}
		_, ikey, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		l.vendor = priv
		cfg.Licenses = license.NewState(&license.Verifier{Product: "remotegate", Keys: []ed25519.PublicKey{pub}}, l.installation, 7*24*time.Hour)
		cfg.InstallationKey = ikey
	}
	srv, err := api.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.api = srv
	if l.bootstrapPassword, _, err = srv.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	con, err := console.New(console.Config{API: srv, CA: ca.Certificate(),
		Addresses: []console.Address{
			{Name: "management (HTTPS)", Address: "https://127.0.0.1:8443/"},
			{Name: "OpenVPN UDP", Address: "0.0.0.0:1194"},
			{Name: "OpenVPN TCP", Address: "0.0.0.0:1194"},
			{Name: "IPsec (IKEv2)", Address: "0.0.0.0:500, 0.0.0.0:4500"},
		},
		MetricsURL: "http://127.0.0.1:9100/metrics"})
	if err != nil {
		t.Fatal(err)
	}
	l.console = con

	mux := http.NewServeMux()
	mux.Handle("/api/", srv)
	mux.Handle("/", con)
	hs := httptest.NewUnstartedServer(mux)
	hs.EnableHTTP2 = true
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	hs.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    roots,
		MinVersion:   tls.VersionTLS12,
	}
	// Browsers open spare connections and close them unused; their
	// handshake errors are noise here.
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	l.url = hs.URL
	l.client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		// Each answer as it is, so that a refusal is not hidden by a
		// redirect to the login page.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(l.client.CloseIdleConnections)
	return l
}

// issue has the broker's CA issue a certificate for a new key.
func (l *lab) issue(req pki.Request) tls.Certificate {
	l.t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		l.t.Fatal(err)
	}
	req.PublicKey = key.Public()
	cert, err := l.ca.Issue(req)
	if err != nil {
		l.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// renderProfile is the API's .ovpn renderer: a client profile with the
// CA, the participant's certificate and key inline.
func (l *lab) renderProfile(w io.Writer, name string, certPEM, keyPEM []byte) error {
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.ca.Certificate().Raw})
	_, err := fmt.Fprintf(w, "# remotegate profile of %s\nclient\ndev tun\nproto udp\nremote 127.0.0.1 1194\nremote-cert-tls server\n<ca>\n%s</ca>\n<cert>\n%s</cert>\n<key>\n%s</key>\n",
		name, caPEM, certPEM, keyPEM)
	return err
}

// ready names the administrator root through the API, as the bootstrap
// does, and returns root's API token.
func (l *lab) ready() string {
	l.t.Helper()
	tok := l.apiLogin(api.BootstrapAccount, l.bootstrapPassword)
	l.apiExpect(http.StatusCreated, "POST", "/api/v1/bootstrap", tok, map[string]string{"name": labAdmin, "password": labPassword})
	return l.apiLogin(labAdmin, labPassword)
}

// apiCall calls the API over HTTPS as a script would.
func (l *lab) apiCall(method, path, token string, body any) (int, []byte) {
	l.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			l.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, l.url+path, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		l.t.Fatal(err)
	}
	return resp.StatusCode, out
}

func (l *lab) apiExpect(want int, method, path, token string, body any) []byte {
	l.t.Helper()
	code, out := l.apiCall(method, path, token, body)
	if code != want {
		l.t.Fatalf("API %s %s: %d %s; want %d", method, path, code, out, want)
	}
	return out
}

// apiGet decodes the API's answer to a GET into out.
func (l *lab) apiGet(path, token string, out any) {
	l.t.Helper()
	if err := json.Unmarshal(l.apiExpect(http.StatusOK, "GET", path, token, nil), out); err != nil {
		l.t.Fatalf("API GET %s: %v", path, err)
	}
}

func (l *lab) apiLogin(name, password string) string {
	l.t.Helper()
	var tok struct{ Token string }
	if err := json.Unmarshal(l.apiExpect(http.StatusOK, "POST", "/api/v1/login", "", map[string]string{"name": name, "password": password}), &tok); err != nil {
		l.t.Fatal(err)
	}
	return tok.Token
}

// licenseFile is a license file of the lab's vendor for its installation.
func (l *lab) licenseFile(number string, participants int) []byte {
	l.t.Helper()
	if l.vendor == nil {
		l.t.Fatal("the lab runs without licenses")
	}
	file, err := license.Issue(l.vendor, license.License{
		Number: number, Product: "remotegate", Edition: "standard", Participants: participants,
		Issued: time.Now().AddDate(0, 0, -3), Installation: l.installation,
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return file
}
