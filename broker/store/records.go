package store

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"time"

	"github.com/remotegate/remotegate/pki"
)

// Secret returns the secret stored under name (a CA key, the server key, a
// tls-crypt key...: opaque bytes), or ErrNotFound. A sealed secret needs
// the store's secret key: without it, or with another, Secret fails with
// ErrSecretKey.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	var (
		v      []byte
		sealed bool
	)
	err := s.db.QueryRowContext(ctx, sqlGetSecret, name).Scan(&v, &sealed)
	if err != nil {
		return nil, fmt.Errorf("store: secret: %w", errNoRows(err, "secret "+quote(name)))
	}
	v, err = s.openSecret(name, v, sealed)
	if err != nil {
		return nil, fmt.Errorf("store: secret %q: %w", name, err)
	}
	return v, nil
}

// PutSecret stores value under name, sealed with the store's secret key,
// replacing any value stored before. Without a secret key it fails with
// ErrSecretKey.
func (s *Store) PutSecret(ctx context.Context, name string, value []byte) error {
	sealed, err := s.sealSecret(name, value)
	if err == nil {
		err = s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, sqlPutSecret, name, sealed, true)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("store: put secret %q: %w", name, err)
	}
	return nil
}

// PutSecretIfAbsent stores value under name only if name has no value yet,
// and returns the stored value: the existing one or value. Two processes
// racing to create a secret at first start both get the one that won.
func (s *Store) PutSecretIfAbsent(ctx context.Context, name string, value []byte) ([]byte, error) {
	sealed, err := s.sealSecret(name, value)
	var (
		stored       []byte
		storedSealed bool
	)
	if err == nil {
		err = s.write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, sqlPutSecretIfAbsent, name, sealed, true); err != nil {
				return err
			}
			return tx.QueryRowContext(ctx, sqlGetSecret, name).Scan(&stored, &storedSealed)
		})
	}
	if err == nil {
		stored, err = s.openSecret(name, stored, storedSealed)
	}
	if err != nil {
		return nil, fmt.Errorf("store: put secret %q: %w", name, err)
	}
	return stored, nil
}

// serialKey is the stored form of a serial number: pki.SerialString, the
// form the API and the events use too.
func serialKey(n *big.Int) string { return pki.SerialString(n) }

// PutCertificate stores the record of a certificate the CA issued, replacing
// the record with the same serial number (its key is the serial number in
// hex).
func (s *Store) PutCertificate(ctx context.Context, r pki.Record) error {
	c := r.Certificate
	if c == nil || c.SerialNumber == nil || len(c.Raw) == 0 {
		return errors.New("store: put certificate: record without a parsed certificate")
	}
	serial := serialKey(c.SerialNumber)
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlPutCertificate, serial, c.Subject.CommonName, int64(r.Profile),
			formatTime(c.NotBefore), formatTime(c.NotAfter), c.Raw,
			formatOptionalTime(r.RevokedAt), int64(r.Reason))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: put certificate %s: %w", serial, err)
	}
	return nil
}

// RevokeCertificate marks the certificate with the given serial number
// (hex, either case, leading zeros allowed) revoked at the given time (zero:
// now) for reason. It fails with ErrNotFound if no such certificate is
// stored.
func (s *Store) RevokeCertificate(ctx context.Context, serial string, at time.Time, reason pki.RevocationReason) error {
	n, ok := new(big.Int).SetString(strings.TrimPrefix(strings.ToLower(serial), "0x"), 16)
	if !ok {
		return fmt.Errorf("store: revoke certificate: %w: bad serial %q", ErrNotFound, serial)
	}
	key := serialKey(n)
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlRevokeCertificate, formatTime(s.orNow(at)), int64(reason), key)
		if err != nil {
			return err
		}
		return oneRow(res, "certificate "+key)
	})
	if err != nil {
		return fmt.Errorf("store: revoke certificate: %w", err)
	}
	return nil
}

// Certificates returns the records of every certificate stored, in the order
// they were issued (by NotBefore, then serial number).
func (s *Store) Certificates(ctx context.Context) ([]pki.Record, error) {
	rows, err := s.db.QueryContext(ctx, sqlCertificates)
	if err != nil {
		return nil, fmt.Errorf("store: certificates: %w", err)
	}
	defer rows.Close()
	var out []pki.Record
	for rows.Next() {
		var (
			der             []byte
			profile, reason int64
			revoked         sql.NullString
		)
		if err := rows.Scan(&der, &profile, &revoked, &reason); err != nil {
			return nil, fmt.Errorf("store: certificates: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("store: certificates: stored certificate: %w", err)
		}
		at, err := parseOptionalTime(revoked)
		if err != nil {
			return nil, fmt.Errorf("store: certificates: %w", err)
		}
		out = append(out, pki.Record{Certificate: cert, Profile: pki.Profile(profile), RevokedAt: at, Reason: pki.RevocationReason(reason)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: certificates: %w", err)
	}
	return out, nil
}

// Addresses returns the stable tunnel address of every participant that
// has one.
func (s *Store) Addresses(ctx context.Context) (map[string]netip.Addr, error) {
	rows, err := s.db.QueryContext(ctx, sqlAddresses)
	if err != nil {
		return nil, fmt.Errorf("store: addresses: %w", err)
	}
	defer rows.Close()
	out := map[string]netip.Addr{}
	for rows.Next() {
		var p, a string
		if err := rows.Scan(&p, &a); err != nil {
			return nil, fmt.Errorf("store: addresses: %w", err)
		}
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("store: addresses: stored address of %q: %w", p, err)
		}
		out[p] = addr
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: addresses: %w", err)
	}
	return out, nil
}

// SetAddress gives participant the tunnel address a, replacing its previous
// one. An address belongs to one participant at most: SetAddress fails if
// another participant holds a.
func (s *Store) SetAddress(ctx context.Context, participant string, a netip.Addr) error {
	if !a.IsValid() {
		return fmt.Errorf("store: set address of %q: invalid address", participant)
	}
	text := a.String()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var holder string
		err := tx.QueryRowContext(ctx, sqlAddressHolder, text, participant).Scan(&holder)
		if err == nil {
			return fmt.Errorf("%s is the address of %q", text, holder)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, sqlSetAddress, participant, text)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set address of %q: %w", participant, err)
	}
	return nil
}

// DeleteAddress removes the tunnel address of participant; ErrNotFound if
// it has none.
func (s *Store) DeleteAddress(ctx context.Context, participant string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlDeleteAddress, participant)
		if err != nil {
			return err
		}
		return oneRow(res, "address of "+quote(participant))
	})
	if err != nil {
		return fmt.Errorf("store: delete address: %w", err)
	}
	return nil
}

// oneRow returns ErrNotFound (about what) unless res affected a row.
func oneRow(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
