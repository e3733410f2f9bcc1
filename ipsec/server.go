package ipsec

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/internal/udpbatch"
	"github.com/remotegate/remotegate/ipsec/internal/esp"
	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

// Server is an IKEv2 responder with ESP in userspace: it authenticates
// initiators, asks the Handler to admit them, and carries their packets
// as tunnel.Sessions. It is safe for concurrent use.
type Server struct {
	cfg Config
	sc  *saConfig // what its IKE SAs share, defaulted
	// proposals are those SetProposals set last; nil: sc's.
	proposals atomic.Pointer[serverProposals]
	log       *slog.Logger
	rand      io.Reader
	now       func() time.Time
	local     ID

	// cookieSecret keys the stateless cookies; it changes when the server
	// starts.
	cookieSecret [32]byte

	mu       sync.Mutex
	bySPI    map[[8]byte]*ikeSA // by our SPI (SPIr as responder)
	halfOpen map[halfOpenKey]*ikeSA
	// byName holds the IKE SAs of bySPI that carry a session, by the
	// participant's name, so that an INITIAL_CONTACT finds the stale ones
	// in O(1) rather than by a scan of every SA at each connect.
	byName map[string]map[*ikeSA]struct{}
	closed bool
	h      tunnel.Handler

	// inbound ESP SAs by our SPI, for the receive path without locks.
	children esp.Table[*childSA]

	stats stats
}

type halfOpenKey struct {
	spii   [8]byte
	remote netip.AddrPort
}

// defaultReadBuffer is the default of Config.ReadBuffer.
const defaultReadBuffer = 4 << 20

// stats are the drop counters, by reason.
type stats struct {
	malformed, unknownSPI, espDrop, cookiesSent, halfOpenDropped, unroutable atomic.Uint64
}

// NewServer checks the configuration and returns a Server.
func NewServer(cfg *Config) (*Server, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil Config", ErrConfig)
	}
	c := *cfg
	if c.VerifyPeer == nil && c.PSK == nil {
		return nil, fmt.Errorf("%w: neither VerifyPeer nor PSK: no peer could authenticate", ErrConfig)
	}
	if len(c.Certificate) > 0 && c.PrivateKey == nil {
		return nil, fmt.Errorf("%w: Certificate without PrivateKey", ErrConfig)
	}
	if c.VerifyPeer != nil && len(c.Certificate) == 0 {
		return nil, fmt.Errorf("%w: certificate authentication of peers needs the server's own Certificate", ErrConfig)
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = defaultReadBuffer
	}
	if c.CookieThreshold == 0 {
		c.CookieThreshold = 32
	}
	if c.MaxHalfOpen == 0 {
		c.MaxHalfOpen = 1024
	}
	if c.HalfOpenTimeout == 0 {
		c.HalfOpenTimeout = 30 * time.Second
	}
	sc, err := newSAConfig(saSettings{ikeProposals: c.IKEProposals, espProposals: c.ESPProposals, dpd: c.DPDInterval,
		retransmitTimeout: c.RetransmitTimeout, retransmitTries: c.RetransmitTries, fragmentation: c.Fragmentation,
		fragmentSize: c.FragmentSize, rand: c.Rand, now: c.Now, log: c.Logger,
		ikeLifetime: c.IKELifetime, childLifetime: c.ChildLifetime})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, sc: sc, log: sc.log, rand: sc.rand, now: sc.now,
		bySPI: map[[8]byte]*ikeSA{}, halfOpen: map[halfOpenKey]*ikeSA{}, byName: map[string]map[*ikeSA]struct{}{}}
	sc.malformed = &s.stats.malformed
	s.local = c.LocalID
	if s.local.Type == 0 && len(c.Certificate) > 0 {
		s.local = defaultID(c.Certificate[0])
	}
	if s.local.Type == 0 {
		return nil, fmt.Errorf("%w: no LocalID and no certificate to take it from", ErrConfig)
	}
	if _, err := io.ReadFull(s.rand, s.cookieSecret[:]); err != nil {
		return nil, fmt.Errorf("ipsec: cookie secret: %w", err)
	}
	return s, nil
}

func defaultID(c *x509.Certificate) ID {
	if len(c.DNSNames) > 0 {
		return FQDN(c.DNSNames[0])
	}
	return ID{Type: IDDN, Value: c.RawSubject}
}

// packetConn is one UDP socket of the server: IKE on port 500 (no
// marker), IKE and ESP on port 4500 (RFC 3948).
//
// A socket bound to a wildcard address (0.0.0.0, ::) has one view per
// address of ours that peers send to (viewFor): its src is that address,
// and what goes out through the view leaves from it. A peer matches our
// answers by address, so on a host with several addresses an answer from
// the one the kernel prefers would be dropped. Endpoints hold the view of
// the peer's last authenticated message, so IKE requests of ours and ESP
// follow it too.
type packetConn struct {
	uc    *udpbatch.Conn
	local netip.AddrPort
	// src is the address we send from; the zero value lets the kernel
	// pick (a socket bound to one address, or a platform that does not
	// report destinations).
	src netip.Addr
	// views are the socket's views by our address, made and read by the
	// socket's read loop only; a view's own map is nil.
	views map[netip.Addr]*packetConn
}

// maxViews bounds the views of a socket: a host has few addresses, and
// the kernel only delivers datagrams sent to one of them.
const maxViews = 64

// viewFor returns the view of the socket that sends from dst, the address
// a datagram was sent to; the socket itself when dst is unknown. It
// allocates only the first time it sees an address.
func (pc *packetConn) viewFor(dst netip.Addr) *packetConn {
	if !dst.IsValid() || pc.views == nil {
		return pc
	}
	if v, ok := pc.views[dst]; ok {
		return v
	}
	if len(pc.views) >= maxViews {
		return pc
	}
	v := &packetConn{uc: pc.uc, local: netip.AddrPortFrom(dst, pc.local.Port()), src: dst}
	pc.views[dst] = v
	return v
}

// marker reports whether IKE messages between these ports carry the
// 4-byte non-ESP marker: whenever neither port is 500 (the rule
// strongSwan follows).
func (pc *packetConn) marker(remote netip.AddrPort) bool {
	return pc.local.Port() != 500 && remote.Port() != 500
}

// send writes one datagram.
func (pc *packetConn) send(b []byte, to netip.AddrPort) error {
	_, err := pc.uc.WriteBatch([]udpbatch.Message{{Buf: b, N: len(b), Addr: to, Local: pc.src}})
	return err
}

// Serve answers IKE and ESP on the given sockets until ctx is done or a
// socket fails: typically one on UDP 4500 (IKE after NAT traversal, and all
// ESP) and one on UDP 500 (the first IKE_SA_INIT of most initiators). A
// socket may be IPv4 or IPv6, bound to one address or to the wildcard
// (":4500" is both families); on the wildcard each peer is answered from
// the address it sent to. It closes the sockets and the sessions when it
// returns.
func (s *Server) Serve(ctx context.Context, h tunnel.Handler, conns ...*net.UDPConn) error {
	if h == nil || len(conns) == 0 {
		return fmt.Errorf("%w: Serve needs a Handler and at least one socket", ErrConfig)
	}
	s.mu.Lock()
	if s.h != nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: Serve called twice", ErrConfig)
	}
	s.h = h
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(conns))
	for _, c := range conns {
		if s.cfg.ReadBuffer > 0 {
			// IKE shares the socket with ESP: with the default buffer
			// (208 KiB on Linux) a burst of ESP overflows it, and the IKE
			// requests lost with it delay rekeys by the peer's
			// retransmission timeout (4 s for strongSwan), long enough for
			// a CHILD_SA to reach its hard lifetime. Best effort: the
			// kernel caps it at net.core.rmem_max.
			_ = c.SetReadBuffer(s.cfg.ReadBuffer)
		}
		pc := &packetConn{uc: udpbatch.New(c)}
		pc.local = pc.uc.LocalAddr()
		if pc.local.Addr().IsUnspecified() {
			pc.views = map[netip.Addr]*packetConn{}
		}
		stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
		defer stop()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.readLoop(ctx, pc)
			if err != nil {
				cancel()
			}
			errc <- err
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.timerLoop(ctx)
	}()
	<-ctx.Done()
	s.closeAll(ErrClosed)
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

// readLoop reads datagrams in batches; ESP packets of one session are
// handed to the Handler together.
func (s *Server) readLoop(ctx context.Context, pc *packetConn) error {
	const batch = 64
	// ESP with AES-GCM has a 16-byte header (SPI, sequence number, IV):
	// reading at Headroom-16 puts the inner packet at Headroom, where the
	// switch and the other transports expect it.
	const readOffset = tunnel.Headroom - 16
	bufs := make([][]byte, batch)
	msgs := make([]udpbatch.Message, batch)
	for i := range bufs {
		bufs[i] = make([]byte, tunnel.BufferSize)
		msgs[i].Buf = bufs[i][readOffset : tunnel.BufferSize-tunnel.Tailroom]
	}
	d := deliverer{h: s.h, bufs: make([][]byte, 0, batch), sizes: make([]int, 0, batch)}
	for {
		n, err := pc.uc.ReadBatch(msgs)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("ipsec: read: %w", err)
		}
		for i := 0; i < n; i++ {
			s.handleDatagram(ctx, pc.viewFor(msgs[i].Local), msgs[i].Buf[:msgs[i].N], msgs[i].Addr, bufs[i], &d)
		}
		d.flush()
	}
}

// handleDatagram demultiplexes one datagram (RFC 3948 §2.2): on port 500
// IKE; on 4500 IKE after the non-ESP marker, NAT keepalives, or ESP.
func (s *Server) handleDatagram(ctx context.Context, pc *packetConn, pkt []byte, from netip.AddrPort, buf []byte, d *deliverer) {
	if pc.local.Port() == 500 || from.Port() == 500 {
		d.flush()
		s.handleIKE(ctx, pc, pkt, from)
		return
	}
	switch esp.Classify(pkt) {
	case esp.KindESP:
		s.handleESP(pkt, from, buf, d)
	case esp.KindIKE:
		d.flush()
		s.handleIKE(ctx, pc, pkt[message.NonESPMarkerLen:], from)
	case esp.KindKeepalive:
	default:
		s.stats.malformed.Add(1)
	}
}

// handleESP opens one ESP packet and queues its inner packet for delivery.
func (s *Server) handleESP(pkt []byte, from netip.AddrPort, buf []byte, d *deliverer) {
	child, ok := s.children.Lookup(esp.SPIOf(pkt))
	if !ok || child.in == nil { // nil: reserved for a rekey of ours, not keyed yet
		s.stats.unknownSPI.Add(1)
		return
	}
	inner, next, err := child.in.Open(pkt)
	if err != nil {
		if !errors.Is(err, esp.ErrDummy) {
			s.stats.espDrop.Add(1)
		}
		return
	}
	_ = next
	sess := child.ike.Load().session.Load()
	if sess == nil || !sess.up.Load() {
		return
	}
	child.received(s.now().UnixNano())
	if !child.allowsInbound(inner) {
		s.stats.espDrop.Add(1)
		return
	}
	sess.countIn(len(pkt))
	d.add(sess, buf, inner)
}

// deliverer gathers consecutive packets of one session into one Deliver.
type deliverer struct {
	h     tunnel.Handler
	sess  *session
	bufs  [][]byte
	sizes []int
}

func (d *deliverer) add(sess *session, buf, inner []byte) {
	if d.sess != sess {
		d.flush()
		d.sess = sess
	}
	// The inner packet is at Headroom for AES-GCM and ChaCha20-Poly1305
	// (8-byte IV); AES-CBC's 16-byte IV puts it 8 bytes further.
	if start := cap(buf) - cap(inner); start != tunnel.Headroom {
		copy(buf[tunnel.Headroom:], inner)
	}
	d.bufs = append(d.bufs, buf)
	d.sizes = append(d.sizes, len(inner))
	if len(d.bufs) == cap(d.bufs) {
		d.flush()
	}
}

func (d *deliverer) flush() {
	if d.sess != nil && len(d.bufs) > 0 {
		d.h.Deliver(d.sess, d.bufs, d.sizes, tunnel.Headroom)
	}
	d.bufs, d.sizes, d.sess = d.bufs[:0], d.sizes[:0], nil
}

// cookie is the stateless cookie of an initiator (RFC 7296 §2.6):
// version 1, then HMAC-SHA-256 of its nonce, address and SPI under the
// server's secret.
func (s *Server) cookie(ni []byte, from netip.AddrPort, spii [8]byte) []byte {
	m := hmac.New(sha256.New, s.cookieSecret[:])
	m.Write(ni)
	a := from.Addr().Unmap().AsSlice()
	m.Write(a)
	m.Write(spii[:])
	return append([]byte{1}, m.Sum(nil)...)
}

// timerLoop drives retransmissions, dead peer detection and the expiry of
// half-open SAs.
func (s *Server) timerLoop(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		s.mu.Lock()
		var sas []*ikeSA
		for _, sa := range s.bySPI {
			sas = append(sas, sa)
		}
		for k, sa := range s.halfOpen {
			if now.Sub(sa.created) > s.cfg.HalfOpenTimeout {
				delete(s.halfOpen, k)
				delete(s.bySPI, sa.spir)
			}
		}
		s.mu.Unlock()
		for _, sa := range sas {
			sa.link.mu.Lock()
			sa.tick(now)
			sa.link.mu.Unlock()
		}
	}
}

// closeAll deletes every IKE SA, telling the peers. The Delete goes out
// once: Serve returns and closes the sockets right after.
func (s *Server) closeAll(cause error) {
	s.mu.Lock()
	s.closed = true
	var sas []*ikeSA
	for _, sa := range s.bySPI {
		sas = append(sas, sa)
	}
	s.mu.Unlock()
	for _, sa := range sas {
		sa.close(cause, true)
	}
}

// forget removes an IKE SA from the tables.
func (s *Server) forget(sa *ikeSA) {
	s.mu.Lock()
	if s.bySPI[sa.ourSPI()] == sa {
		delete(s.bySPI, sa.ourSPI())
	}
	s.unindex(sa)
	delete(s.halfOpen, halfOpenKey{sa.spii, sa.firstRemote})
	s.mu.Unlock()
}

// Stats are the server's counters.
type Stats struct {
	// IKESAs are the IKE SAs, established or not; HalfOpen those waiting
	// for their IKE_AUTH.
	IKESAs, HalfOpen int
	// CookiesSent counts IKE_SA_INIT requests answered with a cookie
	// instead of state; HalfOpenDropped those dropped at MaxHalfOpen.
	CookiesSent, HalfOpenDropped uint64
	// Malformed counts datagrams that did not parse or authenticate;
	// UnknownSPI those for an IKE or ESP SA the server does not have;
	// ESPDropped ESP packets refused (replay, ICV, traffic selectors).
	Malformed, UnknownSPI, ESPDropped uint64
	// Unroutable counts packets the Handler sent that no child SA of
	// their session covers (its traffic selectors), dropped.
	Unroutable uint64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{IKESAs: len(s.bySPI), HalfOpen: len(s.halfOpen)}
	s.mu.Unlock()
	st.CookiesSent, st.HalfOpenDropped = s.stats.cookiesSent.Load(), s.stats.halfOpenDropped.Load()
	st.Malformed, st.UnknownSPI, st.ESPDropped = s.stats.malformed.Load(), s.stats.unknownSPI.Load(), s.stats.espDrop.Load()
	st.Unroutable = s.stats.unroutable.Load()
	return st
}

// newUDPBatch wraps a socket for the batched I/O of the data path.
func newUDPBatch(c *net.UDPConn) *udpbatch.Conn { return udpbatch.New(c) }

// index files an IKE SA of bySPI that carries a session under the
// participant's name; s.mu is held.
func (s *Server) index(sa *ikeSA) {
	sess := sa.session.Load()
	if sess == nil || s.bySPI[sa.ourSPI()] != sa {
		return
	}
	set := s.byName[sess.identity.Name]
	if set == nil {
		set = map[*ikeSA]struct{}{}
		s.byName[sess.identity.Name] = set
	}
	set[sa] = struct{}{}
}

// unindex removes an IKE SA from byName; s.mu is held.
func (s *Server) unindex(sa *ikeSA) {
	sess := sa.session.Load()
	if sess == nil {
		return
	}
	if set := s.byName[sess.identity.Name]; set != nil {
		delete(set, sa)
		if len(set) == 0 {
			delete(s.byName, sess.identity.Name)
		}
	}
}
