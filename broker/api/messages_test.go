package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRefusalsSayTheReason: a refused change tells the client why, in
// words, without the Go package's sentinel text in front ("model:
// invalid: …"): the console shows these messages next to the field.
func TestRefusalsSayTheReason(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	for _, c := range []struct {
		status       int
		method, path string
		body         any
		want         string
	}{
		{http.StatusBadRequest, "POST", "/api/v1/users", map[string]any{"name": "pat", "password": "short"}, "at least 12 characters"},
		{http.StatusNotFound, "DELETE", "/api/v1/devices/nothing", nil, "nothing"},
		{http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "g1"}, ""},
		{http.StatusConflict, "POST", "/api/v1/groups", map[string]any{"name": "g1"}, "g1"},
	} {
		code, body := e.call(c.method, c.path, root, c.body)
		if code != c.status {
			t.Fatalf("%s %s: %d %s; want %d", c.method, c.path, code, body, c.status)
		}
		if c.want == "" {
			continue
		}
		var msg struct{ Error string }
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("%s %s: %v in %s", c.method, c.path, err, body)
		}
		if !strings.Contains(msg.Error, c.want) || strings.HasPrefix(msg.Error, "model:") || strings.Contains(msg.Error, "invalid: ") && !strings.Contains(c.want, "invalid") {
			t.Errorf("%s %s: %q; want the reason (%q) without the sentinel", c.method, c.path, msg.Error, c.want)
		}
	}
}

// TestInProcessRequestsWithoutABody: a product that serves the API by
// calling ServeHTTP with a request made by http.NewRequest and no body
// (the console does) gets answers, not a panic, from every route that may
// read one.
func TestInProcessRequestsWithoutABody(t *testing.T) {
	e := newEnv(t)
	e.expect(http.StatusCreated, "POST", "/api/v1/devices", e.mustLogin("root"), map[string]any{"name": "gw1"})
	for _, rt := range routes() {
		path := strings.NewReplacer("{name}", "gw1", "{serial}", "01", "{participant}", "gw1", "{number}", "RG-1").Replace(rt.path)
		req, err := http.NewRequest(rt.method, "https://broker.example"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A fresh session each time: an earlier route (logout) may
		// have ended the last one.
		req.Header.Set("Authorization", "Bearer "+e.mustLogin("root"))
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%s %s with no body: panic %v", rt.method, path, p)
				}
			}()
			e.srv.ServeHTTP(w, req)
		}()
		if w.Code == 0 || w.Code >= 500 || w.Code == http.StatusUnauthorized && rt.access != public {
			t.Errorf("%s %s with no body: %d %s", rt.method, path, w.Code, w.Body)
		}
	}
}
