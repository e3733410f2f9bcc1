package ipsec

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

// testClock is a clock that stands still until the test moves it, shared
// by both sides of a loopback tunnel: lifetimes pass when the test says,
// and both sides' ticks see the same time.
type testClock struct {
	base time.Time
	off  atomic.Int64
}

func newTestClock() *testClock { return &testClock{base: time.Now()} }

func (c *testClock) now() time.Time          { return c.base.Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// rekeyLab is a Client and a Server on loopback with a shared test clock
// and no dead peer detection.
type rekeyLab struct {
	t   *testing.T
	clk *testClock
	srv *Server
	c   *Client
	h   *echoHandler
	ss  *session
}

func newRekeyLab(t *testing.T, server func(*Config), client func(*DialConfig)) *rekeyLab {
	t.Helper()
	l := &rekeyLab{t: t, clk: newTestClock(), h: newEchoHandler()}
	cfg := pskServerConfig(t)
	cfg.DPDInterval, cfg.Now = -1, l.clk.now
	if server != nil {
		server(&cfg)
	}
	srv, saddr := testServer(t, cfg, l.h)
	l.srv = srv
	d := pskDialConfig(t)
	d.DPDInterval, d.Now = -1, l.clk.now
	if client != nil {
		client(d)
	}
	c, err := Dial(context.Background(), loopbackConn(t), saddr, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l.c = c
	select {
	case s := <-l.h.ups:
		l.ss = s.(*session)
	case <-time.After(10 * time.Second):
		t.Fatal("no session")
	}
	return l
}

// sides are the current IKE SAs of the Client and of the Server.
func (l *rekeyLab) sides() (cli, srv *ikeSA) {
	l.c.link.mu.Lock()
	cli = l.c.ike
	l.c.link.mu.Unlock()
	return cli, l.ss.sa.Load()
}

// snapshot is what one side has: its IKE SA's SPIs, its children's SPIs
// and the child it sends on.
type snapshot struct {
	spii, spir [8]byte
	children   [][2]uint32 // in, out
	out        *childSA
	rekeys     rekeyCounts
}

func snap(sa *ikeSA) snapshot {
	sa.link.mu.Lock()
	defer sa.link.mu.Unlock()
	s := snapshot{spii: sa.spii, spir: sa.spir, out: sa.link.out.Load(), rekeys: sa.link.rekeys}
	for _, c := range sa.children {
		s.children = append(s.children, [2]uint32{c.inSPI, c.outSPI})
	}
	return s
}

// settled waits until both sides have one child SA, the same pair of
// SPIs, different from before, send on it, and agree on the IKE SA; it
// returns the two snapshots.
func (l *rekeyLab) settled(what string, before snapshot) (cli, srv snapshot) {
	l.t.Helper()
	waitFor(l.t, what, 10*time.Second, func() bool {
		a, b := l.sides()
		cli, srv = snap(a), snap(b)
		return len(cli.children) == 1 && len(srv.children) == 1 &&
			cli.children[0][0] == srv.children[0][1] && cli.children[0][1] == srv.children[0][0] &&
			cli.children[0] != before.children[0] &&
			cli.out != nil && srv.out != nil && cli.out.inSPI == cli.children[0][0] && srv.out.inSPI == srv.children[0][0] &&
			cli.spii == srv.spii && cli.spir == srv.spir
	})
	return cli, srv
}

// traffic sends packets both ways and checks that they went on the
// child SAs both sides send on now.
func (l *rekeyLab) traffic(cli, srv snapshot) {
	l.t.Helper()
	c0, s0 := cli.out.out.Sent(), srv.out.out.Sent()
	roundTrip(l.t, l.c, testVIP, testPeer, 5)
	if c1, s1 := cli.out.out.Sent(), srv.out.out.Sent(); c1-c0 < 5 || s1-s0 < 5 {
		l.t.Fatalf("after the rekey %d packets left the Client and %d the Server on the new child SA; want 5 each", c1-c0, s1-s0)
	}
}

// A child SA is rekeyed at its rekey time by the side whose lifetime
// runs out, Client and Server: new SPIs on both sides, the old child SA
// deleted, and packets pass on the new one.
func TestChildRekeyByLifetime(t *testing.T) {
	for _, starter := range []string{"client", "server"} {
		t.Run(starter, func(t *testing.T) {
			life := Lifetime{RekeyTime: time.Minute}
			off := Lifetime{RekeyTime: -1}
			l := newRekeyLab(t, func(c *Config) {
				c.ChildLifetime, c.IKELifetime = off, off
				if starter == "server" {
					c.ChildLifetime = life
				}
			}, func(d *DialConfig) {
				d.ChildLifetime, d.IKELifetime = off, off
				if starter == "client" {
					d.ChildLifetime = life
				}
			})
			a, _ := l.sides()
			before := snap(a)
			roundTrip(t, l.c, testVIP, testPeer, 3)
			// Before the rekey time less the jitter (10 % of a minute),
			// nothing happens.
			l.clk.advance(50 * time.Second)
			time.Sleep(600 * time.Millisecond) // two ticks of the wall clock
			if now := snap(a); now.children[0] != before.children[0] {
				t.Fatal("rekeyed before the rekey time")
			}
			l.clk.advance(10 * time.Second)
			cli, srv := l.settled("the child SA rekey", before)
			l.traffic(cli, srv)
			starterSnap, other := cli, srv
			if starter == "server" {
				starterSnap, other = srv, cli
			}
			if starterSnap.rekeys.ourChild != 1 || other.rekeys.peerChild != 1 {
				t.Fatalf("rekeys: %s %+v, its peer %+v; want one of ours and one of the peer's", starter, starterSnap.rekeys, other.rekeys)
			}
			// The new child SA is rekeyed a minute later again.
			l.clk.advance(time.Minute)
			cli2, srv2 := l.settled("the second child SA rekey", cli)
			l.traffic(cli2, srv2)
		})
	}
}

// With a DH group in the ESP proposals, our child SA rekeys carry a key
// exchange (PFS), in both roles.
func TestChildRekeyPFS(t *testing.T) {
	esp := []Proposal{{Encryption: EncrAESGCM16, KeyBits: 256, DHGroup: DHECP256}}
	l := newRekeyLab(t, func(c *Config) { c.ESPProposals = esp }, func(d *DialConfig) { d.ESPProposals = esp })
	a, b := l.sides()
	before := snap(a)
	if g := before.out.suite.DHGroup; g != 0 {
		t.Fatalf("the first child SA has DH group %d; IKE_AUTH has no key exchange", g)
	}
	a.link.mu.Lock()
	err := a.rekeyChild(a.link.out.Load())
	a.link.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := l.settled("the Client's rekey", before)
	if cli.out.suite.DHGroup != DHECP256 || srv.out.suite.DHGroup != DHECP256 {
		t.Fatalf("DH groups of the rekeyed child SA %d and %d, want %d", cli.out.suite.DHGroup, srv.out.suite.DHGroup, DHECP256)
	}
	l.traffic(cli, srv)
	b.link.mu.Lock()
	err = b.rekeyChild(b.link.out.Load())
	b.link.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	cli, srv = l.settled("the Server's rekey", cli)
	if cli.out.suite.DHGroup != DHECP256 {
		t.Fatalf("DH group %d", cli.out.suite.DHGroup)
	}
	l.traffic(cli, srv)
}

// The Client's PFS group is not the Server's: INVALID_KE_PAYLOAD, and
// the rekey is made again in the group the Server asks for.
func TestChildRekeyInvalidKE(t *testing.T) {
	l := newRekeyLab(t, func(c *Config) {
		c.ESPProposals = []Proposal{{Encryption: EncrAESGCM16, KeyBits: 256, DHGroup: DHECP384}}
	}, func(d *DialConfig) {
		d.ESPProposals = []Proposal{{Encryption: EncrAESGCM16, KeyBits: 256, DHGroup: DHECP256},
			{Encryption: EncrAESGCM16, KeyBits: 256, DHGroup: DHECP384}}
	})
	a, _ := l.sides()
	before := snap(a)
	a.link.mu.Lock()
	err := a.rekeyChild(a.link.out.Load())
	a.link.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := l.settled("the rekey", before)
	if cli.out.suite.DHGroup != DHECP384 {
		t.Fatalf("DH group %d, want %d", cli.out.suite.DHGroup, DHECP384)
	}
	l.traffic(cli, srv)
}

// The IKE SA is rekeyed at its rekey time by the side whose lifetime
// runs out, in both roles: new SPIs, the old IKE SA gone on both sides,
// the child SA carried over, and a child SA rekey on the new IKE SA (keys
// from its SK_d) works.
func TestIKERekeyByLifetime(t *testing.T) {
	for _, starter := range []string{"client", "server"} {
		t.Run(starter, func(t *testing.T) {
			life := Lifetime{RekeyTime: 10 * time.Minute}
			off := Lifetime{RekeyTime: -1}
			l := newRekeyLab(t, func(c *Config) {
				c.ChildLifetime, c.IKELifetime = off, off
				if starter == "server" {
					c.IKELifetime = life
				}
			}, func(d *DialConfig) {
				d.ChildLifetime, d.IKELifetime = off, off
				if starter == "client" {
					d.IKELifetime = life
				}
			})
			a, _ := l.sides()
			before := snap(a)
			l.clk.advance(10 * time.Minute)
			waitFor(t, "the IKE SA rekey", 10*time.Second, func() bool {
				cli, srv := l.sides()
				x, y := snap(cli), snap(srv)
				return cli != a && x.spii == y.spii && x.spir == y.spir && x.spii != before.spii && x.spir != before.spir &&
					len(x.children) == 1 && len(y.children) == 1
			})
			waitFor(t, "the old IKE SA to go", 10*time.Second, func() bool {
				l.c.link.mu.Lock()
				defer l.c.link.mu.Unlock()
				return l.c.old == nil && l.srv.Stats().IKESAs == 1
			})
			cli, srv := l.sides()
			x, y := snap(cli), snap(srv)
			if x.children[0] != before.children[0] {
				t.Fatal("the child SA changed with the IKE SA")
			}
			l.traffic(x, y)
			if n := x.rekeys.ourIKE + y.rekeys.ourIKE; n != 1 || x.rekeys.peerIKE+y.rekeys.peerIKE != 1 {
				t.Fatalf("IKE rekeys %+v %+v", x.rekeys, y.rekeys)
			}
			cli.link.mu.Lock()
			err := cli.rekeyChild(cli.link.out.Load())
			cli.link.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			x, y = l.settled("a child SA rekey on the new IKE SA", x)
			l.traffic(x, y)
			if l.c.Err() != nil {
				t.Fatal(l.c.Err())
			}
		})
	}
}

// A child SA is rekeyed when the packets sent on it reach RekeyPackets,
// long before its rekey time: the 32-bit sequence number never runs out.
func TestChildRekeyPacketLimit(t *testing.T) {
	off := Lifetime{RekeyTime: -1}
	l := newRekeyLab(t, func(c *Config) {
		c.ChildLifetime, c.IKELifetime = off, off
	}, func(d *DialConfig) {
		d.ChildLifetime, d.IKELifetime = Lifetime{RekeyTime: -1, RekeyPackets: 20}, off
	})
	a, _ := l.sides()
	before := snap(a)
	roundTrip(t, l.c, testVIP, testPeer, 10)
	time.Sleep(600 * time.Millisecond) // two ticks
	if now := snap(a); now.children[0] != before.children[0] {
		t.Fatal("rekeyed after 10 packets, with a limit of 20")
	}
	roundTrip(t, l.c, testVIP, testPeer, 10)
	cli, srv := l.settled("the rekey at 20 packets", before)
	if cli.rekeys.ourChild != 1 {
		t.Fatalf("rekeys %+v", cli.rekeys)
	}
	l.traffic(cli, srv)
}

// The default packet limit is below 2^32 without ESN and off with it.
func TestDefaultPacketLimit(t *testing.T) {
	l := newLifetime(Lifetime{}, time.Hour)
	if got := l.packetLimit(false); got != 1<<32-1<<24 {
		t.Errorf("limit %d", got)
	}
	if got := l.packetLimit(true); got != 0 {
		t.Errorf("limit with ESN %d", got)
	}
	if l.rekey != time.Hour || l.over != 6*time.Minute || l.rand != 6*time.Minute {
		t.Errorf("defaults %+v", l)
	}
}

// Lifetime defaults and jitter: the rekey falls within RandTime before
// RekeyTime, the hard limit at RekeyTime+OverTime.
func TestLifetimeSchedule(t *testing.T) {
	c, err := newSAConfig(saSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if c.ikeLife.rekey != 4*time.Hour || c.childLife.rekey != time.Hour {
		t.Fatalf("defaults %+v %+v", c.ikeLife, c.childLife)
	}
	t0 := time.Unix(1e9, 0)
	spread := map[time.Time]bool{}
	for range 50 {
		r, e := c.childLife.schedule(c, t0)
		if r.Before(t0.Add(54*time.Minute)) || r.After(t0.Add(time.Hour)) || !e.Equal(t0.Add(66*time.Minute)) {
			t.Fatalf("rekey at %v, expiry at %v", r.Sub(t0), e.Sub(t0))
		}
		spread[r] = true
	}
	if len(spread) < 40 {
		t.Errorf("%d different rekey times of 50: no jitter", len(spread))
	}
	r, e := newLifetime(Lifetime{RekeyTime: -1}, time.Hour).schedule(c, t0)
	if !r.IsZero() || !e.IsZero() {
		t.Errorf("switched off: rekey %v, expiry %v", r, e)
	}
	if _, err := newSAConfig(saSettings{childLifetime: Lifetime{RekeyTime: -1, OverTime: time.Second}}); !errors.Is(err, ErrConfig) {
		t.Errorf("OverTime without RekeyTime: %v", err)
	}
}

// lockBoth starts a rekey on both sides at once: with both links locked,
// neither side reads the other's request before it sent its own, so the
// two requests cross, as when both sides' ticks fire at the same moment.
func lockBoth(t *testing.T, a, b *ikeSA, start func(*ikeSA) error) {
	t.Helper()
	a.link.mu.Lock()
	b.link.mu.Lock()
	errA, errB := start(a), start(b)
	b.link.mu.Unlock()
	a.link.mu.Unlock()
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
}

// Both sides rekey the same child SA at once (their ticks fire together):
// of the two new child SAs, the one with the lowest nonce is deleted by
// its initiator (RFC 7296 §2.8.1); one pair of SPIs remains and carries
// the traffic.
func TestSimultaneousChildRekey(t *testing.T) {
	for i := range 3 {
		l := newRekeyLab(t, nil, nil)
		a, b := l.sides()
		before := snap(a)
		lockBoth(t, a, b, func(sa *ikeSA) error { return sa.rekeyChild(sa.link.out.Load()) })
		cli, srv := l.settled("the simultaneous rekeys", before)
		if r := cli.rekeys.redundant + srv.rekeys.redundant; r != 1 {
			t.Fatalf("run %d: %d redundant child SAs deleted, want 1 (%+v, %+v)", i, r, cli.rekeys, srv.rekeys)
		}
		l.traffic(cli, srv)
	}
}

// Both sides rekey the IKE SA at once: the redundant new IKE SA is
// deleted by its initiator, the other carries the child SA, and the old
// one is gone.
func TestSimultaneousIKERekey(t *testing.T) {
	for i := range 3 {
		l := newRekeyLab(t, nil, nil)
		a, b := l.sides()
		before := snap(a)
		lockBoth(t, a, b, func(sa *ikeSA) error { return sa.startIKERekey(sa.suite.DHGroup) })
		waitFor(t, "the simultaneous IKE SA rekeys", 10*time.Second, func() bool {
			cli, srv := l.sides()
			l.c.link.mu.Lock()
			defer l.c.link.mu.Unlock()
			return cli != a && srv != b && cli.spii == srv.spii && cli.spir == srv.spir &&
				l.c.old == nil && len(l.c.redundant) == 0 && l.srv.Stats().IKESAs == 1
		})
		cli, srv := l.sides()
		x, y := snap(cli), snap(srv)
		if r := x.rekeys.redundant + y.rekeys.redundant; r != 1 {
			t.Fatalf("run %d: %d redundant IKE SAs deleted, want 1 (%+v, %+v)", i, r, x.rekeys, y.rekeys)
		}
		if len(x.children) != 1 || x.children[0] != before.children[0] {
			t.Fatalf("children after the IKE SA rekeys: %v, before %v", x.children, before.children)
		}
		l.traffic(x, y)
		// The surviving IKE SA works: a child SA rekey on it.
		cli.link.mu.Lock()
		err := cli.rekeyChild(cli.link.out.Load())
		cli.link.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		x, y = l.settled("a child SA rekey on the new IKE SA", x)
		l.traffic(x, y)
	}
}

// A child SA rekey of the peer while our IKE SA rekey is in flight is
// refused with TEMPORARY_FAILURE (RFC 7296 §2.25.2) and made later: both
// rekeys succeed in the end.
func TestRekeyCollisionTemporaryFailure(t *testing.T) {
	// Both are due, so that the tick tries them again.
	off, due := Lifetime{RekeyTime: -1}, Lifetime{RekeyTime: time.Minute, RandTime: -1}
	l := newRekeyLab(t, func(c *Config) {
		c.IKELifetime, c.ChildLifetime = off, due
	}, func(d *DialConfig) {
		d.IKELifetime, d.ChildLifetime = due, off
	})
	a, b := l.sides()
	before := snap(a)
	a.link.mu.Lock()
	b.link.mu.Lock()
	errA := a.startIKERekey(a.suite.DHGroup)
	errB := b.rekeyChild(b.link.out.Load())
	b.link.mu.Unlock()
	a.link.mu.Unlock()
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	// Each side refuses the other's request (TEMPORARY_FAILURE); both are
	// tried again, at a random time, once due.
	l.clk.advance(time.Minute)
	for range 100 {
		cli, srv := l.sides()
		if s := snap(cli); cli != a && srv != b && cli.spii == srv.spii && len(s.children) == 1 && s.children[0] != before.children[0] {
			break
		}
		l.clk.advance(500 * time.Millisecond)
		time.Sleep(100 * time.Millisecond)
	}
	cli, srv := l.settled("the retried rekeys", before)
	if srv.rekeys.ourChild < 1 || cli.rekeys.ourIKE+srv.rekeys.peerIKE < 1 {
		t.Fatalf("rekeys of the Client %+v, of the Server %+v", cli.rekeys, srv.rekeys)
	}
	l.traffic(cli, srv)
}

// An IKE SA whose rekey never succeeds is deleted at its hard limit and
// the Client ends with ErrExpired.
func TestIKESAHardLimit(t *testing.T) {
	var dropRekeys atomic.Bool
	h := newEchoHandler()
	clk := newTestClock()
	cfg := pskServerConfig(t)
	cfg.DPDInterval, cfg.Now = -1, clk.now
	_, addr := testServer(t, cfg, h)
	front := lossyRelay(t, addr, func(toServer bool, pkt []byte) bool {
		hd, ok := ikeHeader(pkt)
		return ok && toServer && dropRekeys.Load() && hd.Exchange == message.CreateChildSA
	})
	d := pskDialConfig(t)
	d.DPDInterval, d.Now = -1, clk.now
	d.RetransmitTimeout = time.Hour // the lost rekey is not given up before the hard limit
	d.IKELifetime = Lifetime{RekeyTime: time.Hour, OverTime: 10 * time.Minute, RandTime: -1}
	d.ChildLifetime = Lifetime{RekeyTime: -1}
	c, err := Dial(context.Background(), loopbackConn(t), front, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-h.ups
	dropRekeys.Store(true)
	clk.advance(time.Hour)
	time.Sleep(600 * time.Millisecond)
	if c.Err() != nil {
		t.Fatalf("ended at the rekey time: %v", c.Err())
	}
	clk.advance(10 * time.Minute)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the Client outlived its hard limit")
	}
	if !errors.Is(c.Err(), ErrExpired) {
		t.Fatalf("Err %v, want ErrExpired", c.Err())
	}
}

// A child SA whose rekey does not succeed is deleted at its hard limit
// (rekey time plus over time): the responder is told, and a Client left
// without a child ends with ErrExpired.
func TestChildSAHardLimit(t *testing.T) {
	var dropRekeys atomic.Bool
	h := newEchoHandler()
	clk := newTestClock()
	cfg := pskServerConfig(t)
	cfg.DPDInterval, cfg.Now = -1, clk.now
	cfg.ChildLifetime = Lifetime{RekeyTime: -1}
	_, addr := testServer(t, cfg, h)
	var deletes atomic.Int32
	front := lossyRelay(t, addr, func(toServer bool, pkt []byte) bool {
		hd, ok := ikeHeader(pkt)
		if ok && toServer && hd.Exchange == message.Informational {
			deletes.Add(1)
		}
		return ok && toServer && dropRekeys.Load() && hd.Exchange == message.CreateChildSA
	})
	d := pskDialConfig(t)
	d.DPDInterval, d.Now = -1, clk.now
	d.RetransmitTimeout = time.Hour // the lost rekey is not given up before the hard limit
	d.IKELifetime = Lifetime{RekeyTime: -1}
	d.ChildLifetime = Lifetime{RekeyTime: time.Hour, OverTime: 10 * time.Minute, RandTime: -1}
	c, err := Dial(context.Background(), loopbackConn(t), front, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-h.ups
	roundTrip(t, c, testVIP, testPeer, 2)
	dropRekeys.Store(true)
	clk.advance(time.Hour)
	// The rekey is lost; the child still carries until its hard limit.
	roundTrip(t, c, testVIP, testPeer, 2)
	if c.Err() != nil {
		t.Fatalf("ended at the rekey time: %v", c.Err())
	}
	clk.advance(10 * time.Minute)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the Client outlived its child SA's hard limit")
	}
	if !errors.Is(c.Err(), ErrExpired) {
		t.Fatalf("Err %v, want ErrExpired", c.Err())
	}
	if deletes.Load() == 0 {
		t.Fatal("the responder was told nothing")
	}
	select {
	case cause := <-h.downs:
		if !errors.Is(cause, ErrDeleted) {
			t.Errorf("the Server's session ended with %v, want ErrDeleted", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Server's session outlived the Client")
	}
}

// IKE SA rekeys by either side while packets flow both ways: the ESP
// paths of both sides read the IKE SA of a child SA that a rekey moves
// (run with -race), and no packet is refused for it.
func TestIKERekeyUnderTraffic(t *testing.T) {
	l := newRekeyLab(t, nil, nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	var sent, echoed atomic.Int64
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n, err := l.c.Write([][]byte{ipv4UDP(testVIP, testPeer, []byte("traffic"))}, tunnel.Headroom); err != nil || n != 1 {
				return
			}
			sent.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		rb := [][]byte{make([]byte, tunnel.BufferSize)}
		sizes := []int{0}
		for {
			if _, err := l.c.Read(rb, sizes, tunnel.Headroom); err != nil {
				return
			}
			echoed.Add(1)
		}
	}()
	for i := range 4 {
		cli, srv := l.sides()
		starter := cli
		if i%2 == 1 {
			starter = srv
		}
		starter.link.mu.Lock()
		err := starter.startIKERekey(starter.suite.DHGroup)
		starter.link.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the IKE SA rekey", 10*time.Second, func() bool {
			a, b := l.sides()
			return a != cli && b != srv && a.spii == b.spii && a.spir == b.spir
		})
	}
	// On a quiet machine the four rekeys take a few milliseconds: the
	// traffic goes on until enough has crossed the rekeyed SAs.
	waitFor(t, "20 packets sent", 10*time.Second, func() bool { return sent.Load() >= 20 })
	close(stop)
	<-done
	if l.c.Err() != nil {
		t.Fatal(l.c.Err())
	}
	waitFor(t, "the echoes of half the packets", 10*time.Second, func() bool { return echoed.Load() >= sent.Load()/2 })
}

// A rekey by the peer of a child SA that we are deleting is refused with
// TEMPORARY_FAILURE (RFC 7296 §2.25.1): no new child is made for it.
func TestRekeyOfClosingChildRefused(t *testing.T) {
	off := Lifetime{RekeyTime: -1}
	l := newRekeyLab(t, func(c *Config) {
		c.IKELifetime, c.ChildLifetime = off, off
	}, func(d *DialConfig) {
		d.IKELifetime, d.ChildLifetime = off, off
	})
	a, b := l.sides()
	before := snap(a)
	a.link.mu.Lock()
	a.link.out.Load().closing = true // as if our Delete were on its way
	a.link.mu.Unlock()
	b.link.mu.Lock()
	err := b.rekeyChild(b.link.out.Load())
	b.link.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the answer to the Server's rekey", 10*time.Second, func() bool {
		b.link.mu.Lock()
		defer b.link.mu.Unlock()
		return b.pending == nil
	})
	after := snap(a)
	if len(after.children) != 1 || after.children[0] != before.children[0] || after.rekeys.peerChild != 0 {
		t.Fatalf("children %v after the peer's rekey of a closing child (before %v), rekeys %+v", after.children, before.children, after.rekeys)
	}
	if srv := snap(b); srv.rekeys.ourChild != 0 || len(srv.children) != 1 {
		t.Fatalf("the Server has children %v, rekeys %+v", srv.children, srv.rekeys)
	}
}
