package connlimit

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Listener accepts connections from an inner listener and tracks each in
// a Set from the moment it is accepted until it is closed. A connection
// starts evictable (nothing has been asked of the server yet); call Hold
// while the server works for it and Release when it is idle again. An
// HTTP server does that from its ConnState hook.
//
// Accept never returns an error other than the inner listener's
// net.ErrClosed: on any other error (too many open files, no buffer
// space, a connection aborted before it was accepted) it waits with
// Backoff and tries again, so that a flood that exhausts a resource for a
// moment cannot end the serving.
type Listener struct {
	net.Listener
	set *Set
	log *slog.Logger

	closeOnce sync.Once
	closed    chan struct{}
	mu        sync.Mutex
	errors    uint64
}

// NewListener wraps ln. log, if not nil, is told of accept errors.
func NewListener(ln net.Listener, l Limits, log *slog.Logger) (*Listener, error) {
	set, err := New(l)
	if err != nil {
		return nil, err
	}
	return &Listener{Listener: ln, set: set, log: log, closed: make(chan struct{})}, nil
}

// Accept returns the next connection, evicting the oldest evictable one
// of its source or of all sources when a cap is reached, or closing the
// new one when nothing can be evicted.
func (l *Listener) Accept() (net.Conn, error) {
	var b Backoff
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			l.mu.Lock()
			l.errors++
			l.mu.Unlock()
			d := b.Next()
			if l.log != nil {
				l.log.Warn("accept failed; retrying", "address", l.Addr().String(), "error", err, "retry_in", d)
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		b.Reset()
		tc := &Conn{Conn: c}
		e, err := l.set.Add(SourceOf(c.RemoteAddr()), c)
		if err != nil {
			_ = c.Close()
			continue
		}
		tc.entry = e
		return tc, nil
	}
}

// Close closes the inner listener and ends a retry wait in Accept.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// AcceptErrors counts the accept errors Accept has retried.
func (l *Listener) AcceptErrors() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errors
}

// Stats are the counters of the listener's set.
func (l *Listener) Stats() Stats { return l.set.Stats() }

// Hold marks c, a connection from Accept or a wrapper of one that has a
// NetConn method (as *tls.Conn), as busy: it is not evicted.
func (l *Listener) Hold(c net.Conn) {
	if tc := unwrap(c); tc != nil {
		tc.entry.Hold()
	}
}

// Release marks c as idle again: it may be evicted, after the connections
// that became idle before it.
func (l *Listener) Release(c net.Conn) {
	if tc := unwrap(c); tc != nil {
		tc.entry.Release()
	}
}

func unwrap(c net.Conn) *Conn {
	for c != nil {
		switch v := c.(type) {
		case *Conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// Conn is a connection accepted by a Listener; closing it stops its
// tracking.
type Conn struct {
	net.Conn
	entry *Entry
}

// Close closes the connection and removes it from the set.
func (c *Conn) Close() error {
	c.entry.Done()
	return c.Conn.Close()
}
