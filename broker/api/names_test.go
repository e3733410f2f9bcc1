package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// hostileNames are names the API must refuse for every kind, with why.
var hostileNames = []struct{ name, why string }{
	{strings.Repeat("a", 1<<20), "1048576 bytes long"},
	{"a\x00b", `'\x00' at byte 1`},
	{"\n", `'\n' at byte 0`},
	{"x\n  remote_addrs = evil", `'\n' at byte 1`},
	{"..", `begins with '.'`},
	{"a/b", `'/' at byte 1`},
	{"../../x", `begins with '.'`},
	{"../../../../tmp/x", `begins with '.'`},
	// A lone surrogate: JSON decoding turns it, as any invalid UTF-8,
	// into U+FFFD, which is not ASCII.
	{"\xed\xa0\x80", "U+FFFD"},
	{"-x", `begins with '-'`},
	{"=HYPERLINK(1)", `'=' at byte 0`},
	{strings.Repeat("a", 65), "65 bytes long"},
	{"", "without a name"},
}

// TestHostileNamesAreRefused: every kind of named entry refuses every
// hostile name with 400 and a message that shows it quoted and short,
// and stores nothing: no new revision, no event.
func TestHostileNamesAreRefused(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "plant1"})
	e.expect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": "engineers"})
	kinds := []struct {
		path string
		body func(name string) map[string]any
	}{
		{"users", func(n string) map[string]any { return map[string]any{"name": n, "roles": []string{"vpn_user"}} }},
		{"devices", func(n string) map[string]any {
			return map[string]any{"name": n, "networks": []map[string]string{{"lan": "192.168.7.0/24"}}}
		}},
		{"groups", func(n string) map[string]any { return map[string]any{"name": n} }},
		{"roles", func(n string) map[string]any { return map[string]any{"name": n, "rights": []string{"view-events"}} }},
		{"relations", func(n string) map[string]any {
			return map[string]any{"name": n, "from": "engineers", "to": "plant1", "direction": "one-way"}
		}},
	}
	before := e.revision()
	events := e.eventCount()
	for _, k := range kinds {
		for _, c := range hostileNames {
			code, body := e.call("POST", "/api/v1/"+k.path, root, k.body(c.name))
			if code != http.StatusBadRequest || !strings.Contains(errorOf(t, body), c.why) || len(body) > 1000 {
				t.Errorf("POST /%s %.40q: %d %.300s; want 400 saying %q", k.path, c.name, code, body, c.why)
			}
			if c.name == "" || c.name == ".." || len(c.name) > 1000 {
				continue // no path for these: ".." is cleaned away
			}
			path := "/api/v1/" + k.path + "/" + url.PathEscape(c.name)
			code, body = e.call("PUT", path, root, k.body(c.name))
			if code != http.StatusBadRequest || !strings.Contains(errorOf(t, body), c.why) {
				t.Errorf("PUT %s: %d %.300s; want 400 saying %q", path, code, body, c.why)
			}
		}
	}
	if after := e.revision(); after != before {
		t.Fatalf("the configuration went from revision %d to %d", before, after)
	}
	if n := e.eventCount(); n != events {
		t.Fatalf("%d events recorded for refused requests", n-events)
	}

	// The first administrator is a user like the others.
	code, body := e.call("POST", "/api/v1/bootstrap", root, map[string]string{"name": "a/b", "password": testPassword})
	if code == http.StatusCreated {
		t.Fatalf("bootstrap named %q: %s", "a/b", body)
	}

	// Names of the rule's every kind of character still work.
	for _, name := range []string{"jane.doe@example.com", "plant-1", "gw_1", "X9", strings.Repeat("z", 64)} {
		e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": name, "roles": []string{"vpn_user"}})
		e.expect(http.StatusOK, "GET", "/api/v1/users/"+url.PathEscape(name), root, nil)
	}
}

// TestHostileCommonNamesAreRefused: a user's or device's certificate names
// a participant and follows the rule for names; any certificate refuses
// line breaks and overlong names. Nothing is signed for a refused request.
func TestHostileCommonNamesAreRefused(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	for _, c := range hostileNames {
		if c.name == "" {
			c.why = "empty"
		}
		for _, profile := range []string{"user", "device"} {
			code, body := e.call("POST", "/api/v1/certificates", root, map[string]any{"common_name": c.name, "profile": profile})
			if code != http.StatusBadRequest || !strings.Contains(errorOf(t, body), c.why) || len(body) > 1000 {
				t.Errorf("issue %s %.40q: %d %.300s; want 400 saying %q", profile, c.name, code, body, c.why)
			}
		}
	}
	for _, cn := range []string{"broker\nCN=evil", "a\x00b", strings.Repeat("a", 65), "a\u2028b", "a\u202eb"} {
		if code, body := e.call("POST", "/api/v1/certificates", root, map[string]any{"common_name": cn, "profile": "server"}); code != http.StatusBadRequest {
			t.Errorf("issue server %q: %d %.300s; want 400", cn, code, body)
		}
	}
	if n := len(e.ca.Records()); n != 0 {
		t.Fatalf("the CA signed %d certificates", n)
	}
	stored, err := e.store.Certificates(context.Background())
	if err != nil || len(stored) != 0 {
		t.Fatalf("stored %d certificates, %v", len(stored), err)
	}
	// A profile for a name that cannot be a participant: refused before
	// anything is issued.
	for _, name := range []string{"a b", "a..b", "x\ny", "../x"} {
		e.expect(http.StatusBadRequest, "POST", "/api/v1/participants/"+url.PathEscape(name)+"/profile", root, map[string]any{"format": "ovpn"})
	}
	// A good name of a participant still gets its certificate.
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "jane.doe@example.com"})
	e.expect(http.StatusCreated, "POST", "/api/v1/certificates", root, map[string]any{"common_name": "jane.doe@example.com", "profile": "user"})
	e.expect(http.StatusCreated, "POST", "/api/v1/certificates", root, map[string]any{"common_name": "remotegate broker", "profile": "server"})
}

func (e *env) revision() int64 {
	e.t.Helper()
	cfg, err := e.store.Config(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg.Revision
}

func (e *env) eventCount() int {
	e.t.Helper()
	events, err := e.store.Events(context.Background(), store.EventFilter{Limit: store.MaxEventLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(events)
}

// errorOf is the error message of an error response ("" if none).
func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var v struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Error
}

// TestOpenAPIStatesTheNameRule: the names openapi.json documents carry the
// rule of policy.ValidName, so that a client can check before it sends.
func TestOpenAPIStatesTheNameRule(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	type nameSchema struct {
		Pattern   string          `json:"pattern"`
		MinLength int             `json:"minLength"`
		MaxLength int             `json:"maxLength"`
		Items     json.RawMessage `json:"items"`
	}
	check := func(where string, raw json.RawMessage) {
		var s nameSchema
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if s.Items != nil {
			if err := json.Unmarshal(s.Items, &s); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
		if s.Pattern != policy.NamePattern || s.MinLength != 1 || s.MaxLength != policy.MaxNameLen {
			t.Errorf("%s: pattern %q, length %d to %d; want %q, 1 to %d", where, s.Pattern, s.MinLength, s.MaxLength, policy.NamePattern, policy.MaxNameLen)
		}
	}
	for schema, props := range map[string][]string{
		"User": {"name", "roles", "groups"}, "Role": {"name"}, "Device": {"name", "groups"},
		"Group": {"name", "subgroups"}, "Relation": {"name", "from", "to"}, "BootstrapRequest": {"name"},
	} {
		for _, p := range props {
			raw, ok := doc.Components.Schemas[schema].Properties[p]
			if !ok {
				t.Errorf("%s has no property %s", schema, p)
				continue
			}
			check(schema+"."+p, raw)
		}
	}
}

// TestLoginWithHostileNames: a login name outside the rule is no account;
// the failure is recorded under a short quoted form, not the megabyte or
// the line break that was sent.
func TestLoginWithHostileNames(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.LoginLimit = LoginLimit{Failures: 100, NameFailures: 100} })
	failures := 0
	for _, c := range hostileNames {
		if c.name == "" {
			continue
		}
		want := http.StatusUnauthorized
		if len(c.name) > maxPublicBody { // refused before it is read
			want = http.StatusRequestEntityTooLarge
		} else {
			failures++
		}
		if _, code := e.login(c.name, testPassword); code != want {
			t.Errorf("login as %.40q: %d, want %d", c.name, code, want)
		}
	}
	events, err := e.store.Events(context.Background(), store.EventFilter{Kind: "auth_failure"})
	if err != nil || len(events) != failures {
		t.Fatalf("%d auth_failure events, %v", len(events), err)
	}
	// No account has such a name: each failure is recorded as of an
	// unknown name, without the name.
	for _, ev := range events {
		if ev.Participant != "" || !strings.Contains(ev.Message, "unknown name") {
			t.Errorf("auth_failure recorded as %.100q: %q", ev.Participant, ev.Message)
		}
	}
	// Real names are recorded as they are, and still log in.
	if _, code := e.login("root", "wrong password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	last, _ := e.store.Events(context.Background(), store.EventFilter{Kind: "auth_failure", After: events[len(events)-1].ID})
	if len(last) != 1 || last[0].Participant != "root" {
		t.Fatalf("the failure of root recorded as %+v", last)
	}
	e.mustLogin("root")
}
