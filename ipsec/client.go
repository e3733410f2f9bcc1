package ipsec

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/remotegate/remotegate/internal/udpbatch"
	"github.com/remotegate/remotegate/ipsec/internal/esp"
	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

var _ tunnel.Device = (*Client)(nil)

// Remote is the responder's address (port 4500 after NAT traversal).
func (c *Client) Remote() netip.AddrPort { return c.link.ep.Load().remote }

// RemoteID is the identity the responder proved.
func (c *Client) RemoteID() ID { return c.peerID }

// PeerCertificates is the certificate chain the responder sent, leaf
// first; nil when it authenticated with the PSK.
func (c *Client) PeerCertificates() []*x509.Certificate { return c.peerChain }

// Addresses are the virtual addresses the responder assigned
// (RequestAddress), as /32 or /128 prefixes: the traffic selectors cover
// the address only.
func (c *Client) Addresses() []netip.Prefix { return slices.Clone(c.addrs) }

// DNS are the DNS servers the responder named with the address.
func (c *Client) DNS() []netip.Addr { return slices.Clone(c.dns) }

// LocalTS is our side of the traffic selectors of the child SAs, as the
// responder narrowed them: the sources Write may use. Protocols and
// ports are left out.
func (c *Client) LocalTS() []netip.Prefix {
	return c.link.out.localPrefixes()
}

// RemoteTS is the responder's side of the traffic selectors of the child
// SAs: the destinations to route into the tunnel.
func (c *Client) RemoteTS() []netip.Prefix {
	return c.link.out.peerPrefixes()
}

// IKEProposal is the suite of the IKE SA and ESPProposal the one of the
// first child SA, as the responder chose them.
func (c *Client) IKEProposal() Proposal {
	c.link.mu.Lock()
	defer c.link.mu.Unlock()
	return c.ike.suite.Proposal
}

// ESPProposal: see IKEProposal.
func (c *Client) ESPProposal() Proposal {
	if ch := c.link.out.Load(); ch != nil {
		return ch.suite.Proposal
	}
	return Proposal{}
}

// Unroutable counts the packets Write dropped because no child SA's
// traffic selectors cover them.
func (c *Client) Unroutable() uint64 { return c.unroutable.Load() }

// HandshakeDuration is how long Dial's exchanges took.
func (c *Client) HandshakeDuration() time.Duration { return c.handshake }

// Counters are the ESP bytes (UDP payload) and packets sent and received.
func (c *Client) Counters() tunnel.Counters {
	return tunnel.Counters{BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(), PacketsIn: c.pktsIn.Load(), PacketsOut: c.pktsOut.Load()}
}

// Done is closed when the Client ends; Err then tells why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the Client ended: ErrClosed after Close, ErrDeleted when the
// responder deleted the IKE SA or its last child SA, ErrDeadPeer when it
// stopped answering, or a socket error. Nil while it is up.
func (c *Client) Err() error {
	c.link.mu.Lock()
	defer c.link.mu.Unlock()
	return c.cause
}

// BatchSize is the most packets one Read returns.
func (c *Client) BatchSize() int { return rxBatch }

// MTU is the largest inner packet that fits a 1500-byte outer packet with
// the child SA's ESP overhead, at most 1400 (what strongSwan's libipsec
// uses).
func (c *Client) MTU() int {
	ch := c.link.out.Load()
	if ch == nil {
		return 1400
	}
	outer := 20 + 8 // IPv4 and UDP
	if c.Remote().Addr().Is6() {
		outer = 40 + 8
	}
	// SPI, sequence number, IV, worst-case padding, pad length and next
	// header, ICV.
	overhead := ch.out.HeaderLen() + 2
	if ch.suite.aead() {
		overhead += 3 + 16
	} else {
		overhead += 15 + ikecrypto.ICVLen(ch.suite.Integrity)
	}
	return min(1400, 1500-outer-overhead)
}

// Write seals bufs[i][offset:] into ESP on the child SA whose traffic
// selectors cover the packet (its source in LocalTS, its destination in
// RemoteTS of the same child) and sends them; the number sent is
// returned. A packet that no child covers is dropped and counted
// (Unroutable). Each buffer needs tunnel.Headroom
// bytes before offset and tunnel.Tailroom bytes of capacity after the
// packet, which Write overwrites (it encrypts in place). Packets that are
// not IPv4 or IPv6 are skipped.
func (c *Client) Write(bufs [][]byte, offset int) (int, error) {
	if c.link.out.Load() == nil {
		return 0, errClientClosed
	}
	to := c.Remote()
	mp := msgPool.Get().(*[]udpbatch.Message)
	defer func() {
		clear((*mp)[:cap(*mp)])
		*mp = (*mp)[:0]
		msgPool.Put(mp)
	}()
	sent := 0
	var firstErr error
	for i := 0; i < len(bufs); {
		msgs := (*mp)[:0]
		var nbytes uint64
		for ; i < len(bufs) && len(msgs) < cap(msgs); i++ {
			b := bufs[i]
			if offset > len(b) {
				continue
			}
			ch := c.link.out.pick(b[offset:])
			if ch == nil {
				c.link.countUnroutable()
				continue
			}
			pkt, err := ch.out.Seal(b, offset, len(b)-offset)
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("ipsec: sealing: %w", err)
				}
				continue
			}
			msgs = append(msgs, udpbatch.Message{Buf: pkt, N: len(pkt), Addr: to})
			nbytes += uint64(len(pkt))
		}
		n, err := c.uc.WriteBatch(msgs)
		sent += n
		c.pktsOut.Add(uint64(n))
		c.bytesOut.Add(nbytes)
		if err != nil {
			if c.isClosed() {
				return sent, errClientClosed
			}
			return sent, fmt.Errorf("ipsec: send: %w", err)
		}
	}
	c.link.lastOutbound.Store(c.now().UnixNano())
	if sent == 0 && firstErr != nil {
		return 0, firstErr
	}
	return sent, nil
}

// Read waits for packets from the responder and copies up to len(bufs)
// of them to bufs[i][offset:], their lengths to sizes. Packets arrive in
// a queue that the Client fills in the background; when Read does not
// keep up, the newest are dropped.
func (c *Client) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	var p *rxPacket
	select {
	case p = <-c.rx:
	case <-c.done:
		return 0, errClientClosed
	}
	n := 0
	for {
		if len(p.data) <= len(bufs[n])-offset {
			sizes[n] = copy(bufs[n][offset:], p.data)
			n++
		}
		c.free <- p
		if n == len(bufs) {
			return n, nil
		}
		select {
		case p = <-c.rx:
		default:
			return n, nil
		}
	}
}

// Close deletes the IKE SA, telling the responder, and closes the
// socket once the responder acknowledged the Delete. The Delete is
// retransmitted like every request (RetransmitTimeout, RetransmitTries),
// but Close waits at most CloseTimeout (5 s by default) for the answer:
// then it closes anyway. Calling it again, also concurrently, waits for
// the first call.
func (c *Client) Close() error {
	c.closeOnce.Do(c.deleteAndTerminate)
	c.wg.Wait()
	return nil
}

func (c *Client) deleteAndTerminate() {
	c.link.mu.Lock()
	if !c.closed {
		// The Delete waits for an outstanding request of ours (the window
		// is one request); the Client ends when it is answered (gone).
		c.ike.closeLocked(ErrClosed, true)
	}
	c.link.mu.Unlock()
	wait := c.cfg.CloseTimeout
	if wait <= 0 {
		wait = defaultCloseTimeout
	}
	// A socket deadline-like bound on real time: how long a person waits
	// for a shutdown, not a protocol decision.
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.link.mu.Lock()
		c.terminateLocked(fmt.Errorf("%w: the responder did not answer the Delete within %v", ErrClosed, wait))
		c.link.mu.Unlock()
	}
}

// defaultCloseTimeout is DialConfig.CloseTimeout's zero value.
const defaultCloseTimeout = 5 * time.Second

func (c *Client) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// terminateLocked ends the Client; the link's lock is held. The read loop
// stops when the socket closes, the timer loop with done.
func (c *Client) terminateLocked(cause error) {
	if c.closed {
		return
	}
	c.closed, c.cause = true, cause
	for _, k := range c.ikeSAs() {
		if k != nil {
			k.dropChildren()
			k.closed = true
			k.pending, k.queue = nil, nil
		}
	}
	c.link.out.Store(nil)
	close(c.done)
	_ = c.conn.Close()
	if errors.Is(cause, ErrClosed) {
		c.log.Info("IKE SA closed", "remote", c.Remote())
	} else {
		c.log.Warn("IKE SA ended", "remote", c.Remote(), "reason", cause)
	}
}

// readLoop receives from the responder until the socket closes: ESP
// packets are opened and queued for Read, IKE messages handled.
func (c *Client) readLoop() {
	defer c.wg.Done()
	// ESP with an 8-byte IV has a 16-byte header: reading there puts the
	// inner packet at tunnel.Headroom, as elsewhere in the SDK.
	const readOffset = tunnel.Headroom - 16
	msgs := make([]udpbatch.Message, rxBatch)
	held := make([]*rxPacket, 0, rxBatch)
	for {
		held = c.refill(held)
		if held == nil {
			return
		}
		for i, p := range held {
			msgs[i].Buf = p.buf[readOffset : len(p.buf)-tunnel.Tailroom]
		}
		n, err := c.uc.ReadBatch(msgs[:len(held)])
		if n == len(held) && c.batch < rxBatch {
			c.batch = min(2*c.batch, rxBatch) // traffic: read more at once
		}
		if err != nil {
			if c.isClosed() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			c.link.mu.Lock()
			c.terminateLocked(fmt.Errorf("ipsec: read: %w", err))
			c.link.mu.Unlock()
			return
		}
		keep := held[:0]
		authentic := false
		for i, p := range held {
			if i >= n || !c.handleDatagram(p, msgs[i].Buf[:msgs[i].N], msgs[i].Addr, &authentic) {
				keep = append(keep, p)
				continue
			}
			select {
			case c.rx <- p:
			default:
				keep = append(keep, p) // Read is behind: drop
			}
		}
		held = keep
		if authentic {
			c.link.lastInbound.Store(c.now().UnixNano())
		}
	}
}

// refill tops the read loop's buffers up to a batch: free ones first,
// then new ones up to the queue size, else it waits for Read. It returns
// nil when the Client ended. The batch starts small and grows with the
// traffic, so that a Client that carries little costs little memory.
func (c *Client) refill(held []*rxPacket) []*rxPacket {
	for len(held) < c.batch {
		select {
		case p := <-c.free:
			held = append(held, p)
			continue
		default:
		}
		if c.allocated < rxQueue+rxBatch {
			c.allocated++
			held = append(held, &rxPacket{buf: make([]byte, tunnel.BufferSize)})
			continue
		}
		if len(held) > 0 {
			break
		}
		select {
		case p := <-c.free:
			held = append(held, p)
		case <-c.done:
			return nil
		}
	}
	return held
}

// handleDatagram demultiplexes one datagram (RFC 3948 §2.2). It reports
// whether p now holds an inner packet for Read.
func (c *Client) handleDatagram(p *rxPacket, pkt []byte, from netip.AddrPort, authentic *bool) bool {
	if from.Port() == 500 {
		c.handleIKE(pkt, from)
		return false
	}
	switch esp.Classify(pkt) {
	case esp.KindESP:
	case esp.KindIKE:
		c.handleIKE(pkt[message.NonESPMarkerLen:], from)
		return false
	default:
		return false
	}
	child, ok := c.table.Lookup(esp.SPIOf(pkt))
	if !ok || child.in == nil {
		return false
	}
	inner, _, err := child.in.Open(pkt)
	if err != nil {
		return false
	}
	*authentic = true
	child.peerInstalled()
	if !child.allowsInbound(inner) {
		return false
	}
	c.pktsIn.Add(1)
	c.bytesIn.Add(uint64(len(pkt)))
	p.data = inner
	return true
}

// handleIKE processes an IKE message of the established Client: the
// IKE SA's own state machine, the same as the Server's, does the work.
func (c *Client) handleIKE(msg []byte, from netip.AddrPort) {
	h, err := message.ParseHeader(msg)
	if err != nil {
		return
	}
	c.link.mu.Lock()
	defer c.link.mu.Unlock()
	if c.closed {
		return
	}
	for _, k := range c.ikeSAs() {
		if k != nil && k.spii == h.SPIi && k.spir == h.SPIr {
			k.handle(context.Background(), c.pc, msg, h, from)
			return
		}
	}
}

// The Client's side of its IKE SAs (role).

// handleAuth: the initiator ran IKE_AUTH in Dial; a request is ignored.
func (c *Client) handleAuth(context.Context, *ikeSA, []message.Payload) ([]message.Payload, func()) {
	return nil, nil
}

// additionalChild: a Client is one tunnel, additional child SAs are
// refused.
func (c *Client) additionalChild(*ikeSA) (peer, local []netip.Prefix, ok bool) {
	return nil, nil, false
}

func (c *Client) childUp(sa *ikeSA, ch, old *childSA) {
	if old != nil {
		c.log.Info("child SA rekeyed", "remote", c.Remote(), "esp", ch.suite.String())
		return
	}
	c.log.Info("child SA established", "remote", c.Remote(), "esp", ch.suite.String())
}

// childless: without a child SA the tunnel carries nothing: end it, so
// that the caller reconnects.
func (c *Client) childless(sa *ikeSA) {
	c.log.Info("the responder deleted the child SA", "remote", c.Remote())
	sa.closeLocked(ErrDeleted, true)
}

func (c *Client) spiTaken(spi [8]byte) bool {
	for _, k := range c.ikeSAs() {
		if k != nil && (k.spii == spi || k.spir == spi) {
			return true
		}
	}
	return false
}

func (c *Client) ikeRekeyed(old, n *ikeSA) { c.old, c.ike = old, n }

func (c *Client) adopt(sa *ikeSA) {
	if sa != c.ike && sa != c.old && !slices.Contains(c.redundant, sa) {
		c.redundant = append(c.redundant, sa)
	}
}

// ikeSAs are the Client's IKE SAs: the old one of a rekey first, then
// the current one, then those that wait for their Delete after
// simultaneous rekeys.
func (c *Client) ikeSAs() []*ikeSA {
	out := make([]*ikeSA, 0, 2+len(c.redundant))
	if c.old != nil {
		out = append(out, c.old)
	}
	if c.ike != nil {
		out = append(out, c.ike)
	}
	return append(out, c.redundant...)
}

func (c *Client) down(sa *ikeSA, cause error) {
	if sa == c.ike && c.downCause == nil {
		c.downCause = cause
	}
}

func (c *Client) gone(sa *ikeSA) {
	c.redundant = slices.DeleteFunc(c.redundant, func(k *ikeSA) bool { return k == sa })
	switch sa {
	case c.old:
		c.old = nil
	case c.ike:
		cause := c.downCause
		if cause == nil {
			cause = ErrDeleted
		}
		c.terminateLocked(cause)
	}
}

// timerLoop drives retransmissions, dead peer detection, NAT keepalives
// and the expiry of rekeyed child SAs.
func (c *Client) timerLoop() {
	defer c.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.tick(c.now())
	}
}

func (c *Client) tick(now time.Time) {
	c.link.mu.Lock()
	defer c.link.mu.Unlock()
	for _, k := range c.ikeSAs() {
		if c.closed {
			return
		}
		if k != nil {
			k.tick(now)
		}
	}
	if !c.closed && now.Sub(time.Unix(0, c.link.lastOutbound.Load())) >= keepaliveInterval {
		to := c.Remote()
		ka := esp.Keepalive
		_, _ = c.uc.WriteBatch([]udpbatch.Message{{Buf: ka[:], N: 1, Addr: to}})
		c.link.lastOutbound.Store(now.UnixNano())
	}
}

// String describes the tunnel for logs.
func (c *Client) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "ipsec client to %v (%s)", c.Remote(), c.peerID)
	if len(c.addrs) > 0 {
		fmt.Fprintf(&b, " as %v", c.addrs)
	}
	return b.String()
}
