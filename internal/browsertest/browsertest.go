package browsertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/remotegate/remotegate/internal/netns"
)

// Sentinel errors. Tests see them in the messages of failed steps; the
// harness's own tests match them with errors.Is.
var (
	// ErrUnavailable reports that a prerequisite of browser tests is missing.
	ErrUnavailable = errors.New("browsertest: prerequisite missing")
	// ErrNotFound reports that no element matches a field, button or link.
	ErrNotFound = errors.New("browsertest: no such element")
	// ErrAmbiguous reports that more than one element matches.
	ErrAmbiguous = errors.New("browsertest: more than one element matches")
	// ErrDownload reports a download that did not complete.
	ErrDownload = errors.New("browsertest: download failed")
	// ErrSetup reports a failure to prepare the browser's profile.
	ErrSetup = errors.New("browsertest: setup failed")
)

// Browsers New looks for in PATH, in this order: Debian's package is
// chromium; other distributions and Google's packages use the other names.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Defaults of Options.
const (
	DefaultTimeout     = 5 * time.Minute
	DefaultStepTimeout = 30 * time.Second
	DefaultWidth       = 1280
	DefaultHeight      = 900
)

// Options configure New. The zero value starts a browser that trusts no
// private CA and has no client certificate.
type Options struct {
	// TrustCA, if set, is trusted for TLS servers (and only for that), as an
	// administrator would install the broker's CA. nil: only the system's
	// roots, so a server with a private CA is refused.
	TrustCA *x509.Certificate
	// ClientCert, if set, is the certificate (Certificate[0], with any
	// intermediates after it) and private key the browser presents when a
	// server asks for one, chosen without a dialog. nil: the browser has no
	// client certificate and presents none.
	ClientCert *tls.Certificate
	// Timeout bounds the browser's whole life; zero means DefaultTimeout.
	// It is shortened to end before the test's own deadline (go test
	// -timeout), so a hung browser fails the test with a message rather than
	// the test binary with a goroutine dump.
	Timeout time.Duration
	// StepTimeout bounds each helper call (a navigation, waiting for a text,
	// a download); zero means DefaultStepTimeout.
	StepTimeout time.Duration
	// Width and Height set the window size, which is also the width of
	// screenshots; zero means DefaultWidth x DefaultHeight.
	Width, Height int
}

// Browser is one headless Chromium with one tab. Its methods are called from
// the test's goroutine (they call t.Fatal); they are not safe for concurrent
// use.
type Browser struct {
	t           testing.TB
	ctx         context.Context // the tab; ends with the browser
	stepTimeout time.Duration
	root        string // private to this Browser: finds its processes
	dataDir     string // --user-data-dir
	downloadDir string

	mu        sync.Mutex
	mainFrame cdp.FrameID // the tab's top-level frame (its ID is the target's)
	status    int         // of the last main-frame document response
	statusURL string      // its URL
	dialogs   []string
	problems  []string // see Problems
	dismiss   bool     // answer dialogs with Cancel instead of OK
}

// New starts a headless Chromium for t and stops it in t.Cleanup. It skips
// t (fails it when CI is set) when it cannot run: not root, no chromium in
// PATH, or no certutil/pk12util (Debian's libnss3-tools) when TrustCA or
// ClientCert is set.
func New(t testing.TB, opts Options) *Browser {
	t.Helper()
	exe, err := check(opts)
	if err != nil {
		netns.Refuse(t, err)
		return nil // only reached with a testing.TB whose Skip returns
	}
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = DefaultStepTimeout
	}
	if opts.Width <= 0 {
		opts.Width = DefaultWidth
	}
	if opts.Height <= 0 {
		opts.Height = DefaultHeight
	}

	// One directory holds everything the browser writes: created before the
	// browser's cleanup is registered, it is removed after the browser is
	// gone (cleanups run last-in first-out).
	root := t.TempDir()
	b := &Browser{
		t:           t,
		stepTimeout: opts.StepTimeout,
		root:        root,
		dataDir:     filepath.Join(root, "profile"),
		downloadDir: filepath.Join(root, "downloads"),
	}
	home := filepath.Join(root, "home")
	for _, dir := range []string{b.dataDir, b.downloadDir, home} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatalf("%v: %v", ErrSetup, err)
		}
	}
	if err := setupNSS(home, opts.TrustCA, opts.ClientCert); err != nil {
		t.Fatal(err)
	}
	if opts.ClientCert != nil {
		if err := writeAutoSelect(b.dataDir); err != nil {
			t.Fatal(err)
		}
	}

	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(b.dataDir),
		chromedp.WindowSize(opts.Width, opts.Height),
		// Chromium finds the NSS database under $HOME; XDG dirs keep its
		// caches and config in the test's directory too.
		chromedp.Env(
			"HOME="+home,
			"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		),
		// Nothing but the pages a test opens: no component or
		// variations downloads, no sign-in or search-engine prompts.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-search-engine-choice-screen", true),
		chromedp.Flag("no-pings", true),
		// Only localhost and 127.0.0.1 are reachable: a page that loads
		// a script, a font or an image from the internet shows it in
		// Problems, as it would break in a plant without internet. The
		// rules apply to IP literals too (MAP * maps 127.0.0.1 to
		// NOTFOUND), so the loopback address is excluded by name.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to start as root; the pages a test
		// opens are its own.
		allocOpts = append(allocOpts, chromedp.NoSandbox)
	}

	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			// Leave time for the cleanup and the report.
			if left := time.Until(deadline) - 15*time.Second; left < timeout {
				timeout = max(left, time.Second)
			}
		}
	}
	lifeCtx, lifeCancel := context.WithTimeout(context.Background(), timeout)
	allocCtx, allocCancel := chromedp.NewExecAllocator(lifeCtx, allocOpts...)
	tabCtx, tabCancel := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	b.ctx = tabCtx
	t.Cleanup(func() {
		b.stop(func() { tabCancel(); allocCancel(); lifeCancel() })
	})

	// The first call starts the browser and binds its life to the context
	// it is given, so it gets the tab's context itself; the start is bounded
	// by StepTimeout from here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tabCtx) }()
	startTimer := time.NewTimer(opts.StepTimeout)
	defer startTimer.Stop()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("browsertest: starting %s: %v", exe, err)
		}
	case <-startTimer.C:
		tabCancel()
		<-started
		t.Fatalf("browsertest: %s did not start within %v", exe, opts.StepTimeout)
	}
	if c := chromedp.FromContext(tabCtx); c != nil && c.Target != nil {
		b.mu.Lock()
		b.mainFrame = cdp.FrameID(c.Target.TargetID)
		b.mu.Unlock()
	}
	startCtx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(startCtx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, tg, log.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, page.Enable, page.EnableParams{})
		return err
	})); err != nil {
		t.Fatalf("browsertest: enabling events: %v", err)
	}
	if _, err := chromedp.CallBrowser(startCtx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		// allowAndName: files are saved under their download GUID, so two
		// downloads of the same name cannot collide.
		Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName,
		DownloadPath:  b.downloadDir,
		EventsEnabled: new(true),
	}); err != nil {
		t.Fatalf("browsertest: enabling downloads: %v", err)
	}
	return b
}

// isRoot is a variable so that the harness's tests can see the refusal.
var isRoot = func() bool { return os.Geteuid() == 0 }

// check finds the browser and the tools the options need.
func check(opts Options) (exe string, err error) {
	if !isRoot() {
		return "", fmt.Errorf("%w: not running as root (uid %d); the browser tests run as root, like the interop tests they are part of", ErrUnavailable, os.Geteuid())
	}
	exe, err = findBrowser()
	if err != nil {
		return "", err
	}
	if opts.TrustCA != nil || opts.ClientCert != nil {
		for _, tool := range []string{"certutil", "pk12util"} {
			if _, err := exec.LookPath(tool); err != nil {
				return "", fmt.Errorf("%w: %q not found in PATH (Debian package libnss3-tools; install it: make deps): %w", ErrUnavailable, tool, err)
			}
		}
	}
	return exe, nil
}

func findBrowser() (string, error) {
	for _, name := range browserNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: none of %q found in PATH (Debian package chromium; install it: make deps)", ErrUnavailable, browserNames)
}

// listen runs in the tab's event loop: it must return at once and send no
// command (see chromedp.Listen).
func (b *Browser) listen(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if ev.Type != network.ResourceTypeDocument {
			return
		}
		b.mu.Lock()
		if ev.FrameID == b.mainFrame {
			// A navigation that fails before any response must not
			// report the status of the page before it.
			b.status, b.statusURL = 0, ev.Request.URL
		}
		b.mu.Unlock()
	case *network.EventResponseReceived:
		if ev.Type != network.ResourceTypeDocument {
			return
		}
		b.mu.Lock()
		if ev.FrameID == b.mainFrame {
			b.status, b.statusURL = int(ev.Response.Status), ev.Response.URL
		}
		b.mu.Unlock()
	case *log.EventEntryAdded:
		// The browser's own reports: CSP violations, failed loads.
		// The browser asks for /favicon.ico on its own; a page that did
		// not link one is not broken for lacking it.
		if e := ev.Entry; e != nil && e.Level == log.EntryLevelError && !strings.HasSuffix(e.URL, "/favicon.ico") {
			b.problem(string(e.Source) + ": " + e.Text + atURL(e.URL))
		}
	case *runtime.EventExceptionThrown:
		if d := ev.ExceptionDetails; d != nil {
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text += " " + d.Exception.Description
			}
			b.problem("exception: " + text + atURL(d.URL))
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				}
			}
			b.problem("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
		}
	case *page.EventJavascriptDialogOpening:
		b.mu.Lock()
		b.dialogs = append(b.dialogs, ev.Message)
		accept := !b.dismiss
		b.mu.Unlock()
		// A dialog blocks the page, and with it the action that opened
		// it; it is answered from another goroutine.
		go func() {
			_, _ = chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept})
		}()
	}
}

func (b *Browser) problem(p string) {
	b.mu.Lock()
	b.problems = append(b.problems, p)
	b.mu.Unlock()
}

func atURL(u string) string {
	if u == "" {
		return ""
	}
	return " (" + u + ")"
}

// stop closes the browser, then makes sure none of its processes is left.
func (b *Browser) stop(cancelAll func()) {
	b.t.Helper()
	closeCtx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	err := chromedp.Cancel(closeCtx) // Browser.close, then wait for the process
	cancel()
	cancelAll() // kills the process if the close did not end it, and waits
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		b.t.Logf("browsertest: closing the browser: %v", err)
	}
	if left := waitGone(b.root, 10*time.Second); len(left) > 0 {
		b.t.Errorf("browsertest: chromium processes left behind after the browser closed (killed now): %v", left)
	}
}

// Context returns the tab's chromedp context, for steps the helpers do not
// offer (chromedp.Run(b.Context(), ...)). It ends when the browser stops.
func (b *Browser) Context() context.Context { return b.ctx }

// step returns the context for one helper call.
func (b *Browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, b.stepTimeout)
}
