package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// reference.decide is the specification written as plainly as possible, straight
// from the Model: walk every relation in order, test membership by walking
// subgroups, and pick the answer the documentation promises. It shares no
// code with Compile or Snapshot.
// reference holds the model and two plain lookup tables built from it:
// participants by name, and for every group the groups it contains
// (itself, and its subgroups at any depth).
type reference struct {
	m        *Model
	parts    map[string]refPart
	contains map[string]map[string]bool
}

type refPart struct {
	groups   []string
	disabled bool
}

func newReference(m *Model) *reference {
	r := &reference{m: m, parts: map[string]refPart{}, contains: map[string]map[string]bool{}}
	for _, u := range m.Users {
		r.parts[u.Name] = refPart{u.Groups, u.Disabled}
	}
	for _, d := range m.Devices {
		r.parts[d.Name] = refPart{d.Groups, d.Disabled}
	}
	subs := map[string][]string{}
	for _, g := range m.Groups {
		subs[g.Name] = append(subs[g.Name], g.Subgroups...)
	}
	for _, g := range append([]string{GroupVPNUser}, groupNames(m)...) {
		set := map[string]bool{}
		todo := []string{g}
		for len(todo) > 0 {
			x := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			if set[x] {
				continue
			}
			set[x] = true
			todo = append(todo, subs[x]...)
		}
		r.contains[g] = set
	}
	return r
}

func groupNames(m *Model) []string {
	var names []string
	for _, g := range m.Groups {
		names = append(names, g.Name)
	}
	return names
}

func (ref *reference) decide(from, to string, f *Flow, at time.Time) (allowed bool, reason Reason, relation string, group string) {
	m := ref.m
	pa, okA := ref.parts[from]
	pb, okB := ref.parts[to]
	if !okA || !okB {
		return false, ReasonUnknownParticipant, "", ""
	}
	if pa.disabled || pb.disabled {
		return false, ReasonDisabledParticipant, "", ""
	}
	member := func(p refPart, g string) bool {
		for _, direct := range p.groups {
			if ref.contains[g][direct] {
				return true
			}
		}
		return false
	}
	covers := func(r Relation) bool {
		if len(r.Services) == 0 {
			return true
		}
		for _, s := range r.Services {
			if s.Proto == ProtoAny {
				return true
			}
			if s.Proto != f.Proto {
				continue
			}
			switch s.Proto {
			case ProtoTCP, ProtoUDP:
				if len(s.Ports) == 0 {
					return true
				}
				for _, p := range s.Ports {
					if p.Low <= f.DstPort && f.DstPort <= p.High {
						return true
					}
				}
			case ProtoICMP, ProtoICMPv6:
				if len(s.ICMPTypes) == 0 || slices.Contains(s.ICMPTypes, f.ICMPType) {
					return true
				}
			default:
				return true
			}
		}
		return false
	}
	outcome := func(r Relation, reverse bool) Reason {
		switch {
		case r.Disabled:
			return ReasonRelationDisabled
		case reverse && r.Direction == OneWay:
			return ReasonWrongDirection
		case !r.NotBefore.IsZero() && at.Before(r.NotBefore):
			return ReasonNotYetValid
		case !r.NotAfter.IsZero() && at.After(r.NotAfter):
			return ReasonExpired
		case !covers(r):
			return ReasonService
		}
		return ReasonRelation
	}
	failAt, failReason := -1, ReasonNone
	for i, r := range m.Relations {
		var outcomes []Reason
		if member(pa, r.From) && member(pb, r.To) {
			outcomes = append(outcomes, outcome(r, false))
		}
		if member(pa, r.To) && member(pb, r.From) {
			outcomes = append(outcomes, outcome(r, true))
		}
		if slices.Contains(outcomes, ReasonRelation) {
			return true, ReasonRelation, r.Name, ""
		}
		if len(outcomes) > 0 && failAt < 0 {
			// The closest miss of the first relation that links them.
			failAt, failReason = i, slices.Min(outcomes)
		}
	}
	// Groups in their documented order: the predefined one first.
	order := []Group{{Name: GroupVPNUser}}
	for _, g := range m.Groups {
		if g.Name == GroupVPNUser {
			order[0].Intra = g.Intra
		} else {
			order = append(order, g)
		}
	}
	for _, g := range order {
		if g.Intra && member(pa, g.Name) && member(pb, g.Name) {
			return true, ReasonIntraGroup, "", g.Name
		}
	}
	if failAt >= 0 {
		return false, failReason, m.Relations[failAt].Name, ""
	}
	return false, ReasonNoRelation, "", ""
}

// randomModel builds a model with the given numbers of participants,
// groups and relations. Subgroups point only to later groups, so there are
// no cycles. Ports, types and times come from small sets so that random
// flows hit and miss them.
func randomModel(r *rand.Rand, participants, groups, relations int) *Model {
	m := &Model{}
	groupName := func(i int) string {
		if i == 0 {
			return GroupVPNUser
		}
		return fmt.Sprintf("g%d", i)
	}
	for i := 1; i < groups; i++ {
		g := Group{Name: groupName(i), Intra: r.IntN(10) == 0}
		if r.IntN(8) == 0 && i+1 < groups {
			g.Subgroups = append(g.Subgroups, groupName(i+1+r.IntN(groups-i-1)))
		}
		m.Groups = append(m.Groups, g)
	}
	pickGroups := func() []string {
		var gs []string
		for range r.IntN(3) + boolInt(r.IntN(4) != 0) {
			gs = append(gs, groupName(r.IntN(groups)))
		}
		return gs
	}
	for i := range participants {
		if i%3 == 0 {
			m.Devices = append(m.Devices, Device{Name: fmt.Sprintf("dev%d", i), Groups: pickGroups(), Disabled: r.IntN(20) == 0})
		} else {
			m.Users = append(m.Users, User{Name: fmt.Sprintf("user%d", i), Roles: []string{RoleVPNUser}, Groups: pickGroups(), Disabled: r.IntN(20) == 0})
		}
	}
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for i := range relations {
		rel := Relation{Name: fmt.Sprintf("rel%d", i), From: groupName(r.IntN(groups)), To: groupName(r.IntN(groups)),
			Direction: Direction(r.IntN(2)), Disabled: r.IntN(15) == 0}
		for range r.IntN(3) {
			rel.Services = append(rel.Services, randomService(r))
		}
		if r.IntN(5) == 0 {
			rel.NotBefore = base.Add(time.Duration(r.IntN(48)-24) * time.Hour)
		}
		if r.IntN(5) == 0 {
			rel.NotAfter = base.Add(time.Duration(r.IntN(48)+25) * time.Hour)
			if r.IntN(2) == 0 && rel.NotBefore.IsZero() {
				rel.NotAfter = base.Add(-time.Duration(r.IntN(24)) * time.Hour)
			}
		}
		m.Relations = append(m.Relations, rel)
	}
	return m
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

var testPorts = []uint16{22, 80, 102, 161, 443, 502, 4840, 44818}

func randomService(r *rand.Rand) Service {
	switch r.IntN(6) {
	case 0:
		return Service{}
	case 1, 2:
		s := Service{Proto: ProtoTCP}
		for range r.IntN(3) {
			p := testPorts[r.IntN(len(testPorts))]
			s.Ports = append(s.Ports, PortRange{p, p + uint16(r.IntN(3)*50)})
		}
		return s
	case 3:
		s := Service{Proto: ProtoUDP}
		if r.IntN(2) == 0 {
			s.Ports = []PortRange{{161, 162}}
		}
		return s
	case 4:
		s := Service{Proto: ProtoICMP}
		if r.IntN(2) == 0 {
			s.ICMPTypes = []uint8{8}
		}
		return s
	}
	return Service{Proto: 47}
}

func randomFlow(r *rand.Rand, names []string) (from, to string, f Flow, at time.Time) {
	pick := func() string {
		if r.IntN(200) == 0 {
			return "nobody"
		}
		return names[r.IntN(len(names))]
	}
	from, to = pick(), pick()
	protos := []uint8{ProtoTCP, ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6, 47}
	f = Flow{Proto: protos[r.IntN(len(protos))], Src: netip.AddrFrom4([4]byte{10, 8, 0, byte(r.IntN(256))}),
		Dst: netip.AddrFrom4([4]byte{10, 200, 7, byte(r.IntN(256))}), SrcPort: uint16(30000 + r.IntN(30000)),
		DstPort: testPorts[r.IntN(len(testPorts))] + uint16(r.IntN(3)*30)}
	if f.Proto == ProtoICMP || f.Proto == ProtoICMPv6 {
		f.SrcPort, f.DstPort, f.ICMPType = 0, 0, []uint8{0, 3, 8, 128}[r.IntN(4)]
	}
	at = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(96)-48) * time.Hour)
	return from, to, f, at
}

// TestAgreesWithReference checks the compiled snapshot against refDecide
// on random models and 100,000 random flows: the decision, the reason,
// and the relation or group it names.
func TestAgreesWithReference(t *testing.T) {
	flows := 100_000
	models := []struct{ participants, groups, relations int }{
		{3000, 300, 400}, // the acceptance size: thousands, hundreds, hundreds
		{40, 6, 30},      // small and dense: many shared groups, overlaps, subgroups
	}
	if testing.Short() {
		flows = 10_000
	}
	counts := map[Reason]int{}
	for mi, size := range models {
		r := rand.New(rand.NewPCG(uint64(mi)+1, 99))
		m := randomModel(r, size.participants, size.groups, size.relations)
		s, err := Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range m.Users {
			names = append(names, u.Name)
		}
		for _, d := range m.Devices {
			names = append(names, d.Name)
		}
		ref := newReference(m)
		for i := 0; i < flows; i++ {
			from, to, f, at := randomFlow(r, names)
			f.From, _ = s.Lookup(from)
			f.To, _ = s.Lookup(to)
			d := s.Allowed(&f, at)
			allowed, reason, rel, grp := ref.decide(from, to, &f, at)
			counts[d.Reason]++
			if d.Allowed != allowed || d.Reason != reason || s.RelationName(d.Relation) != rel || s.GroupName(d.Group) != grp {
				t.Fatalf("model %d flow %d %s -> %s %+v at %v:\n snapshot: %v %v relation %q group %q\nreference: %v %v relation %q group %q\n%s",
					mi, i, from, to, f, at, d.Allowed, d.Reason, s.RelationName(d.Relation), s.GroupName(d.Group),
					allowed, reason, rel, grp, s.Explain(&f, d))
			}
		}
		t.Logf("model %d (%d participants, %d groups, %d relations): %v", mi, size.participants, size.groups, size.relations, counts)
	}
	// The random models must exercise every outcome, or the test proves
	// little.
	for _, want := range []Reason{ReasonRelation, ReasonIntraGroup, ReasonUnknownParticipant, ReasonDisabledParticipant,
		ReasonNoRelation, ReasonService, ReasonNotYetValid, ReasonExpired, ReasonWrongDirection, ReasonRelationDisabled} {
		if counts[want] == 0 {
			t.Errorf("no flow ended with %v; outcomes %v", want, counts)
		}
	}
}
