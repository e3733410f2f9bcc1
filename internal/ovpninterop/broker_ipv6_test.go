package ovpninterop

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
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

// Issue 16, item 4, through the broker: with pool6, a user and a plant
// gateway on strongSwan with the profiles the broker exports get IPv6
// tunnel addresses from the pool (at their IPv4 addresses' offsets), and
// the user reaches the IPv6 host behind the gateway under its NAT66 alias,
// as the relation allows, over IPsec on both sides.
func TestBrokerIPv6IPsecPeers(t *testing.T) {
	swaninterop.Require(t)
	l := newPlantLab(t)
	yaml := strings.Replace(plantYAML, "pool: 10.8.0.0/24\n", "pool: 10.8.0.0/24\npool6: fd00:8::/64\n", 1)
	yaml = strings.Replace(yaml, "        alias: 10.200.1.0/24\n", "        alias: 10.200.1.0/24\n      - lan: fd10::/64\n        alias: fd20:1::/64\n", 1)
	yaml = strings.Replace(yaml, "services: [tcp, icmp]", "services: [tcp, icmp, icmpv6]", 1)
	WriteFile(t, "", l.yaml, yaml)
	gw, host := l.ns["dev1"], l.ns["lan1"]
	gw.Run(t, 5*time.Second, "ip", "-6", "addr", "add", "fe80::1/64", "dev", "veth1", "nodad")
	gw.Run(t, 5*time.Second, "ip", "-6", "addr", "add", "fd10::1/64", "dev", "veth1", "nodad")
	gw.Run(t, 5*time.Second, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	host.Run(t, 5*time.Second, "ip", "-6", "addr", "add", "fd10::10/64", "dev", "veth0", "nodad")
	host.Run(t, 5*time.Second, "ip", "-6", "route", "add", "default", "via", "fd10::1")
	l.start()

	peers := map[string]*swaninterop.Charon{}
	for _, p := range []struct{ name, addr string }{{"dev1", "10.99.3.1"}, {"u1", "10.99.1.1"}} {
		c := swaninterop.Start(t, l.ns[p.name], swaninterop.Options{})
		conf := l.swanctlProfile(c, p.name)
		if !strings.Contains(conf, "vips = 0.0.0.0, ::") {
			t.Fatalf("%s's profile asks for no IPv6 address:\n%s", p.name, conf)
		}
		c.Load(t, strings.Replace(conf, `remote_addrs = "10.99.1.1"`, `remote_addrs = "`+p.addr+`"`, 1))
		c.WaitLog(t, `CHILD_SA remotegate\{\d+\} established`, 20*time.Second)
		peers[p.name] = c
	}
	// Each has its IPv6 address at its IPv4 address's offset.
	vip := regexp.MustCompile(`installing new virtual IP (\S+)`)
	vips := map[string]netip.Addr{}
	for n, c := range peers {
		var v4, v6 netip.Addr
		for _, m := range vip.FindAllStringSubmatch(c.Log(), -1) {
			a := netip.MustParseAddr(m[1])
			if a.Is4() {
				v4 = a
			} else {
				v6 = a
			}
		}
		if !v4.IsValid() || !v6.IsValid() {
			t.Fatalf("%s installed the virtual addresses %v and %v\n%s", n, v4, v6, c.Log())
		}
		if want := netip.AddrFrom16([16]byte{0: 0xfd, 3: 8, 15: v4.As4()[3]}); v6 != want {
			t.Fatalf("%s has %v, want %v", n, v6, want)
		}
		vips[n] = v6
	}
	u1 := l.ns["u1"]
	host1 := netip.MustParseAddr("fd20:1::10")
	if d := pingWithin(u1, host1, 10*time.Second); d < 0 {
		t.Fatalf("u1 cannot reach the IPv6 host behind dev1 (%v)\nu1's SAs:\n%s\ndev1's SAs:\n%s\nbroker:\n%s", host1, peers["u1"].ListSAs(t), peers["dev1"].ListSAs(t), l.broker.Log())
	}
	if got := u1.Ping(t, host1, 3); got != 3 {
		t.Fatalf("u1 -> %v: %d of 3", host1, got)
	}
	// One-way: the host cannot open a flow to u1, although dev1's child
	// SA carries the pool to the broker.
	if got := l.ns["lan1"].Ping(t, vips["u1"], 2); got != 0 {
		t.Fatalf("the IPv6 host behind dev1 reached u1 (%d pings answered)", got)
	}
	// IPv4 is unchanged.
	if got := u1.Ping(t, alias1, 2); got != 2 {
		t.Fatalf("u1 -> IPv4 host behind dev1: %d of 2", got)
	}
}
