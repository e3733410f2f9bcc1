package api

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// ProfileLimit bounds the client profiles a user exports for itself (POST
// /api/v1/profile, which needs no right beyond connect-vpn). Each export
// issues a new certificate in the user's name, valid for a year: the CA
// and the store keep every one, and each one revoked is listed in every
// CRL until it expires. Without a bound, one VPN user's loop would grow
// them without end, and a stolen session token would be worth any number
// of long-lived certificates.
//
// A user may export Count profiles within any Window (sliding); the next
// is answered 429 with Retry-After saying when one becomes possible.
// Refused and failed exports do not count. The count is kept in memory,
// for at most 16384 users (the least recently active dropped first): a
// restart of the broker starts it afresh. Administrators exporting the
// profiles of others (exportProfile, with manage-certificates) are not
// limited, and an administrator can always issue more.
//
// Earlier certificates stay valid: a user with a laptop and a tablet
// needs two, and revoking the one in use would drop its live tunnel.
type ProfileLimit struct {
	// Count of profiles a user may export for itself within Window; zero
	// means 5.
	Count int
	// Window over which they are counted; zero means 24 hours.
	Window time.Duration
}

func (c ProfileLimit) withDefaults() ProfileLimit {
	if c.Count == 0 {
		c.Count = 5
	}
	if c.Window == 0 {
		c.Window = 24 * time.Hour
	}
	return c
}

// profileLimiter counts the self-service exports per user name.
type profileLimiter struct {
	cfg ProfileLimit
	mu  sync.Mutex
	// times are the exports of each name within the window, oldest first.
	times *table[string, []time.Time]
}

func newProfileLimiter(cfg ProfileLimit) *profileLimiter {
	return &profileLimiter{cfg: cfg.withDefaults(), times: newTable[string, []time.Time](maxTracked)}
}

// take counts an export for name at now if the limit allows it, and
// returns a function that gives it back (for an export that then fails);
// otherwise it returns how long until one is allowed.
func (p *profileLimiter) take(name string, now time.Time) (giveBack func(), wait time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.times.get(name)
	if ts == nil {
		ts = p.times.put(name, nil)
	}
	p.times.touch(name)
	kept := (*ts)[:0]
	for _, t := range *ts {
		if now.Sub(t) < p.cfg.Window {
			kept = append(kept, t)
		}
	}
	*ts = kept
	if len(kept) >= p.cfg.Count {
		return nil, kept[0].Add(p.cfg.Window).Sub(now)
	}
	*ts = append(kept, now)
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if ts := p.times.get(name); ts != nil {
			for i, t := range *ts {
				if t.Equal(now) {
					*ts = append((*ts)[:i], (*ts)[i+1:]...)
					break
				}
			}
		}
	}, 0
}

// takeOwnProfile counts a self-service export by name, or answers 429
// and returns nil.
func (s *Server) takeOwnProfile(w http.ResponseWriter, name string) (giveBack func()) {
	now := s.now()
	giveBack, wait := s.profiles.take(name, now)
	if giveBack == nil {
		l := s.profiles.cfg
		tooMany(w, wait, fmt.Sprintf("%q exported %d profiles in the last %s, the most a user may export itself; the next is possible at %s, or ask an administrator",
			name, l.Count, l.Window, now.Add(wait).UTC().Format(time.RFC3339)))
	}
	return giveBack
}
