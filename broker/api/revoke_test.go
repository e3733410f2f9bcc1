package api

import (
	"encoding/json"
	"net/http"
	"testing"
)

// Revoking a user's certificate ends that user's management sessions: a
// session opened with a lost smartcard must not outlive its revocation.
// Other users' sessions, and revoking a device's certificate, leave them.
func TestRevokingAUsersCertificateEndsItsSessions(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "eve", "roles": []string{"vpn_user"}, "password": testPassword})
	e.expect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{"name": "plant-1"})
	issue := func(cn, profile string) string {
		t.Helper()
		var out issued
		if err := json.Unmarshal(e.expect(http.StatusCreated, "POST", "/api/v1/certificates", root, map[string]string{"common_name": cn, "profile": profile}), &out); err != nil {
			t.Fatal(err)
		}
		return out.Certificate.Serial
	}
	eveCert, deviceCert := issue("eve", "user"), issue("plant-1", "device")
	eve := e.mustLogin("eve")

	e.expect(http.StatusOK, "POST", "/api/v1/certificates/"+deviceCert+"/revoke", root, map[string]int{"reason": 1})
	e.expect(http.StatusOK, "GET", "/api/v1/account", eve, nil)

	e.expect(http.StatusOK, "POST", "/api/v1/certificates/"+eveCert+"/revoke", root, map[string]int{"reason": 1})
	e.expect(http.StatusUnauthorized, "GET", "/api/v1/account", eve, nil)
	e.expect(http.StatusOK, "GET", "/api/v1/account", root, nil)
	// eve logs in again with its password.
	e.expect(http.StatusOK, "GET", "/api/v1/account", e.mustLogin("eve"), nil)
}
