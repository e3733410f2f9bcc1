package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Account is a management account that logs in with a password.
type Account struct {
	Name string
	// PasswordHash is the password hash as a PHC string; the store does not
	// interpret it.
	PasswordHash string
	// MustChange asks the user to choose a new password at the next login.
	MustChange bool
	// Disabled accounts may not log in. Disabling an account does not end
	// its sessions: the caller deletes its tokens (DeleteTokensOf).
	Disabled bool
	// Created is when the account was first stored (kept by later
	// PutAccount calls); Updated is when it was last stored. PutAccount sets
	// either to the current time if zero.
	Created, Updated time.Time
}

// Account returns the account called name, or ErrNotFound.
func (s *Store) Account(ctx context.Context, name string) (*Account, error) {
	return readAccount(ctx, s.db, name)
}

func readAccount(ctx context.Context, q queryer, name string) (*Account, error) {
	var (
		a                  Account
		mustChange, disab  int64
		created, updated   string
		errCreated, errUpd error
	)
	err := q.QueryRowContext(ctx, sqlAccount, name).
		Scan(&a.Name, &a.PasswordHash, &mustChange, &disab, &created, &updated)
	if err != nil {
		return nil, fmt.Errorf("store: account: %w", errNoRows(err, "account "+quote(name)))
	}
	a.MustChange, a.Disabled = mustChange != 0, disab != 0
	a.Created, errCreated = parseTime(created)
	a.Updated, errUpd = parseTime(updated)
	if err := errors.Join(errCreated, errUpd); err != nil {
		return nil, fmt.Errorf("store: account %q: %w", name, err)
	}
	return &a, nil
}

// PutAccount stores a, creating the account or replacing the stored one of
// the same name (whose Created time is kept).
func (s *Store) PutAccount(ctx context.Context, a Account) error {
	return s.putAccount(ctx, a, keepSessions, nil)
}

// CreateAccount stores a only if there is no account of its name yet, and
// reports whether it did. Unlike PutAccount it never replaces an account:
// the account a certificate login creates for a user without a password
// cannot overwrite a password an administrator sets at the same moment.
func (s *Store) CreateAccount(ctx context.Context, a Account) (created bool, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, sqlAccountExists, a.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		created = true
		return putAccountIn(ctx, tx, a, s.now())
	})
	if err != nil {
		return false, fmt.Errorf("store: create account %q: %w", a.Name, err)
	}
	return created, nil
}

// ResetAccount is PutAccount that also deletes every token of the account,
// in the same transaction: after an administrator sets a new password, no
// session opened with the old one remains, even if the store fails half
// way.
func (s *Store) ResetAccount(ctx context.Context, a Account) error {
	return s.putAccount(ctx, a, endSessions, nil)
}

// ResetAccountExcept is ResetAccount that keeps the one token whose hash is
// keep: a user who changes its own password stays logged in where it did
// so, and every other session of the account (one an attacker may hold
// with the old password) ends in the same transaction.
func (s *Store) ResetAccountExcept(ctx context.Context, a Account, keep []byte) error {
	return s.putAccount(ctx, a, endOtherSessions, keep)
}

// What putAccount does with the account's tokens.
const (
	keepSessions = iota
	endSessions
	endOtherSessions
)

func (s *Store) putAccount(ctx context.Context, a Account, sessions int, keep []byte) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := putAccountIn(ctx, tx, a, s.now()); err != nil {
			return err
		}
		var err error
		switch sessions {
		case endSessions:
			_, err = tx.ExecContext(ctx, sqlDeleteTokensOf, a.Name)
		case endOtherSessions:
			_, err = tx.ExecContext(ctx, sqlDeleteTokensOfExcept, a.Name, nonNil(keep))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: put account %q: %w", a.Name, err)
	}
	return nil
}

// putAccountIn writes a in tx, with zero times set to now.
func putAccountIn(ctx context.Context, tx *sql.Tx, a Account, now time.Time) error {
	if a.Name == "" {
		return errors.New("empty name")
	}
	if a.Created.IsZero() {
		a.Created = now
	}
	if a.Updated.IsZero() {
		a.Updated = now
	}
	_, err := tx.ExecContext(ctx, sqlPutAccount, a.Name, a.PasswordHash,
		boolInt(a.MustChange), boolInt(a.Disabled), formatTime(a.Created), formatTime(a.Updated))
	return err
}

// DeleteAccount removes the account called name and all its tokens;
// ErrNotFound if there is none.
func (s *Store) DeleteAccount(ctx context.Context, name string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlDeleteAccount, name)
		if err != nil {
			return err
		}
		return oneRow(res, "account "+quote(name))
	})
	if err != nil {
		return fmt.Errorf("store: delete account: %w", err)
	}
	return nil
}

// Token is an API session of an account.
type Token struct {
	// Hash is the SHA-256 of the bearer token; the token itself is never
	// stored, so the database does not reveal usable tokens.
	Hash []byte
	// Account is the name of the account the token acts for; it must exist.
	Account string
	// Created is when the session began (zero: PutToken uses the current
	// time); the token is valid until Expires (required).
	Created, Expires time.Time
}

// PutToken stores t (replacing a token with the same hash). The account
// must exist (else ErrNotFound); deleting it deletes its tokens.
func (s *Store) PutToken(ctx context.Context, t Token) error {
	switch {
	case len(t.Hash) != sha256.Size:
		return fmt.Errorf("store: put token: hash is %d bytes, not a SHA-256", len(t.Hash))
	case t.Expires.IsZero():
		return errors.New("store: put token: no expiry")
	}
	created := s.orNow(t.Created)
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, sqlAccountExists, t.Account).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: account %q", ErrNotFound, t.Account)
		}
		_, err := tx.ExecContext(ctx, sqlPutToken, t.Hash, t.Account, formatTime(created), formatTime(t.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: put token: %w", err)
	}
	return nil
}

// Token returns the token with the given hash, or ErrNotFound if there is
// none or it has expired.
func (s *Store) Token(ctx context.Context, hash []byte) (*Token, error) {
	t := Token{Hash: append([]byte(nil), hash...)}
	var created, expires string
	err := s.db.QueryRowContext(ctx, sqlToken, nonNil(hash), formatTime(s.now())).
		Scan(&t.Account, &created, &expires)
	if err != nil {
		return nil, fmt.Errorf("store: token: %w", errNoRows(err, "token"))
	}
	var errC, errE error
	t.Created, errC = parseTime(created)
	t.Expires, errE = parseTime(expires)
	if err := errors.Join(errC, errE); err != nil {
		return nil, fmt.Errorf("store: token: %w", err)
	}
	return &t, nil
}

// DeleteToken removes the token with the given hash (a logout). Deleting a
// token that does not exist is not an error.
func (s *Store) DeleteToken(ctx context.Context, hash []byte) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlDeleteToken, nonNil(hash))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete token: %w", err)
	}
	return nil
}

// DeleteTokensOf removes every token of account.
func (s *Store) DeleteTokensOf(ctx context.Context, account string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlDeleteTokensOf, account)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete tokens of %q: %w", account, err)
	}
	return nil
}

// PruneTokens removes the tokens that have expired at now, and returns how
// many it removed.
func (s *Store) PruneTokens(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlPruneTokens, formatTime(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune tokens: %w", err)
	}
	return n, nil
}
