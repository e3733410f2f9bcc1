package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/remotegate/remotegate/tunnel"
)

// hubSession is the part of a session the hub's address bookkeeping uses.
type hubSession struct {
	id     uint64
	remote netip.AddrPort
}

func (s *hubSession) ID() uint64                      { return s.id }
func (s *hubSession) Identity() tunnel.Identity       { return tunnel.Identity{Name: "client"} }
func (s *hubSession) Remote() netip.AddrPort          { return s.remote }
func (s *hubSession) Send([][]byte, int) (int, error) { return 0, nil }
func (s *hubSession) Close(error) error               { return nil }
func newHubSession(i int) *hubSession {
	return &hubSession{id: tunnel.NewSessionID(), remote: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(1000+i))}
}

// connect admits and brings up a session; it returns the addresses given.
func connect(t testing.TB, h *hub, s *hubSession) []netip.Prefix {
	t.Helper()
	asg, err := h.Admit(context.Background(), tunnel.Identity{Name: "client"}, s.remote)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	h.Up(s)
	return asg.Addresses
}

// TestHubAddresses: clients get the lowest free address after the
// gateway, never the broadcast address, the address of a client that left
// goes to the next one, and a full pool refuses.
func TestHubAddresses(t *testing.T) {
	h := newHub(netip.MustParsePrefix("10.8.0.0/29"), netip.MustParsePrefix("fd00:8::/64"), nil, false, nil)
	var ss []*hubSession
	for i := range 5 {
		s := newHubSession(i)
		got := connect(t, h, s)
		want := fmt.Sprintf("[10.8.0.%d/29 fd00:8::%x/64]", i+2, 0x1000+i)
		if fmt.Sprint(got) != want {
			t.Fatalf("client %d got %v, want %v", i, got, want)
		}
		ss = append(ss, s)
	}
	if _, err := h.Admit(context.Background(), tunnel.Identity{Name: "client"}, newHubSession(9).remote); !errors.Is(err, errPoolExhausted) {
		t.Fatalf("Admit to a full pool: %v", err)
	}
	h.Down(ss[3], nil)
	h.Down(ss[1], nil)
	for _, want := range []string{"[10.8.0.3/29 fd00:8::1001/64]", "[10.8.0.5/29 fd00:8::1003/64]"} {
		if got := connect(t, h, newHubSession(7)); fmt.Sprint(got) != want {
			t.Fatalf("after leaves: got %v, want %v", got, want)
		}
	}
	// A client admitted again from the same address before coming up
	// gives back what it was given first.
	h.Down(ss[0], nil)
	r := newHubSession(8).remote
	for range 2 {
		asg, err := h.Admit(context.Background(), tunnel.Identity{Name: "client"}, r)
		if err != nil || fmt.Sprint(asg.Addresses) != "[10.8.0.2/29 fd00:8::1000/64]" {
			t.Fatalf("Admit again: %v, %v", asg.Addresses, err)
		}
	}
}

// TestHubAddressesLargePool: a /22 fills to its last address below the
// broadcast one.
func TestHubAddressesLargePool(t *testing.T) {
	h := newHub(netip.MustParsePrefix("10.9.0.0/22"), netip.Prefix{}, nil, false, nil)
	var last []netip.Prefix
	for i := range 1021 {
		last = connect(t, h, newHubSession(i))
	}
	if fmt.Sprint(last) != "[10.9.3.254/22]" {
		t.Fatalf("last client got %v", last)
	}
	if _, err := h.Admit(context.Background(), tunnel.Identity{Name: "client"}, newHubSession(0).remote); !errors.Is(err, errPoolExhausted) {
		t.Fatalf("Admit to a full pool: %v", err)
	}
}

// BenchmarkHubAdmit is the hub's cost of one client leaving and another
// connecting with N clients connected, the oldest leaving first: it must
// not grow with N.
func BenchmarkHubAdmit(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			h := newHub(netip.MustParsePrefix("10.8.0.0/16"), netip.MustParsePrefix("fd00:8::/64"), nil, false, nil)
			ring := make([]*hubSession, n)
			for i := range ring {
				ring[i] = newHubSession(i)
				connect(b, h, ring[i])
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h.Down(ring[i], nil)
				ring[i].id = tunnel.NewSessionID()
				connect(b, h, ring[i])
				i = (i + 1) % n
			}
		})
	}
}

// TestHubSmallPool6: an IPv6 network too small for ::1000 hands out the
// addresses after the server's to its end, and when it is full the
// client's IPv4 address is not lost.
func TestHubSmallPool6(t *testing.T) {
	h := newHub(netip.MustParsePrefix("10.8.0.0/29"), netip.MustParsePrefix("fd00:8::/126"), nil, false, nil)
	for i, want := range []string{"[10.8.0.2/29 fd00:8::2/126]", "[10.8.0.3/29 fd00:8::3/126]"} {
		if got := connect(t, h, newHubSession(i)); fmt.Sprint(got) != want {
			t.Fatalf("client %d got %v, want %v", i, got, want)
		}
	}
	if _, err := h.Admit(context.Background(), tunnel.Identity{Name: "client"}, newHubSession(5).remote); !errors.Is(err, errPoolExhausted) {
		t.Fatalf("Admit to a full IPv6 pool: %v", err)
	}
	if i, _ := h.pool4.Get(); h.addr4(i) != netip.MustParseAddr("10.8.0.4") {
		t.Fatalf("the refused client kept an IPv4 address: next is %v", h.addr4(i))
	}
}
