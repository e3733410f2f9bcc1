package nat_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/remotegate/remotegate/nat"
)

// plantTables returns n devices, "plant-0000" to "plant-<n-1>", all with
// the LAN 192.168.0.0/24 and fd00:1::/64, exposed as 10.x.y.0/24 and
// 2001:db8:i::/64 with i the plant number.
func plantTables(t testing.TB, n int) map[string]*nat.Table {
	tables := make(map[string]*nat.Table, n)
	for i := range n {
		alias4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		alias6 := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 64)
		tables[plantName(i)] = mustTable(t,
			nat.Mapping{Real: netip.MustParsePrefix("192.168.0.0/24"), Alias: alias4},
			nat.Mapping{Real: netip.MustParsePrefix("fd00:1::/64"), Alias: alias6})
	}
	return tables
}

func plantName(i int) string { return fmt.Sprintf("plant-%04d", i) }

func TestIndexLookup(t *testing.T) {
	tables := plantTables(t, 10000)
	x, err := nat.NewIndex(tables)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(29, 30))
	for range 20000 {
		i := r.IntN(12000) // some beyond the last plant
		host := byte(r.Uint32())
		a4 := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), host})
		a6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 15: host})
		for _, a := range []netip.Addr{a4, a6} {
			device, tbl, ok := x.LookupTable(a)
			if want := i < 10000; ok != want || (ok && (device != plantName(i) || tbl != tables[device])) {
				t.Fatalf("LookupTable(%v) = %q, %p, %v; want %q, %v", a, device, tbl, ok, plantName(i), want)
			}
			if d, ok2 := x.Lookup(a); d != device || ok2 != ok {
				t.Fatalf("Lookup(%v) = %q, %v; LookupTable said %q, %v", a, d, ok2, device, ok)
			}
		}
	}
	for _, a := range []string{"192.168.0.10", "9.255.255.255", "11.0.0.0", "0.0.0.0", "255.255.255.255", "::", "fd00:1::10", "::ffff:10.0.0.1"} {
		if d, ok := x.Lookup(addr(a)); ok {
			t.Errorf("Lookup(%v) = %q, want none", a, d)
		}
	}
	if d, ok := x.Lookup(netip.Addr{}); ok {
		t.Errorf("Lookup(zero Addr) = %q", d)
	}
	var none *nat.Index
	if _, ok := none.Lookup(addr("10.0.0.1")); ok {
		t.Error("nil Index found something")
	}
}

func TestNewIndexRejects(t *testing.T) {
	plant7 := plant7(t)
	wide := mustTable(t, mapping("192.168.0.0/16", "10.200.0.0/16"))
	tests := []struct {
		name    string
		tables  map[string]*nat.Table
		want    error
		message string
	}{
		{
			name:    "alias inside another plant's alias",
			tables:  map[string]*nat.Table{"plant-7": plant7, "campus": wide},
			want:    nat.ErrOverlap,
			message: `nat: overlapping prefixes: alias 10.200.0.0/16 of device "campus" overlaps alias 10.200.7.0/24 of device "plant-7"`,
		},
		{
			name:    "one table for two devices",
			tables:  map[string]*nat.Table{"plant-7": plant7, "plant-7b": plant7},
			want:    nat.ErrOverlap,
			message: `nat: overlapping prefixes: alias 10.200.7.0/24 of device "plant-7" overlaps alias 10.200.7.0/24 of device "plant-7b"`,
		},
		{
			name:    "nil table",
			tables:  map[string]*nat.Table{"plant-7": plant7, "plant-9": nil},
			want:    nat.ErrNilTable,
			message: `nat: nil table: device "plant-9"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := nat.NewIndex(tt.tables)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewIndex = %v, %v; want %v", x, err, tt.want)
			}
			if err.Error() != tt.message {
				t.Errorf("message\n got %s\nwant %s", err, tt.message)
			}
		})
	}
	// Real prefixes may be the same everywhere: that is the point.
	if _, err := nat.NewIndex(plantTables(t, 3)); err != nil {
		t.Fatal(err)
	}
	if x, err := nat.NewIndex(nil); err != nil {
		t.Fatal(err)
	} else if _, ok := x.Lookup(addr("10.0.0.1")); ok {
		t.Error("empty index found something")
	}
}

// TestConcurrentUse shares one table and one index between goroutines that
// each rewrite their own packets (run with -race to check the claim that
// tables and indexes are safe for concurrent use).
func TestConcurrentUse(t *testing.T) {
	tables := plantTables(t, 100)
	x, err := nat.NewIndex(tables)
	if err != nil {
		t.Fatal(err)
	}
	packets := samplePackets(t)
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i := range 200 {
				alias := netip.AddrFrom4([4]byte{10, 0, byte(g*20 + i%20), 10})
				_, tbl, ok := x.LookupTable(alias)
				if !ok {
					done <- fmt.Errorf("no table for %v", alias)
					return
				}
				p := append([]byte(nil), packets[i%len(packets)]...)
				if _, err := tbl.Rewrite(p, nat.Direction(i%2)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
