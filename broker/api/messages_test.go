package api

import (
	"encoding/json"
	"net/http"
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
