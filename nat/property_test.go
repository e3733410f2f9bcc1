package nat_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/remotegate/remotegate/nat"
)

// randomPrefix returns a masked prefix of the given length at a random place.
func randomPrefix(r *rand.Rand, v6 bool, bits int) netip.Prefix {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	a := netip.AddrFrom16(b)
	if !v6 {
		a = netip.AddrFrom4([4]byte(b[:4]))
	}
	p, err := a.Prefix(bits)
	if err != nil {
		panic(err)
	}
	return p
}

func randomBits(r *rand.Rand, v6 bool) int {
	if v6 {
		return [...]int{16, 32, 48, 56, 64, 64, 64, 80, 96, 112, 120, 127, 128}[r.IntN(13)] - r.IntN(2)
	}
	return [...]int{8, 12, 16, 20, 22, 24, 24, 24, 26, 28, 30, 31, 32}[r.IntN(13)]
}

// randomTable returns a valid table with IPv4 and IPv6 mappings: usually a
// few, sometimes dozens (to take the binary-search path).
func randomTable(r *rand.Rand) ([]nat.Mapping, *nat.Table) {
	for {
		n := 1 + r.IntN(4)
		if r.IntN(8) == 0 {
			n = 10 + r.IntN(30)
		}
		var ms []nat.Mapping
		for _, v6 := range []bool{false, true} {
			for range n {
				bits := randomBits(r, v6)
				if n > 4 && bits < 16 {
					bits = 16
				}
				ms = append(ms, nat.Mapping{Real: randomPrefix(r, v6, bits), Alias: randomPrefix(r, v6, bits)})
			}
		}
		if tbl, err := nat.NewTable(ms...); err == nil {
			return ms, tbl
		}
	}
}

// withHost returns the address with p's prefix bits and host's other bits.
func withHost(p netip.Prefix, host [16]byte) netip.Addr {
	a := p.Addr().AsSlice()
	for i := range a {
		keep := 0
		if bits := p.Bits() - 8*i; bits >= 8 {
			keep = 8
		} else if bits > 0 {
			keep = bits
		}
		mask := byte(uint16(0xff00) >> keep)
		a[i] = a[i]&mask | host[i]&^mask
	}
	out, _ := netip.AddrFromSlice(a)
	return out
}

// outsideAddr returns an address in no prefix of ms.
func outsideAddr(r *rand.Rand, ms []nat.Mapping, v6 bool) netip.Addr {
	for {
		a := randomPrefix(r, v6, map[bool]int{false: 32, true: 128}[v6]).Addr()
		inside := false
		for _, m := range ms {
			inside = inside || m.Real.Contains(a) || m.Alias.Contains(a)
		}
		if !inside {
			return a
		}
	}
}

// hostPair returns a random host as seen on both sides of a random mapping
// of the family.
func hostPair(r *rand.Rand, ms []nat.Mapping, v6 bool) (real, alias netip.Addr) {
	var family []nat.Mapping
	for _, m := range ms {
		if m.Real.Addr().Is6() == v6 {
			family = append(family, m)
		}
	}
	m := family[r.IntN(len(family))]
	var host [16]byte
	for i := range host {
		host[i] = byte(r.Uint32())
	}
	return withHost(m.Real, host), withHost(m.Alias, host)
}

// propertyCase is one generated packet: before and the expected result,
// both built from scratch by gopacket.
type propertyCase struct {
	desc          string
	dir           nat.Direction
	before, after []byte
	src, dst      netip.Addr // expected outer addresses after the rewrite
}

func generateCase(t *testing.T, r *rand.Rand, ms []nat.Mapping) propertyCase {
	v6 := r.IntN(2) == 1
	dir := nat.Direction(r.IntN(2))
	real, alias := hostPair(r, ms, v6)
	// The far end is anywhere: Rewrite does not look at it.
	far := randomPrefix(r, v6, map[bool]int{false: 32, true: 128}[v6]).Addr()
	kind := payloadKind(r.IntN(int(numPayloadKinds) + 2)) // more than one in three is an ICMP error
	c := propertyCase{dir: dir}

	if kind < numPayloadKinds {
		f := randomFlow(r, v6, kind)
		c.desc = fmt.Sprintf("%v %v v6=%v ext=%v opts=%v %v->%v/%v", dir, kind, v6, f.ipv6Ext, f.ipv4Options, far, alias, real)
		if dir == nat.ToDevice {
			c.before, c.after = build(t, f, far, alias), build(t, f, far, real)
			c.src, c.dst = far, real
		} else {
			c.before, c.after = build(t, f, real, far), build(t, f, alias, far)
			c.src, c.dst = alias, far
		}
		return c
	}

	// An ICMP error quoting a packet that went the other way.
	qf := randomFlow(r, v6, payloadKind(r.IntN(int(numPayloadKinds))))
	outer := randomFlow(r, v6, kindEcho)
	e := randomICMPError(r, v6)
	var qBefore, qAfter []byte
	var routerBefore, routerAfter, outerDstBefore, outerDstAfter netip.Addr
	if dir == nat.ToDevice {
		// The device host sent qf to far; a router on the way (anywhere)
		// reports back to the host's alias.
		qBefore, qAfter = build(t, qf, alias, far), build(t, qf, real, far)
		routerBefore = randomPrefix(r, v6, map[bool]int{false: 32, true: 128}[v6]).Addr()
		routerAfter = routerBefore
		outerDstBefore, outerDstAfter = alias, real
	} else {
		// far sent qf to the device host; the host or a router of the
		// device reports back to far. The device's own router may use an
		// address outside the mapping.
		qBefore, qAfter = build(t, qf, far, real), build(t, qf, far, alias)
		if r.IntN(2) == 0 {
			routerBefore, routerAfter = hostPair(r, ms, v6)
		} else {
			routerBefore = outsideAddr(r, ms, v6)
			routerAfter = routerBefore
		}
		outerDstBefore, outerDstAfter = far, far
	}
	// Quote all, RFC 792's header plus 8 bytes, or anything in between,
	// but keep the quoted IP header whole.
	full := len(qBefore)
	hdr := 20
	if v6 {
		hdr = 40
	} else if qf.ipv4Options {
		hdr = 28
	}
	n := full
	switch r.IntN(3) {
	case 1:
		n = min(full, hdr+8)
	case 2:
		n = hdr + r.IntN(full-hdr+1)
	}
	// A checksum cut in half cannot be updated; TestICMPQuoteSplitChecksum
	// covers that case.
	if at := transportChecksumOffset(qBefore, qf.kind); at >= 0 && n == at+1 {
		n++
	}
	c.desc = fmt.Sprintf("%v ICMP error %d/%d v6=%v quoting %v ext=%v opts=%v, %d of %d bytes, router %v",
		dir, e.typ, e.code, v6, qf.kind, qf.ipv6Ext, qf.ipv4Options, n, full, routerBefore)
	c.before = buildICMPError(t, outer, e, routerBefore, outerDstBefore, qBefore[:n])
	c.after = buildICMPError(t, outer, e, routerAfter, outerDstAfter, qAfter[:n])
	c.src, c.dst = routerAfter, outerDstAfter
	return c
}

// TestRewriteProperty is the acceptance test: for thousands of random TCP,
// UDP (with and without checksum), ICMP echo, ICMPv6 echo and ICMP error
// packets (IPv4 and IPv6, quoting TCP, UDP and echo packets, whole and cut),
// Rewrite turns the packet built by gopacket with one side's addresses into
// exactly the packet gopacket builds from scratch with the other side's
// addresses. So every checksum is what a from-scratch computation gives
// (checked once more independently), the addresses are the mapped ones, and
// rewriting with the inverted table gives back the original bytes.
func TestRewriteProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 10200))
	const packets = 4000
	var ms []nat.Mapping
	var tbl, inv *nat.Table
	for i := range packets {
		if i%20 == 0 {
			ms, tbl = randomTable(r)
			inv = tbl.Invert()
		}
		c := generateCase(t, r, ms)
		if err := verifyChecksums(c.before); err != nil {
			t.Fatalf("packet %d (%s): test builder made a bad packet: %v", i, c.desc, err)
		}
		got := bytes.Clone(c.before)
		changed, err := tbl.Rewrite(got, c.dir)
		if err != nil || !changed {
			t.Fatalf("packet %d (%s): Rewrite = %v, %v; want true, nil", i, c.desc, changed, err)
		}
		if !bytes.Equal(got, c.after) {
			t.Fatalf("packet %d (%s): result differs from the packet built from scratch: %s\ntable %v",
				i, c.desc, diff(c.after, got), ms)
		}
		if err := verifyChecksums(got); err != nil {
			t.Fatalf("packet %d (%s): %v", i, c.desc, err)
		}
		checkAddresses(t, got, c.src, c.dst)

		changed, err = inv.Rewrite(got, c.dir)
		if err != nil || !changed {
			t.Fatalf("packet %d (%s): inverse Rewrite = %v, %v; want true, nil", i, c.desc, changed, err)
		}
		if !bytes.Equal(got, c.before) {
			t.Fatalf("packet %d (%s): inverse rewrite does not restore the packet: %s", i, c.desc, diff(c.before, got))
		}
	}
}

// checkAddresses decodes pkt with gopacket and compares its addresses.
func checkAddresses(t *testing.T, pkt []byte, src, dst netip.Addr) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if src.Is6() {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	nl := p.NetworkLayer()
	if nl == nil {
		t.Fatalf("gopacket cannot decode the result: %v", p.ErrorLayer())
	}
	flow := nl.NetworkFlow()
	gotSrc, _ := netip.AddrFromSlice(flow.Src().Raw())
	gotDst, _ := netip.AddrFromSlice(flow.Dst().Raw())
	if gotSrc != src || gotDst != dst {
		t.Fatalf("addresses %v -> %v, want %v -> %v", gotSrc, gotDst, src, dst)
	}
}
