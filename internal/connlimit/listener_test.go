package connlimit

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/connlimit/connlimittest"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// An accept error is retried, not returned: the next client is served.
func TestListenerSurvivesAcceptErrors(t *testing.T) {
	inner := &connlimittest.FailingListener{Listener: listen(t)}
	inner.N.Store(5)
	l, err := NewListener(inner, Limits{Total: 8, PerSource: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept returned %v, want a connection after the errors", err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if got := l.AcceptErrors(); got != 5 {
		t.Fatalf("%d accept errors counted, want 5", got)
	}
	// Closing ends Accept with net.ErrClosed, also during a retry wait.
	inner.N.Store(1000)
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	waitFor(t, func() bool { return l.AcceptErrors() > 6 }) // in a retry wait
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

// Idle connections of one source beyond its cap are closed oldest first;
// a held (busy) one is kept, and the newcomer always gets in.
func TestListenerEvictsOldestIdle(t *testing.T) {
	inner := listen(t)
	l, err := NewListener(inner, Limits{Total: 100, PerSource: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	var servers []net.Conn
	for i := range 6 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
		s := <-accepted
		servers = append(servers, s)
		if i == 0 {
			l.Hold(s) // busy with a request: never evicted
		}
	}
	// Of six, the busy first one counts against the cap of three but stays;
	// the two newest stay with it, 1, 2 and 3 go.
	for i, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		evicted := err == io.EOF
		if want := i >= 1 && i <= 3; evicted != want {
			t.Errorf("client %d: read %v; evicted=%v, want %v", i, err, evicted, want)
		}
	}
	if st := l.Stats(); st.Tracked != 3 || st.Evicted != 3 {
		t.Fatalf("stats %+v, want 3 tracked, 3 evicted", st)
	}
	// Closing a connection stops its tracking.
	servers[5].Close()
	if st := l.Stats(); st.Tracked != 2 {
		t.Fatalf("after a close: %+v", st)
	}
	l.Close()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
