package console

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remotegate/remotegate/tunnel"
)

// liveSession is a tunnel as a transport hands it to the broker, without
// a network: it describes itself as an OpenVPN session does and reports
// its Close on closed.
type liveSession struct {
	id     uint64
	name   string
	remote netip.AddrPort
	since  time.Time
	closed chan error
	once   atomic.Bool
}

func (s *liveSession) ID() uint64                                  { return s.id }
func (s *liveSession) Identity() tunnel.Identity                   { return tunnel.Identity{Name: s.name} }
func (s *liveSession) Remote() netip.AddrPort                      { return s.remote }
func (s *liveSession) Send(bufs [][]byte, offset int) (int, error) { return len(bufs), nil }
func (s *liveSession) Close(cause error) error {
	if s.once.CompareAndSwap(false, true) {
		s.closed <- cause
	}
	return nil
}
func (s *liveSession) Protocol() string                 { return "openvpn/udp" }
func (s *liveSession) Since() time.Time                 { return s.since }
func (s *liveSession) HandshakeDuration() time.Duration { return 40 * time.Millisecond }
func (s *liveSession) Counters() tunnel.Counters {
	return tunnel.Counters{BytesIn: 1536, BytesOut: 3 << 20, PacketsIn: 4, PacketsOut: 2200}
}

// connect admits a participant and brings its session up in the env's
// broker, as a transport does after the handshake.
func (e *env) connect(name, remote string) *liveSession {
	e.t.Helper()
	s := &liveSession{id: 7, name: name, remote: netip.MustParseAddrPort(remote), since: e.clock.now(), closed: make(chan error, 1)}
	asg, err := e.broker.Admit(context.Background(), s.Identity(), s.remote)
	if err != nil {
		e.t.Fatalf("admit %s: %v", name, err)
	}
	if len(asg.Addresses) == 0 {
		e.t.Fatalf("admit %s: no address", name)
	}
	e.broker.Up(s)
	return s
}

// The sessions page lists a live session with what its transport reports,
// and terminating it from the page closes the tunnel and removes it.
func TestTerminateALiveSession(t *testing.T) {
	e := newReadyEnv(t)
	e.populate()
	s := e.connect("plant-1", "198.51.100.7:51820")
	addr := e.broker.Addresses()["plant-1"]
	if !addr.IsValid() {
		t.Fatal("plant-1 has no tunnel address")
	}
	b := e.browser()
	b.login(adminName, testPassword)

	page := b.expectPage("/sessions", http.StatusOK, "<td>plant-1</td><td>openvpn/udp</td><td>198.51.100.7:51820</td><td>"+addr.String()+"</td>",
		"1.5 KiB / 3.0 MiB", `href="/sessions/plant-1/terminate"`, "1 in all")
	if strings.Contains(page.Body, "No live sessions") {
		t.Fatalf("the sessions page says there are none:\n%s", page.Body)
	}
	b.expectPage("/participants", http.StatusOK, "1 online, 2 offline", `<td class="st-online">online</td><td>`+addr.String()+`</td><td>openvpn/udp</td>`)

	// A VPN user may not end it: 403 on the page and on the form, and the
	// session stays.
	vpn := e.browser()
	vpn.login(vpnUser, testPassword)
	if r := vpn.get("/sessions/plant-1/terminate"); r.Status != http.StatusForbidden {
		t.Fatalf("a VPN user's terminate page: %d", r.Status)
	}
	if r := vpn.post("/sessions/plant-1/terminate", url.Values{"csrf": {vpn.csrf(vpn.get("/profile"))}}); r.Status != http.StatusForbidden {
		t.Fatalf("a VPN user's terminate: %d\n%s", r.Status, r.Body)
	}
	// Nor does a forged form.
	if r := b.post("/sessions/plant-1/terminate", url.Values{"csrf": {"forged"}}); r.Status != http.StatusForbidden {
		t.Fatalf("a forged terminate: %d", r.Status)
	}
	select {
	case cause := <-s.closed:
		t.Fatalf("the session was closed by a refused request: %v", cause)
	default:
	}
	b.expectPage("/sessions", http.StatusOK, "<td>plant-1</td>")

	confirm := b.expectPage("/sessions/plant-1/terminate", http.StatusOK, "Terminate the session of plant-1?")
	r := b.post("/sessions/plant-1/terminate", url.Values{"csrf": {b.csrf(confirm)}})
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/sessions") {
		t.Fatalf("terminate: %d %q\n%s", r.Status, r.location(), r.Body)
	}
	// The broker closes the tunnel on its own goroutine: wait for it.
	select {
	case cause := <-s.closed:
		if cause == nil || !strings.Contains(cause.Error(), "terminated by "+adminName) {
			t.Errorf("closed because %v; want terminated by %s", cause, adminName)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session was not closed")
	}
	b.expectPage(r.location(), http.StatusOK, "Terminated the session of plant-1.", "No live sessions")
	b.expectPage("/participants", http.StatusOK, "0 online, 3 offline")
	b.expectPage("/events?kind=disconnect", http.StatusOK, "session terminated by an administrator", "<td>"+adminName+"</td>")

	// Terminating it again: the API's 404, said on the page.
	r = b.post("/sessions/plant-1/terminate", url.Values{"csrf": {b.csrf(confirm)}})
	if r.Status != http.StatusNotFound || !strings.Contains(r.Body, "is not online") {
		t.Fatalf("terminating a session that is gone: %d\n%s", r.Status, r.Body)
	}
}
