package connlimit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ErrFull is returned by Set.Add when a cap is reached and every entry
// that counts against it is held, so none can be evicted.
var ErrFull = errors.New("connlimit: limit reached and no connection can be evicted")

// ErrLimits reports invalid Limits.
var ErrLimits = errors.New("connlimit: invalid limits")

// Limits are the caps of a Set. Both must be positive.
type Limits struct {
	// Total caps the entries of all sources together.
	Total int
	// PerSource caps the entries of one source (see Source).
	PerSource int
}

// Stats are counters of a Set.
type Stats struct {
	// Tracked is the number of entries now in the set.
	Tracked int
	// Evicted counts entries closed to make room for newer ones.
	Evicted uint64
	// Refused counts Add calls that failed with ErrFull.
	Refused uint64
}

// Set tracks entries by source and age. It is safe for concurrent use.
type Set struct {
	limits Limits

	mu       sync.Mutex
	count    int
	all      list // evictable entries of all sources, oldest first
	bySource map[netip.Prefix]*source
	evicted  uint64
	refused  uint64
}

// source is the state of one source; it is dropped when its last entry
// goes, so that the map holds no more sources than there are entries.
type source struct {
	count int
	list  list // its evictable entries, oldest first
}

// Entry is one tracked connection or session.
type Entry struct {
	set  *Set
	src  netip.Prefix
	c    io.Closer
	all  link
	own  link
	in   bool // still counted by the set
	held bool // counted but not evictable
}

// New returns an empty set with the given caps.
func New(l Limits) (*Set, error) {
	if l.Total < 1 || l.PerSource < 1 {
		return nil, fmt.Errorf("%w: total %d and per source %d must both be at least 1", ErrLimits, l.Total, l.PerSource)
	}
	return &Set{limits: l, bySource: map[netip.Prefix]*source{}}, nil
}

// Source is the unit a per-source cap counts by: the address itself for
// IPv4 (and IPv4-mapped IPv6), its /64 for IPv6, because one host or
// customer usually gets a whole /64 and can pick any address in it. An
// invalid address (a pipe, a Unix socket) is one source of its own.
func Source(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	switch {
	case a.Is4():
		return netip.PrefixFrom(a, 32)
	case a.Is6():
		p, _ := a.Prefix(64) // cannot fail for 64 bits of an IPv6 address
		return p
	}
	return netip.Prefix{}
}

// SourceOf is Source of a connection's remote address.
func SourceOf(a net.Addr) netip.Prefix {
	switch v := a.(type) {
	case *net.TCPAddr:
		return Source(v.AddrPort().Addr())
	case *net.UDPAddr:
		return Source(v.AddrPort().Addr())
	}
	return netip.Prefix{}
}

// Add tracks c as a new evictable entry of src. When the source or the
// set is at its cap, the oldest evictable entry of the source, or of the
// set, is removed and closed first (after Add has released the set's lock,
// so c.Close may call back into the set). When there is nothing to evict,
// Add returns ErrFull and tracks nothing; the caller should close c.
func (s *Set) Add(src netip.Prefix, c io.Closer) (*Entry, error) {
	s.mu.Lock()
	// Choose the victims before changing anything, so that a refusal
	// leaves the set as it was.
	var victims []*Entry
	count := s.count
	if so := s.bySource[src]; so != nil && so.count >= s.limits.PerSource {
		v := so.list.oldest()
		if v == nil {
			s.refused++
			s.mu.Unlock()
			return nil, ErrFull
		}
		victims = append(victims, v)
		count--
	}
	if count >= s.limits.Total {
		v := s.all.oldest()
		if v != nil && len(victims) > 0 && v == victims[0] {
			v = s.all.after(&v.all)
		}
		if v == nil {
			s.refused++
			s.mu.Unlock()
			return nil, ErrFull
		}
		victims = append(victims, v)
	}
	for _, v := range victims {
		s.removeLocked(v)
	}
	s.evicted += uint64(len(victims))
	so := s.bySource[src]
	if so == nil {
		so = &source{}
		s.bySource[src] = so
	}
	e := &Entry{set: s, src: src, c: c, in: true}
	so.count++
	s.count++
	s.all.pushNewest(e, &e.all)
	so.list.pushNewest(e, &e.own)
	s.mu.Unlock()
	closeAll(victims)
	return e, nil
}

func closeAll(es []*Entry) {
	for _, v := range es {
		_ = v.c.Close()
	}
}

// removeLocked takes e out of the set; s.mu is held.
func (s *Set) removeLocked(e *Entry) {
	if !e.in {
		return
	}
	e.in = false
	so := s.bySource[e.src]
	if !e.held {
		s.all.remove(&e.all)
		so.list.remove(&e.own)
	}
	so.count--
	if so.count == 0 {
		delete(s.bySource, e.src)
	}
	s.count--
}

// Done stops tracking e: its connection authenticated or closed. It is
// safe to call more than once, and after e was evicted.
func (e *Entry) Done() {
	if e == nil {
		return
	}
	e.set.mu.Lock()
	e.set.removeLocked(e)
	e.set.mu.Unlock()
}

// Hold makes e not evictable (an HTTP request is in progress on it); it
// still counts against the caps.
func (e *Entry) Hold() {
	s := e.set
	s.mu.Lock()
	defer s.mu.Unlock()
	if !e.in || e.held {
		return
	}
	e.held = true
	s.all.remove(&e.all)
	s.bySource[e.src].list.remove(&e.own)
}

// Release makes a held entry evictable again, as the newest: an idle
// connection is evicted in the order it became idle.
func (e *Entry) Release() {
	s := e.set
	s.mu.Lock()
	defer s.mu.Unlock()
	if !e.in || !e.held {
		return
	}
	e.held = false
	s.all.pushNewest(e, &e.all)
	s.bySource[e.src].list.pushNewest(e, &e.own)
}

// Stats returns the set's counters.
func (s *Set) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Tracked: s.count, Evicted: s.evicted, Refused: s.refused}
}

// link is a node of an intrusive doubly linked list; an Entry is in two
// lists at once (all sources, its own source), hence two links.
type link struct {
	e          *Entry
	prev, next *link
}

// list is a doubly linked list of links, oldest at the front.
type list struct {
	head, tail *link
}

func (l *list) pushNewest(e *Entry, n *link) {
	n.e, n.prev, n.next = e, l.tail, nil
	if l.tail != nil {
		l.tail.next = n
	} else {
		l.head = n
	}
	l.tail = n
}

func (l *list) remove(n *link) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

// after is the entry that follows link n, or nil.
func (l *list) after(n *link) *Entry {
	if n.next == nil {
		return nil
	}
	return n.next.e
}

func (l *list) oldest() *Entry {
	if l.head == nil {
		return nil
	}
	return l.head.e
}

// Backoff is the wait between retries of a failing Accept: 5 ms, doubling
// up to 1 s, as net/http's Server.Serve waits. The zero value is ready.
type Backoff struct {
	d time.Duration
}

// Next returns the wait before the next retry.
func (b *Backoff) Next() time.Duration {
	if b.d == 0 {
		b.d = 5 * time.Millisecond
	} else {
		b.d = min(2*b.d, time.Second)
	}
	return b.d
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.d = 0 }
