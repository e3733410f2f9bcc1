package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// everyRight lists the rights one by one.
func everyRight() []policy.Rights {
	var all []policy.Rights
	for r := policy.Rights(1); r&policy.AllRights != 0; r <<= 1 {
		all = append(all, r)
	}
	return all
}

// rightNames is the JSON form of a set of rights.
func rightNames(r policy.Rights) []string {
	var names []string
	b, _ := json.Marshal(r)
	_ = json.Unmarshal(b, &names)
	return names
}

// seed adds roles and users to the stored model in one transaction, loads
// it into the server, and gives the users the test password.
func (e *env) seed(roles []policy.Role, users []policy.User) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.store.Update(ctx, func(c *store.Config) error {
		c.Model.Roles = append(c.Model.Roles, roles...)
		c.Model.Users = append(c.Model.Users, users...)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.srv.Load(ctx); err != nil {
		e.t.Fatal(err)
	}
	for _, u := range users {
		if err := e.srv.setAccountPassword(ctx, u.Name, testPassword, false); err != nil {
			e.t.Fatal(err)
		}
	}
}

// manyLoginFailures lifts the login limit for tests that expect logins
// to fail many times.
func manyLoginFailures(c *Config) { c.LoginLimit = LoginLimit{Failures: 1 << 20} }

// rights returns what the user may do in the model in force.
func (e *env) rights(name string) policy.Rights {
	return e.srv.m.Snapshot().Rights(name)
}

// expectRefused fails unless the call is answered 403 naming the right.
func (e *env) expectRefused(right policy.Rights, method, path, token string, body any) {
	e.t.Helper()
	code, out := e.call(method, path, token, body)
	if code != http.StatusForbidden || !strings.Contains(string(out), right.String()) {
		e.t.Fatalf("%s %s: %d %s; want 403 naming %s", method, path, code, out, right)
	}
}

// A holder of manage-users grants, through roles, no right it does not
// hold itself, and acts on no user that holds one: for each right R, a
// caller holding manage-users and R tries every path to every right X, and
// succeeds exactly for the X it holds.
func TestUserManagerGrantsOnlyItsOwnRights(t *testing.T) {
	for _, r := range everyRight() {
		t.Run(r.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, manyLoginFailures)
			held := policy.RightManageUsers | r
			seedRoles := []policy.Role{{Name: "op", Rights: held}}
			seedUsers := []policy.User{{Name: "op", Roles: []string{"op"}}}
			for _, x := range everyRight() {
				rx := "r-" + x.String()
				seedRoles = append(seedRoles, policy.Role{Name: rx, Rights: x})
				for _, target := range []string{"dis", "del", "pw", "dem"} {
					seedUsers = append(seedUsers, policy.User{Name: target + "-" + x.String(), Roles: []string{rx}})
				}
			}
			e.seed(seedRoles, seedUsers)
			op := e.mustLogin("op")

			for _, x := range everyRight() {
				name, rx := x.String(), "r-"+x.String()
				mayGrant := held&x != 0
				try := func(ok int, method, path string, body any) {
					t.Helper()
					if mayGrant {
						e.expect(ok, method, path, op, body)
					} else {
						e.expectRefused(x, method, path, op, body)
					}
				}
				// A new role with X; X added to its own role; its own
				// user given a role with X; a new user and another user
				// given a role with X.
				try(http.StatusCreated, "POST", "/api/v1/roles", map[string]any{"name": "new-" + name, "rights": []string{name}})
				try(http.StatusOK, "PUT", "/api/v1/roles/op", map[string]any{"name": "op", "rights": rightNames(held | x)})
				try(http.StatusOK, "PUT", "/api/v1/users/op", map[string]any{"name": "op", "roles": []string{"op", rx}})
				try(http.StatusCreated, "POST", "/api/v1/users", map[string]any{"name": "new-" + name, "roles": []string{rx}, "password": "a long new password"})
				try(http.StatusOK, "PUT", "/api/v1/users/nobody", map[string]any{"name": "nobody", "roles": []string{rx}})
				// A user holding X disabled, deleted, given a password,
				// demoted.
				try(http.StatusOK, "PUT", "/api/v1/users/dis-"+name, map[string]any{"name": "dis-" + name, "roles": []string{rx}, "disabled": true})
				try(http.StatusNoContent, "DELETE", "/api/v1/users/del-"+name, nil)
				try(http.StatusNoContent, "PUT", "/api/v1/users/pw-"+name+"/password", map[string]any{"password": "the caller's password"})
				try(http.StatusOK, "PUT", "/api/v1/users/dem-"+name, map[string]any{"name": "dem-" + name})

				// What was refused did not happen.
				if _, code := e.login("pw-"+name, "the caller's password"); (code == http.StatusOK) != mayGrant {
					t.Fatalf("login with the password set for pw-%s: %d", name, code)
				}
				if _, code := e.login("new-"+name, "a long new password"); (code == http.StatusOK) != mayGrant {
					t.Fatalf("login of new-%s: %d", name, code)
				}
				if _, code := e.login("dis-"+name, testPassword); (code == http.StatusOK) == mayGrant {
					t.Fatalf("login of dis-%s: %d", name, code)
				}
				cfg, err := e.store.Config(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if got := users.find(cfg, "del-"+name) >= 0; got == mayGrant {
					t.Fatalf("del-%s exists: %v", name, got)
				}
				if got := cfg.Model.Users[users.find(cfg, "dem-"+name)].Roles; (len(got) == 0) != mayGrant {
					t.Fatalf("dem-%s has the roles %v", name, got)
				}
				if got := roles.find(cfg, "new-"+name) >= 0; got != mayGrant {
					t.Fatalf("role new-%s exists: %v", name, got)
				}
				if got := cfg.Model.Roles[roles.find(cfg, "op")].Rights; got != held {
					t.Fatalf("role op has %s, want %s", got, held)
				}
			}

			// No administrator is made, none is touched, and the
			// predefined roles stay as they are.
			missing := policy.AllRights &^ held
			e.expectRefused(missing, "POST", "/api/v1/users", op, map[string]any{"name": "boss", "roles": []string{policy.RoleAdmin}})
			e.expectRefused(missing, "PUT", "/api/v1/users/op", op, map[string]any{"name": "op", "roles": []string{"op", policy.RoleAdmin}})
			e.expectRefused(missing, "PUT", "/api/v1/users/root", op, map[string]any{"name": "root", "roles": []string{policy.RoleAdmin}, "disabled": true})
			e.expectRefused(missing, "DELETE", "/api/v1/users/root", op, nil)
			e.expectRefused(missing, "PUT", "/api/v1/users/root/password", op, map[string]any{"password": "the caller's password"})
			e.expect(http.StatusNotFound, "PUT", "/api/v1/roles/admin", op, map[string]any{"name": "admin", "rights": rightNames(held)})
			e.expect(http.StatusNotFound, "DELETE", "/api/v1/roles/vpn_user", op, nil)
			e.expect(http.StatusBadRequest, "POST", "/api/v1/roles", op, map[string]any{"name": "vpn_user", "rights": rightNames(held)})
			if got := e.rights("op"); got != held {
				t.Fatalf("op ends with %s, want %s", got, held)
			}
			e.mustLogin("root")
		})
	}
}

// An administrator may do all of it; so the rule refuses only what lies
// beyond the caller.
func TestAdministratorGrantsEveryRight(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/roles", root, map[string]any{"name": "all-but", "rights": rightNames(policy.AllRights &^ policy.RightConnectVPN)})
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "boss", "roles": []string{policy.RoleAdmin}, "password": "boss's long password"})
	e.expect(http.StatusOK, "PUT", "/api/v1/users/nobody", root, map[string]any{"name": "nobody", "roles": []string{"all-but"}})
	e.expect(http.StatusNoContent, "PUT", "/api/v1/users/boss/password", root, map[string]any{"password": "another long password"})
	e.expect(http.StatusOK, "PUT", "/api/v1/users/boss", root, map[string]any{"name": "boss", "roles": []string{policy.RoleAdmin}, "disabled": true})
	e.expect(http.StatusNoContent, "DELETE", "/api/v1/users/boss", root, nil)
}

// A holder of manage-certificates gets no certificate in the name of a
// user holding a right it lacks: for each right R, a caller holding
// manage-certificates and R issues, renews, exports and revokes
// certificates of users holding each right X, and succeeds exactly for the
// X it holds. Devices hold no rights; a client certificate for a name that
// is no participant is refused.
func TestCertificateManagerCertifiesOnlyWithinItsRights(t *testing.T) {
	for _, r := range everyRight() {
		t.Run(r.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			held := policy.RightManageCertificates | r
			seedRoles := []policy.Role{{Name: "certop", Rights: held}}
			seedUsers := []policy.User{{Name: "certop", Roles: []string{"certop"}}}
			for _, x := range everyRight() {
				rx := "r-" + x.String()
				seedRoles = append(seedRoles, policy.Role{Name: rx, Rights: x})
				seedUsers = append(seedUsers, policy.User{Name: "holder-" + x.String(), Roles: []string{rx}})
			}
			e.seed(seedRoles, seedUsers)
			root := e.mustLogin("root")
			op := e.mustLogin("certop")
			e.expect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{"name": "gw"})

			for _, x := range everyRight() {
				holder := "holder-" + x.String()
				mayCertify := held&x != 0
				try := func(ok int, method, path string, body any) {
					t.Helper()
					if mayCertify {
						e.expect(ok, method, path, op, body)
					} else {
						e.expectRefused(x, method, path, op, body)
					}
				}
				before := len(e.ca.Records())
				try(http.StatusCreated, "POST", "/api/v1/certificates", map[string]any{"common_name": holder, "profile": "user"})
				try(http.StatusCreated, "POST", "/api/v1/certificates", map[string]any{"common_name": holder, "profile": "device"})
				try(http.StatusOK, "POST", "/api/v1/participants/"+holder+"/profile", map[string]any{"format": "ovpn"})
				try(http.StatusOK, "POST", "/api/v1/participants/"+holder+"/profile", map[string]any{"format": "pkcs12", "password": "secret"})
				var got issued
				if err := json.Unmarshal(e.expect(http.StatusCreated, "POST", "/api/v1/certificates", root, map[string]any{"common_name": holder, "profile": "user"}), &got); err != nil {
					t.Fatal(err)
				}
				try(http.StatusCreated, "POST", "/api/v1/certificates/"+got.Certificate.Serial+"/renew", map[string]any{})
				try(http.StatusOK, "POST", "/api/v1/certificates/"+got.Certificate.Serial+"/revoke", map[string]any{"reason": 1})
				want := before + 1 // root's
				if mayCertify {
					want += 5
				}
				if n := len(e.ca.Records()); n != want {
					t.Fatalf("the CA holds %d certificates after the %s round, want %d", n, x, want)
				}
				serial, _ := parseSerial(got.Certificate.Serial)
				if rec, _ := e.ca.Lookup(serial); rec.RevokedAt.IsZero() == mayCertify {
					t.Fatalf("%s's certificate revoked at %v", holder, rec.RevokedAt)
				}
			}

			// Devices hold no rights; a name that is no participant, or
			// an administrator's, gets no certificate.
			e.expect(http.StatusCreated, "POST", "/api/v1/certificates", op, map[string]any{"common_name": "gw", "profile": "device"})
			e.expect(http.StatusOK, "POST", "/api/v1/participants/gw/profile", op, map[string]any{"format": "ovpn"})
			code, body := e.call("POST", "/api/v1/certificates", op, map[string]any{"common_name": "future-admin", "profile": "user"})
			if code != http.StatusBadRequest || !strings.Contains(string(body), "names no user or device") {
				t.Fatalf("a certificate for no participant: %d %s", code, body)
			}
			missing := policy.AllRights &^ held
			e.expectRefused(missing, "POST", "/api/v1/certificates", op, map[string]any{"common_name": "root", "profile": "user"})
			e.expectRefused(missing, "POST", "/api/v1/certificates", op, map[string]any{"common_name": "root", "profile": "server"})
			e.expectRefused(missing, "POST", "/api/v1/participants/root/profile", op, map[string]any{"format": "pkcs12", "password": "secret"})
			for _, rec := range e.ca.Records() {
				if cn := rec.Certificate.Subject.CommonName; cn == "root" || cn == "future-admin" {
					t.Fatalf("the CA issued a certificate for %q", cn)
				}
			}
		})
	}
}

// The installation keeps an administrator and a user manager: the last
// enabled holder of the admin role, or of manage-users, cannot be demoted,
// disabled or deleted, by itself or by anyone.
func TestLastAdministratorStays(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	lastAdmin := func(method, path string, body any) {
		t.Helper()
		code, out := e.call(method, path, root, body)
		if code != http.StatusConflict || !strings.Contains(string(out), "no enabled user with the role admin") {
			t.Fatalf("%s %s: %d %s; want 409", method, path, code, out)
		}
	}
	lastAdmin("PUT", "/api/v1/users/root", map[string]any{"name": "root"})
	lastAdmin("PUT", "/api/v1/users/root", map[string]any{"name": "root", "roles": []string{policy.RoleAdmin}, "disabled": true})
	lastAdmin("DELETE", "/api/v1/users/root", nil)
	e.expect(http.StatusOK, "GET", "/api/v1/users", root, nil)

	// With a second administrator, either may go, but not both.
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "alice", "roles": []string{policy.RoleAdmin}, "password": "alice's long password"})
	alice := e.mustLoginWith("alice", "alice's long password")
	e.expect(http.StatusOK, "PUT", "/api/v1/users/root", alice, map[string]any{"name": "root", "roles": []string{policy.RoleVPNUser}})
	code, out := e.call("DELETE", "/api/v1/users/alice", alice, nil)
	if code != http.StatusConflict || !strings.Contains(string(out), "no enabled user with the role admin") {
		t.Fatalf("the last administrator deleted itself: %d %s", code, out)
	}

	// manage-users too, where no one holds the admin role.
	e = newEnv(t)
	if _, err := e.store.Update(context.Background(), func(c *store.Config) error {
		c.Model.Roles = []policy.Role{{Name: "um", Rights: policy.RightManageUsers | policy.RightViewEvents}}
		c.Model.Users[0].Roles = []string{"um"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	root = e.mustLogin("root")
	lastUserManager := func(method, path string, body any) {
		t.Helper()
		code, out := e.call(method, path, root, body)
		if code != http.StatusConflict || !strings.Contains(string(out), "no enabled user with the right manage-users") {
			t.Fatalf("%s %s: %d %s; want 409", method, path, code, out)
		}
	}
	lastUserManager("PUT", "/api/v1/roles/um", map[string]any{"name": "um", "rights": []string{"view-events"}})
	lastUserManager("PUT", "/api/v1/users/root", map[string]any{"name": "root", "roles": []string{"um"}, "disabled": true})
	lastUserManager("DELETE", "/api/v1/users/root", nil)
	e.expect(http.StatusOK, "PUT", "/api/v1/users/nobody", root, map[string]any{"name": "nobody", "roles": []string{"um"}})
	e.expect(http.StatusNoContent, "DELETE", "/api/v1/users/root", root, nil)
}

// Two administrators stepping down at once: the check is in the
// transaction of the change, so exactly one goes.
func TestConcurrentDemotionsKeepAnAdministrator(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "alice", "roles": []string{policy.RoleAdmin}, "password": "alice's long password"})
	alice := e.mustLoginWith("alice", "alice's long password")
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, req := range []struct{ token, name string }{{root, "root"}, {alice, "alice"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = e.call("PUT", "/api/v1/users/"+req.name, req.token, map[string]any{"name": req.name, "roles": []string{policy.RoleVPNUser}})
		}()
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[0] != http.StatusOK || codes[1] != http.StatusConflict {
		t.Fatalf("concurrent demotions answered %v; want one 200 and one 409", codes)
	}
	cfg, err := e.store.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	admins := 0
	for _, u := range cfg.Model.Users {
		if slices.Contains(u.Roles, policy.RoleAdmin) && !u.Disabled {
			admins++
		}
	}
	if admins != 1 {
		t.Fatalf("%d administrators left, want 1", admins)
	}
}

// A change to a role reaches its holders: a user manager may not change a
// role it holds every right of if a holder of the role holds more than it
// (the change would alter the rights of an account above it).
func TestRoleChangeReachesItsHolders(t *testing.T) {
	e := newEnv(t)
	e.seed([]policy.Role{
		{Name: "op", Rights: policy.RightManageUsers | policy.RightViewEvents},
		{Name: "viewer", Rights: policy.RightViewEvents},
		{Name: "backup", Rights: policy.RightBackup},
	}, []policy.User{
		{Name: "op", Roles: []string{"op"}},
		{Name: "plain", Roles: []string{"viewer"}},
	})
	op := e.mustLogin("op")
	root := e.mustLogin("root")
	// Only plain holds viewer: op may empty it, and fill it again.
	e.expect(http.StatusOK, "PUT", "/api/v1/roles/viewer", op, map[string]any{"name": "viewer", "rights": []string{}})
	e.expect(http.StatusOK, "PUT", "/api/v1/roles/viewer", op, map[string]any{"name": "viewer", "rights": []string{"view-events"}})
	// Once a user holding backup holds viewer too, op may not.
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "mixed", "roles": []string{"viewer", "backup"}})
	e.expectRefused(policy.RightBackup, "PUT", "/api/v1/roles/viewer", op, map[string]any{"name": "viewer", "rights": []string{}})
	if got := e.rights("mixed"); got != policy.RightViewEvents|policy.RightBackup {
		t.Fatalf("mixed holds %s", got)
	}
}
