package ovpninterop

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// TestStockClientToSecondAddress: examples/ovpn-server listens on a
// wildcard address in a namespace whose interface has two addresses of the
// same family, and a stock openvpn 2.6 client connects to the second one.
// The kernel's own choice of source address for the replies is the first
// (primary) address, and the client, which accepts packets only from the
// address it sent to (no --float), rejects them: the connection completes
// only if the server answers each client from the address the client used
// (IP_PKTINFO / IPV6_PKTINFO). IPv4 is tried on an IPv4 socket (0.0.0.0)
// and on a dual-stack one ([::]), IPv6 on the dual-stack one.
func TestStockClientToSecondAddress(t *testing.T) {
	netns.Require(t, "openvpn", "ping")
	binaries(t)
	files := lab(t)
	for _, c := range []struct {
		name   string
		proto  string // the server's proto line
		second netip.Addr
	}{
		{"ipv4/0.0.0.0", "udp4", netip.MustParseAddr("10.99.0.3")},
		{"ipv4/[::]", "udp", netip.MustParseAddr("10.99.0.3")},
		{"ipv6/[::]", "udp", netip.MustParseAddr("fd99::3")},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, cli := netns.New(t, "rgs"), netns.New(t, "rgc")
			sIf, cIf := netns.Link(t, srv, netip.PrefixFrom(serverAddr, 24), cli, netip.MustParsePrefix("10.99.0.2/24"))
			srv.Run(t, 5*time.Second, "ip", "addr", "add", "10.99.0.3/24", "dev", sIf)
			// Linux prefers the IPv6 address added last: fd99::1 goes
			// last so that, as for IPv4, the second address is not the
			// kernel's choice.
			for _, a := range []string{"fd99::3/64", "fd99::1/64"} {
				srv.Run(t, 5*time.Second, "ip", "addr", "add", a, "dev", sIf, "nodad")
			}
			cli.Run(t, 5*time.Second, "ip", "addr", "add", "fd99::2/64", "dev", cIf, "nodad")
			// The kernel would answer from another address: show it so
			// that a pass means something.
			dst := "10.99.0.2"
			if c.second.Is6() {
				dst = "fd99::2"
			}
			if route := srv.Run(t, 5*time.Second, "ip", "route", "get", dst); !strings.Contains(route, " src ") || strings.Contains(route, " src "+c.second.String()+" ") {
				t.Fatalf("the kernel's source address towards %s would be the second address already:\n%s", dst, route)
			}

			o := Options{Proto: "udp", Cipher: "AES-256-GCM", Port: 1194}
			sconf := strings.Replace(ServerConfig(o, files), "proto udp\n", "proto "+c.proto+"\n", 1)
			if strings.Contains(sconf, "\nlocal ") {
				t.Fatalf("the server config binds an address:\n%s", sconf)
			}
			s := srv.Start(t, serverBin, "-config", WriteFile(t, t.TempDir(), "server.conf", sconf))
			s.WaitLog(t, "listening", openvpnTimeout)
			if !strings.Contains(s.Log(), "0.0.0.0:1194") && !strings.Contains(s.Log(), "[::]:1194") {
				t.Fatalf("the server does not listen on a wildcard address:\n%s", s.Log())
			}
			o.ServerAddr = c.second.String()
			cl := cli.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "client.ovpn", ClientConfig(t, o, files, "client1")))
			cl.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
			if got := ping(t, cli, tunnelGateway, 3); got != 3 {
				t.Fatalf("%d of 3 pings through the tunnel answered", got)
			}
			if strings.Contains(cl.Log(), "Incoming packet rejected") {
				t.Fatalf("the client rejected packets from an address it did not use:\n%s", cl.Log())
			}
		})
	}
}
