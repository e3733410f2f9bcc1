package broker

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/nat"
	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// nets builds a device's networks from "lan" or "lan=alias" strings.
func nets(t *testing.T, specs ...string) DeviceNetworks {
	t.Helper()
	var d DeviceNetworks
	var ms []nat.Mapping
	for _, s := range specs {
		real, alias, aliased := strings.Cut(s, "=")
		d.LANs = append(d.LANs, netip.MustParsePrefix(real))
		if aliased {
			ms = append(ms, nat.Mapping{Real: netip.MustParsePrefix(real), Alias: netip.MustParsePrefix(alias)})
		}
	}
	if len(ms) > 0 {
		tbl, err := nat.NewTable(ms...)
		if err != nil {
			t.Fatal(err)
		}
		d.NAT = tbl
	}
	return d
}

// userRoutes is what u1 is told to route when it connects.
func userRoutes(t *testing.T, b *Broker) []netip.Prefix {
	t.Helper()
	asg, err := b.Admit(context.Background(), tunnel.Identity{Name: "u1"}, netip.MustParseAddrPort("192.0.2.1:1194"))
	if err != nil {
		t.Fatal(err)
	}
	return asg.Routes
}

// Networks that cannot work are refused with a message that names the
// device, the network and the conflict, and the broker keeps routing what
// it routed before.
func TestApplyRefusesRiskyNetworks(t *testing.T) {
	b := newTestBroker(t)
	snap, err := policy.Compile(brokerModel())
	if err != nil {
		t.Fatal(err)
	}
	good := netip.MustParsePrefix("10.200.1.0/24")
	if !slices.Contains(userRoutes(t, b), good) {
		t.Fatalf("u1 is not routed to dev1's alias: %v", userRoutes(t, b))
	}
	dev2 := nets(t, "192.168.0.0/24=10.200.2.0/24")
	for _, c := range []struct {
		name string
		dev1 DeviceNetworks
		want string // in the error message
		err  error
	}{
		{"alias in the pool", nets(t, "192.168.0.0/24=10.8.0.0/24"), `device "dev1": alias 10.8.0.0/24 overlaps the tunnel pool 10.8.0.0/24`, ErrBadNetwork},
		{"alias over the pool", nets(t, "172.16.0.0/12=10.0.0.0/12"), `device "dev1": alias 10.0.0.0/12 overlaps the tunnel pool 10.8.0.0/24`, ErrBadNetwork},
		{"lan over the pool", nets(t, "10.0.0.0/8=11.0.0.0/8"), `device "dev1": lan 10.0.0.0/8 overlaps the tunnel pool 10.8.0.0/24`, ErrBadNetwork},
		{"lan in the pool", nets(t, "10.8.0.128/25"), `device "dev1": lan 10.8.0.128/25 overlaps the tunnel pool 10.8.0.0/24`, ErrBadNetwork},
		{"aliased lan in the pool", nets(t, "10.8.0.0/24=10.200.1.0/24"), `device "dev1": lan 10.8.0.0/24 overlaps the tunnel pool`, ErrBadNetwork},
		{"loopback alias", nets(t, "192.168.0.0/24=127.0.1.0/24"), `device "dev1": alias 127.0.1.0/24 overlaps loopback 127.0.0.0/8`, ErrBadNetwork},
		{"loopback lan", nets(t, "127.0.0.0/8=11.0.0.0/8"), `device "dev1": lan 127.0.0.0/8 overlaps loopback 127.0.0.0/8`, ErrBadNetwork},
		{"zero network", nets(t, "0.0.0.0/16"), `device "dev1": lan 0.0.0.0/16 overlaps "this network" 0.0.0.0/8`, ErrBadNetwork},
		{"multicast lan", nets(t, "239.1.1.0/24"), `device "dev1": lan 239.1.1.0/24 overlaps multicast 224.0.0.0/4`, ErrBadNetwork},
		{"multicast alias", nets(t, "192.168.0.0/24=224.0.0.0/24"), `alias 224.0.0.0/24 overlaps multicast 224.0.0.0/4`, ErrBadNetwork},
		{"broadcast", nets(t, "255.255.255.255/32"), `lan 255.255.255.255/32 overlaps the broadcast address 255.255.255.255`, ErrBadNetwork},
		{"reserved", nets(t, "240.0.0.0/24"), `lan 240.0.0.0/24 overlaps reserved 240.0.0.0/4`, ErrBadNetwork},
		{"link-local lan without alias", nets(t, "169.254.1.0/24"), `device "dev1": lan 169.254.1.0/24 overlaps link-local 169.254.0.0/16 (expose it under an alias)`, ErrBadNetwork},
		{"link-local alias", nets(t, "192.168.0.0/24=169.254.1.0/24"), `alias 169.254.1.0/24 overlaps link-local`, ErrBadNetwork},
		{"same lan twice", nets(t, "192.168.5.0/24", "192.168.5.0/24"), `device "dev1": lan 192.168.5.0/24 is listed twice`, ErrBadNetwork},
		{"same lan twice, once aliased", nets(t, "192.168.5.0/24", "192.168.5.0/24=10.200.5.0/24"), `device "dev1": lan 192.168.5.0/24 is listed twice`, ErrBadNetwork},
		{"overlapping lans", nets(t, "192.168.0.0/16", "192.168.5.0/24"), `device "dev1": lan 192.168.5.0/24 overlaps its lan 192.168.0.0/16`, ErrBadNetwork},
		{"lan over own alias", nets(t, "192.168.5.0/24=10.201.0.0/24", "10.201.0.0/16"), `device "dev1": alias 10.201.0.0/24 overlaps its lan 10.201.0.0/16`, ErrBadNetwork},
		{"ipv6 lan", nets(t, "fd00:1::/64"), `device "dev1": lan fd00:1::/64 is IPv6; IPv6 networks need an IPv6 tunnel pool (pool6)`, ErrBadNetwork},
		{"ipv6 alias", nets(t, "fd00:1::/64=fd00:2::/64"), `device "dev1": lan fd00:1::/64 is IPv6`, ErrBadNetwork},
		{"ipv4-mapped lan", nets(t, "::ffff:192.168.0.0/120"), `lan ::ffff:192.168.0.0/120 is IPv6`, ErrBadNetwork},
		{"alias of another device", nets(t, "192.168.0.0/24=10.200.2.0/24"), `alias 10.200.2.0/24 of device "dev2" overlaps alias 10.200.2.0/24 of device "dev1"`, ErrRouteConflict},
		{"alias inside another device's", nets(t, "192.168.0.0/25=10.200.2.128/25"), `alias 10.200.2.128/25 of device "dev1" overlaps alias 10.200.2.0/24 of device "dev2"`, ErrRouteConflict},
		{"lan over another device's alias", nets(t, "10.200.0.0/16"), `alias 10.200.2.0/24 of device "dev2" overlaps lan 10.200.0.0/16 of device "dev1"`, ErrRouteConflict},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := b.Apply(snap, map[string]DeviceNetworks{"dev1": c.dev1, "dev2": dev2})
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply = %v; want %v saying %q", err, c.err, c.want)
			}
			if routes := userRoutes(t, b); !slices.Contains(routes, good) {
				t.Fatalf("after the refused Apply u1 is routed to %v; want %v still", routes, good)
			}
		})
	}

	// What plants do and the broker accepts: the same LAN behind two
	// devices under different aliases, several LANs on one device, and a
	// link-local LAN exposed under an alias.
	ok := map[string]DeviceNetworks{
		"dev1": nets(t, "192.168.0.0/24=10.200.1.0/24", "169.254.0.0/16=10.201.0.0/16", "172.16.0.0/24"),
		"dev2": dev2,
	}
	if err := b.Apply(snap, ok); err != nil {
		t.Fatalf("Apply of plant networks: %v", err)
	}
	if routes := userRoutes(t, b); !slices.Contains(routes, netip.MustParsePrefix("10.201.0.0/16")) {
		t.Fatalf("u1 is routed to %v; want the link-local LAN's alias 10.201.0.0/16 among them", routes)
	}
}

// New refuses a pool the tunnels cannot use, and devices with refused
// networks, saying why.
func TestNewRefusesBadPoolAndNetworks(t *testing.T) {
	snap, err := policy.Compile(brokerModel())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pool    string
		devices map[string]DeviceNetworks
		want    string
	}{
		{"10.8.0.0/31", nil, "tunnel pool 10.8.0.0/31 is too small"},
		{"fd00::/64", nil, "tunnel pool fd00::/64 is IPv6; the tunnel pool is IPv4 (IPv6 has its own pool6)"},
		{"127.0.0.0/24", nil, "tunnel pool 127.0.0.0/24 overlaps loopback 127.0.0.0/8"},
		{"224.0.0.0/24", nil, "tunnel pool 224.0.0.0/24 overlaps multicast"},
		{"10.8.0.0/24", map[string]DeviceNetworks{"dev1": nets(t, "10.8.0.0/16")}, `device "dev1": lan 10.8.0.0/16 overlaps the tunnel pool 10.8.0.0/24`},
	} {
		_, err := New(Config{Policy: snap, Pool: netip.MustParsePrefix(c.pool), Devices: c.devices})
		if !errors.Is(err, ErrBadNetwork) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New with pool %s: %v; want ErrBadNetwork saying %q", c.pool, err, c.want)
		}
	}
}
