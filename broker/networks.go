package broker

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrBadNetwork reports a device network (a LAN or its alias) or a tunnel
// pool that the broker refuses: one it cannot route without breaking the
// tunnel network, the hosts at either end, or another network of the same
// device.
var ErrBadNetwork = errors.New("broker: network refused")

// special is an IPv4 range no LAN, alias or pool may overlap. The order
// matters: the first match names the conflict, so the limited broadcast
// address comes before the reserved block that holds it.
var special = []struct {
	prefix netip.Prefix
	what   string
	// aliasedOK: a LAN in this range may sit behind a device as long as
	// users reach it under an alias, i.e. it never becomes a route on their
	// side.
	aliasedOK bool
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" 0.0.0.0/8`, false},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback 127.0.0.0/8", false},
	// Plant devices without DHCP fall back to link-local addresses, and a
	// gateway can reach them on its LAN; routed under their own prefix
	// they would take over the link-local network of every user's
	// computer, so they must be exposed under an alias.
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local 169.254.0.0/16 (expose it under an alias)", true},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast 224.0.0.0/4", false},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address 255.255.255.255", false},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved 240.0.0.0/4", false},
}

// special6 are the IPv6 ranges no LAN, alias or pool may overlap, as
// special is for IPv4.
var special6 = []struct {
	prefix    netip.Prefix
	what      string
	aliasedOK bool
}{
	{netip.MustParsePrefix("::/128"), "the unspecified address ::", false},
	{netip.MustParsePrefix("::1/128"), "loopback ::1", false},
	// IPv4-mapped addresses are IPv4 to the hosts at either end.
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped ::ffff:0:0/96 (use the IPv4 network)", false},
	// Every interface has fe80::/64 addresses: reachable only under an
	// alias, like 169.254.0.0/16.
	{netip.MustParsePrefix("fe80::/10"), "link-local fe80::/10 (expose it under an alias)", true},
	{netip.MustParsePrefix("ff00::/8"), "multicast ff00::/8", false},
}

// checkPool refuses an IPv4 tunnel pool that cannot work: IPv6 (the
// IPv4 pool is always needed; IPv6 has its own, pool6), a special range,
// or too small for the broker's own address, one participant and the
// broadcast address.
func checkPool(pool netip.Prefix) error {
	if !pool.IsValid() {
		return fmt.Errorf("%w: no tunnel pool", ErrBadNetwork)
	}
	if !pool.Addr().Is4() {
		return fmt.Errorf("%w: tunnel pool %v is IPv6; the tunnel pool is IPv4 (IPv6 has its own pool6)", ErrBadNetwork, pool)
	}
	if pool.Bits() > 30 {
		return fmt.Errorf("%w: tunnel pool %v is too small", ErrBadNetwork, pool)
	}
	for _, s := range special {
		if pool.Overlaps(s.prefix) {
			return fmt.Errorf("%w: tunnel pool %v overlaps %s", ErrBadNetwork, pool, s.what)
		}
	}
	return nil
}

// checkPool6 refuses an IPv6 tunnel pool that cannot work beside pool:
// not IPv6, a special range, or with fewer addresses than pool, since each
// participant's IPv6 address is the one at the offset of its IPv4 address.
// The invalid Prefix (no IPv6 pool) is fine.
func checkPool6(pool, pool6 netip.Prefix) error {
	if !pool6.IsValid() {
		return nil
	}
	if !pool6.Addr().Is6() || pool6.Addr().Is4In6() {
		return fmt.Errorf("%w: IPv6 tunnel pool %v is not IPv6", ErrBadNetwork, pool6)
	}
	if 128-pool6.Bits() < 32-pool.Bits() {
		return fmt.Errorf("%w: IPv6 tunnel pool %v is smaller than the tunnel pool %v", ErrBadNetwork, pool6, pool)
	}
	for _, s := range special6 {
		if pool6.Overlaps(s.prefix) {
			return fmt.Errorf("%w: IPv6 tunnel pool %v overlaps %s", ErrBadNetwork, pool6, s.what)
		}
	}
	return nil
}

// exposed is a prefix that users reach a device's network under: its
// alias, or the LAN itself when it has none.
type exposed struct {
	prefix netip.Prefix
	device string
	kind   string // "lan" or "alias"
}

// CheckNetworks reports the first of the devices' networks that the broker
// refuses with pool as its tunnel network and no IPv6 tunnel pool, naming
// the device, the network and the conflict:
//   - an IPv6 LAN or alias (without an IPv6 pool, see CheckNetworks6);
//   - a LAN or alias overlapping the tunnel pool, or 0.0.0.0/8, loopback,
//     multicast, the broadcast address or the reserved 240.0.0.0/4;
//   - a link-local LAN without an alias, or a link-local alias;
//   - the same LAN twice on one device, or two overlapping LANs of one
//     device;
//   - networks of two devices that users would reach under overlapping
//     prefixes: this error wraps ErrRouteConflict instead.
//
// Apply and New run it; a configuration tool can run it before storing a
// configuration, so that a broker never starts with a refused one.
func CheckNetworks(pool netip.Prefix, devices map[string]DeviceNetworks) error {
	return CheckNetworks6(pool, netip.Prefix{}, devices)
}

// CheckNetworks6 is CheckNetworks for a broker with the IPv6 tunnel pool
// pool6 as well (the invalid Prefix: none). IPv6 LANs and aliases are then
// accepted, and refused as IPv4 ones are: overlapping pool6, the
// unspecified or loopback address, IPv4-mapped addresses, multicast, a
// link-local LAN without an alias or a link-local alias, or each other.
// An IPv6 LAN must have an IPv6 alias and an IPv4 LAN an IPv4 one: NAT
// does not translate between the families.
func CheckNetworks6(pool, pool6 netip.Prefix, devices map[string]DeviceNetworks) error {
	if err := checkPool(pool); err != nil {
		return err
	}
	if err := checkPool6(pool, pool6); err != nil {
		return err
	}
	pool, pool6 = pool.Masked(), pool6.Masked()
	names := make([]string, 0, len(devices))
	for name := range devices {
		names = append(names, name)
	}
	slices.Sort(names) // the same configuration always names the same conflict
	var all []exposed
	for _, name := range names {
		d := devices[name]
		aliased := map[netip.Prefix]bool{} // the LANs users reach under an alias
		for _, m := range d.NAT.Mappings() {
			aliased[m.Real.Masked()] = true
		}
		for i, lan := range d.LANs {
			if !lan.IsValid() {
				return fmt.Errorf("%w: device %q: a LAN without a prefix", ErrBadNetwork, name)
			}
			lan = lan.Masked()
			if err := checkPrefix(name, "lan", lan, pool, pool6, aliased[lan]); err != nil {
				return err
			}
			for _, other := range d.LANs[:i] {
				other = other.Masked()
				if other == lan {
					return fmt.Errorf("%w: device %q: lan %v is listed twice", ErrBadNetwork, name, lan)
				}
				if other.Overlaps(lan) {
					return fmt.Errorf("%w: device %q: lan %v overlaps its lan %v", ErrBadNetwork, name, lan, other)
				}
			}
			if !aliased[lan] {
				all = append(all, exposed{lan, name, "lan"})
			}
		}
		for _, m := range d.NAT.Mappings() {
			alias := m.Alias.Masked()
			if m.Real.Addr().Is4() != alias.Addr().Is4() {
				return fmt.Errorf("%w: device %q: lan %v and its alias %v are of different IP versions", ErrBadNetwork, name, m.Real, alias)
			}
			if err := checkPrefix(name, "alias", alias, pool, pool6, false); err != nil {
				return err
			}
			all = append(all, exposed{alias, name, "alias"})
		}
	}
	// Prefixes either nest or are disjoint: sorted by first address (the
	// wider first on a tie), each one overlaps an earlier one exactly when
	// it starts within the one that reaches furthest so far.
	slices.SortStableFunc(all, func(a, b exposed) int {
		if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.prefix.Bits(), b.prefix.Bits())
	})
	var widest *exposed
	for i := range all {
		e := &all[i]
		if widest != nil && widest.prefix.Contains(e.prefix.Addr()) {
			if widest.device == e.device {
				return fmt.Errorf("%w: device %q: %s %v overlaps its %s %v", ErrBadNetwork, e.device, e.kind, e.prefix, widest.kind, widest.prefix)
			}
			return fmt.Errorf("%w: %s %v of device %q overlaps %s %v of device %q; users could not tell them apart (expose one under another alias)",
				ErrRouteConflict, e.kind, e.prefix, e.device, widest.kind, widest.prefix, widest.device)
		}
		if widest == nil || lastAddr(e.prefix).Compare(lastAddr(widest.prefix)) > 0 {
			widest = e
		}
	}
	return nil
}

// checkPrefix checks one LAN or alias of a device against the pools and
// the special ranges; aliased says a LAN is reached under an alias.
func checkPrefix(device, kind string, p, pool, pool6 netip.Prefix, aliased bool) error {
	if !p.Addr().Is4() {
		if !pool6.IsValid() {
			return fmt.Errorf("%w: device %q: %s %v is IPv6; IPv6 networks need an IPv6 tunnel pool (pool6)", ErrBadNetwork, device, kind, p)
		}
		if p.Overlaps(pool6) {
			return fmt.Errorf("%w: device %q: %s %v overlaps the IPv6 tunnel pool %v", ErrBadNetwork, device, kind, p, pool6)
		}
		for _, s := range special6 {
			if p.Overlaps(s.prefix) && !(s.aliasedOK && aliased) {
				return fmt.Errorf("%w: device %q: %s %v overlaps %s", ErrBadNetwork, device, kind, p, s.what)
			}
		}
		return nil
	}
	if p.Overlaps(pool) {
		return fmt.Errorf("%w: device %q: %s %v overlaps the tunnel pool %v", ErrBadNetwork, device, kind, p, pool)
	}
	for _, s := range special {
		if p.Overlaps(s.prefix) && !(s.aliasedOK && aliased) {
			return fmt.Errorf("%w: device %q: %s %v overlaps %s", ErrBadNetwork, device, kind, p, s.what)
		}
	}
	return nil
}

// lastAddr is the last address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	if p.Addr().Is6() {
		a := p.Addr().As16()
		for i := p.Bits(); i < 128; i++ {
			a[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom16(a)
	}
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1 // a shift by 32 gives 0: /0 works
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
