package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/remotegate/remotegate/policy"
)

// Cookie names. The __Host- prefix makes browsers accept them only with
// Secure, Path=/ and no Domain: no sibling host can plant or read them.
const (
	sessionCookie = "__Host-rg_session"
	loginCookie   = "__Host-rg_login"
	csrfField     = "csrf"
)

// Bounds on what a request may send: forms are small; the license upload
// and the restore have their own.
const (
	maxForm      = 64 << 10
	maxLoginForm = 8 << 10
)

// sessions tracks when each session was last used, for the idle timeout,
// and whose it is. Keyed by the SHA-256 of the token, so the tokens
// themselves are not kept.
type sessions struct {
	mu   sync.Mutex
	last map[[32]byte]*tracked
	// count is the number of sessions of each account.
	count map[string]int
	max   int
}

type tracked struct {
	last    time.Time
	account string
}

func newSessions(max int) *sessions {
	return &sessions{last: map[[32]byte]*tracked{}, count: map[string]int{}, max: max}
}

func tokenKey(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// add starts tracking a new session of account at now. When the table is
// full it first drops the sessions idle longer than idle, then the longest
// idle session of the account that holds the most: an account that logs
// in again and again (any VPN user can) ends its own sessions, never
// another account's, and never grows the table.
func (s *sessions) add(tok, account string, now time.Time, idle time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.last) >= s.max {
		for k, t := range s.last {
			if now.Sub(t.last) >= idle {
				s.dropLocked(k)
			}
		}
	}
	if len(s.last) >= s.max {
		// The account with the most sessions, counting the new one; on a
		// tie, the account logging in (if it holds any to drop).
		most, mostN := "", 0
		for a, n := range s.count {
			if a == account {
				n++
			}
			if n > mostN || (n == mostN && a == account) {
				most, mostN = a, n
			}
		}
		var oldestKey [32]byte
		var oldest *tracked
		for k, t := range s.last {
			if t.account == most && (oldest == nil || t.last.Before(oldest.last)) {
				oldestKey, oldest = k, t
			}
		}
		if oldest != nil {
			s.dropLocked(oldestKey)
		}
	}
	k := tokenKey(tok)
	if _, ok := s.last[k]; ok {
		s.dropLocked(k)
	}
	s.last[k] = &tracked{last: now, account: account}
	s.count[account]++
}

// dropLocked forgets a session; s.mu is held.
func (s *sessions) dropLocked(k [32]byte) {
	t, ok := s.last[k]
	if !ok {
		return
	}
	delete(s.last, k)
	if s.count[t.account]--; s.count[t.account] <= 0 {
		delete(s.count, t.account)
	}
}

// touch reports whether the session is known and was used within idle
// before now, and if so records now as its last use. A session idle too
// long is forgotten.
func (s *sessions) touch(tok string, now time.Time, idle time.Duration) bool {
	k := tokenKey(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.last[k]
	if !ok {
		return false
	}
	if now.Sub(t.last) >= idle {
		s.dropLocked(k)
		return false
	}
	t.last = now
	return true
}

func (s *sessions) remove(tok string) {
	s.mu.Lock()
	s.dropLocked(tokenKey(tok))
	s.mu.Unlock()
}

// mac is the HMAC-SHA256 under the process's key of a purpose and a value.
func (c *Console) mac(purpose, v string) string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK compares a form's token with the one expected, in constant time.
func csrfOK(got, want string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(want))
}

func setCookie(w http.ResponseWriter, name, value string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", Expires: expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// account is the caller as GET /api/v1/account describes it.
type account struct {
	Name       string   `json:"name"`
	Bootstrap  bool     `json:"bootstrap"`
	RightNames []string `json:"rights"`
	MustChange bool     `json:"must_change"`
	rights     policy.Rights
}

// Can reports whether the account holds the right named; for the
// navigation only, never as the check.
func (a *account) Can(right string) bool {
	r, err := policy.ParseRight(right)
	return err == nil && a.rights&r != 0
}

// Manages reports whether the account holds any right beyond connecting.
func (a *account) Manages() bool { return a.rights&^policy.RightConnectVPN != 0 }

// req is an authenticated request being served.
type req struct {
	w     http.ResponseWriter
	r     *http.Request
	token string
	acct  *account
	csrf  string
}

// authed wraps a handler for logged-in users: the session cookie, the idle
// timeout, the CSRF check of a POST, the account, and the bootstrap
// administrator's one page.
func (c *Console) authed(h func(*req)) http.HandlerFunc { return c.auth(h, false) }

// authedStream is authed for a handler that reads a large body itself and
// checks its CSRF token there (the restore).
func (c *Console) authedStream(h func(*req)) http.HandlerFunc { return c.auth(h, true) }

func (c *Console) auth(h func(*req), stream bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(sessionCookie)
		if err != nil || ck.Value == "" {
			c.toLogin(w, r, "")
			return
		}
		tok := ck.Value
		if !c.sess.touch(tok, c.now(), c.cfg.IdleTimeout) {
			// Idle too long, or from before a restart: the API token is
			// ended too, so that the cookie is worth nothing anywhere.
			c.api(r, tok, "POST", "/api/v1/logout", nil)
			clearCookie(w, sessionCookie)
			c.toLogin(w, r, "expired")
			return
		}
		q := &req{w: w, r: r, token: tok, csrf: c.mac("session", tok)}
		if r.Method == http.MethodPost {
			if err := c.cop.Check(r); err != nil {
				c.errorPage(w, r, nil, http.StatusForbidden, "This form was sent from another site; nothing was changed.")
				return
			}
			if !stream {
				r.Body = http.MaxBytesReader(w, r.Body, maxForm)
				if !csrfOK(r.PostFormValue(csrfField), q.csrf) {
					c.errorPage(w, r, nil, http.StatusForbidden, "This form has expired or was not made by this console; nothing was changed. Go back, reload the page and try again.")
					return
				}
			}
		}
		res := c.api(r, tok, "GET", "/api/v1/account", nil)
		if res.Status == http.StatusUnauthorized {
			c.sess.remove(tok)
			clearCookie(w, sessionCookie)
			c.toLogin(w, r, "expired")
			return
		}
		var a account
		if !res.ok() || json.Unmarshal(res.Body, &a) != nil {
			c.errorPage(w, r, nil, http.StatusBadGateway, "The management API did not answer: "+res.message())
			return
		}
		for _, n := range a.RightNames {
			if right, err := policy.ParseRight(n); err == nil {
				a.rights |= right
			}
		}
		q.acct = &a
		if a.Bootstrap && r.URL.Path != "/bootstrap" && r.URL.Path != "/logout" {
			http.Redirect(w, r, "/bootstrap", http.StatusSeeOther)
			return
		}
		h(q)
	}
}

// toLogin sends the browser to the login page; why is shown there.
func (c *Console) toLogin(w http.ResponseWriter, r *http.Request, why string) {
	u := "/login"
	if why != "" {
		u += "?m=" + url.QueryEscape(why)
	}
	if r.Method == http.MethodGet && r.URL.Path != "/" && !strings.HasPrefix(r.URL.Path, "/login") {
		sep := "?"
		if why != "" {
			sep = "&"
		}
		u += sep + "next=" + url.QueryEscape(r.URL.RequestURI())
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// maxNext bounds a post-login target: the console's own URLs are short.
const maxNext = 2048

// safeNext keeps a post-login target only if it is a path of this console.
// Browsers read a Location leniently: they drop tabs and line breaks
// anywhere ("/\t/evil.example" is "//evil.example", another host) and take
// a backslash for a slash ("/\\evil.example"). So a target with any
// control character or backslash is refused outright, and what is left
// must parse as a path with neither scheme nor host.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > maxNext || strings.HasPrefix(next, "//") {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

// loginToken returns the pre-session value of the login form's CSRF
// token, setting its cookie if the browser has none.
func (c *Console) loginToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(loginCookie); err == nil && len(ck.Value) == 43 {
		return c.mac("login", ck.Value)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // never fails (crypto/rand)
	v := base64.RawURLEncoding.EncodeToString(raw)
	setCookie(w, loginCookie, v, time.Time{})
	return c.mac("login", v)
}

// checkLogin checks a login form's origin and CSRF token.
func (c *Console) checkLogin(w http.ResponseWriter, r *http.Request) bool {
	if err := c.cop.Check(r); err != nil {
		c.errorPage(w, r, nil, http.StatusForbidden, "This form was sent from another site.")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	ck, err := r.Cookie(loginCookie)
	if err != nil || !csrfOK(r.PostFormValue(csrfField), c.mac("login", ck.Value)) {
		c.errorPage(w, r, nil, http.StatusForbidden, "This login form has expired or was not made by this console. Reload the login page and try again.")
		return false
	}
	return true
}
