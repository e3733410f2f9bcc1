package api

import (
	"context"
	"errors"

	"github.com/remotegate/remotegate/broker/store"
)

// setAccountPassword stores a new password for the account called name,
// creating the account if it has none; its sessions are kept. It checks
// no rights: the tests give their accounts passwords with it.
func (s *Server) setAccountPassword(ctx context.Context, name, password string, mustChange bool) error {
	h, err := HashPassword(password, s.cfg.PasswordCost)
	if err != nil {
		return err
	}
	now := s.now()
	a, err := s.cfg.Store.Account(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a = &store.Account{Name: name, Created: now}
	case err != nil:
		return err
	}
	a.PasswordHash, a.MustChange, a.Updated = h, mustChange, now
	return s.cfg.Store.PutAccount(ctx, *a)
}
