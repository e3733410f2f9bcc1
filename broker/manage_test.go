package broker

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/nat"
	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// The management view of live sessions: who is online with which protocol
// and address, termination by an administrator, and a relation added while
// a user is connected taking effect without a reconnect.
func TestManagementView(t *testing.T) {
	l := newBrokerLab(t)
	var evMu sync.Mutex
	var events []string
	l.b.mu.Lock() // the server goroutine may already be running
	l.b.events = func(e Event) {
		evMu.Lock()
		events = append(events, e.Kind+" "+e.Participant)
		evMu.Unlock()
	}
	l.b.mu.Unlock()
	u1 := l.mustDial(t, "u1")
	u2 := l.mustDial(t, "u2")
	dev2 := l.mustDial(t, "dev2")
	_ = u1

	sessions := l.b.Sessions()
	if len(sessions) != 3 || sessions[0].Participant != "dev2" || sessions[1].Participant != "u1" || sessions[2].Participant != "u2" {
		t.Fatalf("Sessions() = %+v; want dev2, u1, u2", sessions)
	}
	for _, s := range sessions {
		if s.Protocol != "openvpn/udp" || !s.Address.IsValid() || !s.Remote.IsValid() || time.Since(s.Since) > time.Minute {
			t.Errorf("session %+v lacks protocol, address, remote or start time", s)
		}
	}
	for name, want := range map[string]Status{"u1": StatusOnline, "dev1": StatusOffline, "mallory": StatusUnknown} {
		if got := l.b.Status(name); got != want {
			t.Errorf("Status(%s) = %s, want %s", name, got, want)
		}
	}

	// u2 has no relation: its packets to plant 2 are dropped. Adding one
	// (the broker pushes no new routes, so the test's client, which routes
	// nothing itself, stands for a client with a covering route) lets the
	// next packet through.
	alias := netip.MustParseAddr("10.200.2.10")
	u2Addr := u2.Pushed().Address.Addr()
	send(t, u2, tcpPacket(t, u2Addr, alias, 40000, 502, true))
	if pkt := receive(dev2, 300*time.Millisecond); pkt != nil {
		t.Fatal("u2 reached plant 2 before it had a relation")
	}
	m := brokerModel()
	m.Users[1].Groups = []string{"u2s"}
	m.Groups = append(m.Groups, policy.Group{Name: "u2s"})
	m.Relations = append(m.Relations, policy.Relation{Name: "u2-plant2", From: "u2s", To: "plant2", Direction: policy.OneWay})
	snap, err := policy.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	nat1, _ := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.1.0/24")})
	nat2, _ := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.2.0/24")})
	devices := map[string]DeviceNetworks{"dev1": {LANs: []netip.Prefix{lan}, NAT: nat1}, "dev2": {LANs: []netip.Prefix{lan}, NAT: nat2}}
	if err := l.b.Apply(snap, devices); err != nil {
		t.Fatal(err)
	}
	send(t, u2, tcpPacket(t, u2Addr, alias, 40001, 502, true))
	if pkt := receive(dev2, 2*time.Second); pkt == nil {
		t.Fatalf("u2 did not reach plant 2 after its relation was added: %+v, %s", l.b.Switch().Stats(), func() string {
			from, _ := snap.Lookup("u2")
			to, _ := snap.Lookup("dev2")
			f := &policy.Flow{From: from, To: to, Proto: 6, DstPort: 502}
			return snap.Explain(f, snap.Allowed(f, time.Now()))
		}())
	}

	// Two devices claiming the same alias: refused, and the old tables stay.
	clash := map[string]DeviceNetworks{"dev1": {LANs: []netip.Prefix{lan}, NAT: nat2}, "dev2": {LANs: []netip.Prefix{lan}, NAT: nat2}}
	if err := l.b.Apply(snap, clash); !errors.Is(err, ErrRouteConflict) {
		t.Fatalf("Apply with overlapping aliases = %v; want ErrRouteConflict", err)
	}
	send(t, u2, tcpPacket(t, u2Addr, alias, 40002, 502, true))
	if pkt := receive(dev2, 2*time.Second); pkt == nil {
		t.Fatal("a refused Apply disturbed the tables in use")
	}

	if !l.b.Terminate("u2", nil) {
		t.Fatal("Terminate(u2) found no session")
	}
	if l.b.Terminate("u2", nil) {
		t.Fatal("Terminate(u2) twice found a session the second time")
	}
	if got := l.b.Status("u2"); got != StatusOffline {
		t.Fatalf("after Terminate, Status(u2) = %s", got)
	}
	if _, err := u2.Read([][]byte{make([]byte, 2048)}, []int{0}, 96); err == nil {
		t.Fatal("u2's client still reads after Terminate")
	}
	if _, err := l.dial(t, "mallory"); err == nil {
		t.Fatal("mallory connected")
	}
	evMu.Lock()
	defer evMu.Unlock()
	want := []string{"connect u1", "connect u2", "connect dev2", "disconnect u2", "refused mallory"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q; want %q", events, want)
	}
}

func TestUserRoutesArePushedToEveryUser(t *testing.T) {
	snap, err := policy.Compile(brokerModel())
	if err != nil {
		t.Fatal(err)
	}
	wide := netip.MustParsePrefix("10.200.0.0/16")
	b, err := New(Config{Policy: snap, Pool: netip.MustParsePrefix("10.8.0.0/24"), UserRoutes: []netip.Prefix{wide}})
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	b.onAddress = func(name string, a netip.Addr) { stored = append(stored, name+"="+a.String()) }
	for _, name := range []string{"u1", "u2"} {
		asg, err := b.Admit(t.Context(), identity(name), netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		if len(asg.Routes) == 0 || asg.Routes[0] != wide {
			t.Errorf("%s routes %v; want %v first", name, asg.Routes, wide)
		}
	}
	if len(stored) != 2 || stored[0] != "u1=10.8.0.2" || stored[1] != "u2=10.8.0.3" {
		t.Fatalf("OnAddress saw %v", stored)
	}
}

func identity(name string) tunnel.Identity { return tunnel.Identity{Name: name} }
