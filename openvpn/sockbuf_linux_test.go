package openvpn

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// logRecorder keeps the records logged to it.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// find returns the attributes of the first record whose message starts
// with prefix.
func (r *logRecorder) find(prefix string) (map[string]slog.Value, slog.Level, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if len(rec.Message) >= len(prefix) && rec.Message[:len(prefix)] == prefix {
			attrs := map[string]slog.Value{}
			rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
			return attrs, rec.Level, true
		}
	}
	return nil, 0, false
}

// serveUDPWith serves a fresh loopback socket with cfg until the test ends
// and returns the socket once the server has sized its buffers.
func serveUDPWith(t *testing.T, cfg *ServerConfig, rec *logRecorder) *net.UDPConn {
	t.Helper()
	cfg.Logger = slog.New(rec)
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUDP(ctx, conn, &echoHandler{}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("ServeUDP did not return")
		}
	})
	return conn
}

// ServeUDP asks for 4 MiB socket buffers by default and logs what the
// kernel granted (Linux reports twice the size it was given, capped at
// net.core.rmem_max and wmem_max).
func TestServeUDPSizesSocketBuffers(t *testing.T) {
	e := newTestEnv(t)
	rec := &logRecorder{}
	conn := serveUDPWith(t, &ServerConfig{TLS: e.serverTLS}, rec)
	waitFor(t, func() bool { _, _, ok := rec.find("UDP socket buffers"); return ok })
	got, err := socketBuffers(conn)
	if err != nil {
		t.Fatal(err)
	}
	rmax, wmax := sysctlInt("/proc/sys/net/core/rmem_max"), sysctlInt("/proc/sys/net/core/wmem_max")
	if rmax == 0 || wmax == 0 {
		t.Skip("no /proc/sys/net/core: the kernel's caps are unknown")
	}
	if want := 2 * min(defaultUDPBuffer, rmax); got.rcv != want {
		t.Errorf("SO_RCVBUF %d, want %d (4 MiB capped at rmem_max %d, doubled)", got.rcv, want, rmax)
	}
	if want := 2 * min(defaultUDPBuffer, wmax); got.snd != want {
		t.Errorf("SO_SNDBUF %d, want %d (4 MiB capped at wmem_max %d, doubled)", got.snd, want, wmax)
	}
	attrs, _, _ := rec.find("UDP socket buffers")
	if attrs["receive_requested"].Int64() != defaultUDPBuffer || attrs["receive_granted"].Int64() != int64(got.rcv) ||
		attrs["send_granted"].Int64() != int64(got.snd) {
		t.Errorf("logged %v; granted %d/%d", attrs, got.rcv, got.snd)
	}
}

// A request above the kernel's cap is logged as a warning naming the cap.
func TestServeUDPWarnsWhenBufferCapped(t *testing.T) {
	rmax := sysctlInt("/proc/sys/net/core/rmem_max")
	if rmax == 0 || rmax > 1<<29 {
		t.Skip("rmem_max unknown or too large to exceed")
	}
	e := newTestEnv(t)
	rec := &logRecorder{}
	serveUDPWith(t, &ServerConfig{TLS: e.serverTLS, ReadBuffer: 2 * rmax}, rec)
	waitFor(t, func() bool { _, _, ok := rec.find("UDP socket buffers"); return ok })
	attrs, level, _ := rec.find("UDP socket buffers")
	if level != slog.LevelWarn || attrs["net.core.rmem_max"].Int64() != int64(rmax) || attrs["receive_granted"].Int64() != int64(2*rmax) {
		t.Errorf("level %v, attrs %v; want a warning naming rmem_max %d", level, attrs, rmax)
	}
}

// A negative size leaves the socket's buffers as they were.
func TestServeUDPLeavesBuffersWhenNegative(t *testing.T) {
	e := newTestEnv(t)
	probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	before, err := socketBuffers(probe)
	probe.Close()
	if err != nil {
		t.Fatal(err)
	}
	rec := &logRecorder{}
	conn := serveUDPWith(t, &ServerConfig{TLS: e.serverTLS, ReadBuffer: -1, WriteBuffer: -1}, rec)
	waitFor(t, func() bool { _, _, ok := rec.find("UDP socket buffers"); return ok })
	got, err := socketBuffers(conn)
	if err != nil {
		t.Fatal(err)
	}
	if got.rcv != before.rcv || got.snd != before.snd {
		t.Errorf("buffers %d/%d, want the untouched %d/%d", got.rcv, got.snd, before.rcv, before.snd)
	}
}
