package broker

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/remotegate/remotegate/internal/packet"
	"github.com/remotegate/remotegate/nat"
	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// fakeSession records what the switch sends it.
type fakeSession struct {
	id   uint64
	mu   sync.Mutex
	got  [][]byte
	keep bool // false: count only (for allocation tests)
	n    int
}

func (f *fakeSession) ID() uint64                { return f.id }
func (f *fakeSession) Identity() tunnel.Identity { return tunnel.Identity{} }
func (f *fakeSession) Remote() netip.AddrPort    { return netip.AddrPort{} }
func (f *fakeSession) Close(error) error         { return nil }
func (f *fakeSession) Send(bufs [][]byte, offset int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n += len(bufs)
	if f.keep {
		for _, b := range bufs {
			f.got = append(f.got, bytes.Clone(b[offset:]))
		}
	}
	return len(bufs), nil
}

func (f *fakeSession) take() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.got
	f.got = nil
	return g
}

// plantModel: u1 may reach plant 1 with TCP and ICMP (one-way), u2 nothing.
func plantModel() *policy.Model {
	return &policy.Model{
		Users:   []policy.User{{Name: "u1", Groups: []string{"engineers"}}, {Name: "u2"}},
		Devices: []policy.Device{{Name: "dev1", Groups: []string{"plant1"}}, {Name: "dev2", Groups: []string{"plant2"}}},
		Groups:  []policy.Group{{Name: "engineers"}, {Name: "plant1"}, {Name: "plant2"}},
		Relations: []policy.Relation{{Name: "u1-plant1", From: "engineers", To: "plant1", Direction: policy.OneWay,
			Services: []policy.Service{{Proto: policy.ProtoTCP}, {Proto: policy.ProtoICMP}}}},
	}
}

type lab struct {
	sw                 *Switch
	u1, u2, dev1, dev2 *fakeSession
	endpoints          func(*policy.Snapshot) []Endpoint
}

var (
	u1Addr   = netip.MustParseAddr("10.8.0.2")
	u2Addr   = netip.MustParseAddr("10.8.0.3")
	dev1Addr = netip.MustParseAddr("10.8.0.10")
	dev2Addr = netip.MustParseAddr("10.8.0.11")
	lan      = netip.MustParsePrefix("192.168.0.0/24")
	plc      = netip.MustParseAddr("192.168.0.10")
)

func newLab(t testing.TB) *lab {
	t.Helper()
	snap, err := policy.Compile(plantModel())
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{sw: NewSwitch(snap, SwitchConfig{}),
		u1: &fakeSession{id: 1, keep: true}, u2: &fakeSession{id: 2, keep: true},
		dev1: &fakeSession{id: 3, keep: true}, dev2: &fakeSession{id: 4, keep: true}}
	nat1, err := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.1.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	nat2, err := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.2.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	l.endpoints = func(s *policy.Snapshot) []Endpoint {
		id := func(name string) policy.ParticipantID { p, _ := s.Lookup(name); return p }
		return []Endpoint{
			{Participant: id("u1"), Session: l.u1, Addresses: []netip.Addr{u1Addr}},
			{Participant: id("u2"), Session: l.u2, Addresses: []netip.Addr{u2Addr}},
			{Participant: id("dev1"), Session: l.dev1, Addresses: []netip.Addr{dev1Addr}, LANs: []netip.Prefix{lan}, NAT: nat1},
			{Participant: id("dev2"), Session: l.dev2, Addresses: []netip.Addr{dev2Addr}, LANs: []netip.Prefix{lan}, NAT: nat2},
		}
	}
	if err := l.sw.Update(nil, l.endpoints(snap)); err != nil {
		t.Fatal(err)
	}
	return l
}

// tcpPacket builds a checksummed IPv4 TCP segment in a buffer with headroom.
func tcpPacket(t testing.TB, src, dst netip.Addr, sport, dport uint16, syn bool) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: !syn, Seq: 1, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp, gopacket.Payload("hello PLC"))
}

func icmpEcho(t testing.TB, src, dst netip.Addr, typ uint8) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: 77, Seq: 1}
	return serialize(t, ip, icmp, gopacket.Payload("ping"))
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, tunnel.Headroom, tunnel.Headroom+len(sb.Bytes())+tunnel.Tailroom)
	return append(buf, sb.Bytes()...)
}

func (l *lab) deliver(from *fakeSession, pkts ...[]byte) {
	sizes := make([]int, len(pkts))
	for i, p := range pkts {
		sizes[i] = len(p) - tunnel.Headroom
	}
	l.sw.Deliver(from, pkts, sizes, tunnel.Headroom)
}

// checkTCP decodes a delivered packet and verifies its addresses and
// checksums from scratch.
func checkTCP(t *testing.T, pkt []byte, src, dst netip.Addr) {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil || !net.IP(src.AsSlice()).Equal(ip.SrcIP) || !net.IP(dst.AsSlice()).Equal(ip.DstIP) {
		t.Fatalf("delivered %v -> %v, want %v -> %v", ip.SrcIP, ip.DstIP, src, dst)
	}
	if packet.Fold(packet.Sum(pkt[:20], 0)) != 0xffff {
		t.Fatal("IPv4 header checksum wrong after the switch")
	}
	sum := packet.PseudoHeaderSum(6, pkt[12:16], pkt[16:20], len(pkt)-20)
	if packet.Fold(packet.Sum(pkt[20:], sum)) != 0xffff {
		t.Fatal("TCP checksum wrong after the switch")
	}
}

func TestSwitchPlantsWithTheSameLAN(t *testing.T) {
	l := newLab(t)
	alias1, alias2 := netip.MustParseAddr("10.200.1.10"), netip.MustParseAddr("10.200.2.10")

	// u1 opens a TCP connection to plant 1's PLC under its alias.
	l.deliver(l.u1, tcpPacket(t, u1Addr, alias1, 40000, 502, true))
	got := l.dev1.take()
	if len(got) != 1 {
		t.Fatalf("device 1 got %d packets, want 1", len(got))
	}
	checkTCP(t, got[0], u1Addr, plc)

	// The PLC answers: u1 sees it come from the alias.
	l.deliver(l.dev1, tcpPacket(t, plc, u1Addr, 502, 40000, false))
	got = l.u1.take()
	if len(got) != 1 {
		t.Fatalf("u1 got %d replies, want 1", len(got))
	}
	checkTCP(t, got[0], alias1, u1Addr)

	// ICMP echo and its reply.
	l.deliver(l.u1, icmpEcho(t, u1Addr, alias1, 8))
	if len(l.dev1.take()) != 1 {
		t.Fatal("echo request did not reach device 1")
	}
	l.deliver(l.dev1, icmpEcho(t, plc, u1Addr, 0))
	if len(l.u1.take()) != 1 {
		t.Fatal("echo reply did not reach u1")
	}

	before := l.sw.Stats()
	// u1 may not reach plant 2, u2 reaches nothing, the PLC may not open a
	// connection to u1, and nobody may send from another's address.
	l.deliver(l.u1, tcpPacket(t, u1Addr, alias2, 40001, 502, true))
	l.deliver(l.u2, tcpPacket(t, u2Addr, alias1, 40002, 502, true))
	l.deliver(l.dev1, tcpPacket(t, plc, u1Addr, 50000, 22, true))
	l.deliver(l.u1, tcpPacket(t, u2Addr, alias1, 40003, 502, true))
	l.deliver(l.u1, tcpPacket(t, u1Addr, netip.MustParseAddr("10.9.9.9"), 40004, 502, true))
	for _, s := range []*fakeSession{l.u1, l.u2, l.dev1, l.dev2} {
		if got := s.take(); len(got) != 0 {
			t.Fatalf("session %d received %d packets it must not", s.id, len(got))
		}
	}
	after := l.sw.Stats()
	for reason, want := range map[DropReason]uint64{DropPolicy: 3, DropSpoofed: 1, DropNoRoute: 1} {
		if d := after.Dropped[reason] - before.Dropped[reason]; d != want {
			t.Errorf("%v drops: %d, want %d", reason, d, want)
		}
	}

	// A new relation takes effect without reconnecting.
	m := plantModel()
	m.Users[1].Groups = []string{"guests"}
	m.Groups = append(m.Groups, policy.Group{Name: "guests"})
	m.Relations = append(m.Relations, policy.Relation{Name: "u2-plant2", From: "guests", To: "plant2"})
	snap, err := policy.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.sw.Update(snap, l.endpoints(snap)); err != nil {
		t.Fatal(err)
	}
	l.deliver(l.u2, tcpPacket(t, u2Addr, alias2, 40005, 502, true))
	got = l.dev2.take()
	if len(got) != 1 {
		t.Fatal("u2 does not reach plant 2 after the relation was added")
	}
	checkTCP(t, got[0], u2Addr, plc)
}

func TestSwitchRejectsOverlappingAliases(t *testing.T) {
	l := newLab(t)
	snap := l.sw.filter.Snapshot()
	eps := l.endpoints(snap)
	eps[3].NAT = eps[2].NAT // both devices claim 10.200.1.0/24
	if err := l.sw.Update(nil, eps); err == nil {
		t.Fatal("two devices with the same alias were accepted")
	}
}

func TestSwitchDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items; allocations are measured without it")
	}
	l := newLab(t)
	l.dev1.keep = false
	pkts := make([][]byte, 32)
	sizes := make([]int, len(pkts))
	for i := range pkts {
		pkts[i] = tcpPacket(t, u1Addr, netip.MustParseAddr("10.200.1.10"), 40000, 502, false)
		sizes[i] = len(pkts[i]) - tunnel.Headroom
	}
	// The packets are rewritten in place (NAT), so restore them each round.
	orig := make([][]byte, len(pkts))
	for i := range pkts {
		orig[i] = bytes.Clone(pkts[i])
	}
	run := func() {
		for i := range pkts {
			copy(pkts[i], orig[i])
		}
		l.sw.Deliver(l.u1, pkts, sizes, tunnel.Headroom)
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("Deliver allocates %v times per batch of %d", n, len(pkts))
	}
	if l.dev1.n == 0 {
		t.Fatal("nothing was forwarded")
	}
}

// BenchmarkSwitch: packets of an established TCP flow from a user to a
// device behind NAT, in batches of 32, through parse, anti-spoofing,
// route, policy with flow table, NAT and a counting session.
func BenchmarkSwitch(b *testing.B) {
	l := newLab(b)
	l.dev1.keep = false
	pkts := make([][]byte, 32)
	sizes := make([]int, len(pkts))
	orig := make([][]byte, len(pkts))
	for i := range pkts {
		pkts[i] = tcpPacket(b, u1Addr, netip.MustParseAddr("10.200.1.10"), 40000, 502, false)
		sizes[i] = len(pkts[i]) - tunnel.Headroom
		orig[i] = bytes.Clone(pkts[i])
	}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		for i := range pkts {
			copy(pkts[i], orig[i])
		}
		l.sw.Deliver(l.u1, pkts, sizes, tunnel.Headroom)
	}
	b.ReportMetric(float64(b.N*len(pkts))/time.Since(start).Seconds(), "packets/s")
}

func TestSwitchRejectsNestedRoutes(t *testing.T) {
	l := newLab(t)
	eps := l.endpoints(l.sw.filter.Snapshot())
	// A user whose tunnel address lies inside plant 1's alias network.
	eps[0].Addresses = []netip.Addr{netip.MustParseAddr("10.200.1.77")}
	if err := l.sw.Update(nil, eps); !errors.Is(err, ErrRouteConflict) {
		t.Fatalf("a tunnel address inside an alias network: %v, want ErrRouteConflict", err)
	}
}
