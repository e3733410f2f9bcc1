package ipsec

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/remotegate/remotegate/ipsec/internal/message"
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
// when none does or the packet is not IP. When several cover it, the one
// with the narrowest selector for the destination (then the source) wins,
// and of equals the one added last: a peer that proposed 0.0.0.0/0 for
// its first child (strongSwan's "dynamic" with a virtual IP) gets all it
// was assigned there, but installs only what its own configuration says,
// and carries its other LANs in the children it adds for them. It takes
// no lock and allocates nothing.
func (s *childSet) pick(pkt []byte) *childSA {
	p := s.p.Load()
	if p == nil {
		return nil
	}
	src, dst, ok := addrs(pkt)
	if !ok {
		return nil
	}
	set := *p
	if len(set) == 1 {
		if c := set[0]; coveredFast(c.localTS, src) && coveredFast(c.peerTS, dst) {
			return c
		}
		return nil
	}
	var best *childSA
	var bestDst, bestSrc span
	for _, c := range set {
		d, ok1 := narrowest(c.peerTS, dst)
		sr, ok2 := narrowest(c.localTS, src)
		if !ok1 || !ok2 {
			continue
		}
		if best == nil || d.less(bestDst) || d == bestDst && !bestSrc.less(sr) {
			best, bestDst, bestSrc = c, d, sr
		}
	}
	return best
}

// coveredFast is covered, with IPv4 compared as integers: the one-child
// data path checks every packet.
func coveredFast(sel []message.Selector, a netip.Addr) bool {
	if !a.Is4() {
		return covered(sel, a)
	}
	b := a.As4()
	x := binary.BigEndian.Uint32(b[:])
	for i := range sel {
		if !sel[i].Start.Is4() || !sel[i].End.Is4() {
			continue
		}
		lo, hi := sel[i].Start.As4(), sel[i].End.As4()
		if binary.BigEndian.Uint32(lo[:]) <= x && x <= binary.BigEndian.Uint32(hi[:]) {
			return true
		}
	}
	return false
}

// span is the width of an address range (End-Start), 128 bits.
type span struct{ hi, lo uint64 }

func (a span) less(b span) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// narrowest is the width of the narrowest selector that covers a; ok is
// false when none does.
func narrowest(sel []message.Selector, a netip.Addr) (w span, ok bool) {
	if a.Is4() {
		b := a.As4()
		x := binary.BigEndian.Uint32(b[:])
		for i := range sel {
			if !sel[i].Start.Is4() || !sel[i].End.Is4() {
				continue
			}
			l4, h4 := sel[i].Start.As4(), sel[i].End.As4()
			lo, hi := binary.BigEndian.Uint32(l4[:]), binary.BigEndian.Uint32(h4[:])
			if lo <= x && x <= hi {
				if d := (span{lo: uint64(hi - lo)}); !ok || d.less(w) {
					w, ok = d, true
				}
			}
		}
		return w, ok
	}
	for i := range sel {
		s := &sel[i]
		if s.Start.BitLen() != a.BitLen() || s.Start.Compare(a) > 0 || a.Compare(s.End) > 0 {
			continue
		}
		e, b := s.End.As16(), s.Start.As16()
		eh, el := binary.BigEndian.Uint64(e[:8]), binary.BigEndian.Uint64(e[8:])
		bh, bl := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
		lo, borrow := bits.Sub64(el, bl, 0)
		hi, _ := bits.Sub64(eh, bh, borrow)
		if x := (span{hi, lo}); !ok || x.less(w) {
			w, ok = x, true
		}
	}
	return w, ok
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

// ChildTS are the traffic selectors of one child SA: the addresses on
// our side of the tunnel and on the peer's.
type ChildTS struct {
	LocalTS, RemoteTS []netip.Prefix
}

// addChildren negotiates DialConfig.AdditionalChildren, one
// CREATE_CHILD_SA exchange each (RFC 7296 §1.3.1), before the read loop
// runs. A refusal deletes the IKE SA: the gateway would carry only some of
// its LANs.
func (c *Client) addChildren(ctx context.Context, buf []byte, ike *ikeSA) error {
	for _, ts := range c.cfg.AdditionalChildren {
		child, err := c.addChild(ctx, buf, ike, ts)
		if err != nil {
			c.abandon(ike)
			return fmt.Errorf("ipsec: child SA %v === %v: %w", ts.LocalTS, ts.RemoteTS, err)
		}
		ike.children = append(ike.children, child)
		c.link.out.add(child)
		c.log.Info("child SA established", "remote", c.Remote(), "esp", child.suite.String(),
			"local_ts", prefixesOf(child.localTS), "remote_ts", prefixesOf(child.peerTS))
	}
	if len(c.cfg.AdditionalChildren) > 0 {
		c.handshake = c.now().Sub(ike.created)
	}
	return nil
}

// addChild runs one CREATE_CHILD_SA exchange for an additional child SA.
func (c *Client) addChild(ctx context.Context, buf []byte, ike *ikeSA, ts ChildTS) (*childSA, error) {
	child := &childSA{sa: ike}
	spi, err := c.table.Reserve(c.sc.rand, child)
	if err != nil {
		return nil, err
	}
	child.inSPI = spi
	ok := false
	defer func() {
		if !ok {
			c.table.Remove(spi)
		}
	}()
	ni, err := c.sc.random(nonceLen)
	if err != nil {
		return nil, err
	}
	local, remote := selectorsOf(ts.LocalTS), selectorsOf(ts.RemoteTS)
	// No KE payload, as for the first child: the child's keys come from
	// the IKE SA's (RFC 7296 §2.17).
	ps := []message.Payload{
		&message.SA{Proposals: wireProposals(c.espOffer, message.ProtoESP, binary.BigEndian.AppendUint32(nil, spi), 0)},
		&message.Nonce{Data: ni},
		// We start the exchange: TSi is our side.
		&message.TrafficSelectors{Selectors: local},
		&message.TrafficSelectors{Responder: true, Selectors: remote},
	}
	mid := ike.myMID
	req, err := ike.seal(message.CreateChildSA, false, mid, ps)
	if err != nil {
		return nil, err
	}
	ike.myMID++
	var resp []message.Payload
	err = c.exchange(ctx, buf, req, func(msg []byte, h message.Header) bool {
		if h.SPIi != ike.spii || h.SPIr != ike.spir || h.Exchange != message.CreateChildSA || !h.IsResponse() || h.MessageID != mid {
			return false
		}
		inner, done := ike.open(msg, &ike.respFrags)
		resp = inner
		return done
	})
	if err != nil {
		return nil, err
	}
	if err := notifyError(resp); err != nil {
		return nil, err
	}
	saP, ok1 := message.Find[*message.SA](resp)
	nonce, ok2 := message.Find[*message.Nonce](resp)
	tsi, ok3 := findTS(resp, false)
	tsr, ok4 := findTS(resp, true)
	if !ok1 || !ok2 || !ok3 || !ok4 || len(nonce.Data) < 16 || len(nonce.Data) > 256 {
		return nil, errors.New("ipsec: CREATE_CHILD_SA response without SA, nonce or traffic selectors")
	}
	if _, hasKE := message.Find[*message.KE](resp); hasKE || !singleProposal(saP, message.ProtoESP) {
		return nil, fmt.Errorf("%w: the CREATE_CHILD_SA response is not one of our proposals", ErrNoProposal)
	}
	sel, err := selectESP(c.espOffer, saP, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: the responder chose an ESP suite we did not offer", ErrNoProposal)
	}
	// The responder may only narrow what we proposed (RFC 7296 §2.9).
	if len(tsi.Selectors) == 0 || len(tsr.Selectors) == 0 || !within(tsi.Selectors, local) || !within(tsr.Selectors, remote) {
		return nil, fmt.Errorf("%w: traffic selectors %v === %v are not within what we proposed", ErrRefused, tsi.Selectors, tsr.Selectors)
	}
	if err := ike.keyChild(child, sel, nil, ni, bytes.Clone(nonce.Data), true); err != nil {
		return nil, err
	}
	child.localTS, child.peerTS = cloneSelectors(tsi.Selectors), cloneSelectors(tsr.Selectors)
	ok = true
	return child, nil
}
