package console

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/broker/store"
)

var enrollTokenRE = regexp.MustCompile(`id="enr-token" type="text" readonly value="([^"]+)"`)

// TestDeviceEnrollmentToken: the device page makes a one-time EST token
// through the API and shows it once with the URL the device posts to; the
// event log records it without the token; a vpn_user cannot make one.
func TestDeviceEnrollmentToken(t *testing.T) {
	e := newReadyEnv(t)
	root := e.apiLogin(adminName, testPassword)
	e.apiExpect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{"name": "plant-1"})
	b := e.browser()
	b.login(adminName, testPassword)
	before := b.expectPage("/devices/plant-1", http.StatusOK, "Create an enrollment token")
	if enrollTokenRE.MatchString(before.Body) {
		t.Fatal("the device page shows a token before one was asked for")
	}
	r := b.submit("/devices/plant-1", "/devices/plant-1/enrollment", url.Values{})
	m := enrollTokenRE.FindStringSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil || len(m[1]) < 40 || !strings.Contains(r.Body, "/.well-known/est/simpleenroll") {
		t.Fatalf("POST enrollment: %d, token %q\n%s", r.Status, m, r.Body)
	}
	if again := b.get("/devices/plant-1"); strings.Contains(again.Body, m[1]) {
		t.Fatal("the token is shown a second time")
	}
	events, err := e.store.Events(context.Background(), store.EventFilter{Participant: "plant-1", Kind: "certificate"})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, ev := range events {
		found = found || strings.Contains(ev.Message, "enrollment token")
		if strings.Contains(ev.Message, m[1]) || strings.Contains(strings.Join(values(ev.Attrs), " "), m[1]) {
			t.Fatal("the event log shows the token")
		}
	}
	if !found {
		t.Errorf("no event records the token: %+v", events)
	}

	eve := e.browser()
	eve.login(vpnUser, testPassword)
	tok := eve.csrf(eve.get("/password"))
	if r := eve.post("/devices/plant-1/enrollment", url.Values{"csrf": {tok}}); r.Status != http.StatusForbidden || enrollTokenRE.MatchString(r.Body) {
		t.Errorf("a vpn_user's enrollment token: %d", r.Status)
	}
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
