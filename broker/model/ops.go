package model

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// DefaultEventRetention is the event retention when Config.EventRetention
// is zero: a year of audit trail and a margin.
const DefaultEventRetention = 400 * 24 * time.Hour

// ParticipantState is a participant of the model with what the broker
// knows of it.
type ParticipantState struct {
	Name string
	// Kind is "user" or "device".
	Kind   string
	Status broker.Status
	// Address is the participant's tunnel address; invalid if it has none.
	Address netip.Addr
}

// ParticipantStates lists the users, then the devices, of the stored
// model with their status and tunnel addresses.
func (m *Manager) ParticipantStates(ctx context.Context) ([]ParticipantState, error) {
	cfg, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return nil, err
	}
	addrs := m.cfg.Broker.Addresses()
	out := make([]ParticipantState, 0, len(cfg.Model.Users)+len(cfg.Model.Devices))
	add := func(name, kind string) {
		out = append(out, ParticipantState{Name: name, Kind: kind, Status: m.cfg.Broker.Status(name), Address: addrs[name]})
	}
	for _, u := range cfg.Model.Users {
		add(u.Name, "user")
	}
	for _, d := range cfg.Model.Devices {
		add(d.Name, "device")
	}
	return out, nil
}

// Terminate ends the live tunnel of the participant (ErrNotFound if it is
// not online); it may connect again, as the model allows.
func (m *Manager) Terminate(ctx context.Context, actor, participant string) error {
	if !m.cfg.Broker.Terminate(participant, fmt.Errorf("terminated by %s", actor)) {
		return fmt.Errorf("%w: %q is not online", ErrNotFound, participant)
	}
	m.Record(ctx, "disconnect", participant, actor, "session terminated by an administrator", nil)
	return nil
}

// Events returns the events of the log that f selects.
func (m *Manager) Events(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	return m.cfg.Store.Events(ctx, f)
}

// Maintain removes what the store no longer needs, so that it does not grow
// without bound: the API session tokens that have expired, and the events
// older than Config.EventRetention, both judged on Config.Now's clock. The
// product calls it periodically, e.g. once a minute with CheckLicenses. It
// tries both, and returns their errors.
func (m *Manager) Maintain(ctx context.Context) error {
	now := m.now()
	tokens, terr := m.cfg.Store.PruneTokens(ctx, now)
	cutoff := now.Add(-m.cfg.EventRetention)
	events, eerr := m.cfg.Store.PruneEvents(ctx, cutoff)
	if tokens > 0 || events > 0 {
		m.log.Info("pruned the store", "expired_tokens", tokens, "events", events, "events_before", cutoff)
	}
	if err := errors.Join(terr, eerr); err != nil {
		return fmt.Errorf("model: maintain: %w", err)
	}
	return nil
}

// bootstrapSecret marks in the store whether the bootstrap account was
// created ("pending") and replaced ("done").
const bootstrapSecret = "api/bootstrap"

// Bootstrap prepares the first login of a fresh installation: when no
// administrator was ever named, it creates the account BootstrapAccount
// with a random one-time password and returns that password, to be shown
// once. The bootstrap administrator can do one thing: name a real
// administrator (FinishBootstrap), after which its account is gone. On
// every later call Bootstrap returns "" and the state: "pending" while the
// bootstrap account waits, "done" after.
func (m *Manager) Bootstrap(ctx context.Context) (password, state string, err error) {
	v, err := m.cfg.Store.Secret(ctx, bootstrapSecret)
	switch {
	case err == nil:
		return "", string(v), nil
	case !errors.Is(err, store.ErrNotFound):
		return "", "", err
	}
	raw := make([]byte, 15)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("model: bootstrap password: %w", err)
	}
	password = base64.RawURLEncoding.EncodeToString(raw)
	// The account before the mark: a crash in between leaves no mark, and
	// the next call makes a new password.
	if err := m.setAccountPassword(ctx, BootstrapAccount, password, true); err != nil {
		return "", "", err
	}
	if err := m.cfg.Store.PutSecret(ctx, bootstrapSecret, []byte("pending")); err != nil {
		return "", "", err
	}
	return password, "pending", nil
}

// ErrBootstrapDone: the installation already has its administrator. It is
// an ErrConflict.
var ErrBootstrapDone = fmt.Errorf("%w: the bootstrap is done", ErrConflict)

// FinishBootstrap names the first administrator, name with password, on
// behalf of the bootstrap account (actor). The check that the bootstrap
// is pending, the new administrator, its password, the mark "done" and
// the end of the bootstrap account are one transaction: of concurrent
// calls exactly one succeeds, and a failure half way leaves the bootstrap
// pending as it was. The administrator is admitted even beyond the
// licensed capacity: without it an installation whose participants fill
// its licenses could never be administered; the event log then says so.
func (m *Manager) FinishBootstrap(ctx context.Context, actorName, name, password string) error {
	if name == "" || name == BootstrapAccount {
		return fmt.Errorf("%w: name an administrator other than %q", ErrInvalid, BootstrapAccount)
	}
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	// Hashed before the transaction: it takes a while, and holds nothing.
	hash, err := m.cfg.HashPassword(ctx, password)
	if err != nil {
		return err
	}
	var participants int
	err = m.change(ctx, actor{name: actorName, all: true}, "bootstrap: named administrator "+name, name, func(cfg *store.Config, tx *store.Tx) error {
		state, err := tx.Secret(bootstrapSecret)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if string(state) != "pending" {
			return fmt.Errorf("%w: an administrator was named", ErrBootstrapDone)
		}
		switch _, err := tx.Account(BootstrapAccount); {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("%w: the bootstrap account is gone", ErrBootstrapDone)
		case err != nil:
			return err
		}
		if users.find(cfg, name) >= 0 {
			return fmt.Errorf("%w: user %q exists", ErrConflict, name)
		}
		cfg.Model.Users = append(cfg.Model.Users, policy.User{Name: name, Roles: []string{policy.RoleAdmin}})
		now := m.now()
		if err := tx.PutAccount(store.Account{Name: name, PasswordHash: hash, Created: now, Updated: now}); err != nil {
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
		return err
	}
	if lic := m.cfg.Licenses; lic != nil {
		if capacity := lic.Capacity(m.now()); participants > capacity.Participants {
			m.Record(ctx, "license", name, actorName, fmt.Sprintf("the named administrator %q is admitted beyond the licensed capacity of %s: %d participants; "+
				"no participant can be created until there is room, and %q holds no VPN tunnel meanwhile", name, capacity, participants, name),
				map[string]string{"participants": strconv.Itoa(participants), "capacity": strconv.Itoa(capacity.Participants)})
		}
	}
	return nil
}
