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

// tooMany answers 429 with the wait in whole seconds, rounded up.
func tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := int64((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, http.StatusTooManyRequests, msg)
}

const (
	msgTooManyFailures = "too many failed logins; try again later"
	msgTooManyHashes   = "too many logins at once; try again shortly"
)

// checkAttempt checks a password for name from the request's address
// under the login limit and the bound on concurrent hashes. It answers 429
// itself and returns handled when the attempt is refused; otherwise it
// returns the account (nil if there is none, or it could not be read) and
// whether the password is right, with the attempt's reservation left for
// the caller to decide (limiter.fail or limiter.succeed).
func (s *Server) checkAttempt(w http.ResponseWriter, r *http.Request, name, password string) (a *store.Account, ok bool, at attempt, handled bool) {
	// The reservation comes first, the hash after: an attempt counts
	// before it costs anything, so parallel attempts cannot overrun the
	// limit.
	at, wait := s.limiter.begin(addressKey(clientIP(r)), name)
	if wait > 0 {
		tooMany(w, wait, msgTooManyFailures)
		return nil, false, at, true
	}
	if !s.gate.try() {
		s.limiter.cancel(at)
		tooMany(w, time.Second, msgTooManyHashes)
		return nil, false, at, true
	}
	defer s.gate.done()
	// A name outside the rule for names is no account, and the store is
	// not asked (it may be as long as the body).
	a, err := (*store.Account)(nil), error(nil)
	if policy.ValidName(name) == nil {
		a, err = s.cfg.Store.Account(r.Context(), name)
	}
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("login: read account", "error", err)
		}
		a = nil
	}
	if a != nil && !a.Disabled && a.PasswordHash != "" {
		ok, err = s.checkHash(a.PasswordHash, password)
		if err != nil {
			s.log.Error("password hash", "account", a.Name, "error", err)
		}
	} else {
		// The same work for unknown names (and accounts that log in by
		// certificate only), so that timing does not tell which names
		// exist.
		_, _ = s.checkHash(s.dummy, password)
	}
	return a, ok, at, false
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ *caller) {
	var req loginRequest // at most maxPublicBody (bodyLimit)
	if err := readJSON(r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	a, ok, at, handled := s.checkAttempt(w, r, req.Name, req.Password)
	if handled {
		return
	}
	if ok && req.Name != BootstrapAccount && !s.can(req.Name, 0) {
		ok = false // the account's user is gone from the model or disabled
	}
	if !ok {
		s.limiter.fail(at)
		// A name that is no account may well be a password typed into
		// the wrong field: the event log does not keep it.
		participant, msg := req.Name, "management login failed"
		if a == nil {
			participant, msg = "", "management login failed: unknown name"
		}
		s.event(r, "auth_failure", participant, "", msg, map[string]string{"remote": clientIP(r)})
		writeError(w, http.StatusUnauthorized, "wrong name or password")
		return
	}
	s.limiter.succeed(at)
	resp, err := s.newToken(r.Context(), req.Name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	resp.MustChange = a.MustChange
	s.event(r, "login", req.Name, req.Name, "management login", map[string]string{"remote": clientIP(r), "method": "password"})
	writeJSON(w, http.StatusOK, resp)
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
	if err == nil && name == BootstrapAccount {
		err = fmt.Errorf("%q logs in by password only", name)
	}
	if err != nil {
		// A certificate cannot be guessed, so a blocked address may still
		// log in with a good one; but failures count toward the address,
		// and a blocked address's failures write no more events.
		if wait := s.limiter.failAddress(addressKey(clientIP(r))); wait > 0 {
			tooMany(w, wait, msgTooManyFailures)
			return
		}
		s.event(r, "auth_failure", name, "", "certificate login failed", map[string]string{"remote": clientIP(r), "error": err.Error()})
		writeError(w, http.StatusUnauthorized, "certificate not accepted")
		return
	}
	// A user created without a password has no account yet; its
	// sessions need one.
	if err := s.ensureAccount(r.Context(), name); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
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
		writeBodyError(w, err)
		return
	}
	if c.bootstrap {
		writeError(w, http.StatusForbidden, "the bootstrap administrator must name an administrator instead (POST /api/v1/bootstrap)")
		return
	}
	if err := checkNewPassword(req.New); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The old password is a guess like a login's: someone holding a
	// stolen token must not learn the password by trying.
	a, ok, at, handled := s.checkAttempt(w, r, c.name, req.Old)
	if handled {
		return
	}
	if a == nil || a.PasswordHash == "" {
		s.limiter.cancel(at)
		writeError(w, http.StatusBadRequest, "this account logs in by certificate and has no password")
		return
	}
	if !ok {
		s.limiter.fail(at)
		writeError(w, http.StatusBadRequest, "the old password is wrong")
		return
	}
	s.limiter.succeed(at)
	// The new password ends every other session of the account, in the
	// same write: one opened by whoever knew the old password among them.
	// The session that changed it stays.
	changed, err := s.accountWithPassword(r.Context(), c.name, req.New, false)
	if err == nil {
		err = s.cfg.Store.ResetAccountExcept(r.Context(), changed, c.tokenHash)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.event(r, "config_change", c.name, c.name, "changed own password", nil)
	w.WriteHeader(http.StatusNoContent)
}

// ensureAccount creates the account of a user that logs in by
// certificate only: no password hash, so no password logs in to it.
func (s *Server) ensureAccount(ctx context.Context, name string) error {
	_, err := s.cfg.Store.Account(ctx, name)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	now := s.now()
	if err := s.cfg.Store.PutAccount(ctx, store.Account{Name: name, Created: now, Updated: now}); err != nil {
		return fmt.Errorf("api: the account of %q: %w", name, err)
	}
	return nil
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
	// New passwords are hashed within the same bound as logins, waiting
	// for a slot: these callers are authenticated.
	if err := s.gate.wait(ctx); err != nil {
		return store.Account{}, fmt.Errorf("api: waiting to hash a password: %w", err)
	}
	h, err := HashPassword(password, s.cfg.PasswordCost)
	s.gate.done()
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

// errBootstrapDone: the installation already has its administrator (409).
var errBootstrapDone = errors.New("api: the bootstrap is done")

// finishBootstrap names the first administrator. The check that the
// bootstrap is pending, the new administrator, its password, the mark
// "done" and the end of the bootstrap account are one transaction: of
// concurrent requests with the one bootstrap token exactly one succeeds,
// and a failure half way leaves the bootstrap pending as it was.
func (s *Server) finishBootstrap(w http.ResponseWriter, r *http.Request, c *caller) {
	var req loginRequest
	if err := readJSON(r, &req); err != nil {
		writeBodyError(w, err)
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
	// Hashed before the transaction: it takes a while, and holds nothing.
	hash, err := HashPassword(req.Password, s.cfg.PasswordCost)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// The administrator is admitted even beyond the licensed capacity:
	// without it an installation whose participants fill its licenses
	// could never be administered (see ErrCapacity).
	var participants int
	err = s.changeAdmitting(r, c, "bootstrap: named administrator "+req.Name, req.Name, func(cfg *store.Config, tx *store.Tx) error {
		state, err := tx.Secret(bootstrapSecret)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if string(state) != "pending" {
			return fmt.Errorf("%w: an administrator was named", errBootstrapDone)
		}
		switch _, err := tx.Account(BootstrapAccount); {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("%w: the bootstrap account is gone", errBootstrapDone)
		case err != nil:
			return err
		}
		if users.find(cfg, req.Name) >= 0 {
			return fmt.Errorf("%w: %q exists", errExists, req.Name)
		}
		cfg.Model.Users = append(cfg.Model.Users, policy.User{Name: req.Name, Roles: []string{policy.RoleAdmin}})
		now := s.now()
		if err := tx.PutAccount(store.Account{Name: req.Name, PasswordHash: hash, Created: now, Updated: now}); err != nil {
			return err
		}
		if err := tx.PutSecret(bootstrapSecret, []byte("done")); err != nil {
			return err
		}
		participants = len(cfg.Model.Users) + len(cfg.Model.Devices)
		// Deleting the account deletes its tokens with it.
		return tx.DeleteAccount(BootstrapAccount)
	})
	if err != nil {
		writeChangeError(w, err)
		return
	}
	if lic := s.cfg.Licenses; lic != nil {
		if capacity := lic.Capacity(s.now()); participants > capacity.Participants {
			s.event(r, "license", req.Name, c.name, fmt.Sprintf("the named administrator %q is admitted beyond the licensed capacity of %s: %d participants; "+
				"no participant can be created until there is room, and %q holds no VPN tunnel meanwhile", req.Name, capacity, participants, req.Name),
				map[string]string{"participants": strconv.Itoa(participants), "capacity": strconv.Itoa(capacity.Participants)})
		}
	}
	writeJSON(w, http.StatusCreated, map[string]string{"name": req.Name})
}
