package model

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// The errors of the domain steps. A step's error wraps one of them (or a
// store, CA or license error) with the details, so that a front end (the
// management API, a vendor's own) tells them apart with errors.Is and says
// the rest as it is.
var (
	// ErrConfig: the Manager's Config lacks what it needs.
	ErrConfig = errors.New("model: invalid configuration")
	// ErrNotFound: the entry the step names does not exist.
	ErrNotFound = errors.New("model: not found")
	// ErrConflict: the step collides with the state: an entry of that name
	// exists, the bootstrap is done, the last administrator would go.
	ErrConflict = errors.New("model: conflict")
	// ErrInvalid: what the step was given is not valid (a name, a
	// network, a password too short, a model that does not compile).
	ErrInvalid = errors.New("model: invalid")
	// ErrForbidden: the actor would grant, or act on an account that
	// holds, a right it does not hold itself (see Manager.Change).
	ErrForbidden = errors.New("model: not within the actor's rights")
	// ErrLastHolder: the change would leave the installation without an
	// enabled administrator, or without a user who may manage users. It
	// is an ErrConflict.
	ErrLastHolder = fmt.Errorf("%w: the change would leave the installation without an administrator", ErrConflict)
)

// errNotLoaded: a step that judges on the model in force was taken before
// Load.
var errNotLoaded = fmt.Errorf("%w: the configuration is not loaded (Manager.Load)", ErrConfig)

// Config configures a Manager.
type Config struct {
	// Store holds the configuration, accounts, certificates, licenses and
	// events. Required.
	Store *store.Store
	// Broker is the running broker: configuration changes are applied to
	// it, and its sessions are listed and terminated. Required.
	Broker *broker.Broker
	// CA issues, renews and revokes certificates; nil: the certificate
	// steps fail with ErrConfig.
	CA *pki.CA
	// Compile turns a stored configuration into what the broker runs; nil
	// uses Compile.
	Compile func(*store.Config) (*policy.Snapshot, map[string]broker.DeviceNetworks, error)
	// HashPassword hashes a new password for the store (a PHC string that
	// CheckPassword reads); nil uses HashPassword at the default cost.
	// A product bounds there how many hashes run at once.
	HashPassword func(ctx context.Context, password string) (string, error)
	// Licenses are the installation's participant licenses: creating
	// participants beyond their capacity is refused (ErrCapacity) and the
	// broker admits only as many as they allow. Nil: no limit.
	Licenses *license.State
	// InstallationKey signs the release statements of released licenses;
	// nil: licenses cannot be released.
	InstallationKey ed25519.PrivateKey
	// InstallationSecrets names the store's secrets that identify this
	// installation (what licenses are bound to); a restore keeps their
	// values unless asked to bring the backup's. Nil means
	// SecretInstallationID and SecretInstallationKey.
	InstallationSecrets []string
	// EventRetention is how long the event log keeps an event (see
	// Maintain). Zero means DefaultEventRetention; negative is refused.
	EventRetention time.Duration
	// Applied, if set, is told every configuration the broker runs from
	// then on: at Load, after each committed change, and when a refused
	// change is undone. It is called with the Manager's lock held, in the
	// order of the changes, and must not block. A product follows there
	// what the Broker does not carry (the IPsec server's proposals). It
	// must not modify the configuration.
	Applied func(*store.Config)
	// Logger; nil discards.
	Logger *slog.Logger
	// Now; nil is time.Now.
	Now func() time.Time
}

// Manager carries out the domain steps on the broker's stored
// configuration: each step is checked, stored in one transaction, applied
// to the running broker and recorded in the event log with its actor. Its
// methods are safe for concurrent use.
//
// An actor is the name of the user on whose behalf a step is taken. The
// Manager does not check that the actor may take the step at all (that is
// the front end's rights check, e.g. the API's route table); it checks
// what no right allows: granting more rights than the actor holds, and
// acting on a user that holds rights the actor does not (see Change). An
// actor that is no enabled user of the model ("" for the product itself)
// holds no rights: it may change devices, groups and relations, not users
// or roles that carry rights.
type Manager struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	// mu serialises configuration changes, so that the broker applies
	// them in the order the store committed them.
	mu sync.Mutex
	// snap is the access model in force.
	snap *policy.Snapshot

	// licMu serialises license changes and the periodic check; licChecked
	// is when CheckLicenses last ran.
	licMu      sync.Mutex
	licChecked time.Time
}

// New returns a Manager for cfg. It reads nothing: Load applies the
// stored configuration to the broker.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Broker == nil {
		return nil, fmt.Errorf("%w: Store and Broker are required", ErrConfig)
	}
	if cfg.Compile == nil {
		cfg.Compile = Compile
	}
	if cfg.InstallationSecrets == nil {
		cfg.InstallationSecrets = []string{SecretInstallationID, SecretInstallationKey}
	}
	switch {
	case cfg.EventRetention == 0:
		cfg.EventRetention = DefaultEventRetention
	case cfg.EventRetention < 0:
		return nil, fmt.Errorf("%w: negative EventRetention %v", ErrConfig, cfg.EventRetention)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.cfg.HashPassword == nil {
		m.cfg.HashPassword = func(_ context.Context, password string) (string, error) {
			return HashPassword(password, PasswordCost{})
		}
	}
	m.licChecked = m.now()
	return m, nil
}

// Load reads the stored configuration and applies it to the broker, with
// the stored licenses; a product calls it once at start (and a restore
// does it again).
func (m *Manager) Load(ctx context.Context) error {
	cfg, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return err
	}
	snap, devices, err := m.cfg.Compile(cfg)
	if err != nil {
		return fmt.Errorf("model: stored configuration: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.cfg.Broker.Apply(snap, devices); err != nil {
		return err
	}
	m.snap = snap
	m.applied(cfg)
	return m.loadLicenses(ctx)
}

// Snapshot returns the access model in force: the last configuration
// loaded or changed. Nil before Load.
func (m *Manager) Snapshot() *policy.Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap
}

// Can reports whether name is an enabled user (not a device) of the model
// in force holding the rights r (none: just enabled): what a front end
// asks before it lets an account take a step.
func (m *Manager) Can(name string, r policy.Rights) bool {
	snap := m.Snapshot()
	if snap == nil {
		return false
	}
	p, ok := snap.Lookup(name)
	return ok && snap.Enabled(p) && !snap.IsDevice(p) && (r == 0 || snap.Can(name, r))
}

// Store is the store the Manager works on, for reading.
func (m *Manager) Store() *store.Store { return m.cfg.Store }

// Broker is the running broker the Manager applies changes to.
func (m *Manager) Broker() *broker.Broker { return m.cfg.Broker }

// CA is the certificate authority the Manager issues with; nil if none.
func (m *Manager) CA() *pki.CA { return m.cfg.CA }

// Licenses is the license state; nil if the product does not limit
// participants.
func (m *Manager) Licenses() *license.State { return m.cfg.Licenses }

// Now is the Manager's clock.
func (m *Manager) Now() time.Time { return m.now() }

// actor is who takes a step: a user of the model, or (all) the bootstrap
// administrator, whose one step names an administrator and who holds
// every right for it.
type actor struct {
	name string
	all  bool
}

// Change applies fn to the stored configuration in one transaction (fn
// may also write accounts and secrets through tx), and stores the result
// only if it passes every check:
//
//   - it adds no participants beyond the licensed capacity (ErrCapacity;
//     see CheckNewParticipants, which also keeps creation times);
//   - it compiles (ErrInvalid);
//   - it is within the actor's rights (ErrForbidden): a role it touches,
//     and a user it touches or whose rights it alters, carries, before
//     and after, only rights the actor holds (see grants.go);
//   - it keeps an enabled administrator and an enabled user who may
//     manage users, where there was one (ErrLastHolder);
//   - the broker accepts its networks (ErrInvalid).
//
// Only then does the broker run with it, and what is recorded in the
// event log as a config_change by actor. An error of fn is returned as it
// is, and nothing is stored.
func (m *Manager) Change(ctx context.Context, actorName, what string, fn func(*store.Config, *store.Tx) error) error {
	return m.change(ctx, actor{name: actorName}, what, "", fn)
}

// change is Change for a, admitting the new participant called admitted
// even beyond the licensed capacity (see CheckNewParticipantsAdmitting);
// "" admits none.
func (m *Manager) change(ctx context.Context, a actor, what, admitted string, fn func(*store.Config, *store.Tx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var snap *policy.Snapshot // the model in force once the change is stored
	applied := false
	stored, err := m.cfg.Store.UpdateWith(ctx, func(cfg *store.Config, tx *store.Tx) error {
		// The model before the change, read in the change's transaction:
		// the rights are judged on what is stored, not on what this
		// process last loaded.
		before, _, err := m.cfg.Compile(cfg)
		if err != nil {
			return fmt.Errorf("model: the stored configuration: %w", err)
		}
		beforeModel := before.Model()
		participants := Participants(cfg)
		if err := fn(cfg, tx); err != nil {
			return err
		}
		if err := CheckNewParticipantsAdmitting(participants, cfg, m.cfg.Licenses, m.now(), admitted); err != nil {
			return err
		}
		after, devices, err := m.cfg.Compile(cfg)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if err := checkGrants(a, before, after, beforeModel, &cfg.Model); err != nil {
			return err
		}
		if err := checkLastHolders(before, after, beforeModel, &cfg.Model); err != nil {
			return err
		}
		// Applied inside the transaction: a route conflict refuses the
		// change before it is stored.
		applied = true
		if err := m.cfg.Broker.Apply(after, devices); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		snap = after
		return nil
	})
	if err != nil {
		if applied {
			// Stored nothing: put the broker back as it was.
			if rerr := m.reapplyStored(context.WithoutCancel(ctx)); rerr != nil {
				m.log.Error("the broker runs a configuration that was not stored", "error", rerr)
				return fmt.Errorf("%w; and putting the broker back failed: %w", err, rerr)
			}
		}
		return err
	}
	m.snap = snap
	m.applied(stored)
	m.Record(ctx, "config_change", "", a.name, what, nil)
	return nil
}

// applied tells Config.Applied about the configuration in force.
func (m *Manager) applied(cfg *store.Config) {
	if m.cfg.Applied != nil && cfg != nil {
		m.cfg.Applied(cfg)
	}
}

// reapplyStored applies the stored configuration to the broker again.
func (m *Manager) reapplyStored(ctx context.Context) error {
	cfg, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return err
	}
	snap, devices, err := m.cfg.Compile(cfg)
	if err != nil {
		return err
	}
	if err := m.cfg.Broker.Apply(snap, devices); err != nil {
		return err
	}
	m.applied(cfg)
	return nil
}

// Record appends an event to the event log at the Manager's clock. A
// failure is logged, not returned: the step it records has happened.
func (m *Manager) Record(ctx context.Context, kind, participant, actor, msg string, attrs map[string]string) {
	_, err := m.cfg.Store.Append(ctx, store.Event{Time: m.now(), Kind: kind, Participant: participant, Actor: actor, Message: msg, Attrs: attrs})
	if err != nil {
		m.log.Error("event log", "error", err, "kind", kind, "message", msg)
	}
}
