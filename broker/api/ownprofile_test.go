package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/pki"
)

// A VPN user exports its own profile without manage-certificates: the
// profile carries a fresh certificate in its own name. Others are refused:
// a user without connect-vpn, a disabled user, the bootstrap administrator.
func TestOwnProfile(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "eve", "roles": []string{"vpn_user"}, "password": testPassword})
	eve := e.mustLogin("eve")

	// Someone else's profile stays out of reach.
	e.expect(http.StatusForbidden, "POST", "/api/v1/participants/root/profile", eve, map[string]string{"format": "ovpn"})

	body := e.expect(http.StatusOK, "POST", "/api/v1/profile", eve, map[string]string{"format": "ovpn"})
	if !strings.Contains(string(body), "# eve\n") || !strings.Contains(string(body), "BEGIN CERTIFICATE") {
		t.Fatalf("own profile:\n%s", body)
	}
	var certs []certView
	if err := json.Unmarshal(e.expect(http.StatusOK, "GET", "/api/v1/certificates", root, nil), &certs); err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || certs[0].CommonName != "eve" || certs[0].Profile != pki.ProfileUser.String() {
		t.Fatalf("certificates after the export: %+v", certs)
	}
	e.expect(http.StatusBadRequest, "POST", "/api/v1/profile", eve, map[string]string{"format": "pkcs12"})
	e.expect(http.StatusBadRequest, "POST", "/api/v1/profile", eve, map[string]string{"format": "zip"})

	// nobody holds no right, connect-vpn included.
	nobody := e.mustLogin("nobody")
	if code, body := e.call("POST", "/api/v1/profile", nobody, map[string]string{"format": "ovpn"}); code != http.StatusForbidden || !strings.Contains(string(body), "connect-vpn") {
		t.Fatalf("a user without connect-vpn: %d %s; want 403 naming connect-vpn", code, body)
	}

	// A disabled user's session ends with the change, so its token no
	// longer authenticates at all.
	e.expect(http.StatusOK, "PUT", "/api/v1/users/eve", root, map[string]any{"name": "eve", "roles": []string{"vpn_user"}, "disabled": true})
	if code, _ := e.call("POST", "/api/v1/profile", eve, map[string]string{"format": "ovpn"}); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("a disabled user: %d; want 401 or 403", code)
	}
}

func TestOwnProfileRefusedToTheBootstrapAdministrator(t *testing.T) {
	e := newEnv(t)
	password, _, err := e.srv.Bootstrap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	admin := e.mustLoginWith(BootstrapAccount, password)
	if code, body := e.call("POST", "/api/v1/profile", admin, map[string]string{"format": "ovpn"}); code != http.StatusForbidden || !strings.Contains(string(body), "bootstrap") {
		t.Fatalf("own profile of the bootstrap administrator: %d %s; want 403", code, body)
	}
	var acct accountView
	if err := json.Unmarshal(e.expect(http.StatusOK, "GET", "/api/v1/account", admin, nil), &acct); err != nil {
		t.Fatal(err)
	}
	if acct.Name != BootstrapAccount || !acct.Bootstrap || acct.Rights != 0 || !acct.MustChange {
		t.Fatalf("account of the bootstrap administrator: %+v", acct)
	}
}

func TestGetAccount(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, rights string }{
		{"root", `"manage-users"`},
		{"nobody", `"rights": []`},
	} {
		body := string(e.expect(http.StatusOK, "GET", "/api/v1/account", e.mustLogin(tc.name), nil))
		if !strings.Contains(body, `"name": "`+tc.name+`"`) || !strings.Contains(body, tc.rights) || !strings.Contains(body, `"bootstrap": false`) {
			t.Errorf("account of %s:\n%s\nwant %s", tc.name, body, tc.rights)
		}
	}
	e.expect(http.StatusUnauthorized, "GET", "/api/v1/account", "", nil)
}

// The event log reads from the newest event back, page by page.
func TestEventsNewestFirst(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	for _, name := range []string{"g1", "g2", "g3"} {
		e.expect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": name})
	}
	var page []eventView
	if err := json.Unmarshal(e.expect(http.StatusOK, "GET", "/api/v1/events?order=newest&kind=config_change&limit=2", root, nil), &page); err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || !strings.Contains(page[0].Message, "g3") || !strings.Contains(page[1].Message, "g2") {
		t.Fatalf("newest two: %+v", page)
	}
	path := "/api/v1/events?order=newest&kind=config_change&before=" + strconv.FormatInt(page[1].ID, 10)
	if err := json.Unmarshal(e.expect(http.StatusOK, "GET", path, root, nil), &page); err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || !strings.Contains(page[0].Message, "g1") {
		t.Fatalf("the page before: %+v", page)
	}
	e.expect(http.StatusBadRequest, "GET", "/api/v1/events?order=sideways", root, nil)
}

// A VPN user cannot mint certificates without end through its own
// profile: ProfileLimit.Count within Window, then 429 with Retry-After
// until the oldest leaves the window. Refused requests do not count, the
// limit is per user, and an administrator is not limited.
func TestOwnProfileIsLimited(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.ProfileLimit = ProfileLimit{Count: 3, Window: time.Hour} })
	root := e.mustLogin("root")
	for _, name := range []string{"eve", "mallory"} {
		e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": name, "roles": []string{"vpn_user"}, "password": testPassword})
	}
	eve, mallory := e.mustLogin("eve"), e.mustLogin("mallory")
	certsOf := func(name string) int {
		t.Helper()
		var certs []certView
		if err := json.Unmarshal(e.expect(http.StatusOK, "GET", "/api/v1/certificates", root, nil), &certs); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range certs {
			if c.CommonName == name {
				n++
			}
		}
		return n
	}

	e.expect(http.StatusOK, "POST", "/api/v1/profile", eve, map[string]string{"format": "ovpn"})
	e.clock.add(20 * time.Minute)
	// A refused request costs nothing.
	for range 5 {
		e.expect(http.StatusBadRequest, "POST", "/api/v1/profile", eve, map[string]string{"format": "pkcs12"})
	}
	e.expect(http.StatusOK, "POST", "/api/v1/profile", eve, map[string]string{"format": "pkcs12", "password": "p12 password"})
	e.expect(http.StatusOK, "POST", "/api/v1/profile", eve, map[string]string{"format": "ovpn"})

	// The fourth within the hour: 429, the wait until the first leaves
	// the window, and no certificate issued.
	req, err := http.NewRequest("POST", e.http.URL+"/api/v1/profile", strings.NewReader(`{"format": "ovpn"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+eve)
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `\"eve\" exported 3 profiles in the last 1h0m0s`) {
		t.Fatalf("the fourth profile within the hour: %d %s; want 429", resp.StatusCode, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra != strconv.Itoa(40*60) {
		t.Fatalf("Retry-After %q; want %d", ra, 40*60)
	}
	if n := certsOf("eve"); n != 3 {
		t.Fatalf("eve has %d certificates; want 3", n)
	}

	// Another user has its own count, and the administrator is not
	// limited in exporting eve's.
	e.expect(http.StatusOK, "POST", "/api/v1/profile", mallory, map[string]string{"format": "ovpn"})
	for range 4 {
		e.expect(http.StatusOK, "POST", "/api/v1/participants/eve/profile", root, map[string]string{"format": "ovpn"})
	}

	// Once the first export is an hour old, one more.
	e.clock.add(40*time.Minute - time.Second)
	e.expect(http.StatusTooManyRequests, "POST", "/api/v1/profile", eve, map[string]string{"format": "ovpn"})
	e.clock.add(time.Second)
	e.expect(http.StatusOK, "POST", "/api/v1/profile", eve, map[string]string{"format": "ovpn"})
	e.expect(http.StatusTooManyRequests, "POST", "/api/v1/profile", eve, map[string]string{"format": "ovpn"})
	if n := certsOf("eve"); n != 3+4+1 {
		t.Fatalf("eve has %d certificates; want 8", n)
	}
}

func TestProfileLimitDefaultsAndRefusals(t *testing.T) {
	if l := (ProfileLimit{}).withDefaults(); l.Count != 5 || l.Window != 24*time.Hour {
		t.Fatalf("the zero ProfileLimit: %+v; want 5 in 24h", l)
	}
	e := newEnv(t)
	for _, l := range []ProfileLimit{{Count: -1}, {Window: -time.Second}} {
		cfg := e.srv.cfg
		cfg.ProfileLimit = l
		if _, err := New(context.Background(), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("ProfileLimit %+v: %v; want ErrConfig", l, err)
		}
	}
}
