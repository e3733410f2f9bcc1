package console

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/store"
)

// browserLocation resolves a Location header as a browser does (the URL
// Standard): tabs and line breaks anywhere are dropped, leading and
// trailing spaces and control characters trimmed, and a backslash read as
// a slash.
func browserLocation(t *testing.T, base, loc string) *url.URL {
	t.Helper()
	loc = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(loc)
	loc = strings.TrimFunc(loc, func(r rune) bool { return r <= ' ' })
	loc = strings.ReplaceAll(loc, `\`, "/")
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q does not parse: %v", loc, err)
	}
	return b.ResolveReference(u)
}

// A login leads on only to a page of this console, whatever the link
// that led to the login page said: no open redirect.
func TestLoginLeadsOnlyToTheConsole(t *testing.T) {
	e := newReadyEnv(t)
	base, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, next := range []string{
		"//evil.example/", `/\evil.example/`, "https://evil.example/", "evil.example",
		"/\t/evil.example/", "/\n/evil.example/", "\t//evil.example/", "/\x00/evil.example", "/ /evil.example",
		"https:/evil.example", "/" + strings.Repeat("a", 5000),
	} {
		b := e.browser()
		page := b.get("/login?next=" + url.QueryEscape(next))
		r := b.post("/login", url.Values{"csrf": {b.csrf(page)}, "name": {adminName}, "password": {testPassword}, "next": {next}})
		if r.Status != http.StatusSeeOther {
			t.Fatalf("login with next %q: %d\n%s", next, r.Status, r.Body)
		}
		if u := browserLocation(t, e.srv.URL, r.location()); u.Host != base.Host || u.Scheme != base.Scheme {
			t.Errorf("login with next %q leads to %q, which a browser opens as %s", next, r.location(), u)
		}
	}
	// A page of the console is kept, with its query.
	b := e.browser()
	page := b.get("/login?next=" + url.QueryEscape("/events?kind=license"))
	if !strings.Contains(page.Body, `name="next" value="/events?kind=license"`) {
		t.Fatalf("the login page does not keep the target:\n%s", page.Body)
	}
	r := b.post("/login", url.Values{"csrf": {b.csrf(page)}, "name": {adminName}, "password": {testPassword}, "next": {"/events?kind=license"}})
	if r.location() != "/events?kind=license" {
		t.Fatalf("login leads to %q; want /events?kind=license", r.location())
	}
}

// Only the console's own redirects show a notice: a crafted link's text
// is not shown as if the console said it.
func TestNoticesComeOnlyFromTheConsole(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	b.login(adminName, testPassword)
	const spoof = "Your password has expired. Call the helpdesk at +49 555 0100 and tell them it."
	for _, path := range []string{"/users", "/groups", "/certificates", "/sessions", "/password"} {
		if r := b.expectPage(path+"?notice="+url.QueryEscape(spoof), http.StatusOK); strings.Contains(r.Body, "helpdesk") {
			t.Errorf("%s shows a notice from the link:\n%s", path, r.Body)
		}
	}
	// The console's own notice shows, but not in another session, and not
	// with its text changed.
	r := b.submit("/groups", "/groups", url.Values{"name": {"g1"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("create group: %d\n%s", r.Status, r.Body)
	}
	b.expectPage(r.location(), http.StatusOK, "Created the group g1.")
	other := e.browser()
	other.login(adminName, testPassword)
	if p := other.expectPage(r.location(), http.StatusOK); strings.Contains(p.Body, "Created the group g1.") {
		t.Errorf("another session shows the notice of a link it did not get")
	}
	forged := strings.Replace(r.location(), url.QueryEscape("Created the group g1."), url.QueryEscape("Created the group g2."), 1)
	if forged == r.location() {
		t.Fatalf("the notice is not in the link %q", r.location())
	}
	if p := b.expectPage(forged, http.StatusOK); strings.Contains(p.Body, "Created the group") {
		t.Errorf("a changed notice is shown")
	}
}

// Logging in again and again, which any account that can log in can do,
// ends that account's own sessions when the table is full, never another
// account's.
func TestOneAccountCannotLogOthersOut(t *testing.T) {
	e := newReadyEnv(t)
	e.console.sess = newSessions(4)
	admin := e.browser()
	admin.login(adminName, testPassword)
	var eves []*browser
	for range 10 {
		e.clock.add(time.Second) // each login newer than the last
		b := e.browser()
		b.login(vpnUser, testPassword)
		eves = append(eves, b)
	}
	admin.expectPage("/users", http.StatusOK, "New user")
	// eve's newest sessions work, its oldest were logged out.
	eves[9].expectPage("/profile", http.StatusOK, "<strong>eve</strong>")
	if r := eves[0].get("/profile"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login") {
		t.Fatalf("eve's oldest session: %d %q; want it logged out", r.Status, r.location())
	}
	// Still at most four sessions.
	if n := len(e.console.sess.last); n > 4 {
		t.Fatalf("%d sessions tracked; want at most 4", n)
	}
	// Two accounts with equal shares: the newcomer takes the place of the
	// longest idle session of the account with the most.
	e.console.sess = newSessions(2)
	a, b := e.browser(), e.browser()
	a.login(adminName, testPassword)
	e.clock.add(time.Second)
	b.login(vpnUser, testPassword)
	e.clock.add(time.Second)
	c := e.browser()
	c.login(vpnUser, testPassword)
	a.expectPage("/users", http.StatusOK, "New user")
	c.expectPage("/profile", http.StatusOK, "<strong>eve</strong>")
	if r := b.get("/profile"); r.Status != http.StatusSeeOther {
		t.Fatalf("eve's older session: %d; want it logged out", r.Status)
	}
}

// The page says when a user has exported as many profiles as the API
// allows, and the form stays.
func TestOwnProfileLimitOnThePage(t *testing.T) {
	e := newReadyEnv(t, func(c *api.Config) { c.ProfileLimit = api.ProfileLimit{Count: 1, Window: time.Hour} })
	b := e.browser()
	b.login(vpnUser, testPassword)
	page := b.get("/profile")
	if r := b.post("/profile", url.Values{"csrf": {b.csrf(page)}, "format": {"ovpn"}}); r.Status != http.StatusOK || !strings.Contains(r.Body, "BEGIN CERTIFICATE") {
		t.Fatalf("the first profile: %d\n%s", r.Status, r.Body)
	}
	r := b.post("/profile", url.Values{"csrf": {b.csrf(page)}, "format": {"ovpn"}})
	if r.Status != http.StatusTooManyRequests || !strings.Contains(r.Body, "exported 1 profiles in the last 1h0m0s") || !strings.Contains(r.Body, `action="/profile"`) {
		t.Fatalf("the second profile within the hour: %d\n%s", r.Status, r.Body)
	}
	if ra := r.Header.Get("Retry-After"); ra != "3600" {
		t.Errorf("Retry-After %q; want 3600", ra)
	}
	if strings.Contains(r.Body, "BEGIN") {
		t.Errorf("the refusal carries a certificate")
	}
}

// The event export neutralises what a spreadsheet would take for a
// formula, in every field a peer or a user can choose.
func TestEventCSVNeutralisesFormulas(t *testing.T) {
	e := newReadyEnv(t)
	for _, ev := range []store.Event{
		{Kind: "refused", Participant: "=HYPERLINK(\"http://evil.example\",\"x\")", Message: "+1+cmd|' /C calc'!A0", Actor: "@SUM(A1)", Attrs: map[string]string{"remote": "-1"}},
		{Kind: "refused", Participant: "-2+3", Message: "\t=1", Actor: "\r=1"},
	} {
		if _, err := e.store.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	b.login(adminName, testPassword)
	r := b.get("/events/csv?kind=refused")
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("CSV: %d %v", r.Status, r.Header)
	}
	checkHeaders(t, "event CSV", r.Header, true)
	rows, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, r.Body)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows; want a header and 2:\n%s", len(rows), r.Body)
	}
	for _, row := range rows[1:] {
		for i, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %d %q begins like a formula", i, cell)
			}
		}
	}
	if !strings.Contains(r.Body, `'=HYPERLINK(""http://evil.example"",""x"")`) {
		t.Errorf("the participant's name is not kept, quoted:\n%s", r.Body)
	}
}

// Answers that carry secrets (a private key on the page, a profile, a
// backup) are not kept by the browser or a proxy.
func TestSecretsAreNotCached(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	b.login(adminName, testPassword)
	r := b.submit("/certificates", "/certificates", url.Values{"common_name": {vpnUser}, "profile": {"user"}})
	if r.Status != http.StatusCreated || !strings.Contains(r.Body, "PRIVATE KEY") {
		t.Fatalf("issue: %d", r.Status)
	}
	checkHeaders(t, "the issued key's page", r.Header, true)
	r = b.submit("/participants/"+vpnUser+"/profile", "/participants/"+vpnUser+"/profile", url.Values{"format": {"ovpn"}})
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "PRIVATE KEY") {
		t.Fatalf("profile: %d", r.Status)
	}
	checkHeaders(t, "a profile", r.Header, true)
	r = b.submit("/backup", "/backup", url.Values{"passphrase": {"a long backup passphrase"}, "passphrase2": {"a long backup passphrase"}})
	if r.Status != http.StatusOK {
		t.Fatalf("backup: %d", r.Status)
	}
	checkHeaders(t, "a backup", r.Header, true)
}

// An anonymous client makes the console keep nothing: not with made-up
// session cookies, not with login forms, large or many.
func TestAnonymousClientsLeaveNothingBehind(t *testing.T) {
	e := newReadyEnv(t)
	for i := range 50 {
		b := e.browser()
		req, err := http.NewRequest("GET", e.srv.URL+"/users", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: strings.Repeat("x", i+1)})
		if r := b.do(req); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login") {
			t.Fatalf("a made-up session cookie: %d %q", r.Status, r.location())
		}
		page := b.get("/login")
		// A login form of a megabyte is refused before it is read whole.
		if r := b.post("/login", url.Values{"csrf": {b.csrf(page)}, "name": {strings.Repeat("n", 1<<20)}, "password": {"x"}}); r.Status != http.StatusForbidden && r.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("a huge login form: %d", r.Status)
		}
		if r := b.post("/login", url.Values{"csrf": {b.csrf(page)}, "name": {adminName}, "password": {"wrong password"}}); r.Status != http.StatusUnauthorized && r.Status != http.StatusTooManyRequests {
			t.Fatalf("a wrong password: %d", r.Status)
		}
	}
	if n := len(e.console.sess.last); n != 0 {
		t.Fatalf("%d sessions tracked after anonymous requests; want 0", n)
	}
}
