package policy

import (
	crand "crypto/rand"
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// FlowFilterConfig sizes a FlowFilter. The zero value is usable.
type FlowFilterConfig struct {
	// Size is the number of flows remembered, rounded up to a power of two;
	// zero means 65536. Memory is 72 bytes per flow, allocated once by
	// NewFlowFilter.
	Size int
	// IdleTimeout is how long a flow is remembered after its last packet
	// in the allowed direction or its last reply; zero means two minutes.
	IdleTimeout time.Duration
}

// FlowFilter is the data-plane check: a Snapshot's relations, plus a
// bounded table of flows they allowed, so that replies to those flows
// pass even where only the other side may open flows (one-way relations).
// TCP and UDP flows are tracked by participants, addresses and ports; ICMP
// and ICMPv6 echo requests by participants, addresses and identifier, so
// that their echo replies pass. Other packets need a relation both ways.
//
// Bounds: the table never grows. Each flow hashes to a window of 8 slots;
// when all 8 hold live flows, the one closest to expiry is forgotten (its
// replies are then dropped until the opening side sends again, which for
// TCP is its next segment). Evictions are counted in Stats.
//
// Check is safe for concurrent use and does not allocate. When SetSnapshot
// installs a new snapshot, remembered flows are checked against it again
// on their next reply, so a relation that was removed or disabled stops
// replies too.
type FlowFilter struct {
	snap   atomic.Pointer[Snapshot]
	idle   int64
	seed   [7]uint64
	shards []flowShard
	mask   int // slots per shard - 1 (a power of two)

	evictions atomic.Uint64
}

const (
	flowShards = 64 // power of two
	flowProbe  = 8
)

type flowShard struct {
	mu    sync.Mutex // serialises writers; readers use the slots' sequence numbers
	slots []flowSlot
	_     [40]byte // keep shards' locks on separate cache lines
}

// flowKey is a flow's identity packed into words: source and destination
// address (16 bytes each), the two participants, ports (or ICMP
// identifier) and protocol.
type flowKey [6]uint64

// flowSlot is one remembered flow. Readers do not lock: they read the
// fields between two loads of seq and retry when a writer (holding the
// shard's lock) changed it meanwhile (a sequence lock, with every field
// atomic so that the race detector agrees). expires is also refreshed
// without the lock, by compare-and-swap.
type flowSlot struct {
	tag     atomic.Uint64 // the key's hash | 1, so that a probe skips other flows with one load
	seq     atomic.Uint64 // odd while a writer changes the slot
	key     [6]atomic.Uint64
	expires atomic.Int64 // unix nanoseconds; 0: empty
	gen     atomic.Uint64
	relGrp  atomic.Uint64 // Decision.Relation<<32 | Decision.Group, as uint32s
}

// FlowFilterStats counts what the flow table did.
type FlowFilterStats struct {
	// Evictions is the number of live flows forgotten because their slots
	// were needed for new flows.
	Evictions uint64
}

// NewFlowFilter returns a filter that checks flows against s (which may be
// replaced later with SetSnapshot).
func NewFlowFilter(s *Snapshot, cfg FlowFilterConfig) *FlowFilter {
	size := cfg.Size
	if size <= 0 {
		size = 1 << 16
	}
	per := 1
	for per < max((size+flowShards-1)/flowShards, flowProbe) {
		per <<= 1
	}
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = 2 * time.Minute
	}
	f := &FlowFilter{idle: int64(idle), shards: make([]flowShard, flowShards), mask: per - 1}
	for i := range f.shards {
		f.shards[i].slots = make([]flowSlot, per)
	}
	var seed [8 * len(f.seed)]byte
	_, _ = crand.Read(seed[:]) // never fails on Linux
	for i := range f.seed {
		f.seed[i] = binary.LittleEndian.Uint64(seed[8*i:]) | 1
	}
	f.snap.Store(s)
	return f
}

// SetSnapshot installs a new snapshot for the following checks.
func (f *FlowFilter) SetSnapshot(s *Snapshot) { f.snap.Store(s) }

// Snapshot returns the snapshot in use.
func (f *FlowFilter) Snapshot() *Snapshot { return f.snap.Load() }

// Stats returns the filter's counters.
func (f *FlowFilter) Stats() FlowFilterStats {
	return FlowFilterStats{Evictions: f.evictions.Load()}
}

// Check decides whether the packet described by fl passes at time now:
// allowed by a relation (and then remembered, if it opens a trackable
// flow), or a reply to a remembered flow. It does not allocate.
func (f *FlowFilter) Check(fl *Flow, now time.Time) Decision {
	s := f.snap.Load()
	if s == nil {
		return Decision{Reason: ReasonUnknownParticipant, Relation: -1, Group: -1}
	}
	t := now.UnixNano()
	d := s.Allowed(fl, now)
	if d.Allowed {
		var k flowKey
		if openingKey(fl, &k) {
			f.remember(&k, t, s.gen, d)
		}
		return d
	}
	var k flowKey
	if !replyKey(fl, &k) {
		if isICMPError(fl) {
			return f.related(fl, s, t, d)
		}
		return d
	}
	h := f.hash(&k)
	sh := &f.shards[h>>(64-6)]
	for i := range flowProbe {
		slot := &sh.slots[(int(h)+i)&f.mask]
		if slot.tag.Load() != h|1 {
			continue
		}
		match, exp, gen, rg := slot.read(&k, t)
		if !match {
			continue
		}
		if gen != s.gen {
			return f.recheck(sh, slot, &k, fl, s, now, d)
		}
		f.refresh(slot, exp, t)
		return Decision{Allowed: true, Reason: ReasonReply, Relation: int32(rg >> 32), Group: int32(uint32(rg))}
	}
	return d
}

// isICMPError reports whether the packet is an ICMP or ICMPv6 error that
// quotes a packet.
func isICMPError(fl *Flow) bool {
	switch fl.Proto {
	case ProtoICMP:
		return fl.ICMPType == 3 || fl.ICMPType == 11 || fl.ICMPType == 12 // unreachable, time exceeded, parameter problem
	case ProtoICMPv6:
		return fl.ICMPType >= 1 && fl.ICMPType <= 4 // unreachable, packet too big, time exceeded, parameter problem
	}
	return false
}

// related lets an ICMP error pass when the packet it quotes belongs to a
// remembered flow: the quoted packet went from the error's receiver
// (fl.To) towards the error's sender, in either direction of the flow.
// Errors are not remembered themselves.
func (f *FlowFilter) related(fl *Flow, s *Snapshot, t int64, d Decision) Decision {
	q := &fl.Quote
	var sport, dport uint16
	switch q.Proto {
	case ProtoTCP, ProtoUDP:
		sport, dport = q.SrcPort, q.DstPort
	case ProtoICMP, ProtoICMPv6:
		sport = q.ICMPID
	default:
		return d
	}
	var keys [2]flowKey
	keys[0].set(q.Src, q.Dst, fl.To, fl.From, sport, dport, q.Proto) // it opened the flow
	keys[1].set(q.Dst, q.Src, fl.From, fl.To, dport, sport, q.Proto) // it answered the flow
	if q.Proto == ProtoICMP || q.Proto == ProtoICMPv6 {
		keys[1].set(q.Dst, q.Src, fl.From, fl.To, sport, 0, q.Proto)
	}
	for i := range keys {
		h := f.hash(&keys[i])
		sh := &f.shards[h>>(64-6)]
		for j := range flowProbe {
			slot := &sh.slots[(int(h)+j)&f.mask]
			if slot.tag.Load() != h|1 {
				continue
			}
			if match, _, gen, rg := slot.read(&keys[i], t); match && gen == s.gen {
				return Decision{Allowed: true, Reason: ReasonRelated, Relation: int32(rg >> 32), Group: int32(uint32(rg))}
			}
		}
	}
	return d
}

// recheck handles a reply to a flow remembered under an older snapshot:
// the flow must still be allowed, in its opening direction.
func (f *FlowFilter) recheck(sh *flowShard, slot *flowSlot, k *flowKey, fl *Flow, s *Snapshot, now time.Time, d Decision) Decision {
	t := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if match, _, _, _ := slot.read(k, t); !match {
		return d // evicted meanwhile
	}
	open := reverse(fl)
	od := s.Allowed(&open, now)
	if !od.Allowed {
		slot.write(k, f.hash(k), 0, 0, 0)
		return d
	}
	slot.write(k, f.hash(k), t+f.idle, s.gen, packRelGroup(od))
	return Decision{Allowed: true, Reason: ReasonReply, Relation: od.Relation, Group: od.Group}
}

// refreshEvery is how stale a slot's expiry may get before a packet
// refreshes it: most packets of a busy flow then write nothing.
const refreshEvery = int64(time.Second)

func (f *FlowFilter) refresh(slot *flowSlot, exp, t int64) {
	if exp-t < f.idle-refreshEvery {
		// A failed swap means a writer or another refresh got there first.
		slot.expires.CompareAndSwap(exp, t+f.idle)
	}
}

func packRelGroup(d Decision) uint64 { return uint64(uint32(d.Relation))<<32 | uint64(uint32(d.Group)) }

// read returns whether the slot holds k unexpired at t, with its fields.
func (s *flowSlot) read(k *flowKey, t int64) (match bool, exp int64, gen, relGrp uint64) {
	for {
		seq := s.seq.Load()
		if seq&1 != 0 {
			continue // a writer is between its two increments: a few stores
		}
		match = true
		for i := range k {
			if s.key[i].Load() != k[i] {
				match = false
				break
			}
		}
		exp, gen, relGrp = s.expires.Load(), s.gen.Load(), s.relGrp.Load()
		if s.seq.Load() == seq {
			return match && exp >= t, exp, gen, relGrp
		}
	}
}

// write stores a flow; the caller holds the shard's lock.
func (s *flowSlot) write(k *flowKey, hash uint64, exp int64, gen, relGrp uint64) {
	seq := s.seq.Load()
	s.seq.Store(seq + 1)
	s.tag.Store(hash | 1)
	for i := range k {
		s.key[i].Store(k[i])
	}
	s.expires.Store(exp)
	s.gen.Store(gen)
	s.relGrp.Store(relGrp)
	s.seq.Store(seq + 2)
}

// openingKey is the table key of a packet that opens (or continues) a
// flow in its allowed direction.
func openingKey(fl *Flow, k *flowKey) bool {
	if !tracked(fl, icmpEchoRequest, icmpv6EchoRequest) {
		return false
	}
	sport, dport := fl.SrcPort, fl.DstPort
	if fl.Proto == ProtoICMP || fl.Proto == ProtoICMPv6 {
		sport, dport = fl.ICMPID, 0
	}
	k.set(fl.Src, fl.Dst, fl.From, fl.To, sport, dport, fl.Proto)
	return true
}

// replyKey is the key of the flow a packet would answer: the opening key
// with the two sides swapped.
func replyKey(fl *Flow, k *flowKey) bool {
	if !tracked(fl, icmpEchoReply, icmpv6EchoReply) {
		return false
	}
	sport, dport := fl.DstPort, fl.SrcPort
	if fl.Proto == ProtoICMP || fl.Proto == ProtoICMPv6 {
		sport, dport = fl.ICMPID, 0
	}
	k.set(fl.Dst, fl.Src, fl.To, fl.From, sport, dport, fl.Proto)
	return true
}

// tracked reports whether the table keeps flows of this packet's kind:
// TCP and UDP, and ICMP or ICMPv6 echo of the given message type.
func tracked(fl *Flow, icmpType, icmpv6Type uint8) bool {
	switch fl.Proto {
	case ProtoTCP, ProtoUDP:
		return true
	case ProtoICMP:
		return fl.ICMPType == icmpType
	case ProtoICMPv6:
		return fl.ICMPType == icmpv6Type
	}
	return false
}

func (k *flowKey) set(src, dst netip.Addr, from, to ParticipantID, sport, dport uint16, proto uint8) {
	s, d := src.As16(), dst.As16()
	k[0], k[1] = binary.LittleEndian.Uint64(s[:8]), binary.LittleEndian.Uint64(s[8:])
	k[2], k[3] = binary.LittleEndian.Uint64(d[:8]), binary.LittleEndian.Uint64(d[8:])
	k[4] = uint64(from)<<32 | uint64(to)
	k[5] = uint64(sport)<<24 | uint64(dport)<<8 | uint64(proto)
}

// reverse is the opening packet a reply answers.
func reverse(fl *Flow) Flow {
	r := Flow{From: fl.To, To: fl.From, Proto: fl.Proto, Src: fl.Dst, Dst: fl.Src,
		SrcPort: fl.DstPort, DstPort: fl.SrcPort, ICMPID: fl.ICMPID}
	switch fl.Proto {
	case ProtoICMP:
		r.ICMPType = icmpEchoRequest
	case ProtoICMPv6:
		r.ICMPType = icmpv6EchoRequest
	}
	return r
}

const (
	icmpEchoReply     = 0
	icmpEchoRequest   = 8
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
)

// hash mixes the key with the table's random seeds, wyhash-style: three
// independent 64x64->128-bit multiplications folded together, and one more
// to spread the bits. The seeds keep outsiders from choosing colliding
// flows.
func (f *FlowFilter) hash(k *flowKey) uint64 {
	mum := func(a, b uint64) uint64 {
		hi, lo := bits.Mul64(a, b)
		return hi ^ lo
	}
	h := mum(k[0]^f.seed[0], k[1]^f.seed[1]) ^ mum(k[2]^f.seed[2], k[3]^f.seed[3]) ^ mum(k[4]^f.seed[4], k[5]^f.seed[5])
	return mum(h, f.seed[6])
}

// remember records an allowed flow or refreshes it. A flow that is already
// remembered under this snapshot, and fresh, costs no write.
func (f *FlowFilter) remember(k *flowKey, t int64, gen uint64, d Decision) {
	h := f.hash(k)
	sh := &f.shards[h>>(64-6)]
	rg := packRelGroup(d)
	for i := range flowProbe {
		slot := &sh.slots[(int(h)+i)&f.mask]
		if slot.tag.Load() != h|1 {
			continue
		}
		if match, exp, g, r := slot.read(k, t); match && g == gen && r == rg {
			f.refresh(slot, exp, t)
			return
		}
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var victim *flowSlot
	var victimExp int64
	for i := range flowProbe {
		slot := &sh.slots[(int(h)+i)&f.mask]
		match, exp, _, _ := slot.read(k, math.MinInt64)
		if match {
			victim = slot
			break
		}
		if victim == nil || exp < victimExp {
			victim, victimExp = slot, exp
		}
	}
	if match, _, _, _ := victim.read(k, math.MinInt64); !match && victimExp >= t {
		f.evictions.Add(1)
	}
	victim.write(k, h, t+f.idle, gen, rg)
}
