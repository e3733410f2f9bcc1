package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
)

// The product name licenses must carry, and the secrets that make up this
// installation's identity: a random ID (licenses may be bound to it) and
// an Ed25519 key that signs release statements. A restore through the API
// keeps them unless asked to bring the backup's (api.Config's
// InstallationSecrets defaults to these names).
const (
	licenseProduct        = "remotegate"
	secretInstallationID  = api.SecretInstallationID
	secretInstallationKey = api.SecretInstallationKey
)

// licensing is the installation's license state.
type licensing struct {
	state *license.State
	key   ed25519.PrivateKey
	// vendorKeys is false when no vendor key was given: then only the
	// base license counts, and adding one says why it fails.
	vendorKeys bool
}

// openLicensing loads (on the first start: creates) the installation's
// identity. vendorKeys are the vendor public keys that licenses must be
// signed with; several allow a key rotation.
func openLicensing(ctx context.Context, st *store.Store, keys []ed25519.PublicKey, grace time.Duration) (*licensing, error) {
	id, err := st.Secret(ctx, secretInstallationID)
	if errors.Is(err, store.ErrNotFound) {
		s, gerr := license.NewInstallationID(nil)
		if gerr != nil {
			return nil, gerr
		}
		id, err = []byte(s), st.PutSecret(ctx, secretInstallationID, []byte(s))
	}
	if err != nil {
		return nil, err
	}
	seed, err := st.Secret(ctx, secretInstallationKey)
	if errors.Is(err, store.ErrNotFound) {
		_, priv, gerr := ed25519.GenerateKey(nil)
		if gerr != nil {
			return nil, gerr
		}
		seed, err = priv.Seed(), st.PutSecret(ctx, secretInstallationKey, priv.Seed())
	}
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("secret %s: %d bytes, want an Ed25519 seed of %d", secretInstallationKey, len(seed), ed25519.SeedSize)
	}
	return &licensing{
		state:      license.NewState(&license.Verifier{Product: licenseProduct, Keys: keys}, string(id), grace),
		key:        ed25519.NewKeyFromSeed(seed),
		vendorKeys: len(keys) > 0,
	}, nil
}

// restore loads the stored licenses into the state, as api.New does; the
// YAML's licenses are applied on top of them.
func (l *licensing) restore(ctx context.Context, st *store.Store, log *slog.Logger) error {
	stored, err := st.Licenses(ctx)
	if err != nil {
		return err
	}
	for _, s := range stored {
		entries := append(l.state.Entries(), license.Entry{File: s.File, Activated: s.Added, Released: s.Released})
		if err := l.state.Restore(entries); err != nil {
			log.Error("stored license does not count", "license", s.Number, "error", err)
		}
	}
	return nil
}

// applyLicenses activates the licenses broker.yaml lists and releases the
// ones marked for release, writing their release statements: files in,
// files out, so that an air-gapped plant can exchange them with the
// vendor on a USB stick. A listed license that is already active (or was
// released) is left as it is.
func applyLicenses(ctx context.Context, st *store.Store, l *licensing, cfg *fileConfig, clock func() time.Time, log *slog.Logger) error {
	base := "."
	if cfg.path != "" {
		base = filepath.Dir(cfg.path)
	}
	rel := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	for _, lc := range cfg.Licenses {
		file, err := os.ReadFile(rel(lc.File))
		if err != nil {
			return fmt.Errorf("licenses: %w", err)
		}
		if !l.vendorKeys {
			return fmt.Errorf("licenses: %s: no vendor key to verify it with (give the broker the vendor's public key: Config.VendorKeyFiles, -vendor-key)", lc.File)
		}
		now := clock()
		lic, err := l.state.Activate(file, now)
		switch {
		case errors.Is(err, license.ErrDuplicate), errors.Is(err, license.ErrReleased):
			// Active or released before: only its number is needed.
			if lic, _, _, err = license.Parse(file); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("licenses: %s: %w", lc.File, err)
		default:
			if err := st.PutLicense(ctx, store.License{Number: lic.Number, File: file, Added: now}); err != nil {
				return err
			}
			log.Info("license activated", "license", lic.Number, "participants", lic.Participants, "capacity", l.state.Capacity(now).String())
			recordLicenseEvent(ctx, st, log, now, fmt.Sprintf("activated license %s (+%d) from %s; capacity %s", lic.Number, lic.Participants, lc.File, l.state.Capacity(now)), lic.Number, license.EventActivated)
		}
		if lc.ReleaseTo == "" {
			continue
		}
		stmt, err := l.state.Release(lic.Number, l.key, now)
		if errors.Is(err, license.ErrReleased) {
			continue
		}
		if err != nil {
			return fmt.Errorf("licenses: release %s: %w", lic.Number, err)
		}
		if err := os.WriteFile(rel(lc.ReleaseTo), stmt, 0o600); err != nil {
			return fmt.Errorf("licenses: release %s: %w", lic.Number, err)
		}
		if err := st.ReleaseLicense(ctx, lic.Number, now); err != nil {
			return err
		}
		log.Info("license released", "license", lic.Number, "statement", rel(lc.ReleaseTo))
		recordLicenseEvent(ctx, st, log, now, fmt.Sprintf("released license %s, statement in %s; capacity %s", lic.Number, lc.ReleaseTo, l.state.Capacity(now)), lic.Number, license.EventReleased)
	}
	return nil
}

func recordLicenseEvent(ctx context.Context, st *store.Store, log *slog.Logger, now time.Time, msg, number, change string) {
	if _, err := st.Append(ctx, store.Event{Time: now, Kind: "license", Actor: "broker.yaml", Message: msg, Attrs: map[string]string{"license": number, "change": change}}); err != nil {
		log.Error("event log", "error", err)
	}
}

// printLicenses is the license part of the status command.
func printLicenses(w io.Writer, l *licensing, participants int, now time.Time) {
	c := l.state.Capacity(now)
	fmt.Fprintf(w, "installation: %s\nparticipants: %d of %s\n", l.state.Installation(), participants, c)
	for _, e := range l.state.Entries() {
		state := "active"
		if !e.Released.IsZero() {
			state = "released " + e.Released.Format(time.DateOnly)
		}
		exp := "never expires"
		if !e.License.Expires.IsZero() {
			exp = "expires " + e.License.Expires.Format(time.DateOnly)
		}
		fmt.Fprintf(w, "  license %-20s +%-5d %s, %s\n", e.License.Number, e.License.Participants, exp, state)
	}
}
