package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// clockSkews are the offsets from the real clock at which
// TestScenariosOnASkewedClock runs the API: whatever decides by the real
// clock instead of Config.Now fails at one of them.
var clockSkews = []struct {
	name string
	d    time.Duration
}{
	{"two-years-behind", -2 * 365 * 24 * time.Hour},
	{"two-years-ahead", 2 * 365 * 24 * time.Hour},
}

// clock is a settable time source. Tests start it from the real clock
// (shifted, for the skew tests), never at a fixed date: the store, the CA
// and the broker all run on it, so no fixed date meets time.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	srv   *Server
	http  *httptest.Server
	store *store.Store
	b     *broker.Broker
	ca    *pki.CA
	clock *clock
	// start is where the clock began: the real time, shifted by the
	// test's skew, to the second.
	start time.Time
	// dbPath is the store's database file.
	dbPath string
}

const testPassword = "correct horse battery"

// newEnv starts the API on a fresh store with an administrator "root"
// (password testPassword) and a user "nobody" without rights.
func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with the server's Config adjusted by adjust.
func newEnvWith(t *testing.T, adjust func(*Config)) *env {
	t.Helper()
	return newEnvAt(t, 0, adjust)
}

// newEnvAt is newEnvWith on a clock that starts skew away from the real
// one; the store, the broker, the CA and the API all read that clock.
func newEnvAt(t *testing.T, skew time.Duration, adjust func(*Config)) *env {
	t.Helper()
	return newEnvHooked(t, skew, adjust, nil)
}

// newEnvHooked is newEnvAt with hook called on the server before it serves
// its first request (to replace its internals for a test).
func newEnvHooked(t *testing.T, skew time.Duration, adjust func(*Config), hook func(*Server)) *env {
	t.Helper()
	start := time.Now().Add(skew).UTC().Truncate(time.Second)
	clk := &clock{t: start}
	dbPath := filepath.Join(t.TempDir(), "broker.db")
	st, err := store.OpenWith(dbPath, store.Options{Now: clk.now, SecretKey: bytes.Repeat([]byte{0x3c}, store.SecretKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.Update(ctx, func(c *store.Config) error {
		c.Model.Users = []policy.User{{Name: "root", Roles: []string{policy.RoleAdmin}}, {Name: "nobody"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	snap, err := policy.Compile(&policy.Model{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Policy: snap, Pool: netip.MustParsePrefix("10.8.0.0/24"), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(pki.CAConfig{Now: clk.now, OnIssue: func(r pki.Record) error { return st.PutCertificate(ctx, r) }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Store: st, Broker: b, CA: ca, Verifier: &pki.Verifier{CA: ca},
		Profile: func(w io.Writer, name string, certPEM, keyPEM []byte) error {
			_, err := fmt.Fprintf(w, "client\n# %s\n<cert>\n%s</cert>\n<key>\n%s</key>\n", name, certPEM, keyPEM)
			return err
		},
		PasswordCost: PasswordCost{Time: 1, MemoryKiB: 64, Threads: 1},
		Now:          clk.now,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root", "nobody"} {
		if err := srv.setAccountPassword(ctx, name, testPassword, false); err != nil {
			t.Fatal(err)
		}
	}
	if hook != nil {
		hook(srv)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, http: hs, store: st, b: b, ca: ca, clock: clk, start: start, dbPath: dbPath}
}

// call makes a request with an optional bearer token and JSON body, and
// returns the status and the body.
func (e *env) call(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (e *env) login(name, password string) (string, int) {
	e.t.Helper()
	code, body := e.call("POST", "/api/v1/login", "", map[string]string{"name": name, "password": password})
	if code != http.StatusOK {
		return "", code
	}
	var r tokenResponse
	if err := json.Unmarshal(body, &r); err != nil {
		e.t.Fatal(err)
	}
	return r.Token, code
}

func (e *env) mustLogin(name string) string {
	e.t.Helper()
	return e.mustLoginWith(name, testPassword)
}

func (e *env) mustLoginWith(name, password string) string {
	e.t.Helper()
	tok, code := e.login(name, password)
	if code != http.StatusOK {
		e.t.Fatalf("login %s: %d", name, code)
	}
	return tok
}

// expect fails unless the call returns want.
func (e *env) expect(want int, method, path, token string, body any) []byte {
	e.t.Helper()
	code, out := e.call(method, path, token, body)
	if code != want {
		e.t.Fatalf("%s %s: %d %s; want %d", method, path, code, out, want)
	}
	return out
}

// Every protected endpoint of the OpenAPI document answers 401 without a
// token and 403 to an account that lacks its right; the walk covers the
// document, and TestOpenAPIDocumentsEveryRoute ties the document to the
// routes the server registers.
func TestEveryProtectedEndpointChecksItsRight(t *testing.T) {
	e := newEnv(t)
	nobody := e.mustLogin("nobody")
	var doc struct {
		Paths map[string]map[string]struct {
			Right string `json:"x-remotegate-right"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for path, ops := range doc.Paths {
		concrete := strings.NewReplacer("{name}", "root", "{serial}", "1", "{participant}", "root").Replace(path)
		for method, op := range ops {
			method = strings.ToUpper(method)
			if op.Right == "public" {
				continue
			}
			if code, body := e.call(method, concrete, "", "{}"); code != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: %d %s; want 401", method, path, code, body)
			}
			if code, _ := e.call(method, concrete, "not-a-token", "{}"); code != http.StatusUnauthorized {
				t.Errorf("%s %s with a bad token: %d; want 401", method, path, code)
			}
			if op.Right == "none" {
				continue
			}
			if code, body := e.call(method, concrete, nobody, "{}"); code != http.StatusForbidden {
				t.Errorf("%s %s as a user without %s: %d %s; want 403", method, path, op.Right, code, body)
			}
			checked++
		}
	}
	if checked < 40 {
		t.Fatalf("walked only %d protected operations", checked)
	}
	// And the administrator gets past the check on a few of them.
	root := e.mustLogin("root")
	e.expect(http.StatusOK, "GET", "/api/v1/users", root, nil)
	e.expect(http.StatusOK, "GET", "/api/v1/sessions", root, nil)
	e.expect(http.StatusOK, "GET", "/api/v1/openapi.json", "", nil)
}

func TestBootstrapAdministratorWorksExactlyOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	password, state, err := e.srv.Bootstrap(ctx)
	if err != nil || password == "" || state != "pending" {
		t.Fatalf("Bootstrap() = %q, %q, %v", password, state, err)
	}
	if again, state, _ := e.srv.Bootstrap(ctx); again != "" || state != "pending" {
		t.Fatalf("second Bootstrap() = %q, %q; want no password, pending", again, state)
	}
	code, body := e.call("POST", "/api/v1/login", "", map[string]string{"name": "admin", "password": password})
	if code != http.StatusOK || !strings.Contains(string(body), `"must_change": true`) {
		t.Fatalf("bootstrap login: %d %s", code, body)
	}
	var tok tokenResponse
	_ = json.Unmarshal(body, &tok)
	e.expect(http.StatusForbidden, "GET", "/api/v1/users", tok.Token, nil)
	e.expect(http.StatusBadRequest, "POST", "/api/v1/bootstrap", tok.Token, map[string]string{"name": "alice", "password": "short"})
	e.expect(http.StatusCreated, "POST", "/api/v1/bootstrap", tok.Token, map[string]string{"name": "alice", "password": "alice's long password"})
	if _, code := e.login("admin", password); code != http.StatusUnauthorized {
		t.Fatalf("the bootstrap administrator logged in again: %d", code)
	}
	e.expect(http.StatusUnauthorized, "GET", "/api/v1/users", tok.Token, nil)
	alice, code := e.login("alice", "alice's long password")
	if code != http.StatusOK {
		t.Fatalf("alice: %d", code)
	}
	body = e.expect(http.StatusOK, "GET", "/api/v1/users/alice", alice, nil)
	if !strings.Contains(string(body), `"admin"`) {
		t.Fatalf("alice is not an administrator: %s", body)
	}
	if _, state, _ := e.srv.Bootstrap(ctx); state != "done" {
		t.Fatalf("after the bootstrap, state %q", state)
	}
	// alice cannot bootstrap again.
	e.expect(http.StatusForbidden, "POST", "/api/v1/bootstrap", alice, map[string]string{"name": "eve", "password": "eve's long password"})
}

func TestWrongPasswordsAreRateLimited(t *testing.T) { testWrongPasswordsAreRateLimited(t, 0) }

// testWrongPasswordsAreRateLimited: five wrong passwords from one address
// block that address, for every name, for the window; the name they were
// tried on is slowed down everywhere else, not locked: its right password
// logs in from another address a NameInterval after the last guess.
func testWrongPasswordsAreRateLimited(t *testing.T, skew time.Duration) {
	e := newEnvAt(t, skew, nil)
	const guesser, user = "127.0.0.2", "127.0.0.3"
	for i := 0; i < 5; i++ {
		if code, _, body := e.loginFrom(guesser, "root", "wrong password"); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d %s", i, code, body)
		}
	}
	e.expectLoginFrom(guesser, "root", testPassword, http.StatusTooManyRequests, "900")
	// The address is blocked, not just the name.
	e.expectLoginFrom(guesser, "nobody", testPassword, http.StatusTooManyRequests, "900")
	// From another address, root waits for the spacing of its name, a
	// minute after the last guess, and is then let in; other names are
	// not slowed at all.
	e.expectLoginFrom(user, "root", testPassword, http.StatusTooManyRequests, "60")
	e.expectLoginFrom(user, "nobody", testPassword, http.StatusOK, "")
	e.clock.add(time.Minute)
	e.expectLoginFrom(user, "root", testPassword, http.StatusOK, "")
	// The guesser's address stays blocked to the end of its window.
	e.expectLoginFrom(guesser, "root", testPassword, http.StatusTooManyRequests, "840")
	e.clock.add(14 * time.Minute)
	e.expectLoginFrom(guesser, "root", testPassword, http.StatusOK, "")
	events, err := e.store.Events(context.Background(), store.EventFilter{Kind: "auth_failure"})
	if err != nil || len(events) != 5 || events[0].Participant != "root" {
		t.Fatalf("auth_failure events: %d, %v", len(events), err)
	}
}

func TestConfigurationChangesApplyAndPersist(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "plant1"})
	e.expect(http.StatusConflict, "POST", "/api/v1/groups", root, map[string]any{"name": "plant1"})
	e.expect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "engineers"})
	e.expect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{
		"name": "gw1", "groups": []string{"plant1"},
		"networks": []map[string]string{{"lan": "192.168.0.0/24", "alias": "10.200.1.0/24"}}})
	// The same alias twice is a route conflict, refused before it is stored.
	code, body := e.call("POST", "/api/v1/devices", root, map[string]any{
		"name": "gw2", "networks": []map[string]string{{"lan": "192.168.0.0/24", "alias": "10.200.1.0/24"}}})
	if code != http.StatusBadRequest || !strings.Contains(string(body), "overlap") {
		t.Fatalf("conflicting alias: %d %s", code, body)
	}
	e.expect(http.StatusNotFound, "GET", "/api/v1/devices/gw2", root, nil)
	// A relation to a group that does not exist is refused.
	e.expect(http.StatusBadRequest, "POST", "/api/v1/relations", root, map[string]any{
		"name": "bad", "from": "engineers", "to": "nowhere", "direction": "one-way"})
	e.expect(http.StatusCreated, "POST", "/api/v1/relations", root, map[string]any{
		"name": "eng-plant1", "from": "engineers", "to": "plant1", "direction": "one-way", "services": []string{"tcp", "icmp"}})
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{
		"name": "u1", "roles": []string{"vpn_user"}, "groups": []string{"engineers"}, "password": "u1's long password"})

	// The broker runs with it: u1 is admitted and routed to the alias.
	asg, err := e.b.Admit(context.Background(), identity("u1"), netip.AddrPort{})
	if err != nil || len(asg.Routes) != 1 || asg.Routes[0] != netip.MustParsePrefix("10.200.1.0/24") {
		t.Fatalf("u1 admitted with %+v, %v", asg, err)
	}
	// Disabling u1 through the API refuses its next connect.
	e.expect(http.StatusOK, "PUT", "/api/v1/users/u1", root, map[string]any{"name": "u1", "roles": []string{"vpn_user"}, "groups": []string{"engineers"}, "disabled": true})
	if _, err := e.b.Admit(context.Background(), identity("u1"), netip.AddrPort{}); err == nil {
		t.Fatal("a disabled user was admitted")
	}
	if _, code := e.login("u1", "u1's long password"); code != http.StatusUnauthorized {
		t.Fatalf("a disabled user logged in: %d", code)
	}

	// Changing a device's networks needs the address-space right as well.
	e.expect(http.StatusCreated, "POST", "/api/v1/roles", root, map[string]any{"name": "devices-only", "rights": []string{"manage-devices"}})
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "tech", "roles": []string{"devices-only"}, "password": "tech's long password"})
	tech, _ := e.login("tech", "tech's long password")
	e.expect(http.StatusOK, "PUT", "/api/v1/devices/gw1", tech, map[string]any{"name": "gw1", "groups": []string{"plant1"},
		"networks": []map[string]string{{"lan": "192.168.0.0/24", "alias": "10.200.1.0/24"}}})
	e.expect(http.StatusForbidden, "PUT", "/api/v1/devices/gw1", tech, map[string]any{"name": "gw1", "groups": []string{"plant1"},
		"networks": []map[string]string{{"lan": "192.168.0.0/24", "alias": "10.200.9.0/24"}}})
	e.expect(http.StatusOK, "PUT", "/api/v1/devices/gw1/networks", root, []map[string]string{{"lan": "192.168.0.0/24", "alias": "10.200.9.0/24"}})
	body = e.expect(http.StatusOK, "GET", "/api/v1/devices/gw1", root, nil)
	if !strings.Contains(string(body), "10.200.9.0/24") {
		t.Fatalf("device after the networks change: %s", body)
	}

	// It is all in the store, and each change is in the event log with
	// who made it.
	cfg, err := e.store.Config(context.Background())
	if err != nil || len(cfg.Model.Relations) != 1 || len(cfg.Model.Devices) != 1 || cfg.Networks["gw1"][0].Alias != netip.MustParsePrefix("10.200.9.0/24") {
		t.Fatalf("stored configuration %+v, %v", cfg, err)
	}
	body = e.expect(http.StatusOK, "GET", "/api/v1/events?kind=config_change", root, nil)
	var events []eventView
	if err := json.Unmarshal(body, &events); err != nil {
		t.Fatal(err)
	}
	if len(events) < 8 || events[0].Actor != "root" || events[0].Message != `created group "plant1"` {
		t.Fatalf("config_change events: %+v", events)
	}
	csv := string(e.expect(http.StatusOK, "GET", "/api/v1/events?kind=config_change&format=csv&limit=1", root, nil))
	if !strings.HasPrefix(csv, "id,time,kind,participant,actor,message,attrs\n") || strings.Count(csv, "\n") != 2 || !strings.Contains(csv, `created group ""plant1""`) {
		t.Fatalf("CSV export:\n%s", csv)
	}
	e.expect(http.StatusNoContent, "DELETE", "/api/v1/relations/eng-plant1", root, nil)
	e.expect(http.StatusNotFound, "DELETE", "/api/v1/relations/eng-plant1", root, nil)
}

func TestCertificatesThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "u1", "roles": []string{"vpn_user"}})
	body := e.expect(http.StatusCreated, "POST", "/api/v1/certificates", root, map[string]any{"common_name": "u1", "profile": "user"})
	var got issued
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.KeyPEM == "" || !strings.HasPrefix(got.CertificatePEM, "-----BEGIN CERTIFICATE-----") || got.Certificate.Profile != "user" {
		t.Fatalf("issued: %s", body)
	}
	serial := got.Certificate.Serial
	stored, err := e.store.Certificates(context.Background())
	if err != nil || len(stored) != 1 || serialText(stored[0].Certificate.SerialNumber) != serial {
		t.Fatalf("stored certificates: %d, %v", len(stored), err)
	}
	pemBody := e.expect(http.StatusOK, "GET", "/api/v1/certificates/"+serial+"?format=pem", root, nil)
	if string(pemBody) != got.CertificatePEM {
		t.Fatal("the PEM download differs from the issued certificate")
	}
	body = e.expect(http.StatusOK, "POST", "/api/v1/certificates/"+serial+"/revoke", root, map[string]any{"reason": 1})
	if !strings.Contains(string(body), `"revoked_at"`) {
		t.Fatalf("revoke: %s", body)
	}
	stored, _ = e.store.Certificates(context.Background())
	if stored[0].RevokedAt.IsZero() || stored[0].Reason != 1 {
		t.Fatalf("the store does not know of the revocation: %+v", stored[0])
	}
	if _, err := (&pki.Verifier{CA: e.ca}).Verify([]*x509.Certificate{stored[0].Certificate}); err == nil {
		t.Fatal("the verifier accepts a revoked certificate")
	}
	e.expect(http.StatusBadRequest, "POST", "/api/v1/certificates/"+serial+"/renew", root, map[string]any{})
	e.expect(http.StatusNotFound, "GET", "/api/v1/certificates/abcdef", root, nil)

	ovpn := string(e.expect(http.StatusOK, "POST", "/api/v1/participants/u1/profile", root, map[string]any{"format": "ovpn"}))
	if !strings.HasPrefix(ovpn, "client\n# u1\n<cert>\n-----BEGIN CERTIFICATE-----") || !strings.Contains(ovpn, "PRIVATE KEY") {
		t.Fatalf("profile:\n%s", ovpn)
	}
	p12 := e.expect(http.StatusOK, "POST", "/api/v1/participants/u1/profile", root, map[string]any{"format": "pkcs12", "password": "secret"})
	if len(p12) < 500 || p12[0] != 0x30 {
		t.Fatalf("PKCS#12 of %d bytes", len(p12))
	}
	e.expect(http.StatusNotFound, "POST", "/api/v1/participants/ghost/profile", root, map[string]any{"format": "ovpn"})
	if n := len(e.ca.Records()); n != 3 {
		t.Fatalf("the CA issued %d certificates, want 3", n)
	}
}

func TestBackupAndRestore(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "keep"})
	archive := e.expect(http.StatusOK, "POST", "/api/v1/backup", root, map[string]any{"passphrase": "backup passphrase"})
	e.expect(http.StatusNoContent, "DELETE", "/api/v1/groups/keep", root, nil)
	e.expect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "later"})

	req, _ := http.NewRequest("POST", e.http.URL+"/api/v1/restore", bytes.NewReader(archive))
	req.Header.Set("Authorization", "Bearer "+root)
	req.Header.Set("X-Backup-Passphrase", "wrong passphrase")
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("restore with a wrong passphrase: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("POST", e.http.URL+"/api/v1/restore", bytes.NewReader(archive))
	req.Header.Set("Authorization", "Bearer "+root)
	req.Header.Set("X-Backup-Passphrase", "backup passphrase")
	resp, err = e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"restart_required": false`) {
		t.Fatalf("restore: %d %s", resp.StatusCode, out)
	}
	// The restore ended every session, the caller's too.
	e.expect(http.StatusUnauthorized, "GET", "/api/v1/groups/keep", root, nil)
	root = e.mustLogin("root")
	e.expect(http.StatusOK, "GET", "/api/v1/groups/keep", root, nil)
	e.expect(http.StatusNotFound, "GET", "/api/v1/groups/later", root, nil)
}

func identity(name string) tunnel.Identity { return tunnel.Identity{Name: name} }

// A user with a client certificate of the CA (a smartcard, in practice)
// logs in without a password; a revoked certificate does not.
func TestCertificateLogin(t *testing.T) {
	e := newEnv(t)
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.Issue(pki.Request{Profile: pki.ProfileUser, CommonName: "root", PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.ca.Certificate())
	hs := httptest.NewUnstartedServer(e.srv)
	hs.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: roots, MinVersion: tls.VersionTLS12}
	hs.StartTLS()
	defer hs.Close()
	client := hs.Client()
	client.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}
	login := func() (int, string) {
		resp, err := client.Post(hs.URL+"/api/v1/login/certificate", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok tokenResponse
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		return resp.StatusCode, tok.Token
	}
	code, tok := login()
	if code != http.StatusOK || tok == "" {
		t.Fatalf("certificate login: %d", code)
	}
	e.expect(http.StatusOK, "GET", "/api/v1/users", tok, nil)
	// Without a certificate: refused.
	if code, _ := e.call("POST", "/api/v1/login/certificate", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("certificate login without a certificate: %d", code)
	}
	if err := e.ca.Revoke(cert.SerialNumber, pki.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if code, _ := login(); code != http.StatusUnauthorized {
		t.Fatalf("certificate login with a revoked certificate: %d", code)
	}
}

// A device's certificate does not log in to the management API.
func TestDeviceCannotLogIn(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{"name": "gw"})
	if e.srv.can("gw", 0) {
		t.Fatal("a device counts as an enabled user")
	}
}

// Creating a user under an existing name is refused and does not touch
// that user's password.
func TestCreateExistingUserKeepsItsPassword(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusConflict, "POST", "/api/v1/users", root, map[string]any{"name": "nobody", "password": "an attacker's password"})
	if _, code := e.login("nobody", "an attacker's password"); code != http.StatusUnauthorized {
		t.Fatalf("the refused create changed the password: login %d", code)
	}
	e.mustLogin("nobody")
}
