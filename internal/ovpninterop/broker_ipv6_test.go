package ovpninterop

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestBrokerIPv6StockPeers: examples/broker with pool6 and plants whose
// LANs have an IPv6 prefix besides the IPv4 one (the same on both plants,
// each exposed under its own IPv6 alias), and the relation also lets
// ICMPv6 through. Stock clients for every
// participant: the engineer with the relation pings the IPv6 host behind
// plant 1 under its alias (NAT66 on the broker, routed by the stock
// gateway), and nobody else reaches what the relations do not allow.
func TestBrokerIPv6StockPeers(t *testing.T) {
	l := newPlantLab(t)
	yaml := strings.Replace(plantYAML, "pool: 10.8.0.0/24\n", "pool: 10.8.0.0/24\npool6: fd00:8::/64\n", 1)
	for _, i := range []string{"1", "2"} {
		yaml = strings.Replace(yaml, "        alias: 10.200."+i+".0/24\n",
			"        alias: 10.200."+i+".0/24\n      - lan: fd10::/64\n        alias: fd20:"+i+"::/64\n", 1)
	}
	// Every user routes the whole IPv6 alias range too, so that what the
	// relations refuse reaches the broker and is dropped there.
	yaml = strings.Replace(yaml, "user_routes: [10.200.0.0/16]", "user_routes: [10.200.0.0/16, fd20::/16]", 1)
	// ICMPv6 is a service of its own, as in the access model.
	yaml = strings.Replace(yaml, "services: [tcp, icmp]", "services: [tcp, icmp, icmpv6]", 1)
	if strings.Count(yaml, "fd10::/64") != 2 || !strings.Contains(yaml, "icmpv6") || !strings.Contains(yaml, "fd20::/16") {
		t.Fatalf("broker.yaml:\n%s", yaml)
	}
	WriteFile(t, "", l.yaml, yaml)
	for _, d := range []string{"1", "2"} {
		gw, host := l.ns["dev"+d], l.ns["lan"+d]
		// The lab flushed the gateway's LAN addresses, its link-local one
		// too; without one the kernel sends no neighbour solicitation for
		// the packets it forwards.
		gw.Run(t, 5*time.Second, "ip", "-6", "addr", "add", "fe80::1/64", "dev", "veth1", "nodad")
		gw.Run(t, 5*time.Second, "ip", "-6", "addr", "add", "fd10::1/64", "dev", "veth1", "nodad")
		gw.Run(t, 5*time.Second, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
		host.Run(t, 5*time.Second, "ip", "-6", "addr", "add", "fd10::10/64", "dev", "veth0", "nodad")
		host.Run(t, 5*time.Second, "ip", "-6", "route", "add", "default", "via", "fd10::1")
	}
	l.start()
	l.bootstrap()
	for _, n := range []string{"dev1", "dev2", "u1", "u2"} {
		l.connect(n)
	}
	for n, p := range l.clients {
		p.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
		t.Logf("%s connected as %v and %v", n, tunnelAddr(t, p.Log()), tunnelAddr6(t, p.Log()))
	}
	// Each participant's IPv6 address is at its IPv4 address's offset.
	for n, p := range l.clients {
		v4, v6 := tunnelAddr(t, p.Log()).As4(), tunnelAddr6(t, p.Log())
		if want := netip.AddrFrom16([16]byte{0: 0xfd, 3: 8, 15: v4[3]}); v6 != want {
			t.Fatalf("%s has %v, want %v", n, v6, want)
		}
	}
	if !strings.Contains(l.clients["u1"].Log(), "route-ipv6 fd20:1::/64") || strings.Contains(l.clients["u1"].Log(), "fd20:2::") {
		t.Fatal("u1 was not pushed the IPv6 alias of plant 1 alone")
	}
	u1, u2 := l.ns["u1"], l.ns["u2"]
	host1, host2 := netip.MustParseAddr("fd20:1::10"), netip.MustParseAddr("fd20:2::10")
	if got := u1.Ping(t, host1, 3); got != 3 {
		t.Fatalf("u1 -> IPv6 host behind plant 1 (%v): %d of 3", host1, got)
	}
	if got := u1.Ping(t, host2, 2); got != 0 {
		t.Fatal("u1 reached the IPv6 host behind plant 2")
	}
	if got := u2.Ping(t, host1, 2); got != 0 {
		t.Fatal("u2 reached the IPv6 host behind plant 1")
	}
	// One-way: the host cannot open a flow to u1.
	if got := l.ns["lan1"].Ping(t, tunnelAddr6(t, l.clients["u1"].Log()), 2); got != 0 {
		t.Fatalf("the IPv6 host behind plant 1 reached u1 (%d pings answered)", got)
	}
	// IPv4 is unchanged.
	if got := u1.Ping(t, alias1, 2); got != 2 {
		t.Fatalf("u1 -> IPv4 host behind plant 1: %d of 2", got)
	}
}
