// Package connlimittest has what the tests of connection limits share:
// a listener that fails as a process out of file descriptors does, dialing
// from a chosen loopback source, and telling whether the server closed a
// connection.
package connlimittest

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// FailingListener fails its next N Accept calls as a process out of file
// descriptors does (accept4: too many open files), then accepts from the
// Listener it wraps.
type FailingListener struct {
	net.Listener
	N atomic.Int32
}

// Accept implements net.Listener.
func (l *FailingListener) Accept() (net.Conn, error) {
	if l.N.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// DialFrom opens a TCP connection to addr from the loopback address src,
// closed at the end of the test.
func DialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ClosedByServer reports whether the server closed c (a read gets EOF or a
// reset) within d; data it reads is a protocol answer, not a close, and is
// skipped.
func ClosedByServer(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	var buf [2048]byte
	for {
		_, err := c.Read(buf[:])
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}
