package ovpninterop

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// The IPv6 network inside the tunnel, the server's address in it (what
// server-ipv6 gives the server) and the first client address stock openvpn
// hands out.
var (
	tunnelNet6      = "fd00:8::/64"
	tunnelGateway6  = netip.MustParseAddr("fd00:8::1")
	firstClientIPv6 = netip.MustParseAddr("fd00:8::1000")
)

// tunnelAddr6 finds the IPv6 address a stock client put on its TUN device.
func tunnelAddr6(t *testing.T, log string) netip.Addr {
	t.Helper()
	m := regexp.MustCompile(`net_addr_v6_add: ([0-9a-f:]+)/`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no IPv6 tunnel address in the client log")
	}
	return netip.MustParseAddr(m[1])
}

// TestIPv6StockClientsToOurServer: two stock clients connect to
// examples/ovpn-server configured with server-ipv6 and client-to-client;
// each gets an IPv6 address from the pool, as a stock server would hand it
// out, pings the server's IPv6 tunnel address and the other client's
// (relayed in userspace).
func TestIPv6StockClientsToOurServer(t *testing.T) {
	netns.Require(t, "openvpn", "ping")
	binaries(t)
	files := lab(t)
	srv := netns.New(t, "rgs")
	c1 := netns.New(t, "rgc")
	c2 := netns.New(t, "rgc")
	netns.Link(t, srv, netip.MustParsePrefix("10.99.0.1/24"), c1, netip.MustParsePrefix("10.99.0.2/24"))
	netns.Link(t, srv, netip.MustParsePrefix("10.99.1.1/24"), c2, netip.MustParsePrefix("10.99.1.2/24"))
	o := Options{Proto: "udp", Protection: "tls-crypt", Cipher: "AES-256-GCM", Port: 1194,
		Extra: []string{"client-to-client", "server-ipv6 " + tunnelNet6}}
	sconf := WriteFile(t, t.TempDir(), "server.conf", ServerConfig(o, files))
	s := srv.Start(t, serverBin, "-config", sconf)
	s.WaitLog(t, "listening", 10*time.Second)
	o1, o2 := o, o
	o1.ServerAddr, o2.ServerAddr = "10.99.0.1", "10.99.1.1"
	o1.Extra, o2.Extra = nil, nil
	p1 := c1.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "c1.ovpn", ClientConfig(t, o1, files, "client1")))
	p1.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	p2 := c2.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "c2.ovpn", ClientConfig(t, o2, files, "client2")))
	p2.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	a1 := tunnelAddr6(t, p1.Log())
	a2 := tunnelAddr6(t, p2.Log())
	if a1 != firstClientIPv6 || a2 != firstClientIPv6.Next() {
		t.Fatalf("IPv6 tunnel addresses %v and %v, want %v and the next", a1, a2, firstClientIPv6)
	}
	if !strings.Contains(p1.Log(), "ifconfig-ipv6 "+firstClientIPv6.String()+"/64 "+tunnelGateway6.String()) {
		t.Fatalf("client1 was not pushed ifconfig-ipv6 with the server's address")
	}
	for _, c := range []struct {
		from *netns.NS
		name string
		to   netip.Addr
	}{{c1, "client1 -> server", tunnelGateway6}, {c2, "client2 -> server", tunnelGateway6},
		{c1, "client1 -> client2", a2}, {c2, "client2 -> client1", a1}} {
		if got := ping(t, c.from, c.to, 5); got != 5 {
			t.Fatalf("%s (%v): %d of 5 answered", c.name, c.to, got)
		}
	}
	// The IPv4 side is unchanged.
	if got := ping(t, c1, tunnelAddr(t, p2.Log()), 3); got != 3 {
		t.Fatalf("client1 -> client2 over IPv4: %d of 3 answered", got)
	}
}

// TestIPv6OurClientToStockServer: examples/ovpn-client connects to a
// stock server with server-ipv6 that pushes an IPv6 route; it puts the
// pushed IPv6 address and route on its TUN and pings the server's IPv6
// tunnel address.
func TestIPv6OurClientToStockServer(t *testing.T) {
	netns.Require(t, "openvpn", "ping")
	binaries(t)
	files := lab(t)
	srv, cli := topology(t)
	o := Options{Proto: "udp", Protection: "tls-crypt", Cipher: "AES-256-GCM", ServerAddr: serverAddr.String(), Port: 1194}
	so := o
	so.Extra = []string{"server-ipv6 " + tunnelNet6, `push "route-ipv6 fd00:99::/64"`}
	s := srv.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "server.conf", ServerConfig(so, files)))
	s.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	c := cli.Start(t, clientBin, "-config", WriteFile(t, t.TempDir(), "client.ovpn", ClientConfig(t, o, files, "client1")))
	c.WaitLog(t, "tunnel up", openvpnTimeout)
	if !strings.Contains(c.Log(), "address6="+firstClientIPv6.String()+"/64") {
		t.Fatalf("our client did not report the pushed IPv6 address %v", firstClientIPv6)
	}
	addrs := cli.Run(t, 10*time.Second, "ip", "-6", "addr", "show")
	if !strings.Contains(addrs, firstClientIPv6.String()+"/64") {
		t.Fatalf("the pushed IPv6 address is not on the TUN:\n%s", addrs)
	}
	routes := cli.Run(t, 10*time.Second, "ip", "-6", "route", "show")
	if !regexp.MustCompile(`fd00:99::/64 dev \S+`).MatchString(routes) {
		t.Fatalf("the pushed IPv6 route is not through the TUN:\n%s", routes)
	}
	if got := ping(t, cli, tunnelGateway6, 5); got != 5 {
		t.Fatalf("%d of 5 pings to the server's IPv6 tunnel address answered", got)
	}
}
