package nat_test

import (
	"net/netip"
	"testing"

	"github.com/remotegate/remotegate/nat"
)

// fuzzTables are chosen so that the union of alias prefixes equals the union
// of real prefixes: an address then matches the inverted table exactly when
// it matched the table, and every successful rewrite must be undone.
func fuzzTables(t testing.TB) []*nat.Table {
	// Every address matches: the top bit flips.
	everything := mustTable(t,
		mapping("0.0.0.0/1", "128.0.0.0/1"), mapping("128.0.0.0/1", "0.0.0.0/1"),
		mapping("::/1", "8000::/1"), mapping("8000::/1", "::/1"))
	// Sixteen /28 blocks of 10.0.0.0/24 and /68 blocks of 2001:db8::/64,
	// shuffled: more mappings than a linear scan handles.
	var blocks []nat.Mapping
	perm := []int{3, 14, 0, 9, 12, 5, 1, 15, 7, 10, 2, 13, 4, 8, 11, 6}
	for i, j := range perm {
		blocks = append(blocks,
			nat.Mapping{
				Real:  netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i << 4)}), 28),
				Alias: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(j << 4)}), 28),
			},
			nat.Mapping{
				Real:  netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 8: byte(i << 4)}), 68),
				Alias: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 8: byte(j << 4)}), 68),
			})
	}
	return []*nat.Table{everything, sampleTable(t), mustTable(t, blocks...)}
}

// FuzzRewrite checks checkContract for any bytes: no panic, no write beyond
// the packet, an error leaves the packet unchanged, and a rewrite is undone
// by the inverted table.
func FuzzRewrite(f *testing.F) {
	for i, p := range samplePackets(f) {
		f.Add(p, uint8(i%2), uint8(i%3))
	}
	tables := fuzzTables(f)
	inverted := make([]*nat.Table, len(tables))
	for i, tbl := range tables {
		inverted[i] = tbl.Invert()
	}
	f.Fuzz(func(t *testing.T, pkt []byte, dir, table uint8) {
		i := int(table) % len(tables)
		checkContract(t, tables[i], inverted[i], pkt, nat.Direction(dir%2))
	})
}
