package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// BootstrapAccount is the name of the one-time administrator of a fresh
// installation.
const BootstrapAccount = "admin"

// bootstrapSecret marks in the store whether the bootstrap account was
// created ("pending") and replaced ("done").
const bootstrapSecret = "api/bootstrap"

// PasswordCost are the argon2id parameters of new password hashes. Stored
// hashes carry their own parameters, so changing them affects new
// passwords only.
type PasswordCost struct {
	Time      uint32 // passes; zero means 3
	MemoryKiB uint32 // zero means 64 MiB
	Threads   uint8  // zero means 2
}

func (c PasswordCost) withDefaults() PasswordCost {
	if c.Time == 0 {
		c.Time = 3
	}
	if c.MemoryKiB == 0 {
		c.MemoryKiB = 64 * 1024
	}
	if c.Threads == 0 {
		c.Threads = 2
	}
	return c
}

// HashPassword returns the PHC string of an argon2id hash,
// $argon2id$v=19$m=65536,t=3,p=2$salt$hash, as the store keeps it and as a
// declarative configuration may give it (so that no password is written
// down in the clear).
func HashPassword(password string, cost PasswordCost) (string, error) {
	cost = cost.withDefaults()
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := argon2.IDKey([]byte(password), salt, cost.Time, cost.MemoryKiB, cost.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, cost.MemoryKiB, cost.Time, cost.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

// errBadHash is returned for a stored hash this code cannot read.
var errBadHash = errors.New("api: unreadable password hash")

// checkPassword compares in constant time.
func checkPassword(phc, password string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" {
		return false, errBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 100 {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) < 16 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// LoginLimit bounds failed logins: after Failures failures within Window,
// for one account or from one client address, logins are refused with 429
// until the window has passed since the first of them.
type LoginLimit struct {
	Failures int           // zero means 5
	Window   time.Duration // zero means 15 minutes
}

type limiter struct {
	cfg LoginLimit
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*failures
}

type failures struct {
	first time.Time
	n     int
}

// maxTracked bounds the limiter's memory under a flood of names and
// addresses; the oldest entries go first.
const maxTracked = 10000

func newLimiter(cfg LoginLimit, now func() time.Time) *limiter {
	if cfg.Failures == 0 {
		cfg.Failures = 5
	}
	if cfg.Window == 0 {
		cfg.Window = 15 * time.Minute
	}
	return &limiter{cfg: cfg, now: now, m: map[string]*failures{}}
}

// blocked returns how long the keys are still blocked, zero if not.
func (l *limiter) blocked(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		f := l.m[k]
		if f == nil {
			continue
		}
		if left := f.first.Add(l.cfg.Window).Sub(now); left <= 0 {
			delete(l.m, k)
		} else if f.n >= l.cfg.Failures && left > wait {
			wait = left
		}
	}
	return wait
}

func (l *limiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		f := l.m[k]
		if f == nil || now.Sub(f.first) >= l.cfg.Window {
			if len(l.m) >= maxTracked {
				l.evictOldest()
			}
			f = &failures{first: now}
			l.m[k] = f
		}
		f.n++
	}
}

func (l *limiter) evictOldest() {
	var oldest string
	var at time.Time
	for k, f := range l.m {
		if oldest == "" || f.first.Before(at) {
			oldest, at = k, f.first
		}
	}
	delete(l.m, oldest)
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	delete(l.m, key)
	l.mu.Unlock()
}

// tokenResponse is what a login returns.
type tokenResponse struct {
	Token      string    `json:"token"`
	Expires    time.Time `json:"expires"`
	MustChange bool      `json:"must_change"`
}

func (s *Server) newToken(ctx context.Context, account string) (tokenResponse, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return tokenResponse{}, err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(tok))
	now := s.now()
	t := store.Token{Hash: sum[:], Account: account, Created: now, Expires: now.Add(s.cfg.TokenLifetime)}
	if err := s.cfg.Store.PutToken(ctx, t); err != nil {
		return tokenResponse{}, err
	}
	return tokenResponse{Token: tok, Expires: t.Expires}, nil
}

var (
	errNoToken  = errors.New("missing bearer token (log in at POST /api/v1/login)")
	errBadToken = errors.New("invalid or expired token")
)

func (s *Server) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return nil, errNoToken
	}
	sum := sha256.Sum256([]byte(tok))
	t, err := s.cfg.Store.Token(r.Context(), sum[:])
	if err != nil || !s.now().Before(t.Expires) {
		return nil, errBadToken
	}
	c := &caller{name: t.Account, tokenHash: sum[:]}
	if t.Account == BootstrapAccount {
		a, err := s.cfg.Store.Account(r.Context(), BootstrapAccount)
		if err != nil || a.Disabled {
			return nil, errBadToken
		}
		c.bootstrap = true
	}
	return c, nil
}

type loginRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ *caller) {
	var req loginRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A name outside the rule for names is no account. It may be as long
	// as the body: the limiter's table and the event log get a short quoted
	// form of it instead, and the store is not asked.
	shown, account := req.Name, policy.ValidName(req.Name) == nil
	if !account {
		shown = fmt.Sprintf("%.64q", req.Name)
	}
	ipKey, nameKey := "ip:"+clientIP(r), "name:"+shown
	if wait := s.limiter.blocked(ipKey, nameKey); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeError(w, http.StatusTooManyRequests, "too many failed logins; try again later")
		return
	}
	a, err := &store.Account{}, errNotFound
	if account {
		a, err = s.cfg.Store.Account(r.Context(), req.Name)
	}
	ok := false
	if err == nil && !a.Disabled {
		ok, err = checkPassword(a.PasswordHash, req.Password)
		if err != nil {
			s.log.Error("password hash", "account", req.Name, "error", err)
		}
	} else {
		// The same work for unknown names, so that timing does not tell
		// which names exist.
		_, _ = checkPassword(dummyHash(s.cfg.PasswordCost), req.Password)
	}
	if ok && req.Name != BootstrapAccount && !s.can(req.Name, 0) {
		ok = false // the account's user is gone from the model or disabled
	}
	if !ok {
		s.limiter.fail(ipKey, nameKey)
		s.event(r, "auth_failure", shown, "", "management login failed", map[string]string{"remote": clientIP(r)})
		writeError(w, http.StatusUnauthorized, "wrong name or password")
		return
	}
	s.limiter.reset(nameKey)
	resp, err := s.newToken(r.Context(), req.Name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	resp.MustChange = a.MustChange
	s.event(r, "login", req.Name, req.Name, "management login", map[string]string{"remote": clientIP(r), "method": "password"})
	writeJSON(w, http.StatusOK, resp)
}

var (
	dummyOnce sync.Once
	dummy     string
)

func dummyHash(cost PasswordCost) string {
	dummyOnce.Do(func() { dummy, _ = HashPassword("not a password", cost) })
	return dummy
}

func (s *Server) loginCertificate(w http.ResponseWriter, r *http.Request, _ *caller) {
	if s.cfg.Verifier == nil {
		writeError(w, http.StatusUnauthorized, "certificate login is not enabled")
		return
	}
	name, err := s.cfg.Verifier.UserFromRequest(r)
	if err == nil && !s.can(name, 0) {
		err = fmt.Errorf("%q is not an enabled user", name)
	}
	if err != nil || name == BootstrapAccount {
		s.event(r, "auth_failure", name, "", "certificate login failed", map[string]string{"remote": clientIP(r), "error": fmt.Sprint(err)})
		writeError(w, http.StatusUnauthorized, "certificate not accepted")
		return
	}
	resp, err := s.newToken(r.Context(), name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.event(r, "login", name, name, "management login", map[string]string{"remote": clientIP(r), "method": "certificate"})
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, c *caller) {
	if err := s.cfg.Store.DeleteToken(r.Context(), c.tokenHash); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// minPasswordLen is what the API accepts for new passwords.
const minPasswordLen = 12

func checkNewPassword(p string) error {
	if len(p) < minPasswordLen {
		return fmt.Errorf("a password needs at least %d characters", minPasswordLen)
	}
	return nil
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Old string `json:"old_password"`
		New string `json:"new_password"`
	}
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if c.bootstrap {
		writeError(w, http.StatusForbidden, "the bootstrap administrator must name an administrator instead (POST /api/v1/bootstrap)")
		return
	}
	a, err := s.cfg.Store.Account(r.Context(), c.name)
	if err != nil {
		writeError(w, http.StatusBadRequest, "this account logs in by certificate and has no password")
		return
	}
	if ok, _ := checkPassword(a.PasswordHash, req.Old); !ok {
		writeError(w, http.StatusBadRequest, "the old password is wrong")
		return
	}
	if err := checkNewPassword(req.New); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.setAccountPassword(r.Context(), c.name, req.New, false); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.event(r, "config_change", c.name, c.name, "changed own password", nil)
	w.WriteHeader(http.StatusNoContent)
}

// setAccountPassword stores a new password for the account called name,
// creating the account if it has none; its sessions are kept.
func (s *Server) setAccountPassword(ctx context.Context, name, password string, mustChange bool) error {
	a, err := s.accountWithPassword(ctx, name, password, mustChange)
	if err != nil {
		return err
	}
	return s.cfg.Store.PutAccount(ctx, a)
}

// accountWithPassword returns the account called name (a new one if it has
// none) with the new password, not yet stored.
func (s *Server) accountWithPassword(ctx context.Context, name, password string, mustChange bool) (store.Account, error) {
	h, err := HashPassword(password, s.cfg.PasswordCost)
	if err != nil {
		return store.Account{}, err
	}
	now := s.now()
	a, err := s.cfg.Store.Account(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a = &store.Account{Name: name, Created: now}
	case err != nil:
		return store.Account{}, err
	}
	a.PasswordHash, a.MustChange, a.Updated = h, mustChange, now
	return *a, nil
}

// Bootstrap prepares the first login of a fresh installation: when no
// administrator was ever named, it creates the account "admin" with a
// random one-time password and returns that password, to be shown once.
// The bootstrap administrator can do one thing: name a real administrator
// (POST /api/v1/bootstrap), after which "admin" no longer logs in. On every
// later start Bootstrap returns "" and the state: "pending" while the
// bootstrap account waits for its first login, "done" after.
func (s *Server) Bootstrap(ctx context.Context) (password, state string, err error) {
	v, err := s.cfg.Store.Secret(ctx, bootstrapSecret)
	switch {
	case err == nil:
		return "", string(v), nil
	case !errors.Is(err, store.ErrNotFound):
		return "", "", err
	}
	raw := make([]byte, 15)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	password = base64.RawURLEncoding.EncodeToString(raw)
	// The account before the mark: a crash in between leaves no mark, and
	// the next start makes a new password.
	if err := s.setAccountPassword(ctx, BootstrapAccount, password, true); err != nil {
		return "", "", err
	}
	if err := s.cfg.Store.PutSecret(ctx, bootstrapSecret, []byte("pending")); err != nil {
		return "", "", err
	}
	return password, "pending", nil
}

func (s *Server) finishBootstrap(w http.ResponseWriter, r *http.Request, c *caller) {
	var req loginRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Name == "" || req.Name == BootstrapAccount {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("name an administrator other than %q", BootstrapAccount))
		return
	}
	if err := checkNewPassword(req.Password); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	err := s.change(r, c, "bootstrap: named administrator "+req.Name, func(cfg *store.Config) error {
		for _, u := range cfg.Model.Users {
			if u.Name == req.Name {
				return fmt.Errorf("%w: %q exists", errExists, req.Name)
			}
		}
		cfg.Model.Users = append(cfg.Model.Users, policy.User{Name: req.Name, Roles: []string{policy.RoleAdmin}})
		return nil
	})
	if err != nil {
		writeChangeError(w, err)
		return
	}
	ctx := r.Context()
	if err := s.setAccountPassword(ctx, req.Name, req.Password, false); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if err := s.cfg.Store.PutSecret(ctx, bootstrapSecret, []byte("done")); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// Deleting the account deletes its tokens with it.
	if err := s.cfg.Store.DeleteAccount(ctx, BootstrapAccount); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"name": req.Name})
}
