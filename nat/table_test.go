package nat_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/nat"
)

func TestNewTableRejects(t *testing.T) {
	tests := []struct {
		name     string
		mappings []nat.Mapping
		want     error
		message  string // the whole error text: it is what an administrator reads
	}{
		{
			name:     "zero real prefix",
			mappings: []nat.Mapping{{Alias: netip.MustParsePrefix("10.200.7.0/24")}},
			want:     nat.ErrInvalidPrefix,
			message:  "nat: invalid prefix: real prefix invalid Prefix (mapping 0)",
		},
		{
			name:     "zero alias prefix",
			mappings: []nat.Mapping{{Real: netip.MustParsePrefix("192.168.0.0/24")}},
			want:     nat.ErrInvalidPrefix,
			message:  "nat: invalid prefix: alias prefix invalid Prefix (mapping 0)",
		},
		{
			name:     "families differ",
			mappings: []nat.Mapping{mapping("192.168.0.0/24", "2001:db00::/24")},
			want:     nat.ErrFamilyMismatch,
			message:  "nat: real and alias prefixes differ in address family: 192.168.0.0/24 as 2001:db00::/24 (mapping 0)",
		},
		{
			name: "lengths differ",
			mappings: []nat.Mapping{
				mapping("192.168.0.0/24", "10.200.7.0/24"),
				mapping("192.168.1.0/24", "10.200.0.0/16"),
			},
			want:    nat.ErrLengthMismatch,
			message: "nat: real and alias prefixes differ in length: 192.168.1.0/24 as 10.200.0.0/16 (mapping 1)",
		},
		{
			name:     "real not masked",
			mappings: []nat.Mapping{mapping("192.168.0.1/24", "10.200.7.0/24")},
			want:     nat.ErrNotMasked,
			message:  "nat: prefix has host bits set: real prefix 192.168.0.1/24, did you mean 192.168.0.0/24? (mapping 0)",
		},
		{
			name:     "alias not masked",
			mappings: []nat.Mapping{mapping("fd00::/64", "2001:db8:7::1/64")},
			want:     nat.ErrNotMasked,
			message:  "nat: prefix has host bits set: alias prefix 2001:db8:7::1/64, did you mean 2001:db8:7::/64? (mapping 0)",
		},
		{
			name: "aliases overlap",
			mappings: []nat.Mapping{
				mapping("192.168.0.0/24", "10.200.7.0/24"),
				mapping("192.168.1.0/25", "10.200.7.128/25"),
			},
			want:    nat.ErrOverlap,
			message: "nat: overlapping prefixes: alias prefix 10.200.7.0/24 of mapping 0 overlaps 10.200.7.128/25 of mapping 1",
		},
		{
			name: "same alias twice",
			mappings: []nat.Mapping{
				mapping("fd00:1::/64", "2001:db8:7::/64"),
				mapping("fd00:2::/64", "2001:db8:7::/64"),
			},
			want:    nat.ErrOverlap,
			message: "nat: overlapping prefixes: alias prefix 2001:db8:7::/64 of mapping 0 overlaps 2001:db8:7::/64 of mapping 1",
		},
		{
			name: "reals overlap",
			mappings: []nat.Mapping{
				mapping("192.168.0.0/16", "10.1.0.0/16"),
				mapping("192.168.5.0/24", "10.200.7.0/24"),
			},
			want:    nat.ErrOverlap,
			message: "nat: overlapping prefixes: real prefix 192.168.0.0/16 of mapping 0 overlaps 192.168.5.0/24 of mapping 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, err := nat.NewTable(tt.mappings...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewTable = %v, %v; want error %v", tbl, err, tt.want)
			}
			if err.Error() != tt.message {
				t.Errorf("message\n got %q\nwant %q", err.Error(), tt.message)
			}
		})
	}
}

func TestNewTableAccepts(t *testing.T) {
	tests := map[string][]nat.Mapping{
		"no mappings": nil,
		"identity":    {mapping("10.0.0.0/8", "10.0.0.0/8")},
		"real overlaps another mapping's alias": {
			mapping("10.200.7.0/24", "10.200.8.0/24"),
			mapping("10.200.8.0/24", "10.200.7.0/24"),
		},
		"adjacent prefixes": {
			mapping("192.168.0.0/25", "10.200.7.0/25"),
			mapping("192.168.0.128/25", "10.200.7.128/25"),
		},
		"both families, host routes": {
			mapping("192.168.0.10/32", "10.200.7.10/32"),
			mapping("fd00::1/128", "2001:db8::1/128"),
		},
		"everything": {mapping("0.0.0.0/0", "0.0.0.0/0"), mapping("::/0", "::/0")},
	}
	for name, ms := range tests {
		t.Run(name, func(t *testing.T) {
			tbl, err := nat.NewTable(ms...)
			if err != nil {
				t.Fatalf("NewTable: %v", err)
			}
			if got := tbl.Mappings(); !slices.Equal(got, ms) {
				t.Errorf("Mappings() = %v, want %v", got, ms)
			}
		})
	}
}

// TestPlantSeven is the example: 192.168.0.10 at plant 7 is
// 10.200.7.10, in a packet and as an address, both ways.
func TestPlantSeven(t *testing.T) {
	tbl := plant7(t)
	if a, ok := tbl.AliasOf(addr("192.168.0.10")); !ok || a != addr("10.200.7.10") {
		t.Errorf("AliasOf(192.168.0.10) = %v, %v; want 10.200.7.10", a, ok)
	}
	if r, ok := tbl.RealOf(addr("10.200.7.10")); !ok || r != addr("192.168.0.10") {
		t.Errorf("RealOf(10.200.7.10) = %v, %v; want 192.168.0.10", r, ok)
	}
	if a, ok := tbl.AliasOf(addr("fd00:1::10")); !ok || a != addr("2001:db8:7::10") {
		t.Errorf("AliasOf(fd00:1::10) = %v, %v; want 2001:db8:7::10", a, ok)
	}
	for _, a := range []string{"192.168.1.10", "10.200.7.10", "fd00:2::10", "::ffff:192.168.0.10"} {
		if got, ok := tbl.AliasOf(addr(a)); ok {
			t.Errorf("AliasOf(%v) = %v, want no alias", a, got)
		}
	}

	// An engineer's UDP datagram to the PLC's alias, written out byte by
	// byte so that the test does not depend on the code it checks.
	toPLC := []byte{
		0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, // IPv4, 32 bytes, UDP
		172, 16, 5, 2, // source: the engineer
		10, 200, 7, 10, // destination: the PLC's alias
		0xc0, 0x01, 0x01, 0xf6, 0x00, 0x0c, 0x00, 0x00, // UDP 49153 -> 502, 12 bytes
		'm', 'o', 'd', 'b',
	}
	fillChecksums(toPLC)
	atPLC := bytes.Clone(toPLC)
	copy(atPLC[16:20], []byte{192, 168, 0, 10})
	fillChecksums(atPLC)

	got, changed := rewriteOK(t, tbl, toPLC, nat.ToDevice)
	if !changed || !bytes.Equal(got, atPLC) {
		t.Fatalf("ToDevice: changed %v, %x\nwant %x", changed, got, atPLC)
	}
	// The answer comes back from 192.168.0.10 and leaves as 10.200.7.10.
	answer := bytes.Clone(atPLC)
	copy(answer[12:16], []byte{192, 168, 0, 10})
	copy(answer[16:20], []byte{172, 16, 5, 2})
	fillChecksums(answer)
	want := bytes.Clone(answer)
	copy(want[12:16], []byte{10, 200, 7, 10})
	fillChecksums(want)
	if got, changed := rewriteOK(t, tbl, answer, nat.FromDevice); !changed || !bytes.Equal(got, want) {
		t.Fatalf("FromDevice: changed %v, %x\nwant %x", changed, got, want)
	}
}

// fillChecksums computes the IPv4 header and UDP checksums of a simple IPv4
// UDP packet without options the slow, obvious way (RFC 1071).
func fillChecksums(p []byte) {
	sum := func(b []byte, s uint32) uint32 {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
		return s
	}
	fold := func(s uint32) uint16 {
		for s > 0xffff {
			s = s>>16 + s&0xffff
		}
		return ^uint16(s)
	}
	p[10], p[11] = 0, 0
	c := fold(sum(p[:20], 0))
	p[10], p[11] = byte(c>>8), byte(c)
	p[26], p[27] = 0, 0
	s := sum(p[12:20], 17+uint32(len(p)-20))
	c = fold(sum(p[20:], s))
	if c == 0 {
		c = 0xffff
	}
	p[26], p[27] = byte(c>>8), byte(c)
}

func TestUnmatchedPacketsPassUnchanged(t *testing.T) {
	tbl := plant7(t)
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		dir      nat.Direction
		src, dst string
	}{
		// ToDevice looks at the destination only, FromDevice at the source.
		{nat.ToDevice, "172.16.5.2", "10.200.8.10"},
		{nat.ToDevice, "10.200.7.10", "172.16.5.2"},
		{nat.ToDevice, "172.16.5.2", "192.168.0.10"}, // a real address is not an alias
		{nat.FromDevice, "192.168.1.10", "172.16.5.2"},
		{nat.FromDevice, "10.200.7.10", "192.168.0.10"},
		{nat.ToDevice, "2001:db8::1", "2001:db8:8::10"},
		{nat.FromDevice, "fd00:2::10", "fd00:1::10"},
	}
	for _, c := range cases {
		src, dst := addr(c.src), addr(c.dst)
		for kind := range numPayloadKinds {
			pkt := build(t, randomFlow(r, src.Is6(), kind), src, dst)
			got, changed := rewriteOK(t, tbl, pkt, c.dir)
			if changed || !bytes.Equal(got, pkt) {
				t.Errorf("%v %v %v -> %v: changed %v, %s", c.dir, kind, src, dst, changed, diff(pkt, got))
			}
		}
	}
}

func TestInvert(t *testing.T) {
	tbl := mustTable(t, mapping("192.168.0.0/24", "10.200.7.0/24"), mapping("fd00::/64", "2001:db8::/64"))
	inv := tbl.Invert()
	want := []nat.Mapping{mapping("10.200.7.0/24", "192.168.0.0/24"), mapping("2001:db8::/64", "fd00::/64")}
	if got := inv.Mappings(); !slices.Equal(got, want) {
		t.Errorf("Invert().Mappings() = %v, want %v", got, want)
	}
	if a, ok := inv.AliasOf(addr("10.200.7.1")); !ok || a != addr("192.168.0.1") {
		t.Errorf("inverted AliasOf(10.200.7.1) = %v, %v", a, ok)
	}
	if got := inv.Invert().Mappings(); !slices.Equal(got, tbl.Mappings()) {
		t.Errorf("Invert().Invert().Mappings() = %v", got)
	}
	// Mappings returns a copy: changing it changes nothing.
	ms := tbl.Mappings()
	ms[0].Alias = netip.MustParsePrefix("10.9.9.0/24")
	if a, _ := tbl.AliasOf(addr("192.168.0.1")); a != addr("10.200.7.1") || tbl.Mappings()[0] == ms[0] {
		t.Error("changing the slice from Mappings changed the table")
	}
}

// TestManyMappings compares lookups in tables of every size up to 120 (linear
// scan and binary search) with a brute-force search over the mappings.
func TestManyMappings(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 1; n <= 120; n += 1 + n/8 {
		for _, v6 := range []bool{false, true} {
			// Blocks of a /16 (or /48) in random order, each mapped to
			// another random block: aliases and reals do not overlap.
			base := "10.0.0.0/16"
			if v6 {
				base = "2001:db8::/48"
			}
			bits := 24
			if v6 {
				bits = 64
			}
			realBlocks, aliasBlocks := r.Perm(256), r.Perm(256)
			ms := make([]nat.Mapping, n)
			for i := range ms {
				ms[i] = nat.Mapping{
					Real:  block(base, bits, realBlocks[i]),
					Alias: block(base, bits, aliasBlocks[i]),
				}
			}
			tbl := mustTable(t, ms...)
			for range 300 {
				var host [16]byte
				for i := range host {
					host[i] = byte(r.Uint32())
				}
				a := withHost(block(base, bits, r.IntN(256)), host)
				want, wantOK := bruteForce(ms, a)
				got, ok := tbl.RealOf(a)
				if ok != wantOK || got != want {
					t.Fatalf("%d mappings: RealOf(%v) = %v, %v; want %v, %v", n, a, got, ok, want, wantOK)
				}
			}
		}
	}
}

// block returns the i-th sub-prefix of length bits of base.
func block(base string, bits, i int) netip.Prefix {
	p := netip.MustParsePrefix(base)
	b := p.Addr().AsSlice()
	b[(bits-1)/8] = byte(i)
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, bits)
}

func bruteForce(ms []nat.Mapping, alias netip.Addr) (netip.Addr, bool) {
	for _, m := range ms {
		if m.Alias.Contains(alias) {
			b, h := m.Real.Addr().AsSlice(), alias.AsSlice()
			for i := range b {
				if bit := 8 * i; bit >= m.Real.Bits() {
					b[i] = h[i]
				}
			}
			a, _ := netip.AddrFromSlice(b)
			return a, true
		}
	}
	return netip.Addr{}, false
}

func TestRewriteRejectsBadCalls(t *testing.T) {
	pkt := build(t, randomFlow(rand.New(rand.NewPCG(1, 1)), false, kindUDP), addr("172.16.5.2"), addr("10.200.7.10"))
	orig := bytes.Clone(pkt)
	if _, err := plant7(t).Rewrite(pkt, nat.Direction(2)); !errors.Is(err, nat.ErrInvalidDirection) {
		t.Errorf("Direction(2): err = %v", err)
	}
	var nilTable *nat.Table
	if _, err := nilTable.Rewrite(pkt, nat.ToDevice); !errors.Is(err, nat.ErrNilTable) {
		t.Errorf("nil table: err = %v", err)
	}
	if !bytes.Equal(pkt, orig) {
		t.Error("packet changed")
	}
	if nilTable.Mappings() != nil || nilTable.Invert() != nil {
		t.Error("nil table has mappings or an inverse")
	}
	if _, ok := nilTable.AliasOf(addr("192.168.0.1")); ok {
		t.Error("nil table has an alias")
	}
	if _, ok := nilTable.RealOf(addr("10.200.7.1")); ok {
		t.Error("nil table has a real address")
	}
	if _, ok := plant7(t).RealOf(netip.Addr{}); ok {
		t.Error("the zero Addr has a real address")
	}
	if got := fmt.Sprint(nat.ToDevice, nat.FromDevice, nat.Direction(9)); got != "ToDevice FromDevice Direction(9)" {
		t.Errorf("Direction strings: %q", got)
	}
	if got := mapping("192.168.0.0/24", "10.200.7.0/24").String(); !strings.Contains(got, "192.168.0.0/24 as 10.200.7.0/24") {
		t.Errorf("Mapping.String() = %q", got)
	}
}
