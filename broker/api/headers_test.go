package api

import (
	"net/http"
	"testing"
)

// Every answer of the API, errors included, tells browsers to use HTTPS
// only (HSTS), not to cache it and not to guess content types.
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	for _, c := range []struct {
		method, path, token string
		status              int
	}{
		{"GET", "/api/v1/openapi.json", "", http.StatusOK},
		{"GET", "/api/v1/users", root, http.StatusOK},
		{"GET", "/api/v1/users", "", http.StatusUnauthorized},
		{"GET", "/api/v1/users/nobody-here", root, http.StatusNotFound},
		{"POST", "/api/v1/login", "", http.StatusBadRequest},
		{"GET", "/api/v2/anything", "", http.StatusNotFound},
	} {
		req, err := http.NewRequest(c.method, e.http.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := e.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d; want %d", c.method, c.path, resp.StatusCode, c.status)
		}
		for name, want := range map[string]string{
			"Strict-Transport-Security": "max-age=31536000",
			"Cache-Control":             "no-store",
			"X-Content-Type-Options":    "nosniff",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("%s %s: %s: %q; want %q", c.method, c.path, name, got, want)
			}
		}
	}
}
