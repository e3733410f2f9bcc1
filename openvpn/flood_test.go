package openvpn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/remotegate/remotegate/openvpn/internal/wire"

	"github.com/remotegate/remotegate/internal/connlimit/connlimittest"
)

// startTCPServer serves ln (which may fail on purpose) and checks at the
// end that ServeTCP returned nil after the cancel.
func startTCPServer(t *testing.T, ln net.Listener, cfg *ServerConfig, h *echoHandler) *Server {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeTCP(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeTCP: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("ServeTCP did not return after cancel")
		}
	})
	return srv
}

// A listener that fails with EMFILE does not end ServeTCP: it retries, and
// the next client gets its tunnel.
func TestServeTCPSurvivesAcceptErrors(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &connlimittest.FailingListener{Listener: inner}
	ln.N.Store(5)
	srv := startTCPServer(t, ln, &ServerConfig{TLS: e.serverTLS, Protection: sp}, &echoHandler{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", inner.Addr().String(), &ClientConfig{TLS: e.cliTLS, Protection: cp})
	if err != nil {
		t.Fatalf("Dial after accept errors: %v", err)
	}
	defer c.Close()
	roundTrip(t, c, 3)
	if got := srv.Stats().AcceptErrors; got != 5 {
		t.Fatalf("AcceptErrors %d, want 5", got)
	}
}

// Idle connections from one source beyond MaxPendingPerSource are closed
// oldest first; a real client from the same source still connects (it
// evicts an idle one), and the newest idle ones stay open.
func TestPendingTCPPerSourceEvictsOldest(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	h := &echoHandler{}
	_, addr := startServer(t, "tcp", &ServerConfig{TLS: e.serverTLS, Protection: sp, MaxPendingPerSource: 4}, h)
	var idle []net.Conn
	for range 12 {
		idle = append(idle, connlimittest.DialFrom(t, "127.0.0.1", addr))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr, &ClientConfig{TLS: e.cliTLS, Protection: cp})
	if err != nil {
		t.Fatalf("a real client from the flooding source: %v", err)
	}
	defer c.Close()
	roundTrip(t, c, 3)
	// The real client took one of the four places while it was pending,
	// so the nine oldest idle connections are gone and the three newest
	// are open (their first-packet deadline is still far).
	for i, ic := range idle {
		if got, want := connlimittest.ClosedByServer(ic, 100*time.Millisecond), i < 9; got != want {
			t.Errorf("idle connection %d: closed=%v, want %v", i, got, want)
		}
	}
	// The authenticated session no longer counts: more idle connections
	// from the same source evict idle ones, never the session.
	for range 8 {
		connlimittest.DialFrom(t, "127.0.0.1", addr)
	}
	roundTrip(t, c, 3)
}

// Idle connections from many sources beyond MaxPending are closed oldest
// first, whatever their source; a real client from a fresh source gets in.
func TestPendingTCPTotalEvictsOldest(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	srv, addr := startServer(t, "tcp", &ServerConfig{TLS: e.serverTLS, Protection: sp, MaxPending: 6, MaxPendingPerSource: 2}, &echoHandler{})
	var idle []net.Conn
	for i := range 10 {
		idle = append(idle, connlimittest.DialFrom(t, fmt.Sprintf("127.0.0.%d", i+2), addr))
	}
	waitFor(t, func() bool { return srv.Stats().EvictedTCP == 4 })
	for i, ic := range idle {
		if got, want := connlimittest.ClosedByServer(ic, 100*time.Millisecond), i < 4; got != want {
			t.Errorf("idle connection %d: closed=%v, want %v", i, got, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr, &ClientConfig{TLS: e.cliTLS, Protection: cp})
	if err != nil {
		t.Fatalf("a real client during the flood: %v", err)
	}
	defer c.Close()
	roundTrip(t, c, 3)
	if st := srv.Stats(); st.EvictedTCP < 5 || st.PendingTCP != 5 {
		t.Fatalf("stats %+v: want at least 5 evicted, 5 idle still pending", st)
	}
}

// A connection that sends nothing is closed after FirstPacketTimeout.
func TestFirstPacketTimeout(t *testing.T) {
	e := newTestEnv(t)
	sp, _ := e.protections(ProtectionTLSCrypt)
	_, addr := startServer(t, "tcp", &ServerConfig{TLS: e.serverTLS, Protection: sp, FirstPacketTimeout: 200 * time.Millisecond}, &echoHandler{})
	c := connlimittest.DialFrom(t, "127.0.0.1", addr)
	start := time.Now()
	if !connlimittest.ClosedByServer(c, 5*time.Second) {
		t.Fatal("a silent connection was not closed within 5 s")
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the 200 ms timeout", d)
	}
}

// resetFrame is a client's hard reset with a fresh session id, framed for
// TCP; without control-channel protection anyone can make one.
func resetFrame(t *testing.T, e *testEnv) []byte {
	t.Helper()
	codec, err := wire.NewCodec(Protection{}.wire(), wire.RoleClient, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sid, err := wire.NewSessionID(e.rand())
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := codec.Encode(nil, &wire.Packet{Opcode: wire.OpControlHardResetClientV2, SessionID: sid})
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(pkt))), pkt...)
}

// Connections that start a handshake and never finish it hold sessions;
// they must not fill MaxSessions and keep real clients out.
func TestHalfOpenTCPSessionsDoNotFillMaxSessions(t *testing.T) {
	e := newTestEnv(t)
	h := &echoHandler{}
	srv, addr := startServer(t, "tcp", &ServerConfig{TLS: e.serverTLS, MaxSessions: 4, MaxPendingPerSource: 2}, h)
	for range 8 {
		c := connlimittest.DialFrom(t, "127.0.0.2", addr)
		if _, err := c.Write(resetFrame(t, e)); err != nil {
			t.Fatal(err)
		}
		// The server answers a reset it accepted with its own.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
			t.Fatalf("no answer to a hard reset: %v", err)
		}
	}
	waitFor(t, func() bool { return srv.Stats().Sessions <= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr, &ClientConfig{TLS: e.cliTLS})
	if err != nil {
		t.Fatalf("a real client after half-open handshakes: %v", err)
	}
	defer c.Close()
	roundTrip(t, c, 3)
}

// The same over UDP: an attacker that answers the stateless cookie (so
// it owns its address) and then goes silent holds a session until the
// handshake window ends. Many of them from one address must not fill
// MaxSessions.
func TestHalfOpenUDPSessionsDoNotFillMaxSessions(t *testing.T) {
	e := newTestEnv(t)
	srv, addr := startServer(t, "udp", &ServerConfig{TLS: e.serverTLS, MaxSessions: 4, MaxPendingPerSource: 2}, &echoHandler{})
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")}, raddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		codec, err := wire.NewCodec(Protection{}.wire(), wire.RoleClient, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sid, _ := wire.NewSessionID(e.rand())
		pkt, _ := codec.Encode(nil, &wire.Packet{Opcode: wire.OpControlHardResetClientV2, SessionID: sid})
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no stateless reset: %v", err)
		}
		reply, err := codec.Decode(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		ack, _ := codec.Encode(nil, &wire.Packet{Opcode: wire.OpAckV1, SessionID: sid, Acks: []uint32{0}, RemoteSessionID: reply.SessionID})
		if _, err := conn.Write(ack); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { st := srv.Stats(); return st.EvictedUDP >= 6 && st.Sessions <= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS})
	if err != nil {
		t.Fatalf("a real client after half-open handshakes: %v", err)
	}
	defer c.Close()
	roundTrip(t, c, 3)
}

func TestPendingLimitsMustNotBeNegative(t *testing.T) {
	e := newTestEnv(t)
	for _, cfg := range []ServerConfig{
		{TLS: e.serverTLS, MaxPending: -1},
		{TLS: e.serverTLS, MaxPendingPerSource: -1},
		{TLS: e.serverTLS, FirstPacketTimeout: -time.Second},
	} {
		if _, err := NewServer(&cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("NewServer(%+v): %v, want ErrConfig", cfg, err)
		}
	}
}

// After its first packet a client that stalls is closed when the
// handshake window ends: no unauthenticated connection lives longer than
// FirstPacketTimeout and the window together.
func TestStalledTCPHandshakeEndsWithTheWindow(t *testing.T) {
	e := newTestEnv(t)
	cfg := &ServerConfig{TLS: e.serverTLS, Timers: Timers{HandshakeWindow: 500 * time.Millisecond}}
	srv, addr := startServer(t, "tcp", cfg, &echoHandler{})
	c := connlimittest.DialFrom(t, "127.0.0.1", addr)
	if _, err := c.Write(resetFrame(t, e)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return srv.Stats().Sessions == 1 })
	start := time.Now()
	if !connlimittest.ClosedByServer(c, 5*time.Second) {
		t.Fatal("a stalled handshake was not closed within 5 s")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("closed after %v, before the 500 ms window", d)
	}
	waitFor(t, func() bool { st := srv.Stats(); return st.Sessions == 0 && st.PendingTCP == 0 })
}
