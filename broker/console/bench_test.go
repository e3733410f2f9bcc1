package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// benchEnv is a broker with 1,024 participants (512 users, 512 devices
// with a network each) and 10,000 events, and the session cookie of an
// administrator.
func benchEnv(b testing.TB) (*env, *http.Cookie) {
	b.Helper()
	e := newReadyEnv(b)
	ctx := context.Background()
	if _, err := e.store.Update(ctx, func(c *store.Config) error {
		for i := len(c.Model.Users); i < 512; i++ {
			c.Model.Users = append(c.Model.Users, policy.User{Name: fmt.Sprintf("user-%04d", i), Roles: []string{policy.RoleVPNUser}})
		}
		for i := range 512 {
			name := fmt.Sprintf("plant-%04d", i)
			c.Model.Devices = append(c.Model.Devices, policy.Device{Name: name})
			c.Networks[name] = []store.Network{{LAN: netip.MustParsePrefix("192.168.0.0/24"),
				Alias: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i/256), byte(i % 256), 0}), 24)}}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	if err := e.api.Load(ctx); err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		if _, err := e.store.Append(ctx, store.Event{Kind: []string{"connect", "disconnect", "config_change"}[i%3],
			Participant: fmt.Sprintf("plant-%04d", i%512), Message: fmt.Sprintf("event %d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	br := e.browser()
	r := br.login(adminName, testPassword)
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == sessionCookie {
			return e, c
		}
	}
	b.Fatal("no session cookie")
	return nil, nil
}

// benchPage measures the server time of one page: the console's handler,
// the in-process API calls and the rendering, without TLS or a client.
func benchPage(b *testing.B, path, want string) {
	e, cookie := benchEnv(b)
	serve := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "https://broker.example"+path, nil)
		r.AddCookie(cookie)
		w := httptest.NewRecorder()
		e.console.ServeHTTP(w, r)
		return w
	}
	if w := serve(); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), want) || !strings.Contains(w.Body.String(), "1024 in all") && !strings.Contains(w.Body.String(), "of 1024") {
		b.Fatalf("%s: %d\n%s", path, w.Code, w.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serve()
		// The idle timeout is not what is measured: keep the session
		// fresh on the test clock.
		e.clock.add(time.Millisecond)
	}
}

func BenchmarkDashboard(b *testing.B) { benchPage(b, "/", "Latest events") }

func BenchmarkParticipantsPage(b *testing.B) {
	benchPage(b, "/participants?sort=status&page=11", "Participants")
}
