package connlimit

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// closer records whether it was closed.
type closer struct{ closed atomic.Bool }

func (c *closer) Close() error { c.closed.Store(true); return nil }

func mustNew(t *testing.T, l Limits) *Set {
	t.Helper()
	s, err := New(l)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func src(s string) netip.Prefix { return Source(netip.MustParseAddr(s)) }

func add(t *testing.T, s *Set, from string) (*Entry, *closer) {
	t.Helper()
	c := &closer{}
	e, err := s.Add(src(from), c)
	if err != nil {
		t.Fatalf("Add from %s: %v", from, err)
	}
	return e, c
}

func closedOnes(cs []*closer) []int {
	var out []int
	for i, c := range cs {
		if c.closed.Load() {
			out = append(out, i)
		}
	}
	return out
}

func TestPerSourceCapEvictsThatSourcesOldest(t *testing.T) {
	s := mustNew(t, Limits{Total: 100, PerSource: 3})
	_, other := add(t, s, "192.0.2.99")
	var cs []*closer
	for range 5 {
		_, c := add(t, s, "192.0.2.1")
		cs = append(cs, c)
	}
	if got := closedOnes(cs); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("closed %v, want the two oldest [0 1]", got)
	}
	if other.closed.Load() {
		t.Fatal("another source's entry was evicted by a per-source cap")
	}
	if st := s.Stats(); st.Tracked != 4 || st.Evicted != 2 || st.Refused != 0 {
		t.Fatalf("stats %+v, want 4 tracked, 2 evicted", st)
	}
}

func TestTotalCapEvictsOldestOfAll(t *testing.T) {
	s := mustNew(t, Limits{Total: 3, PerSource: 3})
	var cs []*closer
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.1"} {
		_, c := add(t, s, a)
		cs = append(cs, c)
	}
	if got := closedOnes(cs); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("closed %v, want [0 1]", got)
	}
	if st := s.Stats(); st.Tracked != 3 || st.Evicted != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Both caps at once: the source's oldest goes for the per-source cap, and
// the oldest other entry for the total cap.
func TestBothCapsEvictTwoDifferentEntries(t *testing.T) {
	s := mustNew(t, Limits{Total: 2, PerSource: 1})
	_, a := add(t, s, "192.0.2.1")
	_, b := add(t, s, "192.0.2.2")
	// Total is full and 192.0.2.2 is at its cap: its own entry makes room
	// for both caps, so a stays.
	_, c := add(t, s, "192.0.2.2")
	if a.closed.Load() || !b.closed.Load() || c.closed.Load() {
		t.Fatalf("closed a=%v b=%v c=%v, want only b", a.closed.Load(), b.closed.Load(), c.closed.Load())
	}
	if st := s.Stats(); st.Tracked != 2 || st.Evicted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDoneFreesRoomAndIsIdempotent(t *testing.T) {
	s := mustNew(t, Limits{Total: 2, PerSource: 2})
	e1, c1 := add(t, s, "192.0.2.1")
	_, c2 := add(t, s, "192.0.2.1")
	e1.Done()
	e1.Done()
	_, c3 := add(t, s, "192.0.2.1")
	if c1.closed.Load() || c2.closed.Load() || c3.closed.Load() {
		t.Fatal("an entry was evicted although Done had made room")
	}
	if st := s.Stats(); st.Tracked != 2 || st.Evicted != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Sources without entries are forgotten.
	e4, _ := add(t, s, "192.0.2.9") // evicts 192.0.2.1's oldest
	e4.Done()
	s.mu.Lock()
	n := len(s.bySource)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d sources kept, want 1", n)
	}
}

func TestHeldEntriesAreNotEvicted(t *testing.T) {
	s := mustNew(t, Limits{Total: 10, PerSource: 2})
	e1, c1 := add(t, s, "192.0.2.1")
	e1.Hold()
	_, c2 := add(t, s, "192.0.2.1")
	_, c3 := add(t, s, "192.0.2.1")
	if c1.closed.Load() || !c2.closed.Load() || c3.closed.Load() {
		t.Fatalf("closed %v %v %v, want only the idle one (2nd)", c1.closed.Load(), c2.closed.Load(), c3.closed.Load())
	}
	e3 := func() *Entry {
		// Hold the newest too: now nothing of this source can go.
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.bySource[src("192.0.2.1")].list.oldest()
	}()
	e3.Hold()
	if _, err := s.Add(src("192.0.2.1"), &closer{}); !errors.Is(err, ErrFull) {
		t.Fatalf("Add with only held entries: %v, want ErrFull", err)
	}
	// Released, the first one is idle since now: the newest idle one.
	e1.Release()
	e3.Release()
	_, c4 := add(t, s, "192.0.2.1")
	if !c1.closed.Load() || c3.closed.Load() || c4.closed.Load() {
		t.Fatalf("closed %v %v %v, want e1 (idle first)", c1.closed.Load(), c3.closed.Load(), c4.closed.Load())
	}
	if st := s.Stats(); st.Refused != 1 || st.Evicted != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A refusal changes nothing: the entry that would have made room for the
// per-source cap stays when the total cap cannot be met.
func TestRefusalEvictsNothing(t *testing.T) {
	s := mustNew(t, Limits{Total: 2, PerSource: 1})
	e1, _ := add(t, s, "192.0.2.1")
	e1.Hold()
	_, c2 := add(t, s, "192.0.2.2")
	// 192.0.2.2 is at its cap (c2 would go) and the total is full with
	// e1 held: after c2 went there would be room, so this succeeds.
	if _, err := s.Add(src("192.0.2.2"), &closer{}); err != nil {
		t.Fatal(err)
	}
	if !c2.closed.Load() {
		t.Fatal("c2 not evicted")
	}
	// A third source: the total is full, e1 is held, the other is the
	// only evictable one and goes.
	if _, err := s.Add(src("192.0.2.3"), &closer{}); err != nil {
		t.Fatal(err)
	}
	s2 := mustNew(t, Limits{Total: 1, PerSource: 1})
	h, hc := add(t, s2, "192.0.2.1")
	h.Hold()
	if _, err := s2.Add(src("192.0.2.2"), &closer{}); !errors.Is(err, ErrFull) {
		t.Fatalf("got %v, want ErrFull", err)
	}
	if hc.closed.Load() || s2.Stats().Tracked != 1 {
		t.Fatal("a refused Add changed the set")
	}
}

func TestSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":           "192.0.2.1/32",
		"::ffff:192.0.2.1":    "192.0.2.1/32",
		"2001:db8:1:2:3::4":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::": "2001:db8:1:2::/64",
		"fe80::1%eth0":        "fe80::/64",
	} {
		if got := Source(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("Source(%s) = %v, want %s", in, got, want)
		}
	}
	if got := Source(netip.Addr{}); got.IsValid() {
		t.Errorf("Source of the zero address = %v, want the zero prefix", got)
	}
}

func TestNewRejectsBadLimits(t *testing.T) {
	for _, l := range []Limits{{}, {Total: 1}, {PerSource: 1}, {Total: -1, PerSource: 1}} {
		if _, err := New(l); !errors.Is(err, ErrLimits) {
			t.Errorf("New(%+v): %v, want ErrLimits", l, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	var b Backoff
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("retry %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 5*time.Millisecond {
		t.Fatalf("after Reset: %v", got)
	}
}
