package model

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// BootstrapAccount is the name of the one-time administrator of a fresh
// installation (see Bootstrap); no user may be created under it.
const BootstrapAccount = "admin"

// collection describes one kind of named entry of the configuration.
type collection[T any] struct {
	kind string // for messages: "user", "role", ...
	list func(*store.Config) *[]T
	name func(*T) string
}

var (
	users     = collection[policy.User]{"user", func(c *store.Config) *[]policy.User { return &c.Model.Users }, func(u *policy.User) string { return u.Name }}
	roles     = collection[policy.Role]{"role", func(c *store.Config) *[]policy.Role { return &c.Model.Roles }, func(r *policy.Role) string { return r.Name }}
	groups    = collection[policy.Group]{"group", func(c *store.Config) *[]policy.Group { return &c.Model.Groups }, func(g *policy.Group) string { return g.Name }}
	relations = collection[policy.Relation]{"relation", func(c *store.Config) *[]policy.Relation { return &c.Model.Relations }, func(r *policy.Relation) string { return r.Name }}
	devices   = collection[policy.Device]{"device", func(c *store.Config) *[]policy.Device { return &c.Model.Devices }, func(d *policy.Device) string { return d.Name }}
)

func (k collection[T]) find(cfg *store.Config, name string) int {
	for i := range *k.list(cfg) {
		if k.name(&(*k.list(cfg))[i]) == name {
			return i
		}
	}
	return -1
}

// validName refuses (ErrInvalid) a name outside policy.ValidName's rule,
// before anything is read or stored. Compile refuses such a name too; this
// says so first and without ErrNotFound for a name that cannot exist.
func (k collection[T]) validName(name string) error {
	if err := policy.ValidName(name); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, k.kind, err)
	}
	return nil
}

func (k collection[T]) all(ctx context.Context, m *Manager) ([]T, error) {
	cfg, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return nil, err
	}
	return *k.list(cfg), nil
}

func (k collection[T]) get(ctx context.Context, m *Manager, name string) (T, error) {
	var zero T
	cfg, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return zero, err
	}
	i := k.find(cfg, name)
	if i < 0 {
		return zero, fmt.Errorf("%w: no %s %q", ErrNotFound, k.kind, name)
	}
	return (*k.list(cfg))[i], nil
}

// create adds item; also, if set, runs on the configuration in the same
// transaction (a device's networks).
func (k collection[T]) create(ctx context.Context, m *Manager, actor string, item T, also func(*store.Config)) error {
	name := k.name(&item)
	if name == "" {
		return fmt.Errorf("%w: %s without a name", ErrInvalid, k.kind)
	}
	if err := k.validName(name); err != nil {
		return err
	}
	return m.Change(ctx, actor, fmt.Sprintf("created %s %q", k.kind, name), func(cfg *store.Config, _ *store.Tx) error {
		if k.find(cfg, name) >= 0 {
			return fmt.Errorf("%w: %s %q exists", ErrConflict, k.kind, name)
		}
		*k.list(cfg) = append(*k.list(cfg), item)
		if also != nil {
			also(cfg)
		}
		return nil
	})
}

// put replaces the entry of item's name.
func (k collection[T]) put(ctx context.Context, m *Manager, actor string, item T, also func(*store.Config)) error {
	name := k.name(&item)
	if err := k.validName(name); err != nil {
		return err
	}
	return m.Change(ctx, actor, fmt.Sprintf("changed %s %q", k.kind, name), func(cfg *store.Config, _ *store.Tx) error {
		i := k.find(cfg, name)
		if i < 0 {
			return fmt.Errorf("%w: no %s %q", ErrNotFound, k.kind, name)
		}
		(*k.list(cfg))[i] = item
		if also != nil {
			also(cfg)
		}
		return nil
	})
}

func (k collection[T]) remove(ctx context.Context, m *Manager, actor, name string, also func(*store.Config)) error {
	return m.Change(ctx, actor, fmt.Sprintf("deleted %s %q", k.kind, name), func(cfg *store.Config, _ *store.Tx) error {
		i := k.find(cfg, name)
		if i < 0 {
			return fmt.Errorf("%w: no %s %q", ErrNotFound, k.kind, name)
		}
		*k.list(cfg) = slices.Delete(*k.list(cfg), i, i+1)
		if also != nil {
			also(cfg)
		}
		return nil
	})
}

// Users, roles, groups and relations: list, get (ErrNotFound), create
// (ErrConflict for an existing name), put (replace by name; ErrNotFound)
// and delete (ErrNotFound), each a Change by actor. A name outside
// policy.ValidName's rule is ErrInvalid.

// Users lists the users.
func (m *Manager) Users(ctx context.Context) ([]policy.User, error) { return users.all(ctx, m) }

// User returns the user called name.
func (m *Manager) User(ctx context.Context, name string) (policy.User, error) {
	return users.get(ctx, m, name)
}

// CreateUser creates u (its creation time is set now). With a password,
// the user can log in to the management API and console by password;
// without one, by certificate only. The store ends the API sessions of a
// user that a change disables or removes in the change's own transaction.
func (m *Manager) CreateUser(ctx context.Context, actor string, u policy.User, password string) error {
	if u.Name == BootstrapAccount {
		return fmt.Errorf("%w: %q is reserved", ErrInvalid, BootstrapAccount)
	}
	if password != "" {
		if err := CheckNewPassword(password); err != nil {
			return err
		}
	}
	if err := users.create(ctx, m, actor, u, nil); err != nil {
		return err
	}
	// The account is written only once the user exists, so that a
	// refused create (an existing name) leaves that user's password alone.
	// Should writing it fail, the user exists without a password and one
	// can be set with SetPassword.
	if password != "" {
		if err := m.setAccountPassword(ctx, u.Name, password, false); err != nil {
			m.log.Error("store the new user's password", "user", u.Name, "error", err)
		}
	}
	return nil
}

// PutUser replaces the user of u's name (roles, groups, disabled).
func (m *Manager) PutUser(ctx context.Context, actor string, u policy.User) error {
	return users.put(ctx, m, actor, u, nil)
}

// DeleteUser deletes the user called name, its account and its API
// sessions.
func (m *Manager) DeleteUser(ctx context.Context, actor, name string) error {
	return users.remove(ctx, m, actor, name, func(cfg *store.Config) { forgetProposals(cfg, name) })
}

// SetPassword sets the password of the user called name and ends the
// sessions opened with the old one, in one write. Whoever sets a password
// can log in with it: only an actor holding every right of the user may
// (ErrForbidden).
func (m *Manager) SetPassword(ctx context.Context, actor, name, password string) error {
	a := actorOf(actor)
	snap := m.Snapshot()
	if !known(snap, name) {
		return fmt.Errorf("%w: no user %q", ErrNotFound, name)
	}
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	// Checked before the slow hash and again, under the lock that
	// configuration changes take, where the password is stored.
	const verb = "set the password of"
	if err := mayActFor(a, snap, verb, name); err != nil {
		return err
	}
	acct, err := m.accountWithPassword(ctx, name, password, false)
	if err == nil {
		m.mu.Lock()
		if err = mayActFor(a, m.snap, verb, name); err == nil {
			err = m.cfg.Store.ResetAccount(ctx, acct)
		}
		m.mu.Unlock()
	}
	if err != nil {
		return err
	}
	m.Record(ctx, "config_change", name, actor, fmt.Sprintf("set the password of %q", name), nil)
	return nil
}

// ChangeOwnPassword sets the password of the account called name, which
// changes its own: it ends every other session of the account in the same
// write (one opened by whoever knew the old password among them) but the
// one whose token hash is keep (nil: none). Checking the old password is
// the front end's part of the step, as a login is.
func (m *Manager) ChangeOwnPassword(ctx context.Context, name, password string, keep []byte) error {
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	acct, err := m.accountWithPassword(ctx, name, password, false)
	if err != nil {
		return err
	}
	if err := m.cfg.Store.ResetAccountExcept(ctx, acct, keep); err != nil {
		return err
	}
	m.Record(ctx, "config_change", name, name, "changed own password", nil)
	return nil
}

func actorOf(name string) actor { return actor{name: name} }

// known reports whether snap has a participant called name.
func known(snap *policy.Snapshot, name string) bool {
	if snap == nil {
		return false
	}
	_, ok := snap.Lookup(name)
	return ok
}

// setAccountPassword stores a new password for the account called name,
// creating the account if it has none; its sessions are kept.
func (m *Manager) setAccountPassword(ctx context.Context, name, password string, mustChange bool) error {
	a, err := m.accountWithPassword(ctx, name, password, mustChange)
	if err != nil {
		return err
	}
	return m.cfg.Store.PutAccount(ctx, a)
}

// accountWithPassword returns the account called name (a new one if it has
// none) with the new password, not yet stored.
func (m *Manager) accountWithPassword(ctx context.Context, name, password string, mustChange bool) (store.Account, error) {
	h, err := m.cfg.HashPassword(ctx, password)
	if err != nil {
		return store.Account{}, err
	}
	now := m.now()
	a, err := m.cfg.Store.Account(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a = &store.Account{Name: name, Created: now}
	case err != nil:
		return store.Account{}, err
	}
	a.PasswordHash, a.MustChange, a.Updated = h, mustChange, now
	return *a, nil
}

// Roles lists the roles.
func (m *Manager) Roles(ctx context.Context) ([]policy.Role, error) { return roles.all(ctx, m) }

// Role returns the role called name.
func (m *Manager) Role(ctx context.Context, name string) (policy.Role, error) {
	return roles.get(ctx, m, name)
}

// CreateRole creates r.
func (m *Manager) CreateRole(ctx context.Context, actor string, r policy.Role) error {
	return roles.create(ctx, m, actor, r, nil)
}

// PutRole replaces the role of r's name.
func (m *Manager) PutRole(ctx context.Context, actor string, r policy.Role) error {
	return roles.put(ctx, m, actor, r, nil)
}

// DeleteRole deletes the role called name.
func (m *Manager) DeleteRole(ctx context.Context, actor, name string) error {
	return roles.remove(ctx, m, actor, name, nil)
}

// Groups lists the participant groups.
func (m *Manager) Groups(ctx context.Context) ([]policy.Group, error) { return groups.all(ctx, m) }

// Group returns the participant group called name.
func (m *Manager) Group(ctx context.Context, name string) (policy.Group, error) {
	return groups.get(ctx, m, name)
}

// CreateGroup creates g.
func (m *Manager) CreateGroup(ctx context.Context, actor string, g policy.Group) error {
	return groups.create(ctx, m, actor, g, nil)
}

// PutGroup replaces the group of g's name.
func (m *Manager) PutGroup(ctx context.Context, actor string, g policy.Group) error {
	return groups.put(ctx, m, actor, g, nil)
}

// DeleteGroup deletes the group called name.
func (m *Manager) DeleteGroup(ctx context.Context, actor, name string) error {
	return groups.remove(ctx, m, actor, name, nil)
}

// Relations lists the communication relations.
func (m *Manager) Relations(ctx context.Context) ([]policy.Relation, error) {
	return relations.all(ctx, m)
}

// Relation returns the communication relation called name.
func (m *Manager) Relation(ctx context.Context, name string) (policy.Relation, error) {
	return relations.get(ctx, m, name)
}

// CreateRelation creates r; a disabled relation lets nothing pass.
func (m *Manager) CreateRelation(ctx context.Context, actor string, r policy.Relation) error {
	return relations.create(ctx, m, actor, r, nil)
}

// PutRelation replaces the relation of r's name: enabling or disabling it
// activates or deactivates the connections it allows, on live tunnels.
func (m *Manager) PutRelation(ctx context.Context, actor string, r policy.Relation) error {
	return relations.put(ctx, m, actor, r, nil)
}

// DeleteRelation deletes the relation called name.
func (m *Manager) DeleteRelation(ctx context.Context, actor, name string) error {
	return relations.remove(ctx, m, actor, name, nil)
}

// Device is a device (a plant gateway) with the networks behind it.
type Device struct {
	Name     string
	Groups   []string
	Disabled bool
	// Networks are the device's LANs, each reached under its alias
	// through 1:1 NAT if it has one.
	Networks []store.Network
	// Created is set by the store (see CheckNewParticipants) and ignored
	// in changes.
	Created time.Time
}

func deviceOf(cfg *store.Config, d policy.Device) Device {
	return Device{Name: d.Name, Groups: d.Groups, Disabled: d.Disabled, Networks: cfg.Networks[d.Name], Created: d.Created}
}

// Policy is the device as the access model holds it: its subnets are its
// networks' LANs.
func (d Device) Policy() policy.Device {
	p := policy.Device{Name: d.Name, Groups: d.Groups, Disabled: d.Disabled}
	for _, n := range d.Networks {
		p.Subnets = append(p.Subnets, n.LAN)
	}
	return p
}

// CheckNetworks refuses (ErrInvalid) a network without a LAN, or with an
// alias of another size than its LAN.
func CheckNetworks(nets []store.Network) error {
	for _, n := range nets {
		if !n.LAN.IsValid() {
			return fmt.Errorf("%w: a network without lan", ErrInvalid)
		}
		if n.Alias.IsValid() && n.Alias.Bits() != n.LAN.Bits() {
			return fmt.Errorf("%w: alias %v and lan %v differ in size", ErrInvalid, n.Alias, n.LAN)
		}
	}
	return nil
}

// setNetworks returns the step that stores a device's networks.
func setNetworks(name string, nets []store.Network) func(*store.Config) {
	return func(cfg *store.Config) {
		if cfg.Networks == nil {
			cfg.Networks = map[string][]store.Network{}
		}
		cfg.Networks[name] = nets
	}
}

// Devices lists the devices with their networks.
func (m *Manager) Devices(ctx context.Context) ([]Device, error) {
	cfg, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Device, 0, len(cfg.Model.Devices))
	for _, d := range cfg.Model.Devices {
		out = append(out, deviceOf(cfg, d))
	}
	return out, nil
}

// Device returns the device called name.
func (m *Manager) Device(ctx context.Context, name string) (Device, error) {
	cfg, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return Device{}, err
	}
	i := devices.find(cfg, name)
	if i < 0 {
		return Device{}, fmt.Errorf("%w: no device %q", ErrNotFound, name)
	}
	return deviceOf(cfg, cfg.Model.Devices[i]), nil
}

// CreateDevice creates d with its networks. Networks whose LANs overlap
// another device's without an alias, or whose aliases collide, are
// refused (ErrInvalid) by the broker before anything is stored.
func (m *Manager) CreateDevice(ctx context.Context, actor string, d Device) error {
	if err := CheckNetworks(d.Networks); err != nil {
		return err
	}
	return devices.create(ctx, m, actor, d.Policy(), setNetworks(d.Name, d.Networks))
}

// PutDevice replaces the device of d's name, networks included.
func (m *Manager) PutDevice(ctx context.Context, actor string, d Device) error {
	if err := CheckNetworks(d.Networks); err != nil {
		return err
	}
	return devices.put(ctx, m, actor, d.Policy(), setNetworks(d.Name, d.Networks))
}

// DeleteDevice deletes the device called name and its networks.
func (m *Manager) DeleteDevice(ctx context.Context, actor, name string) error {
	return devices.remove(ctx, m, actor, name, func(cfg *store.Config) {
		delete(cfg.Networks, name)
		forgetProposals(cfg, name)
	})
}

// Networks returns the networks of the device called name.
func (m *Manager) Networks(ctx context.Context, name string) ([]store.Network, error) {
	d, err := m.Device(ctx, name)
	return d.Networks, err
}

// SetNetworks replaces the networks of the device called name.
func (m *Manager) SetNetworks(ctx context.Context, actor, name string, nets []store.Network) error {
	if err := CheckNetworks(nets); err != nil {
		return err
	}
	return m.Change(ctx, actor, fmt.Sprintf("changed the networks of device %q", name), func(cfg *store.Config, _ *store.Tx) error {
		i := devices.find(cfg, name)
		if i < 0 {
			return fmt.Errorf("%w: no device %q", ErrNotFound, name)
		}
		setNetworks(name, nets)(cfg)
		cfg.Model.Devices[i].Subnets = nil
		for _, n := range nets {
			cfg.Model.Devices[i].Subnets = append(cfg.Model.Devices[i].Subnets, n.LAN)
		}
		return nil
	})
}
