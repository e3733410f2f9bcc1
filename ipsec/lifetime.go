package ipsec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrExpired: an IKE SA reached its hard lifetime (Lifetime.OverTime
// after its rekey time) without a successful rekey, and was deleted.
var ErrExpired = errors.New("ipsec: lifetime expired without a rekey")

// Lifetime says when we rekey an SA ourselves, as strongSwan's
// rekey_time, over_time, rand_time and rekey_packets do. The peer may
// rekey earlier; we answer its rekeys whatever this says.
type Lifetime struct {
	// RekeyTime is the SA's age at which we start a rekey. Zero: 4 h
	// for an IKE SA, 1 h for a child SA (strongSwan's defaults).
	// Negative: we never rekey by time nor delete at a hard limit (the
	// peer's rekeys keep the keys fresh, or nothing does); for a child
	// SA, RekeyPackets still applies, so that the sequence number does
	// not run out.
	RekeyTime time.Duration
	// OverTime is how long after RekeyTime an SA whose rekey did not
	// succeed lives on: then it is deleted (an IKE SA ends the tunnel
	// with ErrExpired). Zero: 10 % of RekeyTime. Negative: no hard
	// limit.
	OverTime time.Duration
	// RandTime spreads rekeys, so that many SAs set up at once, or both
	// peers of one, do not rekey at the same moment: the rekey starts a
	// random time up to RandTime before RekeyTime. Zero: OverTime.
	// Negative: no jitter.
	RandTime time.Duration
	// RekeyPackets (child SAs only) is the number of packets sent on a
	// child SA after which we rekey it, whatever its age: a 32-bit ESP
	// sequence number runs out after 2^32-1 packets (RFC 4303 §3.3.3), at
	// 10 Gbit/s of small packets in under an hour. Zero: 2^32 - 2^24
	// without extended sequence numbers, never with them.
	RekeyPackets uint64
}

// Default lifetimes (strongSwan's).
const (
	defaultIKERekey   = 4 * time.Hour
	defaultChildRekey = time.Hour
	// defaultRekeyPackets leaves 2^24 packets, seconds even at line rate,
	// for the rekey to complete before the sequence number runs out.
	defaultRekeyPackets = 1<<32 - 1<<24
)

// lifetime is a Lifetime with its defaults applied.
type lifetime struct {
	rekey, over, rand time.Duration // rekey <0: no rekey by time; over, rand <0: none
	packets           uint64        // 0: the default for the child's sequence numbers
}

func newLifetime(l Lifetime, rekey time.Duration) lifetime {
	out := lifetime{rekey: l.RekeyTime, over: l.OverTime, rand: l.RandTime, packets: l.RekeyPackets}
	if out.rekey == 0 {
		out.rekey = rekey
	}
	if out.over == 0 {
		out.over = out.rekey / 10
	}
	if out.rand == 0 {
		out.rand = out.over
	}
	return out
}

// schedule returns when an SA created at created is to be rekeyed and
// when it expires (zero: never).
func (l lifetime) schedule(c *saConfig, created time.Time) (rekeyAt, expireAt time.Time) {
	if l.rekey < 0 {
		return time.Time{}, time.Time{}
	}
	rekeyAt = created.Add(l.rekey)
	if l.rand > 0 {
		var b [8]byte
		if r, err := c.random(8); err == nil {
			copy(b[:], r)
		}
		rekeyAt = rekeyAt.Add(-time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(l.rand)))
	}
	if l.over >= 0 {
		expireAt = created.Add(l.rekey + l.over)
	}
	return rekeyAt, expireAt
}

// packetLimit is the number of packets sent after which a child SA is
// rekeyed; 0: never.
func (l lifetime) packetLimit(esn bool) uint64 {
	switch {
	case l.packets != 0:
		return l.packets
	case esn:
		return 0
	}
	return defaultRekeyPackets
}

// checkLifetimes rejects what cannot work: a hard limit without a time
// to rekey before it.
func checkLifetimes(ike, child Lifetime) error {
	for _, l := range []Lifetime{ike, child} {
		if l.RekeyTime < 0 && l.OverTime > 0 {
			return fmt.Errorf("%w: a Lifetime with OverTime but no RekeyTime", ErrConfig)
		}
	}
	return nil
}
