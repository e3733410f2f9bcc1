package ipsec

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/internal/udpbatch"
	"github.com/remotegate/remotegate/ipsec/internal/esp"
	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

// childSA is one pair of ESP SAs.
type childSA struct {
	sa      *ikeSA
	suite   chosen
	created time.Time
	rekeyed time.Time // when a rekey replaced it; zero while current
	// closing: our Delete of it is on its way (the link's lock guards it).
	closing         bool
	inSPI, outSPI   uint32
	in              *esp.Inbound
	out             *esp.Outbound
	peerTS, localTS []message.Selector
	// replaces is the child this one replaced in a rekey the peer
	// initiated, as long as the session still sends on that one: until
	// the peer shows that it has installed this child (ikeSA.handOver).
	replaces atomic.Pointer[childSA]
	// ike is sa for the ESP path, which reads it without the link's lock
	// while an IKE SA rekey moves the child (moveTo).
	ike atomic.Pointer[ikeSA]
	rk  childRekey // our rekeys of it (rekey.go)
}

// logEstablished logs the child's SPIs and the traffic selectors it
// carries, ours first, as strongSwan does.
func (c *childSA) logEstablished(msg, participant string) {
	c.sa.cfg.log.Info(msg, "participant", participant, "spi_in", fmt.Sprintf("%08x", c.inSPI), "spi_out", fmt.Sprintf("%08x", c.outSPI),
		"ts", tsString(c.localTS)+" === "+tsString(c.peerTS), "proposal", c.suite.String())
}

// received notes an authenticated ESP packet on the child, at now (unix
// nanoseconds): the peer is alive, and if the child replaced another in a
// rekey the peer started, the peer has installed it, so that our traffic
// may move over from the old one. It allocates nothing.
func (c *childSA) received(now int64) {
	c.ike.Load().link.lastInbound.Store(now)
	c.peerInstalled()
}

// peerInstalled notes that the peer sent on the child: if it replaced
// another in a rekey the peer started, the peer has installed it, and our
// traffic moves over from the old one.
func (c *childSA) peerInstalled() {
	if old := c.replaces.Load(); old != nil && c.replaces.CompareAndSwap(old, nil) {
		c.ike.Load().link.out.CompareAndSwap(old, c)
	}
}

// allowsInbound checks an inner packet against the traffic selectors:
// its source on the peer's side, its destination on ours (RFC 4301 §5.2),
// so that a peer cannot send from addresses it was not given.
func (c *childSA) allowsInbound(pkt []byte) bool {
	src, dst, ok := addrs(pkt)
	return ok && covered(c.peerTS, src) && covered(c.localTS, dst)
}

// addrs reads the addresses of an IPv4 or IPv6 packet without allocating.
func addrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	if len(pkt) < 1 {
		return src, dst, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return src, dst, false
		}
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), true
	case 6:
		if len(pkt) < 40 {
			return src, dst, false
		}
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return src, dst, false
}

func covered(sel []message.Selector, a netip.Addr) bool {
	for i := range sel {
		if sel[i].Start.BitLen() == a.BitLen() && sel[i].Start.Compare(a) <= 0 && a.Compare(sel[i].End) <= 0 {
			return true
		}
	}
	return false
}

// session is an established IKE SA as the Handler sees it.
type session struct {
	id        uint64
	identity  tunnel.Identity
	asg       tunnel.Assignment
	since     time.Time
	handshake time.Duration

	sa   atomic.Pointer[ikeSA] // the current IKE SA (rekeys replace it)
	link *link                 // shared by its IKE SAs: the peer's address, the child SA we send on
	up   atomic.Bool
	down atomic.Bool

	bytesIn, bytesOut, pktsIn, pktsOut atomic.Uint64
}

var (
	_ tunnel.Session  = (*session)(nil)
	_ tunnel.Reporter = (*session)(nil)
)

func (s *session) setSA(sa *ikeSA) { s.sa.Store(sa) }

func (s *session) ID() uint64                       { return s.id }
func (s *session) Identity() tunnel.Identity        { return s.identity }
func (s *session) Protocol() string                 { return "ipsec" }
func (s *session) Since() time.Time                 { return s.since }
func (s *session) HandshakeDuration() time.Duration { return s.handshake }

// Remote is the peer's outer address (port 4500 after NAT traversal).
func (s *session) Remote() netip.AddrPort {
	if ep := s.link.ep.Load(); ep != nil {
		return ep.remote
	}
	return netip.AddrPort{}
}

func (s *session) Counters() tunnel.Counters {
	return tunnel.Counters{BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), PacketsIn: s.pktsIn.Load(), PacketsOut: s.pktsOut.Load()}
}

func (s *session) countIn(n int) {
	s.bytesIn.Add(uint64(n))
	s.pktsIn.Add(1)
}

// msgPool holds the datagram lists of Send, so that sending allocates
// nothing.
var msgPool = sync.Pool{New: func() any { m := make([]udpbatch.Message, 0, 64); return &m }}

// Send seals each packet in place on the child SA whose traffic
// selectors cover it and sends them in one batch. A packet no child
// covers is dropped and counted (Stats.Unroutable): the peer would drop it
// on any child.
func (s *session) Send(bufs [][]byte, offset int) (int, error) {
	if s.link.out.Load() == nil || !s.up.Load() {
		return 0, ErrClosed
	}
	ep := s.link.ep.Load()
	mp := msgPool.Get().(*[]udpbatch.Message)
	msgs := (*mp)[:0]
	var bytes uint64
	for _, b := range bufs {
		if offset > len(b) {
			continue
		}
		c := s.link.out.pick(b[offset:])
		if c == nil {
			s.link.countUnroutable()
			continue
		}
		pkt, err := c.out.Seal(b, offset, len(b)-offset)
		if err != nil {
			continue // counted by the caller as not sent
		}
		msgs = append(msgs, udpbatch.Message{Buf: pkt, N: len(pkt), Addr: ep.remote, Local: ep.pc.src})
		bytes += uint64(len(pkt))
		if len(msgs) == cap(msgs) {
			break
		}
	}
	n, err := ep.pc.uc.WriteBatch(msgs)
	s.pktsOut.Add(uint64(n))
	s.bytesOut.Add(bytes)
	for i := range msgs {
		msgs[i] = udpbatch.Message{}
	}
	*mp = msgs[:0]
	msgPool.Put(mp)
	return n, err
}

// Close deletes the IKE SA, telling the peer.
func (s *session) Close(cause error) error {
	if sa := s.sa.Load(); sa != nil {
		sa.close(cause, true)
	}
	return nil
}
