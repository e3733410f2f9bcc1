package api

import (
	"net/http"
	"testing"
	"time"
)

// The API, its store, its broker and its CA decide by one clock,
// Config.Now: logins, token expiry, the login limit, license expiry and
// grace hold the same two years before and after the real time. A piece
// that read the real clock instead (as the store's token check once did)
// fails here.
func TestScenariosOnASkewedClock(t *testing.T) {
	for _, skew := range clockSkews {
		t.Run(skew.name, func(t *testing.T) {
			t.Run("login-and-token-expiry", func(t *testing.T) { testLoginAndTokenExpiry(t, skew.d) })
			t.Run("login-limit", func(t *testing.T) { testWrongPasswordsAreRateLimited(t, skew.d) })
			t.Run("fifth-participant", func(t *testing.T) { testFifthParticipantNeedsALicense(t, skew.d) })
			t.Run("license-expiry-and-grace", func(t *testing.T) { testExpiredLicenseStopsCountingAfterGrace(t, skew.d) })
		})
	}
}

func TestTokenExpires(t *testing.T) { testLoginAndTokenExpiry(t, 0) }

// testLoginAndTokenExpiry: a token works until its lifetime is over on the
// API's clock, and not a second after; a new login gives a working one.
func testLoginAndTokenExpiry(t *testing.T, skew time.Duration) {
	e := newEnvAt(t, skew, func(c *Config) { c.TokenLifetime = time.Hour })
	root := e.mustLogin("root")
	e.expect(http.StatusOK, "GET", "/api/v1/users", root, nil)
	e.clock.add(time.Hour - time.Second)
	e.expect(http.StatusOK, "GET", "/api/v1/users", root, nil)
	e.clock.add(time.Second)
	e.expect(http.StatusUnauthorized, "GET", "/api/v1/users", root, nil)
	again := e.mustLogin("root")
	e.expect(http.StatusOK, "GET", "/api/v1/users", again, nil)
	e.expect(http.StatusUnauthorized, "GET", "/api/v1/users", root, nil)
}
