package openvpn

import (
	"fmt"
	"sync"
	"time"
)

// ConnectFreq bounds how many resets from new UDP clients the server
// answers per time window (the connect-freq-initial directive of OpenVPN
// 2.6). A UDP server answers a client's first packet before it knows
// whether the source address is real: the answer is larger than the
// packet, so without a bound anyone could aim the server's answers at a
// third party by forging its address (a reflector), at the rate the
// server can compute them. With the bound, at most Max answers leave per
// window, whatever the number of forged resets; resets beyond it are
// dropped without an answer and counted in ServerStats.DroppedConnectFreq.
// Real clients whose reset was dropped send it again after their
// retransmit timeout (2 s for stock clients), so a flood slows new
// clients down but never touches established sessions, which are not
// counted at all: neither their packets nor the later steps of a
// handshake whose reset was answered.
//
// The zero value is stock OpenVPN's default, 100 answers per 10 seconds.
type ConnectFreq struct {
	// Max is the number of answers per window. Zero: 100. Negative: no
	// bound (for a load test, or a server behind a filter that already
	// drops forged sources).
	Max int
	// Per is the window's length; a window starts with the first reset
	// counted after the previous one ended. Zero: 10 s. Negative is an
	// error.
	Per time.Duration
}

// Stock OpenVPN 2.6's connect-freq-initial default.
const (
	defaultConnectFreqMax = 100
	defaultConnectFreqPer = 10 * time.Second
)

// freqLimiter counts events in fixed windows: a window opens at the first
// event after the previous window ended and admits max events. It is only
// consulted for resets from unknown clients, never on the data path, so a
// mutex costs nothing that matters; several UDP sockets of one server
// share it, which a mutex keeps exact.
type freqLimiter struct {
	max int // negative: unbounded
	per time.Duration

	mu    sync.Mutex
	start time.Time // of the current window; zero before the first event
	used  int
}

func newFreqLimiter(c ConnectFreq) (*freqLimiter, error) {
	if c.Per < 0 {
		return nil, fmt.Errorf("%w: ConnectFreqInitial.Per must not be negative", ErrConfig)
	}
	l := &freqLimiter{max: c.Max, per: c.Per}
	if l.max == 0 {
		l.max = defaultConnectFreqMax
	}
	if l.per == 0 {
		l.per = defaultConnectFreqPer
	}
	return l, nil
}

// expired reports whether the window has ended at now. A clock that went
// back (a test clock, a wall-clock step) also ends it, so that a window
// never stays shut for longer than per.
func (l *freqLimiter) expired(now time.Time) bool {
	return l.start.IsZero() || !now.Before(l.start.Add(l.per)) || now.Before(l.start)
}

// full reports, without taking anything, whether an event at now would be
// refused. The reset path asks it before it decodes a packet, so that a
// flood beyond the bound costs no allocation and no cryptography.
func (l *freqLimiter) full(now time.Time) bool {
	if l.max < 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.expired(now) && l.used >= l.max
}

// allow takes one event at now and reports whether it is within the bound.
func (l *freqLimiter) allow(now time.Time) bool {
	if l.max < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.expired(now) {
		l.start, l.used = now, 0
	}
	if l.used >= l.max {
		return false
	}
	l.used++
	return true
}
