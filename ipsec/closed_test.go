package ipsec

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/remotegate/remotegate/tunnel"
)

// TestSessionClosedIsTunnelErrClosed: a responder session closed by the
// Handler, or deleted by its peer, refuses Send with an error that is both
// ErrClosed and tunnel.ErrClosed, so that a broker stops on one error
// whatever the protocol.
func TestSessionClosedIsTunnelErrClosed(t *testing.T) {
	h := newEchoHandler()
	_, addr := testServer(t, pskServerConfig(t), h)
	dial := func() (*Client, tunnel.Session) {
		c, err := Dial(context.Background(), loopbackConn(t), addr, pskDialConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		select {
		case s := <-h.ups:
			return c, s
		case <-time.After(5 * time.Second):
			t.Fatal("no session came up")
		}
		return nil, nil
	}
	isClosed := func(err error) bool { return errors.Is(err, ErrClosed) && errors.Is(err, tunnel.ErrClosed) }

	// Closed by the Handler.
	c, sess := dial()
	roundTrip(t, c, testVIP, testPeer, 1)
	if err := sess.Close(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Send([][]byte{ipv4UDP(testPeer, testVIP, nil)}, tunnel.Headroom); !isClosed(err) {
		t.Errorf("Send after Close: %v", err)
	}
	select {
	case <-h.downs:
	case <-time.After(5 * time.Second):
		t.Fatal("the Handler saw no Down")
	}

	// Deleted by the peer.
	c, sess = dial()
	roundTrip(t, c, testVIP, testPeer, 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.downs:
	case <-time.After(5 * time.Second):
		t.Fatal("the Handler saw no Down")
	}
	if _, err := sess.Send([][]byte{ipv4UDP(testPeer, testVIP, nil)}, tunnel.Headroom); !isClosed(err) {
		t.Errorf("Send after the peer deleted the session: %v", err)
	}
	if _, err := c.Write([][]byte{ipv4UDP(testVIP, testPeer, nil)}, tunnel.Headroom); !isClosed(err) {
		t.Errorf("client Write after Close: %v", err)
	}
	if _, err := c.Read(make([][]byte, 1), make([]int, 1), tunnel.Headroom); !isClosed(err) {
		t.Errorf("client Read after Close: %v", err)
	}
}
