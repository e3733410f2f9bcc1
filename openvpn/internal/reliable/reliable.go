package reliable

import (
	"errors"
	"time"
)

// Window sizes and ACK limits of OpenVPN 2.6.
const (
	// SendWindow is the most messages in flight, counted from the lowest
	// unacknowledged id (TLS_RELIABLE_N_SEND_BUFFERS).
	SendWindow = 6
	// ReceiveWindow is how far ahead of the next expected id a message may
	// be and still be buffered.
	ReceiveWindow = 12
	// MaxAcksControl is the most ACKs piggybacked on a P_CONTROL packet.
	MaxAcksControl = 4
	// MaxAcksAck is the most ACKs in one P_ACK_V1 packet.
	MaxAcksAck = 8
	// MaxQueued is the most messages waiting for the send window.
	MaxQueued = 64
)

const (
	// mruSize is how many recently acknowledged ids are repeated to heal
	// lost ACKs, as OpenVPN 2.6 does.
	mruSize = 8
	// fastRetransmitAcks is how many ACKs for later ids trigger an early
	// retransmission.
	fastRetransmitAcks = 3
	// sendRing holds every message the layer can own at once: at most
	// SendWindow positions from the lowest unacked id may have been sent,
	// plus MaxQueued unsent ones. A power of two keeps the index cheap.
	sendRing = 128
	// pendingCap bounds the ACKs owed. Only ids inside the receive window
	// or duplicates are ever owed; when the set is full a new id is
	// dropped, which heals because the peer retransmits and the duplicate
	// is acknowledged then. The bound keeps a peer that sends many
	// distinct old ids from growing memory.
	pendingCap = 2 * ReceiveWindow
)

// ErrQueueFull is returned by Send when MaxQueued messages already wait.
var ErrQueueFull = errors.New("reliable: send queue full")

// immediate is what NextDeadline returns when Due has work at once: a
// time in the past that is not the zero time (which means "nothing").
var immediate = time.Unix(0, 0)

// Config sets a Layer's timing and first message ids. The zero value is the
// OpenVPN default.
type Config struct {
	// InitialTimeout is the first retransmit timeout; 0 means 2 s
	// (--tls-timeout).
	InitialTimeout time.Duration
	// MaxTimeout caps the backoff; 0 means 60 s (--hand-window, after
	// which the handshake fails anyway).
	MaxTimeout time.Duration
	// FirstSendID and FirstRecvID are the first message ids; they are 1
	// when the hard resets (message 0) were exchanged statelessly.
	FirstSendID uint32
	FirstRecvID uint32
}

// Outgoing is a message to transmit now.
type Outgoing struct {
	ID uint32
	// Payload is owned by the Layer and stays valid until the message is
	// acknowledged.
	Payload []byte
	// Retransmit is true when the message was transmitted before.
	Retransmit bool
}

type sendMsg struct {
	id       uint32
	buf      []byte // reused across messages to keep Send allocation-free
	sent     bool
	acked    bool
	deadline time.Time
	timeout  time.Duration
	laterAck int // ACKs for higher ids seen since the last transmission
}

type recvSlot struct {
	buf     []byte
	present bool
}

// Layer is the reliability state of one key state, both directions. It is
// not safe for concurrent use; the session loop serializes calls.
type Layer struct {
	cfg Config

	// Send side. snd[(sndHead+i)%sendRing] is message lowest+i, where
	// lowest is the lowest id not yet acknowledged; the acknowledged
	// prefix is always dropped so that position 0 is unacknowledged. The
	// ring (10 KiB with its message buffers) is allocated by the first
	// Send and dropped by Release: a key state lives as long as its key,
	// but sends almost nothing after its handshake.
	snd     *[sendRing]sendMsg
	sndHead int
	sndLen  int
	nextID  uint32
	unacked int
	queued  int
	out     []Outgoing

	// Receive side. rcv[(rcvHead+d)%ReceiveWindow] holds message readID+d.
	// The window is counted from the oldest unread message, as in
	// OpenVPN: a caller that drains Read after every Receive sees it
	// counted from the next expected id.
	rcv     [ReceiveWindow]recvSlot
	rcvHead int
	readID  uint32

	pending  [pendingCap]uint32 // ids owed an ACK, oldest first
	nPending int
	mru      [mruSize]uint32 // recently acknowledged ids, newest first
	nMRU     int
	acks     [MaxAcksAck]uint32
}

// New returns a Layer.
func New(cfg Config) *Layer {
	if cfg.InitialTimeout <= 0 {
		cfg.InitialTimeout = 2 * time.Second
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 60 * time.Second
	}
	if cfg.MaxTimeout < cfg.InitialTimeout {
		cfg.MaxTimeout = cfg.InitialTimeout
	}
	return &Layer{
		cfg:    cfg,
		nextID: cfg.FirstSendID,
		readID: cfg.FirstRecvID,
		out:    make([]Outgoing, 0, SendWindow),
	}
}

func (l *Layer) at(i int) *sendMsg { return &l.snd[(l.sndHead+i)%sendRing] }

// Send queues a copy of payload as the next message. It goes out, via Due,
// as soon as the send window allows. It returns ErrQueueFull when MaxQueued
// messages are already waiting for the window.
func (l *Layer) Send(payload []byte) error {
	if l.queued >= MaxQueued {
		return ErrQueueFull
	}
	if l.snd == nil {
		l.snd = new([sendRing]sendMsg)
	}
	m := l.at(l.sndLen)
	*m = sendMsg{id: l.nextID, buf: append(m.buf[:0], payload...)}
	l.sndLen++
	l.queued++
	l.nextID++
	return nil
}

// Due returns the messages to transmit at now and records their
// transmission: new messages that fit in the send window, unacknowledged
// ones whose retransmit timer expired (the timeout doubles with every
// retransmission up to MaxTimeout), and, once, an unacknowledged message
// for which fastRetransmitAcks ACKs of later ids arrived since its last
// transmission. The returned slice is reused by the next call to Due.
func (l *Layer) Due(now time.Time) []Outgoing {
	l.out = l.out[:0]
	for i := 0; i < l.sndLen && i < SendWindow; i++ {
		m := l.at(i)
		switch {
		case m.acked:
		case !m.sent:
			m.sent = true
			m.timeout = l.cfg.InitialTimeout
			m.deadline = now.Add(m.timeout)
			l.queued--
			l.unacked++
			l.out = append(l.out, Outgoing{ID: m.id, Payload: m.buf})
		case m.laterAck >= fastRetransmitAcks:
			// The peer has moved past this message: it was most
			// likely lost, not delayed, so resend without waiting
			// and without growing the timeout.
			m.laterAck = 0
			m.deadline = now.Add(m.timeout)
			l.out = append(l.out, Outgoing{ID: m.id, Payload: m.buf, Retransmit: true})
		case !now.Before(m.deadline):
			m.timeout = min(2*m.timeout, l.cfg.MaxTimeout)
			m.laterAck = 0
			m.deadline = now.Add(m.timeout)
			l.out = append(l.out, Outgoing{ID: m.id, Payload: m.buf, Retransmit: true})
		}
	}
	return l.out
}

// OnAcks removes acknowledged messages; ids we no longer hold, never sent,
// or already saw acknowledged are ignored (2.6 repeats old ACKs on purpose).
func (l *Layer) OnAcks(ids []uint32) {
	for _, id := range ids {
		if l.sndLen == 0 {
			return
		}
		d := id - l.at(0).id
		if d >= uint32(min(l.sndLen, SendWindow)) {
			continue
		}
		m := l.at(int(d))
		if !m.sent || m.acked {
			continue
		}
		m.acked = true
		l.unacked--
		for j := 0; j < int(d); j++ {
			if e := l.at(j); e.sent && !e.acked {
				e.laterAck++
			}
		}
		// Slide the window past the acknowledged prefix.
		for l.sndLen > 0 && l.at(0).acked {
			l.sndHead = (l.sndHead + 1) % sendRing
			l.sndLen--
		}
	}
}

// Receive takes message id with payload (copied). It returns false when id
// lies at or beyond the oldest unread id + ReceiveWindow: such a message is
// dropped and not acknowledged. Duplicates (ids below the window or already
// buffered) are not stored but are acknowledged again, which is how lost
// ACKs heal. Accepted messages are acknowledged.
func (l *Layer) Receive(id uint32, payload []byte) bool {
	d := id - l.readID
	if d >= 1<<31 { // below the window: already delivered
		l.owe(id)
		return true
	}
	if d >= ReceiveWindow {
		return false
	}
	s := &l.rcv[(l.rcvHead+int(d))%ReceiveWindow]
	if !s.present {
		s.present = true
		s.buf = append(s.buf[:0], payload...)
	}
	l.owe(id)
	return true
}

func (l *Layer) owe(id uint32) {
	for _, p := range l.pending[:l.nPending] {
		if p == id {
			return
		}
	}
	if l.nPending < pendingCap {
		l.pending[l.nPending] = id
		l.nPending++
	}
}

// Read returns the next in-order payload, if any. The slice is owned by
// the Layer and stays valid until the next call to Receive.
func (l *Layer) Read() ([]byte, bool) {
	s := &l.rcv[l.rcvHead]
	if !s.present {
		return nil, false
	}
	s.present = false
	l.rcvHead = (l.rcvHead + 1) % ReceiveWindow
	l.readID++
	return s.buf, true
}

// TakeAcks returns up to max (at most MaxAcksAck) ids to acknowledge now:
// first the pending ones, oldest first (they have waited longest), then, to
// fill up, the most recently acknowledged ids (an MRU of 8, like OpenVPN
// 2.6) so that a lost ACK heals without a retransmission. The returned
// pending ids are no longer pending. It fills from the MRU even when
// nothing is pending, which suits piggybacking; use HasPendingAcks to
// decide whether a dedicated P_ACK_V1 is owed. The returned slice is
// reused by the next call to TakeAcks.
func (l *Layer) TakeAcks(max int) []uint32 {
	max = min(max, MaxAcksAck)
	if max <= 0 {
		return nil
	}
	n := min(max, l.nPending)
	out := l.acks[:0]
	out = append(out, l.pending[:n]...)
	copy(l.pending[:], l.pending[n:l.nPending])
	l.nPending -= n
	for _, id := range l.mru[:l.nMRU] {
		if len(out) >= max {
			break
		}
		if !contains(out[:n], id) {
			out = append(out, id)
		}
	}
	// Move the ids just acknowledged to the front of the MRU, the newest
	// (last taken) first.
	for _, id := range out[:n] {
		l.touchMRU(id)
	}
	return out
}

func (l *Layer) touchMRU(id uint32) {
	i := 0
	for i < l.nMRU && l.mru[i] != id {
		i++
	}
	if i == l.nMRU { // absent: grow, or let the oldest fall off
		if l.nMRU < mruSize {
			l.nMRU++
		} else {
			i = mruSize - 1
		}
	}
	copy(l.mru[1:i+1], l.mru[:i])
	l.mru[0] = id
}

func contains(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// HasPendingAcks reports whether a fresh ACK is owed.
func (l *Layer) HasPendingAcks() bool { return l.nPending > 0 }

// NextDeadline is the earliest time Due has something to do: a past time
// (the Unix epoch) when a message can be sent at once, the earliest
// retransmit deadline otherwise, or the zero time when nothing is in
// flight or queued.
func (l *Layer) NextDeadline() time.Time {
	var next time.Time
	for i := 0; i < l.sndLen && i < SendWindow; i++ {
		m := l.at(i)
		switch {
		case m.acked:
		case !m.sent || m.laterAck >= fastRetransmitAcks:
			return immediate
		case next.IsZero() || m.deadline.Before(next):
			next = m.deadline
		}
	}
	return next
}

// Release frees the send ring and the buffers of the receive window when
// nothing is in flight, queued or waiting to be read; otherwise it does
// nothing. The Layer stays usable: the next Send or Receive allocates
// again. Calling it once a handshake has settled keeps an idle key state
// from holding the handshake's messages (kilobytes of certificates) for
// the life of its key.
func (l *Layer) Release() {
	if l.sndLen != 0 {
		return
	}
	l.snd = nil
	for i := range l.rcv {
		if !l.rcv[i].present {
			l.rcv[i].buf = nil
		}
	}
}

// Buffered reports whether the Layer holds its send ring or a receive
// buffer, that is whether Release would have anything to free.
func (l *Layer) Buffered() bool {
	if l.snd != nil {
		return true
	}
	for i := range l.rcv {
		if l.rcv[i].buf != nil {
			return true
		}
	}
	return false
}

// Unacked is the number of sent, unacknowledged messages.
func (l *Layer) Unacked() int { return l.unacked }

// Queued is the number of messages not yet sent (waiting for the window or
// for the next Due).
func (l *Layer) Queued() int { return l.queued }
