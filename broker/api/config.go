package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// Load reads the stored configuration and applies it to the broker; New
// does it once, and a restore does it again.
func (s *Server) Load(ctx context.Context) error {
	cfg, err := s.cfg.Store.Config(ctx)
	if err != nil {
		return err
	}
	snap, devices, err := s.cfg.Compile(cfg)
	if err != nil {
		return fmt.Errorf("api: stored configuration: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cfg.Broker.Apply(snap, devices); err != nil {
		return err
	}
	s.snap = snap
	return s.loadLicenses(ctx)
}

var (
	errExists   = errors.New("exists")
	errNotFound = errors.New("not found")
	errInvalid  = errors.New("invalid")
)

// change applies fn to the stored configuration, checks that the result
// compiles, that it is within the caller's rights and keeps an
// administrator (see checkGrants and checkLastHolders), and that the broker
// accepts its networks, commits it, and records who changed what. Only
// then does the broker run with it.
func (s *Server) change(r *http.Request, c *caller, what string, fn func(*store.Config) error) error {
	return s.changeWith(r, c, what, func(cfg *store.Config, _ *store.Tx) error { return fn(cfg) })
}

// changeWith is change whose fn may also write accounts and secrets in the
// change's transaction.
func (s *Server) changeWith(r *http.Request, c *caller, what string, fn func(*store.Config, *store.Tx) error) error {
	return s.changeAdmitting(r, c, what, "", fn)
}

// changeAdmitting is changeWith that admits the new participant called
// admitted even beyond the licensed capacity (see admitBeyondCapacity);
// "" admits none.
func (s *Server) changeAdmitting(r *http.Request, c *caller, what, admitted string, fn func(*store.Config, *store.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var snap *policy.Snapshot // the model in force once the change is stored
	applied := false
	_, err := s.cfg.Store.UpdateWith(r.Context(), func(cfg *store.Config, tx *store.Tx) error {
		// The model before the change, read in the change's transaction:
		// the rights are judged on what is stored, not on what this
		// process last loaded.
		before, _, err := s.cfg.Compile(cfg)
		if err != nil {
			return fmt.Errorf("api: the stored configuration: %w", err)
		}
		beforeModel := before.Model()
		participants := model.Participants(cfg)
		if err := fn(cfg, tx); err != nil {
			return err
		}
		if err := model.CheckNewParticipantsAdmitting(participants, cfg, s.cfg.Licenses, s.now(), admitted); err != nil {
			return err
		}
		after, devices, err := s.cfg.Compile(cfg)
		if err != nil {
			return fmt.Errorf("%w: %w", errInvalid, err)
		}
		if err := checkGrants(c, before, after, beforeModel, &cfg.Model); err != nil {
			return err
		}
		if err := checkLastHolders(before, after, beforeModel, &cfg.Model); err != nil {
			return err
		}
		// Applied inside the transaction: a route conflict refuses the
		// change before it is stored.
		applied = true
		if err := s.cfg.Broker.Apply(after, devices); err != nil {
			return fmt.Errorf("%w: %w", errInvalid, err)
		}
		snap = after
		return nil
	})
	if err != nil {
		if applied {
			// Stored nothing: put the broker back as it was.
			if rerr := s.reapplyStored(context.WithoutCancel(r.Context())); rerr != nil {
				s.log.Error("the broker runs a configuration that was not stored", "error", rerr)
				return fmt.Errorf("%w; and putting the broker back failed: %w", err, rerr)
			}
		}
		return err
	}
	s.snap = snap
	actor := ""
	if c != nil {
		actor = c.name
	}
	s.event(r, "config_change", "", actor, what, nil)
	return nil
}

// reapplyStored applies the stored configuration to the broker again.
func (s *Server) reapplyStored(ctx context.Context) error {
	cfg, err := s.cfg.Store.Config(ctx)
	if err != nil {
		return err
	}
	snap, devices, err := s.cfg.Compile(cfg)
	if err != nil {
		return err
	}
	return s.cfg.Broker.Apply(snap, devices)
}

func writeChangeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errForbidden):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, errExists), errors.Is(err, ErrCapacity), errors.Is(err, errLastHolder), errors.Is(err, errBootstrapDone):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, errInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// collection describes one kind of named entry of the configuration.
type collection[T any] struct {
	kind string // for messages: "user", "role", ...
	list func(*store.Config) *[]T
	name func(*T) string
}

func (k collection[T]) find(cfg *store.Config, name string) int {
	for i := range *k.list(cfg) {
		if k.name(&(*k.list(cfg))[i]) == name {
			return i
		}
	}
	return -1
}

// validName answers 400 for a name outside policy.ValidName's rule, before
// anything is read or stored. Compile refuses such a name too; this says
// so first and without a 404 for a name that cannot exist.
func (k collection[T]) validName(w http.ResponseWriter, name string) bool {
	if err := policy.ValidName(name); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %v", k.kind, err))
		return false
	}
	return true
}

func (k collection[T]) listAll(s *Server, w http.ResponseWriter, r *http.Request) {
	cfg, err := s.cfg.Store.Config(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	items := *k.list(cfg)
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, items)
}

func (k collection[T]) get(s *Server, w http.ResponseWriter, r *http.Request) {
	cfg, err := s.cfg.Store.Config(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	name := r.PathValue("name")
	i := k.find(cfg, name)
	if i < 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no %s %q", k.kind, name))
		return
	}
	writeJSON(w, http.StatusOK, (*k.list(cfg))[i])
}

// create adds item; also, if set, runs on the configuration in the same
// transaction (a device's networks).
func (k collection[T]) create(s *Server, w http.ResponseWriter, r *http.Request, c *caller, item T, also func(*store.Config)) bool {
	name := k.name(&item)
	if name == "" {
		writeError(w, http.StatusBadRequest, k.kind+" without a name")
		return false
	}
	if !k.validName(w, name) {
		return false
	}
	err := s.change(r, c, fmt.Sprintf("created %s %q", k.kind, name), func(cfg *store.Config) error {
		if k.find(cfg, name) >= 0 {
			return fmt.Errorf("%w: %s %q", errExists, k.kind, name)
		}
		*k.list(cfg) = append(*k.list(cfg), item)
		if also != nil {
			also(cfg)
		}
		return nil
	})
	if err != nil {
		writeChangeError(w, err)
		return false
	}
	writeJSON(w, http.StatusCreated, item)
	return true
}

func (k collection[T]) put(s *Server, w http.ResponseWriter, r *http.Request, c *caller, item T, also func(*store.Config)) bool {
	name := r.PathValue("name")
	if !k.validName(w, k.name(&item)) {
		return false
	}
	if k.name(&item) != name {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the body names %q, the path %q", k.name(&item), name))
		return false
	}
	err := s.change(r, c, fmt.Sprintf("changed %s %q", k.kind, name), func(cfg *store.Config) error {
		i := k.find(cfg, name)
		if i < 0 {
			return fmt.Errorf("%w: %s %q", errNotFound, k.kind, name)
		}
		(*k.list(cfg))[i] = item
		if also != nil {
			also(cfg)
		}
		return nil
	})
	if err != nil {
		writeChangeError(w, err)
		return false
	}
	writeJSON(w, http.StatusOK, item)
	return true
}

func (k collection[T]) remove(s *Server, w http.ResponseWriter, r *http.Request, c *caller, also func(*store.Config)) bool {
	name := r.PathValue("name")
	err := s.change(r, c, fmt.Sprintf("deleted %s %q", k.kind, name), func(cfg *store.Config) error {
		i := k.find(cfg, name)
		if i < 0 {
			return fmt.Errorf("%w: %s %q", errNotFound, k.kind, name)
		}
		*k.list(cfg) = slices.Delete(*k.list(cfg), i, i+1)
		if also != nil {
			also(cfg)
		}
		return nil
	})
	if err != nil {
		writeChangeError(w, err)
		return false
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

// The handlers of a plain collection (roles, groups, relations), with the
// signature of route.handle.

func (k collection[T]) listH(s *Server, w http.ResponseWriter, r *http.Request, _ *caller) {
	k.listAll(s, w, r)
}

func (k collection[T]) getH(s *Server, w http.ResponseWriter, r *http.Request, _ *caller) {
	k.get(s, w, r)
}

func (k collection[T]) createH(s *Server, w http.ResponseWriter, r *http.Request, c *caller) {
	if v, ok := decode[T](w, r); ok {
		k.create(s, w, r, c, v, nil)
	}
}

func (k collection[T]) putH(s *Server, w http.ResponseWriter, r *http.Request, c *caller) {
	if v, ok := decode[T](w, r); ok {
		k.put(s, w, r, c, v, nil)
	}
}

func (k collection[T]) deleteH(s *Server, w http.ResponseWriter, r *http.Request, c *caller) {
	k.remove(s, w, r, c, nil)
}

var (
	users     = collection[policy.User]{"user", func(c *store.Config) *[]policy.User { return &c.Model.Users }, func(u *policy.User) string { return u.Name }}
	roles     = collection[policy.Role]{"role", func(c *store.Config) *[]policy.Role { return &c.Model.Roles }, func(r *policy.Role) string { return r.Name }}
	groups    = collection[policy.Group]{"group", func(c *store.Config) *[]policy.Group { return &c.Model.Groups }, func(g *policy.Group) string { return g.Name }}
	relations = collection[policy.Relation]{"relation", func(c *store.Config) *[]policy.Relation { return &c.Model.Relations }, func(r *policy.Relation) string { return r.Name }}
	devices   = collection[policy.Device]{"device", func(c *store.Config) *[]policy.Device { return &c.Model.Devices }, func(d *policy.Device) string { return d.Name }}
)

func decode[T any](w http.ResponseWriter, r *http.Request) (T, bool) {
	var v T
	if err := readJSON(r, &v); err != nil {
		writeBodyError(w, err)
		return v, false
	}
	return v, true
}

// Users. A user created with a password can log in to this API; without
// one it logs in by certificate only.

type newUser struct {
	policy.User
	Password string `json:"password,omitempty"`
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ *caller) { users.listAll(s, w, r) }
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, _ *caller)   { users.get(s, w, r) }

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := decode[newUser](w, r)
	if !ok {
		return
	}
	if u.Name == BootstrapAccount {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is reserved", BootstrapAccount))
		return
	}
	if u.Password != "" {
		if err := checkNewPassword(u.Password); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	// The account is written only once the user exists, so that a
	// refused create (an existing name) leaves that user's password alone.
	// Should writing it fail, the user exists without a password and one
	// can be set with PUT /users/{name}/password.
	if users.create(s, w, r, c, u.User, nil) && u.Password != "" {
		if err := s.setAccountPassword(r.Context(), u.Name, u.Password, false); err != nil {
			s.log.Error("store the new user's password", "user", u.Name, "error", err)
		}
	}
}

// mayActFor refuses (errForbidden) c an action on the user called name
// that lies beyond c's rights, judged on the model in force.
func (s *Server) mayActFor(c *caller, verb, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mayActForLocked(c, verb, name)
}

// mayActForLocked is mayActFor with s.mu held.
func (s *Server) mayActForLocked(c *caller, verb, name string) error {
	if missing := s.snap.Granted(name) &^ heldBy(c, s.snap); missing != 0 {
		return notWithin(c, verb, "user", name, missing)
	}
	return nil
}

func (s *Server) userExists(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.snap.Lookup(name)
	return ok
}

// putUser and deleteUser: the store ends the API sessions of a user that
// a change disables or removes (and deletes a removed user's account) in
// the change's own transaction, so a request either does all of it or
// fails as a whole.

func (s *Server) putUser(w http.ResponseWriter, r *http.Request, c *caller) {
	if u, ok := decode[policy.User](w, r); ok {
		users.put(s, w, r, c, u, nil)
	}
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, c *caller) {
	users.remove(s, w, r, c, nil)
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request, c *caller) {
	req, ok := decode[struct {
		Password string `json:"password"`
	}](w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if !s.userExists(name) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no user %q", name))
		return
	}
	if err := checkNewPassword(req.Password); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Whoever sets a password can log in with it: only a caller holding
	// every right of the user may (see grants.go). Checked before the
	// slow hash and again, under the lock that configuration changes
	// take, where the password is stored.
	if err := s.mayActFor(c, "set the password of", name); err != nil {
		writeChangeError(w, err)
		return
	}
	// The new password and the end of the sessions opened with the old
	// one are one write: a failure leaves both as they were.
	a, err := s.accountWithPassword(r.Context(), name, req.Password, false)
	if err == nil {
		s.mu.Lock()
		if err = s.mayActForLocked(c, "set the password of", name); err == nil {
			err = s.cfg.Store.ResetAccount(r.Context(), a)
		}
		s.mu.Unlock()
	}
	if err != nil {
		writeChangeError(w, err)
		return
	}
	s.event(r, "config_change", name, c.name, fmt.Sprintf("set the password of %q", name), nil)
	w.WriteHeader(http.StatusNoContent)
}

// Devices carry their networks; changing the networks (the NAT aliases)
// also needs the right to manage address spaces.

type deviceView struct {
	Name     string          `json:"name"`
	Groups   []string        `json:"groups,omitempty"`
	Disabled bool            `json:"disabled,omitempty"`
	Networks []store.Network `json:"networks,omitempty"`
	// Created is shown, and ignored in requests (see
	// model.CheckNewParticipants).
	Created time.Time `json:"created,omitzero"`
}

func viewDevice(cfg *store.Config, d policy.Device) deviceView {
	return deviceView{Name: d.Name, Groups: d.Groups, Disabled: d.Disabled, Networks: cfg.Networks[d.Name], Created: d.Created}
}

func (v deviceView) device() policy.Device {
	d := policy.Device{Name: v.Name, Groups: v.Groups, Disabled: v.Disabled}
	for _, n := range v.Networks {
		d.Subnets = append(d.Subnets, n.LAN)
	}
	return d
}

func checkNetworks(nets []store.Network) error {
	for _, n := range nets {
		if !n.LAN.IsValid() {
			return fmt.Errorf("%w: a network without lan", errInvalid)
		}
		if n.Alias.IsValid() && n.Alias.Bits() != n.LAN.Bits() {
			return fmt.Errorf("%w: alias %v and lan %v differ in size", errInvalid, n.Alias, n.LAN)
		}
	}
	return nil
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, _ *caller) {
	cfg, err := s.cfg.Store.Config(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []deviceView{}
	for _, d := range cfg.Model.Devices {
		out = append(out, viewDevice(cfg, d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request, _ *caller) {
	cfg, err := s.cfg.Store.Config(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	i := devices.find(cfg, r.PathValue("name"))
	if i < 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no device %q", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, viewDevice(cfg, cfg.Model.Devices[i]))
}

// setNetworks returns the step that stores a device's networks, for
// create and put.
func setNetworks(name string, nets []store.Network) func(*store.Config) {
	return func(cfg *store.Config) {
		if cfg.Networks == nil {
			cfg.Networks = map[string][]store.Network{}
		}
		cfg.Networks[name] = nets
	}
}

func (s *Server) createDevice(w http.ResponseWriter, r *http.Request, c *caller) {
	v, ok := decode[deviceView](w, r)
	if !ok {
		return
	}
	if err := checkNetworks(v.Networks); err != nil {
		writeChangeError(w, err)
		return
	}
	if len(v.Networks) > 0 && !s.can(c.name, policy.RightManageAddressSpaces) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("%q lacks the right %s needed for networks", c.name, policy.RightManageAddressSpaces))
		return
	}
	devices.create(s, w, r, c, v.device(), setNetworks(v.Name, v.Networks))
}

func (s *Server) putDevice(w http.ResponseWriter, r *http.Request, c *caller) {
	v, ok := decode[deviceView](w, r)
	if !ok {
		return
	}
	if err := checkNetworks(v.Networks); err != nil {
		writeChangeError(w, err)
		return
	}
	if !s.can(c.name, policy.RightManageAddressSpaces) {
		cfg, err := s.cfg.Store.Config(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if !slices.Equal(cfg.Networks[v.Name], v.Networks) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("%q lacks the right %s needed to change networks", c.name, policy.RightManageAddressSpaces))
			return
		}
	}
	devices.put(s, w, r, c, v.device(), setNetworks(v.Name, v.Networks))
}

func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request, c *caller) {
	name := r.PathValue("name")
	devices.remove(s, w, r, c, func(cfg *store.Config) { delete(cfg.Networks, name) })
}

func (s *Server) getNetworks(w http.ResponseWriter, r *http.Request, _ *caller) {
	cfg, err := s.cfg.Store.Config(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	name := r.PathValue("name")
	if devices.find(cfg, name) < 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no device %q", name))
		return
	}
	nets := cfg.Networks[name]
	if nets == nil {
		nets = []store.Network{}
	}
	writeJSON(w, http.StatusOK, nets)
}

func (s *Server) putNetworks(w http.ResponseWriter, r *http.Request, c *caller) {
	nets, ok := decode[[]store.Network](w, r)
	if !ok {
		return
	}
	if err := checkNetworks(nets); err != nil {
		writeChangeError(w, err)
		return
	}
	name := r.PathValue("name")
	err := s.change(r, c, fmt.Sprintf("changed the networks of device %q", name), func(cfg *store.Config) error {
		i := devices.find(cfg, name)
		if i < 0 {
			return fmt.Errorf("%w: device %q", errNotFound, name)
		}
		setNetworks(name, nets)(cfg)
		cfg.Model.Devices[i].Subnets = nil
		for _, n := range nets {
			cfg.Model.Devices[i].Subnets = append(cfg.Model.Devices[i].Subnets, n.LAN)
		}
		return nil
	})
	if err != nil {
		writeChangeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nets)
}
