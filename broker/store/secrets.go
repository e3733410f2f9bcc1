package store

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
)

// A sealed secret is stored as nonce (12 bytes) | AES-256-GCM ciphertext
// and tag, under the store's secret key, with the secret's name as the
// additional data: a sealed value moved to another name does not open.

// sealWith seals value, the secret called name, with aead.
func sealWith(aead cipher.AEAD, name string, value []byte) ([]byte, error) {
	out := make([]byte, nonceSize, nonceSize+len(value)+tagSize)
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[:nonceSize], value, []byte(name)), nil
}

// openWith opens a value sealWith sealed; every failure is ErrSecretKey.
func openWith(aead cipher.AEAD, name string, sealed []byte) ([]byte, error) {
	if len(sealed) < nonceSize+tagSize {
		return nil, fmt.Errorf("%w: sealed value of %d bytes", ErrSecretKey, len(sealed))
	}
	v, err := aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open with this key", ErrSecretKey)
	}
	return nonNil(v), nil
}

// sealSecret seals value for storing under name, or fails with
// ErrSecretKey if the store has no key.
func (s *Store) sealSecret(name string, value []byte) ([]byte, error) {
	if s.aead == nil {
		return nil, fmt.Errorf("%w: the store was opened without a secret key, and secrets are not stored in clear", ErrSecretKey)
	}
	return sealWith(s.aead, name, value)
}

// openSecret returns the value of a stored secret row.
func (s *Store) openSecret(name string, v []byte, sealed bool) ([]byte, error) {
	if !sealed {
		return nonNil(v), nil // stored by an older program, not sealed yet
	}
	if s.aead == nil {
		return nil, fmt.Errorf("%w: it is sealed, and the store was opened without a secret key", ErrSecretKey)
	}
	return openWith(s.aead, name, v)
}

// sealClearSecrets checks that the store's key opens the secrets sealed
// already, and seals those stored in clear (by an older program), in one
// transaction. Their clear values leave the database file: the store
// overwrites replaced content with zeros, and the write-ahead log, which
// may still hold pages written in clear, is emptied.
func (s *Store) sealClearSecrets(ctx context.Context) error {
	var (
		name   string
		sealed []byte
	)
	err := s.db.QueryRowContext(ctx, sqlOneSealed).Scan(&name, &sealed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read secrets: %w", err)
	default:
		if _, err := openWith(s.aead, name, sealed); err != nil {
			return fmt.Errorf("%w: the secret key does not open the secrets stored (secret %q): another key sealed them", ErrSecretKey, name)
		}
	}
	n := 0
	err = s.write(ctx, func(tx *sql.Tx) error {
		rows, err := readSecrets(ctx, tx, sqlClearSecrets, nil, false)
		if err != nil {
			return err
		}
		for _, r := range rows {
			v, err := sealWith(s.aead, r.name, r.value)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, sqlSealSecret, v, r.name); err != nil {
				return err
			}
			clear(r.value)
		}
		n = len(rows)
		return nil
	})
	if err != nil {
		return fmt.Errorf("seal the secrets stored in clear: %w", err)
	}
	if n > 0 {
		// Another process reading the database keeps part of the log;
		// its pages are overwritten as the log is reused.
		var busy, logged, checkpointed int
		if err := s.db.QueryRowContext(ctx, sqlTruncateWAL).Scan(&busy, &logged, &checkpointed); err != nil {
			return fmt.Errorf("empty the write-ahead log: %w", err)
		}
	}
	return nil
}

// secretRow is a row of a secrets table.
type secretRow struct {
	name   string
	value  []byte
	sealed bool
}

// readSecrets reads the rows of query (name, value, sealed of a secrets
// table) whose name is in names (in is true) or not (in is false).
func readSecrets(ctx context.Context, tx *sql.Tx, query string, names map[string]bool, in bool) ([]secretRow, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("read secrets: %w", err)
	}
	defer rows.Close()
	var out []secretRow
	for rows.Next() {
		var r secretRow
		if err := rows.Scan(&r.name, &r.value, &r.sealed); err != nil {
			return nil, fmt.Errorf("read secrets: %w", err)
		}
		if names[r.name] == in {
			r.value = nonNil(r.value)
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read secrets: %w", err)
	}
	return out, nil
}

// resealSecrets turns the secret rows of a backup into rows of this store:
// sealed with its key. Those sealed in the backup are opened with the key
// the backup carries (backupKey).
func (s *Store) resealSecrets(rows []secretRow, backupKey []byte) error {
	var backup cipher.AEAD
	if backupKey != nil {
		var err error
		if backup, err = newAEAD(backupKey); err != nil {
			return fmt.Errorf("%w: %v", ErrBadBackup, err)
		}
	}
	for i := range rows {
		r := &rows[i]
		plain := r.value
		if r.sealed {
			if backup == nil {
				return fmt.Errorf("%w: secret %q is sealed, and the backup has no key for it", ErrBadBackup, r.name)
			}
			var err error
			if plain, err = openWith(backup, r.name, r.value); err != nil {
				return fmt.Errorf("%w: secret %q does not open with the backup's key", ErrBadBackup, r.name)
			}
		}
		v, err := s.sealSecret(r.name, plain)
		clear(plain)
		if err != nil {
			return fmt.Errorf("secret %q of the backup: %w", r.name, err)
		}
		r.value, r.sealed = v, true
	}
	return nil
}
