package broker

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/internal/idtable"
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
	// mu serialises Update, Attach and Detach; Deliver takes no lock.
	mu        sync.Mutex
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

// slot is where a participant's routes lead: its endpoint, replaced as a
// whole when its session comes or goes, so that the routes built by Update
// need not be rebuilt for that.
type slot struct {
	ep atomic.Pointer[endpoint]
	// routed: Update gave it networks, so it stays (offline) when its
	// session goes.
	routed bool
}

// switchState is the tables of the last Update. routes and the lengths are
// not changed after it; hosts and bySession are changed in place by Attach
// and Detach, in O(1), and read by Deliver without a lock.
type switchState struct {
	// bySession finds the endpoint of a sending session.
	bySession *idtable.Map[uint64, *endpoint]
	// hosts routes the participants' tunnel addresses.
	hosts *idtable.Map[netip.Addr, *slot]
	// routes routes the networks: LANs, or their aliases.
	routes   map[netip.Prefix]*slot
	lengths4 []int // distinct prefix lengths in routes, longest first
	lengths6 []int
	// byParticipant is for Attach and Detach, under Switch.mu.
	byParticipant map[policy.ParticipantID]*slot
}

func newSwitchState() *switchState {
	return &switchState{
		bySession:     idtable.NewMap[uint64, *endpoint](idtable.HashUint64),
		hosts:         idtable.NewMap[netip.Addr, *slot](idtable.HashAddr),
		routes:        map[netip.Prefix]*slot{},
		byParticipant: map[policy.ParticipantID]*slot{},
	}
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
	s.state.Store(newSwitchState())
	s.scratch.New = func() any { return new(batchScratch) }
	return s
}

// Update installs a new policy snapshot (nil keeps the current one) and a
// new set of endpoints, atomically: packets already in Deliver finish with
// the old tables. Each endpoint's tunnel addresses are routed to it, and its
// LANs under their aliases (through its NAT table) or, without NAT, under
// their real addresses. Overlapping destinations are an error. Update
// costs O(endpoints): it is for changes of the model and the networks;
// sessions that come and go use Attach and Detach.
func (s *Switch) Update(snap *policy.Snapshot, endpoints []Endpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := newSwitchState()
	add := func(p netip.Prefix, sl *slot) error {
		p = p.Masked()
		if other, ok := st.routes[p]; ok && other != sl {
			return conflict(p, sl, p, other)
		}
		st.routes[p] = sl
		return nil
	}
	for i := range endpoints {
		e := newEndpoint(endpoints[i])
		sl := &slot{}
		sl.ep.Store(e)
		st.byParticipant[e.Participant] = sl
		for _, a := range e.Addresses {
			if other, ok := st.hosts.Load(a); ok && other != sl {
				p := netip.PrefixFrom(a, a.BitLen())
				return conflict(p, sl, p, other)
			}
			st.hosts.Store(a, sl)
		}
		if e.NAT != nil {
			for _, m := range e.NAT.Mappings() {
				if err := add(m.Alias, sl); err != nil {
					return err
				}
				sl.routed = true
			}
		} else {
			for _, lan := range e.LANs {
				if err := add(lan, sl); err != nil {
					return err
				}
				sl.routed = true
			}
		}
		if e.Session != nil {
			st.bySession.Store(e.Session.ID(), e)
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
	// address up under every shorter length in use. This keeps Update
	// linear in the number of routes.
	for p, sl := range st.routes {
		if q, other := st.routeCovering(p.Addr(), p.Bits()); other != nil && other != sl {
			return conflict(p, sl, q, other)
		}
	}
	var err error
	st.hosts.Range(func(a netip.Addr, sl *slot) bool {
		if q, other := st.routeCovering(a, a.BitLen()+1); other != nil && other != sl {
			err = conflict(netip.PrefixFrom(a, a.BitLen()), sl, q, other)
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if snap != nil {
		s.filter.SetSnapshot(snap)
	}
	s.state.Store(st)
	return nil
}

func conflict(p netip.Prefix, sl *slot, q netip.Prefix, other *slot) error {
	return fmt.Errorf("%w: %v of participant %d and %v of participant %d", ErrRouteConflict, p, sl.ep.Load().Participant, q, other.ep.Load().Participant)
}

func newEndpoint(ep Endpoint) *endpoint {
	e := &endpoint{Endpoint: ep}
	for _, a := range e.Addresses {
		e.sources = append(e.sources, netip.PrefixFrom(a, a.BitLen()))
	}
	e.sources = append(e.sources, e.LANs...)
	return e
}

// routeCovering is the route of routes, shorter than bits, that contains a:
// its prefix and slot, nil if none.
func (st *switchState) routeCovering(a netip.Addr, bits int) (netip.Prefix, *slot) {
	lengths := st.lengths4
	if !a.Is4() {
		lengths = st.lengths6
	}
	for _, l := range lengths {
		if l >= bits {
			continue
		}
		q := netip.PrefixFrom(a, l).Masked()
		if sl, ok := st.routes[q]; ok {
			return q, sl
		}
	}
	return netip.Prefix{}, nil
}

// Attach gives participant p the session sess with the tunnel addresses
// addrs, replacing the session it had: its networks stay those of the last
// Update (a participant Update did not know gets none). It costs O(1)
// whatever the number of participants, which is why the broker calls it,
// rather than Update, when a session comes up. An address routed to
// another participant is an error wrapping ErrRouteConflict, and nothing
// changes.
func (s *Switch) Attach(p policy.ParticipantID, sess tunnel.Session, addrs []netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state.Load()
	sl := st.byParticipant[p]
	for _, a := range addrs {
		if other, ok := st.hosts.Load(a); ok && other != sl {
			pa := netip.PrefixFrom(a, a.BitLen())
			return fmt.Errorf("%w: %v of participant %d and of participant %d", ErrRouteConflict, pa, p, other.ep.Load().Participant)
		}
		if q, other := st.routeCovering(a, a.BitLen()+1); other != nil && other != sl {
			return fmt.Errorf("%w: %v of participant %d and %v of participant %d", ErrRouteConflict, a, p, q, other.ep.Load().Participant)
		}
	}
	ep := Endpoint{Participant: p}
	if sl == nil {
		sl = &slot{}
		st.byParticipant[p] = sl
	} else if old := sl.ep.Load(); old != nil {
		ep = old.Endpoint
		st.drop(sl, old, addrs)
	}
	ep.Session, ep.Addresses = sess, slices.Clone(addrs)
	e := newEndpoint(ep)
	sl.ep.Store(e)
	for _, a := range addrs {
		st.hosts.Store(a, sl)
	}
	if sess != nil {
		st.bySession.Store(sess.ID(), e)
	}
	return nil
}

// Detach takes the session sess of participant p off the switch, if it is
// still the one attached: its tunnel addresses are no longer routed, and
// its networks, if Update gave it any, lead to it offline (DropOffline).
// It costs O(1), like Attach.
func (s *Switch) Detach(p policy.ParticipantID, sess tunnel.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state.Load()
	sl := st.byParticipant[p]
	if sl == nil {
		return
	}
	old := sl.ep.Load()
	if old == nil || old.Session == nil || old.Session.ID() != sess.ID() {
		return
	}
	st.drop(sl, old, nil)
	if !sl.routed {
		delete(st.byParticipant, p)
		sl.ep.Store(nil)
		return
	}
	ep := old.Endpoint
	ep.Session, ep.Addresses = nil, nil
	sl.ep.Store(newEndpoint(ep))
}

// drop removes old's session and the host routes of its addresses that
// are not in keep; Switch.mu is held.
func (st *switchState) drop(sl *slot, old *endpoint, keep []netip.Addr) {
	if old.Session != nil {
		st.bySession.Delete(old.Session.ID())
	}
	for _, a := range old.Addresses {
		if !slices.Contains(keep, a) {
			if cur, _ := st.hosts.Load(a); cur == sl {
				st.hosts.Delete(a)
			}
		}
	}
}

// Stats returns the counters.
func (s *Switch) Stats() SwitchStats {
	st := SwitchStats{Forwarded: s.forwarded.Load()}
	for i := range st.Dropped {
		st.Dropped[i] = s.drops[i].Load()
	}
	return st
}

// route is the endpoint that owns destination a: a tunnel address or the
// longest network route that contains it; nil if none.
func (st *switchState) route(a netip.Addr) *endpoint {
	if sl, ok := st.hosts.Load(a); ok {
		return sl.ep.Load()
	}
	lengths := st.lengths4
	if !a.Is4() {
		lengths = st.lengths6
	}
	for _, l := range lengths {
		if sl, ok := st.routes[netip.PrefixFrom(a, l).Masked()]; ok {
			return sl.ep.Load()
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
	src, _ := st.bySession.Load(from.ID())
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
