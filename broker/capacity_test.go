package broker

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/policy"
)

// A license limit admits the oldest participants only: the ones created
// last are refused at connect with the capacity in the message, and the
// others keep working.
func TestCapacityAdmitsTheOldestParticipants(t *testing.T) {
	b := newTestBroker(t)
	var refused []string
	b.mu.Lock()
	b.events = func(e Event) {
		if e.Kind == "refused" {
			refused = append(refused, e.Participant+": "+e.Message)
		}
	}
	b.mu.Unlock()
	admit := func(name string) error {
		_, err := b.Admit(t.Context(), identity(name), netip.AddrPort{})
		return err
	}

	// brokerModel has the users u1, u2, viewer and the devices dev1, dev2,
	// all without creation times: they are in model order, users first.
	const text = "4 participants: base 4; not counting: RG-7 (+64)"
	b.SetCapacity(4, text)
	for _, name := range []string{"u1", "u2", "dev1"} {
		if err := admit(name); err != nil {
			t.Fatalf("%s is among the 4 oldest but was refused: %v", name, err)
		}
	}
	err := admit("dev2")
	if !errors.Is(err, ErrBeyondCapacity) || !strings.Contains(err.Error(), text) {
		t.Fatalf("dev2 (the 5th) admitted or refused without the capacity: %v", err)
	}
	if len(refused) != 1 || !strings.HasPrefix(refused[0], "dev2: beyond the licensed capacity of "+text) {
		t.Fatalf("refusal events %q", refused)
	}

	// Creation times decide: dev2 is older than everyone, u1 the newest.
	m := brokerModel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for i := range m.Users {
		m.Users[i].Created = now.Add(time.Duration(i) * time.Minute)
	}
	m.Users[0].Created = now.Add(time.Hour)
	m.Devices[0].Created = now.Add(10 * time.Minute)
	m.Devices[1].Created = now.Add(-time.Hour)
	snap, err := policy.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetPolicy(snap); err != nil {
		t.Fatal(err)
	}
	if err := admit("dev2"); err != nil {
		t.Fatalf("dev2, now the oldest, refused: %v", err)
	}
	if err := admit("u1"); !errors.Is(err, ErrBeyondCapacity) {
		t.Fatalf("u1, now the newest of 5, not refused: %v", err)
	}

	// No limit: everyone connects again.
	b.SetCapacity(0, "")
	if err := admit("u1"); err != nil {
		t.Fatalf("without a limit u1 was refused: %v", err)
	}
}
