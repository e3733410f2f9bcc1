package license

import (
	"bytes"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

var now0 = time.Date(2027, 1, 10, 12, 0, 0, 0, time.UTC)

func numbers(ls []License) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.Number)
	}
	return out
}

func mustActivate(t *testing.T, s *State, file []byte, now time.Time) {
	t.Helper()
	if _, err := s.Activate(file, now); err != nil {
		t.Fatal(err)
	}
}

func TestCapacityBase(t *testing.T) {
	s := NewState(verifier(testKey(1)), testInstallation, 0)
	c := s.Capacity(now0)
	if c.Participants != 4 || BaseParticipants != 4 || len(c.Counting)+len(c.InGrace)+len(c.Lapsed) != 0 {
		t.Errorf("base capacity = %+v", c)
	}
	if got, want := c.String(), "4 participants: base 4"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestCapacityPacks(t *testing.T) {
	priv := testKey(1)
	s := NewState(verifier(priv), testInstallation, 0)
	for i, n := range []int{64, 256, 1024} {
		number := []string{"RG-1", "RG-2", "RG-3"}[i]
		l, err := s.Activate(mustIssue(t, priv, pack(number, n)), now0)
		if err != nil {
			t.Fatal(err)
		}
		if l.Number != number || l.Participants != n {
			t.Errorf("Activate = %+v", l)
		}
	}
	c := s.Capacity(now0)
	if c.Participants != 1348 {
		t.Errorf("capacity = %d, want 1348", c.Participants)
	}
	if got := numbers(c.Counting); !reflect.DeepEqual(got, []string{"RG-1", "RG-2", "RG-3"}) || len(c.InGrace) != 0 || len(c.Lapsed) != 0 {
		t.Errorf("Counting %v, InGrace %v, Lapsed %v", got, c.InGrace, c.Lapsed)
	}
	if got, want := c.String(), "1348 participants: base 4 + RG-1 (+64) + RG-2 (+256) + RG-3 (+1024)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestExpiryAndGrace(t *testing.T) {
	priv := testKey(1)
	const grace = 14 * 24 * time.Hour
	s := NewState(verifier(priv), testInstallation, grace)
	exp := pack("RG-1", 64)
	exp.Expires = day(2027, 11, 23)
	mustActivate(t, s, mustIssue(t, priv, exp), now0)
	mustActivate(t, s, mustIssue(t, priv, pack("RG-2", 256)), now0)
	E := day(2027, 11, 23)

	for _, tc := range []struct {
		at                      time.Time
		participants            int
		counting, grace, lapsed []string
		str                     string
	}{
		{E.Add(-time.Nanosecond), 324, []string{"RG-1", "RG-2"}, []string{}, []string{},
			"324 participants: base 4 + RG-1 (+64) + RG-2 (+256)"},
		{E, 324, []string{"RG-1", "RG-2"}, []string{"RG-1"}, []string{},
			"324 participants: base 4 + RG-1 (+64, expired 2027-11-23, in grace) + RG-2 (+256)"},
		{E.Add(grace - time.Nanosecond), 324, []string{"RG-1", "RG-2"}, []string{"RG-1"}, []string{},
			"324 participants: base 4 + RG-1 (+64, expired 2027-11-23, in grace) + RG-2 (+256)"},
		{E.Add(grace), 260, []string{"RG-2"}, []string{}, []string{"RG-1"},
			"260 participants: base 4 + RG-2 (+256); not counting: RG-1 (+64)"},
	} {
		c := s.Capacity(tc.at)
		if c.Participants != tc.participants || !reflect.DeepEqual(numbers(c.Counting), tc.counting) ||
			!reflect.DeepEqual(numbers(c.InGrace), tc.grace) || !reflect.DeepEqual(numbers(c.Lapsed), tc.lapsed) {
			t.Errorf("at %v: %d counting %v grace %v lapsed %v", tc.at, c.Participants, numbers(c.Counting), numbers(c.InGrace), numbers(c.Lapsed))
		}
		if c.String() != tc.str {
			t.Errorf("at %v: String = %q, want %q", tc.at, c.String(), tc.str)
		}
	}

	// Events, as a ticker would fetch them.
	want := []Event{
		{Number: "RG-1", Kind: EventExpiredGrace, At: E},
		{Number: "RG-1", Kind: EventLapsed, At: E.Add(grace)},
	}
	if got := s.EventsBetween(now0, E.Add(30*24*time.Hour)); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %+v, want %+v", got, want)
	}
	var ticked []Event
	for t0 := now0.Add(-time.Hour); t0.Before(E.Add(30 * 24 * time.Hour)); t0 = t0.Add(24 * time.Hour) {
		ticked = append(ticked, s.EventsBetween(t0, t0.Add(24*time.Hour))...)
	}
	want = append([]Event{
		{Number: "RG-1", Kind: EventActivated, At: now0},
		{Number: "RG-2", Kind: EventActivated, At: now0},
	}, want...)
	if !reflect.DeepEqual(ticked, want) {
		t.Errorf("ticked events = %+v, want %+v", ticked, want)
	}
	if got := s.EventsBetween(E, E.Add(grace-1)); len(got) != 0 { // (from, to]: E itself excluded
		t.Errorf("events in (E, E+grace) = %+v", got)
	}

	// Without a grace period the license lapses at its expiry.
	s0 := NewState(verifier(priv), testInstallation, -time.Hour)
	mustActivate(t, s0, mustIssue(t, priv, exp), now0)
	if c := s0.Capacity(E.Add(-1)); c.Participants != 68 {
		t.Errorf("before expiry: %d", c.Participants)
	}
	if c := s0.Capacity(E); c.Participants != 4 || len(c.Lapsed) != 1 || len(c.InGrace) != 0 {
		t.Errorf("at expiry without grace: %+v", c)
	}
	if got := s0.EventsBetween(now0, E); !reflect.DeepEqual(got, []Event{{Number: "RG-1", Kind: EventLapsed, At: E}}) {
		t.Errorf("events without grace: %+v", got)
	}
}

// TestEventsEndWithReleaseAndRevocation: expiry transitions after a
// license was released or revoked are not reported.
func TestEventsEndWithReleaseAndRevocation(t *testing.T) {
	priv := testKey(1)
	const grace = 10 * 24 * time.Hour
	s := NewState(verifier(priv), testInstallation, grace)
	E := day(2027, 6, 1)
	for _, n := range []string{"RG-REL", "RG-REV", "RG-EXP"} {
		l := pack(n, 64)
		l.Expires = E
		mustActivate(t, s, mustIssue(t, priv, l), now0)
	}
	relAt := E.Add(-time.Hour)
	if _, err := s.Release("RG-REL", testKey(9), relAt); err != nil {
		t.Fatal(err)
	}
	revAt := E.Add(grace / 2) // in grace
	if err := s.Revoke("RG-REV", revAt); err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Number: "RG-REL", Kind: EventReleased, At: relAt},
		{Number: "RG-REV", Kind: EventExpiredGrace, At: E},
		{Number: "RG-EXP", Kind: EventExpiredGrace, At: E},
		{Number: "RG-REV", Kind: EventRevoked, At: revAt},
		{Number: "RG-EXP", Kind: EventLapsed, At: E.Add(grace)},
	}
	if got := s.EventsBetween(now0, E.Add(2*grace)); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %+v\nwant %+v", got, want)
	}
}

func TestActivateRefusals(t *testing.T) {
	priv := testKey(1)
	s := NewState(verifier(priv), testInstallation, time.Hour)

	other := testLicense()
	other.Installation = "another-installation"
	if _, err := s.Activate(mustIssue(t, priv, other), now0); !errors.Is(err, ErrOtherInstallation) {
		t.Errorf("other installation: %v", err)
	}
	bound := testLicense() // bound to testInstallation
	file := mustIssue(t, priv, bound)
	mustActivate(t, s, file, now0)
	if _, err := s.Activate(file, now0); !errors.Is(err, ErrDuplicate) {
		t.Errorf("same file again: %v", err)
	}
	again := pack(bound.Number, 1024) // same number, other content
	if _, err := s.Activate(mustIssue(t, priv, again), now0); !errors.Is(err, ErrDuplicate) {
		t.Errorf("same number again: %v", err)
	}

	expired := pack("RG-OLD", 64)
	expired.Expires = day(2027, 1, 1)
	f := mustIssue(t, priv, expired)
	for _, at := range []time.Time{day(2027, 1, 1), now0} {
		if _, err := s.Activate(f, at); !errors.Is(err, ErrExpired) {
			t.Errorf("expired at %v: %v", at, err)
		}
	}
	if _, err := s.Activate(f, day(2027, 1, 1).Add(-time.Second)); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
	if _, err := s.Activate(mustIssue(t, testKey(2), pack("RG-X", 64)), now0); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := s.Activate([]byte("hello"), now0); !errors.Is(err, ErrFormat) {
		t.Errorf("garbage: %v", err)
	}
	if got := s.Capacity(now0).Participants; got != 4+64 {
		t.Errorf("capacity after refusals = %d, want 68", got)
	}
}

func TestReleaseThenReimport(t *testing.T) {
	priv, inst := testKey(1), testKey(9)
	s := NewState(verifier(priv), testInstallation, 24*time.Hour)
	file := mustIssue(t, priv, pack("RG-1", 64))
	mustActivate(t, s, file, now0)
	mustActivate(t, s, mustIssue(t, priv, pack("RG-2", 256)), now0)

	at := now0.Add(time.Hour + 500*time.Millisecond)
	stmt, err := s.Release("RG-1", inst, at)
	if err != nil {
		t.Fatal(err)
	}
	r, err := VerifyRelease(stmt)
	if err != nil {
		t.Fatal(err)
	}
	if r.Number != "RG-1" || r.Installation != testInstallation || !r.Released.Equal(at.Truncate(time.Second)) || !r.InstallationKey.Equal(pubOf(inst)) {
		t.Errorf("release = %+v", r)
	}
	// It stops counting at once, whatever the time asked about.
	for _, when := range []time.Time{now0, at, at.Add(time.Hour)} {
		if c := s.Capacity(when); c.Participants != 260 || !reflect.DeepEqual(numbers(c.Counting), []string{"RG-2"}) || len(c.Lapsed) != 0 {
			t.Errorf("after release at %v: %+v", when, c)
		}
	}
	if _, err := s.Activate(file, at.Add(time.Minute)); !errors.Is(err, ErrReleased) {
		t.Errorf("re-import after release: %v", err)
	}
	if _, err := s.Release("RG-1", inst, at); !errors.Is(err, ErrReleased) {
		t.Errorf("second release: %v", err)
	}
	if _, err := s.Release("RG-9", inst, at); !errors.Is(err, ErrNotActivated) {
		t.Errorf("release of unknown number: %v", err)
	}
	if _, err := s.Release("RG-2", nil, at); err == nil {
		t.Error("release without a key succeeded")
	}
	if c := s.Capacity(at); c.Participants != 260 {
		t.Errorf("failed release changed the capacity: %d", c.Participants)
	}
	// The license re-issued for a new installation activates there.
	moved := pack("RG-1", 64)
	moved.Installation = "new-server"
	s2 := NewState(verifier(priv), "new-server", 0)
	mustActivate(t, s2, mustIssue(t, priv, moved), at)
	if got := s2.Capacity(at).Participants; got != 68 {
		t.Errorf("new installation capacity = %d", got)
	}
	want := []Event{{Number: "RG-1", Kind: EventReleased, At: at.Truncate(time.Second)}}
	if got := s.EventsBetween(now0, at.Add(time.Hour)); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %+v, want %+v", got, want)
	}
}

func TestRevoke(t *testing.T) {
	priv := testKey(1)
	s := NewState(verifier(priv), testInstallation, 30*24*time.Hour)
	file := mustIssue(t, priv, pack("RG-1", 64))
	mustActivate(t, s, file, now0)
	if err := s.Revoke("RG-1", now0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke("RG-1", now0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	c := s.Capacity(now0.Add(time.Hour))
	if c.Participants != 4 || len(c.Counting) != 0 || !reflect.DeepEqual(numbers(c.Lapsed), []string{"RG-1"}) {
		t.Errorf("after revoke: %+v", c)
	}
	if got, want := c.String(), "4 participants: base 4; not counting: RG-1 (+64)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if _, err := s.Activate(file, now0.Add(3*time.Hour)); !errors.Is(err, ErrRevoked) {
		t.Errorf("re-import after revoke: %v", err)
	}
	if err := s.Revoke("RG-2", now0); !errors.Is(err, ErrNotActivated) {
		t.Errorf("revoke unknown: %v", err)
	}
	if got, want := s.EventsBetween(now0, now0.Add(3*time.Hour)), []Event{{Number: "RG-1", Kind: EventRevoked, At: now0.Add(time.Hour)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("events = %+v, want %+v", got, want)
	}
}

func TestRestore(t *testing.T) {
	priv, inst := testKey(1), testKey(9)
	v := verifier(priv)
	s := NewState(v, testInstallation, 24*time.Hour)
	exp := testLicense()
	exp.Number = "RG-EXP"
	exp.Expires = day(2027, 2, 1)
	files := map[string][]byte{}
	for _, l := range []License{pack("RG-1", 64), pack("RG-2", 256), exp, pack("RG-3", 1024)} {
		files[l.Number] = mustIssue(t, priv, l)
		mustActivate(t, s, files[l.Number], now0)
	}
	if _, err := s.Release("RG-2", inst, now0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke("RG-3", now0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	entries := s.Entries()
	if len(entries) != 4 || !bytes.Equal(entries[0].File, files["RG-1"]) || !entries[0].Activated.Equal(now0) {
		t.Fatalf("entries = %+v", entries)
	}
	entries[0].File[0] ^= 1 // Entries returns copies
	if !bytes.Equal(s.Entries()[0].File, files["RG-1"]) {
		t.Fatal("Entries shares the file bytes")
	}
	entries = s.Entries()

	s2 := NewState(v, testInstallation, 24*time.Hour)
	if err := s2.Restore(entries); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s2.Entries(), entries) {
		t.Errorf("restored entries differ:\n%+v\n%+v", s2.Entries(), entries)
	}
	for _, at := range []time.Time{now0, day(2027, 2, 1), day(2027, 2, 2)} {
		if got, want := s2.Capacity(at), s.Capacity(at); !reflect.DeepEqual(got, want) {
			t.Errorf("capacity at %v: %v, want %v", at, got, want)
		}
	}
	if got, want := s2.Capacity(now0).String(), "132 participants: base 4 + RG-1 (+64) + RG-EXP (+64); not counting: RG-3 (+1024)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if _, err := s2.Activate(files["RG-2"], now0); !errors.Is(err, ErrReleased) {
		t.Errorf("re-import after restore: %v", err)
	}
	if !reflect.DeepEqual(s2.EventsBetween(now0.Add(-1), day(2027, 3, 1)), s.EventsBetween(now0.Add(-1), day(2027, 3, 1))) {
		t.Error("events differ after restore")
	}

	// The stored License field is not trusted; the file is.
	forged := s.Entries()
	forged[0].License.Participants = 100000
	s3 := NewState(v, testInstallation, 0)
	if err := s3.Restore(forged); err != nil {
		t.Fatal(err)
	}
	if got := s3.Capacity(now0).Participants; got != 4+64+64 {
		t.Errorf("capacity from forged entry = %d", got)
	}

	// Failures leave the state unchanged.
	tampered := s.Entries()
	tampered[1].File = bytes.Replace(tampered[1].File, []byte("participants: 256"), []byte("participants: 999"), 1)
	dup := s.Entries()
	dup[3].File = dup[0].File
	for name, tc := range map[string]struct {
		s       *State
		entries []Entry
		want    error
	}{
		"tampered":              {s2, tampered, ErrSignature},
		"duplicate":             {s2, dup, ErrDuplicate},
		"other installation":    {NewState(v, "another-installation", 0), entries, ErrOtherInstallation},
		"key no longer trusted": {NewState(verifier(testKey(2)), testInstallation, 0), entries, ErrUnknownKey},
	} {
		before := tc.s.Entries()
		if err := tc.s.Restore(tc.entries); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		if !reflect.DeepEqual(tc.s.Entries(), before) {
			t.Errorf("%s: failed Restore changed the state", name)
		}
	}
}

func TestStateConcurrent(t *testing.T) {
	priv := testKey(1)
	s := NewState(verifier(priv), testInstallation, time.Hour)
	files := make([][]byte, 8)
	for i := range files {
		files[i] = mustIssue(t, priv, pack("RG-"+string(rune('A'+i)), 64))
	}
	var wg sync.WaitGroup
	for i := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Activate(files[i], now0); err != nil {
				t.Error(err)
			}
			_ = s.Capacity(now0).String()
			_ = s.EventsBetween(now0.Add(-1), now0)
			_ = s.Entries()
		}()
	}
	wg.Wait()
	if got := s.Capacity(now0).Participants; got != 4+8*64 {
		t.Errorf("capacity = %d", got)
	}
}
