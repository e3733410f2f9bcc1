package api

import (
	"database/sql"
	"net/http"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the store's driver, to break the store from outside
)

// breakTokenDeletes makes every deletion of a token fail in the store's
// database until the returned function mends it: the failure of one step
// in the middle of a request.
func (e *env) breakTokenDeletes() (mend func()) {
	e.t.Helper()
	db, err := sql.Open("sqlite", e.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		e.t.Fatal(err)
	}
	exec := func(q string) {
		e.t.Helper()
		if _, err := db.Exec(q); err != nil {
			e.t.Fatal(err)
		}
	}
	exec(`CREATE TRIGGER broken_token_deletes BEFORE DELETE ON tokens BEGIN SELECT RAISE(ABORT, 'injected failure'); END`)
	return func() {
		exec(`DROP TRIGGER broken_token_deletes`)
		db.Close()
	}
}

// A user who loses access loses its API sessions with it: disabling,
// deleting and setting a new password each end the user's tokens. When
// ending them fails, the request fails as a whole (the user is neither
// disabled, nor deleted, nor given the new password) and the same request
// succeeds once the store works again.
func TestLosingAccessEndsSessions(t *testing.T) {
	cases := []struct {
		name    string
		want    int // the status of the request once the store works
		request func(e *env, root string) (method, path string, body any)
		// after checks the state once the request succeeded.
		after func(e *env, root string)
	}{
		{
			name: "disable", want: http.StatusOK,
			request: func(e *env, root string) (string, string, any) {
				return "PUT", "/api/v1/users/alice", map[string]any{"name": "alice", "disabled": true}
			},
			after: func(e *env, root string) {
				if _, code := e.login("alice", "alice's long password"); code != http.StatusUnauthorized {
					e.t.Fatalf("a disabled user logged in: %d", code)
				}
			},
		},
		{
			name: "delete", want: http.StatusNoContent,
			request: func(e *env, root string) (string, string, any) {
				return "DELETE", "/api/v1/users/alice", nil
			},
			after: func(e *env, root string) {
				// A new user of the same name does not inherit the password.
				e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "alice"})
				if _, code := e.login("alice", "alice's long password"); code != http.StatusUnauthorized {
					e.t.Fatalf("a new alice logged in with the deleted alice's password: %d", code)
				}
			},
		},
		{
			name: "new-password", want: http.StatusNoContent,
			request: func(e *env, root string) (string, string, any) {
				return "PUT", "/api/v1/users/alice/password", map[string]any{"password": "a new long password"}
			},
			after: func(e *env, root string) {
				if _, code := e.login("alice", "alice's long password"); code != http.StatusUnauthorized {
					e.t.Fatalf("the old password still works: %d", code)
				}
				e.mustLoginWith("alice", "a new long password")
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			root := e.mustLogin("root")
			e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{
				"name": "alice", "roles": []string{"admin"}, "password": "alice's long password"})
			alice := e.mustLoginWith("alice", "alice's long password")
			method, path, body := c.request(e, root)

			mend := e.breakTokenDeletes()
			code, out := e.call(method, path, root, body)
			if code != http.StatusInternalServerError || !strings.Contains(string(out), "injected failure") {
				t.Fatalf("%s %s while tokens cannot be deleted: %d %s; want 500", method, path, code, out)
			}
			// Nothing changed: alice's session works, with her rights.
			e.expect(http.StatusOK, "GET", "/api/v1/users", alice, nil)
			e.mustLoginWith("alice", "alice's long password")
			mend()

			e.expect(c.want, method, path, root, body)
			e.expect(http.StatusUnauthorized, "GET", "/api/v1/users", alice, nil)
			c.after(e, root)
		})
	}
}
