package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/policy"
)

// A user created without a password logs in by certificate only: the
// first certificate login creates its account, its session works, and no
// password (not even an empty one) logs in to that account.
func TestCertificateOnlyUserLogsIn(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "olga", "roles": []string{policy.RoleVPNUser}})
	login := e.certLogin("olga")
	for i := range 2 { // the second login finds the account the first made
		code, tok := login()
		if code != http.StatusOK || tok == "" {
			t.Fatalf("certificate login %d of a user without a password: %d", i, code)
		}
		if out := string(e.expect(http.StatusOK, "GET", "/api/v1/account", tok, nil)); !strings.Contains(out, `"olga"`) {
			t.Fatalf("the account of the certificate session: %s", out)
		}
	}
	for _, pw := range []string{"", "correct horse battery"} {
		if _, code := e.login("olga", pw); code != http.StatusUnauthorized {
			t.Fatalf("password login %q to a certificate-only account: %d; want 401", pw, code)
		}
	}
	_, tok := login()
	out := string(e.expect(http.StatusBadRequest, "PUT", "/api/v1/password", tok, map[string]string{"old_password": "", "new_password": "a new long password"}))
	if !strings.Contains(out, "logs in by certificate and has no password") {
		t.Fatalf("changing the password of a certificate-only account: %s", out)
	}
	// An administrator can give it a password; then that logs in too.
	e.expect(http.StatusNoContent, "PUT", "/api/v1/users/olga/password", root, map[string]string{"password": "a new long password"})
	if _, code := e.login("olga", "a new long password"); code != http.StatusOK {
		t.Fatalf("password login after the administrator set one: %d", code)
	}
}
