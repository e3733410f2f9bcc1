package broker

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/nat"
	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// ErrRouteConflict reports two endpoints claiming overlapping
// destinations.
var ErrRouteConflict = errors.New("broker: routes overlap")

// Endpoint is one participant as the switch sees it: its tunnel address,
// the networks behind it (devices), the NAT table that exposes them, and
// its live session (nil while offline).
type Endpoint struct {
	Participant policy.ParticipantID
	Session     tunnel.Session
	// Addresses are the participant's tunnel addresses.
	Addresses []netip.Addr
	// LANs are the real networks behind a device: it may send from them.
	LANs []netip.Prefix
	// NAT translates the LANs to their aliases; nil when the LANs are
	// routed under their real addresses.
	NAT *nat.Table
}

// DropReason says why the switch dropped a packet.
type DropReason int

// Drop reasons, counted in SwitchStats.
const (
	DropMalformed   DropReason = iota // not an IP packet the switch can read
	DropUnknownPeer                   // the sending session is not attached
	DropSpoofed                       // source is not the sender's address or LAN
	DropNoRoute                       // no endpoint owns the destination
	DropOffline                       // the destination's participant has no session
	DropNAT                           // the NAT rewrite refused the packet
	DropPolicy                        // no relation allows it and it answers no flow
	DropSend                          // the target session failed to send
	numDropReasons
)

var dropNames = [...]string{"malformed", "unknown peer", "spoofed source", "no route", "offline", "nat", "policy", "send"}

func (r DropReason) String() string {
	if r >= 0 && int(r) < len(dropNames) {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", int(r))
}

// SwitchStats counts forwarded and dropped packets.
type SwitchStats struct {
	Forwarded uint64
	Dropped   [numDropReasons]uint64
}

// Switch forwards packets between sessions. Deliver is safe for
// concurrent use by every transport goroutine.
type Switch struct {
	state     atomic.Pointer[switchState]
	filter    *policy.FlowFilter
	forwarded atomic.Uint64
	drops     [numDropReasons]atomic.Uint64
	scratch   sync.Pool // *batchScratch
	now       func() time.Time
}

type endpoint struct {
	Endpoint
	sources []netip.Prefix // addresses and LANs it may send from
}

type switchState struct {
	bySession map[uint64]*endpoint
	routes    map[netip.Prefix]*endpoint
	lengths4  []int // distinct prefix lengths in routes, longest first
	lengths6  []int
}

// SwitchConfig configures a Switch. The zero value gives the defaults.
type SwitchConfig struct {
	// FlowTable sizes the policy flow table.
	FlowTable policy.FlowFilterConfig
	// Now is the clock that ages flows and checks relations' time windows,
	// read once per batch. Nil means time.Now.
	Now func() time.Time
}

// NewSwitch returns a switch that checks packets against snap (with a flow
// table sized by cfg) and forwards nothing until Update attaches endpoints.
func NewSwitch(snap *policy.Snapshot, cfg SwitchConfig) *Switch {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Switch{filter: policy.NewFlowFilter(snap, cfg.FlowTable), now: now}
	s.state.Store(&switchState{bySession: map[uint64]*endpoint{}, routes: map[netip.Prefix]*endpoint{}})
	s.scratch.New = func() any { return new(batchScratch) }
	return s
}

// Update installs a new policy snapshot (nil keeps the current one) and a
// new set of endpoints, atomically: packets already in Deliver finish with
// the old tables. Each endpoint's tunnel addresses are routed to it, and its
// LANs under their aliases (through its NAT table) or, without NAT, under
// their real addresses. Overlapping destinations are an error.
func (s *Switch) Update(snap *policy.Snapshot, endpoints []Endpoint) error {
	st := &switchState{bySession: map[uint64]*endpoint{}, routes: map[netip.Prefix]*endpoint{}}
	conflict := func(p netip.Prefix, e *endpoint, q netip.Prefix, other *endpoint) error {
		return fmt.Errorf("%w: %v of participant %d and %v of participant %d", ErrRouteConflict, p, e.Participant, q, other.Participant)
	}
	add := func(p netip.Prefix, e *endpoint) error {
		p = p.Masked()
		if other, ok := st.routes[p]; ok && other != e {
			return conflict(p, e, p, other)
		}
		st.routes[p] = e
		return nil
	}
	for i := range endpoints {
		e := &endpoint{Endpoint: endpoints[i]}
		for _, a := range e.Addresses {
			e.sources = append(e.sources, netip.PrefixFrom(a, a.BitLen()))
			if err := add(netip.PrefixFrom(a, a.BitLen()), e); err != nil {
				return err
			}
		}
		e.sources = append(e.sources, e.LANs...)
		if e.NAT != nil {
			for _, m := range e.NAT.Mappings() {
				if err := add(m.Alias, e); err != nil {
					return err
				}
			}
		} else {
			for _, lan := range e.LANs {
				if err := add(lan, e); err != nil {
					return err
				}
			}
		}
		if e.Session != nil {
			st.bySession[e.Session.ID()] = e
		}
	}
	for p := range st.routes {
		if p.Addr().Is4() {
			st.lengths4 = append(st.lengths4, p.Bits())
		} else {
			st.lengths6 = append(st.lengths6, p.Bits())
		}
	}
	for _, l := range []*[]int{&st.lengths4, &st.lengths6} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
		slices.Reverse(*l)
	}
	// Two prefixes overlap only if one contains the other: look each one's
	// address up under every shorter length in use. This keeps Update,
	// which runs at every connect, linear in the number of routes.
	for p, e := range st.routes {
		lengths := st.lengths4
		if !p.Addr().Is4() {
			lengths = st.lengths6
		}
		for _, l := range lengths {
			if l >= p.Bits() {
				continue
			}
			q := netip.PrefixFrom(p.Addr(), l).Masked()
			if other, ok := st.routes[q]; ok && other != e {
				return conflict(p, e, q, other)
			}
		}
	}
	if snap != nil {
		s.filter.SetSnapshot(snap)
	}
	s.state.Store(st)
	return nil
}

// Stats returns the counters.
func (s *Switch) Stats() SwitchStats {
	st := SwitchStats{Forwarded: s.forwarded.Load()}
	for i := range st.Dropped {
		st.Dropped[i] = s.drops[i].Load()
	}
	return st
}

func (st *switchState) route(a netip.Addr) *endpoint {
	lengths := st.lengths4
	if !a.Is4() {
		lengths = st.lengths6
	}
	for _, l := range lengths {
		if e, ok := st.routes[netip.PrefixFrom(a, l).Masked()]; ok {
			return e
		}
	}
	return nil
}

func (e *endpoint) maySendFrom(a netip.Addr) bool {
	for _, p := range e.sources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// batchScratch gathers the packets of one Deliver call per target.
type batchScratch struct {
	targets []*endpoint
	batches [][][]byte
	hdr     header
	flow    policy.Flow
}

func (b *batchScratch) add(e *endpoint, buf []byte) {
	for i, t := range b.targets {
		if t == e {
			b.batches[i] = append(b.batches[i], buf)
			return
		}
	}
	b.targets = append(b.targets, e)
	if len(b.batches) < len(b.targets) {
		b.batches = append(b.batches, nil)
	}
	n := len(b.targets) - 1
	b.batches[n] = append(b.batches[n][:0], buf)
}

// Deliver is the tunnel.Handler step for decrypted packets: each of
// bufs[i][offset:offset+sizes[i]] is checked, translated and forwarded to
// its target session, one Send per target.
func (s *Switch) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	st := s.state.Load()
	src := st.bySession[from.ID()]
	if src == nil {
		s.drops[DropUnknownPeer].Add(uint64(len(bufs)))
		return
	}
	b := s.scratch.Get().(*batchScratch)
	now := s.now()
	for i, buf := range bufs {
		pkt := buf[offset : offset+sizes[i]]
		dst, reason := s.forward(st, src, pkt, now, b)
		if dst == nil {
			s.drops[reason].Add(1)
			continue
		}
		b.add(dst, buf[:offset+sizes[i]])
	}
	for i, t := range b.targets {
		batch := b.batches[i]
		n, err := t.Session.Send(batch, offset)
		s.forwarded.Add(uint64(n))
		if err != nil || n < len(batch) {
			s.drops[DropSend].Add(uint64(len(batch) - n))
		}
		clear(batch) // keep no references to the caller's buffers
		b.batches[i] = batch[:0]
	}
	clear(b.targets)
	b.targets = b.targets[:0]
	s.scratch.Put(b)
}

// forward decides one packet: the target endpoint, or nil and why not.
// NAT rewrites happen in place.
func (s *Switch) forward(st *switchState, src *endpoint, pkt []byte, now time.Time, b *batchScratch) (*endpoint, DropReason) {
	h := &b.hdr
	if !parseHeader(pkt, h) {
		return nil, DropMalformed
	}
	if !src.maySendFrom(h.src) {
		return nil, DropSpoofed
	}
	dst := st.route(h.dst)
	switch {
	case dst == nil:
		return nil, DropNoRoute
	case dst.Session == nil:
		return nil, DropOffline
	}
	// From a device, the real source becomes the alias first, so that the
	// policy and its flow table see the addresses users see.
	if src.NAT != nil {
		changed, err := src.NAT.Rewrite(pkt, nat.FromDevice)
		if err != nil {
			return nil, DropNAT
		}
		if changed && !parseHeader(pkt, h) {
			return nil, DropMalformed
		}
	}
	f := &b.flow
	*f = policy.Flow{From: src.Participant, To: dst.Participant, Proto: h.proto, Src: h.src, Dst: h.dst,
		SrcPort: h.sport, DstPort: h.dport, ICMPType: h.icmpType, ICMPID: h.icmpID, Quote: h.quote}
	if d := s.filter.Check(f, now); !d.Allowed {
		return nil, DropPolicy
	}
	if dst.NAT != nil {
		if _, err := dst.NAT.Rewrite(pkt, nat.ToDevice); err != nil {
			return nil, DropNAT
		}
	}
	return dst, 0
}
