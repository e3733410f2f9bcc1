package browsertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// CSSPrefix marks a target of Fill, Click or Submit as a CSS selector rather
// than a label, a text or an id: "css:tr[data-name=u1] button".
const CSSPrefix = "css:"

// Navigate opens url, waits for the page to load and returns the HTTP status
// of its document (also for error pages: 403 is a status, not a failure).
// The test fails if the page does not load, e.g. on a TLS error.
func (b *Browser) Navigate(url string) int {
	b.t.Helper()
	status, err := b.TryNavigate(url)
	if err != nil {
		b.fatalf("navigate to %s: %v", url, err)
	}
	return status
}

// TryNavigate is Navigate for a page that is expected not to load (a
// refused certificate, say): it returns the error instead of failing.
func (b *Browser) TryNavigate(url string) (int, error) {
	var resp *network.Response
	var err error
	for attempt := 0; ; attempt++ {
		resp, err = b.navigate(url)
		// Chromium aborts a load when it sees the addresses of its
		// namespace change; a person would load the page again, and so
		// do we, a bounded number of times. Navigations are GETs, so
		// loading again repeats nothing.
		if err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") || attempt == 2 {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	if resp == nil {
		return 0, fmt.Errorf("browsertest: %s: no response", url)
	}
	return int(resp.Status), nil
}

// Status returns the HTTP status of the last document the tab loaded (by
// Navigate, Submit, a click or a script), or 0 if the last navigation got
// no response.
func (b *Browser) Status() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// URL returns the address of the page shown.
func (b *Browser) URL() string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("browsertest: reading the location: %v", err)
	}
	return u
}

// Text returns the text of the page as a person sees it (innerText of the
// body: hidden elements left out, blocks on lines of their own).
func (b *Browser) Text() string {
	b.t.Helper()
	s, err := b.text()
	if err != nil {
		b.t.Fatalf("browsertest: reading the page text: %v", err)
	}
	return s
}

func (b *Browser) text() (string, error) {
	ctx, cancel := b.step()
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
}

// HTML returns the markup of the page as the browser holds it now.
func (b *Browser) HTML() string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		b.t.Fatalf("browsertest: reading the page markup: %v", err)
	}
	return s
}

// WaitText waits until the page's text contains text.
func (b *Browser) WaitText(text string) {
	b.t.Helper()
	if _, err := b.find("text", text); err != nil {
		b.fatalf("waiting for the text %q: %v", text, err)
	}
}

// WaitNoText waits until the page's text no longer contains text.
func (b *Browser) WaitNoText(text string) {
	b.t.Helper()
	if _, err := b.find("notext", text); err != nil {
		b.fatalf("waiting for the text %q to go: %v", text, err)
	}
}

// Fill types value into the form field target: the field whose label reads
// target (ignoring a trailing ':' or '*'), else the element with that id,
// aria-label or placeholder, or a CSS selector after CSSPrefix. The field's
// content is replaced. A <select> gets the option whose value or text is
// value; a file input gets the file at path value.
func (b *Browser) Fill(target, value string) {
	b.t.Helper()
	sel, err := b.find("field", target)
	if err != nil {
		b.fatalf("fill %q: %v", target, err)
	}
	ctx, cancel := b.step()
	defer cancel()
	how, err := b.eval(ctx, prepareFillJS, sel, value)
	if err != nil {
		b.fatalf("fill %q: %v", target, err)
	}
	var mode string
	if err := json.Unmarshal(how, &mode); err != nil {
		b.fatalf("fill %q: %v", target, err)
	}
	switch mode {
	case "done":
	case "keys":
		// Real key events, as typing does: the page's input handlers run.
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(sel), value)); err != nil {
			b.fatalf("fill %q: %v", target, err)
		}
	case "file":
		// File inputs are often hidden behind a styled button, so this
		// does not wait for the input to be visible.
		if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS(sel), []string{value})); err != nil {
			b.fatalf("fill %q: %v", target, err)
		}
	default:
		b.fatalf("fill %q: %s", target, mode)
	}
}

// Click clicks the button, link, label or other control whose visible text
// (or value, aria-label or title) is target, else the element with that id,
// or a CSS selector after CSSPrefix. It does not wait for what the click
// causes: use Submit for a navigation, WaitText for a change of the page,
// Download for a file.
func (b *Browser) Click(target string) {
	b.t.Helper()
	sel, err := b.find("click", target)
	if err != nil {
		b.fatalf("click %q: %v", target, err)
	}
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.fatalf("click %q: %v", target, err)
	}
}

// Submit clicks target as Click does, waits for the page the click loads (a
// form's submission, a link) and returns its HTTP status.
func (b *Browser) Submit(target string) int {
	b.t.Helper()
	sel, err := b.find("click", target)
	if err != nil {
		b.fatalf("submit %q: %v", target, err)
	}
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.fatalf("submit %q: %v", target, err)
	}
	if resp == nil {
		b.fatalf("submit %q: the page loaded without a response", target)
	}
	return int(resp.Status)
}

// Downloaded is a file the browser saved.
type Downloaded struct {
	// Name is the file name the server suggested (Content-Disposition) or
	// the browser derived from the URL.
	Name string
	// URL is where the file came from.
	URL string
	// Path is the file on disk, in the browser's download directory.
	Path string
	// Data is the file's content.
	Data []byte
}

// Download runs trigger (typically a Click on a download link or button),
// waits until the download it starts is complete, and returns the file.
func (b *Browser) Download(trigger func()) Downloaded {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	// Subscribed before the trigger, so no event can be missed.
	begins := chromedp.BrowserEvents(ctx, browser.DownloadWillBegin)
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	trigger()

	var begin browser.EventDownloadWillBegin
	for ev, err := range begins {
		if err != nil {
			b.fatalf("%v: no download started: %v", ErrDownload, err)
		}
		begin = ev
		break
	}
	for ev, err := range progress {
		if err != nil {
			b.fatalf("%v: %s (%s) did not complete: %v", ErrDownload, begin.SuggestedFilename, begin.URL, err)
		}
		if ev.GUID != begin.GUID {
			continue
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			path := filepath.Join(b.downloadDir, begin.GUID)
			data, err := os.ReadFile(path)
			if err != nil {
				b.fatalf("%v: %v", ErrDownload, err)
			}
			return Downloaded{Name: begin.SuggestedFilename, URL: begin.URL, Path: path, Data: data}
		case browser.DownloadProgressStateCanceled:
			b.fatalf("%v: %s (%s) was canceled", ErrDownload, begin.SuggestedFilename, begin.URL)
		}
	}
	b.fatalf("%v: no download event", ErrDownload)
	return Downloaded{}
}

// Screenshot returns a PNG of the whole page, beyond the window's height.
func (b *Browser) Screenshot() []byte {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG, not JPEG
	if err != nil {
		b.t.Fatalf("browsertest: screenshot of %s: %v", b.URL(), err)
	}
	return png
}

// SaveScreenshot writes Screenshot to path, creating its directory.
func (b *Browser) SaveScreenshot(path string) {
	b.t.Helper()
	png := b.Screenshot()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatalf("browsertest: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("browsertest: %v", err)
	}
}

// Cookies returns the cookies the browser would send to the page shown,
// HttpOnly ones included: a test can replay the session outside the
// browser, e.g. to forge a request without the CSRF token.
func (b *Browser) Cookies() []*http.Cookie {
	b.t.Helper()
	url := b.URL()
	ctx, cancel := b.step()
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		b.t.Fatalf("browsertest: reading the cookies of %s: %v", url, err)
	}
	out := make([]*http.Cookie, 0, len(res.Cookies))
	for _, c := range res.Cookies {
		hc := &http.Cookie{
			Name: c.Name, Value: c.Value, Domain: c.Domain, Path: c.Path,
			Secure: c.Secure, HttpOnly: c.HTTPOnly,
		}
		switch c.SameSite {
		case network.CookieSameSiteStrict:
			hc.SameSite = http.SameSiteStrictMode
		case network.CookieSameSiteLax:
			hc.SameSite = http.SameSiteLaxMode
		case network.CookieSameSiteNone:
			hc.SameSite = http.SameSiteNoneMode
		}
		if !c.Session {
			sec := int64(c.Expires)
			hc.Expires = time.Unix(sec, int64((c.Expires-float64(sec))*1e9))
		}
		out = append(out, hc)
	}
	return out
}

// Eval evaluates the JavaScript expression in the page (a promise is
// awaited) and decodes its JSON value into out, which may be nil. The page's
// Content-Security-Policy does not apply to it, as to any DevTools call.
func (b *Browser) Eval(expression string, out any) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expression, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("browsertest: eval %q: %v", expression, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("browsertest: eval %q: decoding %s: %v", expression, raw, err)
		}
	}
}

// AnswerDialogs sets how confirm, alert and prompt dialogs are answered:
// OK (the default, as a person confirming a destructive action) or Cancel.
func (b *Browser) AnswerDialogs(ok bool) {
	b.mu.Lock()
	b.dismiss = !ok
	b.mu.Unlock()
}

// Dialogs returns the messages of the dialogs the pages opened so far.
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// Problems returns what the pages reported as errors so far, as a person
// would find them in the DevTools console: resources that failed to load,
// Content-Security-Policy violations (an inline script the policy blocked),
// uncaught exceptions and console.error calls. A page that works has none.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// find waits until exactly one element matches target as mode ("field",
// "click") reads it and returns a CSS selector for it, or until the page's
// text does ("text") or no longer does ("notext") contain target.
func (b *Browser) find(mode, target string) (string, error) {
	ctx, cancel := b.step()
	defer cancel()
	token := newToken()
	var lastErr error
	for {
		// The wait runs in the page, so it sees the element the moment it
		// appears; it is bounded by what is left of the step.
		// The page gives up a little before the step does, so that its
		// answer (nothing found) arrives before the deadline.
		left := time.Until(deadlineOf(ctx))
		left -= min(time.Second, left/4)
		raw, err := b.eval(ctx, findJS, mode, target, max(left, 0).Milliseconds(), token)
		if err == nil {
			var r struct {
				N     int      `json:"n"`
				Found []string `json:"found"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return "", fmt.Errorf("browsertest: decoding %s: %w", raw, err)
			}
			switch {
			case r.N == 1:
				return `[data-browsertest="` + token + `"]`, nil
			case r.N > 1:
				return "", fmt.Errorf("%w: %d, e.g. %s", ErrAmbiguous, r.N, strings.Join(r.Found, " | "))
			}
			if mode == "text" || mode == "notext" {
				return "", context.DeadlineExceeded
			}
			return "", ErrNotFound
		}
		// A navigation destroys the page the wait ran in: wait again in the
		// new one, until the step's deadline.
		if ctx.Err() != nil {
			if lastErr == nil {
				lastErr = err
			}
			return "", fmt.Errorf("%w (last: %w)", ctx.Err(), lastErr)
		}
		lastErr = err
		if err := waitRetry(ctx); err != nil {
			return "", fmt.Errorf("%w (last: %w)", err, lastErr)
		}
	}
}

// eval calls the JavaScript function fn with args (as JSON) through
// Runtime.evaluate, awaiting a promise, and returns the JSON result. It
// builds no code in the page (no eval, no new Function), so it works under
// a Content-Security-Policy without 'unsafe-eval'.
func (b *Browser) eval(ctx context.Context, fn string, args ...any) ([]byte, error) {
	enc := make([]string, len(args))
	for i, a := range args {
		j, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("browsertest: %w", err)
		}
		enc[i] = string(j)
	}
	expr := "(" + fn + ")(" + strings.Join(enc, ",") + ")"
	return chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
}

// waitRetry pauses before the next attempt of a wait that failed because the
// page changed under it; a new page needs a moment to get a document.
func waitRetry(ctx context.Context) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(DefaultStepTimeout)
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// fatalf fails the test with what the page shows, which is what the person
// reading the failure needs.
func (b *Browser) fatalf(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	b.mu.Lock()
	status, url := b.status, b.statusURL
	b.mu.Unlock()
	text, err := b.text()
	if err != nil {
		text = "(unreadable: " + err.Error() + ")"
	}
	const maxText = 2000
	if len(text) > maxText {
		text = text[:maxText] + "…"
	}
	b.t.Fatalf("browsertest: %s\nlast document: %s (status %d)\npage text:\n%s", msg, url, status, text)
}

// findJS finds elements as a person would (see Fill and Click), marks the
// match with data-browsertest=token, and waits for up to timeoutMs for one
// to appear. It returns {n: matches, found: [markup...]}.
var findJS = strings.ReplaceAll(`async (mode, target, timeoutMs, token) => {
  const norm = s => (s || '').replace(/\s+/g, ' ').trim();
  const labelText = l => {
    const c = l.cloneNode(true);
    c.querySelectorAll('input,select,textarea,button').forEach(e => e.remove());
    return norm(c.textContent).replace(/\s*[:*]+$/, '');
  };
  const shown = e => (e.tagName === 'INPUT' && e.type === 'file') || e.getClientRects().length > 0;
  const find = () => {
    if (mode === 'text' || mode === 'notext') {
      const has = !!document.body && document.body.innerText.includes(target);
      return has === (mode === 'text') ? {n: 1} : null;
    }
    let els = [];
    if (target.startsWith(PREFIX)) {
      els = [...document.querySelectorAll(target.slice(PREFIX.length))];
    } else {
      const byId = document.getElementById(target);
      if (mode === 'field') {
        for (const l of document.querySelectorAll('label')) {
          if (l.control && labelText(l) === target) els.push(l.control);
        }
        if (!els.length && byId) els = [byId];
        if (!els.length) {
          for (const e of document.querySelectorAll('input,select,textarea')) {
            if (norm(e.getAttribute('aria-label')) === target || norm(e.getAttribute('placeholder')) === target) els.push(e);
          }
        }
      } else {
        const sel = 'button,a[href],input[type=submit],input[type=button],input[type=reset],summary,[role=button],[role=link],[role=tab],label';
        for (const e of document.querySelectorAll(sel)) {
          const text = e.tagName === 'INPUT' ? e.value : e.innerText;
          if (norm(text) === target || norm(e.getAttribute('aria-label')) === target || norm(e.getAttribute('title')) === target) els.push(e);
        }
        if (!els.length && byId) els = [byId];
      }
    }
    els = [...new Set(els)].filter(shown);
    if (!els.length) return null;
    els.forEach(e => e.setAttribute('data-browsertest', token));
    return {n: els.length, found: els.slice(0, 3).map(e => e.outerHTML.slice(0, 200))};
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = find();
    if (r) return r;
    if (Date.now() >= deadline) return {n: 0};
    await new Promise(res => setTimeout(res, 20));
  }
}`, "PREFIX", strconv.Quote(CSSPrefix))

// prepareFillJS sets the value of a select and of inputs typing cannot fill
// (dates, colours, ranges) and answers "done"; for a text field it empties
// it, focused, and answers "keys" so that the value is typed; a file input
// answers "file". Checkboxes and radios are clicked, not filled.
const prepareFillJS = `(sel, value) => {
  const e = document.querySelector(sel);
  if (!e) return 'the element went away';
  const fire = () => {
    e.dispatchEvent(new Event('input', {bubbles: true}));
    e.dispatchEvent(new Event('change', {bubbles: true}));
  };
  if (e.tagName === 'SELECT') {
    const o = [...e.options].find(o => o.value === value) || [...e.options].find(o => o.text.trim() === value);
    if (!o) return 'no option ' + JSON.stringify(value) + ' among ' + JSON.stringify([...e.options].map(o => o.text.trim()));
    e.value = o.value;
    fire();
    return 'done';
  }
  if (e.tagName === 'INPUT' && (e.type === 'checkbox' || e.type === 'radio')) return 'a ' + e.type + ' is clicked, not filled';
  if (e.tagName === 'INPUT' && e.type === 'file') return 'file';
  if (e.tagName === 'INPUT' && ['date', 'time', 'datetime-local', 'month', 'week', 'color', 'range'].includes(e.type)) {
    e.value = value;
    fire();
    return 'done';
  }
  if (e.tagName !== 'INPUT' && e.tagName !== 'TEXTAREA' && !e.isContentEditable) return 'not a form field: ' + e.tagName.toLowerCase();
  e.focus();
  if (e.isContentEditable) e.textContent = ''; else e.value = '';
  e.dispatchEvent(new Event('input', {bubbles: true}));
  return 'keys';
}`

func (b *Browser) navigate(url string) (*network.Response, error) {
	ctx, cancel := b.step()
	defer cancel()
	return chromedp.Run(ctx, chromedp.NavigateResponse(url))
}
