package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/remotegate/remotegate/policy"
)

// Network is a LAN behind a device and the alias prefix it is exposed under
// (zero Alias: routed under its real prefix).
type Network struct {
	LAN   netip.Prefix `json:"lan"`
	Alias netip.Prefix `json:"alias,omitzero"`
}

// Settings are the broker's own settings, stored with the configuration:
// where it serves and what the profiles it hands out tell participants, so
// that every process on the database (the broker, a command that exports
// a profile) works from the same values. The store keeps them as given;
// a zero field means the product's default (broker/app documents them).
type Settings struct {
	// Listen is the address OpenVPN and IPsec listen on; empty: all.
	Listen string `json:"listen,omitempty"`
	// Port of OpenVPN over UDP and TCP.
	Port int `json:"port,omitempty"`
	// PublicAddress is what profiles connect to: a host name or an IP
	// address.
	PublicAddress string `json:"public_address,omitempty"`
	// Pool is the tunnel network.
	Pool netip.Prefix `json:"pool,omitzero"`
	// Pool6 is the IPv6 tunnel network; the zero value: none (IPv4 only).
	Pool6 netip.Prefix `json:"pool6,omitzero"`
	// UserRoutes are pushed to every user besides the networks its
	// relations reach.
	UserRoutes []netip.Prefix `json:"user_routes,omitempty"`
	// IPsecPort is the UDP port of IKE with NAT traversal and of ESP;
	// negative: IPsec off.
	IPsecPort int `json:"ipsec_port,omitempty"`
	// IKEPort is the port of plain IKE; negative: none.
	IKEPort int `json:"ike_port,omitempty"`
	// Proposals are the IPsec algorithm proposals; zero: the ipsec
	// package's defaults.
	Proposals IPsecProposals `json:"ipsec_proposals,omitzero"`
}

// IPsecProposals are IPsec algorithm proposals in strongSwan's syntax, as
// ipsec.ParseIKEProposals and ipsec.ParseESPProposals read them
// ("aes256gcm16-prfsha384-ecp384,aes128gcm16-prfsha256-curve25519"); an
// empty string means the defaults. The store keeps the text; the broker's
// model checks it.
type IPsecProposals struct {
	// IKE are the IKE SA proposals of every IPsec peer: they cannot differ
	// per participant, since the broker answers IKE_SA_INIT before the peer
	// says who it is.
	IKE string `json:"ike,omitempty"`
	// ESP are the child SA proposals of every peer without its own.
	ESP string `json:"esp,omitempty"`
	// Participants are the child SA proposals of single participants, by
	// name, in place of ESP.
	Participants map[string]string `json:"participants,omitempty"`
}

// IsZero reports whether no proposal is set.
func (p IPsecProposals) IsZero() bool {
	return p.IKE == "" && p.ESP == "" && len(p.Participants) == 0
}

// IsZero reports whether no setting is set.
func (s Settings) IsZero() bool {
	return s.Listen == "" && s.Port == 0 && s.PublicAddress == "" && !s.Pool.IsValid() && !s.Pool6.IsValid() &&
		len(s.UserRoutes) == 0 && s.IPsecPort == 0 && s.IKEPort == 0 && s.Proposals.IsZero()
}

// Config is the configuration administrators edit: the access model and the
// devices' networks, and the broker's settings.
type Config struct {
	// Model is the access model. Entries of each kind come back in the
	// order they were first stored, whatever their order in later updates.
	Model policy.Model
	// Networks maps a device name to its networks. Model.Devices[i].Subnets
	// are kept equal to the LANs by the caller. Config never returns a nil
	// map; a device without networks has no entry.
	Networks map[string][]Network
	// Settings are the broker's own settings; zero when none were stored.
	Settings Settings
	// Revision increases by one with every committed Update.
	Revision int64
}

// deviceDoc is the stored form of a device: the policy struct and the
// device's networks.
type deviceDoc struct {
	policy.Device
	Networks []Network `json:"networks,omitempty"`
}

// docRow is one stored model entry.
type docRow struct {
	name string
	seq  int64
	doc  string
}

// entry is one model entry about to be stored.
type entry struct {
	name, doc string
}

// Config returns the current configuration.
func (s *Store) Config(ctx context.Context) (*Config, error) {
	var c *Config
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		c, _, err = loadConfig(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: config: %w", err)
	}
	return c, nil
}

// Update runs fn on a copy of the current configuration inside one write
// transaction. If fn returns nil, the entries that changed are written and
// Revision is incremented, atomically, and Update returns the configuration
// as Config now returns it. If fn returns an error, nothing changes and that
// error is returned as is.
//
// Entries are matched by name: only new, changed and removed ones are
// written. Names must be unique within a kind, and Networks may name only
// devices of the model; changes fn makes to Revision are ignored. The store
// does not otherwise validate the model (policy.Compile does).
//
// A user that the change removes or disables loses its API sessions in the
// same transaction: a removed user's account (its password) and tokens are
// deleted, a disabled user's tokens. So a failure cannot leave a usable
// token, or a password waiting for a new user of the same name, behind.
func (s *Store) Update(ctx context.Context, fn func(*Config) error) (*Config, error) {
	return s.UpdateWith(ctx, func(c *Config, _ *Tx) error { return fn(c) })
}

// UpdateWith is Update whose fn may also read and write accounts and
// secrets through tx, in the same transaction as the configuration change:
// a step that must happen exactly once with it (handing a fresh
// installation over to its first administrator) commits with it or not at
// all. tx is valid only during fn.
func (s *Store) UpdateWith(ctx context.Context, fn func(*Config, *Tx) error) (*Config, error) {
	var (
		out   *Config
		fnErr error
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		cur, rows, err := loadConfig(ctx, tx)
		if err != nil {
			return err
		}
		rev := cur.Revision
		users := make(map[string]bool, len(cur.Model.Users)) // enabled before fn
		for _, u := range cur.Model.Users {
			users[u.Name] = !u.Disabled
		}
		if err := fn(cur, &Tx{ctx: ctx, tx: tx, s: s}); err != nil {
			fnErr = err
			return err
		}
		if err := s.storeConfig(ctx, tx, cur, rows); err != nil {
			return err
		}
		if err := endSessionsOfRemoved(ctx, tx, users, cur.Model.Users); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, sqlSetMeta, strconv.FormatInt(rev+1, 10), metaRevision); err != nil {
			return err
		}
		out, _, err = loadConfig(ctx, tx)
		return err
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("store: update config: %w", err)
	}
	return out, nil
}

// endSessionsOfRemoved deletes the accounts of the users in before that are
// not in after, and the tokens of those that after disables.
func endSessionsOfRemoved(ctx context.Context, tx *sql.Tx, before map[string]bool, after []policy.User) error {
	if len(before) == 0 {
		return nil
	}
	disabled := make(map[string]bool, len(after)) // name -> disabled, for the users kept
	for _, u := range after {
		disabled[u.Name] = u.Disabled
	}
	for name := range before {
		off, kept := disabled[name]
		switch {
		case !kept:
			if _, err := tx.ExecContext(ctx, sqlDeleteAccount, name); err != nil { // its tokens cascade
				return fmt.Errorf("delete the account of removed user %q: %w", name, err)
			}
		case off:
			if _, err := tx.ExecContext(ctx, sqlDeleteTokensOf, name); err != nil {
				return fmt.Errorf("delete the tokens of disabled user %q: %w", name, err)
			}
		}
	}
	return nil
}

// Replace stores c as the whole configuration if c.Revision is the current
// revision, and fails with ErrConflict otherwise: the optimistic-concurrency
// form of Update for a client that read the configuration, edited it and
// writes it back.
func (s *Store) Replace(ctx context.Context, c *Config) (*Config, error) {
	return s.Update(ctx, func(cur *Config) error {
		if cur.Revision != c.Revision {
			return fmt.Errorf("%w: configuration is at revision %d, not %d", ErrConflict, cur.Revision, c.Revision)
		}
		cur.Model = c.Model
		cur.Networks = c.Networks
		cur.Settings = c.Settings
		return nil
	})
}

// configRows are the stored rows of each kind, as loadConfig read them,
// and the stored settings ("": none).
type configRows struct {
	roles, users, devices, groups, relations []docRow
	settings                                 string
}

// loadConfig reads the configuration in tx.
func loadConfig(ctx context.Context, tx *sql.Tx) (*Config, *configRows, error) {
	c := &Config{Networks: map[string][]Network{}}
	rows := &configRows{}
	var err error
	if c.Revision, err = readRevision(ctx, tx); err != nil {
		return nil, nil, err
	}
	for _, k := range []struct {
		t   docTable
		dst *[]docRow
	}{
		{rolesTable, &rows.roles}, {usersTable, &rows.users}, {devicesTable, &rows.devices},
		{groupsTable, &rows.groups}, {relationsTable, &rows.relations},
	} {
		if *k.dst, err = readDocs(ctx, tx, k.t); err != nil {
			return nil, nil, err
		}
	}
	m := &c.Model
	if m.Roles, err = decodeDocs[policy.Role](rolesTable, rows.roles); err != nil {
		return nil, nil, err
	}
	if m.Users, err = decodeDocs[policy.User](usersTable, rows.users); err != nil {
		return nil, nil, err
	}
	devs, err := decodeDocs[deviceDoc](devicesTable, rows.devices)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range devs {
		m.Devices = append(m.Devices, d.Device)
		if len(d.Networks) > 0 {
			c.Networks[d.Name] = d.Networks
		}
	}
	if m.Groups, err = decodeDocs[policy.Group](groupsTable, rows.groups); err != nil {
		return nil, nil, err
	}
	if m.Relations, err = decodeDocs[policy.Relation](relationsTable, rows.relations); err != nil {
		return nil, nil, err
	}
	err = tx.QueryRowContext(ctx, sqlGetMeta, metaSettings).Scan(&rows.settings)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, nil, fmt.Errorf("read settings: %w", err)
	default:
		if err := json.Unmarshal([]byte(rows.settings), &c.Settings); err != nil {
			return nil, nil, fmt.Errorf("bad stored settings: %w", err)
		}
	}
	return c, rows, nil
}

func readDocs(ctx context.Context, tx *sql.Tx, t docTable) ([]docRow, error) {
	rs, err := tx.QueryContext(ctx, t.selectAll)
	if err != nil {
		return nil, fmt.Errorf("read %ss: %w", t.kind, err)
	}
	defer rs.Close()
	var out []docRow
	for rs.Next() {
		var r docRow
		if err := rs.Scan(&r.name, &r.seq, &r.doc); err != nil {
			return nil, fmt.Errorf("read %ss: %w", t.kind, err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read %ss: %w", t.kind, err)
	}
	return out, nil
}

func decodeDocs[T any](t docTable, rows []docRow) ([]T, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]T, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal([]byte(r.doc), &out[i]); err != nil {
			return nil, fmt.Errorf("bad stored %s %q: %w", t.kind, r.name, err)
		}
	}
	return out, nil
}

// encodeDocs marshals the entries of one kind, rejecting duplicate names.
func encodeDocs[T any](t docTable, items []T, name func(T) string, doc func(T) any) ([]entry, error) {
	out := make([]entry, 0, len(items))
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		n := name(it)
		if seen[n] {
			return nil, fmt.Errorf("duplicate %s name %q", t.kind, n)
		}
		seen[n] = true
		b, err := json.Marshal(doc(it))
		if err != nil {
			return nil, fmt.Errorf("encode %s %q: %w", t.kind, n, err)
		}
		out = append(out, entry{name: n, doc: string(b)})
	}
	return out, nil
}

func self[T any](v T) any { return v }

// storeConfig writes the entries of c that differ from rows.
func (s *Store) storeConfig(ctx context.Context, tx *sql.Tx, c *Config, rows *configRows) error {
	m := &c.Model
	devices := make(map[string]bool, len(m.Devices))
	for _, d := range m.Devices {
		devices[d.Name] = true
	}
	for name, nets := range c.Networks {
		if !devices[name] && len(nets) > 0 {
			return fmt.Errorf("networks for %q, which is not a device of the model", name)
		}
		for _, n := range nets {
			if !n.LAN.IsValid() {
				return fmt.Errorf("device %q: network with an invalid LAN prefix", name)
			}
		}
	}
	roles, err := encodeDocs(rolesTable, m.Roles, func(r policy.Role) string { return r.Name }, self)
	if err != nil {
		return err
	}
	users, err := encodeDocs(usersTable, m.Users, func(u policy.User) string { return u.Name }, self)
	if err != nil {
		return err
	}
	devs, err := encodeDocs(devicesTable, m.Devices, func(d policy.Device) string { return d.Name },
		func(d policy.Device) any { return deviceDoc{Device: d, Networks: c.Networks[d.Name]} })
	if err != nil {
		return err
	}
	groups, err := encodeDocs(groupsTable, m.Groups, func(g policy.Group) string { return g.Name }, self)
	if err != nil {
		return err
	}
	rels, err := encodeDocs(relationsTable, m.Relations, func(r policy.Relation) string { return r.Name }, self)
	if err != nil {
		return err
	}
	for _, k := range []struct {
		t    docTable
		old  []docRow
		next []entry
	}{
		{rolesTable, rows.roles, roles},
		{usersTable, rows.users, users},
		{devicesTable, rows.devices, devs},
		{groupsTable, rows.groups, groups},
		{relationsTable, rows.relations, rels},
	} {
		if err := s.writeDocs(ctx, tx, k.t, k.old, k.next); err != nil {
			return err
		}
	}
	return writeSettings(ctx, tx, c.Settings, rows.settings)
}

// writeSettings stores settings if they differ from the stored ones, old
// ("": none); zero settings remove the row.
func writeSettings(ctx context.Context, tx *sql.Tx, settings Settings, old string) error {
	doc := ""
	if !settings.IsZero() {
		b, err := json.Marshal(settings)
		if err != nil {
			return fmt.Errorf("encode settings: %w", err)
		}
		doc = string(b)
	}
	var err error
	switch {
	case doc == old:
		return nil
	case doc == "":
		_, err = tx.ExecContext(ctx, sqlDeleteMeta, metaSettings)
	default:
		_, err = tx.ExecContext(ctx, sqlUpsertMeta, metaSettings, doc)
	}
	if err != nil {
		return fmt.Errorf("write settings: %w", err)
	}
	return nil
}

// writeDocs brings one table from old to next: inserts new names (after the
// existing ones), updates changed documents and deletes missing names.
func (s *Store) writeDocs(ctx context.Context, tx *sql.Tx, t docTable, old []docRow, next []entry) error {
	byName := make(map[string]docRow, len(old))
	var seq int64
	for _, r := range old {
		byName[r.name] = r
		seq = max(seq, r.seq)
	}
	kept := make(map[string]bool, len(next))
	for _, e := range next {
		kept[e.name] = true
		r, ok := byName[e.name]
		switch {
		case !ok:
			seq++
			if _, err := tx.ExecContext(ctx, t.insert, e.name, seq, e.doc); err != nil {
				return fmt.Errorf("insert %s %q: %w", t.kind, e.name, err)
			}
		case r.doc != e.doc:
			if _, err := tx.ExecContext(ctx, t.update, e.doc, e.name); err != nil {
				return fmt.Errorf("update %s %q: %w", t.kind, e.name, err)
			}
		default:
			continue
		}
		s.docWrites.Add(1)
	}
	for _, r := range old {
		if kept[r.name] {
			continue
		}
		if _, err := tx.ExecContext(ctx, t.delete, r.name); err != nil {
			return fmt.Errorf("delete %s %q: %w", t.kind, r.name, err)
		}
		s.docWrites.Add(1)
	}
	return nil
}

// errNoRows maps sql.ErrNoRows to ErrNotFound with a description.
func errNoRows(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return err
}
