package ipsec

import (
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// Our own requests (dead peer checks, deletes, child SA rekeys) go out one
// at a time: the message-ID window is 1 (RFC 7296 §2.3), and requests
// made while one is outstanding wait in a queue. strongSwan and the IKEv2
// clients of Windows, macOS, iOS and Android announce no larger window
// (no SET_WINDOW_SIZE notify), so a larger one would never be used, and
// with one request in flight the order of our requests is the order in
// which the peer sees them (a Delete of the IKE SA comes after a rekey
// that it must not overtake).
//
// Every request is retransmitted the same way, Delete included: after
// RetransmitTimeout, then 1.8 times longer each time, RetransmitTries
// sends in all. A peer that answers none of them is dead; an IKE SA that
// was being deleted is then simply forgotten.

// request is one request of ours.
type request struct {
	exchange message.ExchangeType
	payloads []message.Payload
	msg      [][]byte // sealed, once sent
	sent     time.Time
	wait     time.Duration
	try      int
	// answered takes the decrypted answer; the link's lock is held. Nil:
	// nothing to do but to count the peer alive.
	answered func(ps []message.Payload)
}

// enqueue sends a request of ours, or queues it behind the outstanding
// one; the link's lock is held.
func (sa *ikeSA) enqueue(exchange message.ExchangeType, ps []message.Payload, answered func([]message.Payload)) {
	sa.queue = append(sa.queue, &request{exchange: exchange, payloads: ps, answered: answered})
	sa.sendNext()
}

// sendNext sends the first queued request when none is outstanding.
func (sa *ikeSA) sendNext() {
	for sa.pending == nil && len(sa.queue) > 0 && !sa.closed {
		r := sa.queue[0]
		sa.queue[0] = nil
		sa.queue = sa.queue[1:]
		msg, err := sa.seal(r.exchange, false, sa.myMID, r.payloads)
		if err != nil {
			sa.cfg.log.Error("IKE request", "exchange", r.exchange, "error", err)
			continue
		}
		r.msg, r.sent, r.wait, r.try = msg, sa.cfg.now(), sa.cfg.retransmitTimeout, 1
		sa.pending = r
		sa.send(msg)
	}
}

// handleResponse takes the answer to our outstanding request.
func (sa *ikeSA) handleResponse(msg []byte, h message.Header) {
	if sa.pending == nil || h.MessageID != sa.myMID {
		return
	}
	inner, ok := sa.open(msg, &sa.respFrags)
	if !ok {
		return
	}
	r := sa.pending
	sa.pending = nil
	sa.myMID++
	sa.link.lastInbound.Store(sa.cfg.now().UnixNano())
	if r.answered != nil {
		r.answered(inner)
	}
	sa.sendNext()
}

// retransmit sends the outstanding request again when its time has come;
// it reports false when the tries are used up. The link's lock is held.
func (sa *ikeSA) retransmit(now time.Time) bool {
	r := sa.pending
	if r == nil || now.Sub(r.sent) < r.wait {
		return true
	}
	if r.try >= sa.cfg.retransmitTries {
		return false
	}
	r.try++
	r.sent = now
	r.wait = r.wait * 18 / 10
	sa.send(r.msg)
	return true
}

// tick runs retransmissions, dead peer detection and the expiry of
// rekeyed child SAs; the link's lock is held.
func (sa *ikeSA) tick(now time.Time) {
	if sa.closed || !sa.established {
		return
	}
	sa.expireChildren(now)
	if !sa.retransmit(now) {
		switch {
		case sa.deleting || sa.rekeyedTo != nil:
			// Our Delete went unanswered, or the old SA of a rekey: the
			// tunnel has ended or lives on elsewhere.
			sa.goneLocked()
		default:
			sa.cfg.log.Info("peer not responding", "remote", sa.link.ep.Load().remote)
			sa.closeLocked(ErrDeadPeer, false)
		}
		return
	}
	if sa.pending == nil && !sa.deleting && sa.rekeyedTo == nil && sa.cfg.dpd > 0 &&
		now.Sub(time.Unix(0, sa.link.lastInbound.Load())) > sa.cfg.dpd {
		sa.enqueue(message.Informational, nil, nil)
	}
	sa.rekeyTick(now)
}
