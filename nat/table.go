package nat

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/remotegate/remotegate/internal/packet"
)

// Mapping exposes the device LAN Real under Alias. Both prefixes have the same
// address family and length; an address keeps its host bits and swaps its
// prefix bits.
type Mapping struct {
	Real, Alias netip.Prefix
}

// String describes m as an administrator would say it: "the real LAN as the
// alias".
func (m Mapping) String() string {
	return m.Real.String() + " as " + m.Alias.String()
}

// Direction says which way a packet crosses the translation and so which
// addresses Rewrite translates.
type Direction uint8

const (
	// ToDevice is a packet on its way to the device: its destination alias
	// becomes the real address. In an ICMP error the quoted packet is one the
	// device sent earlier, so the quoted source alias becomes real, too.
	ToDevice Direction = iota
	// FromDevice is a packet coming back from the device: its real source
	// becomes the alias. In an ICMP error the quoted packet is one that was
	// sent to the device, so the quoted real destination becomes the alias.
	FromDevice
)

// String returns "ToDevice" or "FromDevice".
func (d Direction) String() string {
	switch d {
	case ToDevice:
		return "ToDevice"
	case FromDevice:
		return "FromDevice"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// Table holds one device's mappings. It is immutable after NewTable and safe
// for concurrent use.
type Table struct {
	mappings []Mapping
	// toDevice finds an alias and yields the real address; fromDevice finds a
	// real address and yields the alias. Invert swaps them.
	toDevice, fromDevice ruleSet
}

// NewTable validates mappings and builds a table from them. Every prefix must
// be valid and masked (no bits set after its length), the two prefixes of a
// mapping must have the same family and length, no two alias prefixes may
// overlap, and no two real prefixes may overlap: then every address has at
// most one translation either way. A real prefix may overlap an alias prefix;
// an identity mapping (Real == Alias) is allowed. No mappings make a table
// that passes every packet unchanged.
func NewTable(mappings ...Mapping) (*Table, error) {
	for i, m := range mappings {
		if err := validateMapping(m); err != nil {
			return nil, fmt.Errorf("%w (mapping %d)", err, i)
		}
	}
	if err := checkTableOverlaps(mappings, func(m Mapping) netip.Prefix { return m.Alias }, "alias"); err != nil {
		return nil, err
	}
	if err := checkTableOverlaps(mappings, func(m Mapping) netip.Prefix { return m.Real }, "real"); err != nil {
		return nil, err
	}
	t := &Table{mappings: slices.Clone(mappings)}
	for _, m := range mappings {
		t.toDevice.add(m.Alias, m.Real)
		t.fromDevice.add(m.Real, m.Alias)
	}
	t.toDevice.sort()
	t.fromDevice.sort()
	return t, nil
}

func validateMapping(m Mapping) error {
	for _, side := range [...]struct {
		name string
		p    netip.Prefix
	}{{"real", m.Real}, {"alias", m.Alias}} {
		if !side.p.IsValid() {
			return fmt.Errorf("%w: %s prefix %v", ErrInvalidPrefix, side.name, side.p)
		}
		if masked := side.p.Masked(); masked != side.p {
			return fmt.Errorf("%w: %s prefix %v, did you mean %v?", ErrNotMasked, side.name, side.p, masked)
		}
	}
	if m.Real.Addr().Is4() != m.Alias.Addr().Is4() {
		return fmt.Errorf("%w: %v", ErrFamilyMismatch, m)
	}
	if m.Real.Bits() != m.Alias.Bits() {
		return fmt.Errorf("%w: %v", ErrLengthMismatch, m)
	}
	return nil
}

func checkTableOverlaps(mappings []Mapping, side func(Mapping) netip.Prefix, name string) error {
	owned := make([]ownedPrefix, len(mappings))
	for i, m := range mappings {
		owned[i] = ownedPrefix{prefix: side(m), owner: i}
	}
	if a, b, found := findOverlap(owned); found {
		return fmt.Errorf("%w: %s prefix %v of mapping %d overlaps %v of mapping %d",
			ErrOverlap, name, a.prefix, a.owner, b.prefix, b.owner)
	}
	return nil
}

// ownedPrefix is a prefix and who brought it (a mapping or device number),
// so that an overlap error can name both culprits.
type ownedPrefix struct {
	prefix netip.Prefix
	owner  int
}

// findOverlap reports two overlapping prefixes, if any. It sorts ps. Two
// prefixes either nest or are disjoint, so after sorting by first address an
// overlap always shows as a prefix containing the first address of the next
// one that does not lie wholly inside the earlier ones.
func findOverlap(ps []ownedPrefix) (a, b ownedPrefix, found bool) {
	slices.SortFunc(ps, func(x, y ownedPrefix) int {
		if c := x.prefix.Addr().Compare(y.prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(x.prefix.Bits(), y.prefix.Bits())
	})
	for i := 1; i < len(ps); i++ {
		// ps[i-1] reaches furthest so far: if ps[i] does not start inside it,
		// ps[i] starts (and so ends) after it.
		if ps[i-1].prefix.Contains(ps[i].prefix.Addr()) {
			return ps[i-1], ps[i], true
		}
	}
	return ownedPrefix{}, ownedPrefix{}, false
}

// Mappings returns a copy of the mappings in the order given to NewTable.
func (t *Table) Mappings() []Mapping {
	if t == nil {
		return nil
	}
	return slices.Clone(t.mappings)
}

// Invert returns the table with Real and Alias swapped. Rewriting a packet
// with t and then with t.Invert() in the same Direction restores the
// original bytes, with two provisos. An address that t did not translate is
// translated by the inverse if it lies in one of t's real prefixes (for
// ToDevice; in an alias prefix for FromDevice): such a packet was not meant
// for this mapping in the first place. And a checksum field of 0xffff, the
// non-canonical form of zero that no correct sender computes, comes back as
// 0x0000, which verifies the same.
func (t *Table) Invert() *Table {
	if t == nil {
		return nil
	}
	inv := &Table{
		mappings:   make([]Mapping, len(t.mappings)),
		toDevice:   t.fromDevice,
		fromDevice: t.toDevice,
	}
	for i, m := range t.mappings {
		inv.mappings[i] = Mapping{Real: m.Alias, Alias: m.Real}
	}
	return inv
}

// AliasOf returns the alias under which the device address real is exposed,
// or false if no mapping covers it.
func (t *Table) AliasOf(real netip.Addr) (netip.Addr, bool) {
	if t == nil {
		return netip.Addr{}, false
	}
	return t.fromDevice.translate(real)
}

// RealOf returns the device address behind alias, or false if no mapping
// covers it.
func (t *Table) RealOf(alias netip.Addr) (netip.Addr, bool) {
	if t == nil {
		return netip.Addr{}, false
	}
	return t.toDevice.translate(alias)
}

// ruleSet translates addresses one way. Rules of each family are sorted by
// their first address and do not overlap (NewTable checked), so the only rule
// that can hold an address is the last one starting at or before it.
type ruleSet struct {
	v4 []rule4
	v6 []rule6
}

// rule4 maps the IPv4 prefix from/mask to the prefix to.
type rule4 struct {
	from, mask, to uint32
	// delta is what the translation adds to any ones'-complement sum that
	// covers the address: it is the same for every host, because host bits
	// stay and prefix bits never carry into them. It is normalized (see
	// normalizeDelta); 0 means checksums stay as they are.
	delta uint32
}

// rule6 is rule4 for IPv6, with addresses as two big-endian halves.
type rule6 struct {
	fromHi, fromLo uint64
	maskHi, maskLo uint64
	toHi, toLo     uint64
	delta          uint32
}

// linearScanMax is the rule count up to which a linear scan beats binary
// search: a device usually has one to a few mappings.
const linearScanMax = 8

func (s *ruleSet) add(from, to netip.Prefix) {
	delta := addressDelta(from.Addr().AsSlice(), to.Addr().AsSlice())
	if from.Addr().Is4() {
		f, t := from.Addr().As4(), to.Addr().As4()
		s.v4 = append(s.v4, rule4{
			from:  binary.BigEndian.Uint32(f[:]),
			mask:  mask32(from.Bits()),
			to:    binary.BigEndian.Uint32(t[:]),
			delta: delta,
		})
		return
	}
	fHi, fLo := halves(from.Addr())
	tHi, tLo := halves(to.Addr())
	mHi, mLo := mask128(from.Bits())
	s.v6 = append(s.v6, rule6{
		fromHi: fHi, fromLo: fLo,
		maskHi: mHi, maskLo: mLo,
		toHi: tHi, toLo: tLo,
		delta: delta,
	})
}

func (s *ruleSet) sort() {
	slices.SortFunc(s.v4, func(a, b rule4) int { return cmp.Compare(a.from, b.from) })
	slices.SortFunc(s.v6, func(a, b rule6) int {
		if c := cmp.Compare(a.fromHi, b.fromHi); c != 0 {
			return c
		}
		return cmp.Compare(a.fromLo, b.fromLo)
	})
}

// addressDelta is the normalized ones'-complement change of a sum covering an
// address whose prefix bits change from from to to (RFC 1624: the sum of ~m +
// m' over the changed 16-bit words).
func addressDelta(from, to []byte) uint32 {
	// ^Fold(Sum(from)) is the ones'-complement negative of from's sum.
	negFrom := uint64(^packet.Fold(packet.Sum(from, 0)))
	return normalizeDelta(uint32(packet.Fold(packet.Sum(to, negFrom))))
}

func mask32(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

func mask128(bits int) (hi, lo uint64) {
	switch {
	case bits == 0:
		return 0, 0
	case bits <= 64:
		return ^uint64(0) << (64 - bits), 0
	default:
		return ^uint64(0), ^uint64(0) << (128 - bits)
	}
}

func halves(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func (s *ruleSet) find4(a uint32) *rule4 {
	rules := s.v4
	if len(rules) <= linearScanMax {
		for i := range rules {
			if a&rules[i].mask == rules[i].from {
				return &rules[i]
			}
		}
		return nil
	}
	// The last rule starting at or before a, found without data-dependent
	// branches (see Index.LookupTable).
	if rules[0].from > a {
		return nil
	}
	i, n := 0, len(rules)
	for n > 1 {
		half := n >> 1
		_, after := bits.Sub32(a, rules[i+half].from, 0)
		i += half & (int(after) - 1)
		n -= half
	}
	if r := &rules[i]; a&r.mask == r.from {
		return r
	}
	return nil
}

func (s *ruleSet) find6(hi, lo uint64) *rule6 {
	rules := s.v6
	if len(rules) <= linearScanMax {
		for i := range rules {
			r := &rules[i]
			if hi&r.maskHi == r.fromHi && lo&r.maskLo == r.fromLo {
				return r
			}
		}
		return nil
	}
	if borrow128(hi, lo, rules[0].fromHi, rules[0].fromLo) == 1 {
		return nil
	}
	i, n := 0, len(rules)
	for n > 1 {
		half := n >> 1
		r := &rules[i+half]
		i += half & (int(borrow128(hi, lo, r.fromHi, r.fromLo)) - 1)
		n -= half
	}
	if r := &rules[i]; hi&r.maskHi == r.fromHi && lo&r.maskLo == r.fromLo {
		return r
	}
	return nil
}

// borrow128 is 1 if the 128-bit number aHi:aLo is below bHi:bLo, else 0.
func borrow128(aHi, aLo, bHi, bLo uint64) uint64 {
	_, borrow := bits.Sub64(aLo, bLo, 0)
	_, borrow = bits.Sub64(aHi, bHi, borrow)
	return borrow
}

func (r *rule4) apply(a uint32) uint32 { return r.to | a&^r.mask }

func (r *rule6) apply(hi, lo uint64) (uint64, uint64) {
	return r.toHi | hi&^r.maskHi, r.toLo | lo&^r.maskLo
}

func (s *ruleSet) translate(a netip.Addr) (netip.Addr, bool) {
	if a.Is4() {
		b := a.As4()
		r := s.find4(binary.BigEndian.Uint32(b[:]))
		if r == nil {
			return netip.Addr{}, false
		}
		binary.BigEndian.PutUint32(b[:], r.apply(binary.BigEndian.Uint32(b[:])))
		return netip.AddrFrom4(b), true
	}
	if !a.Is6() {
		return netip.Addr{}, false
	}
	hi, lo := halves(a)
	r := s.find6(hi, lo)
	if r == nil {
		return netip.Addr{}, false
	}
	var b [16]byte
	hi, lo = r.apply(hi, lo)
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	// A zone does not belong to the translated address: it named a link on
	// the other side of the mapping.
	return netip.AddrFrom16(b), true
}
