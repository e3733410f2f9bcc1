package policy

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// FlowFilterConfig sizes a FlowFilter. The zero value is usable.
type FlowFilterConfig struct {
	// Size is the number of flows remembered; zero means 65536. Memory is
	// about 80 bytes per flow, allocated once by NewFlowFilter.
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
	seed   [2]uint64
	shards []flowShard
	window int // slots per shard

	evictions atomic.Uint64
}

const (
	flowShards = 64 // power of two
	flowProbe  = 8
)

type flowShard struct {
	mu    sync.Mutex
	slots []flowSlot
	_     [40]byte // keep shards' locks on separate cache lines
}

type flowKey struct {
	src, dst     [16]byte
	from, to     ParticipantID
	sport, dport uint16
	proto        uint8
}

type flowSlot struct {
	key     flowKey
	expires int64 // unix nanoseconds; 0: empty
	gen     uint64
	rel     int32
	group   int32
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
	per := max((size+flowShards-1)/flowShards, flowProbe)
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = 2 * time.Minute
	}
	f := &FlowFilter{idle: int64(idle), shards: make([]flowShard, flowShards), window: per}
	for i := range f.shards {
		f.shards[i].slots = make([]flowSlot, per)
	}
	var seed [16]byte
	_, _ = crand.Read(seed[:]) // never fails on Linux; a zero seed still works
	f.seed[0] = binary.LittleEndian.Uint64(seed[:]) | 1
	f.seed[1] = binary.LittleEndian.Uint64(seed[8:])
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
		if k, ok := openingKey(fl); ok {
			f.remember(&k, t, s.gen, d)
		}
		return d
	}
	k, ok := replyKey(fl)
	if !ok {
		return d
	}
	sh, slot := f.find(&k, t)
	if slot == nil {
		sh.mu.Unlock()
		return d
	}
	if slot.gen != s.gen {
		// The policy changed since the flow was opened: it must still be
		// allowed, in its opening direction.
		open := reverse(fl)
		od := s.Allowed(&open, now)
		if !od.Allowed {
			slot.expires = 0
			sh.mu.Unlock()
			return d
		}
		slot.gen, slot.rel, slot.group = s.gen, od.Relation, od.Group
	}
	slot.expires = t + f.idle
	rel, group := slot.rel, slot.group
	sh.mu.Unlock()
	return Decision{Allowed: true, Reason: ReasonReply, Relation: rel, Group: group}
}

// openingKey is the table key of a packet that opens (or continues) a
// flow in its allowed direction.
func openingKey(fl *Flow) (flowKey, bool) {
	k := flowKey{src: fl.Src.As16(), dst: fl.Dst.As16(), from: fl.From, to: fl.To, proto: fl.Proto}
	switch fl.Proto {
	case ProtoTCP, ProtoUDP:
		k.sport, k.dport = fl.SrcPort, fl.DstPort
	case ProtoICMP:
		if fl.ICMPType != icmpEchoRequest {
			return k, false
		}
		k.sport = fl.ICMPID
	case ProtoICMPv6:
		if fl.ICMPType != icmpv6EchoRequest {
			return k, false
		}
		k.sport = fl.ICMPID
	default:
		return k, false
	}
	return k, true
}

// replyKey is the key of the flow a packet would answer.
func replyKey(fl *Flow) (flowKey, bool) {
	k := flowKey{src: fl.Dst.As16(), dst: fl.Src.As16(), from: fl.To, to: fl.From, proto: fl.Proto}
	switch fl.Proto {
	case ProtoTCP, ProtoUDP:
		k.sport, k.dport = fl.DstPort, fl.SrcPort
	case ProtoICMP:
		if fl.ICMPType != icmpEchoReply {
			return k, false
		}
		k.sport = fl.ICMPID
	case ProtoICMPv6:
		if fl.ICMPType != icmpv6EchoReply {
			return k, false
		}
		k.sport = fl.ICMPID
	default:
		return k, false
	}
	return k, true
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

func (f *FlowFilter) hash(k *flowKey) uint64 {
	mix := func(h, v uint64) uint64 {
		hi, lo := bits.Mul64(h^v, 0x9E3779B97F4A7C15)
		return hi ^ lo
	}
	h := f.seed[1]
	h = mix(h, binary.LittleEndian.Uint64(k.src[:8]))
	h = mix(h, binary.LittleEndian.Uint64(k.src[8:]))
	h = mix(h, binary.LittleEndian.Uint64(k.dst[:8]))
	h = mix(h, binary.LittleEndian.Uint64(k.dst[8:]))
	h = mix(h, uint64(k.from)<<32|uint64(k.to))
	h = mix(h, uint64(k.sport)<<24|uint64(k.dport)<<8|uint64(k.proto))
	return h * f.seed[0]
}

// find locks the key's shard and returns it with the live slot holding
// the key, or nil; the caller unlocks.
func (f *FlowFilter) find(k *flowKey, t int64) (*flowShard, *flowSlot) {
	h := f.hash(k)
	sh := &f.shards[h>>(64-6)]
	sh.mu.Lock()
	start := int(h % uint64(f.window))
	for i := range flowProbe {
		s := &sh.slots[(start+i)%f.window]
		if s.expires >= t && s.key == *k {
			return sh, s
		}
	}
	return sh, nil
}

// remember records or refreshes an allowed flow.
func (f *FlowFilter) remember(k *flowKey, t int64, gen uint64, d Decision) {
	h := f.hash(k)
	sh := &f.shards[h>>(64-6)]
	sh.mu.Lock()
	start := int(h % uint64(f.window))
	var victim *flowSlot
	for i := range flowProbe {
		s := &sh.slots[(start+i)%f.window]
		if s.key == *k {
			victim = s
			break
		}
		if victim == nil || s.expires < victim.expires {
			victim = s
		}
	}
	if victim.key != *k && victim.expires >= t {
		f.evictions.Add(1)
	}
	*victim = flowSlot{key: *k, expires: t + f.idle, gen: gen, rel: d.Relation, group: d.Group}
	sh.mu.Unlock()
}
