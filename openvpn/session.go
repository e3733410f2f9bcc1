package openvpn

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/openvpn/internal/datachannel"
	"github.com/remotegate/remotegate/openvpn/internal/keymethod"
	"github.com/remotegate/remotegate/openvpn/internal/reliable"
	"github.com/remotegate/remotegate/openvpn/internal/wire"
	"github.com/remotegate/remotegate/tunnel"
)

// link is how a session reaches its peer: a shared UDP socket plus the
// peer's address, or a TCP connection with length framing.
type link interface {
	// sendControl transmits one complete OpenVPN packet.
	sendControl(pkt []byte) error
	// sendData transmits sealed data packets; it is called with the
	// session's send lock held and must not keep pkts.
	sendData(pkts [][]byte) error
	remote() netip.AddrPort
	close()
}

// keyState is one key id of a session: its reliability layer, TLS session and,
// once negotiated, its data-channel key.
type keyState struct {
	id      uint8
	rel     *reliable.Layer
	conn    *ctlConn
	started time.Time
	active  bool
	// space is signalled when the reliability layer's queue drains.
	space chan struct{}
}

// releaseIfSettled lets the reliability layer of a key state whose
// handshake is over free its buffers once everything it sent is
// acknowledged: the key state lives as long as its key, for the rare
// control messages to come, and need not hold the handshake's messages.
// The caller holds the session's mu.
func (ks *keyState) releaseIfSettled() {
	if ks.active && ks.rel.Unacked() == 0 && ks.rel.Queued() == 0 {
		ks.rel.Release()
	}
}

// dataKeys is the data path's view of the keys, replaced whole on every
// change so that the per-packet path reads it without a lock.
type dataKeys struct {
	byID [8]*datachannel.Key
	send *datachannel.Key
	// next is a freshly negotiated key that we decrypt with already but send
	// with only once the peer has shown that it has it too (its first packet
	// under that key id) or after keySwitchDelay.
	next      *datachannel.Key
	nextSince time.Time
	// retire is when byID entries other than send and next are dropped.
	retire time.Time
}

const keySwitchDelay = 2 * time.Second

// session is the state shared by server-side sessions and the client: the
// control channel with its key states, and the data channel keys.
type session struct {
	role   wire.Role
	id     uint64
	log    *slog.Logger
	timers Timers
	now    func() time.Time
	rand   io.Reader
	link   link
	ctx    context.Context
	cancel context.CancelFunc

	// callbacks by role
	runKeyFn   func(ks *keyState) error
	onClose    func(cause error)
	sendPeerID atomic.Uint32 // peer id put in our data packets; NoPeerID for P_DATA_V1
	data       atomic.Pointer[dataKeys]
	lastRecv   atomic.Int64 // unix nanoseconds of the last authenticated packet
	lastSent   atomic.Int64
	keyBytes   atomic.Int64 // data bytes both ways since the newest key was installed (--reneg-bytes)
	// traffic totals for tunnel.Counters
	bytesIn, bytesOut, packetsIn, packetsOut atomic.Uint64
	closedFlag                               atomic.Bool
	sendMu                                   sync.Mutex
	sendScratch                              [][]byte
	// framing is the datachannel.Compression of data packets; a client
	// changes it when the server pushes a compress option.
	framing atomic.Uint32

	mu        sync.Mutex
	codec     *wire.Codec
	localSID  wire.SessionID
	remoteSID wire.SessionID
	keys      [8]*keyState
	current   uint8 // key id of the newest key state
	// hardReset is the opcode of our message 0 in key state 0.
	hardReset wire.Opcode
	kick      chan struct{}
	done      chan struct{}
	// peerKnown is closed once the peer's session id is known (its hard
	// reset arrived). A client starts TLS only then: a stateless server
	// drops anything before its reset has been acknowledged.
	peerKnown     chan struct{}
	peerKnownOnce sync.Once
	cause         error
	// negotiated parameters reused by renegotiations
	cipher  datachannel.Cipher
	useEKM  bool
	auth    crypto.Hash // legacy CBC HMAC digest
	keyTime time.Time   // when the newest data key was installed
}

func newSession(role wire.Role, codec *wire.Codec, local wire.SessionID, l link, t Timers, log *slog.Logger, now func() time.Time, rnd io.Reader) *session {
	s := &session{
		role:      role,
		codec:     codec,
		localSID:  local,
		link:      l,
		timers:    t,
		log:       log,
		now:       now,
		rand:      rnd,
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		peerKnown: make(chan struct{}),
	}
	s.sendPeerID.Store(datachannel.NoPeerID)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	n := now().UnixNano()
	s.lastRecv.Store(n)
	s.lastSent.Store(n)
	return s
}

// newKeyState creates the key state for id; firstSend/firstRecv are the first
// message ids (1 when the reset was exchanged statelessly).
func (s *session) newKeyState(id uint8, firstSend, firstRecv uint32) *keyState {
	ks := &keyState{
		id:      id,
		rel:     reliable.New(reliable.Config{InitialTimeout: s.timers.TLSTimeout, FirstSendID: firstSend, FirstRecvID: firstRecv}),
		started: s.now(),
		space:   make(chan struct{}, 1),
	}
	ks.conn = newCtlConn(func(p []byte) error { return s.queueControl(ks, p) })
	if old := s.keys[id]; old != nil {
		old.conn.Close()
	}
	s.keys[id] = ks
	s.current = id
	return ks
}

// queueControl hands TLS bytes of key state ks to its reliability layer,
// waiting while the layer's queue is full.
func (s *session) queueControl(ks *keyState, p []byte) error {
	for {
		s.mu.Lock()
		if s.keys[ks.id] != ks || s.cause != nil {
			s.mu.Unlock()
			return ErrClosed
		}
		err := ks.rel.Send(p)
		s.mu.Unlock()
		if err == nil {
			s.wake()
			return nil
		}
		if !errors.Is(err, reliable.ErrQueueFull) {
			return err
		}
		select {
		case <-ks.space:
		case <-ks.conn.done:
			return ErrClosed
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *session) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// start launches the session's timer loop and the TLS work of key state ks.
func (s *session) start(ks *keyState) {
	s.wake() // the reset queued before the loop runs goes out at once
	go s.loop()
	go s.runKey(ks)
}

func (s *session) runKey(ks *keyState) {
	err := s.runKeyFn(ks)
	if err == nil || s.closedFlag.Load() {
		return
	}
	s.mu.Lock()
	stale := s.keys[ks.id] != ks
	s.mu.Unlock()
	if stale {
		return
	}
	if ks.id == 0 || !s.hasDataKey() {
		s.close(err)
		return
	}
	// A failed renegotiation leaves the old key in service until the peer
	// gives up on it; stock openvpn restarts the session in that case.
	s.close(fmt.Errorf("openvpn: renegotiation of key %d: %w", ks.id, err))
}

func (s *session) hasDataKey() bool {
	dk := s.data.Load()
	return dk != nil && dk.send != nil
}

// handleControl decodes and processes one control packet from the peer. The
// packet buffer is not retained.
func (s *session) handleControl(b []byte) {
	s.mu.Lock()
	if s.cause != nil {
		s.mu.Unlock()
		return
	}
	pkt, err := s.codec.Decode(b)
	s.mu.Unlock()
	if err != nil {
		return
	}
	s.process(&pkt)
}

// process handles one decoded control packet: session id checks, ACKs,
// in-order delivery of TLS bytes, and soft resets from the peer.
func (s *session) process(pkt *wire.Packet) {
	s.mu.Lock()
	if s.cause != nil {
		s.mu.Unlock()
		return
	}
	// A reset is message 0 of its key state; under any other message id it
	// is malformed and must not take that id's place. Stock openvpn 2.6
	// sends one when, over TCP, its retransmission of the reset is still
	// queued as the ACK for it arrives: the reset's buffer is reused for
	// message 1 (the ClientHello), and the queued packet goes out as a
	// reset with id 1 and no payload, just before the real message 1.
	// Accepting it would acknowledge id 1 and drop the ClientHello as a
	// duplicate, and the handshake would stall. With tls-auth/tls-crypt the
	// packet fails authentication anyway.
	if pkt.Opcode.IsReset() && pkt.MessageID != 0 {
		s.mu.Unlock()
		return
	}
	if !s.remoteSID.IsZero() && pkt.SessionID != s.remoteSID {
		s.mu.Unlock()
		return
	}
	if len(pkt.Acks) > 0 && pkt.RemoteSessionID != s.localSID {
		s.mu.Unlock()
		return
	}
	if s.remoteSID.IsZero() {
		s.remoteSID = pkt.SessionID
	}
	s.peerKnownOnce.Do(func() { close(s.peerKnown) })
	s.lastRecv.Store(s.now().UnixNano())
	ks := s.keys[pkt.KeyID]
	if pkt.Opcode == wire.OpControlSoftResetV1 && ks == nil && pkt.KeyID != 0 {
		// The peer starts a renegotiation: answer with our own soft reset
		// (message 0 of the new key state) and run a new TLS session.
		ks = s.newKeyState(pkt.KeyID, 0, 0)
		if err := ks.rel.Send(nil); err == nil {
			go s.runKey(ks)
		}
	}
	if ks == nil {
		s.mu.Unlock()
		return
	}
	if len(pkt.Acks) > 0 {
		ks.rel.OnAcks(pkt.Acks)
	}
	if pkt.Opcode != wire.OpAckV1 {
		ks.rel.Receive(pkt.MessageID, pkt.Payload)
		for {
			p, ok := ks.rel.Read()
			if !ok {
				break
			}
			if len(p) > 0 {
				ks.conn.push(p)
			}
		}
	}
	ks.releaseIfSettled()
	s.mu.Unlock()
	s.wake()
}

// loop drives retransmissions, ACKs, keepalives, renegotiation and the
// handshake deadline.
func (s *session) loop() {
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		select {
		case <-s.kick:
		case <-timer.C:
		case <-s.done:
			return
		}
		next := s.tick()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// tick does the due control work and returns how long to sleep.
func (s *session) tick() time.Duration {
	now := s.now()
	if cause := s.checkTimers(now); cause != nil {
		s.close(cause)
		return time.Hour
	}
	s.mu.Lock()
	var pkts [][]byte
	sleep := time.Second
	for _, ks := range s.keys {
		if ks == nil {
			continue
		}
		for _, out := range ks.rel.Due(now) {
			p := &wire.Packet{
				Opcode:    wire.OpControlV1,
				KeyID:     ks.id,
				SessionID: s.localSID,
				MessageID: out.ID,
				Payload:   out.Payload,
			}
			if out.ID == 0 {
				p.Opcode = s.resetOpcode(ks.id)
			}
			s.addAcks(p, ks, reliable.MaxAcksControl)
			if b, err := s.codec.Encode(nil, p); err == nil {
				pkts = append(pkts, b)
			}
		}
		if ks.rel.HasPendingAcks() {
			p := &wire.Packet{Opcode: wire.OpAckV1, KeyID: ks.id, SessionID: s.localSID}
			s.addAcks(p, ks, reliable.MaxAcksAck)
			if b, err := s.codec.Encode(nil, p); err == nil {
				pkts = append(pkts, b)
			}
		}
		if d := ks.rel.NextDeadline(); !d.IsZero() {
			sleep = min(sleep, max(d.Sub(now), time.Millisecond))
		}
		if ks.rel.Queued() < reliable.MaxQueued {
			select {
			case ks.space <- struct{}{}:
			default:
			}
		}
		ks.releaseIfSettled()
	}
	s.mu.Unlock()
	for _, b := range pkts {
		_ = s.link.sendControl(b)
	}
	if len(pkts) > 0 {
		s.lastSent.Store(now.UnixNano())
	}
	return sleep
}

func (s *session) addAcks(p *wire.Packet, ks *keyState, max int) {
	if s.remoteSID.IsZero() {
		return
	}
	p.Acks = ks.rel.TakeAcks(max)
	if len(p.Acks) > 0 {
		p.RemoteSessionID = s.remoteSID
	}
}

func (s *session) resetOpcode(keyID uint8) wire.Opcode {
	if keyID != 0 {
		return wire.OpControlSoftResetV1
	}
	return s.hardReset
}

// checkTimers applies the handshake window, keepalive and renegotiation
// timers. It returns a cause when the session must end.
func (s *session) checkTimers(now time.Time) error {
	s.mu.Lock()
	t := s.timers
	if now.Sub(time.Unix(0, s.lastRecv.Load())) > t.PingRestart {
		s.mu.Unlock()
		return ErrPingTimeout
	}
	ks := s.keys[s.current]
	if ks != nil && !ks.active && now.Sub(ks.started) > t.HandshakeWindow {
		s.mu.Unlock()
		return ErrHandshakeTimeout
	}
	reneg := false
	if ks != nil && ks.active && s.keyTime != (time.Time{}) {
		if t.RenegotiateAfter > 0 && now.Sub(s.keyTime) >= t.RenegotiateAfter {
			reneg = true
		}
		if dk := s.data.Load(); dk != nil && dk.send != nil {
			sent := int64(dk.send.SendCounter())
			if t.RenegotiatePackets > 0 && sent >= t.RenegotiatePackets {
				reneg = true
			}
			if sent >= 0xF0000000 {
				reneg = true
			}
			if t.RenegotiateBytes > 0 && s.keyBytes.Load() >= t.RenegotiateBytes {
				reneg = true
			}
		}
	}
	if reneg {
		s.startRenegotiation()
	}
	// The pending key may become the sending key on a timer only once the
	// peer has acknowledged everything of its key state, our key-method-2
	// message included: before that the peer may not have the key yet, and
	// packets sealed with it would be lost.
	delivered := ks != nil && ks.active && ks.rel.Unacked() == 0 && ks.rel.Queued() == 0
	s.mu.Unlock()
	if delivered {
		s.promoteKeys(now, 0xff)
	} else {
		s.expireKeys(now)
	}
	if now.Sub(time.Unix(0, s.lastSent.Load())) >= t.Ping && s.hasDataKey() {
		s.sendPing()
	}
	return nil
}

// startRenegotiation begins a new key state from our side (soft reset). The
// caller holds s.mu.
func (s *session) startRenegotiation() {
	id := s.current + 1
	if id > 7 {
		id = 1
	}
	s.keyTime = time.Time{} // do not trigger again while this one runs
	ks := s.newKeyState(id, 0, 0)
	if err := ks.rel.Send(nil); err != nil {
		return
	}
	s.log.Info("renegotiating", "session", s.id, "key_id", id)
	go s.runKey(ks)
}

// installKey puts a newly negotiated data key in service. switchNow makes it
// the sending key at once; otherwise it becomes the sending key when the peer
// uses it or after keySwitchDelay.
func (s *session) installKey(ks *keyState, k *datachannel.Key, switchNow bool) {
	now := s.now()
	s.mu.Lock()
	ks.active = true
	s.keyTime = now
	s.keyBytes.Store(0)
	// The key states older than this one are finished: close their TLS
	// sessions, keep their data keys for the transition window.
	for i, o := range s.keys {
		if o != nil && o != ks {
			o.conn.Close()
			s.keys[i] = nil
		}
	}
	s.mu.Unlock()
	for {
		old := s.data.Load()
		nk := &dataKeys{}
		if old != nil {
			*nk = *old
		}
		// Keep only the current sending key besides the new one.
		var keep *datachannel.Key
		if nk.next != nil {
			keep = nk.next
		} else {
			keep = nk.send
		}
		nk.byID = [8]*datachannel.Key{}
		if keep != nil {
			nk.byID[keep.KeyID()] = keep
		}
		nk.byID[k.KeyID()] = k
		nk.retire = now.Add(s.timers.TransitionWindow)
		if switchNow || nk.send == nil {
			nk.send = k
			nk.next = nil
		} else {
			nk.send = keep
			nk.next = k
			nk.nextSince = now
		}
		if s.data.CompareAndSwap(old, nk) {
			return
		}
	}
}

// promoteKeys makes the pending key the sending key once the peer used it
// (keyID) or, with keyID 0xff, after keySwitchDelay; and drops keys past
// their transition window.
func (s *session) promoteKeys(now time.Time, keyID uint8) {
	s.updateKeys(now, keyID, true)
}

// expireKeys only drops keys past their transition window.
func (s *session) expireKeys(now time.Time) { s.updateKeys(now, 0xfe, false) }

func (s *session) updateKeys(now time.Time, keyID uint8, timerOK bool) {
	for {
		old := s.data.Load()
		if old == nil {
			return
		}
		promote := old.next != nil && (old.next.KeyID() == keyID || timerOK && keyID == 0xff && now.Sub(old.nextSince) >= keySwitchDelay)
		expire := false
		if now.After(old.retire) {
			for _, k := range old.byID {
				if k != nil && k != old.send && k != old.next {
					expire = true
				}
			}
		}
		if !promote && !expire {
			return
		}
		nk := *old
		if promote {
			nk.send = old.next
			nk.next = nil
		}
		if expire || promote && now.After(old.retire) {
			for i, k := range nk.byID {
				if k != nil && k != nk.send && k != nk.next {
					nk.byID[i] = nil
				}
			}
		}
		if s.data.CompareAndSwap(old, &nk) {
			return
		}
	}
}

// openData authenticates and decrypts one data packet in place. It is called
// by the single receive goroutine of the session's link.
func (s *session) openData(pkt []byte) ([]byte, bool) {
	dk := s.data.Load()
	if dk == nil || len(pkt) == 0 {
		return nil, false
	}
	keyID := pkt[0] & 7
	k := dk.byID[keyID]
	if k == nil {
		return nil, false
	}
	n := len(pkt)
	plain, err := k.Open(pkt)
	if err != nil {
		return nil, false
	}
	s.keyBytes.Add(int64(n))
	s.bytesIn.Add(uint64(n))
	s.packetsIn.Add(1)
	s.lastRecv.Store(s.now().UnixNano())
	if dk.next == k {
		s.promoteKeys(s.now(), keyID)
	}
	// Pings and OCC messages are framed like any packet.
	if c := datachannel.Compression(s.framing.Load()); c != datachannel.CompressionNone {
		if plain, err = c.Unframe(plain); err != nil {
			return nil, false
		}
	}
	if datachannel.IsPing(plain) {
		return nil, false
	}
	if datachannel.IsOCCExit(plain) {
		go s.close(ErrPeerExit)
		return nil, false
	}
	return plain, true
}

// send seals and transmits packets bufs[i][offset:]; it does not allocate.
func (s *session) send(bufs [][]byte, offset int) (int, error) {
	if s.closedFlag.Load() {
		return 0, ErrClosed
	}
	dk := s.data.Load()
	if dk == nil || dk.send == nil {
		return 0, errNotReady
	}
	peerID := s.sendPeerID.Load()
	framing := datachannel.Compression(s.framing.Load())
	s.sendMu.Lock()
	pkts := s.sendScratch[:0]
	bytes := 0
	for _, b := range bufs {
		off, n := offset, len(b)-offset
		if framing != datachannel.CompressionNone {
			off, n = framing.Frame(b[:cap(b)], off, n)
		}
		pkt, err := dk.send.Seal(b[:cap(b)], off, n, peerID)
		if err != nil {
			continue
		}
		pkts = append(pkts, pkt)
		bytes += len(pkt)
	}
	s.keyBytes.Add(int64(bytes))
	s.bytesOut.Add(uint64(bytes))
	s.packetsOut.Add(uint64(len(pkts)))
	s.sendScratch = pkts[:0]
	err := s.link.sendData(pkts)
	s.sendMu.Unlock()
	if err != nil {
		return 0, err
	}
	s.lastSent.Store(s.now().UnixNano())
	return len(pkts), nil
}

var errNotReady = errors.New("openvpn: data channel not ready")

func (s *session) sendPing() {
	buf := make([]byte, tunnel.Headroom+len(datachannel.PingMagic)+tunnel.Tailroom)
	copy(buf[tunnel.Headroom:], datachannel.PingMagic[:])
	_, _ = s.send([][]byte{buf[:tunnel.Headroom+len(datachannel.PingMagic)]}, tunnel.Headroom)
}

// sendText writes one control message (NUL-terminated) on the newest active
// TLS session, as its own TLS record.
func writeText(tc *tls.Conn, text string) error {
	_, err := tc.Write(append([]byte(text), 0))
	return err
}

// close ends the session once, with cause.
func (s *session) close(cause error) {
	if !s.closedFlag.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	s.cause = cause
	for _, ks := range s.keys {
		if ks != nil {
			ks.conn.Close()
		}
	}
	s.mu.Unlock()
	s.cancel()
	close(s.done)
	if dk := s.data.Load(); dk != nil {
		for _, k := range dk.byID {
			if k != nil {
				k.Wipe()
			}
		}
	}
	if s.onClose != nil {
		s.onClose(cause)
	}
}

// commandReadSize is the buffer readCommands reads with. A key state's TLS
// session waits in that read for the life of its key, and the messages
// after the handshake are short (EXIT, PUSH_REQUEST, RESTART), so the
// buffer is small; a longer message is gathered across reads.
const commandReadSize = 512

// maxCommandBytes bounds what readCommands gathers while waiting for the
// NUL that ends a message.
const maxCommandBytes = 64 << 10

// readCommands reads the control messages that follow key method 2 on the
// TLS session of ks and passes each to handle until handle says done, the
// key state is retired (nil error) or the session fails.
func readCommands(tc *tls.Conn, ks *keyState, handle func(text string, cmd keymethod.Command) (done bool, err error)) error {
	buf := make([]byte, commandReadSize)
	var gathered []byte
	for {
		n, err := tc.Read(buf)
		if err != nil {
			if ks.conn.closed() {
				return nil
			}
			return fmt.Errorf("openvpn: control channel: %w", err)
		}
		if n == 0 {
			continue
		}
		data := buf[:n]
		// A read that fills buf may have left the rest of its TLS record
		// unread (crypto/tls returns at most one record per Read); a
		// message is complete at its NUL or at the end of its record.
		partial := n == len(buf) && buf[n-1] != 0
		if gathered != nil || partial {
			gathered = append(gathered, data...)
			if partial && len(gathered) < maxCommandBytes {
				continue
			}
			data, gathered = gathered, nil
		}
		for _, text := range keymethod.SplitCommands(data) {
			done, err := handle(text, keymethod.ParseCommand(text))
			if done || err != nil {
				return err
			}
		}
	}
}
