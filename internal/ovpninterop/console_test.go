package ovpninterop

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/browsertest"
	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/pki"
)

// consoleYAML is the plant lab's network without its model: the
// administrator builds the model in the web console.
const consoleYAML = `
public_address: 10.99.1.1
pool: 10.8.0.0/24
user_routes: [10.200.0.0/16]
licenses:
  - file: rg-64.lic
`

// consoleURL is the console as a person at the broker's machine opens it:
// the broker's default HTTPS address, in the broker's namespace.
const consoleURL = "https://127.0.0.1:8443"

// TestConsoleEndToEnd: issue 15 §3, the console with stock OpenVPN. An
// administrator, in a real browser, bootstraps the broker, builds the model
// (groups, a device with an aliased LAN, a user, a relation), downloads the
// profiles with which stock openvpn clients connect and the user reaches
// the host behind the device under its alias; then terminates the user's
// session from the sessions page (its tunnel drops) and revokes its
// certificate from the certificates page (its reconnect is refused).
func TestConsoleEndToEnd(t *testing.T) {
	// The browser's prerequisites (chromium, certutil for the CA, ip for
	// the namespace) before the lab is built.
	browsertest.Require(t, browsertest.Options{TrustCA: new(x509.Certificate), Netns: "the broker's"})
	l := newPlantLab(t)
	WriteFile(t, filepath.Dir(l.yaml), filepath.Base(l.yaml), consoleYAML)
	l.start()
	m := regexp.MustCompile(`one-time password (\S+)`).FindStringSubmatch(l.broker.Log())
	if m == nil {
		t.Fatalf("the broker printed no bootstrap password:\n%s", l.broker.Log())
	}
	otp := m[1]

	// The administrator installs the broker's CA in the browser, as the
	// system page tells; here it comes from the enrollment endpoint.
	var caPEM string
	l.must(http.StatusOK, "GET", "/.well-known/est/cacerts", nil, &caPEM)
	block, _ := pem.Decode([]byte(caPEM))
	if block == nil {
		t.Fatalf("GET /.well-known/est/cacerts: no PEM certificate in %q", caPEM)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("the broker's CA certificate: %v", err)
	}
	b := browsertest.New(t, browsertest.Options{TrustCA: ca, Netns: l.brk.Name, StepTimeout: 20 * time.Second})

	// 1. Bootstrap: admin with the one-time password is led to name the
	// administrator, then logged out; the password does not work twice.
	b.Navigate(consoleURL + "/")
	b.WaitText("With name and password")
	logIn(b, "admin", otp)
	b.WaitText("Name the real administrator now")
	const rootPassword = "root's long password"
	b.Fill("Administrator's name", "root")
	b.Fill("Password (at least 12 characters)", rootPassword)
	b.Fill("Password again", rootPassword)
	if got := b.Submit("Name the administrator"); got != http.StatusOK {
		t.Fatalf("naming the administrator: status %d\n%s", got, b.Text())
	}
	b.WaitText("With name and password")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the bootstrap pages reported problems in the browser: %q", p)
	}
	if got := logIn(b, "admin", otp); got != http.StatusUnauthorized || strings.Contains(b.Text(), "Logged in as") {
		t.Fatalf("the one-time password a second time: status %d, want 401 and the login page:\n%s", got, b.Text())
	}
	// The browser reports the refused login's 401 as a failed load; any
	// other problem counts.
	refused := len(b.Problems())
	for _, p := range b.Problems() {
		if !strings.Contains(p, "401") {
			t.Errorf("the refused login reported a problem in the browser: %q", p)
		}
	}
	logIn(b, "root", rootPassword)
	b.WaitText("Logged in as root")

	// 2. The model, through the pages.
	for _, g := range []string{"engineers", "plant1"} {
		openPage(t, b, "Groups")
		b.Fill("Name", g)
		submitOK(t, b, "Create the group")
		b.WaitText(g)
	}
	openPage(t, b, "Devices")
	b.Fill("Name", "dev1")
	b.Fill("LAN networks, one a line", "192.168.0.0/24 as 10.200.1.0/24")
	b.Fill("Participant groups (comma-separated)", "plant1")
	submitOK(t, b, "Create the device")
	b.WaitText("192.168.0.0/24 as 10.200.1.0/24")
	openPage(t, b, "Users")
	b.Fill("Name", "u1")
	b.Fill("Roles (comma-separated)", "vpn_user")
	b.Fill("Participant groups (comma-separated)", "engineers")
	submitOK(t, b, "Create the user")
	openPage(t, b, "Relations")
	b.Fill("Name", "engineers-plant1")
	b.Fill("From group", "engineers")
	b.Fill("To group", "plant1")
	b.Fill("Services (comma-separated; empty: any)", "icmp")
	submitOK(t, b, "Create the relation")
	b.WaitText("Disable engineers-plant1") // listed, enabled

	// 3. The profiles, downloaded from the pages. The user's is used as
	// it is; the plant gateway reaches the broker on its own link.
	openPage(t, b, "Users")
	openPage(t, b, "u1")
	openPage(t, b, "Download a profile (new certificate) for u1")
	u1Profile := downloadOVPN(t, b, "u1")
	openPage(t, b, "Devices")
	openPage(t, b, "dev1")
	openPage(t, b, "Download a profile")
	dev1Profile := strings.Replace(string(downloadOVPN(t, b, "dev1")), "remote 10.99.1.1 1194", "remote 10.99.3.1 1194", 1)
	if !strings.Contains(dev1Profile, "remote 10.99.3.1 1194") {
		t.Fatalf("dev1's profile does not name the public address 10.99.1.1:\n%s", dev1Profile)
	}
	serial := profileSerial(t, u1Profile)

	u1Path := WriteFile(t, t.TempDir(), "u1.ovpn", string(u1Profile))
	dev1 := l.ns["dev1"].Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "dev1.ovpn", dev1Profile))
	u1 := l.ns["u1"].Start(t, "openvpn", "--config", u1Path)
	dev1.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	u1.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	u1Addr := tunnelAddr(t, u1.Log())
	if got := l.ns["u1"].Ping(t, alias1, 3); got != 3 {
		t.Fatalf("u1 -> the host behind dev1 under its alias %v: %d of 3 answered", alias1, got)
	}

	// 4. The sessions page lists u1's session; terminating it there drops
	// the tunnel (the broker tells the client, which restarts).
	openPage(t, b, "Sessions")
	b.WaitText(u1Addr.String())
	openPage(t, b, `css:a[href="/sessions/u1/terminate"]`)
	b.WaitText("Terminate the session of u1?")
	submitOK(t, b, "Terminate")
	b.WaitText("Terminated the session of u1.")
	waitLogCount(t, u1, "Connection reset command was pushed by server", 1, 5*time.Second)
	// The user may connect again: it is neither disabled nor revoked.
	waitLogCount(t, u1, "Initialization Sequence Completed", 2, openvpnTimeout)
	if d := pingWithin(l.ns["u1"], alias1, 10*time.Second); d < 0 {
		t.Fatal("u1 does not reach the host behind dev1 after reconnecting")
	}
	openPage(t, b, "Events")
	b.Fill("Participant", "u1")
	b.Fill("Kind", "disconnect")
	submitOK(t, b, "Filter")
	b.WaitText("session terminated by an administrator")

	// 5. Revoking u1's certificate on the certificates page ends its
	// session; the client's own reconnect is refused, and so is a client
	// started anew, and the event log says why.
	openPage(t, b, "Certificates")
	openPage(t, b, `css:a[href="/certificates/`+serial+`/revoke"]`)
	b.WaitText("Revoke the certificate " + serial + "?")
	b.Fill("Reason", "key compromise")
	submitOK(t, b, "Revoke")
	b.WaitText("Revoked the certificate " + serial + ".")
	waitLogCount(t, u1, "Connection reset command was pushed by server", 2, 5*time.Second)
	// The person at the client sees the broker refuse its certificate.
	const refusedCert = `SSL alert.*(bad|revoked) certificate`
	u1.WaitLog(t, refusedCert, openvpnTimeout)
	_ = u1.Stop()
	// Each refusal the client saw is an event; those of the stopped
	// client are counted before the new one starts.
	refusals := consoleURL + "/events?" + url.Values{"participant": {"u1"}, "kind": {"auth_failure"}}.Encode()
	before := waitPageCount(t, b, refusals, "VPN handshake refused", len(regexp.MustCompile(refusedCert).FindAllString(u1.Log(), -1)), 10*time.Second)
	restarted := l.ns["u1"].Start(t, "openvpn", "--config", u1Path)
	restarted.WaitLog(t, refusedCert, openvpnTimeout)
	waitPageCount(t, b, refusals, "VPN handshake refused", before+1, 10*time.Second)
	if text := b.Text(); !strings.Contains(text, "certificate revoked") || !strings.Contains(text, "serial "+serial) {
		t.Errorf("the event log does not say that the certificate %s was revoked:\n%s", serial, text)
	}
	if d := pingWithin(l.ns["u1"], alias1, 2*time.Second); d >= 0 {
		t.Fatal("u1 reached the host behind dev1 with a revoked certificate")
	}
	if strings.Contains(restarted.Log(), "Initialization Sequence Completed") {
		t.Fatalf("the client with the revoked certificate connected:\n%s", restarted.Log())
	}
	openPage(t, b, "Sessions")
	if strings.Contains(b.HTML(), `href="/sessions/u1/terminate"`) {
		t.Fatalf("u1 is listed among the live sessions after the revocation:\n%s", b.Text())
	}
	b.WaitText("dev1") // the plant gateway is still there

	if p := b.Problems()[refused:]; len(p) > 0 {
		t.Errorf("the console's pages reported problems in the browser: %q", p)
	}
}

// logIn fills the login form and submits it; it returns the status.
func logIn(b *browsertest.Browser, name, password string) int {
	b.Fill("Name", name)
	b.Fill("Password", password)
	return b.Submit("Log in")
}

// openPage follows a link (or submits a button) and fails unless the page
// it loads is 200.
func openPage(t *testing.T, b *browsertest.Browser, target string) {
	t.Helper()
	if got := b.Submit(target); got != http.StatusOK {
		t.Fatalf("%s: status %d at %s\n%s", target, got, b.URL(), b.Text())
	}
}

// submitOK submits a form; the page after it (the redirect's target) must
// be 200 and show no error.
func submitOK(t *testing.T, b *browsertest.Browser, button string) {
	t.Helper()
	openPage(t, b, button)
	if strings.Contains(b.HTML(), `role="alert"`) {
		t.Fatalf("%s: the page shows an error:\n%s", button, b.Text())
	}
}

// downloadOVPN downloads the .ovpn profile from the profile page shown.
func downloadOVPN(t *testing.T, b *browsertest.Browser, name string) []byte {
	t.Helper()
	b.WaitText("Each download carries a new certificate and key for " + name)
	b.Click("OpenVPN profile (.ovpn)")
	d := b.Download(func() { b.Click("Download") })
	if d.Name != name+".ovpn" || !strings.Contains(string(d.Data), "<cert>") {
		t.Fatalf("downloaded %q (%d bytes), want %s.ovpn with its certificate:\n%s", d.Name, len(d.Data), name, d.Data)
	}
	return d.Data
}

// profileSerial is the serial of the client certificate in an .ovpn
// profile, as the console writes serials.
func profileSerial(t *testing.T, profile []byte) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<cert>(.*?)</cert>`).FindSubmatch(profile)
	if m == nil {
		t.Fatalf("no <cert> in the profile:\n%s", profile)
	}
	block, _ := pem.Decode(m[1])
	if block == nil {
		t.Fatalf("no PEM certificate in the profile's <cert>:\n%s", m[1])
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("the profile's certificate: %v", err)
	}
	return pki.SerialString(cert.SerialNumber)
}

// waitLogCount waits until pattern occurs at least n times in the log.
func waitLogCount(t *testing.T, p *netns.Process, pattern string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for strings.Count(p.Log(), pattern) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q did not occur %d times within %v:\n%s", pattern, n, within, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pageText loads u and returns its text.
func pageText(t *testing.T, b *browsertest.Browser, u string) string {
	t.Helper()
	if got := b.Navigate(u); got != http.StatusOK {
		t.Fatalf("%s: status %d\n%s", u, got, b.Text())
	}
	return b.Text()
}

// waitPageCount reloads u until text occurs at least n times on it, as a
// person presses reload until an event shows, and returns how often it
// occurs.
func waitPageCount(t *testing.T, b *browsertest.Browser, u, text string, n int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		page := pageText(t, b, u)
		if c := strings.Count(page, text); c >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not show %q %d times within %v:\n%s", u, text, n, within, page)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
