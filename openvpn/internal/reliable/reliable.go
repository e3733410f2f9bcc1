package reliable

import (
	"errors"
	"time"
)

// Window sizes and ACK limits of OpenVPN 2.6.
const (
	// SendWindow is the most unacknowledged messages in flight.
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
	// mruSize is how many recently acknowledged ids are repeated to heal
	// lost ACKs, as OpenVPN 2.6 does.
	mruSize = 8
	// fastRetransmitAcks is how many ACKs for later ids trigger an early
	// retransmission.
	fastRetransmitAcks = 3
)

// ErrQueueFull is returned by Send when MaxQueued messages already wait.
var ErrQueueFull = errors.New("reliable: send queue full")

// Config sets a Layer's timing and first message ids. The zero value is the
// OpenVPN default.
type Config struct {
	// InitialTimeout is the first retransmit timeout; 0 means 2 s
	// (--tls-timeout).
	InitialTimeout time.Duration
	// MaxTimeout caps the backoff; 0 means 60 s.
	MaxTimeout time.Duration
	// FirstSendID and FirstRecvID are the first message ids; they are 1
	// when the hard resets (message 0) were exchanged statelessly.
	FirstSendID uint32
	FirstRecvID uint32
}

// Outgoing is a message to transmit now.
type Outgoing struct {
	ID         uint32
	Payload    []byte
	Retransmit bool
}

type sendMsg struct {
	id       uint32
	payload  []byte
	sent     bool
	acked    bool
	deadline time.Time
	timeout  time.Duration
	laterAck int // ACKs for higher ids seen since the last transmission
}

type recvMsg struct {
	payload []byte
	present bool
}

// Layer is the reliability state of one key state.
type Layer struct {
	cfg Config
	// send side: messages from lowest unacked id, in id order; the first
	// len(inflight) may have been sent.
	send   []*sendMsg
	nextID uint32
	// receive side
	expect  uint32
	recv    [ReceiveWindow]recvMsg // recv[k] holds message expect+k
	ready   [][]byte
	pending []uint32 // ids owed an ACK, oldest first
	mru     []uint32 // recently acknowledged ids, newest first
}

// New returns a Layer.
func New(cfg Config) *Layer {
	if cfg.InitialTimeout <= 0 {
		cfg.InitialTimeout = 2 * time.Second
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 60 * time.Second
	}
	return &Layer{cfg: cfg, nextID: cfg.FirstSendID, expect: cfg.FirstRecvID}
}

// Send queues a copy of payload as the next message.
func (l *Layer) Send(payload []byte) error {
	if l.Queued() >= MaxQueued {
		return ErrQueueFull
	}
	p := append([]byte(nil), payload...)
	l.send = append(l.send, &sendMsg{id: l.nextID, payload: p})
	l.nextID++
	return nil
}

// inWindow reports whether send[i] may be transmitted: its id is within
// SendWindow of the lowest unacknowledged id.
func (l *Layer) inWindow(i int) bool {
	if len(l.send) == 0 {
		return false
	}
	return l.send[i].id-l.send[0].id < SendWindow
}

// Due returns the messages to transmit at now and records their
// transmission.
func (l *Layer) Due(now time.Time) []Outgoing {
	var out []Outgoing
	for i, m := range l.send {
		if !l.inWindow(i) {
			break
		}
		if m.acked {
			continue
		}
		switch {
		case !m.sent:
			m.sent = true
			m.timeout = l.cfg.InitialTimeout
			m.deadline = now.Add(m.timeout)
			out = append(out, Outgoing{ID: m.id, Payload: m.payload})
		case !now.Before(m.deadline) || m.laterAck >= fastRetransmitAcks:
			if m.laterAck < fastRetransmitAcks {
				m.timeout = min(2*m.timeout, l.cfg.MaxTimeout)
			}
			m.laterAck = 0
			m.deadline = now.Add(m.timeout)
			out = append(out, Outgoing{ID: m.id, Payload: m.payload, Retransmit: true})
		}
	}
	return out
}

// OnAcks removes acknowledged messages; unknown ids are ignored.
func (l *Layer) OnAcks(ids []uint32) {
	for _, id := range ids {
		for i, m := range l.send {
			if m.id == id && m.sent && !m.acked {
				m.acked = true
				for _, earlier := range l.send[:i] {
					if earlier.sent && !earlier.acked {
						earlier.laterAck++
					}
				}
				break
			}
		}
	}
	// Drop the acknowledged prefix so that the window slides.
	n := 0
	for n < len(l.send) && l.send[n].acked {
		l.send[n] = nil
		n++
	}
	l.send = l.send[n:]
}

// Receive takes message id with payload. It returns false when id lies
// beyond the receive window: such a message is dropped and not
// acknowledged. Duplicates are not stored but are acknowledged again.
func (l *Layer) Receive(id uint32, payload []byte) bool {
	d := id - l.expect
	if d >= 1<<31 { // below the window: an old duplicate
		l.owe(id)
		return true
	}
	if d >= ReceiveWindow {
		return false
	}
	slot := &l.recv[d]
	if !slot.present {
		slot.present = true
		slot.payload = append([]byte(nil), payload...)
	}
	l.owe(id)
	// Release the contiguous run starting at expect.
	for l.recv[0].present {
		l.ready = append(l.ready, l.recv[0].payload)
		copy(l.recv[:], l.recv[1:])
		l.recv[ReceiveWindow-1] = recvMsg{}
		l.expect++
	}
	return true
}

func (l *Layer) owe(id uint32) {
	for _, p := range l.pending {
		if p == id {
			return
		}
	}
	l.pending = append(l.pending, id)
}

// Read returns the next in-order payload, if any.
func (l *Layer) Read() ([]byte, bool) {
	if len(l.ready) == 0 {
		return nil, false
	}
	p := l.ready[0]
	l.ready[0] = nil
	l.ready = l.ready[1:]
	if len(l.ready) == 0 {
		l.ready = nil
	}
	return p, true
}

// TakeAcks returns up to max ids to acknowledge now: the pending ones,
// oldest first, then recently acknowledged ids to fill up (so that a lost
// ACK heals without waiting for a retransmission). Returned pending ids are
// no longer pending.
func (l *Layer) TakeAcks(max int) []uint32 {
	if len(l.pending) == 0 {
		return nil
	}
	n := min(max, len(l.pending))
	out := make([]uint32, 0, max)
	out = append(out, l.pending[:n]...)
	l.pending = append(l.pending[:0], l.pending[n:]...)
	for _, id := range l.mru {
		if len(out) >= max {
			break
		}
		dup := false
		for _, o := range out {
			if o == id {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, id)
		}
	}
	// Remember what was acknowledged, newest first.
	for i := n - 1; i >= 0; i-- {
		id := out[i]
		mru := []uint32{id}
		for _, m := range l.mru {
			if m != id && len(mru) < mruSize {
				mru = append(mru, m)
			}
		}
		l.mru = mru
	}
	return out
}

// HasPendingAcks reports whether an ACK is owed.
func (l *Layer) HasPendingAcks() bool { return len(l.pending) > 0 }

// NextDeadline is the earliest time Due has work: now-ish when unsent
// messages fit the window, the earliest retransmit otherwise, or the zero
// time when nothing is in flight.
func (l *Layer) NextDeadline() time.Time {
	var next time.Time
	for i, m := range l.send {
		if !l.inWindow(i) {
			break
		}
		if m.acked {
			continue
		}
		d := m.deadline
		if !m.sent {
			return time.Unix(0, 1) // due at once
		}
		if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	return next
}

// Unacked is the number of sent, unacknowledged messages.
func (l *Layer) Unacked() int {
	n := 0
	for _, m := range l.send {
		if m.sent && !m.acked {
			n++
		}
	}
	return n
}

// Queued is the number of messages not yet sent.
func (l *Layer) Queued() int {
	n := 0
	for _, m := range l.send {
		if !m.sent {
			n++
		}
	}
	return n
}
