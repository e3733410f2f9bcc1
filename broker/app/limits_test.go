package app

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/testpki"

	"github.com/remotegate/remotegate/internal/connlimit/connlimittest"
)

func TestRaiseFileLimit(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	var set *syscall.Rlimit
	fake := rlimits{
		get: func(r *syscall.Rlimit) error { r.Cur, r.Max = 256, 1024; return nil },
		set: func(r *syscall.Rlimit) error { c := *r; set = &c; return nil },
	}
	got, err := raiseFileLimit(fake, log)
	if err != nil || got != 1024 || set == nil || set.Cur != 1024 || set.Max != 1024 {
		t.Fatalf("raiseFileLimit = %d, %v; set %+v; want the soft limit raised to the hard 1024", got, err, set)
	}
	// 1024 is below the budget: the log says so.
	if !strings.Contains(logged.String(), "open-file limit") || !strings.Contains(logged.String(), "limit=1024") ||
		!strings.Contains(logged.String(), "below what the broker may need") {
		t.Fatalf("log:\n%s", logged.String())
	}

	// Not allowed: the soft limit stays, and the log says why.
	logged.Reset()
	fake.set = func(*syscall.Rlimit) error { return syscall.EPERM }
	if got, err := raiseFileLimit(fake, log); err != nil || got != 256 || !strings.Contains(logged.String(), "cannot raise") {
		t.Fatalf("raiseFileLimit without permission = %d, %v\n%s", got, err, logged.String())
	}
	// A high limit is not warned about; the hard limit is never raised.
	logged.Reset()
	fake.get = func(r *syscall.Rlimit) error { r.Cur, r.Max = 1<<20, 1<<20; return nil }
	fake.set = func(*syscall.Rlimit) error { t.Fatal("set called with soft == hard"); return nil }
	if got, err := raiseFileLimit(fake, log); err != nil || got != 1<<20 || strings.Contains(logged.String(), "WARN") {
		t.Fatalf("raiseFileLimit = %d, %v\n%s", got, err, logged.String())
	}
	fake.get = func(*syscall.Rlimit) error { return syscall.ENOSYS }
	if _, err := raiseFileLimit(fake, log); !errors.Is(err, syscall.ENOSYS) {
		t.Fatalf("a failing getrlimit: %v", err)
	}

	// This process: the soft limit ends at the hard one.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got, err := raiseFileLimit(systemRlimits, log); err != nil || got != uint64(lim.Max) {
		t.Fatalf("raiseFileLimit on this process = %d, %v; hard limit %d", got, err, lim.Max)
	}
}

// apiTestServer serves h over HTTPS the way serveAPI does and returns
// its address and the client TLS config.
func apiTestServer(t *testing.T, h http.Handler) (string, *tls.Config) {
	t.Helper()
	ca := testpki.New(t, "api test CA")
	leaf := ca.Server(t, "127.0.0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logged := &syncBuffer{} // every evicted connection ends in a failed TLS handshake
	hs := newHTTPServer(h, &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}, slog.New(slog.NewTextHandler(logged, nil)))
	lln, err := limitHTTP(hs, ln, apiConnLimits, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.ServeTLS(lln, "", "") }()
	t.Cleanup(func() {
		hs.Close()
		// At the default level they are not logged: a flood must not fill
		// the disk.
		if strings.Contains(logged.String(), "handshake") {
			t.Errorf("failed TLS handshakes logged at the default level:\n%.2000s", logged.String())
		}
	})
	return ln.Addr().String(), &tls.Config{InsecureSkipVerify: true} // the test checks the limits, not the certificate
}

// syncBuffer is a log destination that the test reads while the server
// may still write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// get makes one HTTPS request from src on a fresh connection.
func get(t *testing.T, src, addr string, cfg *tls.Config, path string) (int, string, error) {
	t.Helper()
	c := tls.Client(connlimittest.DialFrom(t, src, addr), cfg)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: api\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Idle connections (no request, or idle between requests) beyond the
// caps are closed oldest first, so an attacker holding many cannot keep
// the operator out; connections busy with a request are never closed for
// a newcomer, which is refused instead when only busy ones fill its cap.
func TestAPIIdleConnectionsDoNotKeepTheOperatorOut(t *testing.T) {
	release := make(chan struct{})
	busy := make(chan struct{}, 100)
	addr, cfg := apiTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			busy <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "ok "+r.URL.Path)
	}))
	defer close(release)

	// One source: 40 idle connections, its cap is 16.
	per := apiConnLimits.PerSource
	var idle []net.Conn
	for range 40 {
		idle = append(idle, connlimittest.DialFrom(t, "127.0.0.2", addr))
	}
	for i, c := range idle {
		want := i < len(idle)-per
		wait := 50 * time.Millisecond
		if want {
			wait = 5 * time.Second // until the server has accepted its evictor
		}
		if got := connlimittest.ClosedByServer(c, wait); got && !want {
			t.Errorf("idle connection %d of the first source: closed although among its %d newest", i, per)
		} else if want && !got {
			t.Errorf("idle connection %d of the first source: still open beyond its cap of %d", i, per)
		}
	}
	// Many sources: 8 each from 20 more addresses, 160 in all, beyond
	// the total cap of 128 with the 16 above: the oldest go, whatever
	// their source.
	var spread []net.Conn
	for i := range 20 {
		for range 8 {
			spread = append(spread, connlimittest.DialFrom(t, fmt.Sprintf("127.0.1.%d", i+1), addr))
		}
	}
	// The operator still gets an answer. The server accepts in order, so
	// after it every eviction of the flood has happened.
	if status, body, err := get(t, "127.0.0.1", addr, cfg, "/api/v1/sessions"); err != nil || status != 200 || body != "ok /api/v1/sessions" {
		t.Fatalf("operator during the flood: %d %q %v", status, body, err)
	}
	open := 0
	for _, c := range append(idle, spread...) {
		if !connlimittest.ClosedByServer(c, 10*time.Millisecond) {
			open++
		}
	}
	if open > apiConnLimits.Total {
		t.Errorf("%d idle connections open, more than the cap of %d", open, apiConnLimits.Total)
	}

	// A source with all its places busy: a newcomer of that source is
	// refused, the busy requests go on, and other sources are served.
	var slow []*tls.Conn
	for range per {
		c := tls.Client(connlimittest.DialFrom(t, "127.0.0.3", addr), cfg)
		if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		<-busy
		slow = append(slow, c)
	}
	if status, _, err := get(t, "127.0.0.3", addr, cfg, "/more"); err == nil {
		t.Fatalf("a source beyond its cap of busy connections was served: %d", status)
	}
	if status, _, err := get(t, "127.0.0.1", addr, cfg, "/again"); err != nil || status != 200 {
		t.Fatalf("operator while another source is busy: %d %v", status, err)
	}
	release <- struct{}{}
	_ = slow[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow[0]), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a busy request was cut off: %v", err)
	}
}
