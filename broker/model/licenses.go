package model

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
)

// The names of the secrets that identify an installation, as the product
// stores them: a random ID that licenses may be bound to, and the Ed25519
// key that signs release statements (Config.InstallationSecrets).
const (
	SecretInstallationID  = "license/installation-id"
	SecretInstallationKey = "license/installation-key"
)

// loadLicenses restores the license state from the store. A stored license
// that no longer verifies (say the product dropped the vendor key that
// signed it) is skipped with an error in the log rather than keeping the
// broker from starting: it just does not count.
func (m *Manager) loadLicenses(ctx context.Context) error {
	lic := m.cfg.Licenses
	if lic == nil {
		return nil
	}
	stored, err := m.cfg.Store.Licenses(ctx)
	if err != nil {
		return err
	}
	entries := make([]license.Entry, 0, len(stored))
	for _, l := range stored {
		entries = append(entries, license.Entry{File: l.File, Activated: l.Added, Released: l.Released})
	}
	if err := lic.Restore(entries); err != nil {
		var good []license.Entry
		for _, e := range entries {
			if err := lic.Restore(append(good, e)); err != nil {
				m.log.Error("stored license does not count", "error", err)
				continue
			}
			good = append(good, e)
		}
		if err := lic.Restore(good); err != nil {
			return fmt.Errorf("model: licenses: %w", err)
		}
	}
	m.applyCapacity(m.now())
	return nil
}

// applyCapacity gives the broker the capacity at now.
func (m *Manager) applyCapacity(now time.Time) {
	if m.cfg.Licenses == nil {
		return
	}
	c := m.cfg.Licenses.Capacity(now)
	m.cfg.Broker.SetCapacity(c.Participants, c.String())
}

// CheckLicenses records the license changes since the last call (expiries,
// the ends of grace periods) in the event log and gives the broker the
// capacity they leave. The product calls it periodically, e.g. once a
// minute.
func (m *Manager) CheckLicenses(ctx context.Context) {
	lic := m.cfg.Licenses
	if lic == nil {
		return
	}
	now := m.now()
	m.licMu.Lock()
	from := m.licChecked
	m.licChecked = now
	m.licMu.Unlock()
	for _, e := range lic.EventsBetween(from, now) {
		// Activations and releases are logged when they happen, with who
		// did them.
		if e.Kind == license.EventActivated || e.Kind == license.EventReleased {
			continue
		}
		m.Record(ctx, "license", "", "", fmt.Sprintf("license %s %s; capacity %s", e.Number, e.Kind, lic.Capacity(now)), map[string]string{"license": e.Number, "change": e.Kind})
	}
	m.applyCapacity(now)
}

// ErrUnlicensed: the product does not limit participants by license
// (Config.Licenses is nil), or has no installation key to release one
// with. It is an ErrConflict.
var ErrUnlicensed = fmt.Errorf("%w: this broker does not limit participants by license", ErrConflict)

// AddLicense activates the license file for this installation, stores it
// and gives the broker the capacity it brings. A file that does not verify
// or is bound to another installation is ErrInvalid; one that is active
// already, released or revoked is ErrConflict. It returns the license as
// activated and the capacity now.
func (m *Manager) AddLicense(ctx context.Context, actor string, file []byte) (license.Entry, license.Capacity, error) {
	lic := m.cfg.Licenses
	if lic == nil {
		return license.Entry{}, license.Capacity{}, ErrUnlicensed
	}
	m.licMu.Lock()
	defer m.licMu.Unlock()
	now := m.now()
	before := lic.Entries()
	l, err := lic.Activate(file, now)
	if err != nil {
		kind := ErrInvalid
		if errors.Is(err, license.ErrDuplicate) || errors.Is(err, license.ErrReleased) || errors.Is(err, license.ErrRevoked) {
			kind = ErrConflict
		}
		return license.Entry{}, license.Capacity{}, fmt.Errorf("%w: %w", kind, err)
	}
	if err := m.cfg.Store.PutLicense(ctx, store.License{Number: l.Number, File: file, Added: now}); err != nil {
		return license.Entry{}, license.Capacity{}, m.undoLicenseChange(before, err) // not stored, so not activated
	}
	capacity := lic.Capacity(now)
	m.applyCapacity(now)
	m.Record(ctx, "license", "", actor, fmt.Sprintf("activated license %s (+%d); capacity %s", l.Number, l.Participants, capacity),
		map[string]string{"license": l.Number, "change": license.EventActivated, "capacity": strconv.Itoa(capacity.Participants)})
	for _, e := range lic.Entries() {
		if e.License.Number == l.Number {
			return e, capacity, nil
		}
	}
	return license.Entry{}, capacity, fmt.Errorf("model: license %s activated, but the licenses no longer list it", l.Number)
}

// undoLicenseChange puts the licenses back to before, as the store still
// has them after it refused a change with err.
func (m *Manager) undoLicenseChange(before []license.Entry, err error) error {
	if rerr := m.cfg.Licenses.Restore(before); rerr != nil {
		// The State keeps the change the store does not have: it counts
		// until the next start, which restores the stored licenses.
		m.log.Error("licenses in force differ from the stored ones until the next start", "error", rerr)
		return fmt.Errorf("%w; and undoing the change failed: %w", err, rerr)
	}
	return err
}

// ReleaseLicense releases the license with number from this installation
// and returns the signed release statement with which the vendor
// re-issues it for another installation. An unknown number is
// ErrNotFound; one released already, ErrConflict.
func (m *Manager) ReleaseLicense(ctx context.Context, actor, number string) ([]byte, error) {
	lic := m.cfg.Licenses
	if lic == nil || m.cfg.InstallationKey == nil {
		return nil, ErrUnlicensed
	}
	m.licMu.Lock()
	defer m.licMu.Unlock()
	now := m.now()
	before := lic.Entries()
	stmt, err := lic.Release(number, m.cfg.InstallationKey, now)
	if err != nil {
		kind := ErrConflict
		if errors.Is(err, license.ErrNotActivated) {
			kind = ErrNotFound
		}
		return nil, fmt.Errorf("%w: %w", kind, err)
	}
	var released time.Time
	for _, e := range lic.Entries() {
		if e.License.Number == number {
			released = e.Released
		}
	}
	if err := m.cfg.Store.ReleaseLicense(ctx, number, released); err != nil {
		return nil, m.undoLicenseChange(before, err) // not stored, so not released
	}
	capacity := lic.Capacity(now)
	m.applyCapacity(now)
	m.Record(ctx, "license", "", actor, fmt.Sprintf("released license %s; capacity %s", number, capacity),
		map[string]string{"license": number, "change": license.EventReleased, "capacity": strconv.Itoa(capacity.Participants)})
	return stmt, nil
}
