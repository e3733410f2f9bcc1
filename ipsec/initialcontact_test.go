package ipsec

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestInitialContactClosesStaleSessions: a participant that connects again
// with INITIAL_CONTACT (it holds no other IKE SA) has its older session
// closed, and another participant's session is left alone; the server
// finds them through its index by name, not a scan of every IKE SA.
func TestInitialContactClosesStaleSessions(t *testing.T) {
	h := newEchoHandler()
	cfg := pskServerConfig(t)
	cfg.PSK = func(id ID) ([]byte, string, bool) {
		switch id.String() {
		case "device.test":
			return []byte(testPSK), "device", true
		case "other.test":
			return []byte(testPSK), "other", true
		}
		return nil, "", false
	}
	srv, addr := testServer(t, cfg, h)
	dial := func(local string) *Client {
		d := pskDialConfig(t)
		d.LocalID = FQDN(local)
		c, err := Dial(context.Background(), loopbackConn(t), addr, d)
		if err != nil {
			t.Fatal(err)
		}
		<-h.ups
		return c
	}
	stale := dial("device.test")
	defer func() { go stale.Close() }() // the server dropped it: no answer
	other := dial("other.test")
	defer other.Close()
	if n := len(srv.byNameSnapshot("device")); n != 1 {
		t.Fatalf("%d IKE SAs indexed for device, want 1", n)
	}

	fresh := dial("device.test")
	defer fresh.Close()
	select {
	case cause := <-h.downs:
		if !strings.Contains(cause.Error(), "INITIAL_CONTACT") {
			t.Fatalf("a session went down for %v", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stale session of device was not closed")
	}
	roundTrip(t, fresh, testVIP, testPeer, 3)
	roundTrip(t, other, testVIP, testPeer, 3)
	select {
	case cause := <-h.downs:
		t.Fatalf("another session went down: %v", cause)
	default:
	}
	// The stale IKE SA leaves the index when it is forgotten, which may
	// follow the Down.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, m := len(srv.byNameSnapshot("device")), len(srv.byNameSnapshot("other"))
		if n == 1 && m == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("IKE SAs indexed: device %d, other %d; want 1 each", n, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// byNameSnapshot is the IKE SAs indexed under a participant's name.
func (s *Server) byNameSnapshot(name string) []*ikeSA {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*ikeSA
	for sa := range s.byName[name] {
		out = append(out, sa)
	}
	return out
}
