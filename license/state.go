package license

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BaseParticipants is the capacity of the base license every installation
// has without any license file.
const BaseParticipants = 4

// An Entry is a license activated on an installation, as State keeps it and
// the embedding product stores it.
type Entry struct {
	// License is the activated license.
	License License
	// File is the license file as activated.
	File []byte
	// Activated is when the license was activated.
	Activated time.Time
	// Released is when the license was released; zero if it was not. A
	// released license does not count.
	Released time.Time
	// Revoked is when the license was revoked; zero if it was not. A
	// revoked license does not count.
	Revoked time.Time
}

func (e *Entry) clone() Entry {
	c := *e
	c.File = bytes.Clone(e.File)
	return c
}

// Event kinds.
const (
	// EventActivated: a license was activated.
	EventActivated = "activated"
	// EventReleased: a license was released.
	EventReleased = "released"
	// EventExpiredGrace: a license expired and is in its grace period; it
	// still counts. There is no such event when the grace period is zero.
	EventExpiredGrace = "expired-grace"
	// EventLapsed: a license's grace period ended (or it expired, with no
	// grace period); it no longer counts.
	EventLapsed = "lapsed"
	// EventRevoked: a license was revoked; it no longer counts.
	EventRevoked = "revoked"
)

// An Event is a change of a license's state, for the embedding product's
// log.
type Event struct {
	// Number is the license number.
	Number string
	// Kind is one of EventActivated, EventReleased, EventExpiredGrace,
	// EventLapsed and EventRevoked.
	Kind string
	// At is when the change happened.
	At time.Time
}

// State is the set of licenses activated on one installation, by number,
// and the capacity they give. It is safe for concurrent use.
//
// State keeps its entries in memory; the embedding product persists
// Entries after every change and calls Restore at start.
type State struct {
	v            *Verifier
	installation string
	grace        time.Duration

	mu      sync.Mutex
	entries []*Entry // in activation order
}

// NewState returns an empty State for the installation with the given
// installation ID. Licenses are verified with v. An expired license keeps
// counting for the grace period after its expiry; a negative grace is
// taken as zero.
func NewState(v *Verifier, installation string, grace time.Duration) *State {
	return &State{v: v, installation: installation, grace: max(grace, 0)}
}

// Installation returns the installation ID the State was made for.
func (s *State) Installation() string { return s.installation }

// find returns the entry for number, or nil. s.mu must be held.
func (s *State) find(number string) *Entry {
	for _, e := range s.entries {
		if e.License.Number == number {
			return e
		}
	}
	return nil
}

// check verifies a license file for this installation.
func (s *State) check(file []byte) (*License, error) {
	l, err := s.v.Verify(file)
	if err != nil {
		return nil, err
	}
	if l.Installation != "" && l.Installation != s.installation {
		return nil, fmt.Errorf("%w: license %s is bound to installation %s, this is %s", ErrOtherInstallation, l.Number, l.Installation, s.installation)
	}
	return l, nil
}

// Activate verifies a license file and activates it at time now; it counts
// from then on. Activate refuses a file that does not verify (ErrFormat,
// ErrUnknownKey, ErrSignature, ErrProduct), a license bound to another
// installation (ErrOtherInstallation), a number that is already activated
// (ErrDuplicate), was released on this installation (ErrReleased) or
// revoked (ErrRevoked), and a license that has expired at now (ErrExpired).
//
// A renewal therefore needs a new license number.
func (s *State) Activate(file []byte, now time.Time) (*License, error) {
	l, err := s.check(file)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.find(l.Number); e != nil {
		switch {
		case !e.Released.IsZero():
			return nil, fmt.Errorf("%w: license %s was released at %s", ErrReleased, l.Number, e.Released.UTC().Format(time.RFC3339))
		case !e.Revoked.IsZero():
			return nil, fmt.Errorf("%w: license %s was revoked at %s", ErrRevoked, l.Number, e.Revoked.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%w: license %s", ErrDuplicate, l.Number)
	}
	if !l.Expires.IsZero() && !now.Before(l.Expires) {
		return nil, fmt.Errorf("%w: license %s expired on %s", ErrExpired, l.Number, l.Expires.Format(dateLayout))
	}
	s.entries = append(s.entries, &Entry{License: *l, File: bytes.Clone(file), Activated: now})
	c := *l
	return &c, nil
}

// Release releases the activated license number at time now: it stops
// counting at once and cannot be activated again on this installation.
// Release returns the release statement, signed with installationKey, that
// the vendor needs to re-issue the license for another installation.
//
// Release fails with ErrNotActivated for an unknown number and ErrReleased
// for a license released before. A revoked license may be released.
func (s *State) Release(number string, installationKey ed25519.PrivateKey, now time.Time) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.find(number)
	if e == nil {
		return nil, fmt.Errorf("%w: license %q", ErrNotActivated, number)
	}
	if !e.Released.IsZero() {
		return nil, fmt.Errorf("%w: license %s was released at %s", ErrReleased, number, e.Released.UTC().Format(time.RFC3339))
	}
	at := now.UTC().Truncate(time.Second)
	stmt, err := IssueRelease(installationKey, number, s.installation, at)
	if err != nil {
		return nil, err
	}
	e.Released = at
	return stmt, nil
}

// Revoke revokes the activated license number at time now, for example
// because the vendor's revocation list names it: it stops counting at once
// (there is no grace period) and cannot be activated again on this
// installation. Revoking a revoked license is a no-op. Revoke fails with
// ErrNotActivated for an unknown number.
func (s *State) Revoke(number string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.find(number)
	if e == nil {
		return fmt.Errorf("%w: license %q", ErrNotActivated, number)
	}
	if e.Revoked.IsZero() {
		e.Revoked = now
	}
	return nil
}

// Capacity is the number of participants an installation may hold, and
// the licenses it comes from.
type Capacity struct {
	// Participants is BaseParticipants plus the participants of the
	// licenses in Counting.
	Participants int
	// Counting are the licenses that count, in activation order, including
	// those in InGrace.
	Counting []License
	// InGrace are the licenses in Counting that have expired but are still
	// within the grace period.
	InGrace []License
	// Lapsed are the activated licenses that no longer count: expired past
	// the grace period, or revoked. Released licenses are not listed.
	Lapsed []License
}

// Capacity returns the capacity at time now. A license with expiry E counts
// while now < E, counts and is in grace while E <= now < E+grace, and has
// lapsed from E+grace on. Released and revoked licenses do not count,
// whatever now is.
func (s *State) Capacity(now time.Time) Capacity {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Capacity{Participants: BaseParticipants}
	for _, e := range s.entries {
		l := e.License
		switch {
		case !e.Released.IsZero():
		case !e.Revoked.IsZero():
			c.Lapsed = append(c.Lapsed, l)
		case l.Expires.IsZero() || now.Before(l.Expires):
			c.Counting = append(c.Counting, l)
			c.Participants += l.Participants
		case now.Before(l.Expires.Add(s.grace)):
			c.Counting = append(c.Counting, l)
			c.InGrace = append(c.InGrace, l)
			c.Participants += l.Participants
		default:
			c.Lapsed = append(c.Lapsed, l)
		}
	}
	return c
}

// String describes the capacity for messages and logs, e.g.
//
//	1348 participants: base 4 + RG-1 (+64) + RG-2 (+256) + RG-3 (+1024)
//
// Licenses in grace are marked "(+64, expired 2027-11-23, in grace)";
// licenses that no longer count follow as "; not counting: RG-4 (+64)".
func (c Capacity) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(c.Participants))
	b.WriteString(" participants: base ")
	b.WriteString(strconv.Itoa(BaseParticipants))
	for _, l := range c.Counting {
		fmt.Fprintf(&b, " + %s (+%d", l.Number, l.Participants)
		for _, g := range c.InGrace {
			if g.Number == l.Number {
				fmt.Fprintf(&b, ", expired %s, in grace", l.Expires.Format(dateLayout))
				break
			}
		}
		b.WriteByte(')')
	}
	for i, l := range c.Lapsed {
		if i == 0 {
			b.WriteString("; not counting: ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (+%d)", l.Number, l.Participants)
	}
	return b.String()
}

// Entries returns copies of the entries, in activation order, for the
// embedding product to store.
func (s *State) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.clone()
	}
	return out
}

// Restore replaces the entries with stored ones, e.g. from Entries at the
// previous start. Every File is verified again (the License of an entry is
// taken from its File, not from the stored License field) and must be for
// this installation; expired licenses are kept. On error the State is
// unchanged.
func (s *State) Restore(entries []Entry) error {
	restored := make([]*Entry, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for i := range entries {
		l, err := s.check(entries[i].File)
		if err != nil {
			return fmt.Errorf("restoring entry %d: %w", i, err)
		}
		if seen[l.Number] {
			return fmt.Errorf("restoring entry %d: %w: license %s appears twice", i, ErrDuplicate, l.Number)
		}
		seen[l.Number] = true
		e := entries[i].clone()
		e.License = *l
		restored = append(restored, &e)
	}
	s.mu.Lock()
	s.entries = restored
	s.mu.Unlock()
	return nil
}

// EventsBetween returns the events in the interval (from, to], ordered by
// time: activations, releases and revocations, and the expiry transitions
// (EventExpiredGrace at the expiry, EventLapsed at the end of the grace
// period) of licenses that were activated and neither released nor
// revoked by then. A product that calls it from a ticker with the previous
// and the current tick logs every event exactly once.
func (s *State) EventsBetween(from, to time.Time) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var events []Event
	add := func(e *Entry, kind string, at time.Time) {
		if at.After(from) && !at.After(to) {
			events = append(events, Event{Number: e.License.Number, Kind: kind, At: at})
		}
	}
	for _, e := range s.entries {
		add(e, EventActivated, e.Activated)
		if exp := e.License.Expires; !exp.IsZero() {
			// Transitions count only while the license is active.
			active := func(at time.Time) bool {
				return !at.Before(e.Activated) &&
					(e.Released.IsZero() || at.Before(e.Released)) &&
					(e.Revoked.IsZero() || at.Before(e.Revoked))
			}
			if s.grace > 0 && active(exp) {
				add(e, EventExpiredGrace, exp)
			}
			if lapse := exp.Add(s.grace); active(lapse) {
				add(e, EventLapsed, lapse)
			}
		}
		if !e.Released.IsZero() {
			add(e, EventReleased, e.Released)
		}
		if !e.Revoked.IsZero() {
			add(e, EventRevoked, e.Revoked)
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.Before(events[j].At) })
	return events
}
