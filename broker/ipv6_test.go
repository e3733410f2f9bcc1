package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/nat"
	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/policy"
)

var (
	pool6 = netip.MustParsePrefix("fd00:8::/64")
	lan6  = netip.MustParsePrefix("fd10::/64")
	plc6  = netip.MustParseAddr("fd10::10")
)

// tcpPacket6 builds a checksummed IPv6 TCP segment in a buffer with
// headroom.
func tcpPacket6(t testing.TB, src, dst netip.Addr, sport, dport uint16, syn bool) []byte {
	t.Helper()
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: !syn, Seq: 1, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp, gopacket.Payload("hello PLC over IPv6"))
}

// tcp6 decodes an IPv6 TCP packet and checks its TCP checksum (the NAT
// rewrote addresses under it).
func tcp6(t *testing.T, pkt []byte) (src, dst netip.Addr) {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv6, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		t.Fatalf("not an IPv6 TCP packet: %x", pkt)
	}
	got := tcp.Checksum
	_ = tcp.SetNetworkLayerForChecksum(ip)
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{ComputeChecksums: true}, tcp, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	if want := uint16(sb.Bytes()[16])<<8 | uint16(sb.Bytes()[17]); got != want {
		t.Fatalf("TCP checksum %04x after NAT, want %04x", got, want)
	}
	s, _ := netip.AddrFromSlice(ip.SrcIP)
	d, _ := netip.AddrFromSlice(ip.DstIP)
	return s, d
}

// newDualStackLab is newBrokerLab with an IPv6 pool and devices whose
// IPv4 and IPv6 LANs are the same on both plants, each exposed under its
// own aliases.
func newDualStackLab(t *testing.T) *brokerLab {
	t.Helper()
	snap, err := policy.Compile(brokerModel())
	if err != nil {
		t.Fatal(err)
	}
	nat1, err := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.1.0/24")},
		nat.Mapping{Real: lan6, Alias: netip.MustParsePrefix("fd20:1::/64")})
	if err != nil {
		t.Fatal(err)
	}
	nat2, err := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.2.0/24")},
		nat.Mapping{Real: lan6, Alias: netip.MustParsePrefix("fd20:2::/64")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Policy: snap, Pool: netip.MustParsePrefix("10.8.0.0/24"), Pool6: pool6, Devices: map[string]DeviceNetworks{
		"dev1": {LANs: []netip.Prefix{lan, lan6}, NAT: nat1}, "dev2": {LANs: []netip.Prefix{lan, lan6}, NAT: nat2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ca := testpki.New(t, "broker test CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv, err := openvpn.NewServer(&openvpn.ServerConfig{TLS: &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "broker").TLS}, ClientCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUDP(ctx, conn, b) }()
	t.Cleanup(func() { cancel(); <-done })
	return &brokerLab{b: b, addr: conn.LocalAddr().String(), ca: ca, pool: pool}
}

// TestBrokerIPv6OverOpenVPN: with an IPv6 pool, participants get an IPv6
// tunnel address at their IPv4 address's offset (stable across
// reconnects), users get routes to the IPv6 aliases of the devices their
// relations link them with, packets to an alias reach the device's real
// IPv6 LAN (NAT66) and the replies come back under the alias; a user
// without a relation and a spoofed IPv6 source reach nothing.
func TestBrokerIPv6OverOpenVPN(t *testing.T) {
	l := newDualStackLab(t)
	u1 := l.mustDial(t, "u1")
	u2 := l.mustDial(t, "u2")
	dev1 := l.mustDial(t, "dev1")
	p := u1.Pushed()
	if p.Address != netip.MustParsePrefix("10.8.0.2/24") || p.Address6 != netip.MustParsePrefix("fd00:8::2/64") || p.Gateway6 != netip.MustParseAddr("fd00:8::1") {
		t.Fatalf("u1 pushed %v %v gateway6 %v", p.Address, p.Address6, p.Gateway6)
	}
	if !slices.Contains(p.Routes, netip.MustParsePrefix("fd20:1::/64")) || slices.Contains(p.Routes, netip.MustParsePrefix("fd20:2::/64")) {
		t.Fatalf("u1 routes %v", p.Routes)
	}
	if r := dev1.Pushed().Routes; !slices.Equal(r, []netip.Prefix{netip.MustParsePrefix("10.8.0.0/24"), pool6}) {
		t.Fatalf("dev1 routes %v", r)
	}
	u1Addr := p.Address6.Addr()
	alias := netip.MustParseAddr("fd20:1::10")

	send(t, u1, tcpPacket6(t, u1Addr, alias, 40000, 502, true))
	pkt := receive(dev1, 5*time.Second)
	if pkt == nil {
		t.Fatal("the device did not receive u1's IPv6 packet")
	}
	if s, d := tcp6(t, pkt); s != u1Addr || d != plc6 {
		t.Fatalf("device received %v -> %v, want %v -> %v", s, d, u1Addr, plc6)
	}
	send(t, dev1, tcpPacket6(t, plc6, u1Addr, 502, 40000, false))
	pkt = receive(u1, 5*time.Second)
	if pkt == nil {
		t.Fatal("u1 did not receive the reply")
	}
	if s, d := tcp6(t, pkt); s != alias || d != u1Addr {
		t.Fatalf("u1 received %v -> %v, want %v -> %v", s, d, alias, u1Addr)
	}

	before := l.b.Switch().Stats()
	send(t, u2, tcpPacket6(t, u2.Pushed().Address6.Addr(), alias, 40001, 502, true))
	send(t, u1, tcpPacket6(t, netip.MustParseAddr("fd00:8::99"), alias, 40002, 502, true))
	if pkt := receive(dev1, 500*time.Millisecond); pkt != nil {
		t.Fatalf("the device received %x", pkt)
	}
	waitFor(t, func() bool {
		st := l.b.Switch().Stats()
		return st.Dropped[DropPolicy] == before.Dropped[DropPolicy]+1 && st.Dropped[DropSpoofed] == before.Dropped[DropSpoofed]+1
	})

	u1.Close()
	if again := l.mustDial(t, "u1"); again.Pushed().Address6 != p.Address6 {
		t.Fatalf("u1 came back as %v, was %v", again.Pushed().Address6, p.Address6)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAddress6 maps IPv4 tunnel addresses to their IPv6 companions, also
// across byte boundaries and in a pool6 just as large as the pool.
func TestAddress6(t *testing.T) {
	snap, err := policy.Compile(brokerModel())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ pool, pool6, v4, want string }{
		{"10.8.0.0/24", "fd00:8::/64", "10.8.0.2", "fd00:8::2"},
		{"10.8.0.0/16", "fd00:8::/64", "10.8.3.255", "fd00:8::3ff"},
		{"10.8.0.0/16", "fd00:8::ff:0/112", "10.8.255.254", "fd00:8::ff:fffe"},
	} {
		b, err := New(Config{Policy: snap, Pool: netip.MustParsePrefix(c.pool), Pool6: netip.MustParsePrefix(c.pool6)})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.address6(netip.MustParseAddr(c.v4)); got != netip.MustParseAddr(c.want) {
			t.Errorf("%s in %s/%s: %v, want %s", c.v4, c.pool, c.pool6, got, c.want)
		}
	}
}

// TestCheckNetworks6 refuses the IPv6 networks a dual-stack broker cannot
// route, naming the conflict.
func TestCheckNetworks6(t *testing.T) {
	pool := netip.MustParsePrefix("10.8.0.0/24")
	cases := []struct {
		name  string
		pool6 string
		nets  DeviceNetworks
		want  string // "" accepted
	}{
		{"ipv6 lan and alias", "fd00:8::/64", nets(t, "fd10::/64=fd20::/64"), ""},
		{"ipv6 lan routed", "fd00:8::/64", nets(t, "fd10::/64"), ""},
		{"aliased link-local", "fd00:8::/64", nets(t, "fe80::/64=fd20::/64"), ""},
		{"no pool6", "", nets(t, "fd10::/64"), "IPv6 networks need an IPv6 tunnel pool"},
		{"lan overlaps pool6", "fd00:8::/64", nets(t, "fd00:8::/96"), "overlaps the IPv6 tunnel pool"},
		{"alias overlaps pool6", "fd00:8::/64", nets(t, "fd10::/64=fd00:8::/64"), "alias fd00:8::/64 overlaps the IPv6 tunnel pool"},
		{"link-local routed", "fd00:8::/64", nets(t, "fe80::/64"), "link-local fe80::/10"},
		{"multicast", "fd00:8::/64", nets(t, "ff05::/64"), "multicast"},
		{"ipv4-mapped", "fd00:8::/64", nets(t, "::ffff:192.168.0.0/120"), "IPv4-mapped"},
		{"pool6 too small", "fd00:8::/124", nets(t, "fd10::/64"), "smaller than the tunnel pool"},
		{"pool6 link-local", "fe80::/64", nets(t, "fd10::/64"), "IPv6 tunnel pool fe80::/64 overlaps link-local"},
		{"pool6 not ipv6", "10.9.0.0/16", nets(t, "fd10::/64"), "is not IPv6"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p6 netip.Prefix
			if c.pool6 != "" {
				p6 = netip.MustParsePrefix(c.pool6)
			}
			err := CheckNetworks6(pool, p6, map[string]DeviceNetworks{"dev1": c.nets})
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrBadNetwork)):
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	// Two devices exposing overlapping IPv6 prefixes are a route conflict.
	err := CheckNetworks6(pool, pool6, map[string]DeviceNetworks{"dev1": nets(t, "fd10::/64=fd20::/64"), "dev2": nets(t, "fd11::/48=fd20::/48")})
	if !errors.Is(err, ErrRouteConflict) {
		t.Fatalf("overlapping IPv6 aliases: %v", err)
	}
}
