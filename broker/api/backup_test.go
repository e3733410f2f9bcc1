package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/store"
)

// restoreCall posts archive to the restore endpoint (path may carry a
// query) and returns the status and the body.
func (e *env) restoreCall(path, token string, archive io.Reader, passphrase string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.http.URL+path, archive)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Backup-Passphrase", passphrase)
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// A backup the broker made restores through the API whatever its size:
// the 16 MiB cap of other request bodies does not apply to it, and other
// routes keep that cap.
func TestRestoreOfABackupOver16MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("moves megabytes; the unit run (without -short) has it")
	}
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "keep"})
	// 17 events of 1 MiB of random text: the archive is well above 16 MiB.
	blob := make([]byte, 512<<10)
	for i := range 17 {
		if _, err := rand.Read(blob); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Append(e.t.Context(), store.Event{Kind: "bulk", Message: fmt.Sprint(i), Attrs: map[string]string{"data": hex.EncodeToString(blob)}}); err != nil {
			t.Fatal(err)
		}
	}
	archive := e.expect(http.StatusOK, "POST", "/api/v1/backup", root, map[string]any{"passphrase": "backup passphrase"})
	if len(archive) <= 17<<20 {
		t.Fatalf("archive of %d bytes, want more than 17 MiB", len(archive))
	}
	e.expect(http.StatusNoContent, "DELETE", "/api/v1/groups/keep", root, nil)

	code, out := e.restoreCall("/api/v1/restore", root, bytes.NewReader(archive), "backup passphrase")
	if code != http.StatusOK {
		t.Fatalf("restore of %d MiB: %d %s", len(archive)>>20, code, out)
	}
	var resp map[string]any
	if err := json.Unmarshal(out, &resp); err != nil || resp["restart_required"] != false {
		t.Fatalf("restore response %s", out)
	}
	root = e.mustLogin("root")
	e.expect(http.StatusOK, "GET", "/api/v1/groups/keep", root, nil)
	events, err := e.store.Events(t.Context(), store.EventFilter{Kind: "bulk"})
	if err != nil || len(events) != 17 {
		t.Fatalf("%d bulk events after the restore: %v", len(events), err)
	}

	// Other routes still refuse a body above 16 MiB.
	big := `{"name": "` + strings.Repeat("x", 17<<20) + `"}`
	code, out = e.call("POST", "/api/v1/groups", root, big)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(out), "16 MiB") {
		t.Fatalf("a 17 MiB group: %d %.200s", code, out)
	}
}

// signalReader calls first at its first Read.
type signalReader struct {
	io.ReadCloser
	first func()
}

func (r *signalReader) Read(p []byte) (int, error) {
	r.first()
	return r.ReadCloser.Read(p)
}

// A restore reads its upload without holding the lock of configuration
// changes and authorization: while an upload is under way, the API keeps
// answering.
func TestSlowRestoreUploadHoldsNothingUp(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	archive := e.expect(http.StatusOK, "POST", "/api/v1/backup", root, map[string]any{"passphrase": "backup passphrase"})
	// The server's handler reading the upload is the condition to wait for.
	reading := make(chan struct{})
	var once sync.Once
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/restore" {
			r.Body = &signalReader{r.Body, func() { once.Do(func() { close(reading) }) }}
		}
		e.srv.ServeHTTP(w, r)
	}))
	defer hs.Close()
	pr, pw := io.Pipe()
	// Runs before hs.Close, which waits for the restore to end.
	defer pw.CloseWithError(io.ErrUnexpectedEOF)
	type result struct {
		code int
		out  []byte
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", hs.URL+"/api/v1/restore", pr)
		req.Header.Set("Authorization", "Bearer "+root)
		req.Header.Set("X-Backup-Passphrase", "backup passphrase")
		resp, err := hs.Client().Do(req)
		if err != nil {
			done <- result{0, []byte(err.Error())}
			return
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, out}
	}()
	half := len(archive) / 2
	if _, err := pw.Write(archive[:half]); err != nil {
		t.Fatal(err)
	}
	<-reading
	// A bound, not a pause: the answer comes at once unless a lock is held.
	client := hs.Client()
	client.Timeout = 10 * time.Second
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/api/v1/users", ""},
		{"POST", "/api/v1/groups", `{"name": "during"}`},
	} {
		req, _ := http.NewRequest(rq.method, hs.URL+rq.path, strings.NewReader(rq.body))
		req.Header.Set("Authorization", "Bearer "+root)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("the API does not answer during a restore upload: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s during a restore upload: %d", rq.method, rq.path, resp.StatusCode)
		}
	}
	if _, err := pw.Write(archive[half:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-done; r.code != http.StatusOK {
		t.Fatalf("restore: %d %s", r.code, r.out)
	}
}

// A restore ends every API session: the caller's, the others', and a
// session logged out after the backup does not come back with it.
func TestRestoreEndsEverySession(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	loggedOut := e.mustLogin("root")
	other := e.mustLogin("nobody")
	archive := e.expect(http.StatusOK, "POST", "/api/v1/backup", root, map[string]any{"passphrase": "backup passphrase"})
	e.expect(http.StatusNoContent, "POST", "/api/v1/logout", loggedOut, nil)
	e.expect(http.StatusUnauthorized, "GET", "/api/v1/users", loggedOut, nil)

	code, out := e.restoreCall("/api/v1/restore", root, bytes.NewReader(archive), "backup passphrase")
	if code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, out)
	}
	var resp restoreResponse
	if err := json.Unmarshal(out, &resp); err != nil || !resp.SessionsEnded || !strings.Contains(resp.Message, "log in again") {
		t.Fatalf("restore response %s", out)
	}
	for name, tok := range map[string]string{"the caller's": root, "logged out": loggedOut} {
		if code, _ := e.call("GET", "/api/v1/users", tok, nil); code != http.StatusUnauthorized {
			t.Errorf("%s token after the restore: %d, want 401", name, code)
		}
	}
	if code, _ := e.call("PUT", "/api/v1/password", other, map[string]string{"old": testPassword, "new": "another long password"}); code != http.StatusUnauthorized {
		t.Errorf("another account's token after the restore: %d, want 401", code)
	}
	if n := e.countRows("tokens"); n != 0 {
		t.Errorf("%d tokens stored after the restore", n)
	}
	e.mustLogin("root")
}

// A restore keeps this broker's installation identity (what licenses are
// bound to) unless asked to bring the backup's, and the event log says
// which happened.
func TestRestoreKeepsTheInstallationUnlessAsked(t *testing.T) {
	ctx := t.Context()
	theirs := newEnv(t)
	for name, v := range map[string]string{SecretInstallationID: "their-id", SecretInstallationKey: "their-key", "ca/key": "their CA"} {
		if err := theirs.store.PutSecret(ctx, name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	archive := theirs.expect(http.StatusOK, "POST", "/api/v1/backup", theirs.mustLogin("root"), map[string]any{"passphrase": "backup passphrase"})

	e := newEnv(t)
	for name, v := range map[string]string{SecretInstallationID: "my-id", SecretInstallationKey: "my-key", "ca/key": "my CA"} {
		if err := e.store.PutSecret(ctx, name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	secret := func(name string) string {
		t.Helper()
		v, err := e.store.Secret(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	lastRestoreEvent := func() store.Event {
		t.Helper()
		evs, err := e.store.Events(ctx, store.EventFilter{Kind: "config_change"})
		if err != nil || len(evs) == 0 {
			t.Fatalf("events %+v, %v", evs, err)
		}
		return evs[len(evs)-1]
	}
	restore := func(query string) restoreResponse {
		t.Helper()
		code, out := e.restoreCall("/api/v1/restore"+query, e.mustLogin("root"), bytes.NewReader(archive), "backup passphrase")
		if code != http.StatusOK {
			t.Fatalf("restore%s: %d %s", query, code, out)
		}
		var r restoreResponse
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}

	for _, query := range []string{"", "?installation=keep"} {
		r := restore(query)
		if r.Installation != "kept" || r.RestartRequired {
			t.Fatalf("restore%s: %+v, want the installation kept, no restart", query, r)
		}
		if id, key, ca := secret(SecretInstallationID), secret(SecretInstallationKey), secret("ca/key"); id != "my-id" || key != "my-key" || ca != "their CA" {
			t.Fatalf("restore%s: installation %q, key %q, CA %q; want my-id, my-key, their CA", query, id, key, ca)
		}
		if ev := lastRestoreEvent(); ev.Attrs["installation"] != "kept" || !strings.Contains(ev.Message, "installation identity of this broker was kept") {
			t.Fatalf("restore%s: event %+v", query, ev)
		}
	}

	if code, out := e.restoreCall("/api/v1/restore?installation=yes", e.mustLogin("root"), bytes.NewReader(archive), "backup passphrase"); code != http.StatusBadRequest {
		t.Fatalf("installation=yes: %d %s", code, out)
	}

	r := restore("?installation=restore")
	if r.Installation != "restored" || !r.RestartRequired {
		t.Fatalf("restore with the installation: %+v, want it restored, with a restart", r)
	}
	if id, key := secret(SecretInstallationID), secret(SecretInstallationKey); id != "their-id" || key != "their-key" {
		t.Fatalf("installation %q, key %q after restoring it; want the backup's", id, key)
	}
	if ev := lastRestoreEvent(); ev.Attrs["installation"] != "restored" || ev.Attrs["restart_required"] != "true" ||
		!strings.Contains(ev.Message, "installation identity of the backup") {
		t.Fatalf("event %+v", ev)
	}
}

// An upload announced above the backup size limit is refused before it is
// read.
func TestRestoreRefusesAnnouncedOversizeUpload(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	// The body is never sent: the answer comes from the announced length.
	// The timeout is a bound, not a pause: the answer comes at once, and
	// without it the transport would wait for the body for ever.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	req, _ := http.NewRequestWithContext(ctx, "POST", e.http.URL+"/api/v1/restore", pr)
	req.ContentLength = store.MaxBackupSize + 1
	req.Header.Set("Authorization", "Bearer "+root)
	req.Header.Set("X-Backup-Passphrase", "backup passphrase")
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(out), "the limit is 1024 MiB") {
		t.Fatalf("announced 1 GiB + 1: %d %s", resp.StatusCode, out)
	}
}
