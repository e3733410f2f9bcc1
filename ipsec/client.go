package ipsec

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
func (c *Client) Remote() netip.AddrPort { return *c.remote.Load() }

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

// LocalTS is our side of the current child SA's traffic selectors, as
// the responder narrowed them: the sources Write may use. Protocols and
// ports are left out.
func (c *Client) LocalTS() []netip.Prefix {
	if ch := c.out.Load(); ch != nil {
		return prefixesOf(ch.localTS)
	}
	return nil
}

// RemoteTS is the responder's side of the current child SA's traffic
// selectors: the destinations to route into the tunnel.
func (c *Client) RemoteTS() []netip.Prefix {
	if ch := c.out.Load(); ch != nil {
		return prefixesOf(ch.peerTS)
	}
	return nil
}

// IKEProposal is the suite of the IKE SA and ESPProposal the one of the
// current child SA, as the responder chose them.
func (c *Client) IKEProposal() Proposal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ike.suite.Proposal
}

// ESPProposal: see IKEProposal.
func (c *Client) ESPProposal() Proposal {
	if ch := c.out.Load(); ch != nil {
		return ch.suite.Proposal
	}
	return Proposal{}
}

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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// BatchSize is the most packets one Read returns.
func (c *Client) BatchSize() int { return rxBatch }

// MTU is the largest inner packet that fits a 1500-byte outer packet with
// the child SA's ESP overhead, at most 1400 (what strongSwan's libipsec
// uses).
func (c *Client) MTU() int {
	ch := c.out.Load()
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

// Write seals bufs[i][offset:] into ESP on the current child SA and sends
// them; the number sent is returned. Each buffer needs tunnel.Headroom
// bytes before offset and tunnel.Tailroom bytes of capacity after the
// packet, which Write overwrites (it encrypts in place). Packets that are
// not IPv4 or IPv6 are skipped.
func (c *Client) Write(bufs [][]byte, offset int) (int, error) {
	ch := c.out.Load()
	if ch == nil {
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
	c.lastOutbound.Store(c.now().UnixNano())
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

// Close deletes the IKE SA, telling the responder (it waits up to about
// 2 s for the acknowledgement), and closes the socket. Calling it again,
// also concurrently, waits for the first call.
func (c *Client) Close() error {
	c.closeOnce.Do(c.deleteAndTerminate)
	c.wg.Wait()
	return nil
}

func (c *Client) deleteAndTerminate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	ike := c.ike
	// Our window is one request: an outstanding one is answered first.
	if ike.pending != nil {
		wait := ike.pendingDone
		c.mu.Unlock()
		select {
		case <-wait:
		case <-c.done:
		case <-time.After(time.Second):
		}
		c.mu.Lock()
		if c.closed {
			return
		}
		ike = c.ike
		ike.pending, ike.pendingDone = nil, nil
	}
	done, err := c.requestLocked(ike, message.Informational, []message.Payload{&message.Delete{Protocol: message.ProtoIKE}})
	if err == nil {
		c.mu.Unlock()
		c.awaitDelete(ike, done)
		c.mu.Lock()
	}
	c.terminateLocked(ErrClosed)
}

// awaitDelete waits for the answer to our Delete, retransmitting it
// faster than other requests: Close should not take long.
func (c *Client) awaitDelete(ike *clientIKE, done chan struct{}) {
	t := time.NewTimer(500 * time.Millisecond)
	defer t.Stop()
	for try := 1; ; try++ {
		select {
		case <-done:
			return
		case <-c.done:
			return
		case <-t.C:
		}
		if try == 4 {
			c.log.Info("the responder did not acknowledge our Delete", "remote", c.Remote())
			return
		}
		c.mu.Lock()
		if ike.pending != nil && ike.pendingDone == done {
			c.sendIKEs(ike.pending)
		}
		c.mu.Unlock()
		t.Reset(500 * time.Millisecond)
	}
}

func (c *Client) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// terminateLocked ends the Client; c.mu is held. The read loop stops when
// the socket closes, the timer loop with done.
func (c *Client) terminateLocked(cause error) {
	if c.closed {
		return
	}
	c.closed, c.cause = true, cause
	for _, ch := range c.children {
		c.table.Remove(ch.inSPI)
	}
	c.children = nil
	c.out.Store(nil)
	for _, k := range []*clientIKE{c.ike, c.old} {
		if k != nil && k.pendingDone != nil {
			close(k.pendingDone)
			k.pending, k.pendingDone = nil, nil
		}
	}
	close(c.done)
	_ = c.conn.Close()
	if errors.Is(cause, ErrClosed) {
		c.log.Info("IKE SA closed", "remote", c.Remote())
	} else {
		c.log.Warn("IKE SA ended", "remote", c.Remote(), "reason", cause)
	}
}

// requestLocked sends a request of ours on ike; c.mu is held. The
// returned channel is closed when the answer arrives or the Client ends.
func (c *Client) requestLocked(ike *clientIKE, exchange message.ExchangeType, ps []message.Payload) (chan struct{}, error) {
	if ike.pending != nil {
		return nil, errors.New("ipsec: a request is outstanding")
	}
	msg, err := ike.seal(exchange, false, ike.myMID, ps)
	if err != nil {
		return nil, fmt.Errorf("ipsec: %w", err)
	}
	done := make(chan struct{})
	ike.pending, ike.pendingDone = msg, done
	ike.pendingSent, ike.pendingWait, ike.pendingTry = c.now(), retransmitFirst, 1
	c.sendIKEs(msg)
	return done, nil
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
			c.mu.Lock()
			c.terminateLocked(fmt.Errorf("ipsec: read: %w", err))
			c.mu.Unlock()
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
			c.lastInbound.Store(c.now().UnixNano())
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
	if !child.allowsInbound(inner) {
		return false
	}
	c.pktsIn.Add(1)
	c.bytesIn.Add(uint64(len(pkt)))
	p.data = inner
	return true
}

// handleIKE processes an IKE message of the established Client.
func (c *Client) handleIKE(msg []byte, from netip.AddrPort) {
	h, err := message.ParseHeader(msg)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	var ike *clientIKE
	for _, k := range []*clientIKE{c.ike, c.old} {
		if k != nil && k.spii == h.SPIi && k.spir == h.SPIr {
			ike = k
		}
	}
	if ike == nil {
		return
	}
	if h.IsResponse() {
		if ike.pending == nil || h.MessageID != ike.myMID {
			return
		}
		if _, done, err := ike.open(msg, &ike.respFrags); err != nil || !done {
			return
		}
		ike.pending, ike.myMID = nil, ike.myMID+1
		if ike.pendingDone != nil {
			close(ike.pendingDone)
			ike.pendingDone = nil
		}
		c.lastInbound.Store(c.now().UnixNano())
		return
	}
	if h.MessageID+1 == ike.peerMID && ike.lastResp != nil {
		// A retransmitted request: the same answer (all its fragments),
		// once per retransmission, so only for its first fragment.
		if firstFragment(msg) {
			c.sendIKEs(ike.lastResp)
		}
		return
	}
	if h.MessageID != ike.peerMID {
		return
	}
	inner, done, err := ike.open(msg, &ike.reqFrags)
	if err != nil || !done {
		return
	}
	c.lastInbound.Store(c.now().UnixNano())
	if from != c.Remote() && from.Port() != 500 {
		c.remote.Store(&from) // only authenticated messages move the peer
	}
	var out []message.Payload
	var after func()
	switch h.Exchange {
	case message.Informational:
		out, after = c.handleInformational(ike, inner)
	case message.CreateChildSA:
		out, after = c.handleCreateChild(ike, inner)
	default:
		return
	}
	resp, err := ike.seal(h.Exchange, true, h.MessageID, out)
	if err != nil {
		c.log.Error("IKE response", "error", err)
		return
	}
	ike.peerMID++
	ike.lastResp = resp
	c.sendIKEs(resp)
	after()
}

// handleInformational answers dead peer detection and deletes (RFC 7296
// §1.4); c.mu is held.
func (c *Client) handleInformational(ike *clientIKE, ps []message.Payload) ([]message.Payload, func()) {
	var out []message.Payload
	removed := false
	for _, p := range ps {
		d, ok := p.(*message.Delete)
		if !ok {
			continue
		}
		switch d.Protocol {
		case message.ProtoIKE:
			if ike == c.old {
				// The IKE SA a rekey replaced: the tunnel lives on.
				return nil, func() { c.old = nil }
			}
			return nil, func() { c.terminateLocked(ErrDeleted) }
		case message.ProtoESP:
			var ours [][]byte
			for _, spi := range d.SPIs {
				if len(spi) != 4 {
					continue
				}
				if ch := c.removeChildByOutSPI(binary.BigEndian.Uint32(spi)); ch != nil {
					ours = append(ours, binary.BigEndian.AppendUint32(nil, ch.inSPI))
					removed = true
				}
			}
			if len(ours) > 0 {
				out = append(out, &message.Delete{Protocol: message.ProtoESP, SPISize: 4, SPIs: ours})
			}
		}
	}
	return out, func() {
		if removed && c.out.Load() == nil {
			// Without a child SA the tunnel carries nothing: end it, so
			// that the caller reconnects.
			c.log.Info("the responder deleted the child SA", "remote", c.Remote())
			if msg, err := ike.seal(message.Informational, false, ike.myMID, []message.Payload{&message.Delete{Protocol: message.ProtoIKE}}); err == nil && ike.pending == nil {
				c.sendIKEs(msg)
			}
			c.terminateLocked(ErrDeleted)
		}
	}
}

// removeChildByOutSPI removes the child whose outbound SPI (the
// responder's inbound) is spi; c.mu is held.
func (c *Client) removeChildByOutSPI(spi uint32) *childSA {
	for i, ch := range c.children {
		if ch.outSPI == spi {
			c.children = slices.Delete(c.children, i, i+1)
			c.table.Remove(ch.inSPI)
			c.out.CompareAndSwap(ch, nil)
			return ch
		}
	}
	return nil
}

// handleCreateChild answers the responder's rekey of the child SA or of
// the IKE SA (RFC 7296 §1.3.2, §1.3.3); c.mu is held. Additional child
// SAs are refused: a Client is one tunnel.
func (c *Client) handleCreateChild(ike *clientIKE, ps []message.Payload) ([]message.Payload, func()) {
	refuse := func(t message.NotifyType, data []byte) ([]message.Payload, func()) {
		return []message.Payload{&message.Notify{NotifyType: t, Data: data}}, func() {}
	}
	saP, ok := message.Find[*message.SA](ps)
	nonce, ok2 := message.Find[*message.Nonce](ps)
	if !ok || !ok2 || len(nonce.Data) < 16 || len(nonce.Data) > 256 || len(saP.Proposals) == 0 {
		return refuse(message.NotifyInvalidSyntax, nil)
	}
	ke, hasKE := message.Find[*message.KE](ps)
	if saP.Proposals[0].Protocol == message.ProtoIKE {
		if !hasKE {
			return refuse(message.NotifyInvalidSyntax, nil)
		}
		return c.rekeyIKE(ike, saP, ke, nonce.Data)
	}
	var old *childSA
	for _, n := range message.Notifies(ps) {
		if n.NotifyType == message.NotifyRekeySA && n.Protocol == message.ProtoESP && len(n.SPI) == 4 {
			spi := binary.BigEndian.Uint32(n.SPI)
			for _, ch := range c.children {
				if ch.outSPI == spi && ch.rekeyed.IsZero() {
					old = ch
				}
			}
			if old == nil {
				return []message.Payload{&message.Notify{Protocol: message.ProtoESP, SPI: n.SPI, NotifyType: message.NotifyChildSANotFound}}, func() {}
			}
		}
	}
	if old == nil {
		return refuse(message.NotifyNoAdditionalSAs, nil)
	}
	keGroup := uint16(0)
	if hasKE {
		keGroup = ke.Group
	}
	sel, err := selectESP(c.espOffer, saP, keGroup)
	if err != nil && hasKE {
		// Perhaps a group we take, but not the one of the KE payload.
		if alt, err2 := selectESP(c.espOffer, saP, 0); err2 == nil {
			sel, err = alt, nil
		}
	}
	if err != nil {
		return refuse(message.NotifyNoProposalChosen, nil)
	}
	var shared []byte
	var myKE *message.KE
	if sel.DHGroup != 0 {
		dh, err := ikecrypto.NewDH(sel.DHGroup, c.rand)
		if err == nil {
			shared, err = dh.SharedSecret(ke.Data)
		}
		if err != nil {
			return refuse(message.NotifyInvalidSyntax, nil)
		}
		myKE = &message.KE{Group: sel.DHGroup, Data: dh.Public()}
	}
	tsi, ok1 := findTS(ps, false)
	tsr, ok3 := findTS(ps, true)
	if !ok1 || !ok3 {
		return refuse(message.NotifyInvalidSyntax, nil)
	}
	// The responder of the IKE SA started this exchange: TSi is its side.
	peerTS, localTS := narrow(tsi.Selectors, prefixesOf(old.peerTS)), narrow(tsr.Selectors, prefixesOf(old.localTS))
	if len(peerTS) == 0 || len(localTS) == 0 {
		return refuse(message.NotifyTSUnacceptable, nil)
	}
	nr, err := randomBytes(c.rand, nonceLen)
	if err != nil {
		return refuse(message.NotifyTemporaryFailure, nil)
	}
	child := &childSA{}
	if child.inSPI, err = c.table.Reserve(c.rand, child); err != nil {
		return refuse(message.NotifyTemporaryFailure, nil)
	}
	if err := c.keyChild(child, ike, sel, shared, nonce.Data, nr, false); err != nil {
		c.table.Remove(child.inSPI)
		return refuse(message.NotifyNoProposalChosen, nil)
	}
	child.peerTS, child.localTS = cloneSelectors(peerTS), cloneSelectors(localTS)
	c.children = append(c.children, child)
	out := []message.Payload{
		&message.SA{Proposals: []message.Proposal{sel.transforms(message.ProtoESP, binary.BigEndian.AppendUint32(nil, child.inSPI))}},
		&message.Nonce{Data: nr},
	}
	if myKE != nil {
		out = append(out, myKE)
	}
	out = append(out, &message.TrafficSelectors{Selectors: peerTS}, &message.TrafficSelectors{Responder: true, Selectors: localTS})
	old.rekeyed = c.now()
	return out, func() {
		// New packets go out on the new SA at once; the old inbound SA
		// takes what is in flight until the responder deletes it.
		c.out.Store(child)
		c.log.Info("child SA rekeyed", "remote", c.Remote(), "esp", sel.String())
	}
}

// rekeyIKE answers the responder's rekey of the IKE SA (RFC 7296 §1.3.2,
// §2.18): the new IKE SA, whose original initiator is the responder,
// takes over; the old one waits for the responder's Delete.
func (c *Client) rekeyIKE(ike *clientIKE, saP *message.SA, ke *message.KE, ni []byte) ([]message.Payload, func()) {
	refuse := func(t message.NotifyType, data []byte) ([]message.Payload, func()) {
		return []message.Payload{&message.Notify{NotifyType: t, Data: data}}, func() {}
	}
	sel, wrongKE, err := selectIKE(c.cfg.IKEProposals, saP, ke.Group)
	if err != nil {
		return refuse(message.NotifyNoProposalChosen, nil)
	}
	if wrongKE {
		return refuse(message.NotifyInvalidKEPayload, binary.BigEndian.AppendUint16(nil, sel.DHGroup))
	}
	if len(sel.spi) != 8 {
		return refuse(message.NotifyInvalidSyntax, nil)
	}
	dh, err := ikecrypto.NewDH(sel.DHGroup, c.rand)
	if err != nil {
		return refuse(message.NotifyNoProposalChosen, nil)
	}
	shared, err := dh.SharedSecret(ke.Data)
	if err != nil {
		return refuse(message.NotifyInvalidSyntax, nil)
	}
	nr, err := randomBytes(c.rand, nonceLen)
	if err != nil {
		return refuse(message.NotifyTemporaryFailure, nil)
	}
	n := &clientIKE{suite: sel, fragLimit: ike.fragLimit}
	copy(n.spii[:], sel.spi)
	for n.spir == ([8]byte{}) || n.spir == ike.spir {
		if _, err := io.ReadFull(c.rand, n.spir[:]); err != nil {
			return refuse(message.NotifyTemporaryFailure, nil)
		}
	}
	if n.prf, err = ikecrypto.NewPRF(sel.PRF); err == nil {
		n.keys, err = ikecrypto.DeriveRekeyedIKEKeys(ike.prf, ike.keys.D, sel.ikeSuite(), shared, ni, nr, n.spii, n.spir)
	}
	if err == nil {
		err = n.install(c.rand)
	}
	if err != nil {
		return refuse(message.NotifyNoProposalChosen, nil)
	}
	out := []message.Payload{
		&message.SA{Proposals: []message.Proposal{sel.transforms(message.ProtoIKE, n.spir[:])}},
		&message.Nonce{Data: nr},
		&message.KE{Group: sel.DHGroup, Data: dh.Public()},
	}
	return out, func() {
		if ike.pendingDone != nil {
			close(ike.pendingDone)
		}
		ike.pending, ike.pendingDone = nil, nil
		c.old, c.ike = ike, n
		c.log.Info("IKE SA rekeyed", "remote", c.Remote(), "ike", sel.String())
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for i := 0; i < len(c.children); i++ {
		ch := c.children[i]
		if !ch.rekeyed.IsZero() && now.Sub(ch.rekeyed) > rekeyedGrace {
			c.children = slices.Delete(c.children, i, i+1)
			c.table.Remove(ch.inSPI)
			i--
		}
	}
	ike := c.ike
	switch {
	case ike.pending != nil:
		if now.Sub(ike.pendingSent) < ike.pendingWait {
			break
		}
		if ike.pendingTry >= retransmitTries {
			c.terminateLocked(ErrDeadPeer)
			return
		}
		ike.pendingTry++
		ike.pendingSent = now
		ike.pendingWait = ike.pendingWait * 18 / 10
		c.sendIKEs(ike.pending)
	case c.cfg.DPDInterval > 0 && now.Sub(time.Unix(0, c.lastInbound.Load())) > c.cfg.DPDInterval:
		_, _ = c.requestLocked(ike, message.Informational, nil)
	}
	if now.Sub(time.Unix(0, c.lastOutbound.Load())) >= keepaliveInterval {
		to := c.Remote()
		ka := esp.Keepalive
		_, _ = c.uc.WriteBatch([]udpbatch.Message{{Buf: ka[:], N: 1, Addr: to}})
		c.lastOutbound.Store(now.UnixNano())
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
