package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/pki"
)

// loginFrom logs in over a TCP connection from the loopback address src
// (all of 127.0.0.0/8 is local on Linux), so that the server sees a
// client address of the test's choosing; it returns the status, the
// Retry-After header and the body.
func (e *env) loginFrom(src, name, password string) (int, string, []byte) {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	body, _ := json.Marshal(map[string]string{"name": name, "password": password})
	resp, err := (&http.Client{Transport: tr}).Post(e.http.URL+"/api/v1/login", "application/json", strings.NewReader(string(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), out
}

// expectLoginFrom fails unless a login from src answers want, with the
// Retry-After retry (none: "").
func (e *env) expectLoginFrom(src, name, password string, want int, retry string) {
	e.t.Helper()
	code, after, body := e.loginFrom(src, name, password)
	if code != want || after != retry {
		e.t.Fatalf("login %s from %s: %d, Retry-After %q, %s; want %d, Retry-After %q", name, src, code, after, body, want, retry)
	}
}

// serveFrom makes a login request straight to the handler with any remote
// address, IPv6 included (the loopback has one IPv6 address only).
func (e *env) serveFrom(remote, name, password string) *httptest.ResponseRecorder {
	body, _ := json.Marshal(map[string]string{"name": name, "password": password})
	req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(string(body)))
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return rec
}

// hashProbe stands in for the server's password check: it counts the
// checks running at once and holds each until release is closed.
type hashProbe struct {
	running, peak atomic.Int32
	entered       chan struct{} // one per check that started
	release       chan struct{} // a send lets one check finish
	open          chan struct{} // closed: no check is held any more
	openOnce      sync.Once
}

// letAllThrough stops holding checks.
func (p *hashProbe) letAllThrough() { p.openOnce.Do(func() { close(p.open) }) }

// withHashProbe installs a probe; the test lets it go with
// t.Cleanup(p.letAllThrough) after the env is made, so that this runs
// before the server closes (which waits for held requests).
func withHashProbe(p **hashProbe) func(*Server) {
	return func(s *Server) {
		probe := &hashProbe{entered: make(chan struct{}, 1000), release: make(chan struct{}), open: make(chan struct{})}
		inner := s.checkHash
		s.checkHash = func(phc, password string) (bool, error) {
			n := probe.running.Add(1)
			defer probe.running.Add(-1)
			for old := probe.peak.Load(); n > old && !probe.peak.CompareAndSwap(old, n); old = probe.peak.Load() {
			}
			select {
			case probe.entered <- struct{}{}:
			default: // nobody counts any more
			}
			select {
			case <-probe.release:
			case <-probe.open:
			}
			return inner(phc, password)
		}
		*p = probe
	}
}

// parallelLogins starts n wrong logins as root, the i-th from src(i), and
// waits until each has either started its hash or been answered without
// one; it returns how many started hashing and the answers so far.
func parallelLogins(e *env, p *hashProbe, n int, src func(int) string) (hashing int, early []int, rest chan int) {
	rest = make(chan int, n)
	for i := range n {
		go func() {
			code, _, _ := e.loginFrom(src(i), "root", "wrong password")
			rest <- code
		}()
	}
	for hashing+len(early) < n {
		select {
		case <-p.entered:
			hashing++
		case code := <-rest:
			early = append(early, code)
		}
	}
	return hashing, early, rest
}

// With every hash slot taken, a further login is answered 429 at once,
// and no more hashes than the bound ever run together; a login refused
// for that is not counted as a failure.
func TestConcurrentPasswordHashesAreBounded(t *testing.T) {
	var p *hashProbe
	e := newEnvHooked(t, 0, func(c *Config) { c.MaxConcurrentHashes = 2 }, withHashProbe(&p))
	t.Cleanup(p.letAllThrough)
	src := func(i int) string { return fmt.Sprintf("127.0.1.%d", i+1) }
	hashing, early, rest := parallelLogins(e, p, 10, src)
	if hashing != 2 || p.peak.Load() != 2 {
		t.Fatalf("%d hashes started, %d at once; want 2", hashing, p.peak.Load())
	}
	for _, code := range early {
		if code != http.StatusTooManyRequests {
			t.Fatalf("a login beyond the bound: %d; want 429", code)
		}
	}
	// While the slots are held: 429 with a short Retry-After.
	code, after, body := e.loginFrom("127.0.2.1", "nobody", testPassword)
	if code != http.StatusTooManyRequests || after != "1" || !strings.Contains(string(body), "too many logins at once") {
		t.Fatalf("login with all slots busy: %d, Retry-After %q, %s", code, after, body)
	}
	p.letAllThrough()
	for range 2 {
		if code := <-rest; code != http.StatusUnauthorized {
			t.Fatalf("a held wrong login: %d; want 401", code)
		}
	}
	// The refused logins did not count: their addresses log in at once.
	for i := 2; i < 10; i++ {
		e.expectLoginFrom(src(i), "nobody", testPassword, http.StatusOK, "")
	}
	if p.peak.Load() != 2 {
		t.Fatalf("%d hashes ran at once; the bound is 2", p.peak.Load())
	}
}

// Forty parallel wrong logins from one address: the failure is counted
// before the hash, so only the limit's five get a hash and a 401, the rest
// 429 without one.
func TestParallelWrongLoginsStopAtTheLimit(t *testing.T) {
	var p *hashProbe
	e := newEnvHooked(t, 0, func(c *Config) { c.MaxConcurrentHashes = 64 }, withHashProbe(&p))
	t.Cleanup(p.letAllThrough)
	hashing, early, rest := parallelLogins(e, p, 40, func(int) string { return "127.0.0.2" })
	if hashing != 5 {
		t.Fatalf("%d of 40 parallel wrong logins were hashed; want 5", hashing)
	}
	for _, code := range early {
		if code != http.StatusTooManyRequests {
			t.Fatalf("a login beyond the limit: %d; want 429", code)
		}
	}
	for range 5 {
		p.release <- struct{}{}
		if code := <-rest; code != http.StatusUnauthorized {
			t.Fatalf("a wrong login within the limit: %d; want 401", code)
		}
	}
	e.expectLoginFrom("127.0.0.2", "nobody", testPassword, http.StatusTooManyRequests, "900")
}

// The real user, from an address it logged in from before, is not slowed
// by guessers of its name; guessers spread over many addresses get one
// guess per NameInterval for the name.
func TestKnownAddressIsNotSlowedByGuessers(t *testing.T) {
	e := newEnv(t)
	const home = "127.0.0.4"
	e.expectLoginFrom(home, "root", testPassword, http.StatusOK, "")
	for i := 10; i < 15; i++ {
		e.expectLoginFrom(fmt.Sprintf("127.0.0.%d", i), "root", "wrong password", http.StatusUnauthorized, "")
	}
	e.expectLoginFrom("127.0.0.15", "root", "wrong password", http.StatusTooManyRequests, "60")
	e.expectLoginFrom(home, "root", testPassword, http.StatusOK, "")
	e.expectLoginFrom("127.0.0.5", "root", testPassword, http.StatusTooManyRequests, "60")
	e.clock.add(time.Minute)
	e.expectLoginFrom("127.0.0.16", "root", "wrong password", http.StatusUnauthorized, "")
	e.expectLoginFrom("127.0.0.17", "root", "wrong password", http.StatusTooManyRequests, "60")
	// The known address is remembered for 30 days, not for ever.
	e.clock.add(30 * 24 * time.Hour)
	e.expectLoginFrom("127.0.0.18", "root", "wrong password", http.StatusUnauthorized, "")
	for i := 19; i < 23; i++ {
		e.expectLoginFrom(fmt.Sprintf("127.0.0.%d", i), "root", "wrong password", http.StatusUnauthorized, "")
	}
	e.expectLoginFrom(home, "root", testPassword, http.StatusTooManyRequests, "60")
}

// One IPv6 host commonly holds a whole /64: the address limit counts the
// /64, not each address in it.
func TestIPv6AddressesAreLimitedByTheirPrefix(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 5; i++ {
		if rec := e.serveFrom(fmt.Sprintf("[2001:db8:1:2::%x]:4000", i), fmt.Sprintf("guess%d", i), "x"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	if rec := e.serveFrom("[2001:db8:1:2:ffff::1]:4000", "root", testPassword); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("another address of the same /64: %d; want 429", rec.Code)
	}
	if rec := e.serveFrom("[2001:db8:1:3::1]:4000", "root", testPassword); rec.Code != http.StatusOK {
		t.Fatalf("an address of another /64: %d %s; want 200", rec.Code, rec.Body)
	}
}

// A flood of new names and addresses does not grow the limiter beyond its
// bound, and the limit still holds after it.
func TestLoginLimiterMemoryIsBounded(t *testing.T) {
	const max = 32
	e := newEnvHooked(t, 0, nil, func(s *Server) {
		s.limiter.addrs.max, s.limiter.names.max, s.limiter.known.max = max, max, max
	})
	l := e.srv.limiter
	for i := range 300 {
		if rec := e.serveFrom(fmt.Sprintf("[2001:db8:%x::1]:4000", i), fmt.Sprintf("name-%d", i), "x"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("flood %d: %d %s", i, rec.Code, rec.Body)
		}
		if rec := e.serveFrom(fmt.Sprintf("[2001:db9:%x::1]:4000", i), "nobody", testPassword); rec.Code != http.StatusOK {
			t.Fatalf("flood %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	l.mu.Lock()
	addrs, names, known := l.addrs.len(), l.names.len(), l.known.len()
	l.mu.Unlock()
	if addrs > max || names > max || known > max {
		t.Fatalf("after the flood the limiter tracks %d addresses, %d names, %d known pairs; the bound is %d", addrs, names, known, max)
	}
	for i := range 5 {
		e.serveFrom("[2001:dba::1]:4000", fmt.Sprintf("again-%d", i), "x")
	}
	if rec := e.serveFrom("[2001:dba::1]:4000", "nobody", testPassword); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("after the flood, a sixth attempt: %d; want 429", rec.Code)
	}
}

// A password typed into the name field does not reach the event log: a
// name that is no account is recorded as unknown.
func TestUnknownNameIsNotLogged(t *testing.T) {
	e := newEnv(t)
	const typed = "Tr0ub4dor&3 in the wrong field"
	if _, code := e.login(typed, "x"); code != http.StatusUnauthorized {
		t.Fatalf("unknown name: %d", code)
	}
	if _, code := e.login("root", "wrong password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	root := e.mustLogin("root")
	csv := string(e.expect(http.StatusOK, "GET", "/api/v1/events?kind=auth_failure&format=csv", root, nil))
	if strings.Contains(csv, "Tr0ub4dor") {
		t.Fatalf("the typed name is in the event log:\n%s", csv)
	}
	events, err := e.store.Events(context.Background(), store.EventFilter{Kind: "auth_failure"})
	if err != nil || len(events) != 2 {
		t.Fatalf("auth_failure events: %d, %v", len(events), err)
	}
	if ev := events[0]; ev.Participant != "" || !strings.Contains(ev.Message, "unknown name") || ev.Attrs["remote"] != "127.0.0.1" {
		t.Fatalf("the unknown name's event: %+v", ev)
	}
	if ev := events[1]; ev.Participant != "root" {
		t.Fatalf("the known name's event: %+v", ev)
	}
}

// A login body beyond what a name and a password need is refused before
// it is read whole.
func TestLoginBodyIsBounded(t *testing.T) {
	e := newEnv(t)
	code, body := e.call("POST", "/api/v1/login", "", map[string]string{"name": strings.Repeat("n", 1<<20), "password": "x"})
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "8 KiB") {
		t.Fatalf("a 1 MiB login: %d %s; want 413 naming the limit of 8 KiB", code, body)
	}
}

// certLogin returns a function that logs in over TLS with a client
// certificate of the CA for name.
func (e *env) certLogin(name string) func() (int, string) {
	e.t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	cert, err := e.ca.Issue(pki.Request{Profile: pki.ProfileUser, CommonName: name, PublicKey: key.Public()})
	if err != nil {
		e.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.ca.Certificate())
	hs := httptest.NewUnstartedServer(e.srv)
	hs.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: roots, MinVersion: tls.VersionTLS12}
	hs.StartTLS()
	e.t.Cleanup(hs.Close)
	client := hs.Client()
	client.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}
	return func() (int, string) {
		resp, err := client.Post(hs.URL+"/api/v1/login/certificate", "application/json", nil)
		if err != nil {
			e.t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok tokenResponse
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		return resp.StatusCode, tok.Token
	}
}

// Failed certificate logins count toward their address: once it is
// blocked they are answered 429 and write no more events. A good
// certificate still logs in from there: it cannot be guessed.
func TestCertificateLoginFailuresCountTowardTheAddress(t *testing.T) {
	e := newEnv(t)
	login := e.certLogin("root")
	for i := range 5 {
		if code, _ := e.call("POST", "/api/v1/login/certificate", "", nil); code != http.StatusUnauthorized {
			t.Fatalf("certificate login %d without a certificate: %d", i, code)
		}
	}
	code, body := e.call("POST", "/api/v1/login/certificate", "", nil)
	if code != http.StatusTooManyRequests {
		t.Fatalf("a sixth failed certificate login: %d %s; want 429", code, body)
	}
	if _, code := e.login("root", testPassword); code != http.StatusTooManyRequests {
		t.Fatalf("a password login from the blocked address: %d; want 429", code)
	}
	if code, tok := login(); code != http.StatusOK || tok == "" {
		t.Fatalf("a good certificate from the blocked address: %d", code)
	}
	events, err := e.store.Events(context.Background(), store.EventFilter{Kind: "auth_failure"})
	if err != nil || len(events) != 5 {
		t.Fatalf("auth_failure events: %d, %v; want 5", len(events), err)
	}
}

// The old password of a password change is a guess like a login's.
func TestChangePasswordOldPasswordIsLimited(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	change := map[string]string{"old_password": "wrong password", "new_password": "a new long password"}
	for range 5 {
		e.expect(http.StatusBadRequest, "PUT", "/api/v1/password", root, change)
	}
	change["old_password"] = testPassword
	e.expect(http.StatusTooManyRequests, "PUT", "/api/v1/password", root, change)
	e.clock.add(15 * time.Minute)
	e.expect(http.StatusNoContent, "PUT", "/api/v1/password", root, change)
}

func TestLoginConfigIsChecked(t *testing.T) {
	e := newEnv(t)
	for name, adjust := range map[string]func(*Config){
		"negative MaxConcurrentHashes": func(c *Config) { c.MaxConcurrentHashes = -1 },
		"negative Failures":            func(c *Config) { c.LoginLimit.Failures = -1 },
		"negative NameInterval":        func(c *Config) { c.LoginLimit.NameInterval = -time.Second },
	} {
		cfg := e.srv.cfg
		adjust(&cfg)
		if _, err := New(context.Background(), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v; want ErrConfig", name, err)
		}
	}
}

// The default bound on concurrent hashes: a 256 MiB budget at the cost's
// memory, at most one per CPU, at least one.
func TestDefaultHashSlots(t *testing.T) {
	for _, c := range []struct {
		cost PasswordCost
		cpus int
		want int
	}{
		{PasswordCost{}, 16, 4},                  // 64 MiB each
		{PasswordCost{}, 2, 2},                   // CPU-bound
		{PasswordCost{MemoryKiB: 1 << 20}, 8, 1}, // 1 GiB each: one at a time
		{PasswordCost{MemoryKiB: 64}, 2, 2},
	} {
		if got := hashSlots(c.cost, c.cpus); got != c.want {
			t.Errorf("hashSlots(%+v, %d) = %d; want %d", c.cost, c.cpus, got, c.want)
		}
	}
}
