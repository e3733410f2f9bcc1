package broker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// offlineLab is the plant lab with only u1 online: the devices are known
// with their networks, offline.
func offlineLab(t *testing.T) (*lab, func(string) policy.ParticipantID) {
	t.Helper()
	l := newLab(t)
	snap := l.sw.filter.Snapshot()
	eps := l.endpoints(snap)
	for i := 1; i < len(eps); i++ {
		eps[i].Session, eps[i].Addresses = nil, nil
	}
	if err := l.sw.Update(nil, []Endpoint{eps[0], eps[2], eps[3]}); err != nil {
		t.Fatal(err)
	}
	return l, func(name string) policy.ParticipantID { p, _ := snap.Lookup(name); return p }
}

// TestSwitchAttachDetach: a device whose session comes up is reached under
// its alias and its tunnel address, and when it goes its alias counts as
// offline and its tunnel address as unrouted; a user replaced by a new
// session sends only through the new one.
func TestSwitchAttachDetach(t *testing.T) {
	l, id := offlineLab(t)
	alias1 := netip.MustParseAddr("10.200.1.10")
	drops := func(r DropReason) uint64 { return l.sw.Stats().Dropped[r] }

	off := drops(DropOffline)
	l.deliver(l.u1, tcpPacket(t, u1Addr, alias1, 40000, 502, true))
	if drops(DropOffline) != off+1 {
		t.Fatal("a packet to an offline device was not counted as offline")
	}

	if err := l.sw.Attach(id("dev1"), l.dev1, []netip.Addr{dev1Addr}); err != nil {
		t.Fatal(err)
	}
	l.deliver(l.u1, tcpPacket(t, u1Addr, alias1, 40000, 502, true))
	got := l.dev1.take()
	if len(got) != 1 {
		t.Fatalf("device 1 got %d packets after it came up, want 1", len(got))
	}
	checkTCP(t, got[0], u1Addr, plc)
	l.deliver(l.dev1, tcpPacket(t, plc, u1Addr, 502, 40000, false))
	if got := l.u1.take(); len(got) != 1 {
		t.Fatalf("u1 got %d replies from the device, want 1", len(got))
	}

	l.sw.Detach(id("dev1"), l.dev2) // not its session: nothing changes
	l.deliver(l.u1, tcpPacket(t, u1Addr, alias1, 40000, 502, false))
	if len(l.dev1.take()) != 1 {
		t.Fatal("a Detach of another session took device 1 off")
	}

	l.sw.Detach(id("dev1"), l.dev1)
	off, noRoute, unknown := drops(DropOffline), drops(DropNoRoute), drops(DropUnknownPeer)
	l.deliver(l.u1, tcpPacket(t, u1Addr, alias1, 40000, 502, false))
	l.deliver(l.u1, icmpEcho(t, u1Addr, dev1Addr, 8))
	l.deliver(l.dev1, tcpPacket(t, plc, u1Addr, 502, 40000, false))
	if drops(DropOffline) != off+1 || drops(DropNoRoute) != noRoute+1 || drops(DropUnknownPeer) != unknown+1 {
		t.Fatalf("after the device left: offline %d, no route %d, unknown peer %d drops; want 1 each",
			drops(DropOffline)-off, drops(DropNoRoute)-noRoute, drops(DropUnknownPeer)-unknown)
	}
	if len(l.dev1.take()) != 0 {
		t.Fatal("a detached device still gets packets")
	}

	// u1 reconnects: the old session is no longer a sender.
	if err := l.sw.Attach(id("dev1"), l.dev1, []netip.Addr{dev1Addr}); err != nil {
		t.Fatal(err)
	}
	u1b := &fakeSession{id: 99, keep: true}
	if err := l.sw.Attach(id("u1"), u1b, []netip.Addr{u1Addr}); err != nil {
		t.Fatal(err)
	}
	unknown = drops(DropUnknownPeer)
	l.deliver(l.u1, tcpPacket(t, u1Addr, alias1, 40000, 502, false))
	l.deliver(u1b, tcpPacket(t, u1Addr, alias1, 40000, 502, false))
	if drops(DropUnknownPeer) != unknown+1 || len(l.dev1.take()) != 1 {
		t.Fatal("after u1 was replaced: the old session still sends or the new one does not")
	}
	l.deliver(l.dev1, tcpPacket(t, plc, u1Addr, 502, 40000, false))
	if len(u1b.take()) != 1 || len(l.u1.take()) != 0 {
		t.Fatal("replies to u1 do not go to its new session only")
	}

	// A user leaving is gone from the tables altogether.
	l.sw.Detach(id("u1"), u1b)
	noRoute = drops(DropNoRoute)
	l.deliver(l.dev1, tcpPacket(t, plc, u1Addr, 502, 40000, false))
	if drops(DropNoRoute) != noRoute+1 {
		t.Fatal("a packet to a user who left was not counted as unrouted")
	}
}

func TestSwitchAttachConflicts(t *testing.T) {
	l, id := offlineLab(t)
	for _, a := range []string{u1Addr.String(), "10.200.1.77"} {
		err := l.sw.Attach(id("u2"), l.u2, []netip.Addr{netip.MustParseAddr(a)})
		if !errors.Is(err, ErrRouteConflict) {
			t.Fatalf("u2 attached with %s: %v, want ErrRouteConflict", a, err)
		}
	}
	// Nothing changed: u2 is not a sender, u1 still reaches its address.
	before := l.sw.Stats().Dropped[DropUnknownPeer]
	l.deliver(l.u2, tcpPacket(t, u2Addr, u1Addr, 1, 2, true))
	if l.sw.Stats().Dropped[DropUnknownPeer] != before+1 {
		t.Fatal("a refused Attach left its session attached")
	}
}

// TestBrokerAttachMatchesRebuild runs random connects and disconnects
// through the broker, whose switch changes in place, and compares its
// tables with those Update builds from scratch for the same sessions.
func TestBrokerAttachMatchesRebuild(t *testing.T) {
	b, ss := scaleBroker(t, 60)
	r := rand.New(rand.NewPCG(1, 2))
	dev := newNamedSession("dev1")
	for step := range 400 {
		k := r.IntN(len(ss))
		s := ss[k]
		if step%50 == 0 {
			s = dev
		}
		b.mu.Lock()
		online := b.online[s.name] == s
		b.mu.Unlock()
		switch {
		case online && s != dev && r.IntN(4) == 0:
			// A reconnect that replaces the live session; the transport
			// then reports the old one down.
			n := newNamedSession(s.name)
			if _, err := b.Admit(t.Context(), n.Identity(), netip.AddrPort{}); err != nil {
				t.Fatal(err)
			}
			b.Up(n)
			b.Down(s, nil)
			ss[k] = n
		case online:
			b.Down(s, nil)
		default:
			s.id = tunnel.NewSessionID()
			if _, err := b.Admit(t.Context(), s.Identity(), netip.AddrPort{}); err != nil {
				t.Fatal(err)
			}
			b.Up(s)
		}
		if step%20 == 0 {
			compareWithRebuild(t, b)
		}
	}
	compareWithRebuild(t, b)
}

// compareWithRebuild checks that the broker's switch routes and accepts
// the same as one built by Update from the broker's sessions.
func compareWithRebuild(t *testing.T, b *Broker) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	ref := NewSwitch(b.snap, SwitchConfig{})
	cur := b.sw
	b.sw = ref
	err := b.rebuild()
	b.sw = cur
	if err != nil {
		t.Fatal(err)
	}
	describe := func(st *switchState) string {
		var out []string
		st.hosts.Range(func(a netip.Addr, sl *slot) bool {
			e := sl.ep.Load()
			out = append(out, fmt.Sprintf("host %v -> %d/%d", a, e.Participant, e.Session.ID()))
			return true
		})
		st.bySession.Range(func(id uint64, e *endpoint) bool {
			out = append(out, fmt.Sprintf("session %d -> %d %v", id, e.Participant, e.sources))
			return true
		})
		for p, sl := range st.routes {
			e := sl.ep.Load()
			var sid uint64
			if e.Session != nil {
				sid = e.Session.ID()
			}
			out = append(out, fmt.Sprintf("route %v -> %d/%d %v", p, e.Participant, sid, e.sources))
		}
		slices.Sort(out)
		return fmt.Sprint(out)
	}
	if got, want := describe(cur.state.Load()), describe(ref.state.Load()); got != want {
		t.Fatalf("switch after Attach/Detach:\n%s\nrebuilt:\n%s", got, want)
	}
}

// TestSwitchAttachConcurrent delivers packets from a user to a device while
// other users connect and disconnect (run with -race): the device gets
// every packet.
func TestSwitchAttachConcurrent(t *testing.T) {
	l, id := offlineLab(t)
	if err := l.sw.Attach(id("dev1"), l.dev1, []netip.Addr{dev1Addr}); err != nil {
		t.Fatal(err)
	}
	l.dev1.keep = false
	var stop atomic.Bool
	var wg sync.WaitGroup
	var sent atomic.Int64
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				l.deliver(l.u1, tcpPacket(t, u1Addr, netip.MustParseAddr("10.200.1.10"), 40000, 502, false))
				sent.Add(1)
			}
		})
	}
	sessions := make([]*fakeSession, 200)
	for round := range 20 {
		for i := range sessions {
			sessions[i] = &fakeSession{id: uint64(1000 + round*1000 + i)}
			a := netip.AddrFrom4([4]byte{10, 8, 1, byte(i)})
			// u2's id stands for many users: each Attach replaces the last.
			if err := l.sw.Attach(id("u2"), sessions[i], []netip.Addr{a}); err != nil {
				t.Error(err)
			}
		}
		l.sw.Detach(id("u2"), sessions[len(sessions)-1])
	}
	stop.Store(true)
	wg.Wait()
	l.dev1.mu.Lock()
	n := l.dev1.n
	l.dev1.mu.Unlock()
	if int64(n) != sent.Load() {
		t.Fatalf("device got %d of %d packets", n, sent.Load())
	}
}
