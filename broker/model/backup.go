package model

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"strconv"

	"github.com/remotegate/remotegate/broker/store"
)

// CheckBackupPassphrase refuses (ErrInvalid) a backup passphrase shorter
// than MinPasswordLength: it is all that protects the archive's secrets.
func CheckBackupPassphrase(p string) error {
	if len(p) < MinPasswordLength {
		return fmt.Errorf("%w: a backup passphrase needs at least %d characters", ErrInvalid, MinPasswordLength)
	}
	return nil
}

// Backup writes an encrypted archive of the whole store to w (see
// store.Store.Backup; store.ErrBackupTooLarge past store.MaxBackupSize)
// and records it in the event log once it is complete.
func (m *Manager) Backup(ctx context.Context, actor string, w io.Writer, passphrase string) error {
	if err := CheckBackupPassphrase(passphrase); err != nil {
		return err
	}
	if err := m.cfg.Store.Backup(ctx, w, []byte(passphrase)); err != nil {
		return err
	}
	m.Record(ctx, "backup", "", actor, "configuration backed up", nil)
	return nil
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	// RestartRequired: part of the restored state (another CA, another
	// installation identity) takes effect at the next start.
	RestartRequired bool
	// Installation is "kept" or "restored" (see Config.InstallationSecrets).
	Installation string
	// Message says it in a sentence, as the event log does.
	Message string
}

// Restore replaces everything in the store with the backup read from r
// (store.ErrBadBackup, store.ErrSchema, store.ErrBackupTooLarge), and
// applies the configuration at once; a different CA or installation
// identity takes effect at the next start. Every API session ends (the
// tokens are not restored). The installation identity stays this
// broker's unless bringInstallation (moving to new hardware), so that a
// backup of another broker does not make a second installation of one.
//
// The archive is read as it arrives, into a temporary file, without any
// lock held: a slow upload holds up no change. Only the swap itself is
// serialised with the configuration changes.
func (m *Manager) Restore(ctx context.Context, actor string, r io.Reader, passphrase string, bringInstallation bool) (RestoreResult, error) {
	res := RestoreResult{Installation: "kept", Message: "restored a backup; the installation identity of this broker was kept"}
	var keep []string
	if bringInstallation {
		res.Installation = "restored"
		res.Message = "restored a backup with the installation identity of the backup (moved to new hardware)"
	} else {
		keep = m.cfg.InstallationSecrets
	}
	before := m.secrets(ctx, m.cfg.InstallationSecrets)
	staged, err := m.cfg.Store.StageRestore(ctx, r, []byte(passphrase))
	if err != nil {
		return RestoreResult{}, err
	}
	m.mu.Lock()
	err = staged.Apply(ctx, store.RestoreOptions{KeepSecrets: keep})
	m.mu.Unlock()
	staged.Close()
	if err != nil {
		return RestoreResult{}, err
	}
	// The identity the program runs with was read at its start.
	res.RestartRequired = !maps.EqualFunc(before, m.secrets(ctx, m.cfg.InstallationSecrets), bytes.Equal)
	res.Message += "; every API session ended"
	if err := m.Load(ctx); err != nil {
		m.Record(ctx, "config_change", "", actor, res.Message+"; the configuration does not apply: "+err.Error(), map[string]string{"installation": res.Installation})
		return RestoreResult{}, fmt.Errorf("model: restored, but the configuration does not apply: %w", err)
	}
	if m.cfg.CA != nil {
		if records, err := m.cfg.Store.Certificates(ctx); err == nil {
			if err := m.cfg.CA.Restore(records); err != nil {
				res.RestartRequired = true // certificates of another CA: the CA changes at the next start
			}
		}
	}
	m.Record(ctx, "config_change", "", actor, res.Message, map[string]string{
		"installation": res.Installation, "restart_required": strconv.FormatBool(res.RestartRequired), "sessions_ended": "true"})
	return res, nil
}

// secrets reads the named secrets; absent or unreadable ones are left out.
func (m *Manager) secrets(ctx context.Context, names []string) map[string][]byte {
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		if v, err := m.cfg.Store.Secret(ctx, n); err == nil {
			out[n] = v
		}
	}
	return out
}
