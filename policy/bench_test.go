package policy

import (
	"math/rand/v2"
	"testing"
	"time"
)

// largeModel is the size the acceptance names: 10,000 participants, 1,000
// groups, 10,000 relations.
func largeModel() *Model {
	return randomModel(rand.New(rand.NewPCG(42, 42)), 10_000, 1_000, 10_000)
}

// benchFlows finds, in the large model, a flow a relation allows whose
// reply the relation alone does not allow (a one-way relation), and a flow
// nothing allows.
func benchFlows(tb testing.TB, s *Snapshot, m *Model) (open, reply, denied Flow, at time.Time) {
	r := rand.New(rand.NewPCG(7, 7))
	var names []string
	for _, u := range m.Users {
		names = append(names, u.Name)
	}
	for _, d := range m.Devices {
		names = append(names, d.Name)
	}
	var haveOpen, haveDenied bool
	for i := 0; i < 10_000_000 && !(haveOpen && haveDenied); i++ {
		from, to, f, when := randomFlow(r, names)
		f.From, _ = s.Lookup(from)
		f.To, _ = s.Lookup(to)
		f.Proto, f.ICMPType, f.DstPort = ProtoTCP, 0, 102
		d := s.Allowed(&f, when)
		if !d.Allowed && d.Reason == ReasonNoRelation && !haveDenied {
			denied, haveDenied = f, true
		}
		if d.Allowed && !haveOpen {
			rev := reverse(&f)
			if !s.Allowed(&rev, when).Allowed {
				open, reply, at, haveOpen = f, rev, when, true
			}
		}
	}
	if !haveOpen || !haveDenied {
		tb.Fatal("no suitable flows in the large model")
	}
	return open, reply, denied, at
}

func BenchmarkCompile(b *testing.B) {
	m := largeModel()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAllowed(b *testing.B) {
	m := largeModel()
	s, err := Compile(m)
	if err != nil {
		b.Fatal(err)
	}
	open, _, denied, at := benchFlows(b, s, m)
	b.Run("allowed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Allowed(&open, at)
		}
	})
	b.Run("denied", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Allowed(&denied, at)
		}
	})
}

// BenchmarkFlowFilter: a packet of an allowed flow (relation check, then
// the flow is remembered: a table write), a reply (relation check misses,
// table hit) and a packet nothing allows (relation check and table miss).
func BenchmarkFlowFilter(b *testing.B) {
	m := largeModel()
	s, err := Compile(m)
	if err != nil {
		b.Fatal(err)
	}
	open, reply, denied, at := benchFlows(b, s, m)
	ff := NewFlowFilter(s, FlowFilterConfig{})
	ff.Check(&open, at)
	for _, c := range []struct {
		name string
		f    *Flow
	}{{"open", &open}, {"reply-hit", &reply}, {"miss", &denied}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ff.Check(c.f, at)
			}
		})
	}
}

func TestPerPacketChecksDoNotAllocate(t *testing.T) {
	m := largeModel()
	s, err := Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	open, reply, denied, at := benchFlows(t, s, m)
	ff := NewFlowFilter(s, FlowFilterConfig{})
	if d := ff.Check(&open, at); !d.Allowed {
		t.Fatal("open flow denied")
	}
	if d := ff.Check(&reply, at); !d.Allowed || d.Reason != ReasonReply {
		t.Fatalf("reply: %+v", d)
	}
	for name, fn := range map[string]func(){
		"Allowed":         func() { s.Allowed(&open, at) },
		"Allowed denied":  func() { s.Allowed(&denied, at) },
		"Check open":      func() { ff.Check(&open, at) },
		"Check reply hit": func() { ff.Check(&reply, at) },
		"Check miss":      func() { ff.Check(&denied, at) },
	} {
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s allocates %v times per packet", name, n)
		}
	}
}
