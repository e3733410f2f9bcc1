package reliable

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func ids(out []Outgoing) []uint32 {
	var r []uint32
	for _, o := range out {
		r = append(r, o.ID)
	}
	return r
}

func TestSendWindow(t *testing.T) {
	l := New(Config{})
	for i := 0; i < 8; i++ {
		if err := l.Send([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(l.Due(t0)); fmt.Sprint(got) != "[0 1 2 3 4 5]" {
		t.Fatalf("first flight %v, want ids 0..5 (window 6)", got)
	}
	if got := l.Due(t0); len(got) != 0 {
		t.Fatalf("nothing more may go before an ACK, got %v", ids(got))
	}
	l.OnAcks([]uint32{1}) // not the lowest: window does not slide
	if got := l.Due(t0); len(got) != 0 {
		t.Fatalf("ACK of 1 must not open the window, got %v", ids(got))
	}
	l.OnAcks([]uint32{0})
	if got := ids(l.Due(t0)); fmt.Sprint(got) != "[6 7]" {
		t.Fatalf("after ACK 0 and 1, got %v, want [6 7]", got)
	}
	if l.Unacked() != 6 || l.Queued() != 0 {
		t.Fatalf("unacked %d queued %d", l.Unacked(), l.Queued())
	}
}

func TestBackoff(t *testing.T) {
	l := New(Config{})
	_ = l.Send([]byte("x"))
	l.Due(t0)
	var times []time.Duration
	now := t0
	for i := 0; i < 5; i++ {
		d := l.NextDeadline()
		times = append(times, d.Sub(now))
		now = d
		out := l.Due(now)
		if len(out) != 1 || !out[0].Retransmit {
			t.Fatalf("retransmission %d: %+v", i, out)
		}
	}
	if fmt.Sprint(times) != "[2s 4s 8s 16s 32s]" {
		t.Fatalf("backoff %v", times)
	}
	now = now.Add(time.Hour)
	l.Due(now)
	if l.NextDeadline().Sub(now) != 60*time.Second {
		t.Fatalf("backoff not capped at 60 s: %v", l.NextDeadline().Sub(now))
	}
}

func TestFastRetransmit(t *testing.T) {
	l := New(Config{})
	for i := 0; i < 5; i++ {
		_ = l.Send([]byte{byte(i)})
	}
	l.Due(t0)
	l.OnAcks([]uint32{1, 2})
	if got := l.Due(t0.Add(time.Millisecond)); len(got) != 0 {
		t.Fatalf("two later ACKs must not trigger, got %v", ids(got))
	}
	l.OnAcks([]uint32{3})
	got := l.Due(t0.Add(time.Millisecond))
	if fmt.Sprint(ids(got)) != "[0]" || !got[0].Retransmit {
		t.Fatalf("three later ACKs: got %+v, want a retransmit of 0", got)
	}
}

func TestReceiveWindowAndDuplicates(t *testing.T) {
	l := New(Config{})
	if l.Receive(12, []byte("far")) {
		t.Fatal("id 12 with 0 expected must be outside the window")
	}
	if l.HasPendingAcks() {
		t.Fatal("a message outside the window must not be acknowledged")
	}
	if !l.Receive(11, []byte("b")) || !l.Receive(0, []byte("a")) {
		t.Fatal("in-window messages refused")
	}
	if p, ok := l.Read(); !ok || string(p) != "a" {
		t.Fatalf("Read %q %v", p, ok)
	}
	if _, ok := l.Read(); ok {
		t.Fatal("11 must wait for 1..10")
	}
	if got := l.TakeAcks(8); fmt.Sprint(got) != "[11 0]" {
		t.Fatalf("acks %v", got)
	}
	l.Receive(0, []byte("a")) // duplicate: acknowledged again
	if got := l.TakeAcks(8); got[0] != 0 {
		t.Fatalf("duplicate not re-acknowledged: %v", got)
	}
	for i := uint32(1); i <= 10; i++ {
		l.Receive(i, []byte{byte(i)})
	}
	var got []string
	for p, ok := l.Read(); ok; p, ok = l.Read() {
		got = append(got, fmt.Sprint(p))
	}
	if len(got) != 11 || got[10] != "[98]" {
		t.Fatalf("in-order delivery %v", got)
	}
}

func TestAckMRU(t *testing.T) {
	l := New(Config{})
	for i := uint32(0); i < 3; i++ {
		l.Receive(i, nil)
		l.TakeAcks(8)
	}
	l.Receive(3, nil)
	if got := l.TakeAcks(8); fmt.Sprint(got) != "[3 2 1 0]" {
		t.Fatalf("acks with MRU %v, want [3 2 1 0]", got)
	}
	if got := l.TakeAcks(4); got != nil {
		t.Fatalf("nothing pending, got %v", got)
	}
}

func TestWrapAround(t *testing.T) {
	start := uint32(0xFFFFFFFC)
	a := New(Config{FirstSendID: start})
	b := New(Config{FirstRecvID: start})
	for i := 0; i < 10; i++ {
		_ = a.Send([]byte{byte(i)})
	}
	now := t0
	var got []byte
	for round := 0; round < 20 && len(got) < 10; round++ {
		for _, o := range a.Due(now) {
			b.Receive(o.ID, o.Payload)
		}
		a.OnAcks(b.TakeAcks(8))
		for p, ok := b.Read(); ok; p, ok = b.Read() {
			got = append(got, p...)
		}
	}
	if !bytes.Equal(got, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("across the wrap got %v", got)
	}
}

// TestLossyLink runs two layers over a link that drops, duplicates and
// reorders, and checks exactly-once in-order delivery.
func TestLossyLink(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		a, b := New(Config{InitialTimeout: 100 * time.Millisecond, MaxTimeout: time.Second}), New(Config{})
		const n = 60
		var want []byte
		queued := 0
		now := t0
		var got []byte
		type msg struct {
			id   uint32
			data []byte
		}
		var inflight []msg
		var acks [][]uint32
		for step := 0; step < 20000 && len(got) < n; step++ {
			for queued < n && a.Send([]byte{byte(queued)}) == nil {
				want = append(want, byte(queued))
				queued++
			}
			for _, o := range a.Due(now) {
				copies := 1
				if rng.Intn(10) == 0 {
					copies = 0
				} else if rng.Intn(10) == 0 {
					copies = 2
				}
				for c := 0; c < copies; c++ {
					inflight = append(inflight, msg{o.ID, o.Payload})
				}
			}
			rng.Shuffle(len(inflight), func(i, j int) { inflight[i], inflight[j] = inflight[j], inflight[i] })
			if len(inflight) > 0 {
				m := inflight[0]
				inflight = inflight[1:]
				b.Receive(m.id, m.data)
			}
			if ack := b.TakeAcks(MaxAcksAck); ack != nil && rng.Intn(5) != 0 {
				acks = append(acks, ack)
			}
			if len(acks) > 0 && rng.Intn(2) == 0 {
				a.OnAcks(acks[0])
				acks = acks[1:]
			}
			for p, ok := b.Read(); ok; p, ok = b.Read() {
				got = append(got, p...)
			}
			if a.Unacked() > SendWindow {
				t.Fatalf("seed %d: %d unacked", seed, a.Unacked())
			}
			now = now.Add(10 * time.Millisecond)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d: delivered %v, want %v", seed, got, want)
		}
	}
}

func FuzzLayer(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 1, 1, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		a, b := New(Config{}), New(Config{})
		now := t0
		var out []Outgoing
		var delivered []byte
		sent := 0
		for i := 0; i+1 < len(ops); i += 2 {
			arg := ops[i+1]
			switch ops[i] % 5 {
			case 0:
				if a.Send([]byte{byte(sent)}) == nil {
					sent++
				}
			case 1:
				out = append(out, a.Due(now)...)
			case 2:
				if len(out) > 0 {
					o := out[int(arg)%len(out)]
					b.Receive(o.ID, o.Payload)
				}
				b.Receive(uint32(arg)<<24|uint32(arg), []byte{arg})
			case 3:
				a.OnAcks(b.TakeAcks(int(arg%9) + 1))
			case 4:
				now = now.Add(time.Duration(arg) * 100 * time.Millisecond)
			}
			for p, ok := b.Read(); ok; p, ok = b.Read() {
				delivered = append(delivered, p...)
			}
			if a.Unacked() > SendWindow {
				t.Fatalf("%d unacked", a.Unacked())
			}
		}
		_ = delivered
	})
}

func BenchmarkSendAck(b *testing.B) {
	b.ReportAllocs()
	a, r := New(Config{}), New(Config{})
	payload := make([]byte, 1000)
	for i := 0; i < b.N; i++ {
		_ = a.Send(payload)
		for _, o := range a.Due(t0) {
			r.Receive(o.ID, o.Payload)
		}
		r.Read()
		a.OnAcks(r.TakeAcks(MaxAcksAck))
	}
}
