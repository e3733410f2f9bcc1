package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
)

// Defaults of Config.
const (
	// DefaultDataDir is where the state lives when Config.DataDir is empty.
	DefaultDataDir = "remotegate-data"
	// DefaultAPIAddr is the management API's address when Config.APIAddr
	// is empty: this host only.
	DefaultAPIAddr = "127.0.0.1:8443"
	// DefaultMetricsAddr is the Prometheus endpoint's address when
	// Config.MetricsAddr is empty: this host only.
	DefaultMetricsAddr = "127.0.0.1:9155"
	// DefaultEventRetention is how long the event log keeps an event
	// when Config.EventRetention is zero.
	DefaultEventRetention = api.DefaultEventRetention
	// DefaultLicenseGrace is how long an expired license keeps counting
	// when Config.LicenseGrace is zero.
	DefaultLicenseGrace = 14 * 24 * time.Hour
	// Off, as an address of Config, turns that listener off. (The empty
	// string means the default address, so that the zero Config is a
	// working broker.)
	Off = "-"
	// BootstrapAccount is the account whose one-time password Ready
	// carries: it can do one thing, name the real administrator.
	BootstrapAccount = api.BootstrapAccount
)

// ErrConfig reports a Config that Open refuses.
var ErrConfig = errors.New("app: invalid configuration")

// Config configures a broker. The zero value is the broker of
// examples/broker without flags: state in ./remotegate-data, the built-in
// demo setup, the management API on 127.0.0.1:8443, metrics on
// 127.0.0.1:9155, the base license of 4 participants.
type Config struct {
	// DataDir holds the database broker.db and, by default, the key its
	// secrets are sealed with (broker.key). It is created with mode 0700,
	// and made private (group and others removed) if it exists; one that
	// belongs to another user is refused. Empty: DefaultDataDir, relative
	// to the working directory.
	DataDir string
	// SecretKeyFile is the file with the key that seals the database's
	// secrets (created, mode 0600, at the first start). Empty: the file
	// that the environment variable REMOTEGATE_SECRET_KEY_FILE names, or
	// broker.key in DataDir.
	SecretKeyFile string
	// ConfigFile is a broker.yaml (see the README) applied at Open when its
	// content differs from the one applied last: the entries it names
	// replace those of the same name, what was added through the API
	// stays. Empty: the built-in demo setup, applied to an empty store
	// only. Either way the result is stored, settings included, so later
	// starts and the profile commands need no file.
	ConfigFile string
	// APIAddr is the HTTPS listener of the management API (under /api/).
	// Empty: DefaultAPIAddr; Off: no API. Another address exposes the API
	// there, and its certificate names it.
	APIAddr string
	// APINames are DNS names and IP addresses clients reach the API under,
	// for its certificate, besides localhost, the loopback addresses and
	// the host of APIAddr; needed when APIAddr is every address
	// (0.0.0.0:8443).
	APINames []string
	// MetricsAddr is the plain-HTTP listener of Prometheus /metrics.
	// Empty: DefaultMetricsAddr; Off: no metrics.
	MetricsAddr string
	// VendorKeyFiles are files with vendor public keys (licensetool keygen
	// writes them) that licenses must be signed with; VendorKeys are such
	// keys already parsed. Together they are the accepted keys (several
	// allow a key rotation); none: only the base license of 4 participants
	// counts.
	VendorKeyFiles []string
	VendorKeys     []ed25519.PublicKey
	// LicenseGrace is how long an expired license keeps counting. Zero:
	// DefaultLicenseGrace; negative: none.
	LicenseGrace time.Duration
	// EventRetention is how long the event log keeps an event. Zero:
	// DefaultEventRetention; negative is refused.
	EventRetention time.Duration
	// OnReady, if set, is called once by Run when every listener is up,
	// with what a person needs next (addresses, the one-time password);
	// Run serves on while it runs and waits for it.
	OnReady func(Ready)
	// Logger receives the broker's log; nil discards it.
	Logger *slog.Logger
	// Now is the clock of every decision that depends on time (license
	// expiry, creation times, events); nil is time.Now.
	Now func() time.Time
}

// Broker is an opened broker: its data directory, database, licenses,
// configuration and keys. Run serves it; WriteProfile and Status are what
// the commands of examples/broker do with it. Close releases it.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	st      *store.Store
	keyPath string
	keys    *keys
	lic     *licensing
	// proposals follows the IPsec proposals of the configuration in force
	// (model.Config.Applied), for the IPsec server.
	proposals proposalState
}

// Open opens the broker in cfg.DataDir: creates or opens the database,
// loads the installation's licenses, applies the configuration (the file or
// the built-in setup) and loads or creates the CA and the servers' keys.
// It listens on nothing; Run does.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = DefaultAPIAddr
	}
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = DefaultMetricsAddr
	}
	switch {
	case cfg.LicenseGrace == 0:
		cfg.LicenseGrace = DefaultLicenseGrace
	case cfg.LicenseGrace < 0:
		cfg.LicenseGrace = 0
	}
	if cfg.EventRetention < 0 {
		return nil, fmt.Errorf("%w: negative EventRetention %v", ErrConfig, cfg.EventRetention)
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.proposals.log = b.log
	file, err := loadConfig(cfg.ConfigFile)
	if err != nil {
		return nil, err
	}
	vendorKeys, err := readVendorKeys(cfg.VendorKeyFiles)
	if err != nil {
		return nil, err
	}
	if err := secureDataDir(cfg.DataDir, b.log); err != nil {
		return nil, err
	}
	if b.st, b.keyPath, err = openStore(cfg.DataDir, cfg.SecretKeyFile); err != nil {
		return nil, err
	}
	if err := b.open(ctx, file, append(vendorKeys, cfg.VendorKeys...)); err != nil {
		b.st.Close()
		return nil, err
	}
	return b, nil
}

func (b *Broker) open(ctx context.Context, file *fileConfig, vendorKeys []ed25519.PublicKey) error {
	var err error
	if b.lic, err = openLicensing(ctx, b.st, vendorKeys, b.cfg.LicenseGrace); err != nil {
		return err
	}
	if err := b.lic.restore(ctx, b.st, b.log); err != nil {
		return err
	}
	if err := b.applyConfig(ctx, file); err != nil {
		return err
	}
	b.keys, err = openKeys(ctx, b.st, b.now)
	return err
}

// Close closes the database. Run must have returned.
func (b *Broker) Close() error {
	return b.st.Close()
}

// applyConfig writes the file's setup into the store (entries the file
// names are replaced, others made through the API stay): the built-in demo
// setup into an empty store only, a file whenever its content differs from
// the one applied last, so that a restart with the same file keeps the
// changes made through the API since. The file's licenses are applied
// first; participants beyond the capacity they give are refused, as through
// the API.
func (b *Broker) applyConfig(ctx context.Context, cfg *fileConfig) error {
	st := b.st
	current, err := st.Config(ctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cfg.raw)
	if cfg.path == "" && current.Revision > 0 {
		return nil
	}
	if last, err := st.Secret(ctx, secretConfigSum); err == nil && bytes.Equal(last, sum[:]) {
		if current.Settings.IsZero() {
			// Applied by a version that kept the settings in the file
			// only: they are stored now, so that the commands render the
			// profiles the file asks for without it.
			_, err := st.Update(ctx, func(sc *store.Config) error {
				sc.Settings = cfg.settings()
				return nil
			})
			return err
		}
		return nil
	}
	if err := applyLicenses(ctx, st, b.lic, cfg, b.now, b.log); err != nil {
		return err
	}
	_, err = st.Update(ctx, func(sc *store.Config) error {
		before := model.Participants(sc)
		if err := cfg.apply(sc); err != nil {
			return err
		}
		if err := model.CheckNewParticipants(before, sc, b.lic.state, b.now()); err != nil {
			return err
		}
		return check(sc)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", nameOr(cfg.path, "built-in config"), err)
	}
	if err := st.PutSecret(ctx, secretConfigSum, sum[:]); err != nil {
		return err
	}
	for _, u := range cfg.Users {
		if u.PasswordHash == "" {
			continue
		}
		a, err := st.Account(ctx, u.Name)
		if errors.Is(err, store.ErrNotFound) {
			a, err = &store.Account{Name: u.Name, Created: b.now()}, nil
		}
		if err != nil {
			return err
		}
		if a.PasswordHash != u.PasswordHash {
			a.PasswordHash, a.Updated = u.PasswordHash, b.now()
			if err := st.PutAccount(ctx, *a); err != nil {
				return err
			}
		}
	}
	return nil
}

// readVendorKeys reads the vendor public keys in files.
func readVendorKeys(files []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("vendor key: %w", err)
		}
		pub, err := license.ParseVendorPublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("vendor key %s: %w", f, err)
		}
		keys = append(keys, pub)
	}
	return keys, nil
}

// firstParticipant names a participant for the examples Run's Ready
// gives: the first user, else the first device, else "NAME".
func (b *Broker) firstParticipant(ctx context.Context) string {
	cfg, err := b.st.Config(ctx)
	if err == nil {
		for _, u := range cfg.Model.Users {
			return u.Name
		}
		for _, d := range cfg.Model.Devices {
			return d.Name
		}
	}
	return "NAME"
}

func nameOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
