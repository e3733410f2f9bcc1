package broker

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// namedSession is a session of a participant, for the broker's
// bookkeeping.
type namedSession struct {
	fakeSession
	name string
}

func (s *namedSession) Identity() tunnel.Identity { return tunnel.Identity{Name: s.name} }

func newNamedSession(name string) *namedSession {
	return &namedSession{fakeSession: fakeSession{id: tunnel.NewSessionID()}, name: name}
}

// scaleBroker is a broker for n users (u0 ...) with the connect-vpn right
// and one device, all of them online but user n-1, on a /16 pool.
func scaleBroker(tb testing.TB, n int) (*Broker, []*namedSession) {
	tb.Helper()
	m := &policy.Model{
		Devices: []policy.Device{{Name: "dev1", Groups: []string{"plant1"}}},
		Groups:  []policy.Group{{Name: "engineers"}, {Name: "plant1"}},
		Relations: []policy.Relation{{Name: "eng-plant1", From: "engineers", To: "plant1", Direction: policy.OneWay,
			Services: []policy.Service{{Proto: policy.ProtoTCP}}}},
	}
	for i := range n {
		m.Users = append(m.Users, policy.User{Name: fmt.Sprintf("u%d", i), Groups: []string{"engineers"}, Roles: []string{policy.RoleVPNUser}})
	}
	snap, err := policy.Compile(m)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := New(Config{Policy: snap, Pool: netip.MustParsePrefix("10.8.0.0/16"),
		Devices: map[string]DeviceNetworks{"dev1": {LANs: []netip.Prefix{lan}}}})
	if err != nil {
		tb.Fatal(err)
	}
	ss := make([]*namedSession, n)
	for i := range n {
		ss[i] = newNamedSession(fmt.Sprintf("u%d", i))
		if _, err := b.Admit(tb.Context(), ss[i].Identity(), netip.AddrPort{}); err != nil {
			tb.Fatal(err)
		}
	}
	// Brought up together: one table build instead of one per session.
	b.mu.Lock()
	for _, s := range ss[:n-1] {
		b.online[s.name] = s
		b.since[s.name] = b.now()
	}
	err = b.rebuild()
	b.mu.Unlock()
	if err != nil {
		tb.Fatal(err)
	}
	return b, ss
}

// BenchmarkBrokerConnect is the broker's cost of one participant leaving
// and another connecting (Admit and Up) with N participants online: it
// must not grow with N.
func BenchmarkBrokerConnect(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			br, ss := scaleBroker(b, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// The one offline connects, the oldest one leaves.
				on, off := ss[(i+n-1)%n], ss[i%n]
				on.id = tunnel.NewSessionID()
				if _, err := br.Admit(b.Context(), on.Identity(), netip.AddrPort{}); err != nil {
					b.Fatal(err)
				}
				br.Up(on)
				br.Down(off, nil)
				i++
			}
		})
	}
}

// BenchmarkBrokerAddress is the allocation of a tunnel address to a
// participant never seen before, with N addresses taken: it must not grow
// with N.
func BenchmarkBrokerAddress(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			br, _ := scaleBroker(b, n)
			b.ReportAllocs()
			br.mu.Lock()
			defer br.mu.Unlock()
			for b.Loop() {
				a, err := br.addressFor("newcomer")
				if err != nil {
					b.Fatal(err)
				}
				br.dropAddress("newcomer", a)
			}
		})
	}
}

// dropAddress gives an address back to the pool (the broker itself keeps
// a participant's address for good); b.mu is held.
func (b *Broker) dropAddress(name string, a netip.Addr) {
	delete(b.addresses, name)
	if i, ok := b.offset(a); ok {
		b.free.Put(i)
	}
}
