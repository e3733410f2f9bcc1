package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// filler is an endless body of one byte.
type filler byte

func (f filler) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f)
	}
	return len(p), nil
}

// tooLarge checks that a response is 413 with a JSON error naming the
// limit.
func tooLarge(t *testing.T, what string, code int, body []byte, limit string) {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); code != http.StatusRequestEntityTooLarge || err != nil ||
		!strings.Contains(e.Error, "larger than the limit of "+limit) {
		t.Errorf("%s: %d %q; want 413 with a JSON error naming the limit of %s", what, code, body, limit)
	}
}

// A body announced larger than the limit is answered 413 on every route,
// before authentication and before a byte of it is read; the routes open
// to anyone take less.
func TestBodyOverTheLimitIsRefusedOnEveryRoute(t *testing.T) {
	e := newEnv(t)
	for _, rt := range routes() {
		path := strings.NewReplacer("{name}", "root", "{serial}", "1", "{participant}", "root", "{number}", "1").Replace(rt.path)
		limit, text := int64(16<<20), "16 MiB"
		switch {
		case rt.streamsBody():
			// Bounded by the restore itself, after authentication; its
			// own tests (TestRestoreRefusesAnnouncedOversizeUpload).
			continue
		case rt.access == public:
			limit, text = 8<<10, "8 KiB"
		case rt.op == "addLicense":
			limit, text = 64<<10, "64 KiB"
		}
		req := httptest.NewRequest(rt.method, path, io.LimitReader(filler('a'), limit+1))
		req.ContentLength = limit + 1
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		tooLarge(t, rt.method+" "+path, w.Code, w.Body.Bytes(), text)
	}
}

// A body without a length (chunked) that grows past the limit while it is
// read is answered 413 too, not 400 or 500: JSON routes, the license
// upload (a restore streams its body and bounds it itself).
func TestStreamedBodyOverTheLimitIs413(t *testing.T) {
	l := newLicenseLab(t)
	e, root := l.env, l.root
	for _, c := range []struct {
		method, path, prefix string
		size                 int64
		limit                string
	}{
		{"POST", "/api/v1/login", `{"name":"root","password":"`, 8<<10 + 1, "8 KiB"},
		{"POST", "/api/v1/users", `{"name":"`, 16<<20 + 1, "16 MiB"},
		{"PUT", "/api/v1/devices/gw/networks", `[{"lan":"`, 16<<20 + 1, "16 MiB"},
		{"PUT", "/api/v1/password", `{"old_password":"`, 16<<20 + 1, "16 MiB"},
		{"POST", "/api/v1/certificates", `{"participant":"`, 16<<20 + 1, "16 MiB"},
		{"POST", "/api/v1/licenses", "", 64<<10 + 1, "64 KiB"},
	} {
		req := httptest.NewRequest(c.method, c.path, io.MultiReader(strings.NewReader(c.prefix), io.LimitReader(filler('a'), c.size)))
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+root)
		req.Header.Set("X-Backup-Passphrase", testPassword)
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		tooLarge(t, c.method+" "+c.path, w.Code, w.Body.Bytes(), c.limit)
	}
	// And over the network, as a client sees it.
	code, body := e.call("POST", "/api/v1/login", "", `{"name":"root","password":"`+strings.Repeat("a", 8<<10)+`"}`)
	tooLarge(t, "POST /api/v1/login over HTTP", code, body, "8 KiB")
}
