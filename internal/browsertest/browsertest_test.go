package browsertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html"
	"image/png"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/testpki"
)

// site is the TLS test server the harness is tried against: a small
// application with a form, a download, a forbidden page, a page that names
// the client certificate, and a script under a strict
// Content-Security-Policy (as the console has).
type site struct {
	URL  string // https://localhost:port, the name in the server certificate
	CA   *testpki.CA
	File []byte // what /file serves

	mu      sync.Mutex
	posted  []url.Values
	peerCNs []string // CN of the client certificate of each /whoami ("" if none)
}

const appJS = `
document.getElementById('delete').addEventListener('click', () => {
  const out = document.getElementById('result');
  out.textContent = confirm('Delete the device plc-7?') ? 'Deleted plc-7' : 'Kept plc-7';
});
document.getElementById('later').addEventListener('click', () => {
  setTimeout(() => { document.getElementById('result').textContent = 'Loaded later'; }, 300);
});
`

const formPage = `<!doctype html>
<html><head><title>Test</title><script src="/app.js" defer></script></head>
<body>
<h1>Hello from the test site</h1>
<form method="post" action="/save">
  <label for="name">Name *</label> <input id="name" name="name">
  <label>Colour <select name="colour"><option value="r">Red</option><option value="g">Green</option></select></label>
  <label for="notes">Notes:</label> <textarea id="notes" name="notes"></textarea>
  <input type="hidden" name="hidden" value="h">
  <button type="submit">Save</button>
</form>
<button type="button" id="delete">Delete</button>
<button type="button" id="later">Later</button>
<button type="button">Twice</button> <button type="button">Twice</button>
<p id="result"></p>
<a href="/forbidden">Admin area</a>
</body></html>`

func newSite(t *testing.T) *site {
	t.Helper()
	return newSiteIn(t, nil)
}

// newSiteIn is newSite listening on the loopback address of the namespace
// ns (nil: the test's own).
func newSiteIn(t *testing.T, ns *netns.NS) *site {
	t.Helper()
	ca := testpki.New(t, "browsertest test CA")
	srv := ca.Server(t, "localhost", "localhost")
	s := &site{CA: ca, File: make([]byte, 64<<10)}
	_, _ = rand.Read(s.File) // binary, with every byte value: no text mangling passes

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3cr3t", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		io.WriteString(w, formPage)
	})
	mux.HandleFunc("GET /app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, appJS)
	})
	mux.HandleFunc("POST /save", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.posted = append(s.posted, r.PostForm)
		s.mu.Unlock()
		fmt.Fprintf(w, "<!doctype html><p>Saved %s</p>", html.EscapeString(r.PostForm.Get("name")))
	})
	mux.HandleFunc("GET /download", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<!doctype html><a href="/file">Download profile</a>`)
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="u1.ovpn"`)
		w.Write(s.File)
	})
	mux.HandleFunc("GET /forbidden", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "<!doctype html><p>Forbidden: administrators only</p>")
	})
	mux.HandleFunc("GET /old-admin", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/forbidden", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		s.mu.Lock()
		s.peerCNs = append(s.peerCNs, cn)
		s.mu.Unlock()
		fmt.Fprintf(w, "<!doctype html><p>certificate: %q</p>", cn)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<!doctype html><p>Broken page</p>
<script>document.title = 'inline ran';</script>
<img src="https://cdn.example.com/logo.png" alt="">
<script src="/throws.js"></script>`)
	})
	mux.HandleFunc("GET /nocsp/cdn", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<!doctype html><p>Font from the internet</p><link rel="stylesheet" href="https://fonts.example.com/font.css">`)
	})
	mux.HandleFunc("GET /throws.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, "console.error('shown to nobody'); throw new Error('plc-7 table failed');")
	})
	mux.HandleFunc("GET /long", func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		b.WriteString(`<!doctype html><body style="margin:0">`)
		for i := range 30 {
			fmt.Fprintf(&b, `<div style="height:100px;background:#%02x%02x%02x">row %d</div>`, i*8, 255-i*8, 128, i)
		}
		io.WriteString(w, b.String())
	})

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As strict as the console's: no inline script, no eval. The
		// pages under /nocsp/ go without, to see what a policy hides.
		if !strings.HasPrefix(r.URL.Path, "/nocsp/") {
			w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
		}
		mux.ServeHTTP(w, r)
	}))
	ts.TLS = &tls.Config{
		Certificates: []tls.Certificate{srv.TLS},
		// As the console's listener: a client certificate is asked for,
		// not required.
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
	}
	// Browsers open spare connections they close unused; their handshake
	// errors are noise here.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	if ns != nil {
		// The socket is opened inside the namespace and stays there; the
		// server's goroutines may run on any thread.
		var ln net.Listener
		if err := ns.Do(func() (err error) {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		ts.Listener.Close()
		ts.Listener = ln
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "https://localhost:" + u.Port()
	return s
}

func (s *site) Posted() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.posted)
}

func (s *site) PeerCNs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.peerCNs)
}

func TestPageTextAndFormPost(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{TrustCA: s.CA.Cert})

	if got := b.Navigate(s.URL + "/"); got != http.StatusOK {
		t.Fatalf("Navigate = %d, want 200", got)
	}
	if text := b.Text(); !strings.Contains(text, "Hello from the test site") {
		t.Fatalf("page text = %q", text)
	}
	b.Fill("Name", `Ada <b>&"x"`) // label "Name *": the marker is ignored
	b.Fill("Colour", "Green")     // a select by option text, label wrapping it
	b.Fill("notes", "first line\nsecond line")
	b.Fill("notes", "replaced") // filling again replaces, as a person would
	if got := b.Submit("Save"); got != http.StatusOK {
		t.Fatalf("Submit = %d, want 200", got)
	}
	b.WaitText(`Saved Ada <b>&"x"`)

	posted := s.Posted()
	if len(posted) != 1 {
		t.Fatalf("server got %d POSTs, want 1", len(posted))
	}
	want := url.Values{"name": {`Ada <b>&"x"`}, "colour": {"g"}, "notes": {"replaced"}, "hidden": {"h"}}
	if fmt.Sprint(posted[0]) != fmt.Sprint(want) {
		t.Fatalf("server got %v, want %v", posted[0], want)
	}
	if got := b.Status(); got != http.StatusOK {
		t.Fatalf("Status after the POST = %d, want 200", got)
	}
}

func TestStatusOfForbiddenPage(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{TrustCA: s.CA.Cert})

	if got := b.Navigate(s.URL + "/forbidden"); got != http.StatusForbidden {
		t.Fatalf("Navigate = %d, want 403", got)
	}
	if got := b.Status(); got != http.StatusForbidden {
		t.Fatalf("Status = %d, want 403", got)
	}
	b.WaitText("administrators only")

	// The same page reached by a link, and then a page that is allowed:
	// the status follows the document shown.
	b.Navigate(s.URL + "/")
	if got := b.Status(); got != http.StatusOK {
		t.Fatalf("Status on the start page = %d, want 200", got)
	}
	if got := b.Submit("Admin area"); got != http.StatusForbidden {
		t.Fatalf("following the link = %d, want 403", got)
	}
	if got := b.Status(); got != http.StatusForbidden {
		t.Fatalf("Status after the link = %d, want 403", got)
	}

	// A redirect is followed: the status is the page's the person sees.
	if got := b.Navigate(s.URL + "/old-admin"); got != http.StatusForbidden || b.Status() != http.StatusForbidden {
		t.Fatalf("Navigate through a redirect = %d, Status %d; want 403", got, b.Status())
	}
	if u := b.URL(); !strings.HasSuffix(u, "/forbidden") {
		t.Fatalf("URL after the redirect = %s", u)
	}
}

func TestDownload(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{TrustCA: s.CA.Cert})

	b.Navigate(s.URL + "/download")
	d := b.Download(func() { b.Click("Download profile") })
	if d.Name != "u1.ovpn" {
		t.Errorf("Name = %q, want u1.ovpn", d.Name)
	}
	if !bytes.Equal(d.Data, s.File) {
		t.Fatalf("downloaded %d bytes, want the %d bytes served", len(d.Data), len(s.File))
	}
	onDisk, err := os.ReadFile(d.Path)
	if err != nil || !bytes.Equal(onDisk, s.File) {
		t.Fatalf("file at %s: %d bytes, err %v; want the bytes served", d.Path, len(onDisk), err)
	}

	// A second download of the same name is a file of its own.
	d2 := b.Download(func() { b.Click("Download profile") })
	if d2.Path == d.Path || !bytes.Equal(d2.Data, s.File) {
		t.Fatalf("second download at %s (first at %s), %d bytes", d2.Path, d.Path, len(d2.Data))
	}
}

// requireBrowser refuses, as New does, a test that checks something after
// its subtests: when they are skipped there is nothing to check.
func requireBrowser(t *testing.T) {
	t.Helper()
	Require(t, Options{ClientCert: &tls.Certificate{}, Netns: "any"})
}

func TestClientCertificate(t *testing.T) {
	requireBrowser(t)
	s := newSite(t)
	alice := s.CA.Client(t, "alice")

	t.Run("presented", func(t *testing.T) {
		b := New(t, Options{TrustCA: s.CA.Cert, ClientCert: &alice.TLS})
		b.Navigate(s.URL + "/whoami")
		b.WaitText(`certificate: "alice"`)
	})
	t.Run("none without the option", func(t *testing.T) {
		b := New(t, Options{TrustCA: s.CA.Cert})
		b.Navigate(s.URL + "/whoami")
		b.WaitText(`certificate: ""`)
	})
	// What the server saw, not only what the page says.
	if got := s.PeerCNs(); !slices.Equal(got, []string{"alice", ""}) {
		t.Fatalf("server saw client certificates %q, want [alice, none]", got)
	}
}

func TestClientCertFromPKCS12(t *testing.T) {
	s := newSite(t)
	bob := s.CA.Client(t, "bob")
	p12, err := encodePKCS12(&bob.TLS, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ClientCertFromPKCS12(p12, "wrong"); err == nil {
		t.Fatal("decoding with the wrong password succeeded")
	}
	cert, err := ClientCertFromPKCS12(p12, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.Subject.CommonName != "bob" || len(cert.Certificate) != 1 {
		t.Fatalf("decoded %q with %d certificates, want bob alone", cert.Leaf.Subject.CommonName, len(cert.Certificate))
	}

	b := New(t, Options{TrustCA: s.CA.Cert, ClientCert: cert})
	b.Navigate(s.URL + "/whoami")
	b.WaitText(`certificate: "bob"`)
}

// The CA is trusted by importing it, not by ignoring certificate errors:
// without it the same server is refused.
func TestServerOfUntrustedCARefused(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{})
	_, err := b.TryNavigate(s.URL + "/")
	if err == nil || !strings.Contains(err.Error(), "CERT") {
		t.Fatalf("TryNavigate to a server of an untrusted CA = %v, want a certificate error", err)
	}

	other := testpki.New(t, "another CA")
	b = New(t, Options{TrustCA: other.Cert})
	if _, err := b.TryNavigate(s.URL + "/"); err == nil {
		t.Fatal("a browser trusting another CA loaded the page")
	}
}

func TestScriptDialogsAndWaiting(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{TrustCA: s.CA.Cert})
	b.Navigate(s.URL + "/")

	b.Click("Delete")
	b.WaitText("Deleted plc-7")
	b.AnswerDialogs(false)
	b.Click("delete") // by id
	b.WaitText("Kept plc-7")
	if got := b.Dialogs(); !slices.Equal(got, []string{"Delete the device plc-7?", "Delete the device plc-7?"}) {
		t.Fatalf("Dialogs = %q", got)
	}

	// A change that comes after the click returns.
	b.Click("css:#later")
	b.WaitText("Loaded later")
	b.WaitNoText("Kept plc-7")
}

// A page that works reports no problem; one with an inline script under the
// CSP, an image from the internet and a failing script reports each.
func TestProblems(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{TrustCA: s.CA.Cert})

	b.Navigate(s.URL + "/")
	b.Click("Delete")
	b.WaitText("Deleted plc-7") // the page's script ran
	if got := b.Problems(); len(got) != 0 {
		t.Fatalf("Problems of a working page = %q", got)
	}

	b.Navigate(s.URL + "/broken")
	waitProblems(t, b, "Content Security Policy", "cdn.example.com", "plc-7 table failed", "shown to nobody")
	var title string
	b.Eval("document.title", &title)
	if title == "inline ran" {
		t.Fatal("the inline script ran despite the Content-Security-Policy")
	}

	// Without a policy to stop it, a stylesheet from the internet is
	// requested, and fails: the browser reaches nothing beyond loopback.
	b.Navigate(s.URL + "/nocsp/cdn")
	waitProblems(t, b, "fonts.example.com")
}

// waitProblems waits until every one of want is part of some problem.
func waitProblems(t *testing.T, b *Browser, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := strings.Join(b.Problems(), "\n")
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return strings.Contains(all, w) })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Problems = %q, missing %q", b.Problems(), missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFindRefusesMissingAndAmbiguous(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{TrustCA: s.CA.Cert})
	b.Navigate(s.URL + "/")
	b.stepTimeout = time.Second

	if _, err := b.find("click", "Twice"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("find of two buttons = %v, want ErrAmbiguous", err)
	}
	if _, err := b.find("click", "No such button"); !errors.Is(err, ErrNotFound) {
		t.Errorf("find of a missing button = %v, want ErrNotFound", err)
	}
	if _, err := b.find("field", "hidden"); !errors.Is(err, ErrNotFound) {
		t.Errorf("find of a hidden input = %v, want ErrNotFound: a person cannot fill it", err)
	}
	if _, err := b.find("text", "Not on the page"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for absent text = %v, want DeadlineExceeded", err)
	}
}

func TestCookies(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{TrustCA: s.CA.Cert})
	b.Navigate(s.URL + "/")
	var got *http.Cookie
	for _, c := range b.Cookies() {
		if c.Name == "session" {
			got = c
		}
	}
	if got == nil || got.Value != "s3cr3t" || !got.HttpOnly || !got.Secure || got.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie = %+v, want s3cr3t, HttpOnly, Secure, SameSite=Strict", got)
	}
}

func TestScreenshot(t *testing.T) {
	s := newSite(t)
	b := New(t, Options{TrustCA: s.CA.Cert, Width: 800, Height: 600})
	b.Navigate(s.URL + "/long")
	b.WaitText("row 29")

	path := t.TempDir() + "/shots/long.png"
	b.SaveScreenshot(path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	size := img.Bounds().Size()
	// The whole page (30 rows of 100 px), not only the window.
	if size.X != 800 || size.Y < 3000 {
		t.Fatalf("screenshot is %v, want 800 wide and the page's 3000 px high", size)
	}
	// Rows of different colours, top to bottom: the page was drawn.
	top, bottom := img.At(400, 50), img.At(400, 2950)
	if top == bottom {
		t.Fatalf("top and bottom of the screenshot have the same colour %v", top)
	}
	if len(data) < 5000 {
		t.Fatalf("screenshot is %d bytes, too small to show the page", len(data))
	}
}

func TestNoProcessLeftBehind(t *testing.T) {
	requireBrowser(t)
	s := newSite(t)
	var root string
	t.Run("browser", func(t *testing.T) {
		b := New(t, Options{TrustCA: s.CA.Cert})
		b.Navigate(s.URL + "/")
		root = b.root
		if pids := processesOf(root); len(pids) < 2 {
			// The browser and at least its renderer.
			t.Fatalf("processes of the running browser: %v, want several", pids)
		}
	})
	if pids := processesOf(root); len(pids) != 0 {
		t.Fatalf("processes left after the test: %v", pids)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the browser's directory is still there: %v", err)
	}
}

func TestRefusesWithoutPrerequisites(t *testing.T) {
	old := isRoot
	isRoot = func() bool { return false }
	_, err := check(Options{})
	isRoot = old
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "root") {
		t.Fatalf("check without root = %v, want ErrUnavailable naming root", err)
	}
	if !isRoot() {
		t.Skip("the remaining checks come after the root check")
	}

	t.Setenv("PATH", t.TempDir())
	if _, err := check(Options{}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "chromium") {
		t.Fatalf("check without a browser = %v, want ErrUnavailable naming chromium", err)
	}
}

// netnsOf is the network namespace of the process pid, as the kernel names
// it ("net:[4026532...]").
func netnsOf(pid int) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
}

// With Netns the browser runs in the namespace: it opens a server on that
// namespace's loopback address, not one on the test's, and every one of its
// processes is in there.
func TestNetns(t *testing.T) {
	requireBrowser(t)
	netns.Require(t)
	ns := netns.New(t, "brtest")
	inside := newSiteIn(t, ns)
	outside := newSite(t)

	b := New(t, Options{TrustCA: inside.CA.Cert, Netns: ns.Name})
	if got := b.Navigate(inside.URL + "/"); got != http.StatusOK {
		t.Fatalf("Navigate to the server in the namespace = %d, want 200", got)
	}
	b.WaitText("Hello from the test site")
	if _, err := b.TryNavigate(outside.URL + "/"); err == nil {
		t.Fatalf("the browser in %s reached a server on the test's own loopback", ns.Name)
	}

	var want string
	if err := ns.Do(func() (err error) {
		want, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pids := processesOf(b.root)
	if len(pids) < 2 {
		t.Fatalf("processes of the running browser: %v, want several", pids)
	}
	for _, pid := range pids {
		got, err := netnsOf(pid)
		if err != nil {
			continue // a helper that exited meanwhile
		}
		if got != want {
			t.Errorf("browser process %d is in %s, want %s (the namespace %s)", pid, got, want, ns.Name)
		}
	}

	// Without the option the same server is out of reach: the browser
	// runs in the test's namespace.
	plain := New(t, Options{TrustCA: inside.CA.Cert})
	if _, err := plain.TryNavigate(inside.URL + "/"); err == nil {
		t.Fatal("a browser without Netns reached the server in the namespace")
	}
}

func TestNetnsMustExist(t *testing.T) {
	if err := checkNetns(""); err != nil {
		t.Fatalf("checkNetns(\"\") = %v, want nil: no namespace asked for", err)
	}
	for _, name := range []string{"rg-no-such-namespace", "../etc", "."} {
		if err := checkNetns(name); !errors.Is(err, ErrSetup) {
			t.Errorf("checkNetns(%q) = %v, want ErrSetup", name, err)
		}
	}
}

// IP addresses are reached (the console of a broker listens on 127.0.0.1),
// names other than localhost are not.
func TestIPAddressesResolve(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!doctype html><p>Reached by address</p>")
	})
	v4 := httptest.NewServer(page)
	t.Cleanup(v4.Close)
	b := New(t, Options{})
	if got := b.Navigate(v4.URL + "/"); got != http.StatusOK {
		t.Fatalf("Navigate to %s = %d, want 200", v4.URL, got)
	}
	b.WaitText("Reached by address")

	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		v6 := httptest.NewUnstartedServer(page)
		v6.Listener.Close()
		v6.Listener = ln
		v6.Start()
		t.Cleanup(v6.Close)
		if got := b.Navigate(v6.URL + "/"); got != http.StatusOK {
			t.Fatalf("Navigate to %s = %d, want 200", v6.URL, got)
		}
	} else {
		t.Logf("no IPv6 loopback here (%v): only IPv4 tried", err)
	}

	_, port, _ := net.SplitHostPort(v4.Listener.Addr().String())
	for _, name := range []string{"example.com", "1password.com", "www.example.com"} {
		_, err := b.TryNavigate("http://" + name + ":" + port + "/")
		if err == nil || !strings.Contains(err.Error(), "ERR_NAME_NOT_RESOLVED") {
			t.Errorf("Navigate to %s = %v, want ERR_NAME_NOT_RESOLVED", name, err)
		}
	}
}
