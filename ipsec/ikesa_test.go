package ipsec

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

// lossyRelay forwards datagrams between one client and a server, asking
// drop about each one first (toServer says the direction).
func lossyRelay(t testing.TB, server netip.AddrPort, drop func(toServer bool, pkt []byte) bool) netip.AddrPort {
	t.Helper()
	front, back := loopbackConn(t), loopbackConn(t)
	var client atomic.Pointer[netip.AddrPort]
	pipe := func(from, to *net.UDPConn, toServer bool) {
		buf := make([]byte, 65535)
		for {
			n, src, err := from.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			dst := server
			if toServer {
				client.Store(&src)
			} else if p := client.Load(); p != nil {
				dst = *p
			} else {
				continue
			}
			if !drop(toServer, buf[:n]) {
				_, _ = to.WriteToUDPAddrPort(buf[:n], dst)
			}
		}
	}
	go pipe(front, back, true)
	go pipe(back, front, false)
	t.Cleanup(func() { front.Close(); back.Close() })
	return front.LocalAddr().(*net.UDPAddr).AddrPort()
}

// ikeHeader is the header of an IKE message after the non-ESP marker.
func ikeHeader(pkt []byte) (message.Header, bool) {
	if len(pkt) < 4+28 || pkt[0]|pkt[1]|pkt[2]|pkt[3] != 0 {
		return message.Header{}, false
	}
	h, err := message.ParseHeader(pkt[4:])
	return h, err == nil
}

// informationalLog counts the INFORMATIONAL requests in one direction
// after armed is set (by message ID) and drops the first dropRequests of
// them. Lost requests, not lost answers: a peer that took a Delete has
// forgotten the IKE SA and cannot answer it again (strongSwan neither).
type informationalLog struct {
	mu           sync.Mutex
	armed        bool
	requests     map[uint32]int // sends of each request
	sent         int
	dropRequests int
}

func (l *informationalLog) filter(requestsToServer bool) func(bool, []byte) bool {
	return func(toServer bool, pkt []byte) bool {
		h, ok := ikeHeader(pkt)
		if !ok || h.Exchange != message.Informational {
			return false
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.armed {
			return false
		}
		if toServer == requestsToServer && !h.IsResponse() {
			l.requests[h.MessageID]++
			l.sent++
			return l.sent <= l.dropRequests
		}
		return false
	}
}

func (l *informationalLog) sends() (mids, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.requests {
		total += n
	}
	return len(l.requests), total
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The Client's Delete is retransmitted until the Server answers: the
// first two are lost, the third arrives, and Close returns when it is
// answered.
func TestClientDeleteRetransmitted(t *testing.T) {
	h := newEchoHandler()
	_, addr := testServer(t, pskServerConfig(t), h)
	log := &informationalLog{requests: map[uint32]int{}, dropRequests: 2}
	front := lossyRelay(t, addr, log.filter(true))
	d := pskDialConfig(t)
	d.RetransmitTimeout = 50 * time.Millisecond
	d.DPDInterval = -1
	c, err := Dial(context.Background(), loopbackConn(t), front, d)
	if err != nil {
		t.Fatal(err)
	}
	<-h.ups
	log.mu.Lock()
	log.armed = true
	log.mu.Unlock()
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	mids, total := log.sends()
	if mids != 1 || total != 3 {
		t.Fatalf("the Delete went out as %d requests, %d times in all; want one request sent 3 times", mids, total)
	}
	if c.Err() != ErrClosed {
		t.Errorf("Err %v", c.Err())
	}
	select {
	case <-h.downs:
	case <-time.After(5 * time.Second):
		t.Fatal("the Server did not take the Delete")
	}
}

// The Server's Delete (the Handler closes the session) is retransmitted
// until the Client answers; the Server keeps the IKE SA until then.
// The first two are lost.
func TestServerDeleteRetransmitted(t *testing.T) {
	h := newEchoHandler()
	cfg := pskServerConfig(t)
	cfg.RetransmitTimeout = 100 * time.Millisecond
	cfg.DPDInterval = -1
	srv, addr := testServer(t, cfg, h)
	log := &informationalLog{requests: map[uint32]int{}, dropRequests: 2}
	front := lossyRelay(t, addr, log.filter(false))
	d := pskDialConfig(t)
	d.DPDInterval = -1
	c, err := Dial(context.Background(), loopbackConn(t), front, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-h.ups
	log.mu.Lock()
	log.armed = true
	log.mu.Unlock()
	s.Close(nil)
	// While the Deletes are lost, the Server holds the IKE SA.
	waitFor(t, "the second Delete", 10*time.Second, func() bool { _, n := log.sends(); return n >= 2 })
	if n := srv.Stats().IKESAs; n != 1 {
		t.Errorf("%d IKE SAs while the Delete is unanswered, want 1", n)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the Client did not take the Delete")
	}
	waitFor(t, "the Server to forget the IKE SA", 10*time.Second, func() bool { return srv.Stats().IKESAs == 0 })
	mids, total := log.sends()
	if mids != 1 || total != 3 {
		t.Fatalf("the Delete went out as %d requests, %d times in all; want one request sent 3 times", mids, total)
	}
}

// A Delete that is never answered is given up after RetransmitTries, and
// the IKE SA is forgotten all the same.
func TestDeleteGivenUp(t *testing.T) {
	c, log := lossyClient(t, 1<<30, func(d *DialConfig) {
		d.RetransmitTimeout = 20 * time.Millisecond
		d.RetransmitTries = 3
	})
	c.Close()
	if mids, total := log.sends(); mids != 1 || total != 3 {
		t.Fatalf("the Delete went out as %d requests, %d times in all; want one request sent 3 times", mids, total)
	}
}

// sessionSA is the Server's current IKE SA of a session.
func sessionSA(t *testing.T, s any) *ikeSA {
	t.Helper()
	sess, ok := s.(*session)
	if !ok {
		t.Fatalf("session %T", s)
	}
	return sess.sa.Load()
}

// rekeyOut starts the rekey of the child SA that sa's link sends on and
// waits until the rekey is done on both sides: both send on new child SAs
// and have forgotten the old ones.
func rekeyOut(t *testing.T, starter, other *ikeSA) {
	t.Helper()
	starter.link.mu.Lock()
	old := starter.link.out.Load()
	err := starter.rekeyChild(old)
	starter.link.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	otherOld := other.link.out.Load()
	children := func(sa *ikeSA) []*childSA {
		sa.link.mu.Lock()
		defer sa.link.mu.Unlock()
		return append([]*childSA(nil), sa.children...)
	}
	waitFor(t, "the rekey", 5*time.Second, func() bool {
		a, b := children(starter), children(other)
		return len(a) == 1 && len(b) == 1 && a[0] != old && b[0] != otherOld &&
			starter.link.out.Load() == a[0] && other.link.out.Load() == b[0] &&
			a[0].inSPI == b[0].outSPI && a[0].outSPI == b[0].inSPI
	})
}

// Both roles run the same CREATE_CHILD_SA code: the Client rekeys the
// child SA (the Server answers with ikeSA.handleCreateChild), then the
// Server rekeys it (the Client answers with the same method), and
// packets pass after each.
func TestChildRekeyBothRoles(t *testing.T) {
	h := newEchoHandler()
	cfg := pskServerConfig(t)
	cfg.DPDInterval = -1
	_, addr := testServer(t, cfg, h)
	d := pskDialConfig(t)
	d.DPDInterval = -1
	c, err := Dial(context.Background(), loopbackConn(t), addr, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srvSA := sessionSA(t, <-h.ups)
	c.link.mu.Lock()
	cliSA := c.ike
	c.link.mu.Unlock()
	roundTrip(t, c, testVIP, testPeer, 3)

	rekeyOut(t, cliSA, srvSA) // the Client starts the exchange
	roundTrip(t, c, testVIP, testPeer, 3)

	rekeyOut(t, srvSA, cliSA) // the Server starts the exchange
	roundTrip(t, c, testVIP, testPeer, 3)
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

// TestCloseBounded: against a responder that never answers the Delete,
// Close returns after CloseTimeout, not after every retransmission, and
// the Client is closed.
func TestCloseBounded(t *testing.T) {
	c, _ := lossyClient(t, 1<<30, func(d *DialConfig) {
		d.RetransmitTimeout = time.Hour // the retransmissions alone would hold Close for hours
		d.CloseTimeout = 50 * time.Millisecond
	})
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close did not return within a minute with CloseTimeout 50 ms")
	}
	if _, err := c.Write([][]byte{make([]byte, 64)}, 0); !errors.Is(err, tunnel.ErrClosed) {
		t.Fatalf("Write after Close: %v; want tunnel.ErrClosed", err)
	}
}

// lossyClient dials a Go server through a relay that drops the first
// dropRequests INFORMATIONAL requests of the Client once armed, which
// happens when the tunnel is up; adjust sets the Client's timers.
func lossyClient(t *testing.T, dropRequests int, adjust func(*DialConfig)) (*Client, *informationalLog) {
	t.Helper()
	h := newEchoHandler()
	_, addr := testServer(t, pskServerConfig(t), h)
	log := &informationalLog{requests: map[uint32]int{}, dropRequests: dropRequests}
	front := lossyRelay(t, addr, log.filter(true))
	d := pskDialConfig(t)
	d.DPDInterval = -1
	adjust(d)
	c, err := Dial(context.Background(), loopbackConn(t), front, d)
	if err != nil {
		t.Fatal(err)
	}
	<-h.ups
	log.mu.Lock()
	log.armed = true
	log.mu.Unlock()
	return c, log
}
