package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// License is an installed license file, kept by its license number. The
// store does not interpret the file.
type License struct {
	Number string
	File   []byte
	// Added is when the license was first stored (zero: PutLicense uses the
	// current time; kept by later PutLicense calls for the same number).
	Added time.Time
	// Released is when the license was given up (zero: active).
	Released time.Time
}

// PutLicense stores l, replacing the file and release time of a license
// with the same number.
func (s *Store) PutLicense(ctx context.Context, l License) error {
	if l.Number == "" {
		return errors.New("store: put license: empty license number")
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlPutLicense, l.Number, nonNil(l.File),
			formatTime(s.orNow(l.Added)), formatOptionalTime(l.Released))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: put license %q: %w", l.Number, err)
	}
	return nil
}

// Licenses returns every stored license, released ones too, in the order
// they were added.
func (s *Store) Licenses(ctx context.Context) ([]License, error) {
	rows, err := s.db.QueryContext(ctx, sqlLicenses)
	if err != nil {
		return nil, fmt.Errorf("store: licenses: %w", err)
	}
	defer rows.Close()
	var out []License
	for rows.Next() {
		var (
			l        License
			added    string
			released sql.NullString
		)
		if err := rows.Scan(&l.Number, &l.File, &added, &released); err != nil {
			return nil, fmt.Errorf("store: licenses: %w", err)
		}
		l.File = nonNil(l.File)
		var errA, errR error
		l.Added, errA = parseTime(added)
		l.Released, errR = parseOptionalTime(released)
		if err := errors.Join(errA, errR); err != nil {
			return nil, fmt.Errorf("store: licenses: license %q: %w", l.Number, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: licenses: %w", err)
	}
	return out, nil
}

// ReleaseLicense marks the license with the given number released at the
// given time (zero: now); ErrNotFound if there is no such license.
func (s *Store) ReleaseLicense(ctx context.Context, number string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlReleaseLicense, formatTime(s.orNow(at)), number)
		if err != nil {
			return err
		}
		return oneRow(res, "license "+quote(number))
	})
	if err != nil {
		return fmt.Errorf("store: release license: %w", err)
	}
	return nil
}
