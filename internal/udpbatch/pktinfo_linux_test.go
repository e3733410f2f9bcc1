package udpbatch

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remotegate/remotegate/internal/netns"
)

// putPktinfo writes what parsePktinfo reads, in both socket families; an
// IPv4 address on an IPv6 socket goes v4-mapped and comes back plain.
func TestPktinfoRoundTrip(t *testing.T) {
	for _, c := range []struct {
		addr string
		v6   bool
	}{{"192.0.2.7", false}, {"192.0.2.7", true}, {"2001:db8::7", true}} {
		oob := make([]byte, oobSize)
		n := putPktinfo(oob, netip.MustParseAddr(c.addr), c.v6)
		if n <= 0 || n > oobSize {
			t.Fatalf("%s: %d bytes", c.addr, n)
		}
		if !c.v6 {
			// What the kernel reports for IPv4 has the destination in
			// ipi_addr, while we send with ipi_spec_dst: move it there.
			hdr := cmsgAlign(unix.SizeofCmsghdr)
			copy(oob[hdr+8:hdr+12], oob[hdr+4:hdr+8])
		}
		if got := parsePktinfo(oob[:n]); got != netip.MustParseAddr(c.addr) {
			t.Errorf("%s (v6 socket %v): parsed %v", c.addr, c.v6, got)
		}
	}
	if got := parsePktinfo(nil); got.IsValid() {
		t.Errorf("no control message parsed as %v", got)
	}
}

func FuzzParsePktinfo(f *testing.F) {
	oob := make([]byte, oobSize)
	f.Add(oob[:putPktinfo(oob, netip.MustParseAddr("192.0.2.1"), false)])
	oob = make([]byte, oobSize)
	f.Add(oob[:putPktinfo(oob, netip.MustParseAddr("2001:db8::1"), true)])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parsePktinfo(b)
	})
}

// TestLocalIsTheAddressUsed: on a host with two addresses, a socket bound to
// the wildcard address reads which one a datagram was sent to, and a reply
// sent from it arrives from that address; without Local it would come from
// the address the kernel prefers, which the peer does not recognise. The
// host is a namespace whose lo has two extra IPv4 and two IPv6 addresses.
func TestLocalIsTheAddressUsed(t *testing.T) {
	netns.Require(t)
	ns := netns.New(t, "rgpkt")
	for _, a := range []string{"10.71.0.1/32", "10.71.0.2/32", "fd71::1/128", "fd71::2/128"} {
		ns.AddAddress(t, netip.MustParsePrefix(a), "lo")
	}
	for _, c := range []struct {
		name, server, client, second string
	}{
		{"ipv4", "udp4", "10.71.0.1", "10.71.0.2"},
		{"dual-stack/ipv4", "udp", "10.71.0.1", "10.71.0.2"},
		{"ipv6", "udp6", "fd71::1", "fd71::2"},
		{"dual-stack/ipv6", "udp", "fd71::1", "fd71::2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var srv, cli *net.UDPConn
			err := ns.Do(func() error {
				var err error
				if srv, err = net.ListenUDP(c.server, nil); err != nil {
					return err
				}
				cli, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(c.client), 0)))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			uc := New(srv)
			defer uc.Close()
			if !uc.LocalAddr().Addr().IsUnspecified() {
				t.Fatalf("server bound to %v, want a wildcard address", uc.LocalAddr())
			}
			second := netip.MustParseAddr(c.second)
			to := netip.AddrPortFrom(second, uc.LocalAddr().Port())
			if _, err := cli.WriteToUDPAddrPort([]byte("hello"), to); err != nil {
				t.Fatal(err)
			}
			in := readAll(t, uc, srv, 1)
			if in[0].Local != second || string(in[0].Buf[:in[0].N]) != "hello" {
				t.Fatalf("read %q from %v to %v, want hello to %v", in[0].Buf[:in[0].N], in[0].Addr, in[0].Local, second)
			}

			// The reply without Local: the kernel's choice.
			reply := []byte("reply")
			if _, err := uc.WriteBatch([]Message{{Buf: reply, N: len(reply), Addr: in[0].Addr}}); err != nil {
				t.Fatal(err)
			}
			if from := readFrom(t, cli); from.Addr() == second {
				t.Fatalf("without Local the reply came from %v already: the test shows nothing", from)
			}
			// With Local, from the address the client used; no allocation.
			out := []Message{{Buf: reply, N: len(reply), Addr: in[0].Addr, Local: in[0].Local}}
			if _, err := uc.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			if from := readFrom(t, cli); from != to {
				t.Fatalf("reply with Local came from %v, want %v", from, to)
			}
			if raceEnabled {
				return // allocation counts differ under the race detector
			}
			if allocs := testing.AllocsPerRun(20, func() {
				if _, err := uc.WriteBatch(out); err != nil {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Errorf("WriteBatch with Local allocates %v", allocs)
			}
			// Reading the destination address costs nothing beyond x/net's
			// documented two allocations per datagram (its source address).
			in = in[:1]
			if allocs := testing.AllocsPerRun(20, func() {
				if _, err := cli.WriteToUDPAddrPort([]byte("hello"), to); err != nil {
					t.Fatal(err)
				}
				if n, err := uc.ReadBatch(in); err != nil || n != 1 || in[0].Local != second {
					t.Fatalf("ReadBatch: %d %v, Local %v", n, err, in[0].Local)
				}
			}); allocs > 2 {
				t.Errorf("send and ReadBatch with Local allocate %v per datagram", allocs)
			}
		})
	}
}

// readFrom reads one datagram and returns its source address.
func readFrom(t *testing.T, c *net.UDPConn) netip.AddrPort {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}
