package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Tx is the write transaction of an UpdateWith, for the accounts and
// secrets that change together with the configuration. Its methods behave
// as the Store methods of the same names, but commit or roll back with the
// configuration change. A Tx is valid only during the UpdateWith callback
// that received it.
type Tx struct {
	ctx context.Context
	tx  *sql.Tx
	s   *Store // for its clock and its secret key
}

// Secret returns the secret stored under name, or ErrNotFound.
func (t *Tx) Secret(name string) ([]byte, error) {
	var (
		v      []byte
		sealed bool
	)
	if err := t.tx.QueryRowContext(t.ctx, sqlGetSecret, name).Scan(&v, &sealed); err != nil {
		return nil, fmt.Errorf("store: secret: %w", errNoRows(err, "secret "+quote(name)))
	}
	v, err := t.s.openSecret(name, v, sealed)
	if err != nil {
		return nil, fmt.Errorf("store: secret %q: %w", name, err)
	}
	return nonNil(v), nil
}

// PutSecret stores value under name, sealed as Store.PutSecret does,
// replacing any value stored before.
func (t *Tx) PutSecret(name string, value []byte) error {
	sealed, err := t.s.sealSecret(name, value)
	if err == nil {
		_, err = t.tx.ExecContext(t.ctx, sqlPutSecret, name, sealed, true)
	}
	if err != nil {
		return fmt.Errorf("store: put secret %q: %w", name, err)
	}
	return nil
}

// Account returns the account called name, or ErrNotFound.
func (t *Tx) Account(name string) (*Account, error) {
	return readAccount(t.ctx, t.tx, name)
}

// PutAccount stores a as Store.PutAccount does.
func (t *Tx) PutAccount(a Account) error {
	if err := putAccountIn(t.ctx, t.tx, a, t.s.now()); err != nil {
		return fmt.Errorf("store: put account %q: %w", a.Name, err)
	}
	return nil
}

// DeleteAccount removes the account called name and all its tokens;
// ErrNotFound if there is none.
func (t *Tx) DeleteAccount(name string) error {
	res, err := t.tx.ExecContext(t.ctx, sqlDeleteAccount, name)
	if err == nil {
		err = oneRow(res, "account "+quote(name))
	}
	if err != nil {
		return fmt.Errorf("store: delete account: %w", err)
	}
	return nil
}
