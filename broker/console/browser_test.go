package console_test

// Scenarios in a real browser (headless Chromium, internal/browsertest):
// what a person does in the console, checked by what the pages show and,
// for every change, by what the API answers afterwards. They skip, saying
// why, without root or chromium, and fail instead when CI is set.

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/internal/browsertest"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// newBrowser starts a browser that trusts the lab's CA, as an
// administrator's browser trusts the broker's after installing it.
func (l *lab) newBrowser(clientCert *tls.Certificate) *browsertest.Browser {
	l.t.Helper()
	return browsertest.New(l.t, browsertest.Options{TrustCA: l.ca.Certificate(), ClientCert: clientCert})
}

// login logs in through the login page by name and password and returns
// the status of the page it lands on.
func (l *lab) login(b *browsertest.Browser, name, password string) int {
	l.t.Helper()
	if status := b.Navigate(l.url + "/login"); status != http.StatusOK {
		l.t.Fatalf("the login page: %d", status)
	}
	b.Fill("Name", name)
	b.Fill("Password", password)
	return b.Submit("Log in")
}

// path is the path of the page the browser shows.
func (l *lab) path(b *browsertest.Browser) string {
	l.t.Helper()
	u, err := url.Parse(b.URL())
	if err != nil {
		l.t.Fatal(err)
	}
	if u.RawQuery != "" {
		return u.Path + "?" + u.RawQuery
	}
	return u.Path
}

// populate creates through the API what the administrative pages show: a
// role, two groups, a device with an aliased LAN, a relation and the VPN
// user eve.
func (l *lab) populate(root string) {
	l.t.Helper()
	l.apiExpect(http.StatusCreated, "POST", "/api/v1/roles", root, map[string]any{"name": "operator", "rights": []string{"manage-devices", "view-events"}})
	l.apiExpect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "engineers"})
	l.apiExpect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "plants"})
	l.apiExpect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{"name": "plant-1", "groups": []string{"plants"},
		"networks": []map[string]string{{"lan": "192.168.0.0/24", "alias": "10.100.1.0/24"}}})
	l.apiExpect(http.StatusCreated, "POST", "/api/v1/relations", root, map[string]any{"name": "eng-to-plants", "from": "engineers", "to": "plants", "direction": "one-way", "services": []string{"tcp/502"}})
	l.apiExpect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "eve", "roles": []string{policy.RoleVPNUser}, "groups": []string{"engineers"}, "password": labPassword})
}

// adminPaths are the administrative pages, overviews, details and
// confirmations, with the data of populate.
var adminPaths = []string{
	"/participants", "/participants/plant-1/profile",
	"/sessions", "/sessions/plant-1/terminate",
	"/users", "/users/eve", "/users/eve/delete",
	"/roles", "/roles/operator", "/roles/operator/delete",
	"/devices", "/devices/plant-1", "/devices/plant-1/delete",
	"/groups", "/groups/engineers", "/groups/engineers/delete",
	"/relations", "/relations/eng-to-plants", "/relations/eng-to-plants/delete",
	"/certificates", "/events", "/events/csv", "/licenses", "/backup", "/system",
}

// The first login: admin with the one-time password is led to name the
// real administrator and is logged out; admin then no longer logs in, and
// the page says why; the administrator named logs in.
func TestBrowserBootstrap(t *testing.T) {
	l := newLab(t, labOptions{})
	b := l.newBrowser(nil)

	// Any page sends a visitor to the login page first.
	if status := b.Navigate(l.url + "/users"); status != http.StatusOK || !strings.HasPrefix(l.path(b), "/login") {
		t.Fatalf("a visitor's /users: %d at %s; want the login page", status, l.path(b))
	}
	if status := l.login(b, api.BootstrapAccount, l.bootstrapPassword); status != http.StatusOK || l.path(b) != "/bootstrap" {
		t.Fatalf("admin's first login: %d at %s; want /bootstrap", status, l.path(b))
	}
	b.WaitText("Name the administrator")
	b.WaitText("the account “admin” is deleted")
	// The one-time account sees this page only: no navigation, and every
	// other page leads back here.
	var navLinks int
	b.Eval(`document.querySelectorAll('nav[aria-label="Main"] a').length`, &navLinks)
	if navLinks != 0 {
		t.Errorf("the bootstrap page shows %d navigation links", navLinks)
	}
	if status := b.Navigate(l.url + "/devices"); status != http.StatusOK || l.path(b) != "/bootstrap" {
		t.Fatalf("admin's /devices: %d at %s; want /bootstrap", status, l.path(b))
	}

	// Two different passwords: said next to the second one.
	b.Fill("Administrator's name", "jane.doe@example.com")
	b.Fill("Password (at least 12 characters)", labPassword)
	b.Fill("Password again", labPassword+"!")
	if status := b.Submit("Name the administrator"); status != http.StatusBadRequest {
		t.Fatalf("two different passwords: %d", status)
	}
	checkFieldError(t, b, "password2", "The two passwords differ.")

	b.Fill("Password (at least 12 characters)", labPassword)
	b.Fill("Password again", labPassword)
	if status := b.Submit("Name the administrator"); status != http.StatusOK || l.path(b) != "/login?m=bootstrap" {
		t.Fatalf("naming the administrator: %d at %s; want the login page", status, l.path(b))
	}
	b.WaitText("The administrator is named and the one-time account “admin” no longer exists.")
	// Logged out: the pages ask for a login again.
	if status := b.Navigate(l.url + "/users"); status != http.StatusOK || !strings.HasPrefix(l.path(b), "/login") {
		t.Fatalf("/users after the bootstrap: %d at %s; want the login page", status, l.path(b))
	}

	// admin's second login is refused, with the reason next to the name.
	if status := l.login(b, api.BootstrapAccount, l.bootstrapPassword); status != http.StatusUnauthorized {
		t.Fatalf("admin's second login: %d; want 401", status)
	}
	checkFieldError(t, b, "name", "The one-time account “admin” exists only until the first administrator is named; after that, log in as that administrator.")
	checkFieldError(t, b, "password", "Wrong name or password.")

	if status := l.login(b, "jane.doe@example.com", labPassword); status != http.StatusOK || l.path(b) != "/" {
		t.Fatalf("the administrator's login: %d at %s; want the dashboard", status, l.path(b))
	}
	b.WaitText("Logged in as jane.doe@example.com")
	b.WaitText("Latest events")

	// The API agrees: jane is an administrator, admin is gone.
	tok := l.apiLogin("jane.doe@example.com", labPassword)
	var users []policy.User
	l.apiGet("/api/v1/users", tok, &users)
	if len(users) != 1 || users[0].Name != "jane.doe@example.com" || !slices.Contains(users[0].Roles, policy.RoleAdmin) {
		t.Fatalf("users through the API: %+v", users)
	}
	if code, _ := l.apiCall("POST", "/api/v1/login", "", map[string]string{"name": api.BootstrapAccount, "password": l.bootstrapPassword}); code != http.StatusUnauthorized {
		t.Fatalf("admin's API login after the bootstrap: %d", code)
	}
	noProblems(t, b, http.StatusBadRequest, http.StatusUnauthorized)
}

// checkFieldError checks that the page shows want as the error of the
// form field named field, next to it: in the field's own block, and
// announced by the control (aria-describedby, aria-invalid).
func checkFieldError(t *testing.T, b *browsertest.Browser, field, want string) {
	t.Helper()
	var got struct {
		Text      string `json:"text"`
		SameBlock bool   `json:"same"`
		Described string `json:"described"`
		Invalid   string `json:"invalid"`
	}
	b.Eval(fmt.Sprintf(`(() => {
  const e = document.getElementById(%[1]q), f = document.getElementById(%[2]q);
  if (!e || !f) return {text: e ? e.innerText : '', same: false, described: '', invalid: ''};
  return {text: e.innerText, same: e.closest('.field') === f.closest('.field') && !!f.closest('.field'),
    described: f.getAttribute('aria-describedby') || '', invalid: f.getAttribute('aria-invalid') || ''};
})()`, "f-"+field+"-error", "f-"+field), &got)
	if !strings.Contains(got.Text, want) || !got.SameBlock || got.Described != "f-"+field+"-error" || got.Invalid != "true" {
		t.Errorf("the error of the field %s: %+v; want %q next to it\npage:\n%s", field, got, want, b.Text())
	}
}

// noProblems checks that the pages reported no problem so far. A page
// answered with one of the statuses expected (a refusal the scenario
// provokes) is reported by the browser as a failed load; those are not
// problems of the page.
func noProblems(t *testing.T, b *browsertest.Browser, expected ...int) {
	t.Helper()
	var bad []string
	for _, p := range b.Problems() {
		ok := false
		for _, status := range expected {
			ok = ok || strings.Contains(p, fmt.Sprintf("the server responded with a status of %d ", status))
		}
		if !ok {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the browser reported problems:\n%s", strings.Join(bad, "\n"))
	}
}

// An administrator creates a device with an aliased LAN, a user, groups
// and a relation by typing into the labelled fields of the pages; the API
// then answers exactly that. A bad LAN is refused next to its field.
func TestBrowserCreateThroughPages(t *testing.T) {
	l := newLab(t, labOptions{})
	root := l.ready()
	b := l.newBrowser(nil)
	if status := l.login(b, labAdmin, labPassword); status != http.StatusOK {
		t.Fatalf("login: %d", status)
	}

	b.Navigate(l.url + "/groups")
	b.Fill("Name", "plants")
	if status := b.Submit("Create the group"); status != http.StatusOK {
		t.Fatalf("creating a group: %d", status)
	}
	b.WaitText("Created the group plants.")
	b.Fill("Name", "engineers")
	b.Click("Members may reach each other")
	b.Submit("Create the group")
	b.WaitText("Created the group engineers.")

	// A bad LAN: the alias is of another size. The error is next to the
	// field, and what was typed is kept.
	b.Navigate(l.url + "/devices")
	b.Fill("Name", "plant-7")
	b.Fill("LAN networks, one a line", "192.168.0.0/24 as 10.0.0.0/16")
	b.Fill("Participant groups (comma-separated)", "plants")
	if status := b.Submit("Create the device"); status != http.StatusBadRequest {
		t.Fatalf("a device with a bad LAN: %d; want 400", status)
	}
	checkFieldError(t, b, "networks", "differ in size")
	var kept []string
	b.Eval(`[document.getElementById('f-name').value, document.getElementById('f-networks').value, document.getElementById('f-groups').value]`, &kept)
	if fmt.Sprint(kept) != "[plant-7 192.168.0.0/24 as 10.0.0.0/16 plants]" {
		t.Errorf("the form after the refusal holds %q", kept)
	}
	l.apiExpect(http.StatusNotFound, "GET", "/api/v1/devices/plant-7", root, nil)

	// Corrected: two networks, one of them under an alias.
	b.Fill("LAN networks, one a line", "192.168.0.0/24 as 10.100.7.0/24\n172.16.5.0/24")
	if status := b.Submit("Create the device"); status != http.StatusOK {
		t.Fatalf("creating the device: %d", status)
	}
	b.WaitText("Created the device plant-7.")
	b.WaitText("192.168.0.0/24 as 10.100.7.0/24")

	b.Navigate(l.url + "/users")
	b.Fill("Name", "jane")
	b.Fill("Roles (comma-separated)", policy.RoleVPNUser)
	b.Fill("Participant groups (comma-separated)", "engineers")
	b.Fill("Password (optional: without one the user logs in by certificate only)", labPassword)
	b.Submit("Create the user")
	b.WaitText("Created the user jane.")

	b.Navigate(l.url + "/relations")
	b.Fill("Name", "jane-to-plant")
	b.Fill("From group", "engineers")
	b.Fill("Direction", "one-way")
	b.Fill("To group", "plants")
	b.Fill("Services (comma-separated; empty: any)", "tcp/502, icmp")
	b.Fill("Not after (UTC, optional)", "2099-01-01T00:00")
	b.Submit("Create the relation")
	b.WaitText("Created the relation jane-to-plant.")
	noProblems(t, b, http.StatusBadRequest)

	// The API answers exactly what was typed.
	var dev struct {
		Name     string          `json:"name"`
		Groups   []string        `json:"groups"`
		Networks []store.Network `json:"networks"`
		Disabled bool            `json:"disabled"`
	}
	l.apiGet("/api/v1/devices/plant-7", root, &dev)
	wantNets := []store.Network{
		{LAN: netip.MustParsePrefix("192.168.0.0/24"), Alias: netip.MustParsePrefix("10.100.7.0/24")},
		{LAN: netip.MustParsePrefix("172.16.5.0/24")},
	}
	if dev.Name != "plant-7" || !slices.Equal(dev.Networks, wantNets) || !slices.Equal(dev.Groups, []string{"plants"}) || dev.Disabled {
		t.Errorf("the device through the API: %+v", dev)
	}
	var u policy.User
	l.apiGet("/api/v1/users/jane", root, &u)
	if !slices.Equal(u.Roles, []string{policy.RoleVPNUser}) || !slices.Equal(u.Groups, []string{"engineers"}) || u.Disabled {
		t.Errorf("the user through the API: %+v", u)
	}
	l.apiLogin("jane", labPassword) // the password typed is hers
	var groups []policy.Group
	l.apiGet("/api/v1/groups", root, &groups)
	slices.SortFunc(groups, func(a, b policy.Group) int { return strings.Compare(a.Name, b.Name) })
	if len(groups) != 2 || groups[0].Name != "engineers" || !groups[0].Intra || groups[1].Name != "plants" || groups[1].Intra {
		t.Errorf("the groups through the API: %+v", groups)
	}
	var rel policy.Relation
	l.apiGet("/api/v1/relations/jane-to-plant", root, &rel)
	var services []string
	for _, s := range rel.Services {
		services = append(services, s.String())
	}
	if rel.From != "engineers" || rel.To != "plants" || rel.Direction != policy.OneWay || !slices.Equal(services, []string{"tcp/502", "icmp"}) ||
		!rel.NotBefore.IsZero() || !rel.NotAfter.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) || rel.Disabled {
		t.Errorf("the relation through the API: %+v (services %q)", rel, services)
	}
}

// A vpn_user sees its own profile download and nothing else; every
// administrative page's URL answers 403; the .ovpn it downloads is a
// profile with its own certificate, issued by the broker's CA.
func TestBrowserVPNUser(t *testing.T) {
	l := newLab(t, labOptions{})
	root := l.ready()
	l.populate(root)
	b := l.newBrowser(nil)
	if status := l.login(b, "eve", labPassword); status != http.StatusOK || l.path(b) != "/profile" {
		t.Fatalf("eve's login: %d at %s; want her profile page", status, l.path(b))
	}
	b.WaitText("Logged in as eve")
	b.WaitText("My VPN profile")
	var links []string
	b.Eval(`[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))`, &links)
	slices.Sort(links)
	if want := []string{"#main", "/password", "/profile"}; !slices.Equal(links, want) {
		t.Errorf("a VPN user's page links to %q; want only %q", links, want)
	}
	var forms []string
	b.Eval(`[...document.forms].map(f => f.getAttribute('action'))`, &forms)
	slices.Sort(forms)
	if want := []string{"/logout", "/profile"}; !slices.Equal(forms, want) {
		t.Errorf("a VPN user's page has the forms %q; want %q", forms, want)
	}

	for _, p := range adminPaths {
		if status := b.Navigate(l.url + p); status != http.StatusForbidden {
			t.Errorf("%s as a VPN user: %d; want 403", p, status)
			continue
		}
		if text := b.Text(); !strings.Contains(text, "may not") {
			t.Errorf("%s as a VPN user does not say why:\n%s", p, text)
		}
	}

	b.Navigate(l.url + "/profile")
	file := b.Download(func() { b.Click("Download") })
	if file.Name != "eve.ovpn" {
		t.Errorf("the download is named %q; want eve.ovpn", file.Name)
	}
	profile := string(file.Data)
	for _, want := range []string{"client\n", "remote 127.0.0.1 1194\n", "<ca>\n", "<cert>\n", "<key>\n"} {
		if !strings.Contains(profile, want) {
			t.Errorf("the profile lacks %q:\n%s", want, profile)
		}
	}
	cert := pemIn(t, profile, "cert", "CERTIFICATE")
	c, err := x509.ParseCertificate(cert)
	if err != nil {
		t.Fatalf("the profile's certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(l.ca.Certificate())
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || c.Subject.CommonName != "eve" {
		t.Errorf("the profile's certificate: CN %q, verify: %v", c.Subject.CommonName, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(pemIn(t, profile, "key", "PRIVATE KEY"))
	if err != nil {
		t.Fatalf("the profile's key: %v", err)
	}
	if k, ok := key.(*ecdsa.PrivateKey); !ok || !k.PublicKey.Equal(c.PublicKey) {
		t.Errorf("the profile's key is not the certificate's")
	}
	// The certificate is the broker's record of eve, as the API lists it.
	var certs []certRecord
	l.apiGet("/api/v1/certificates", root, &certs)
	if !slices.Contains(certs, certRecord{Serial: pki.SerialString(c.SerialNumber), CommonName: "eve"}) {
		t.Errorf("the API does not list the profile's certificate %s: %+v", pki.SerialString(c.SerialNumber), certs)
	}
	noProblems(t, b, http.StatusForbidden)
}

// certRecord is what the API's certificate list says of one certificate.
type certRecord struct {
	Serial     string `json:"serial"`
	CommonName string `json:"common_name"`
}

// pemIn returns the DER of the PEM block of type typ inside <tag> of an
// .ovpn profile.
func pemIn(t *testing.T, profile, tag, typ string) []byte {
	t.Helper()
	_, rest, ok := strings.Cut(profile, "<"+tag+">\n")
	inner, _, ok2 := strings.Cut(rest, "</"+tag+">")
	if !ok || !ok2 {
		t.Fatalf("the profile has no <%s>:\n%s", tag, profile)
	}
	blk, _ := pem.Decode([]byte(inner))
	if blk == nil || blk.Type != typ {
		t.Fatalf("<%s> holds no %s:\n%s", tag, typ, inner)
	}
	return blk.Bytes
}

// A state change forged with the browser's session (its cookies, HttpOnly
// included) but without the page's CSRF token is refused and changes
// nothing; so is one a page of another site makes the browser send.
func TestBrowserForgedStateChange(t *testing.T) {
	l := newLab(t, labOptions{})
	root := l.ready()
	b := l.newBrowser(nil)
	l.login(b, labAdmin, labPassword)
	b.Navigate(l.url + "/groups")

	cookies := b.Cookies()
	var session *http.Cookie
	for _, c := range cookies {
		if strings.Contains(c.Name, "session") {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("no session cookie among %v", cookies)
	}
	if !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteStrictMode || !strings.HasPrefix(session.Name, "__Host-") {
		t.Errorf("the session cookie: %+v; want __Host-, HttpOnly, Secure, SameSite=Strict", session)
	}
	var token string
	b.Eval(`document.querySelector('form[action="/groups"] input[name=csrf]').value`, &token)

	post := func(form url.Values) (int, string) {
		req, err := http.NewRequest("POST", l.url+"/groups", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range cookies {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		resp, err := l.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	for _, forged := range []url.Values{
		{"name": {"forged-1"}},
		{"name": {"forged-2"}, "csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
		{"name": {"forged-3"}, "csrf": {token[:len(token)-1]}},
	} {
		status, body := post(forged)
		if status != http.StatusForbidden || !strings.Contains(body, "nothing was changed") {
			t.Errorf("a POST with csrf %q: %d; want 403 saying nothing was changed\n%s", forged.Get("csrf"), status, body)
		}
		l.apiExpect(http.StatusNotFound, "GET", "/api/v1/groups/"+forged.Get("name"), root, nil)
	}
	// The same request with the page's token is taken: the refusals were
	// for the token alone.
	if status, body := post(url.Values{"name": {"genuine"}, "csrf": {token}}); status != http.StatusSeeOther {
		t.Fatalf("a POST with the page's token: %d\n%s", status, body)
	}
	l.apiExpect(http.StatusOK, "GET", "/api/v1/groups/genuine", root, nil)

	// A page of another site (localhost is another site than 127.0.0.1)
	// with a form aimed at the console, in the browser that is logged in.
	evil := l.issue(pki.Request{Profile: pki.ProfileServer, CommonName: "localhost", DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	attacker := newTLSServer(t, evil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>Prize</title><form method="post" action="%s/groups"><input type="hidden" name="name" value="cross-site"><button>Claim your prize</button></form>`, l.url)
	}))
	b.Navigate(strings.Replace(attacker, "127.0.0.1", "localhost", 1) + "/")
	status := b.Submit("Claim your prize")
	if status < 300 && strings.HasPrefix(b.URL(), l.url+"/groups") {
		t.Errorf("the cross-site form was answered %d on the groups page", status)
	}
	l.apiExpect(http.StatusNotFound, "GET", "/api/v1/groups/cross-site", root, nil)
	// The browser's session itself still works.
	b.Navigate(l.url + "/groups")
	b.WaitText("Logged in as root")
}

// newTLSServer serves h over TLS with cert on 127.0.0.1 and returns its URL.
func newTLSServer(t *testing.T, cert tls.Certificate, h http.Handler) string {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.URL
}

// Certificate (smartcard) login: the TLS listener asks for an optional
// client certificate of the broker's CA. A browser holding a user's
// certificate, downloaded as PKCS#12 from the console, clicks "Log in with
// certificate" and is logged in as that user; a browser without one is
// told what to do.
func TestBrowserCertificateLogin(t *testing.T) {
	l := newLab(t, labOptions{})
	root := l.ready()
	l.apiExpect(http.StatusCreated, "POST", "/api/v1/roles", root, map[string]any{"name": "operator", "rights": []string{"manage-devices", "view-events"}})
	l.apiExpect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "olga", "roles": []string{"operator"}})

	// The administrator downloads olga's certificate and key.
	admin := l.newBrowser(nil)
	l.login(admin, labAdmin, labPassword)
	admin.Navigate(l.url + "/participants/olga/profile")
	admin.Click("PKCS#12 certificate and key (.p12, needs a password)")
	const p12Password = "card PIN 4711"
	admin.Fill("Password for the PKCS#12 file", p12Password)
	p12 := admin.Download(func() { admin.Click("Download") })
	if p12.Name != "olga.p12" {
		t.Errorf("the PKCS#12 download is named %q", p12.Name)
	}
	cert, err := browsertest.ClientCertFromPKCS12(p12.Data, p12Password)
	if err != nil {
		t.Fatal(err)
	}

	b := l.newBrowser(cert)
	b.Navigate(l.url + "/login")
	if status := b.Submit("Log in with certificate"); status != http.StatusOK || l.path(b) != "/" {
		t.Fatalf("certificate login: %d at %s; want the dashboard\n%s", status, l.path(b), b.Text())
	}
	b.WaitText("Logged in as olga")
	// Her rights are the operator's: devices, not users.
	var nav []string
	b.Eval(`[...document.querySelectorAll('nav[aria-label="Main"] a')].map(a => a.textContent)`, &nav)
	if !slices.Contains(nav, "Devices") || slices.Contains(nav, "Users") {
		t.Errorf("olga's navigation: %q", nav)
	}
	if status := b.Navigate(l.url + "/devices"); status != http.StatusOK {
		t.Errorf("olga's /devices: %d", status)
	}
	if status := b.Navigate(l.url + "/users"); status != http.StatusForbidden {
		t.Errorf("olga's /users: %d; want 403", status)
	}
	noProblems(t, b, http.StatusForbidden)

	nocert := l.newBrowser(nil)
	nocert.Navigate(l.url + "/login")
	if status := nocert.Submit("Log in with certificate"); status != http.StatusUnauthorized {
		t.Fatalf("certificate login without a certificate: %d; want 401", status)
	}
	nocert.WaitText("Your browser sent no client certificate.")
	if strings.Contains(nocert.Text(), "Logged in as") {
		t.Errorf("a browser without a certificate is logged in")
	}
}

// An administrator visits every page of the navigation, and the pages
// behind its links: the browser reports no problem (no blocked script or
// style, no failed load, no exception). The keyboard reaches the skip
// link first, and following it moves the focus to the main content.
func TestBrowserEveryPage(t *testing.T) {
	l := newLab(t, labOptions{})
	root := l.ready()
	l.populate(root)
	b := l.newBrowser(nil)
	if status := b.Navigate(l.url + "/login"); status != http.StatusOK {
		t.Fatalf("the login page: %d", status)
	}
	l.login(b, labAdmin, labPassword)

	var nav []string
	b.Eval(`[...document.querySelectorAll('nav[aria-label="Main"] a')].map(a => a.getAttribute('href'))`, &nav)
	want := []string{"/", "/participants", "/sessions", "/users", "/roles", "/devices", "/groups", "/relations",
		"/certificates", "/events", "/licenses", "/backup", "/system", "/profile", "/password"}
	if !slices.Equal(nav, want) {
		t.Errorf("the administrator's navigation: %q; want %q", nav, want)
	}
	for _, p := range append(nav, adminPaths...) {
		if p == "/events/csv" {
			continue // a download, not a page
		}
		if status := b.Navigate(l.url + p); status != http.StatusOK {
			t.Errorf("%s: %d", p, status)
			continue
		}
		var title string
		b.Eval(`document.querySelector('main h1') ? document.querySelector('main h1').textContent : ''`, &title)
		if title == "" {
			t.Errorf("%s has no heading", p)
		}
		// The style sheet applied: the skip link is off screen until
		// focused.
		var left float64
		b.Eval(`document.querySelector('a.skip').getBoundingClientRect().left`, &left)
		if left >= 0 {
			t.Errorf("%s: the skip link is visible unfocused (left %v): the style sheet did not apply", p, left)
		}
	}
	noProblems(t, b)

	// The keyboard: Tab on a fresh page focuses the skip link, shown on
	// screen; Enter moves the focus to the main content.
	b.Navigate(l.url + "/devices")
	if err := chromedp.Do(b.Context(), chromedp.KeyEvent(kb.Tab)); err != nil {
		t.Fatal(err)
	}
	var focus struct {
		Text string  `json:"text"`
		Href string  `json:"href"`
		Left float64 `json:"left"`
	}
	b.Eval(`(() => { const e = document.activeElement; return {text: e.textContent, href: e.getAttribute('href') || '', left: e.getBoundingClientRect().left}; })()`, &focus)
	if focus.Text != "Skip to content" || focus.Href != "#main" || focus.Left < 0 {
		t.Fatalf("the first Tab focuses %+v; want the visible skip link", focus)
	}
	if err := chromedp.Do(b.Context(), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	var active string
	for deadline := time.Now().Add(5 * time.Second); ; {
		b.Eval(`document.activeElement.id`, &active)
		if active == "main" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if active != "main" {
		t.Errorf("after following the skip link the focus is on #%q; want #main", active)
	}
	// The next Tab goes into the content, past the navigation: the first
	// link of the devices table.
	if err := chromedp.Do(b.Context(), chromedp.KeyEvent(kb.Tab)); err != nil {
		t.Fatal(err)
	}
	var inMain bool
	b.Eval(`!!document.activeElement.closest('main')`, &inMain)
	if !inMain {
		var html string
		b.Eval(`document.activeElement.outerHTML`, &html)
		t.Errorf("the Tab after the skip link focuses %s, outside the main content", html)
	}
	noProblems(t, b)
}
