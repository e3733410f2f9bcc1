package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// accountView is what GET /api/v1/account says about the caller.
type accountView struct {
	Name string `json:"name"`
	// Bootstrap: the one-time administrator, who can only name the real
	// one (POST /api/v1/bootstrap).
	Bootstrap bool `json:"bootstrap"`
	// Rights the caller holds in the model in force (none for the
	// bootstrap administrator, which is not a user of the model).
	Rights policy.Rights `json:"rights"`
	// MustChange: the password was set by someone else (or is the
	// one-time one) and should be changed.
	MustChange bool `json:"must_change"`
}

// getAccount tells a client (the web console, a script) who it is logged
// in as and what it may do, so that it offers only what will succeed. It
// decides nothing: every endpoint still checks its own right.
func (s *Server) getAccount(w http.ResponseWriter, r *http.Request, c *caller) {
	v := accountView{Name: c.name, Bootstrap: c.bootstrap}
	if !c.bootstrap {
		if snap := s.m.Snapshot(); snap != nil && s.can(c.name, 0) {
			v.Rights = snap.Rights(c.name)
		}
	}
	switch a, err := s.cfg.Store.Account(r.Context(), c.name); {
	case err == nil:
		v.MustChange = a.MustChange
	case !errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// ownProfile exports a client profile for the caller itself: what a user
// who may connect needs, without the right to manage certificates. It is
// exportProfile for the caller's own name, so the formats, the fresh
// certificate and the event are the same. Refused (403) to the bootstrap
// administrator, to an account that is not an enabled user (a device's
// token, a disabled user), and to a user without the right connect-vpn,
// whose profile the broker would refuse anyway. Bounded by
// Config.ProfileLimit: each export is a new certificate.
func (s *Server) ownProfile(w http.ResponseWriter, r *http.Request, c *caller) {
	switch {
	case c.bootstrap:
		writeError(w, http.StatusForbidden, "the bootstrap administrator has no profile; name an administrator first (POST /api/v1/bootstrap)")
		return
	case !s.can(c.name, 0):
		writeError(w, http.StatusForbidden, fmt.Sprintf("%q is not an enabled user", c.name))
		return
	case !s.can(c.name, policy.RightConnectVPN):
		writeError(w, http.StatusForbidden, fmt.Sprintf("%q lacks the right %s, so it has no VPN profile", c.name, policy.RightConnectVPN))
		return
	}
	s.export(w, r, c, c.name, true)
}
