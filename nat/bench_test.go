package nat_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/remotegate/remotegate/nat"
)

type benchCase struct {
	name string
	tbl  *nat.Table
	pkt  []byte // addressed so that tbl translates it ToDevice
}

// benchCases returns the packets of the benchmarks: what a broker forwards
// to a device most of the time, and an ICMP error.
func benchCases(t testing.TB) []benchCase {
	r := rand.New(rand.NewPCG(31, 32))
	tbl := plant7(t)
	flow := func(v6 bool, kind payloadKind, size int) flow {
		f := randomFlow(r, v6, kind)
		f.ipv4Options, f.ipv6Ext = false, nil
		f.payload = make([]byte, size)
		return f
	}
	tcp1400 := build(t, flow(false, kindTCP, 1360), engineer, plcAlias)
	// A table with 100 mappings, the PLC's in the middle.
	var many []nat.Mapping
	for i := range 100 {
		many = append(many, nat.Mapping{
			Real:  netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 24),
			Alias: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i + 7), 0}), 24),
		})
	}
	return []benchCase{
		{"IPv4TCP1400", tbl, tcp1400},
		{"IPv4UDP", tbl, build(t, flow(false, kindUDP, 100), engineer, plcAlias)},
		{"IPv6TCP1400", tbl, build(t, flow(true, kindTCP, 1340), engineer6, plcAlias6)},
		{"ICMPError", tbl, buildICMPError(t, flow(false, kindEcho, 0), icmpError{3, 4, 1280}, addr("198.51.100.1"), plcAlias,
			build(t, flow(false, kindTCP, 100), plcAlias, engineer)[:28])},
		{"ICMPv6Error", tbl, buildICMPError(t, flow(true, kindEcho, 0), icmpError{2, 0, 1280}, engineer6, plcAlias6,
			build(t, flow(true, kindTCP, 1000), plcAlias6, engineer6))},
		{"IPv4TCP1400Mappings100", mustTable(t, many...), tcp1400},
		{"IPv4TCP1400Unmatched", mustTable(t, mapping("192.0.2.0/24", "198.18.0.0/24")), tcp1400},
	}
}

// BenchmarkRewrite alternates the table and its inverse on one packet, so
// every operation is a full translation (except for the unmatched case).
func BenchmarkRewrite(b *testing.B) {
	for _, c := range benchCases(b) {
		b.Run(c.name, func(b *testing.B) {
			tables := [2]*nat.Table{c.tbl, c.tbl.Invert()}
			pkt := append([]byte(nil), c.pkt...)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := tables[i&1].Rewrite(pkt, nat.ToDevice); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkIndexLookup looks up random aliases of 10,000 devices.
func BenchmarkIndexLookup(b *testing.B) {
	x, err := nat.NewIndex(plantTables(b, 10000))
	if err != nil {
		b.Fatal(err)
	}
	for _, v6 := range []bool{false, true} {
		name := "IPv4"
		if v6 {
			name = "IPv6"
		}
		b.Run(name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(33, 34))
			addrs := make([]netip.Addr, 4096)
			for i := range addrs {
				p := r.IntN(10000)
				addrs[i] = netip.AddrFrom4([4]byte{10, byte(p >> 8), byte(p), byte(r.Uint32())})
				if v6 {
					addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(p >> 8), byte(p), 15: byte(r.Uint32())})
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := x.Lookup(addrs[i&4095]); !ok {
					b.Fatal("not found")
				}
				i++
			}
		})
	}
}

func TestRewriteDoesNotAllocate(t *testing.T) {
	for _, c := range benchCases(t) {
		inv := c.tbl.Invert()
		pkt := append([]byte(nil), c.pkt...)
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := c.tbl.Rewrite(pkt, nat.ToDevice); err != nil {
				t.Fatal(err)
			}
			if _, err := inv.Rewrite(pkt, nat.ToDevice); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Rewrite pair", c.name, allocs)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	x, err := nat.NewIndex(plantTables(t, 10000))
	if err != nil {
		t.Fatal(err)
	}
	a4, a6 := addr("10.39.15.10"), addr("2001:db8:270f::10")
	allocs := testing.AllocsPerRun(200, func() {
		if _, ok := x.Lookup(a4); !ok {
			t.Fatal("IPv4 alias not found")
		}
		if _, ok := x.Lookup(a6); !ok {
			t.Fatal("IPv6 alias not found")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Lookup pair", allocs)
	}
}
