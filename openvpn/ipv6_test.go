package openvpn

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/remotegate/remotegate/tunnel"
)

// v6Handler assigns a dual-stack address (or only IPv4 when v6 is
// invalid) and echoes IPv6 packets back with source and destination
// swapped.
type v6Handler struct {
	echoHandler
	v6     netip.Prefix
	gw6    netip.Addr
	routes []netip.Prefix
}

func (h *v6Handler) Admit(_ context.Context, _ tunnel.Identity, _ netip.AddrPort) (tunnel.Assignment, error) {
	asg := tunnel.Assignment{Addresses: []netip.Prefix{netip.MustParsePrefix("10.8.0.2/24")}, Routes: h.routes, Gateway6: h.gw6}
	if h.v6.IsValid() {
		asg.Addresses = append(asg.Addresses, h.v6)
	}
	return asg, nil
}

func (h *v6Handler) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	for i, b := range bufs {
		pkt := b[offset : offset+sizes[i]]
		if len(pkt) < 40 || pkt[0]>>4 != 6 {
			continue
		}
		var a [16]byte
		copy(a[:], pkt[8:24])
		copy(pkt[8:24], pkt[24:40])
		copy(pkt[24:40], a[:])
		_, _ = from.Send([][]byte{b[:offset+sizes[i]]}, offset)
	}
}

// testPacket6 builds an IPv6 UDP-looking packet in a buffer with headroom.
func testPacket6(src, dst netip.Addr, payload []byte) []byte {
	buf := make([]byte, tunnel.Headroom+40+len(payload), tunnel.Headroom+40+len(payload)+tunnel.Tailroom)
	p := buf[tunnel.Headroom:]
	p[0] = 0x60
	p[4], p[5] = byte(len(payload)>>8), byte(len(payload))
	p[6], p[7] = 17, 64
	s, d := src.As16(), dst.As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	copy(p[40:], payload)
	return buf
}

// TestIPv6InsideTheTunnel: a Handler that assigns an IPv6 address too
// makes the server push ifconfig-ipv6 with the server's IPv6 address and
// the IPv6 routes; the client reports them in Pushed and carries IPv6
// packets both ways. Without an IPv6 address, IPv6 routes are not pushed.
func TestIPv6InsideTheTunnel(t *testing.T) {
	e := newTestEnv(t)
	routes := []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24"), netip.MustParsePrefix("fd00:99::/64")}
	cases := []struct {
		name       string
		v6         netip.Prefix
		gw6        netip.Addr
		wantGW6    netip.Addr
		wantRoutes []netip.Prefix
	}{
		{"dual-stack", netip.MustParsePrefix("fd00:8::1000/64"), netip.Addr{}, netip.MustParseAddr("fd00:8::1"), routes},
		{"gateway6 given", netip.MustParsePrefix("fd00:8::1000/64"), netip.MustParseAddr("fd00:8::ff"), netip.MustParseAddr("fd00:8::ff"), routes},
		{"ipv4 only", netip.Prefix{}, netip.Addr{}, netip.Addr{}, routes[:1]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &v6Handler{v6: tc.v6, gw6: tc.gw6, routes: routes}
			_, addr := startServer(t, "udp", &ServerConfig{TLS: e.serverTLS}, h)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			p := c.Pushed()
			if p.Address6 != tc.v6 || p.Gateway6 != tc.wantGW6 || !slices.Equal(p.Routes, tc.wantRoutes) {
				t.Fatalf("pushed address6 %v gateway6 %v routes %v, want %v %v %v", p.Address6, p.Gateway6, p.Routes, tc.v6, tc.wantGW6, tc.wantRoutes)
			}
			if !tc.v6.IsValid() {
				return
			}
			src, dst := p.Address6.Addr(), netip.MustParseAddr("fd00:99::7")
			payload := []byte("an IPv6 packet through the tunnel")
			if _, err := c.Write([][]byte{testPacket6(src, dst, payload)}, tunnel.Headroom); err != nil {
				t.Fatalf("Write: %v", err)
			}
			rbuf := make([]byte, tunnel.BufferSize)
			sizes := []int{0}
			done := make(chan error, 1)
			go func() {
				_, err := c.Read([][]byte{rbuf}, sizes, tunnel.Headroom)
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no echo within 5 s")
			}
			got := rbuf[tunnel.Headroom : tunnel.Headroom+sizes[0]]
			if len(got) != 40+len(payload) || !bytes.Equal(got[40:], payload) || netip.AddrFrom16([16]byte(got[24:40])) != src {
				t.Fatalf("echo %x", got)
			}
		})
	}
}
