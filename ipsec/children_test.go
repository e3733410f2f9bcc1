package ipsec

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

var (
	testLAN1  = netip.MustParsePrefix("10.241.0.0/24")
	testLAN2  = netip.MustParsePrefix("10.242.0.0/24")
	testHost1 = netip.MustParseAddr("10.241.0.7")
	testHost2 = netip.MustParseAddr("10.242.0.9")
)

// twoLANs dials a server that assigns both LANs with one child SA per
// LAN, the second by CREATE_CHILD_SA, and returns the Client and the
// server's session.
func twoLANs(t *testing.T) (*Client, *session, *Server) {
	t.Helper()
	h := newEchoHandler()
	h.networks = []netip.Prefix{testLAN1, testLAN2}
	srv, addr := testServer(t, pskServerConfig(t), h)
	d := pskDialConfig(t)
	d.RequestAddress = false
	d.LocalTS = []netip.Prefix{testLAN1}
	d.RemoteTS = []netip.Prefix{testRoute}
	d.AdditionalChildren = []ChildTS{{LocalTS: []netip.Prefix{testLAN2}, RemoteTS: []netip.Prefix{testRoute}}}
	c, err := Dial(context.Background(), loopbackConn(t), addr, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var sess tunnel.Session
	select {
	case sess = <-h.ups:
	case <-time.After(5 * time.Second):
		t.Fatal("no session came up")
	}
	// The server adds the child SA once its answer is on its way.
	ss := sess.(*session)
	waitFor(t, "the server's second child SA", 5*time.Second, func() bool { return len(ss.link.out.all()) == 2 })
	return c, ss, srv
}

// childOf returns the child SA of a set whose local traffic selectors
// cover a.
func childOf(t *testing.T, s *childSet, a netip.Addr) *childSA {
	t.Helper()
	for _, c := range s.all() {
		if covered(c.localTS, a) || covered(c.peerTS, a) {
			return c
		}
	}
	t.Fatalf("no child SA covers %v", a)
	return nil
}

// sentOn counts the ESP packets each child SA of a set sealed.
func sentOn(s *childSet) map[uint32]uint64 {
	m := map[uint32]uint64{}
	for _, c := range s.all() {
		m[c.outSPI] = c.out.Sent()
	}
	return m
}

// Two LANs as two child SAs, Go to Go: each LAN's packets leave on its
// own child in both directions, a packet for neither is dropped and
// counted.
func TestTwoChildrenPickBySelectors(t *testing.T) {
	c, sess, srv := twoLANs(t)
	if n := len(c.link.out.all()); n != 2 {
		t.Fatalf("the Client has %d child SAs, want 2", n)
	}
	if ts := c.LocalTS(); len(ts) != 2 || ts[0] != testLAN1 || ts[1] != testLAN2 {
		t.Errorf("LocalTS %v, want both LANs", ts)
	}
	c1, c2 := childOf(t, &c.link.out, testHost1), childOf(t, &c.link.out, testHost2)
	s1, s2 := childOf(t, &sess.link.out, testHost1), childOf(t, &sess.link.out, testHost2)
	if c1 == c2 || s1 == s2 || c1.outSPI != s1.inSPI || c2.outSPI != s2.inSPI {
		t.Fatalf("child SAs do not pair up: client %08x/%08x, server %08x/%08x", c1.outSPI, c2.outSPI, s1.inSPI, s2.inSPI)
	}

	cBefore, sBefore := sentOn(&c.link.out), sentOn(&sess.link.out)
	roundTrip(t, c, testHost1, testPeer, 5)
	roundTrip(t, c, testHost2, testPeer, 3)
	cAfter, sAfter := sentOn(&c.link.out), sentOn(&sess.link.out)
	if d1, d2 := cAfter[c1.outSPI]-cBefore[c1.outSPI], cAfter[c2.outSPI]-cBefore[c2.outSPI]; d1 != 5 || d2 != 3 {
		t.Errorf("the Client sent %d packets on the LAN 1 child and %d on the LAN 2 child, want 5 and 3", d1, d2)
	}
	// The echoes go back on the child of their destination's LAN.
	if d1, d2 := sAfter[s1.outSPI]-sBefore[s1.outSPI], sAfter[s2.outSPI]-sBefore[s2.outSPI]; d1 != 5 || d2 != 3 {
		t.Errorf("the server sent %d packets on the LAN 1 child and %d on the LAN 2 child, want 5 and 3", d1, d2)
	}
	if in1, in2 := c1.in.Stats(), c2.in.Stats(); in1.Packets != 5 || in2.Packets != 3 {
		t.Errorf("the Client received %d packets on the LAN 1 child and %d on the LAN 2 child, want 5 and 3", in1.Packets, in2.Packets)
	}

	// A packet from neither LAN: no child carries it.
	n, err := c.Write([][]byte{ipv4UDP(netip.MustParseAddr("10.243.0.1"), testPeer, []byte("stray"))}, tunnel.Headroom)
	if err != nil || n != 0 || c.Unroutable() != 1 {
		t.Errorf("Write of a packet no child covers: %d sent, %v, %d unroutable", n, err, c.Unroutable())
	}
	// The server's side: a packet to an address neither child covers.
	pkt := ipv4UDP(testPeer, netip.MustParseAddr("10.243.0.1"), []byte("stray"))
	if n, err := sess.Send([][]byte{pkt}, tunnel.Headroom); err != nil || n != 0 || srv.Stats().Unroutable != 1 {
		t.Errorf("Send of a packet no child covers: %d sent, %v, %d unroutable", n, err, srv.Stats().Unroutable)
	}
	if got := sentOn(&c.link.out); got[c1.outSPI] != cAfter[c1.outSPI] || got[c2.outSPI] != cAfter[c2.outSPI] {
		t.Errorf("the stray packet went out on a child SA: %v, before %v", got, cAfter)
	}
}

// Deleting one of two child SAs leaves the other carrying; the IKE SA
// stays up.
func TestTwoChildrenDeleteOne(t *testing.T) {
	c, sess, _ := twoLANs(t)
	c2 := childOf(t, &c.link.out, testHost2)
	c.link.mu.Lock()
	c.ike.deleteChild(c2)
	c.link.mu.Unlock()
	waitFor(t, "the server to delete the LAN 2 child", 5*time.Second, func() bool { return len(sess.link.out.all()) == 1 })
	waitFor(t, "the Client to delete the LAN 2 child", 5*time.Second, func() bool { return len(c.link.out.all()) == 1 })
	if s1 := sess.link.out.Load(); !covered(s1.peerTS, testHost1) {
		t.Fatalf("the server kept the child of %v", tsString(s1.peerTS))
	}
	roundTrip(t, c, testHost1, testPeer, 3)
	if n, err := c.Write([][]byte{ipv4UDP(testHost2, testPeer, []byte("lan 2"))}, tunnel.Headroom); err != nil || n != 0 || c.Unroutable() != 1 {
		t.Errorf("Write for the deleted child: %d sent, %v, %d unroutable", n, err, c.Unroutable())
	}
	if c.Err() != nil || !sess.up.Load() {
		t.Errorf("the tunnel went down with one child left: %v", c.Err())
	}
}

// Rekeying one of two child SAs moves only its traffic to the new child;
// the other child stays the same SA.
func TestTwoChildrenRekeyOne(t *testing.T) {
	c, sess, _ := twoLANs(t)
	c1, c2 := childOf(t, &c.link.out, testHost1), childOf(t, &c.link.out, testHost2)
	s2 := childOf(t, &sess.link.out, testHost2)
	c.link.mu.Lock()
	err := c.ike.rekeyChild(c1)
	c.link.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rekey of the LAN 1 child", 5*time.Second, func() bool {
		n := childOf(t, &c.link.out, testHost1)
		return n != c1 && len(c.link.out.all()) == 2
	})
	n1 := childOf(t, &c.link.out, testHost1)
	if childOf(t, &c.link.out, testHost2) != c2 || childOf(t, &sess.link.out, testHost2) != s2 {
		t.Fatal("the rekey of the LAN 1 child replaced the LAN 2 child")
	}
	sent2 := c2.out.Sent()
	roundTrip(t, c, testHost1, testPeer, 4)
	roundTrip(t, c, testHost2, testPeer, 2)
	if n1.out.Sent() != 4 || c2.out.Sent() != sent2+2 {
		t.Errorf("after the rekey: %d packets on the new LAN 1 child (want 4), %d more on the LAN 2 child (want 2)", n1.out.Sent(), c2.out.Sent()-sent2)
	}
}

// An additional child SA outside what the Handler assigned is refused
// with TS_UNACCEPTABLE, and Dial fails.
func TestAdditionalChildOutsideAssignment(t *testing.T) {
	h := newEchoHandler()
	h.networks = []netip.Prefix{testLAN1}
	_, addr := testServer(t, pskServerConfig(t), h)
	d := pskDialConfig(t)
	d.RequestAddress = false
	d.LocalTS = []netip.Prefix{testLAN1}
	d.RemoteTS = []netip.Prefix{testRoute}
	d.AdditionalChildren = []ChildTS{{LocalTS: []netip.Prefix{testLAN2}, RemoteTS: []netip.Prefix{testRoute}}}
	_, err := Dial(context.Background(), loopbackConn(t), addr, d)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "TS_UNACCEPTABLE") {
		t.Errorf("Dial with a second LAN the server does not assign: %v", err)
	}
	d.AdditionalChildren = []ChildTS{{LocalTS: []netip.Prefix{testLAN2}}}
	if _, err := Dial(context.Background(), loopbackConn(t), addr, d); !errors.Is(err, ErrConfig) {
		t.Errorf("an additional child without remote selectors: %v", err)
	}
}

// pick: each packet on the child that covers it; where a wide first child
// (a peer's 0.0.0.0/0 narrowed to all it was assigned) overlaps a child
// added for one LAN, that LAN's packets take the narrower, later child.
// Without allocating.
func TestChildSetPick(t *testing.T) {
	sel := func(ps ...string) []message.Selector {
		var out []netip.Prefix
		for _, p := range ps {
			out = append(out, netip.MustParsePrefix(p))
		}
		return selectorsOf(out)
	}
	local := sel("10.98.0.0/24")
	wide := &childSA{localTS: local, peerTS: sel("10.241.0.0/24", "10.242.0.0/24", "10.99.0.2/32")}
	lan2 := &childSA{localTS: local, peerTS: sel("10.242.0.0/24")}
	v6 := &childSA{localTS: sel("fd00::/64"), peerTS: sel("fd01::/48")}
	var s childSet
	if s.pick(ipv4UDP(testPeer, testHost1, nil)[tunnel.Headroom:]) != nil {
		t.Fatal("an empty set picked a child")
	}
	s.Store(wide)
	s.add(lan2)
	s.add(v6)
	for _, c := range []struct {
		src, dst string
		want     *childSA
	}{
		{"10.98.0.1", "10.241.0.7", wide},
		{"10.98.0.1", "10.99.0.2", wide},
		{"10.98.0.1", "10.242.0.9", lan2},
		{"10.98.0.1", "10.243.0.1", nil},
		{"10.97.0.1", "10.242.0.9", nil},
		{"fd00::1", "fd01:0:0:5::1", v6},
		{"fd00::1", "fd02::1", nil},
	} {
		pkt := make([]byte, 40)
		src, dst := netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst)
		if src.Is4() {
			pkt[0] = 0x45
			copy(pkt[12:], src.AsSlice())
			copy(pkt[16:], dst.AsSlice())
		} else {
			pkt = make([]byte, 60)
			pkt[0] = 0x60
			copy(pkt[8:], src.AsSlice())
			copy(pkt[24:], dst.AsSlice())
		}
		if got := s.pick(pkt); got != c.want {
			t.Errorf("%s -> %s: picked %p, want %p", c.src, c.dst, got, c.want)
		}
	}
	pkt := ipv4UDP(testPeer, testHost2, nil)[tunnel.Headroom:]
	if a := testing.AllocsPerRun(1000, func() { s.pick(pkt) }); a != 0 {
		t.Errorf("pick allocates %v times", a)
	}
	// Replacing a child keeps its place; removing the last empties the set.
	n := &childSA{localTS: local, peerTS: sel("10.242.0.0/24")}
	if !s.CompareAndSwap(lan2, n) || s.all()[1] != n || s.pick(pkt) != n {
		t.Errorf("after replacing the LAN 2 child: %v", s.all())
	}
	for _, c := range []*childSA{wide, n, v6} {
		if !s.CompareAndSwap(c, nil) {
			t.Fatalf("removing %p failed", c)
		}
	}
	if s.Load() != nil || s.CompareAndSwap(wide, nil) {
		t.Errorf("the set is not empty: %v", s.all())
	}
}

// BenchmarkChildSetPick is the data path's cost of choosing the child SA,
// with one child (the common case) and with two.
func BenchmarkChildSetPick(b *testing.B) {
	local := selectorsOf([]netip.Prefix{testRoute})
	one := &childSA{localTS: local, peerTS: selectorsOf([]netip.Prefix{testLAN1})}
	two := &childSA{localTS: local, peerTS: selectorsOf([]netip.Prefix{testLAN2})}
	pkt := ipv4UDP(testPeer, testHost2, nil)[tunnel.Headroom:]
	for _, set := range []struct {
		name     string
		children []*childSA
	}{{"one", []*childSA{two}}, {"two", []*childSA{one, two}}} {
		b.Run(set.name, func(b *testing.B) {
			var s childSet
			for _, c := range set.children {
				s.add(c)
			}
			b.ReportAllocs()
			for b.Loop() {
				if s.pick(pkt) != two {
					b.Fatal("wrong child")
				}
			}
		})
	}
}
