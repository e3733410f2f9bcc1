package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/remotegate/remotegate/broker/model"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// BootstrapAccount is the name of the one-time administrator of a fresh
// installation.
const BootstrapAccount = model.BootstrapAccount

// PasswordCost are the argon2id parameters of new password hashes (see
// model.PasswordCost).
type PasswordCost = model.PasswordCost

// HashPassword returns the PHC string of an argon2id hash, as the store
// keeps it and as a declarative configuration may give it (see
// model.HashPassword).
func HashPassword(password string, cost PasswordCost) (string, error) {
	return model.HashPassword(password, cost)
}

// checkPassword compares in constant time.
func checkPassword(phc, password string) (bool, error) { return model.CheckPassword(phc, password) }

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
	if err := model.CheckNewPassword(req.New); err != nil {
		writeModelError(w, err)
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
	if err := s.m.ChangeOwnPassword(r.Context(), c.name, req.New, c.tokenHash); err != nil {
		writeModelError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ensureAccount creates the account of a user that logs in by
// certificate only: no password hash, so no password logs in to it.
func (s *Server) ensureAccount(ctx context.Context, name string) error {
	now := s.now()
	// Created only if absent, in one transaction: a password an
	// administrator sets meanwhile is never overwritten.
	if _, err := s.cfg.Store.CreateAccount(ctx, store.Account{Name: name, Created: now, Updated: now}); err != nil {
		return fmt.Errorf("api: the account of %q: %w", name, err)
	}
	return nil
}

// Bootstrap prepares the first login of a fresh installation: when no
// administrator was ever named, it creates the account "admin" with a
// random one-time password and returns that password, to be shown once.
// The bootstrap administrator can do one thing: name a real administrator
// (POST /api/v1/bootstrap), after which "admin" no longer logs in. On every
// later start Bootstrap returns "" and the state: "pending" while the
// bootstrap account waits for its first login, "done" after (see
// model.Manager.Bootstrap).
func (s *Server) Bootstrap(ctx context.Context) (password, state string, err error) {
	return s.m.Bootstrap(ctx)
}

// finishBootstrap names the first administrator (see
// model.Manager.FinishBootstrap).
func (s *Server) finishBootstrap(w http.ResponseWriter, r *http.Request, c *caller) {
	var req loginRequest
	if err := readJSON(r, &req); err != nil {
		writeBodyError(w, err)
		return
	}
	if err := s.m.FinishBootstrap(r.Context(), c.name, req.Name, req.Password); err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"name": req.Name})
}
