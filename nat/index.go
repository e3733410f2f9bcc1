package nat

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// Index answers which device owns an alias address, across all devices. It
// is immutable after NewIndex and safe for concurrent use.
//
// Prefixes are kept sorted by first address and do not overlap (NewIndex
// checked), so the only prefix that can hold an address is the last one
// starting at or before it: a binary search finds it. The first addresses
// sit in their own dense slices, which keeps the search in cache for tens of
// thousands of prefixes.
type Index struct {
	v4From  []uint32
	v4Entry []indexEntry
	v6From  []uint128
	v6Entry []indexEntry
}

type uint128 struct{ hi, lo uint64 }

// borrow is 1 if a < b, else 0, computed without branches.
func (a uint128) borrow(b uint128) uint64 { return borrow128(a.hi, a.lo, b.hi, b.lo) }

type indexEntry struct {
	mask   uint128 // for IPv4 in lo
	device string
	table  *Table
}

// NewIndex indexes the alias prefixes of every device's table. No two alias
// prefixes may overlap, across devices as within one table, or an alias
// address would reach two devices.
func NewIndex(tables map[string]*Table) (*Index, error) {
	devices := make([]string, 0, len(tables))
	for d := range tables {
		devices = append(devices, d)
	}
	slices.Sort(devices) // errors then name the same culprits every time

	var all []ownedPrefix
	for i, d := range devices {
		t := tables[d]
		if t == nil {
			return nil, fmt.Errorf("%w: device %q", ErrNilTable, d)
		}
		for _, m := range t.mappings {
			all = append(all, ownedPrefix{prefix: m.Alias, owner: i})
		}
	}
	if a, b, found := findOverlap(all); found { // also sorts all
		return nil, fmt.Errorf("%w: alias %v of device %q overlaps alias %v of device %q",
			ErrOverlap, a.prefix, devices[a.owner], b.prefix, devices[b.owner])
	}
	x := &Index{}
	for _, p := range all {
		d := devices[p.owner]
		e := indexEntry{device: d, table: tables[d]}
		if p.prefix.Addr().Is4() {
			a := p.prefix.Addr().As4()
			e.mask.lo = uint64(mask32(p.prefix.Bits()))
			x.v4From = append(x.v4From, binary.BigEndian.Uint32(a[:]))
			x.v4Entry = append(x.v4Entry, e)
			continue
		}
		var from uint128
		from.hi, from.lo = halves(p.prefix.Addr())
		e.mask.hi, e.mask.lo = mask128(p.prefix.Bits())
		x.v6From = append(x.v6From, from)
		x.v6Entry = append(x.v6Entry, e)
	}
	return x, nil
}

// Lookup returns the device whose table has an alias prefix holding alias. It
// does not allocate.
func (x *Index) Lookup(alias netip.Addr) (device string, ok bool) {
	device, _, ok = x.LookupTable(alias)
	return device, ok
}

// LookupTable is Lookup that also returns the device's table, saving the
// caller a second lookup on the packet path.
func (x *Index) LookupTable(alias netip.Addr) (device string, table *Table, ok bool) {
	if x == nil {
		return "", nil, false
	}
	if alias.Is4() {
		b := alias.As4()
		a := binary.BigEndian.Uint32(b[:])
		from := x.v4From
		if len(from) == 0 || from[0] > a {
			return "", nil, false
		}
		// Find the last prefix starting at or before a. The steps compute
		// instead of branching: a mispredicted branch per step (half of
		// them, on random addresses) costs more than the whole search.
		i, n := 0, len(from)
		for n > 1 {
			half := n >> 1
			_, after := bits.Sub32(a, from[i+half], 0) // 1 if from[i+half] > a
			i += half & (int(after) - 1)
			n -= half
		}
		if e := &x.v4Entry[i]; a&uint32(e.mask.lo) == from[i] {
			return e.device, e.table, true
		}
		return "", nil, false
	}
	if !alias.Is6() {
		return "", nil, false
	}
	var a uint128
	a.hi, a.lo = halves(alias)
	from := x.v6From
	if len(from) == 0 || a.borrow(from[0]) == 1 {
		return "", nil, false
	}
	i, n := 0, len(from)
	for n > 1 {
		half := n >> 1
		i += half & (int(a.borrow(from[i+half])) - 1)
		n -= half
	}
	if e := &x.v6Entry[i]; a.hi&e.mask.hi == from[i].hi && a.lo&e.mask.lo == from[i].lo {
		return e.device, e.table, true
	}
	return "", nil, false
}
