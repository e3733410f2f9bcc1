package store

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/remotegate/remotegate/policy"
)

// ResetAccountExcept ends every session of the account but the one kept,
// with the new password, in one transaction: when the tokens cannot be
// deleted, the password is not changed either.
func TestResetAccountExcept(t *testing.T) {
	s, _ := openTest(t)
	now := s.now()
	must(t, s.PutAccount(bg, Account{Name: "alice", PasswordHash: "old"}))
	must(t, s.PutAccount(bg, Account{Name: "bob", PasswordHash: "bob's"}))
	for _, tok := range []struct{ name, account string }{{"a1", "alice"}, {"a2", "alice"}, {"a3", "alice"}, {"b1", "bob"}} {
		must(t, s.PutToken(bg, Token{Hash: hashOf(tok.name), Account: tok.account, Expires: now.Add(time.Hour)}))
	}

	if _, err := s.db.Exec(`CREATE TRIGGER broken BEFORE DELETE ON tokens BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetAccountExcept(bg, Account{Name: "alice", PasswordHash: "new"}, hashOf("a2")); err == nil {
		t.Fatal("ResetAccountExcept succeeded while tokens could not be deleted")
	}
	if a, err := s.Account(bg, "alice"); err != nil || a.PasswordHash != "old" {
		t.Fatalf("after the failed reset: %+v, %v; want the old password", a, err)
	}
	if _, err := s.db.Exec(`DROP TRIGGER broken`); err != nil {
		t.Fatal(err)
	}

	must(t, s.ResetAccountExcept(bg, Account{Name: "alice", PasswordHash: "new"}, hashOf("a2")))
	if a, err := s.Account(bg, "alice"); err != nil || a.PasswordHash != "new" {
		t.Fatalf("after the reset: %+v, %v; want the new password", a, err)
	}
	for tok, want := range map[string]bool{"a1": false, "a2": true, "a3": false, "b1": true} {
		_, err := s.Token(bg, hashOf(tok))
		if got := err == nil; got != want {
			t.Errorf("token %s valid = %v (%v), want %v", tok, got, err, want)
		}
	}
}

// UpdateWith commits the account and secret writes of its callback with
// the configuration, or none of them.
func TestUpdateWith(t *testing.T) {
	s, _ := openTest(t)
	must(t, s.PutAccount(bg, Account{Name: "boot", PasswordHash: "x"}))
	must(t, s.PutSecret(bg, "state", []byte("pending")))
	handOver := func(cfg *Config, tx *Tx) error {
		v, err := tx.Secret("state")
		if err != nil {
			return err
		}
		if string(v) != "pending" {
			return errors.New("already done")
		}
		cfg.Model.Users = append(cfg.Model.Users, policy.User{Name: "alice", Roles: []string{policy.RoleAdmin}})
		if err := tx.PutAccount(Account{Name: "alice", PasswordHash: "alice's"}); err != nil {
			return err
		}
		if err := tx.PutSecret("state", []byte("done")); err != nil {
			return err
		}
		return tx.DeleteAccount("boot")
	}

	// A failing callback leaves everything as it was, also what it wrote
	// before it failed.
	failure := errors.New("injected failure")
	_, err := s.UpdateWith(bg, func(cfg *Config, tx *Tx) error {
		if err := handOver(cfg, tx); err != nil {
			return err
		}
		return failure
	})
	if !errors.Is(err, failure) {
		t.Fatalf("UpdateWith = %v, want the callback's error", err)
	}
	checkState := func(state string, users int, alice, boot bool) {
		t.Helper()
		if v, err := s.Secret(bg, "state"); err != nil || !bytes.Equal(v, []byte(state)) {
			t.Fatalf("state %q, %v; want %q", v, err, state)
		}
		cfg, err := s.Config(bg)
		must(t, err)
		if len(cfg.Model.Users) != users {
			t.Fatalf("%d users, want %d", len(cfg.Model.Users), users)
		}
		if _, err := s.Account(bg, "alice"); (err == nil) != alice {
			t.Fatalf("account alice: %v, want it to exist: %v", err, alice)
		}
		if _, err := s.Account(bg, "boot"); (err == nil) != boot {
			t.Fatalf("account boot: %v, want it to exist: %v", err, boot)
		}
	}
	checkState("pending", 0, false, true)

	if _, err := s.UpdateWith(bg, handOver); err != nil {
		t.Fatal(err)
	}
	checkState("done", 1, true, false)
	if a, err := s.Account(bg, "alice"); err != nil || a.PasswordHash != "alice's" || a.Created.IsZero() {
		t.Fatalf("account alice %+v, %v", a, err)
	}

	// The transaction sees its own state: a second hand-over finds it done.
	if _, err := s.UpdateWith(bg, handOver); err == nil || err.Error() != "already done" {
		t.Fatalf("second hand-over: %v", err)
	}
	_, err = s.UpdateWith(bg, func(_ *Config, tx *Tx) error { return tx.DeleteAccount("boot") })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a missing account in a transaction: %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateWith(bg, func(_ *Config, tx *Tx) error { return tx.PutAccount(Account{}) }); err == nil {
		t.Fatal("account without a name accepted")
	}
	checkState("done", 1, true, false)
}
