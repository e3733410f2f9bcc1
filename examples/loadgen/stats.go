package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/openvpn"
)

// recorder collects the outcome of the handshakes of one phase. It is
// safe for concurrent use by the dialing workers and the progress line.
type recorder struct {
	mu       sync.Mutex
	latency  []time.Duration
	failures map[string]int
	started  time.Time
	ended    time.Time
}

func newRecorder(start time.Time) *recorder {
	return &recorder{failures: map[string]int{}, started: start}
}

func (r *recorder) success(d time.Duration) {
	r.mu.Lock()
	r.latency = append(r.latency, d)
	r.mu.Unlock()
}

func (r *recorder) failure(cause string) {
	r.mu.Lock()
	r.failures[cause]++
	r.mu.Unlock()
}

func (r *recorder) finish(now time.Time) {
	r.mu.Lock()
	r.ended = now
	r.mu.Unlock()
}

// counts returns the tunnels up and the failures so far.
func (r *recorder) counts() (up, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.failures {
		failed += n
	}
	return len(r.latency), failed
}

// Summary is what one phase (the OpenVPN or the IPsec handshakes)
// measured.
type Summary struct {
	Kind      string `json:"kind"`
	Attempted int    `json:"attempted"`
	Up        int    `json:"up"`
	Failed    int    `json:"failed"`
	// Seconds is the wall time of the phase; PerSecond the handshakes
	// that succeeded per second of it.
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	// Latency percentiles of the successful handshakes, from the first
	// packet to the tunnel being usable, in milliseconds.
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	// Failures counts the failed handshakes by cause.
	Failures map[string]int `json:"failures,omitempty"`
}

// summary computes the phase's numbers at now (or at its end, if it
// ended).
func (r *recorder) summary(kind string, attempted int, now time.Time) Summary {
	r.mu.Lock()
	lat := slices.Clone(r.latency)
	fails := make(map[string]int, len(r.failures))
	failed := 0
	for k, v := range r.failures {
		fails[k] = v
		failed += v
	}
	end := r.ended
	r.mu.Unlock()
	if end.IsZero() {
		end = now
	}
	slices.Sort(lat)
	s := Summary{Kind: kind, Attempted: attempted, Up: len(lat), Failed: failed, Failures: fails,
		Seconds: end.Sub(r.started).Seconds()}
	if s.Seconds > 0 {
		s.PerSecond = float64(s.Up) / s.Seconds
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	s.P50, s.P90, s.P99 = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
	if len(lat) > 0 {
		s.Max = ms(lat[len(lat)-1])
	}
	return s
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted:
// the smallest value that at least p % of the values do not exceed. It
// is a measured value, never an interpolation, so that a p99 of 100
// handshakes is the slowest but one; 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// String is the summary as the report prints it.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d of %d up, %d failed in %.1f s: %.1f handshakes/s; latency p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms",
		s.Kind, s.Up, s.Attempted, s.Failed, s.Seconds, s.PerSecond, s.P50, s.P90, s.P99, s.Max)
	keys := make([]string, 0, len(s.Failures))
	for k := range s.Failures {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return s.Failures[b] - s.Failures[a] })
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %6d  %s", s.Failures[k], k)
	}
	return b.String()
}

// cause names why a handshake failed or a tunnel ended, coarsely enough
// that thousands of failures group into a few lines: the sentinel errors
// of the transports, timeouts, the network errors a server's state shows
// in (refused, unreachable), else the error's text without the addresses
// and numbers that make every instance distinct.
func cause(err error) string {
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, openvpn.ErrAuthFailed):
		return "openvpn: authentication failed"
	case errors.Is(err, openvpn.ErrHandshakeTimeout):
		return "openvpn: key negotiation timeout"
	case errors.Is(err, openvpn.ErrPingTimeout):
		return "openvpn: ping timeout"
	case errors.Is(err, openvpn.ErrPeerExit):
		return "openvpn: server exited"
	case errors.Is(err, openvpn.ErrNoSharedCipher):
		return "openvpn: no shared cipher"
	case errors.Is(err, ipsec.ErrAuthentication):
		return "ipsec: authentication failed"
	case errors.Is(err, ipsec.ErrNoProposal):
		return "ipsec: no proposal"
	case errors.Is(err, ipsec.ErrRefused):
		return "ipsec: refused"
	case errors.Is(err, ipsec.ErrDeadPeer):
		return "ipsec: dead peer"
	case errors.Is(err, ipsec.ErrDeleted):
		return "ipsec: deleted by the server"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "out of file descriptors"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return generic(err.Error())
}

// generic strips digits (ports, addresses, counts) from an error text and
// bounds its length.
func generic(s string) string {
	var b strings.Builder
	digits := false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) > 120 {
		out = out[:120] + "..."
	}
	return out
}
