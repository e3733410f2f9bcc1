package reliable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func ids(out []Outgoing) string {
	r := make([]uint32, 0, len(out))
	for _, o := range out {
		r = append(r, o.ID)
	}
	return fmt.Sprint(r)
}

func readAll(l *Layer) []string {
	var got []string
	for p, ok := l.Read(); ok; p, ok = l.Read() {
		got = append(got, string(p))
	}
	return got
}

func TestSendWindow(t *testing.T) {
	l := New(Config{})
	for i := 0; i < 8; i++ {
		if err := l.Send([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if l.Queued() != 8 || l.Unacked() != 0 {
		t.Fatalf("before Due: queued %d unacked %d", l.Queued(), l.Unacked())
	}
	if got := ids(l.Due(t0)); got != "[0 1 2 3 4 5]" {
		t.Fatalf("first flight %v, want ids 0..5 (window 6)", got)
	}
	if l.Queued() != 2 || l.Unacked() != 6 {
		t.Fatalf("after Due: queued %d unacked %d", l.Queued(), l.Unacked())
	}
	if got := l.Due(t0.Add(time.Second)); len(got) != 0 {
		t.Fatalf("the 7th message must wait for an ACK, got %v", ids(got))
	}
	l.OnAcks([]uint32{1}) // not the lowest: the window does not slide
	if got := l.Due(t0.Add(time.Second)); len(got) != 0 {
		t.Fatalf("ACK of 1 must not open the window, got %v", ids(got))
	}
	l.OnAcks([]uint32{0})
	if got := ids(l.Due(t0.Add(time.Second))); got != "[6 7]" {
		t.Fatalf("after ACK 0 and 1, got %v, want [6 7]", got)
	}
	if l.Unacked() != 6 || l.Queued() != 0 {
		t.Fatalf("unacked %d queued %d", l.Unacked(), l.Queued())
	}
}

func TestSendCopiesAndQueueFull(t *testing.T) {
	l := New(Config{})
	buf := []byte("abc")
	if err := l.Send(buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X'
	if out := l.Due(t0); len(out) != 1 || string(out[0].Payload) != "abc" || out[0].Retransmit {
		t.Fatalf("Send did not copy: %+v", out)
	}
	// The window holds 1 sent message; MaxQueued more may wait.
	for i := 0; i < MaxQueued; i++ {
		if err := l.Send(nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := l.Send(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("send beyond MaxQueued: %v", err)
	}
	// Sending 5 more frees 5 queue places.
	if n := len(l.Due(t0)); n != SendWindow-1 {
		t.Fatalf("second flight %d messages", n)
	}
	for i := 0; i < SendWindow-1; i++ {
		if err := l.Send(nil); err != nil {
			t.Fatalf("refill %d: %v", i, err)
		}
	}
	if err := l.Send(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("send beyond MaxQueued again: %v", err)
	}
	if l.Queued() != MaxQueued || l.Unacked() != SendWindow {
		t.Fatalf("queued %d unacked %d", l.Queued(), l.Unacked())
	}
}

func TestBackoff(t *testing.T) {
	l := New(Config{})
	if !l.NextDeadline().IsZero() {
		t.Fatal("idle layer has a deadline")
	}
	_ = l.Send([]byte("x"))
	if !l.NextDeadline().Before(t0) || l.NextDeadline().IsZero() {
		t.Fatalf("queued message not due at once: %v", l.NextDeadline())
	}
	l.Due(t0)
	var times []time.Duration
	now := t0
	for i := 0; i < 7; i++ {
		d := l.NextDeadline()
		times = append(times, d.Sub(now))
		if out := l.Due(d.Add(-time.Millisecond)); len(out) != 0 {
			t.Fatalf("retransmission %d before its deadline", i)
		}
		now = d
		out := l.Due(now)
		if len(out) != 1 || !out[0].Retransmit || string(out[0].Payload) != "x" {
			t.Fatalf("retransmission %d: %+v", i, out)
		}
	}
	if got := fmt.Sprint(times); got != "[2s 4s 8s 16s 32s 1m0s 1m0s]" {
		t.Fatalf("backoff %v, want 2 4 8 16 32 then capped at 60 s", got)
	}
	l.OnAcks([]uint32{0})
	if !l.NextDeadline().IsZero() || l.Unacked() != 0 {
		t.Fatalf("acknowledged layer: deadline %v unacked %d", l.NextDeadline(), l.Unacked())
	}
}

func TestConfigTimeouts(t *testing.T) {
	l := New(Config{InitialTimeout: 300 * time.Millisecond, MaxTimeout: time.Second})
	_ = l.Send(nil)
	l.Due(t0)
	now := t0
	var times []time.Duration
	for i := 0; i < 4; i++ {
		d := l.NextDeadline()
		times = append(times, d.Sub(now))
		now = d
		l.Due(now)
	}
	if got := fmt.Sprint(times); got != "[300ms 600ms 1s 1s]" {
		t.Fatalf("backoff %v", got)
	}
}

func TestFastRetransmit(t *testing.T) {
	l := New(Config{})
	for i := 0; i < 6; i++ {
		_ = l.Send([]byte{byte(i)})
	}
	l.Due(t0)
	now := t0.Add(time.Millisecond)
	l.OnAcks([]uint32{1, 2, 2}) // a repeated ACK does not count twice
	if got := l.Due(now); len(got) != 0 {
		t.Fatalf("two later ACKs must not trigger, got %v", ids(got))
	}
	if l.NextDeadline() != t0.Add(2*time.Second) {
		t.Fatalf("deadline %v", l.NextDeadline())
	}
	l.OnAcks([]uint32{3})
	if !l.NextDeadline().Before(now) {
		t.Fatalf("fast retransmit not due at once: %v", l.NextDeadline())
	}
	got := l.Due(now)
	if ids(got) != "[0]" || !got[0].Retransmit {
		t.Fatalf("three later ACKs: got %+v, want a retransmit of 0", got)
	}
	// Only once: two more later ACKs do not resend it again...
	l.OnAcks([]uint32{4, 5})
	if got := l.Due(now); len(got) != 0 {
		t.Fatalf("fast retransmit repeated: %v", ids(got))
	}
	// ...and the timer was restarted, not doubled, by the fast resend.
	if d := l.NextDeadline(); d != now.Add(2*time.Second) {
		t.Fatalf("deadline after fast retransmit %v, want now+2s", d.Sub(now))
	}
	l.OnAcks([]uint32{0})
	if l.Unacked() != 0 {
		t.Fatalf("unacked %d", l.Unacked())
	}
}

func TestOnAcksIgnoresUnknown(t *testing.T) {
	l := New(Config{})
	for i := 0; i < 8; i++ {
		_ = l.Send(nil)
	}
	l.Due(t0)
	// 6 and 7 are queued, not sent; 100 and 0xFFFFFFFF never existed.
	l.OnAcks([]uint32{6, 7, 100, 0xFFFFFFFF})
	if l.Unacked() != 6 || l.Queued() != 2 {
		t.Fatalf("unknown ACKs changed state: unacked %d queued %d", l.Unacked(), l.Queued())
	}
	l.OnAcks([]uint32{0, 0, 0})
	if l.Unacked() != 5 {
		t.Fatalf("unacked %d", l.Unacked())
	}
	if got := ids(l.Due(t0)); got != "[6]" {
		t.Fatalf("after ACK 0: %v", got)
	}
}

func TestReceiveWindowAndDuplicates(t *testing.T) {
	l := New(Config{})
	if l.Receive(ReceiveWindow, []byte("far")) {
		t.Fatal("id 12 with 0 expected must be outside the window")
	}
	if l.HasPendingAcks() {
		t.Fatal("a message outside the window must not be acknowledged")
	}
	if !l.Receive(11, []byte("l")) || !l.Receive(0, []byte("a")) {
		t.Fatal("in-window messages refused")
	}
	if got := readAll(l); fmt.Sprint(got) != "[a]" {
		t.Fatalf("read %q", got)
	}
	if !l.HasPendingAcks() {
		t.Fatal("accepted messages not acknowledged")
	}
	if got := l.TakeAcks(MaxAcksAck); fmt.Sprint(got) != "[11 0]" {
		t.Fatalf("acks %v", got)
	}
	if l.HasPendingAcks() {
		t.Fatal("acks still pending after TakeAcks")
	}
	// Duplicates: one below the window, one already buffered.
	if !l.Receive(0, []byte("A")) || !l.Receive(11, []byte("L")) {
		t.Fatal("duplicates refused")
	}
	if got := l.TakeAcks(2); fmt.Sprint(got) != "[0 11]" {
		t.Fatalf("duplicates not re-acknowledged: %v", got)
	}
	// Now 1 is expected, so 12 fits and 13 does not.
	if l.Receive(13, nil) || !l.Receive(12, []byte("m")) {
		t.Fatal("window did not slide by one")
	}
	for i := uint32(1); i <= 10; i++ {
		l.Receive(i, []byte{'a' + byte(i)})
	}
	if got := fmt.Sprint(readAll(l)); got != "[b c d e f g h i j k l m]" {
		t.Fatalf("in-order delivery %v (the stored copies, not the duplicates)", got)
	}
}

func TestReceiveCopies(t *testing.T) {
	l := New(Config{})
	buf := []byte("hello")
	l.Receive(0, buf)
	buf[0] = 'J'
	if p, ok := l.Read(); !ok || string(p) != "hello" {
		t.Fatalf("Receive did not copy: %q", p)
	}
}

func TestAckMRU(t *testing.T) {
	l := New(Config{})
	for i := uint32(0); i < 3; i++ {
		l.Receive(i, nil)
		if got := l.TakeAcks(MaxAcksAck); got[0] != i {
			t.Fatalf("ack %d: %v", i, got)
		}
	}
	l.Receive(3, nil)
	if got := l.TakeAcks(MaxAcksAck); fmt.Sprint(got) != "[3 2 1 0]" {
		t.Fatalf("acks with MRU %v, want [3 2 1 0]", got)
	}
	// Nothing pending: piggybacked ACKs repeat the MRU only.
	if got := l.TakeAcks(MaxAcksControl); fmt.Sprint(got) != "[3 2 1 0]" || l.HasPendingAcks() {
		t.Fatalf("MRU repeat %v", got)
	}
	// The MRU keeps the 8 newest; a re-acknowledged id moves to the front.
	for i := uint32(4); i < 10; i++ {
		l.Receive(i, nil)
	}
	l.Receive(5, nil) // duplicate, already pending: owed once
	if got := l.TakeAcks(MaxAcksControl); fmt.Sprint(got) != "[4 5 6 7]" {
		t.Fatalf("pending oldest first: %v", got)
	}
	if got := l.TakeAcks(MaxAcksAck); fmt.Sprint(got) != "[8 9 7 6 5 4 3 2]" {
		t.Fatalf("pending then MRU: %v", got)
	}
	l.Receive(3, nil)
	if got := l.TakeAcks(100); fmt.Sprint(got) != "[3 9 8 7 6 5 4 2]" {
		t.Fatalf("max clamps to 8, re-acked id moves to front: %v", got)
	}
	if got := l.TakeAcks(0); got != nil {
		t.Fatalf("TakeAcks(0) = %v", got)
	}
}

func TestPendingAcksBounded(t *testing.T) {
	l := New(Config{FirstRecvID: 1 << 20})
	for i := uint32(0); i < 1000; i++ {
		l.Receive(i, nil) // all old duplicates
	}
	n := 0
	for l.HasPendingAcks() {
		n += len(l.TakeAcks(MaxAcksAck))
		if n > 10000 {
			t.Fatal("pending acks do not drain")
		}
	}
	if n > pendingCap+mruSize {
		t.Fatalf("%d acks owed for 1000 duplicates, want bounded by %d", n, pendingCap)
	}
}

// transfer moves every payload from a to b over a perfect link and returns
// what b delivered.
func transfer(t *testing.T, a, b *Layer, now time.Time) []string {
	t.Helper()
	var got []string
	for round := 0; round < 100 && (a.Unacked() > 0 || a.Queued() > 0); round++ {
		for _, o := range a.Due(now) {
			if !b.Receive(o.ID, o.Payload) {
				t.Fatalf("id %d refused", o.ID)
			}
		}
		a.OnAcks(b.TakeAcks(MaxAcksAck))
		got = append(got, readAll(b)...)
	}
	return got
}

func TestWrapAround(t *testing.T) {
	start := uint32(0xFFFFFFFC)
	a := New(Config{FirstSendID: start})
	b := New(Config{FirstRecvID: start})
	var sent []uint32
	for i := 0; i < 10; i++ {
		_ = a.Send([]byte{'0' + byte(i)})
	}
	out := a.Due(t0)
	for _, o := range out {
		sent = append(sent, o.ID)
	}
	if fmt.Sprint(sent) != "[4294967292 4294967293 4294967294 4294967295 0 1]" {
		t.Fatalf("ids across the wrap %v", sent)
	}
	// An id just past the wrap is inside the window; 8 (= start+12) is not;
	// 0xFFFFFFF0 is an old duplicate.
	if !b.Receive(1, out[5].Payload) || b.Receive(8, nil) {
		t.Fatal("receive window wrong across the wrap")
	}
	if !b.Receive(0xFFFFFFF0, nil) {
		t.Fatal("old duplicate refused")
	}
	if got := b.TakeAcks(MaxAcksAck); fmt.Sprint(got) != "[1 4294967280]" {
		t.Fatalf("acks %v", got)
	}
	for _, o := range out[:5] {
		b.Receive(o.ID, o.Payload)
	}
	a.OnAcks(b.TakeAcks(MaxAcksAck))
	got := append(readAll(b), transfer(t, a, b, t0)...)
	if fmt.Sprint(got) != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("across the wrap got %v", got)
	}
}

// TestFirstIDOne models a session whose hard resets (message 0) were
// exchanged statelessly: both sides continue at 1.
func TestFirstIDOne(t *testing.T) {
	a := New(Config{FirstSendID: 1})
	b := New(Config{FirstRecvID: 1})
	_ = a.Send([]byte("client hello"))
	_ = a.Send([]byte("more"))
	out := a.Due(t0)
	if ids(out) != "[1 2]" {
		t.Fatalf("first ids %v", ids(out))
	}
	if !b.Receive(0, []byte("reset")) {
		t.Fatal("the reset again (id 0) must be a duplicate, not refused")
	}
	if _, ok := b.Read(); ok {
		t.Fatal("id 0 delivered although the layer starts at 1")
	}
	if b.Receive(13, nil) || !b.Receive(12, nil) {
		t.Fatal("window must be 1..12")
	}
	b.Receive(2, out[1].Payload)
	b.Receive(1, out[0].Payload)
	if got := b.TakeAcks(MaxAcksAck); fmt.Sprint(got) != "[0 12 2 1]" {
		t.Fatalf("acks %v", got)
	}
	if got := fmt.Sprint(readAll(b)); got != "[client hello more]" {
		t.Fatalf("delivered %v", got)
	}
}

// TestLossyLink runs two layers over links that drop, duplicate and
// reorder in both directions, with ACKs both piggybacked and dedicated,
// and checks exactly-once in-order delivery for many seeds.
func TestLossyLink(t *testing.T) {
	type pkt struct {
		id      uint32
		hasID   bool
		payload []byte
		acks    []uint32
		at      time.Time
	}
	const n = 80
	for seed := int64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewSource(seed))
		first := rng.Uint32()
		if seed%4 == 0 {
			first = 0xFFFFFFFF - uint32(rng.Intn(40)) // cross the wrap
		}
		cfg := Config{InitialTimeout: 200 * time.Millisecond, MaxTimeout: 2 * time.Second}
		ends := [2]*Layer{
			New(Config{InitialTimeout: cfg.InitialTimeout, MaxTimeout: cfg.MaxTimeout, FirstSendID: first, FirstRecvID: first + 7}),
			New(Config{InitialTimeout: cfg.InitialTimeout, MaxTimeout: cfg.MaxTimeout, FirstSendID: first + 7, FirstRecvID: first}),
		}
		var wires [2][]pkt // wires[i]: packets towards ends[i]
		var queued, got [2][]string
		now := t0
		send := func(to int, p pkt) {
			switch r := rng.Intn(10); {
			case r < 2: // lost
				return
			case r < 3: // duplicated
				wires[to] = append(wires[to], p)
			}
			p.at = now.Add(time.Duration(rng.Intn(300)) * time.Millisecond) // jitter reorders
			wires[to] = append(wires[to], p)
		}
		done := func() bool { return len(got[0]) == n && len(got[1]) == n }
		for step := 0; step < 100000 && !done(); step++ {
			for i, l := range ends {
				for len(queued[i]) < n {
					msg := fmt.Sprintf("%d:%d", i, len(queued[i]))
					if l.Send([]byte(msg)) != nil {
						break
					}
					queued[i] = append(queued[i], msg)
				}
				peer := 1 - i
				for _, o := range l.Due(now) {
					acks := append([]uint32(nil), l.TakeAcks(MaxAcksControl)...)
					send(peer, pkt{id: o.ID, hasID: true, payload: append([]byte(nil), o.Payload...), acks: acks})
				}
				if l.HasPendingAcks() {
					send(peer, pkt{acks: append([]uint32(nil), l.TakeAcks(MaxAcksAck)...)})
				}
				if l.Unacked() > SendWindow || l.Queued() > MaxQueued {
					t.Fatalf("seed %d: unacked %d queued %d", seed, l.Unacked(), l.Queued())
				}
			}
			// Deliver what has arrived by now.
			for i, l := range ends {
				rest := wires[i][:0]
				for _, p := range wires[i] {
					if p.at.After(now) {
						rest = append(rest, p)
						continue
					}
					l.OnAcks(p.acks)
					if p.hasID {
						l.Receive(p.id, p.payload)
					}
				}
				wires[i] = rest
				got[i] = append(got[i], readAll(l)...)
				if rng.Intn(3) == 0 {
					l.Release() // a no-op unless idle; must never lose a message
				}
			}
			now = now.Add(20 * time.Millisecond)
		}
		for i := range ends {
			if fmt.Sprint(got[1-i]) != fmt.Sprint(queued[i]) {
				t.Fatalf("seed %d: side %d delivered %v\nwant %v", seed, 1-i, got[1-i], queued[i])
			}
		}
	}
}

// TestReleaseWhenIdle: an idle Layer lets go of its buffers, and after
// that sends, retransmits and receives as before, under the ids that follow.
func TestReleaseWhenIdle(t *testing.T) {
	a, b := New(Config{}), New(Config{})
	exchange := func(msgs ...string) {
		t.Helper()
		for _, m := range msgs {
			if err := a.Send([]byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		for _, o := range a.Due(t0) {
			b.Receive(o.ID, o.Payload)
		}
		if got := readAll(b); fmt.Sprint(got) != fmt.Sprint(msgs) {
			t.Fatalf("read %q, want %q", got, msgs)
		}
		a.OnAcks(b.TakeAcks(MaxAcksAck))
	}
	exchange("hello", "certificate")
	a.Send([]byte("in flight"))
	a.Due(t0)
	a.Release()
	if !a.Buffered() {
		t.Fatal("Release dropped the ring with a message in flight")
	}
	for _, o := range a.Due(t0.Add(time.Minute)) { // the retransmission
		b.Receive(o.ID, o.Payload)
	}
	readAll(b)
	a.OnAcks(b.TakeAcks(MaxAcksAck))
	a.Release()
	b.Release()
	if a.Buffered() || b.Buffered() {
		t.Fatal("idle layers kept their buffers")
	}
	exchange("renegotiated", "again")
	if a.Unacked() != 0 || a.Queued() != 0 || a.nextID != 5 || b.readID != 5 {
		t.Fatalf("after release: unacked %d queued %d next %d read %d", a.Unacked(), a.Queued(), a.nextID, b.readID)
	}
}

// TestAllocs checks that a steady send/ack cycle does not allocate.
func TestAllocs(t *testing.T) {
	a, r := New(Config{}), New(Config{})
	payload := make([]byte, 1200)
	cycle := func() {
		_ = a.Send(payload)
		for _, o := range a.Due(t0) {
			r.Receive(o.ID, o.Payload)
		}
		r.Read()
		a.OnAcks(r.TakeAcks(MaxAcksAck))
		_ = a.NextDeadline()
	}
	for i := 0; i < 2*sendRing; i++ { // warm every buffer
		cycle()
	}
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Fatalf("%v allocations per send/ack cycle", n)
	}
}

func BenchmarkSendAck(b *testing.B) {
	b.ReportAllocs()
	a, r := New(Config{}), New(Config{})
	payload := make([]byte, 1000)
	b.SetBytes(int64(len(payload)))
	for i := 0; i < b.N; i++ {
		_ = a.Send(payload)
		for _, o := range a.Due(t0) {
			r.Receive(o.ID, o.Payload)
		}
		r.Read()
		a.OnAcks(r.TakeAcks(MaxAcksAck))
	}
}

// FuzzLayer interprets the input as operations on a sender a and a
// receiver b linked by a lossy, reordering, duplicating network, plus
// forged receptions and ACKs. Every payload is the 4-byte id of its
// message, so whatever the peer delivers can be checked: the k-th Read
// must yield id FirstRecvID+k.
func FuzzLayer(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 1, 0, 2, 0, 2, 1, 3, 8})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFC, 0, 7, 0, 8, 1, 0, 2, 0, 2, 1, 2, 2, 3, 8, 4, 30, 1, 0, 2, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5, 3, 5, 5, 6, 1, 3, 2, 4, 255, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		first := binary.BigEndian.Uint32(data)
		ops := data[4:]
		a := New(Config{FirstSendID: first})
		b := New(Config{FirstRecvID: first})
		enc := func(id uint32) []byte { return binary.BigEndian.AppendUint32(nil, id) }
		now := t0
		var net []Outgoing
		var delivered uint32
		sent := 0
		read := func() {
			for p, ok := b.Read(); ok; p, ok = b.Read() {
				if len(p) != 4 || binary.BigEndian.Uint32(p) != first+delivered {
					t.Fatalf("read %x, want id %d", p, first+delivered)
				}
				delivered++
			}
		}
		for i := 0; i+1 < len(ops); i += 2 {
			arg := ops[i+1]
			if arg&0x80 != 0 {
				a.Release()
				b.Release()
			}
			switch ops[i] % 7 {
			case 0: // send
				err := a.Send(enc(first + uint32(sent)))
				if err == nil {
					sent++
				} else if !errors.Is(err, ErrQueueFull) || a.Queued() != MaxQueued {
					t.Fatalf("send: %v with %d queued", err, a.Queued())
				}
			case 1: // transmit what is due
				for _, o := range a.Due(now) {
					if o.ID-first >= uint32(sent) || string(o.Payload) != string(enc(o.ID)) {
						t.Fatalf("Due gave id %d payload %x, %d sent", o.ID, o.Payload, sent)
					}
					net = append(net, Outgoing{ID: o.ID, Payload: append([]byte(nil), o.Payload...)})
				}
			case 2: // deliver a packet from the network; odd arg keeps a copy
				if len(net) > 0 {
					k := int(arg) % len(net)
					o := net[k]
					if arg&1 == 0 {
						net = append(net[:k], net[k+1:]...)
					}
					b.Receive(o.ID, o.Payload)
				}
			case 3: // ACK back, maybe lost
				acks := b.TakeAcks(int(arg % 10))
				if len(acks) > min(int(arg%10), MaxAcksAck) {
					t.Fatalf("%d acks for max %d", len(acks), arg%10)
				}
				if arg&0x80 == 0 {
					a.OnAcks(acks)
				}
			case 4: // time passes
				now = now.Add(time.Duration(arg) * 50 * time.Millisecond)
			case 5: // a forged reception near the window
				id := b.readID + uint32(int8(arg))
				ok := b.Receive(id, enc(id))
				if inWin := id-b.readID < ReceiveWindow || id-b.readID >= 1<<31; ok != inWin {
					t.Fatalf("Receive(%d) = %v with next %d", id, ok, b.readID)
				}
			case 6: // forged ACKs, for ids never sent (an ACK for a sent
				// id b never got would rightly lose the message)
				forged := []uint32{first + uint32(sent) + uint32(arg), first - 1 - uint32(arg), uint32(arg) << 24}
				for _, id := range forged {
					if id-first >= uint32(sent) {
						a.OnAcks([]uint32{id})
					}
				}
			}
			read()
			if a.Unacked() > SendWindow || a.Queued() > MaxQueued || a.Unacked()+a.Queued() > sent {
				t.Fatalf("unacked %d queued %d sent %d", a.Unacked(), a.Queued(), sent)
			}
			if d := a.NextDeadline(); d.IsZero() != (a.Unacked()+a.Queued() == 0) {
				t.Fatalf("deadline %v with %d unacked %d queued", d, a.Unacked(), a.Queued())
			}
		}
		// Over a perfect link everything sent must arrive, exactly once
		// (forged receptions may have delivered ids a never sent).
		for round := 0; round < 10000 && (a.Unacked() > 0 || a.Queued() > 0); round++ {
			now = now.Add(time.Minute)
			for _, o := range a.Due(now) {
				b.Receive(o.ID, o.Payload)
			}
			a.OnAcks(b.TakeAcks(MaxAcksAck))
			read()
		}
		if a.Unacked() > 0 || a.Queued() > 0 || delivered < uint32(sent) {
			t.Fatalf("stuck: unacked %d queued %d, delivered %d of %d", a.Unacked(), a.Queued(), delivered, sent)
		}
	})
}
