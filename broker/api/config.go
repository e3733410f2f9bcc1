package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// The configuration's collections. Each handler decodes the request,
// calls the domain step of model.Manager (which checks the change, stores
// it, applies it to the broker and records it), and encodes the answer;
// writeModelError maps a step's error to the status.

// collection is the API of one kind of named entry: the domain steps that
// list, read, create, replace and delete it.
type collection[T any] struct {
	kind   string // for messages: "user", "role", ...
	name   func(*T) string
	list   func(*store.Config) *[]T
	all    func(*model.Manager, *http.Request) ([]T, error)
	one    func(*model.Manager, *http.Request, string) (T, error)
	create func(*model.Manager, *http.Request, string, T) error
	put    func(*model.Manager, *http.Request, string, T) error
	remove func(*model.Manager, *http.Request, string, string) error
}

func (k collection[T]) listH(s *Server, w http.ResponseWriter, r *http.Request, _ *caller) {
	items, err := k.all(s.m, r)
	if err != nil {
		writeModelError(w, err)
		return
	}
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, items)
}

func (k collection[T]) getH(s *Server, w http.ResponseWriter, r *http.Request, _ *caller) {
	v, err := k.one(s.m, r, r.PathValue("name"))
	if err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (k collection[T]) createH(s *Server, w http.ResponseWriter, r *http.Request, c *caller) {
	v, ok := decode[T](w, r)
	if !ok {
		return
	}
	if err := k.create(s.m, r, c.name, v); err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (k collection[T]) putH(s *Server, w http.ResponseWriter, r *http.Request, c *caller) {
	v, ok := decode[T](w, r)
	if !ok {
		return
	}
	if !pathNames(w, r, k.kind, k.name(&v)) {
		return
	}
	if err := k.put(s.m, r, c.name, v); err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (k collection[T]) deleteH(s *Server, w http.ResponseWriter, r *http.Request, c *caller) {
	if err := k.remove(s.m, r, c.name, r.PathValue("name")); err != nil {
		writeModelError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pathNames answers 400 unless the body's name is valid and the one the
// path names.
func pathNames(w http.ResponseWriter, r *http.Request, kind, body string) bool {
	if err := policy.ValidName(body); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %v", kind, err))
		return false
	}
	if name := r.PathValue("name"); body != name {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the body names %q, the path %q", body, name))
		return false
	}
	return true
}

var (
	users = collection[policy.User]{kind: "user", name: func(u *policy.User) string { return u.Name },
		list: func(c *store.Config) *[]policy.User { return &c.Model.Users },
		all:  func(m *model.Manager, r *http.Request) ([]policy.User, error) { return m.Users(r.Context()) },
		one:  func(m *model.Manager, r *http.Request, n string) (policy.User, error) { return m.User(r.Context(), n) },
		put: func(m *model.Manager, r *http.Request, a string, v policy.User) error {
			return m.PutUser(r.Context(), a, v)
		},
		remove: func(m *model.Manager, r *http.Request, a, n string) error {
			return m.DeleteUser(r.Context(), a, n)
		}}
	roles = collection[policy.Role]{kind: "role", name: func(v *policy.Role) string { return v.Name },
		list: func(c *store.Config) *[]policy.Role { return &c.Model.Roles },
		all:  func(m *model.Manager, r *http.Request) ([]policy.Role, error) { return m.Roles(r.Context()) },
		one:  func(m *model.Manager, r *http.Request, n string) (policy.Role, error) { return m.Role(r.Context(), n) },
		create: func(m *model.Manager, r *http.Request, a string, v policy.Role) error {
			return m.CreateRole(r.Context(), a, v)
		},
		put: func(m *model.Manager, r *http.Request, a string, v policy.Role) error {
			return m.PutRole(r.Context(), a, v)
		},
		remove: func(m *model.Manager, r *http.Request, a, n string) error { return m.DeleteRole(r.Context(), a, n) }}
	groups = collection[policy.Group]{kind: "group", name: func(v *policy.Group) string { return v.Name },
		list: func(c *store.Config) *[]policy.Group { return &c.Model.Groups },
		all:  func(m *model.Manager, r *http.Request) ([]policy.Group, error) { return m.Groups(r.Context()) },
		one: func(m *model.Manager, r *http.Request, n string) (policy.Group, error) {
			return m.Group(r.Context(), n)
		},
		create: func(m *model.Manager, r *http.Request, a string, v policy.Group) error {
			return m.CreateGroup(r.Context(), a, v)
		},
		put: func(m *model.Manager, r *http.Request, a string, v policy.Group) error {
			return m.PutGroup(r.Context(), a, v)
		},
		remove: func(m *model.Manager, r *http.Request, a, n string) error { return m.DeleteGroup(r.Context(), a, n) }}
	relations = collection[policy.Relation]{kind: "relation", name: func(v *policy.Relation) string { return v.Name },
		list: func(c *store.Config) *[]policy.Relation { return &c.Model.Relations },
		all:  func(m *model.Manager, r *http.Request) ([]policy.Relation, error) { return m.Relations(r.Context()) },
		one: func(m *model.Manager, r *http.Request, n string) (policy.Relation, error) {
			return m.Relation(r.Context(), n)
		},
		create: func(m *model.Manager, r *http.Request, a string, v policy.Relation) error {
			return m.CreateRelation(r.Context(), a, v)
		},
		put: func(m *model.Manager, r *http.Request, a string, v policy.Relation) error {
			return m.PutRelation(r.Context(), a, v)
		},
		remove: func(m *model.Manager, r *http.Request, a, n string) error { return m.DeleteRelation(r.Context(), a, n) }}
)

// find returns the index of the entry called name in cfg, or -1.
func (k collection[T]) find(cfg *store.Config, name string) int {
	return slices.IndexFunc(*k.list(cfg), func(v T) bool { return k.name(&v) == name })
}

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

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, c *caller) {
	users.listH(s, w, r, c)
}
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, c *caller) { users.getH(s, w, r, c) }
func (s *Server) putUser(w http.ResponseWriter, r *http.Request, c *caller) { users.putH(s, w, r, c) }
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, c *caller) {
	users.deleteH(s, w, r, c)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, c *caller) {
	u, ok := decode[newUser](w, r)
	if !ok {
		return
	}
	if err := s.m.CreateUser(r.Context(), c.name, u.User, u.Password); err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, u.User)
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request, c *caller) {
	req, ok := decode[struct {
		Password string `json:"password"`
	}](w, r)
	if !ok {
		return
	}
	if err := s.m.SetPassword(r.Context(), c.name, r.PathValue("name"), req.Password); err != nil {
		writeModelError(w, err)
		return
	}
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

func viewDevice(d model.Device) deviceView {
	return deviceView{Name: d.Name, Groups: d.Groups, Disabled: d.Disabled, Networks: d.Networks, Created: d.Created}
}

func (v deviceView) device() model.Device {
	return model.Device{Name: v.Name, Groups: v.Groups, Disabled: v.Disabled, Networks: v.Networks}
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, _ *caller) {
	ds, err := s.m.Devices(r.Context())
	if err != nil {
		writeModelError(w, err)
		return
	}
	out := make([]deviceView, 0, len(ds))
	for _, d := range ds {
		out = append(out, viewDevice(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request, _ *caller) {
	d, err := s.m.Device(r.Context(), r.PathValue("name"))
	if err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewDevice(d))
}

func (s *Server) createDevice(w http.ResponseWriter, r *http.Request, c *caller) {
	v, ok := decode[deviceView](w, r)
	if !ok {
		return
	}
	if err := model.CheckNetworks(v.Networks); err != nil {
		writeModelError(w, err)
		return
	}
	if len(v.Networks) > 0 && !s.can(c.name, policy.RightManageAddressSpaces) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("%q lacks the right %s needed for networks", c.name, policy.RightManageAddressSpaces))
		return
	}
	if err := s.m.CreateDevice(r.Context(), c.name, v.device()); err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, v.device().Policy())
}

func (s *Server) putDevice(w http.ResponseWriter, r *http.Request, c *caller) {
	v, ok := decode[deviceView](w, r)
	if !ok {
		return
	}
	if err := model.CheckNetworks(v.Networks); err != nil {
		writeModelError(w, err)
		return
	}
	if !pathNames(w, r, "device", v.Name) {
		return
	}
	if !s.can(c.name, policy.RightManageAddressSpaces) {
		d, err := s.m.Device(r.Context(), v.Name)
		if err != nil && !errors.Is(err, model.ErrNotFound) {
			writeModelError(w, err)
			return
		}
		if !slices.Equal(d.Networks, v.Networks) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("%q lacks the right %s needed to change networks", c.name, policy.RightManageAddressSpaces))
			return
		}
	}
	if err := s.m.PutDevice(r.Context(), c.name, v.device()); err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v.device().Policy())
}

func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request, c *caller) {
	if err := s.m.DeleteDevice(r.Context(), c.name, r.PathValue("name")); err != nil {
		writeModelError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getNetworks(w http.ResponseWriter, r *http.Request, _ *caller) {
	nets, err := s.m.Networks(r.Context(), r.PathValue("name"))
	if err != nil {
		writeModelError(w, err)
		return
	}
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
	if err := s.m.SetNetworks(r.Context(), c.name, r.PathValue("name"), nets); err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nets)
}

func (s *Server) getIPsecProposals(w http.ResponseWriter, r *http.Request, _ *caller) {
	p, err := s.m.IPsecProposals(r.Context())
	if err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) putIPsecProposals(w http.ResponseWriter, r *http.Request, c *caller) {
	p, ok := decode[store.IPsecProposals](w, r)
	if !ok {
		return
	}
	if err := s.m.SetIPsecProposals(r.Context(), c.name, p); err != nil {
		writeModelError(w, err)
		return
	}
	s.getIPsecProposals(w, r, c)
}
