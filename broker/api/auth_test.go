package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/remotegate/remotegate/broker/store"
)

// Changing one's own password ends every other session of the account;
// the session that changed it stays, and other accounts keep theirs.
func TestChangingOwnPasswordEndsOtherSessions(t *testing.T) {
	e := newEnv(t)
	here := e.mustLogin("root")
	others := []string{e.mustLogin("root"), e.mustLogin("root")}
	nobody := e.mustLogin("nobody")
	e.expect(http.StatusNoContent, "PUT", "/api/v1/password", here, map[string]any{"old_password": testPassword, "new_password": "root's new long password"})
	e.expect(http.StatusOK, "GET", "/api/v1/users", here, nil)
	for i, tok := range others {
		if code, body := e.call("GET", "/api/v1/users", tok, nil); code != http.StatusUnauthorized {
			t.Fatalf("other session %d after the password change: %d %s; want 401", i, code, body)
		}
	}
	if code, _ := e.call("POST", "/api/v1/logout", nobody, nil); code != http.StatusNoContent {
		t.Fatalf("another account's session: %d", code)
	}
	if _, code := e.login("root", testPassword); code != http.StatusUnauthorized {
		t.Fatalf("the old password: %d", code)
	}
	e.mustLoginWith("root", "root's new long password")
}

// Of concurrent requests with the one bootstrap token, exactly one names
// an administrator; the others are refused (409, or 401 once the token
// ended with the bootstrap account), and leave no account behind.
func TestConcurrentBootstrapNamesOneAdministrator(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			e := newEnv(t)
			password, _, err := e.srv.Bootstrap(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			tok := e.mustLoginWith(BootstrapAccount, password)
			const n = 8
			codes := make([]int, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					codes[i], _ = e.call("POST", "/api/v1/bootstrap", tok, map[string]string{"name": fmt.Sprintf("boss%d", i), "password": "a long enough password"})
				}()
			}
			wg.Wait()
			created := 0
			for i, code := range codes {
				switch code {
				case http.StatusCreated:
					created++
				case http.StatusConflict, http.StatusUnauthorized:
				default:
					t.Errorf("request %d: %d", i, code)
				}
			}
			if created != 1 {
				t.Fatalf("answers %v: %d administrators named, want 1", codes, created)
			}
			cfg, err := e.store.Config(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var named []string
			for i := range n {
				name := fmt.Sprintf("boss%d", i)
				_, noAccount := e.store.Account(context.Background(), name)
				if users.find(cfg, name) >= 0 || noAccount == nil {
					named = append(named, name)
				}
			}
			if len(named) != 1 || len(cfg.Model.Users) != 3 {
				t.Fatalf("users %+v; accounts or users of %v; want exactly one", cfg.Model.Users, named)
			}
			if _, err := e.store.Account(context.Background(), BootstrapAccount); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the bootstrap account: %v", err)
			}
		})
	}
}

// A bootstrap that fails half way (ending the bootstrap session fails)
// names no one and stays pending; once the store works, it succeeds.
func TestFailedBootstrapStaysPending(t *testing.T) {
	e := newEnv(t)
	password, _, err := e.srv.Bootstrap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok := e.mustLoginWith(BootstrapAccount, password)
	req := map[string]string{"name": "boss", "password": "a long enough password"}
	mend := e.breakTokenDeletes()
	if code, body := e.call("POST", "/api/v1/bootstrap", tok, req); code != http.StatusInternalServerError {
		t.Fatalf("bootstrap while tokens cannot be deleted: %d %s; want 500", code, body)
	}
	if _, state, _ := e.srv.Bootstrap(context.Background()); state != "pending" {
		t.Fatalf("after the failure, state %q", state)
	}
	if _, code := e.login("boss", "a long enough password"); code != http.StatusUnauthorized {
		t.Fatalf("the failed bootstrap's administrator logged in: %d", code)
	}
	mend()
	e.expect(http.StatusCreated, "POST", "/api/v1/bootstrap", tok, req)
	e.mustLoginWith("boss", "a long enough password")
	e.expect(http.StatusUnauthorized, "GET", "/api/v1/users", tok, nil)
}
