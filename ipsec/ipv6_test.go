package ipsec

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

var (
	testVIP6   = netip.MustParseAddr("fd00:99::2")
	testRoute6 = netip.MustParsePrefix("fd00:98::/64")
	testPeer6  = netip.MustParseAddr("fd00:98::1")
	testDNS6   = netip.MustParseAddr("fd00:98::53")
)

// dualHandler admits everybody with an IPv4 and an IPv6 address (or the
// families in only4/only6) and echoes IPv4 and IPv6 packets with the
// addresses swapped.
type dualHandler struct {
	*echoHandler
	addrs []netip.Prefix
}

func (h *dualHandler) Admit(context.Context, tunnel.Identity, netip.AddrPort) (tunnel.Assignment, error) {
	return tunnel.Assignment{Addresses: h.addrs, Routes: []netip.Prefix{testRoute, testRoute6}}, nil
}

func (h *dualHandler) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	for i := range sizes {
		pkt := bufs[i][offset : offset+sizes[i]]
		if len(pkt) < 40 || pkt[0]>>4 != 6 {
			// Send seals in place: each packet is looked at once.
			h.echoHandler.Deliver(from, bufs[i:i+1], sizes[i:i+1], offset)
			continue
		}
		var a [16]byte
		copy(a[:], pkt[8:24])
		copy(pkt[8:24], pkt[24:40])
		copy(pkt[24:40], a[:])
		h.echoed.Add(1)
		_, _ = from.Send([][]byte{bufs[i][:offset+sizes[i]]}, offset)
	}
}

// ipv6UDP is an IPv6/UDP packet at tunnel.Headroom in a full buffer (the
// UDP checksum is left zero: the echo does not check it).
func ipv6UDP(src, dst netip.Addr, payload []byte) []byte {
	buf := make([]byte, tunnel.BufferSize)
	pkt := buf[tunnel.Headroom:]
	pkt[0] = 0x60
	binary.BigEndian.PutUint16(pkt[4:], uint16(8+len(payload)))
	pkt[6], pkt[7] = 17, 64
	s, d := src.As16(), dst.As16()
	copy(pkt[8:], s[:])
	copy(pkt[24:], d[:])
	binary.BigEndian.PutUint16(pkt[40:], 5000)
	binary.BigEndian.PutUint16(pkt[42:], 5001)
	binary.BigEndian.PutUint16(pkt[44:], uint16(8+len(payload)))
	copy(pkt[48:], payload)
	return buf[:tunnel.Headroom+40+8+len(payload)]
}

// roundTrip6 sends n IPv6 packets through c and reads the echoes.
func roundTrip6(t *testing.T, c *Client, src, dst netip.Addr, n int) {
	t.Helper()
	var bufs [][]byte
	for i := range n {
		bufs = append(bufs, ipv6UDP(src, dst, fmt.Appendf(nil, "packet %d", i)))
	}
	if sent, err := c.Write(bufs, tunnel.Headroom); err != nil || sent != n {
		t.Fatalf("Write: %d of %d, %v", sent, n, err)
	}
	rb := make([][]byte, c.BatchSize())
	sizes := make([]int, len(rb))
	for i := range rb {
		rb[i] = make([]byte, tunnel.BufferSize)
	}
	deadline := time.AfterFunc(5*time.Second, func() { c.Close() })
	defer deadline.Stop()
	got := map[string]bool{}
	for len(got) < n {
		k, err := c.Read(rb, sizes, tunnel.Headroom)
		if err != nil {
			t.Fatalf("Read after %d of %d packets: %v", len(got), n, err)
		}
		for i := range k {
			pkt := rb[i][tunnel.Headroom : tunnel.Headroom+sizes[i]]
			s, d, _ := addrs(pkt)
			if s != dst || d != src {
				t.Fatalf("echo from %v to %v", s, d)
			}
			got[string(pkt[48:])] = true
		}
	}
}

// serveOn runs a Server with h on the socket c.
func serveOn(t *testing.T, cfg Config, h tunnel.Handler, c *net.UDPConn) {
	t.Helper()
	srv, err := NewServer(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// IPv6 outer addresses, an IPv6 virtual address from the configuration
// payload (with IPv6 DNS), and IPv6 traffic selectors beside IPv4 ones in
// one child.
func TestDialServerIPv6(t *testing.T) {
	srvConn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	h := &dualHandler{echoHandler: newEchoHandler(), addrs: []netip.Prefix{netip.PrefixFrom(testVIP, 24), netip.PrefixFrom(testVIP6, 64)}}
	cfg := pskServerConfig(t)
	cfg.DNS = []netip.Addr{netip.MustParseAddr("10.98.0.53"), testDNS6}
	serveOn(t, cfg, h, srvConn)
	cli, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	d := pskDialConfig(t)
	d.RequestAddress6 = true
	c, err := Dial(context.Background(), cli, srvConn.LocalAddr().(*net.UDPAddr).AddrPort(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := []netip.Prefix{netip.PrefixFrom(testVIP, 32), netip.PrefixFrom(testVIP6, 128)}
	if a := c.Addresses(); fmt.Sprint(a) != fmt.Sprint(want) {
		t.Errorf("Addresses %v, want %v", a, want)
	}
	if ts := c.LocalTS(); fmt.Sprint(ts) != fmt.Sprint(want) {
		t.Errorf("LocalTS %v, want %v", ts, want)
	}
	if ts, w := c.RemoteTS(), []netip.Prefix{testRoute, testRoute6}; fmt.Sprint(ts) != fmt.Sprint(w) {
		t.Errorf("RemoteTS %v, want %v", ts, w)
	}
	if dns := c.DNS(); fmt.Sprint(dns) != fmt.Sprint(cfg.DNS) {
		t.Errorf("DNS %v, want %v", dns, cfg.DNS)
	}
	if !c.Remote().Addr().Is6() || c.MTU() > 1500-40-8-16-2-3-16 {
		t.Errorf("remote %v, MTU %d", c.Remote(), c.MTU())
	}
	roundTrip6(t, c, testVIP6, testPeer6, 20)
	roundTrip(t, c, testVIP, testPeer, 5)
	// Another IPv6 source than the assigned address is not carried.
	before := h.echoed.Load()
	if _, err := c.Write([][]byte{ipv6UDP(netip.MustParseAddr("fd00:99::3"), testPeer6, []byte("spoofed"))}, tunnel.Headroom); err != nil {
		t.Fatal(err)
	}
	roundTrip6(t, c, testVIP6, testPeer6, 1)
	if h.echoed.Load() != before+1 {
		t.Errorf("the server echoed %d packets, want 1 (the spoofed one must be dropped)", h.echoed.Load()-before)
	}
}

// A Client asking for an IPv6 address only, from a Server whose Handler
// assigns both families, gets the IPv6 one alone; one asking for both
// from a Handler with IPv4 only gets IPv4, and one asking for IPv6 only
// from it is refused.
func TestDialServerAddressFamilies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		assigned []netip.Prefix
		req4     bool
		want     []netip.Prefix
	}{
		{"ipv6 only asked", []netip.Prefix{netip.PrefixFrom(testVIP, 24), netip.PrefixFrom(testVIP6, 64)}, false, []netip.Prefix{netip.PrefixFrom(testVIP6, 128)}},
		{"ipv4 only assigned", []netip.Prefix{netip.PrefixFrom(testVIP, 24)}, true, []netip.Prefix{netip.PrefixFrom(testVIP, 32)}},
		{"nothing of the asked family", []netip.Prefix{netip.PrefixFrom(testVIP, 24)}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &dualHandler{echoHandler: newEchoHandler(), addrs: tc.assigned}
			_, addr := testServer(t, pskServerConfig(t), h)
			d := pskDialConfig(t)
			d.RequestAddress, d.RequestAddress6 = tc.req4, true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, loopbackConn(t), addr, d)
			if tc.want == nil {
				if err == nil {
					c.Close()
					t.Fatal("Dial succeeded without an address of the asked family")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if a := c.Addresses(); fmt.Sprint(a) != fmt.Sprint(tc.want) {
				t.Errorf("Addresses %v, want %v", a, tc.want)
			}
			if ts := c.LocalTS(); fmt.Sprint(ts) != fmt.Sprint(tc.want) {
				t.Errorf("LocalTS %v, want %v", ts, tc.want)
			}
		})
	}
}

// A Server bound to the wildcard address answers from the address the
// initiator sent to. The initiator's socket is connected to that address
// (127.0.0.2), so the kernel drops anything from elsewhere: replies from
// the host's preferred address (127.0.0.1) would never reach it.
func TestServerWildcardRepliesFromDestination(t *testing.T) {
	srvConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	h := newEchoHandler()
	serveOn(t, pskServerConfig(t), h, srvConn)
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), srvConn.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	cli, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, cli, to, pskDialConfig(t))
	if err != nil {
		t.Fatalf("Dial to the wildcard server's second address: %v", err)
	}
	defer c.Close()
	roundTrip(t, c, testVIP, testPeer, 20)
}

// The configuration reply hands out what was asked, each attribute type
// once, with the IPv6 address as 16 bytes and a prefix length.
func TestConfigReply(t *testing.T) {
	req := &message.CP{CfgType: message.CfgRequest, Attributes: []message.Attribute{
		{Type: message.AttrInternalIP6Address}, {Type: message.AttrInternalIP6Address}, {Type: message.AttrInternalIP6DNS},
	}}
	asg := tunnel.Assignment{Addresses: []netip.Prefix{netip.PrefixFrom(testVIP, 24), netip.PrefixFrom(testVIP6, 64)}}
	reply, vips := configReply(req, asg, []netip.Addr{netip.MustParseAddr("10.98.0.53"), testDNS6})
	if fmt.Sprint(vips) != fmt.Sprint([]netip.Addr{testVIP6}) {
		t.Errorf("vips %v", vips)
	}
	a6 := testVIP6.As16()
	want := []message.Attribute{
		{Type: message.AttrInternalIP6Address, Value: append(a6[:], 128)},
		{Type: message.AttrInternalIP6DNS, Value: testDNS6.AsSlice()},
	}
	if fmt.Sprint(reply.Attributes) != fmt.Sprint(want) {
		t.Errorf("attributes %v, want %v", reply.Attributes, want)
	}
}
