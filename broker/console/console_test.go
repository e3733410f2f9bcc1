package console

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// clock is a settable time source, started from the real clock: the
// store, the CA, the broker, the API and the console all read it.
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

const (
	testPassword  = "correct horse battery"
	adminName     = "root"
	vpnUser       = "eve"
	idleTimeout   = 10 * time.Minute
	hostileText   = `<img src=x onerror=alert(1)>`
	escapedMarker = `&lt;img src=x onerror=alert(1)&gt;`
)

// env is a broker's API and console behind one TLS listener, routed as
// the product routes them: /api/ to the API, the rest to the console.
type env struct {
	t       testing.TB
	api     *api.Server
	console *Console
	srv     *httptest.Server
	store   *store.Store
	broker  *broker.Broker
	ca      *pki.CA
	clock   *clock
	// bootstrapPassword is the one-time password of "admin".
	bootstrapPassword string
}

// newEnv starts a fresh broker whose bootstrap is still pending; opts
// change the API's configuration before it starts (licenses, say).
func newEnv(t testing.TB, opts ...func(*api.Config)) *env {
	t.Helper()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	st, err := store.OpenWith(filepath.Join(t.TempDir(), "broker.db"), store.Options{Now: clk.now, SecretKey: bytes.Repeat([]byte{0x3c}, store.SecretKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
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
	apiCfg := api.Config{
		Store: st, Broker: b, CA: ca, Verifier: &pki.Verifier{CA: ca},
		Profile: func(w io.Writer, name string, certPEM, keyPEM []byte) error {
			_, err := fmt.Fprintf(w, "client\n# %s\n<cert>\n%s</cert>\n<key>\n%s</key>\n", name, certPEM, keyPEM)
			return err
		},
		PasswordCost: api.PasswordCost{Time: 1, MemoryKiB: 64, Threads: 1},
		Now:          clk.now,
	}
	for _, o := range opts {
		o(&apiCfg)
	}
	srv, err := api.New(ctx, apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	password, _, err := srv.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	con, err := New(Config{API: srv, CA: ca.Certificate(), IdleTimeout: idleTimeout, Now: clk.now,
		Addresses:  []Address{{"management (HTTPS)", "127.0.0.1:8443"}, {"OpenVPN UDP", "0.0.0.0:1194"}},
		MetricsURL: "http://127.0.0.1:9100/metrics"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", srv)
	mux.Handle("/", con)
	hs := httptest.NewUnstartedServer(mux)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	hs.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: roots, MinVersion: tls.VersionTLS12}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return &env{t: t, api: srv, console: con, srv: hs, store: st, broker: b, ca: ca, clock: clk, bootstrapPassword: password}
}

// newReadyEnv is newEnv with the administrator root named (through the
// API) and a VPN user eve.
func newReadyEnv(t testing.TB, opts ...func(*api.Config)) *env {
	t.Helper()
	e := newEnv(t, opts...)
	tok := e.apiLogin(api.BootstrapAccount, e.bootstrapPassword)
	e.apiExpect(http.StatusCreated, "POST", "/api/v1/bootstrap", tok, map[string]string{"name": adminName, "password": testPassword})
	root := e.apiLogin(adminName, testPassword)
	e.apiExpect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": vpnUser, "roles": []string{policy.RoleVPNUser}, "password": testPassword})
	return e
}

// apiCall calls the API over HTTPS as a script would.
func (e *env) apiCall(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (e *env) apiExpect(want int, method, path, token string, body any) []byte {
	e.t.Helper()
	code, out := e.apiCall(method, path, token, body)
	if code != want {
		e.t.Fatalf("API %s %s: %d %s; want %d", method, path, code, out, want)
	}
	return out
}

func (e *env) apiLogin(name, password string) string {
	e.t.Helper()
	var tok struct{ Token string }
	if err := json.Unmarshal(e.apiExpect(http.StatusOK, "POST", "/api/v1/login", "", map[string]string{"name": name, "password": password}), &tok); err != nil {
		e.t.Fatal(err)
	}
	return tok.Token
}

// browser is a user agent with cookies that does not follow redirects,
// so that tests see each answer.
type browser struct {
	e      *env
	client *http.Client
	// header is added to every request.
	header http.Header
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := new(http.Client)
	*c = *e.srv.Client() // a copy: each browser has its own cookies
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, client: c, header: http.Header{}}
}

// resp is an answer as a user sees it.
type resp struct {
	Status int
	Header http.Header
	Body   string
}

func (r *resp) location() string { return r.Header.Get("Location") }

func (b *browser) do(req *http.Request) *resp {
	b.e.t.Helper()
	for k, v := range b.header {
		req.Header[k] = v
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return &resp{Status: res.StatusCode, Header: res.Header, Body: string(body)}
}

func (b *browser) get(path string) *resp {
	b.e.t.Helper()
	req, err := http.NewRequest("GET", b.e.srv.URL+path, nil)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) *resp {
	b.e.t.Helper()
	req, err := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page's forms.
func (b *browser) csrf(page *resp) string {
	b.e.t.Helper()
	m := csrfRE.FindStringSubmatch(page.Body)
	if m == nil {
		b.e.t.Fatalf("no CSRF token on the page:\n%s", page.Body)
	}
	return m[1]
}

// submit loads the page at from, and posts form to action with the page's
// CSRF token, as a person filling in the form would.
func (b *browser) submit(from, action string, form url.Values) *resp {
	b.e.t.Helper()
	page := b.get(from)
	if page.Status != http.StatusOK {
		b.e.t.Fatalf("GET %s: %d\n%s", from, page.Status, page.Body)
	}
	form.Set("csrf", b.csrf(page))
	return b.post(action, form)
}

// login logs in through the login page and expects to be sent on.
func (b *browser) login(name, password string) *resp {
	b.e.t.Helper()
	r := b.submit("/login", "/login", url.Values{"name": {name}, "password": {password}})
	if r.Status != http.StatusSeeOther {
		b.e.t.Fatalf("login %s: %d\n%s", name, r.Status, r.Body)
	}
	return r
}

// expectPage gets path and checks the status and that the page says want.
func (b *browser) expectPage(path string, status int, want ...string) *resp {
	b.e.t.Helper()
	r := b.get(path)
	if r.Status != status {
		b.e.t.Fatalf("GET %s: %d, want %d\n%s", path, r.Status, status, r.Body)
	}
	for _, w := range want {
		if !strings.Contains(r.Body, w) {
			b.e.t.Fatalf("GET %s does not say %q:\n%s", path, w, r.Body)
		}
	}
	return r
}

// checkHeaders checks the headers every console answer carries.
func checkHeaders(t *testing.T, what string, h http.Header, page bool) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy":   "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":           "DENY",
		"Strict-Transport-Security": "max-age=31536000",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
	}
	if page {
		want["Cache-Control"] = "no-store"
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

// adminPages are the pages of an administrator, with a text each shows.
var adminPages = []struct{ path, text string }{
	{"/", "Latest events"},
	{"/participants", "Participants"},
	{"/participants/plant-1/profile", "Download"},
	{"/sessions", "No live sessions"},
	{"/sessions/plant-1/terminate", "Terminate the session of plant-1?"},
	{"/users", "New user"},
	{"/users/" + vpnUser, "Set the password"},
	{"/users/" + vpnUser + "/delete", "Delete the user eve?"},
	{"/roles", "manage-devices"},
	{"/roles/operator", "Rights"},
	{"/roles/operator/delete", "Delete the role operator?"},
	{"/devices", "192.168.0.0/24 as 10.100.1.0/24"},
	{"/devices/plant-1", "192.168.0.0/24 as 10.100.1.0/24"},
	{"/devices/plant-1/delete", "Delete the device plant-1?"},
	{"/groups", "engineers"},
	{"/groups/engineers", "Subgroups"},
	{"/groups/engineers/delete", "Delete the group engineers?"},
	{"/relations", "eng-to-plants"},
	{"/relations/eng-to-plants", "tcp/502"},
	{"/relations/eng-to-plants/delete", "Delete the relation eng-to-plants?"},
	{"/certificates", "Issue a certificate"},
	{"/events", "Newest first"},
	{"/licenses", "no limit"},
	{"/backup", "Download a backup"},
	{"/system", "OpenVPN UDP"},
	{"/profile", "Download"},
	{"/password", "Change the password"},
}

// populate creates, through the API, what the admin pages show.
func (e *env) populate() {
	e.t.Helper()
	root := e.apiLogin(adminName, testPassword)
	e.apiExpect(http.StatusCreated, "POST", "/api/v1/roles", root, map[string]any{"name": "operator", "rights": []string{"manage-devices", "view-events"}})
	e.apiExpect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "engineers"})
	e.apiExpect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "plants"})
	e.apiExpect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{"name": "plant-1", "groups": []string{"plants"},
		"networks": []map[string]string{{"lan": "192.168.0.0/24", "alias": "10.100.1.0/24"}}})
	e.apiExpect(http.StatusCreated, "POST", "/api/v1/relations", root, map[string]any{"name": "eng-to-plants", "from": "engineers", "to": "plants", "direction": "one-way", "services": []string{"tcp/502"}})
}

func TestEveryPageRendersForAnAdministrator(t *testing.T) {
	e := newReadyEnv(t)
	e.populate()
	b := e.browser()
	b.login(adminName, testPassword)
	for _, p := range adminPages {
		r := b.expectPage(p.path, http.StatusOK, p.text, "Logged in as <strong>root</strong>", `href="#main"`)
		checkHeaders(t, p.path, r.Header, true)
		if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", p.path, ct)
		}
	}
	// The static style sheet and the error pages carry the headers too.
	css := b.expectPage("/static/console.css", http.StatusOK, ":focus-visible")
	checkHeaders(t, "/static/console.css", css.Header, false)
	nf := b.expectPage("/no/such/page", http.StatusNotFound, "There is no page here.")
	checkHeaders(t, "404", nf.Header, true)
	login := e.browser().expectPage("/login", http.StatusOK, "Log in with certificate")
	checkHeaders(t, "/login", login.Header, true)
}

// Every label of the pages names a control that exists, and every input
// a person fills in has a label.
func TestFormsAreLabelled(t *testing.T) {
	e := newReadyEnv(t)
	e.populate()
	b := e.browser()
	b.login(adminName, testPassword)
	labelFor := regexp.MustCompile(`<label for="([^"]+)"`)
	control := regexp.MustCompile(`<(?:input|select|textarea)[^>]*\sid="([^"]+)"`)
	input := regexp.MustCompile(`<(?:input|select|textarea)\b[^>]*>`)
	for _, p := range adminPages {
		body := b.get(p.path).Body
		ids := map[string]bool{}
		for _, m := range control.FindAllStringSubmatch(body, -1) {
			ids[m[1]] = true
		}
		labelled := map[string]bool{}
		for _, m := range labelFor.FindAllStringSubmatch(body, -1) {
			if !ids[m[1]] {
				t.Errorf("%s: label for %q names no control", p.path, m[1])
			}
			labelled[m[1]] = true
		}
		for _, in := range input.FindAllString(body, -1) {
			if strings.Contains(in, `type="hidden"`) {
				continue
			}
			id := control.FindStringSubmatch(in)
			if id == nil || !labelled[id[1]] {
				t.Errorf("%s: a control without a label: %s", p.path, in)
			}
		}
	}
}

func TestVPNUserSeesOnlyItsProfile(t *testing.T) {
	e := newReadyEnv(t)
	e.populate()
	b := e.browser()
	b.login(vpnUser, testPassword)
	if r := b.get("/"); r.Status != http.StatusSeeOther || r.location() != "/profile" {
		t.Fatalf("the start page of a VPN user: %d to %q; want 303 to /profile", r.Status, r.location())
	}
	page := b.expectPage("/profile", http.StatusOK, "<strong>eve</strong>", "OpenVPN profile")
	for _, admin := range []string{"/users", "/devices", "/certificates", "/events", "/system", "/backup"} {
		if strings.Contains(page.Body, `href="`+admin+`"`) {
			t.Errorf("the VPN user's page links to %s", admin)
		}
	}
	for _, p := range adminPages {
		if p.path == "/" || p.path == "/profile" || p.path == "/password" {
			continue
		}
		r := b.get(p.path)
		if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "may not") {
			t.Errorf("GET %s as a VPN user: %d; want 403 saying it may not\n%s", p.path, r.Status, r.Body)
		}
	}
	// And the admin forms are refused too.
	tok := b.csrf(page)
	for _, path := range []string{"/users", "/devices", "/groups", "/relations", "/certificates", "/backup", "/users/root/delete", "/sessions/plant-1/terminate", "/relations/eng-to-plants/disable"} {
		r := b.post(path, url.Values{"csrf": {tok}, "name": {"x"}, "passphrase": {"0123456789abcdef"}, "passphrase2": {"0123456789abcdef"}, "common_name": {"eve"}, "profile": {"user"}})
		if r.Status != http.StatusForbidden {
			t.Errorf("POST %s as a VPN user: %d; want 403\n%s", path, r.Status, r.Body)
		}
	}
	var rels []policy.Relation
	if err := json.Unmarshal(e.apiExpect(http.StatusOK, "GET", "/api/v1/relations", e.apiLogin(adminName, testPassword), nil), &rels); err != nil || len(rels) != 1 || rels[0].Disabled {
		t.Fatalf("relations after the VPN user's attempts: %+v %v", rels, err)
	}

	r := b.post("/profile", url.Values{"csrf": {tok}, "format": {"ovpn"}})
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "# eve\n") || !strings.Contains(r.Body, "BEGIN CERTIFICATE") {
		t.Fatalf("profile download: %d\n%s", r.Status, r.Body)
	}
	if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename="eve.ovpn"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	checkHeaders(t, "profile download", r.Header, false)
	// PKCS#12 needs a password: said next to the field.
	r = b.post("/profile", url.Values{"csrf": {tok}, "format": {"pkcs12"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `id="f-password-error"`) {
		t.Fatalf("PKCS#12 without a password: %d\n%s", r.Status, r.Body)
	}
}

// A POST without the CSRF token, with a wrong one, or from another origin
// changes nothing and is answered 403.
func TestForgedPostsAreRefused(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	b.login(adminName, testPassword)
	good := b.csrf(b.get("/groups"))
	other := e.browser()
	other.login(adminName, testPassword)
	otherToken := other.csrf(other.get("/groups"))
	for _, tc := range []struct {
		name   string
		form   url.Values
		origin string
	}{
		{"no token", url.Values{"name": {"g1"}}, ""},
		{"a wrong token", url.Values{"name": {"g1"}, "csrf": {"AAAA" + good[4:]}}, ""},
		{"another session's token", url.Values{"name": {"g1"}, "csrf": {otherToken}}, ""},
		{"another origin", url.Values{"name": {"g1"}, "csrf": {good}}, "https://evil.example"},
	} {
		b.header = http.Header{}
		if tc.origin != "" {
			b.header.Set("Origin", tc.origin)
		}
		if r := b.post("/groups", tc.form); r.Status != http.StatusForbidden {
			t.Errorf("%s: %d; want 403\n%s", tc.name, r.Status, r.Body)
		}
	}
	b.header = http.Header{}
	if body := e.apiExpect(http.StatusOK, "GET", "/api/v1/groups", e.apiLogin(adminName, testPassword), nil); string(bytes.TrimSpace(body)) != "[]" {
		t.Fatalf("groups after forged posts: %s", body)
	}
	// The same origin and the right token do it.
	b.header.Set("Origin", e.srv.URL)
	if r := b.post("/groups", url.Values{"name": {"g1"}, "csrf": {good}}); r.Status != http.StatusSeeOther {
		t.Fatalf("a genuine post: %d\n%s", r.Status, r.Body)
	}

	// The login form: without the pre-session cookie's token, refused.
	anon := e.browser()
	anon.get("/login")
	if r := anon.post("/login", url.Values{"name": {adminName}, "password": {testPassword}}); r.Status != http.StatusForbidden {
		t.Fatalf("login without its CSRF token: %d", r.Status)
	}
	fresh := e.browser() // no pre-session cookie at all
	if r := fresh.post("/login", url.Values{"name": {adminName}, "password": {testPassword}, "csrf": {b.csrf(anon.get("/login"))}}); r.Status != http.StatusForbidden {
		t.Fatalf("login with another browser's token: %d", r.Status)
	}
}

func TestSessionCookie(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	r := b.login(adminName, testPassword)
	var session *http.Cookie
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("no session cookie: %v", r.Header["Set-Cookie"])
	}
	if !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.Domain != "" {
		t.Fatalf("session cookie %+v: want Secure, HttpOnly, SameSite=Strict, Path=/, no Domain", session)
	}
	if raw := strings.Join(r.Header["Set-Cookie"], "\n"); !strings.Contains(raw, "Secure") || !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Strict") {
		t.Fatalf("Set-Cookie: %s", raw)
	}
	// The cookie is the API token: the API accepts it until logout.
	e.apiExpect(http.StatusOK, "GET", "/api/v1/account", session.Value, nil)
	page := b.expectPage("/", http.StatusOK, "Dashboard")
	if r := b.post("/logout", url.Values{"csrf": {b.csrf(page)}}); r.Status != http.StatusSeeOther || r.location() != "/login?m=logout" {
		t.Fatalf("logout: %d %q", r.Status, r.location())
	}
	e.apiExpect(http.StatusUnauthorized, "GET", "/api/v1/account", session.Value, nil)
	if r := b.get("/users"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login") {
		t.Fatalf("after logout: %d %q", r.Status, r.location())
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	r := b.login(adminName, testPassword)
	var tok string
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == sessionCookie {
			tok = c.Value
		}
	}
	// Used within the idle timeout, again and again: the session lives on
	// well past one timeout in all.
	for range 3 {
		e.clock.add(idleTimeout - time.Minute)
		b.expectPage("/users", http.StatusOK, "New user")
	}
	e.clock.add(idleTimeout)
	r = b.get("/users")
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login?m=expired") {
		t.Fatalf("after the idle timeout: %d %q", r.Status, r.location())
	}
	b.expectPage(r.location(), http.StatusOK, "Your session ended")
	// The API token ended with it: the cookie is worth nothing elsewhere.
	e.apiExpect(http.StatusUnauthorized, "GET", "/api/v1/account", tok, nil)
}

// The absolute timeout is the API token's lifetime: a session in use
// still ends then.
func TestAbsoluteTimeout(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	b.login(adminName, testPassword)
	for range 12*6 + 1 { // 12 hours and 10 minutes, in steps of 10 minutes
		e.clock.add(idleTimeout - time.Second)
		if r := b.get("/users"); r.Status != http.StatusOK {
			if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login") {
				t.Fatalf("ended as %d %q", r.Status, r.location())
			}
			return
		}
	}
	t.Fatal("a session in use lived past the token's lifetime")
}

func TestBootstrapFlow(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	r := b.login(api.BootstrapAccount, e.bootstrapPassword)
	if r.location() != "/" {
		t.Fatalf("after login to %q", r.location())
	}
	for _, path := range []string{"/", "/users", "/profile"} {
		if r := b.get(path); r.Status != http.StatusSeeOther || r.location() != "/bootstrap" {
			t.Fatalf("GET %s as the bootstrap administrator: %d %q; want 303 to /bootstrap", path, r.Status, r.location())
		}
	}
	page := b.expectPage("/bootstrap", http.StatusOK, "Name the real administrator")
	if strings.Contains(page.Body, `aria-label="Main"`) {
		t.Errorf("the bootstrap page shows the navigation")
	}
	// A refusal says what is wrong next to the field.
	r = b.post("/bootstrap", url.Values{"csrf": {b.csrf(page)}, "name": {"jane"}, "password": {"short"}, "password2": {"short"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `id="f-password-error"`) || !strings.Contains(r.Body, "12 characters") {
		t.Fatalf("a short password: %d\n%s", r.Status, r.Body)
	}
	r = b.post("/bootstrap", url.Values{"csrf": {b.csrf(page)}, "name": {"jane"}, "password": {testPassword}, "password2": {testPassword}})
	if r.Status != http.StatusSeeOther || r.location() != "/login?m=bootstrap" {
		t.Fatalf("naming the administrator: %d %q\n%s", r.Status, r.location(), r.Body)
	}
	b.expectPage(r.location(), http.StatusOK, "no longer exists")
	if r := b.get("/users"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login") {
		t.Fatalf("the bootstrap session after naming: %d %q", r.Status, r.location())
	}
	// admin no longer logs in, and the page says why.
	r = b.submit("/login", "/login", url.Values{"name": {api.BootstrapAccount}, "password": {e.bootstrapPassword}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "exists only until the first administrator is named") {
		t.Fatalf("admin after the bootstrap: %d\n%s", r.Status, r.Body)
	}
	b.login("jane", testPassword)
	b.expectPage("/users", http.StatusOK, "jane", "admin")
}

// The forms create what the API then shows: a device with an aliased
// LAN, a user, a group and a relation.
func TestCreateThroughForms(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	b.login(adminName, testPassword)
	for _, step := range []struct {
		page   string
		form   url.Values
		notice string
	}{
		{"/groups", url.Values{"name": {"plants"}}, "Created the group plants."},
		{"/groups", url.Values{"name": {"engineers"}, "intra": {"on"}}, "Created the group engineers."},
		{"/devices", url.Values{"name": {"plant-7"}, "groups": {"plants"}, "networks": {"192.168.0.0/24 as 10.100.7.0/24\n172.16.5.0/24"}}, "Created the device plant-7."},
		{"/users", url.Values{"name": {"jane"}, "roles": {"vpn_user"}, "groups": {"engineers"}, "password": {testPassword}}, "Created the user jane."},
		{"/relations", url.Values{"name": {"jane-to-plant"}, "from": {"engineers"}, "to": {"plants"}, "direction": {"one-way"}, "services": {"tcp/502, icmp"}, "not_after": {"2099-01-01T00:00"}}, "Created the relation jane-to-plant."},
	} {
		r := b.submit(step.page, step.page, step.form)
		if r.Status != http.StatusSeeOther {
			t.Fatalf("POST %s: %d\n%s", step.page, r.Status, r.Body)
		}
		b.expectPage(r.location(), http.StatusOK, step.notice)
	}
	root := e.apiLogin(adminName, testPassword)
	var dev struct {
		Groups   []string        `json:"groups"`
		Networks []store.Network `json:"networks"`
	}
	if err := json.Unmarshal(e.apiExpect(http.StatusOK, "GET", "/api/v1/devices/plant-7", root, nil), &dev); err != nil {
		t.Fatal(err)
	}
	want := []store.Network{{LAN: netip.MustParsePrefix("192.168.0.0/24"), Alias: netip.MustParsePrefix("10.100.7.0/24")}, {LAN: netip.MustParsePrefix("172.16.5.0/24")}}
	if fmt.Sprint(dev.Networks) != fmt.Sprint(want) || fmt.Sprint(dev.Groups) != "[plants]" {
		t.Fatalf("device through the API: %+v", dev)
	}
	var u policy.User
	if err := json.Unmarshal(e.apiExpect(http.StatusOK, "GET", "/api/v1/users/jane", root, nil), &u); err != nil || fmt.Sprint(u.Roles, u.Groups) != "[vpn_user] [engineers]" {
		t.Fatalf("user through the API: %+v %v", u, err)
	}
	e.apiLogin("jane", testPassword) // the password was set too
	var g policy.Group
	if err := json.Unmarshal(e.apiExpect(http.StatusOK, "GET", "/api/v1/groups/engineers", root, nil), &g); err != nil || !g.Intra {
		t.Fatalf("group through the API: %+v %v", g, err)
	}
	var rel policy.Relation
	if err := json.Unmarshal(e.apiExpect(http.StatusOK, "GET", "/api/v1/relations/jane-to-plant", root, nil), &rel); err != nil {
		t.Fatal(err)
	}
	if rel.From != "engineers" || rel.To != "plants" || servicesText(rel.Services) != "tcp/502, icmp" || !rel.NotAfter.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) || rel.Disabled {
		t.Fatalf("relation through the API: %+v", rel)
	}

	// Disabling the relation deactivates the connection, through the API.
	r := b.submit("/relations", "/relations/jane-to-plant/disable", url.Values{})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("disable: %d\n%s", r.Status, r.Body)
	}
	if err := json.Unmarshal(e.apiExpect(http.StatusOK, "GET", "/api/v1/relations/jane-to-plant", root, nil), &rel); err != nil || !rel.Disabled {
		t.Fatalf("after disable: %+v %v", rel, err)
	}
	b.expectPage("/relations", http.StatusOK, "Enable jane-to-plant")

	// Every change is in the event log with the console user as actor.
	var events []struct{ Actor, Message string }
	if err := json.Unmarshal(e.apiExpect(http.StatusOK, "GET", "/api/v1/events?kind=config_change", root, nil), &events); err != nil {
		t.Fatal(err)
	}
	if n := len(events); n < 6 || events[n-1].Actor != adminName || !strings.Contains(events[n-1].Message, "jane-to-plant") {
		t.Fatalf("events: %+v", events)
	}

	// Delete after a confirmation page.
	r = b.submit("/devices/plant-7/delete", "/devices/plant-7/delete", url.Values{})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("delete: %d\n%s", r.Status, r.Body)
	}
	e.apiExpect(http.StatusNotFound, "GET", "/api/v1/devices/plant-7", root, nil)
}

// A refused form says why next to the field, keeps what was typed, and
// answers with the API's status.
func TestFieldErrors(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	b.login(adminName, testPassword)
	for _, tc := range []struct {
		page   string
		form   url.Values
		status int
		field  string
		says   string
	}{
		{"/devices", url.Values{"name": {"plant-9"}, "networks": {"192.168.0.0/24 as 10.0.0.0/16"}}, http.StatusBadRequest, "networks", "differ in size"},
		{"/devices", url.Values{"name": {"plant-9"}, "networks": {"192.168.0.0/24 as nonsense"}}, http.StatusBadRequest, "networks", "line 1"},
		{"/devices", url.Values{"name": {"bad name!"}}, http.StatusBadRequest, "name", "bad name!"},
		{"/users", url.Values{"name": {"jo"}, "password": {"short"}}, http.StatusBadRequest, "password", "12 characters"},
		{"/users", url.Values{"name": {"eve"}}, http.StatusConflict, "name", "exists"},
		{"/relations", url.Values{"name": {"r"}, "from": {"a"}, "to": {"b"}, "services": {"tcp/99999"}}, http.StatusBadRequest, "services", "ports"},
		{"/relations", url.Values{"name": {"r"}, "from": {"a"}, "to": {"b"}, "not_before": {"tomorrow"}}, http.StatusBadRequest, "not_before", "2025-06-01T08:00"},
	} {
		r := b.submit(tc.page, tc.page, tc.form)
		if r.Status != tc.status || !strings.Contains(r.Body, `id="f-`+tc.field+`-error"`) || !strings.Contains(r.Body, tc.says) {
			t.Errorf("POST %s %v: %d; want %d with %q next to %s\n%s", tc.page, tc.form, r.Status, tc.status, tc.says, tc.field, r.Body)
			continue
		}
		if v := tc.form.Get("name"); !strings.Contains(r.Body, `value="`+strings.ReplaceAll(v, "!", "!")+`"`) {
			t.Errorf("POST %s: the name typed is not kept", tc.page)
		}
	}
}

// Hostile text that reaches pages (a certificate subject, the messages of
// the events it causes, an API refusal quoting a name) is shown as text.
func TestHostileTextIsEscaped(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	b.login(adminName, testPassword)
	r := b.submit("/certificates", "/certificates", url.Values{"common_name": {hostileText}, "profile": {"server"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("issue: %d\n%s", r.Status, r.Body)
	}
	pages := []*resp{r, b.get("/certificates"), b.get("/events"), b.get("/")}
	// A name refused by the API comes back in its message.
	pages = append(pages, b.submit("/groups", "/groups", url.Values{"name": {hostileText}}))
	for i, p := range pages {
		if strings.Contains(p.Body, hostileText) || strings.Contains(p.Body, "<img") {
			t.Errorf("page %d shows the markup unescaped:\n%s", i, p.Body)
		}
		if !strings.Contains(p.Body, escapedMarker) {
			t.Errorf("page %d does not show the text escaped:\n%s", i, p.Body)
		}
	}
	// What a peer can put in an event: the name in its certificate, the
	// text of an error, an attribute.
	if _, err := e.store.Append(context.Background(), store.Event{Kind: "refused", Participant: hostileText, Message: "not a participant: " + hostileText,
		Attrs: map[string]string{"remote": hostileText}}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/events", "/"} {
		body := b.get(path).Body
		if strings.Contains(body, "<img") || strings.Count(body, escapedMarker) < 3 {
			t.Errorf("%s: the event's text is not escaped in each place:\n%s", path, body)
		}
	}
}

// certBrowser is a browser that presents a client certificate for cn
// issued by ca. The TLS listener asks for certificates of the broker's
// CA, but a client may send any.
func (e *env) certBrowser(ca *pki.CA, cn string) *browser {
	e.t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	cert, err := ca.Issue(pki.Request{Profile: pki.ProfileUser, CommonName: cn, PublicKey: key.Public()})
	if err != nil {
		e.t.Fatal(err)
	}
	b := e.browser()
	tr := b.client.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}
	b.client.Transport = tr
	return b
}

func TestCertificateLogin(t *testing.T) {
	e := newReadyEnv(t)
	b := e.certBrowser(e.ca, adminName)
	r := b.submit("/login", "/login/certificate", url.Values{})
	if r.Status != http.StatusSeeOther || r.location() != "/" {
		t.Fatalf("certificate login: %d %q\n%s", r.Status, r.location(), r.Body)
	}
	b.expectPage("/users", http.StatusOK, "Logged in as <strong>root</strong>")

	// Without a certificate, the page says what to do.
	r = e.browser().submit("/login", "/login/certificate", url.Values{})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "sent no client certificate") {
		t.Fatalf("certificate login without a certificate: %d\n%s", r.Status, r.Body)
	}
}

func TestBackupAndRestore(t *testing.T) {
	e := newReadyEnv(t)
	e.populate()
	b := e.browser()
	b.login(adminName, testPassword)
	const pass = "a long backup passphrase"
	r := b.submit("/backup", "/backup", url.Values{"passphrase": {pass}, "passphrase2": {pass}})
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Disposition"), `attachment; filename="remotegate-`) || len(r.Body) < 1000 {
		t.Fatalf("backup: %d %v, %d bytes", r.Status, r.Header, len(r.Body))
	}
	checkHeaders(t, "backup", r.Header, false)
	archive := r.Body

	// Something changes after the backup; the restore takes it back.
	root := e.apiLogin(adminName, testPassword)
	e.apiExpect(http.StatusNoContent, "DELETE", "/api/v1/devices/plant-1", root, nil)

	page := b.get("/backup")
	restore := func(csrf, passphrase string) *resp {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		for _, f := range [][2]string{{"csrf", csrf}, {"passphrase", passphrase}, {"installation", "keep"}} {
			if err := mw.WriteField(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
		}
		fw, err := mw.CreateFormFile("file", "remotegate.backup")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(fw, archive)
		mw.Close()
		req, err := http.NewRequest("POST", e.srv.URL+"/restore", &body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		return b.do(req)
	}
	if r := restore("forged", pass); r.Status != http.StatusForbidden {
		t.Fatalf("restore with a forged token: %d", r.Status)
	}
	if r := restore(b.csrf(page), "the wrong passphrase"); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "field-error") {
		t.Fatalf("restore with the wrong passphrase: %d\n%s", r.Status, r.Body)
	}
	e.apiExpect(http.StatusNotFound, "GET", "/api/v1/devices/plant-1", root, nil)
	r = restore(b.csrf(page), pass)
	if r.Status != http.StatusSeeOther || r.location() != "/login?m=restored" {
		t.Fatalf("restore: %d %q\n%s", r.Status, r.location(), r.Body)
	}
	e.apiExpect(http.StatusOK, "GET", "/api/v1/devices/plant-1", e.apiLogin(adminName, testPassword), nil)
}

func TestEventLogFilterAndCSV(t *testing.T) {
	e := newReadyEnv(t)
	e.populate()
	b := e.browser()
	b.login(adminName, testPassword)
	r := b.expectPage("/events?kind=config_change", http.StatusOK, `created device &#34;plant-1&#34;`)
	if strings.Contains(r.Body, "management login") {
		t.Errorf("the kind filter let a login event through")
	}
	b.expectPage("/events?since=nonsense", http.StatusBadRequest, `id="f-since-error"`)
	r = b.get("/events/csv?kind=config_change")
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "text/csv; charset=utf-8" || !strings.HasPrefix(r.Body, "id,time,kind,participant,actor,message,attrs\n") || !strings.Contains(r.Body, `created device ""plant-1""`) {
		t.Fatalf("CSV: %d %v\n%s", r.Status, r.Header, r.Body)
	}
	// Paging: with more than a page of events, an "older" link leads on.
	root := e.apiLogin(adminName, testPassword)
	for i := range pageSize {
		e.apiExpect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": fmt.Sprintf("g%02d", i)})
	}
	r = b.expectPage("/events?kind=config_change", http.StatusOK, `created group &#34;g49&#34;`, "Older")
	m := regexp.MustCompile(`href="(/events\?[^"]*before=[^"]*)" rel="next"`).FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatalf("no link to older events:\n%s", r.Body)
	}
	b.expectPage(strings.ReplaceAll(m[1], "&amp;", "&"), http.StatusOK, `created device &#34;plant-1&#34;`)
}
