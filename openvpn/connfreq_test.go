package openvpn

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/udpbatch"
	"github.com/remotegate/remotegate/openvpn/internal/wire"
	"github.com/remotegate/remotegate/tunnel"
)

// testClock is the real clock moved forward by the test, so that a window
// ends without the test waiting for it.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// spoofer sends hard resets from its own address, as a flood forging
// source addresses does, and counts the server's answers that reach it.
type spoofer struct {
	conn    *net.UDPConn
	prot    *wire.Protection
	answers atomic.Int64
}

// newSpoofers binds n sockets to distinct loopback addresses (127.0.0.base
// on) and counts, on each, the datagrams that decode as the server's
// reset.
func newSpoofers(t *testing.T, addr string, prot Protection, base, n int) []*spoofer {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*spoofer, n)
	for i := range out {
		conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(base+i))}, raddr)
		if err != nil {
			t.Fatal(err)
		}
		sp := &spoofer{conn: conn, prot: prot.wire()}
		out[i] = sp
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 2048)
			for {
				n, err := conn.Read(buf)
				if err != nil {
					return
				}
				codec, err := wire.NewCodec(sp.prot, wire.RoleClient, time.Now())
				if err != nil {
					return
				}
				if p, err := codec.Decode(buf[:n]); err == nil && p.Opcode == wire.OpControlHardResetServerV2 {
					sp.answers.Add(1)
				}
			}
		}()
		t.Cleanup(func() {
			conn.Close()
			<-done
		})
	}
	return out
}

func (sp *spoofer) sendReset(t *testing.T) {
	t.Helper()
	codec, err := wire.NewCodec(sp.prot, wire.RoleClient, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sid, err := wire.NewSessionID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := codec.Encode(nil, &wire.Packet{Opcode: wire.OpControlHardResetClientV2, SessionID: sid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
}

func totalAnswers(sps []*spoofer) int {
	n := 0
	for _, sp := range sps {
		n += int(sp.answers.Load())
	}
	return n
}

// flood sends one reset from each spoofer, waits until the server has
// handled all of them and every answer it counted has arrived, and returns
// the answers received.
func flood(t *testing.T, srv *Server, sps []*spoofer) int {
	t.Helper()
	handled := func() uint64 {
		st := srv.Stats()
		return st.StatelessResets + st.DroppedConnectFreq + st.DroppedBadPacket
	}
	before, answered := handled(), srv.Stats().StatelessResets
	seen := totalAnswers(sps)
	for _, sp := range sps {
		sp.sendReset(t)
	}
	waitFor(t, func() bool {
		return handled()-before == uint64(len(sps)) &&
			uint64(totalAnswers(sps)-seen) == srv.Stats().StatelessResets-answered
	})
	return totalAnswers(sps) - seen
}

// A flood of forged resets, each from another address, gets at most Max
// answers per window on the wire; the rest are dropped and counted. The
// next window answers again, and a client connected before the flood keeps
// its tunnel throughout.
func TestConnectFreqInitialBoundsAnswers(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	var clock testClock
	const bound = 5
	cfg := &ServerConfig{TLS: e.serverTLS, Protection: sp, Now: clock.now,
		ConnectFreqInitial: ConnectFreq{Max: bound, Per: 10 * time.Second}}
	srv, addr := startServer(t, "udp", cfg, &echoHandler{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS, Protection: cp})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, 2)

	sps := newSpoofers(t, addr, cp, 10, 20)
	clock.advance(10 * time.Second) // the client's reset used the first window
	if got := flood(t, srv, sps); got != bound {
		t.Fatalf("%d answers to %d forged resets in one window, want %d", got, len(sps), bound)
	}
	roundTrip(t, c, 3)
	if got := flood(t, srv, sps); got != 0 {
		t.Fatalf("%d answers to a second flood in the same window, want 0", got)
	}
	clock.advance(10 * time.Second)
	if got := flood(t, srv, sps); got != bound {
		t.Fatalf("%d answers in the next window, want %d", got, bound)
	}
	roundTrip(t, c, 3)
	st := srv.Stats()
	if st.DroppedConnectFreq != 3*20-2*bound {
		t.Errorf("DroppedConnectFreq %d, want %d", st.DroppedConnectFreq, 3*20-2*bound)
	}
	if st.Sessions != 1 {
		t.Errorf("%d sessions, want the one client's", st.Sessions)
	}
	// A new client gets in once the window is over.
	clock.advance(10 * time.Second)
	c2, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS, Protection: cp})
	if err != nil {
		t.Fatalf("a client after the flood: %v", err)
	}
	defer c2.Close()
	roundTrip(t, c2, 2)
}

// Resets that fail tls-crypt are dropped before they are counted: a flood
// made without the key does not use up the answers meant for clients.
func TestConnectFreqInitialCountsOnlyAuthenticResets(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	other, err := GenerateStaticKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ServerConfig{TLS: e.serverTLS, Protection: sp, ConnectFreqInitial: ConnectFreq{Max: 3, Per: time.Hour}}
	srv, addr := startServer(t, "udp", cfg, &echoHandler{})
	forged := newSpoofers(t, addr, Protection{Mode: ProtectionTLSCrypt, Key: other}, 10, 20)
	if got := flood(t, srv, forged); got != 0 {
		t.Fatalf("%d answers to resets without the key", got)
	}
	if got := flood(t, srv, newSpoofers(t, addr, cp, 40, 3)); got != 3 {
		t.Fatalf("%d answers to 3 authentic resets after a forged flood, want 3", got)
	}
	if st := srv.Stats(); st.DroppedBadPacket != 20 || st.DroppedConnectFreq != 0 {
		t.Fatalf("DroppedBadPacket %d, DroppedConnectFreq %d; want 20, 0", st.DroppedBadPacket, st.DroppedConnectFreq)
	}
}

// Beyond the bound a reset is dropped with no allocation: the flood costs
// the server a header check, not garbage.
func TestConnectFreqInitialDropAllocs(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	srv, err := NewServer(&ServerConfig{TLS: e.serverTLS, Protection: sp, ConnectFreqInitial: ConnectFreq{Max: 1, Per: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	uc := udpbatch.New(conn)
	defer uc.Close()
	codec, err := wire.NewCodec(cp.wire(), wire.RoleClient, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := codec.Encode(nil, &wire.Packet{Opcode: wire.OpControlHardResetClientV2, SessionID: wire.SessionID{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.9:4000")
	buf := make([]byte, tunnel.BufferSize)
	d := deliverer{bufs: make([][]byte, 0, 1), sizes: make([]int, 0, 1)}
	h := &echoHandler{}
	srv.handleUDP(uc, h, pkt, from, netip.Addr{}, buf, &d) // answered: the window is full
	allocs := testing.AllocsPerRun(100, func() {
		srv.handleUDP(uc, h, pkt, from, netip.Addr{}, buf, &d)
	})
	if allocs != 0 {
		t.Errorf("a reset beyond the bound allocates %v", allocs)
	}
	if st := srv.Stats(); st.StatelessResets != 1 || st.DroppedConnectFreq != 101 {
		t.Errorf("StatelessResets %d, DroppedConnectFreq %d; want 1, 101", st.StatelessResets, st.DroppedConnectFreq)
	}
}

func TestFreqLimiterWindows(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := newFreqLimiter(ConnectFreq{Max: 3, Per: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at    time.Duration
		allow bool
	}{
		{0, true}, {time.Second, true}, {2 * time.Second, true},
		{3 * time.Second, false}, {10*time.Second - 1, false},
		{10 * time.Second, true}, // a new window opens here
		{11 * time.Second, true}, {12 * time.Second, true}, {13 * time.Second, false},
		{-time.Second, true}, // a clock that went back ends the window
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		full := l.full(now)
		if got := l.allow(now); got != s.allow || full == s.allow {
			t.Fatalf("at %v: allow %v full %v, want allow %v", s.at, got, full, s.allow)
		}
	}
}

func TestConnectFreqDefaultsAndOff(t *testing.T) {
	l, err := newFreqLimiter(ConnectFreq{})
	if err != nil {
		t.Fatal(err)
	}
	if l.max != 100 || l.per != 10*time.Second {
		t.Fatalf("zero value: %d per %v, want stock's 100 per 10s", l.max, l.per)
	}
	off, err := newFreqLimiter(ConnectFreq{Max: -1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 1000 {
		if !off.allow(now) || off.full(now) {
			t.Fatalf("Max -1 refused event %d", i)
		}
	}
	e := newTestEnv(t)
	if _, err := NewServer(&ServerConfig{TLS: e.serverTLS, ConnectFreqInitial: ConnectFreq{Max: 5, Per: -time.Second}}); !errors.Is(err, ErrConfig) {
		t.Fatalf("negative Per: %v, want ErrConfig", err)
	}
}
