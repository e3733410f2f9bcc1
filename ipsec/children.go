package ipsec

import (
	"net/netip"
	"slices"
	"sync/atomic"
)

// Several child SAs per IKE SA (RFC 7296 §1.3.1): a gateway with two LANs
// may carry each in its own child SA, with its own traffic selectors. Our
// traffic leaves on the child whose selectors cover the packet, which
// childSet picks without a lock or an allocation; the set changes (a child
// added, rekeyed or deleted) by replacing an immutable slice.

// childSet is the set of child SAs our traffic leaves on, one per pair of
// traffic selectors: a rekey replaces a child in place, a Delete removes
// it. Readers (the data path) load a snapshot; writers copy it, under the
// link's lock or, for the hand-over of a rekey on the data path
// (childSA.peerInstalled), by compare-and-swap.
type childSet struct {
	p atomic.Pointer[[]*childSA]
}

// Load returns the first child SA of the set (the one IKE_AUTH made,
// unless it went away), or nil when there is none: the tunnel carries
// nothing.
func (s *childSet) Load() *childSA {
	if p := s.p.Load(); p != nil && len(*p) > 0 {
		return (*p)[0]
	}
	return nil
}

// all is a snapshot of the set, not to be modified.
func (s *childSet) all() []*childSA {
	if p := s.p.Load(); p != nil {
		return *p
	}
	return nil
}

// Store makes c the only child of the set; nil empties it.
func (s *childSet) Store(c *childSA) {
	if c == nil {
		s.p.Store(nil)
		return
	}
	s.p.Store(&[]*childSA{c})
}

// add adds c to the set, after the others: a child SA the peer or we
// added beside them.
func (s *childSet) add(c *childSA) {
	for {
		p := s.p.Load()
		var cur []*childSA
		if p != nil {
			cur = *p
		}
		if slices.Contains(cur, c) {
			return
		}
		n := append(slices.Clip(slices.Clone(cur)), c)
		if s.p.CompareAndSwap(p, &n) {
			return
		}
	}
}

// CompareAndSwap replaces old by n in the set, at its place, and reports
// whether old was in it; a nil n removes old. Replacing keeps the other
// children untouched: a rekey of one child moves only its traffic.
func (s *childSet) CompareAndSwap(old, n *childSA) bool {
	for {
		p := s.p.Load()
		if p == nil {
			return false
		}
		i := slices.Index(*p, old)
		if i < 0 {
			return false
		}
		var next []*childSA
		if n != nil && !slices.Contains(*p, n) {
			next = slices.Clone(*p)
			next[i] = n
		} else {
			next = slices.Delete(slices.Clone(*p), i, i+1)
		}
		np := &next
		if len(next) == 0 {
			np = nil
		}
		if s.p.CompareAndSwap(p, np) {
			return true
		}
	}
}

// pick returns the child SA whose traffic selectors cover an inner
// packet, its source on our side and its destination on the peer's (RFC
// 4301 §5.1), so that each LAN's traffic leaves on its own child; nil
// when none does or the packet is not IP. The first child that covers it
// wins, as in an ordered policy database. It takes no lock and allocates
// nothing.
func (s *childSet) pick(pkt []byte) *childSA {
	p := s.p.Load()
	if p == nil {
		return nil
	}
	src, dst, ok := addrs(pkt)
	if !ok {
		return nil
	}
	for _, c := range *p {
		if covered(c.localTS, src) && covered(c.peerTS, dst) {
			return c
		}
	}
	return nil
}

// localPrefixes and peerPrefixes are what the children of the set cover,
// on our side and the peer's, each prefix once.
func (s *childSet) localPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, c := range s.all() {
		for _, p := range prefixesOf(c.localTS) {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func (s *childSet) peerPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, c := range s.all() {
		for _, p := range prefixesOf(c.peerTS) {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// countUnroutable counts a packet of ours that no child SA covers.
func (l *link) countUnroutable() {
	if l.unroutable != nil {
		l.unroutable.Add(1)
	}
}
