package policy

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync/atomic"
)

// ParticipantID identifies a user or device in one Snapshot; Lookup maps
// names to IDs once (at session setup), so that the per-packet Allowed
// works on integers. The zero value is no participant.
type ParticipantID uint32

type participant struct {
	name     string
	device   bool
	disabled bool
	groups   []int32 // every group it is a member of, through subgroups too; sorted
	roles    []string
	rights   Rights
	prof     *profile // shared by participants with the same groups
}

// profile answers, for a set of source groups, which rules lead to a
// destination group, in one bit test and one slice: reach has bit g set
// when some rule leads from one of the groups to group g; rank[w] counts
// the bits set in reach[:w], so that the rules for the i-th set bit are
// ruleIdx[spans[i]:spans[i+1]] of the snapshot, sorted by relation.
type profile struct {
	reach []uint64
	rank  []uint32
	spans []uint32
}

type group struct {
	name  string
	intra bool
}

// rule is one orientation of a relation in the group-pair index.
type rule struct {
	rel       int32
	oneWayRev bool // the To->From orientation of a one-way relation: never opens flows
	disabled  bool
	notBefore int64 // unix nanoseconds; math.MinInt64 when unbounded
	notAfter  int64 // math.MaxInt64 when unbounded
	services  []Service
}

// Snapshot is a compiled model: immutable, safe for concurrent use, and
// answering per-packet questions without locks or allocation.
type Snapshot struct {
	gen          uint64
	model        Model         // a deep copy, for Explain and Model
	participants []participant // index = ParticipantID-1
	byName       map[string]ParticipantID
	groups       []group
	groupIndex   map[string]int32
	roleRights   map[string]Rights
	rules        []rule     // every orientation of every relation
	bySource     [][]target // per group: where its rules lead
	ruleIdx      []uint32   // the profiles' rule lists, concatenated
}

// target is a destination group and a rule (index in Snapshot.rules) that
// leads there.
type target struct {
	to   int32
	rule uint32
}

var generation atomic.Uint64

// Compile validates the model and builds a Snapshot. Errors wrap
// ErrInvalid, ErrUnknownReference or ErrCycle and name the element; all
// problems found are reported together. Every name (of users, devices,
// groups, roles and relations) must pass ValidName; an error about a name
// also wraps ErrInvalidName.
func Compile(m *Model) (*Snapshot, error) {
	if m == nil {
		m = &Model{}
	}
	c := &compiler{s: &Snapshot{
		gen:        generation.Add(1),
		model:      cloneModel(m),
		byName:     map[string]ParticipantID{},
		groupIndex: map[string]int32{},
		roleRights: map[string]Rights{RoleAdmin: AllRights, RoleVPNUser: RightConnectVPN},
	}}
	m = &c.s.model
	c.roles(m)
	c.groups(m)
	ancestors := c.ancestors(m)
	c.participants(m, ancestors)
	c.relations(m)
	if len(c.errs) == 0 {
		c.profiles()
	}
	if len(c.errs) > 0 {
		const maxShown = 20
		msgs := c.errs
		if len(msgs) > maxShown {
			msgs = append(msgs[:maxShown:maxShown], fmt.Errorf("and %d more", len(c.errs)-maxShown))
		}
		parts := make([]string, len(msgs))
		for i, e := range msgs {
			parts[i] = e.Error()
		}
		// Wrap the first error so errors.Is finds its kind; one line per
		// problem, and no line break after the last.
		if len(parts) == 1 {
			return nil, c.errs[0]
		}
		return nil, fmt.Errorf("%w\n%s", c.errs[0], strings.Join(parts[1:], "\n"))
	}
	return c.s, nil
}

type compiler struct {
	s    *Snapshot
	errs []error
}

func (c *compiler) fail(kind error, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{kind}, args...)...))
}

// checkName reports a name that breaks the rule of ValidName, naming its
// kind. The element is compiled all the same, so that what refers to it
// does not add errors of its own.
func (c *compiler) checkName(kind, name string) {
	if why := nameProblem(name); why != "" {
		c.fail(ErrInvalid, "%s %s: %w: %s; %s", kind, quoteName(name), ErrInvalidName, why, NameRule)
	}
}

func (c *compiler) roles(m *Model) {
	for i, r := range m.Roles {
		switch {
		case r.Name == "":
			c.fail(ErrInvalid, "role %d has no name", i)
		case r.Name == RoleAdmin || r.Name == RoleVPNUser:
			c.fail(ErrInvalid, "role %q is predefined and cannot be redefined", r.Name)
		case slices.ContainsFunc(m.Roles[:i], func(o Role) bool { return o.Name == r.Name }):
			c.fail(ErrInvalid, "role %s is defined twice", quoteName(r.Name))
		case r.Rights&^AllRights != 0:
			c.fail(ErrInvalid, "role %s has unknown rights %#x", quoteName(r.Name), uint16(r.Rights&^AllRights))
		default:
			c.checkName("role", r.Name)
			c.s.roleRights[r.Name] = r.Rights
		}
	}
}

func (c *compiler) groups(m *Model) {
	c.s.groups = append(c.s.groups, group{name: GroupVPNUser})
	c.s.groupIndex[GroupVPNUser] = 0
	for i, g := range m.Groups {
		switch {
		case g.Name == "":
			c.fail(ErrInvalid, "group %d has no name", i)
		case g.Name == GroupVPNUser:
			// The predefined group may be listed to set its properties.
			c.s.groups[0].intra = g.Intra
		default:
			if _, dup := c.s.groupIndex[g.Name]; dup {
				c.fail(ErrInvalid, "group %s is defined twice", quoteName(g.Name))
				continue
			}
			c.checkName("group", g.Name)
			c.s.groupIndex[g.Name] = int32(len(c.s.groups))
			c.s.groups = append(c.s.groups, group{name: g.Name, intra: g.Intra})
		}
	}
}

// ancestors returns, per group index, the groups that contain it through
// subgroup edges (itself included), and reports cycles.
func (c *compiler) ancestors(m *Model) [][]int32 {
	n := len(c.s.groups)
	parents := make([][]int32, n) // child -> groups listing it as subgroup
	for _, g := range m.Groups {
		gi, ok := c.s.groupIndex[g.Name]
		if !ok {
			continue
		}
		for _, sub := range g.Subgroups {
			si, ok := c.s.groupIndex[sub]
			if !ok {
				c.fail(ErrUnknownReference, "group %s lists subgroup %s, which is not defined", quoteName(g.Name), quoteName(sub))
				continue
			}
			parents[si] = append(parents[si], gi)
		}
	}
	// Depth-first search for cycles, colouring nodes.
	const (
		white = iota
		grey
		black
	)
	colour := make([]uint8, n)
	var path []int32
	var visit func(g int32) bool
	visit = func(g int32) bool {
		colour[g] = grey
		path = append(path, g)
		for _, p := range parents[g] {
			if colour[p] == grey {
				names := []string{}
				start := slices.Index(path, p)
				for _, x := range path[start:] {
					names = append(names, c.s.groups[x].name)
				}
				names = append(names, c.s.groups[p].name)
				slices.Reverse(names)
				c.fail(ErrCycle, "groups contain each other: %s", strings.Join(names, " contains "))
				return false
			}
			if colour[p] == white && !visit(p) {
				return false
			}
		}
		path = path[:len(path)-1]
		colour[g] = black
		return true
	}
	for g := range n {
		if colour[g] == white && !visit(int32(g)) {
			return nil
		}
	}
	anc := make([][]int32, n)
	var collect func(g int32, into map[int32]bool)
	collect = func(g int32, into map[int32]bool) {
		if into[g] {
			return
		}
		into[g] = true
		for _, p := range parents[g] {
			collect(p, into)
		}
	}
	for g := range n {
		set := map[int32]bool{}
		collect(int32(g), set)
		for x := range set {
			anc[g] = append(anc[g], x)
		}
		slices.Sort(anc[g])
	}
	return anc
}

func (c *compiler) participants(m *Model, ancestors [][]int32) {
	add := func(kind, name string, device, disabled bool, groups []string, roles []string) {
		if name == "" {
			c.fail(ErrInvalid, "a %s has no name", kind)
			return
		}
		if _, dup := c.s.byName[name]; dup {
			c.fail(ErrInvalid, "participant %s is defined twice (users and devices share one namespace)", quoteName(name))
			return
		}
		c.checkName(kind, name)
		p := participant{name: name, device: device, disabled: disabled, roles: roles}
		set := map[int32]bool{}
		for _, g := range groups {
			gi, ok := c.s.groupIndex[g]
			if !ok {
				c.fail(ErrUnknownReference, "%s %s is a member of group %s, which is not defined", kind, quoteName(name), quoteName(g))
				continue
			}
			if ancestors == nil {
				continue
			}
			for _, a := range ancestors[gi] {
				set[a] = true
			}
		}
		for g := range set {
			p.groups = append(p.groups, g)
		}
		slices.Sort(p.groups)
		for _, r := range roles {
			rights, ok := c.s.roleRights[r]
			if !ok {
				c.fail(ErrUnknownReference, "user %s holds role %s, which is not defined", quoteName(name), quoteName(r))
				continue
			}
			p.rights |= rights
		}
		c.s.participants = append(c.s.participants, p)
		c.s.byName[name] = ParticipantID(len(c.s.participants))
	}
	for _, u := range m.Users {
		add("user", u.Name, false, u.Disabled, u.Groups, u.Roles)
	}
	for _, d := range m.Devices {
		add("device", d.Name, true, d.Disabled, d.Groups, nil)
		for _, p := range d.Subnets {
			if !p.IsValid() || p.Masked() != p {
				c.fail(ErrInvalid, "device %s: subnet %v is not a network address with its prefix length", quoteName(d.Name), p)
			}
		}
	}
}

func (c *compiler) relations(m *Model) {
	names := map[string]bool{}
	for i, r := range m.Relations {
		label := "relation " + quoteName(r.Name)
		if r.Name == "" {
			label = fmt.Sprintf("relation %d", i)
			c.fail(ErrInvalid, "%s has no name", label)
		} else if names[r.Name] {
			c.fail(ErrInvalid, "%s is defined twice", label)
		} else {
			c.checkName("relation", r.Name)
		}
		names[r.Name] = true
		from, okFrom := c.s.groupIndex[r.From]
		to, okTo := c.s.groupIndex[r.To]
		if !okFrom {
			c.fail(ErrUnknownReference, "%s: from-group %s is not defined", label, quoteName(r.From))
		}
		if !okTo {
			c.fail(ErrUnknownReference, "%s: to-group %s is not defined", label, quoteName(r.To))
		}
		if r.Direction != OneWay && r.Direction != Both {
			c.fail(ErrInvalid, "%s: direction %d", label, r.Direction)
		}
		if !r.NotBefore.IsZero() && !r.NotAfter.IsZero() && !r.NotAfter.After(r.NotBefore) {
			c.fail(ErrInvalid, "%s: valid until %s, before it becomes valid at %s", label,
				r.NotAfter.Format("2006-01-02 15:04 MST"), r.NotBefore.Format("2006-01-02 15:04 MST"))
		}
		for _, s := range r.Services {
			if err := checkService(s); err != nil {
				c.fail(ErrInvalid, "%s: service %s: %s", label, s, err)
			}
		}
		if !okFrom || !okTo {
			continue
		}
		ru := rule{rel: int32(i), disabled: r.Disabled, notBefore: math.MinInt64, notAfter: math.MaxInt64, services: r.Services}
		if !r.NotBefore.IsZero() {
			ru.notBefore = r.NotBefore.UnixNano()
		}
		if !r.NotAfter.IsZero() {
			ru.notAfter = r.NotAfter.UnixNano()
		}
		rev := ru
		rev.oneWayRev = r.Direction == OneWay
		if c.s.bySource == nil {
			c.s.bySource = make([][]target, len(c.s.groups))
		}
		c.s.bySource[from] = append(c.s.bySource[from], target{to, uint32(len(c.s.rules))})
		c.s.rules = append(c.s.rules, ru)
		c.s.bySource[to] = append(c.s.bySource[to], target{from, uint32(len(c.s.rules))})
		c.s.rules = append(c.s.rules, rev)
	}
}

// profiles builds one profile per distinct group set of the participants.
func (c *compiler) profiles() {
	s := c.s
	words := (len(s.groups) + 63) / 64
	shared := map[string]*profile{}
	var key []byte
	for i := range s.participants {
		p := &s.participants[i]
		key = key[:0]
		for _, g := range p.groups {
			key = append(key, byte(g), byte(g>>8), byte(g>>16), byte(g>>24))
		}
		if prof, ok := shared[string(key)]; ok {
			p.prof = prof
			continue
		}
		byDest := map[int32][]uint32{}
		for _, g := range p.groups {
			if int(g) >= len(s.bySource) {
				continue
			}
			for _, t := range s.bySource[g] {
				byDest[t.to] = append(byDest[t.to], t.rule)
			}
		}
		prof := &profile{reach: make([]uint64, words), rank: make([]uint32, words)}
		dests := make([]int32, 0, len(byDest))
		for d := range byDest {
			dests = append(dests, d)
			prof.reach[d>>6] |= 1 << (d & 63)
		}
		slices.Sort(dests)
		n := uint32(0)
		for w := range prof.reach {
			prof.rank[w] = n
			n += uint32(bits.OnesCount64(prof.reach[w]))
		}
		for _, d := range dests {
			rs := byDest[d]
			// Sorted by relation (two rules of one relation sit side by
			// side), without repeats, so that the first rule that allows
			// is the one to name.
			slices.SortFunc(rs, func(a, b uint32) int { return cmp.Compare(a, b) })
			rs = slices.Compact(rs)
			prof.spans = append(prof.spans, uint32(len(s.ruleIdx)))
			s.ruleIdx = append(s.ruleIdx, rs...)
		}
		prof.spans = append(prof.spans, uint32(len(s.ruleIdx)))
		shared[string(key)] = prof
		p.prof = prof
	}
}

func checkService(s Service) error {
	switch s.Proto {
	case ProtoAny:
		if len(s.Ports) > 0 || len(s.ICMPTypes) > 0 {
			return fmt.Errorf("any takes no ports or types")
		}
	case ProtoTCP, ProtoUDP:
		if len(s.ICMPTypes) > 0 {
			return fmt.Errorf("ICMP types on a TCP or UDP service")
		}
		for _, p := range s.Ports {
			if p.Low > p.High {
				return fmt.Errorf("port range %d-%d is empty", p.Low, p.High)
			}
		}
	case ProtoICMP, ProtoICMPv6:
		if len(s.Ports) > 0 {
			return fmt.Errorf("ports on an ICMP service")
		}
	default:
		if len(s.Ports) > 0 || len(s.ICMPTypes) > 0 {
			return fmt.Errorf("ports or types on protocol %d", s.Proto)
		}
	}
	return nil
}

func cloneModel(m *Model) Model {
	c := Model{
		Roles:     slices.Clone(m.Roles),
		Users:     slices.Clone(m.Users),
		Devices:   slices.Clone(m.Devices),
		Groups:    slices.Clone(m.Groups),
		Relations: slices.Clone(m.Relations),
	}
	for i := range c.Users {
		c.Users[i].Roles = slices.Clone(c.Users[i].Roles)
		c.Users[i].Groups = slices.Clone(c.Users[i].Groups)
	}
	for i := range c.Devices {
		c.Devices[i].Groups = slices.Clone(c.Devices[i].Groups)
		c.Devices[i].Subnets = slices.Clone(c.Devices[i].Subnets)
	}
	for i := range c.Groups {
		c.Groups[i].Subgroups = slices.Clone(c.Groups[i].Subgroups)
	}
	for i := range c.Relations {
		c.Relations[i].Services = slices.Clone(c.Relations[i].Services)
		for j := range c.Relations[i].Services {
			s := &c.Relations[i].Services[j]
			s.Ports = slices.Clone(s.Ports)
			s.ICMPTypes = slices.Clone(s.ICMPTypes)
		}
	}
	return c
}
