package policy

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Reason says why a flow was allowed or denied.
type Reason uint8

const (
	// ReasonNone is the zero value: no decision was made.
	ReasonNone Reason = iota
	// ReasonRelation: a communication relation allows the flow.
	ReasonRelation
	// ReasonIntraGroup: both participants are members of a group whose
	// members may talk to each other.
	ReasonIntraGroup
	// ReasonReply: the packet answers a flow that was allowed (FlowFilter).
	ReasonReply
	// ReasonRelated: an ICMP error about a packet of a flow that was
	// allowed (FlowFilter), so that path-MTU discovery and traceroute work
	// over one-way relations.
	ReasonRelated
	// ReasonUnknownParticipant: a side is not in the snapshot.
	ReasonUnknownParticipant
	// ReasonDisabledParticipant: a side is disabled.
	ReasonDisabledParticipant
	// ReasonNoRelation: no relation links any group of one side with any
	// group of the other (default deny).
	ReasonNoRelation
	// The remaining reasons name the relation that came closest.

	// ReasonService: the relation does not cover this protocol, port or
	// ICMP type.
	ReasonService
	// ReasonNotYetValid: the relation's validity window has not begun.
	ReasonNotYetValid
	// ReasonExpired: the relation's validity window is over.
	ReasonExpired
	// ReasonWrongDirection: the relation is one-way, and this side may
	// not open flows.
	ReasonWrongDirection
	// ReasonRelationDisabled: the relation is disabled.
	ReasonRelationDisabled
)

var reasonNames = [...]string{"none", "relation", "intra-group", "reply", "related", "unknown participant",
	"disabled participant", "no relation", "service not covered", "not yet valid", "expired",
	"wrong direction", "relation disabled"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// rank orders the failures of one relation from closest to allowed to
// farthest, so that a relation that fails in several ways (one-way
// relation between groups both sides belong to) is explained by its
// closest miss. Failures of different relations are ordered by relation.
func (r Reason) rank() int { return int(r) }

// Flow describes one packet for Allowed: who sends it to whom, and its
// protocol header fields. Ports are the TCP or UDP ports; for ICMP echo
// requests and replies ICMPID is the identifier. For an ICMP or ICMPv6
// error, Quote describes the packet the error quotes, if the caller parsed
// it (FlowFilter lets errors about remembered flows pass).
type Flow struct {
	From, To         ParticipantID
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	ICMPType         uint8
	ICMPID           uint16
	Quote            Quote
}

// Quote is the header of the packet an ICMP error quotes: the packet that
// the error's receiver sent earlier. Proto zero means none.
type Quote struct {
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16 // TCP or UDP
	ICMPType         uint8  // ICMP echo request: ICMPID is its identifier
	ICMPID           uint16
}

// Decision is the answer for one flow. Relation is the index in
// Model.Relations of the relation that allowed the flow or came closest
// (RelationName names it), Group identifies the group whose members may
// talk to each other (GroupName names it); each is -1 unless the Reason
// names it.
type Decision struct {
	Allowed  bool
	Reason   Reason
	Relation int32
	Group    int32
}

// Lookup returns the ID of the user or device with the given name.
func (s *Snapshot) Lookup(name string) (ParticipantID, bool) {
	id, ok := s.byName[name]
	return id, ok
}

// Name returns the participant's name, or "" for an unknown ID.
func (s *Snapshot) Name(id ParticipantID) string {
	if p := s.participant(id); p != nil {
		return p.name
	}
	return ""
}

// RelationName returns the name of the relation a Decision names, or "".
func (s *Snapshot) RelationName(i int32) string {
	if i < 0 || int(i) >= len(s.model.Relations) {
		return ""
	}
	return s.model.Relations[i].Name
}

// GroupName returns the name of the group a Decision names, or "".
func (s *Snapshot) GroupName(i int32) string {
	if i < 0 || int(i) >= len(s.groups) {
		return ""
	}
	return s.groups[i].name
}

// Model returns a copy of the model the snapshot was compiled from.
func (s *Snapshot) Model() *Model {
	m := cloneModel(&s.model)
	return &m
}

func (s *Snapshot) participant(id ParticipantID) *participant {
	if id == 0 || int(id) > len(s.participants) {
		return nil
	}
	return &s.participants[id-1]
}

// Rights returns the rights the user holds through all its roles; a
// disabled or unknown user, and a device, holds none.
func (s *Snapshot) Rights(user string) Rights {
	id, ok := s.byName[user]
	if !ok {
		return 0
	}
	p := s.participant(id)
	if p.device || p.disabled {
		return 0
	}
	return p.rights
}

// Can reports whether the user holds every right in r.
func (s *Snapshot) Can(user string, r Rights) bool {
	return r != 0 && s.Rights(user)&r == r
}

// Granted returns the rights the user's roles grant it, whether or not the
// user is disabled: what the account holds once enabled, and so what a
// change to the account touches (Rights says what it may do now). An
// unknown name and a device hold none.
func (s *Snapshot) Granted(user string) Rights {
	id, ok := s.byName[user]
	if !ok {
		return 0
	}
	p := s.participant(id)
	if p.device {
		return 0
	}
	return p.rights
}

// RoleRights returns the rights of the role, a predefined one included,
// and whether the model has the role.
func (s *Snapshot) RoleRights(role string) (Rights, bool) {
	r, ok := s.roleRights[role]
	return r, ok
}

// ExplainCan says in words why Can answers as it does, naming the roles.
func (s *Snapshot) ExplainCan(user string, r Rights) string {
	id, ok := s.byName[user]
	if !ok {
		return fmt.Sprintf("%q may not %s: no such user", user, r)
	}
	p := s.participant(id)
	switch {
	case p.device:
		return fmt.Sprintf("%q may not %s: it is a device, not a user", user, r)
	case p.disabled:
		return fmt.Sprintf("%q may not %s: the user is disabled", user, r)
	}
	var granting []string
	for _, role := range p.roles {
		if rr := s.roleRights[role]; rr&r != 0 {
			granting = append(granting, fmt.Sprintf("%s (%s)", role, rr&r))
		}
	}
	if s.Can(user, r) {
		return fmt.Sprintf("%q may %s: granted by role %s", user, r, strings.Join(granting, ", "))
	}
	missing := r &^ p.rights
	if len(p.roles) == 0 {
		return fmt.Sprintf("%q may not %s: the user holds no role", user, r)
	}
	return fmt.Sprintf("%q may not %s: none of the roles %s grants %s", user, r, strings.Join(p.roles, ", "), missing)
}

// Allowed decides whether the flow may pass at time now, from the
// relations alone (a FlowFilter adds replies to allowed flows). It does
// not allocate. When several relations allow the flow, the first in the
// model is named; when none does, the first relation that links the two
// sides, with its closest miss.
func (s *Snapshot) Allowed(f *Flow, now time.Time) Decision {
	pa, pb := s.participant(f.From), s.participant(f.To)
	d := Decision{Relation: -1, Group: -1}
	switch {
	case pa == nil || pb == nil:
		d.Reason = ReasonUnknownParticipant
		return d
	case pa.disabled || pb.disabled:
		d.Reason = ReasonDisabledParticipant
		return d
	}
	t := now.UnixNano()
	allow := int32(-1)
	fail, failReason := int32(-1), ReasonNone
	prof := pa.prof
	for _, gb := range pb.groups {
		w, bit := gb>>6, uint64(1)<<(gb&63)
		if prof.reach[w]&bit == 0 {
			continue
		}
		i := prof.rank[w] + uint32(bits.OnesCount64(prof.reach[w]&(bit-1)))
		for _, ri := range s.ruleIdx[prof.spans[i]:prof.spans[i+1]] {
			r := &s.rules[ri]
			if allow >= 0 && r.rel >= allow {
				break // sorted by relation: nothing better follows
			}
			reason := r.check(f, t)
			if reason == ReasonRelation {
				allow = r.rel
				break
			}
			if fail < 0 || r.rel < fail || (r.rel == fail && reason.rank() < failReason.rank()) {
				fail, failReason = r.rel, reason
			}
		}
	}
	switch {
	case allow >= 0:
		return Decision{Allowed: true, Reason: ReasonRelation, Relation: allow, Group: -1}
	}
	if g, ok := s.sharedIntraGroup(pa, pb); ok {
		return Decision{Allowed: true, Reason: ReasonIntraGroup, Relation: -1, Group: g}
	}
	if fail >= 0 {
		d.Reason, d.Relation = failReason, fail
		return d
	}
	d.Reason = ReasonNoRelation
	return d
}

// sharedIntraGroup returns the lowest group index both belong to whose
// members may talk to each other (both lists are sorted).
func (s *Snapshot) sharedIntraGroup(pa, pb *participant) (int32, bool) {
	i, j := 0, 0
	for i < len(pa.groups) && j < len(pb.groups) {
		switch a, b := pa.groups[i], pb.groups[j]; {
		case a < b:
			i++
		case a > b:
			j++
		default:
			if s.groups[a].intra {
				return a, true
			}
			i++
			j++
		}
	}
	return 0, false
}

func (r *rule) check(f *Flow, t int64) Reason {
	switch {
	case r.disabled:
		return ReasonRelationDisabled
	case r.oneWayRev:
		return ReasonWrongDirection
	case t < r.notBefore:
		return ReasonNotYetValid
	case t > r.notAfter:
		return ReasonExpired
	}
	if len(r.services) == 0 {
		return ReasonRelation
	}
	for i := range r.services {
		if r.services[i].covers(f) {
			return ReasonRelation
		}
	}
	return ReasonService
}

func (sv *Service) covers(f *Flow) bool {
	if sv.Proto == ProtoAny {
		return true
	}
	if sv.Proto != f.Proto {
		return false
	}
	switch sv.Proto {
	case ProtoTCP, ProtoUDP:
		if len(sv.Ports) == 0 {
			return true
		}
		for _, p := range sv.Ports {
			if f.DstPort >= p.Low && f.DstPort <= p.High {
				return true
			}
		}
		return false
	case ProtoICMP, ProtoICMPv6:
		return len(sv.ICMPTypes) == 0 || slices.Contains(sv.ICMPTypes, f.ICMPType)
	}
	return true
}

// Explain says in words why d was decided for f: the relation or group
// that allowed it, or the absence of one, or the closest miss. It is meant
// for the event log and for administrators, and allocates.
func (s *Snapshot) Explain(f *Flow, d Decision) string {
	from, to := s.Name(f.From), s.Name(f.To)
	what := fmt.Sprintf("%s from %q to %q", describeFlow(f), from, to)
	verdict := "denied"
	if d.Allowed {
		verdict = "allowed"
	}
	rel := ""
	if d.Relation >= 0 && int(d.Relation) < len(s.model.Relations) {
		r := s.model.Relations[d.Relation]
		rel = fmt.Sprintf("relation %q (%s %s %s, %s)", r.Name, r.From, arrow(r.Direction), r.To, servicesText(r.Services))
	}
	switch d.Reason {
	case ReasonRelation:
		return fmt.Sprintf("%s %s by %s", what, verdict, rel)
	case ReasonIntraGroup:
		return fmt.Sprintf("%s %s: both are members of group %q, whose members may talk to each other", what, verdict, s.GroupName(d.Group))
	case ReasonReply:
		if rel != "" {
			return fmt.Sprintf("%s %s as the reply to a flow allowed by %s", what, verdict, rel)
		}
		return fmt.Sprintf("%s %s as the reply to an allowed flow", what, verdict)
	case ReasonRelated:
		if rel != "" {
			return fmt.Sprintf("%s %s as an error about a flow allowed by %s", what, verdict, rel)
		}
		return fmt.Sprintf("%s %s as an error about an allowed flow", what, verdict)
	case ReasonUnknownParticipant:
		return fmt.Sprintf("%s %s: unknown participant", what, verdict)
	case ReasonDisabledParticipant:
		who := from
		if p := s.participant(f.To); p != nil && p.disabled {
			who = to
		}
		return fmt.Sprintf("%s %s: participant %q is disabled", what, verdict, who)
	case ReasonNoRelation:
		return fmt.Sprintf("%s %s: no communication relation links %q (%s) with %q (%s)", what, verdict, from, s.groupsText(f.From), to, s.groupsText(f.To))
	case ReasonService:
		return fmt.Sprintf("%s %s: %s does not cover %s", what, verdict, rel, describeFlow(f))
	case ReasonNotYetValid:
		return fmt.Sprintf("%s %s: %s is valid only from %s", what, verdict, rel, s.model.Relations[d.Relation].NotBefore.Format(time.RFC3339))
	case ReasonExpired:
		return fmt.Sprintf("%s %s: %s expired at %s", what, verdict, rel, s.model.Relations[d.Relation].NotAfter.Format(time.RFC3339))
	case ReasonWrongDirection:
		return fmt.Sprintf("%s %s: %s is one-way; %q may not open flows to %q", what, verdict, rel, from, to)
	case ReasonRelationDisabled:
		return fmt.Sprintf("%s %s: %s is disabled", what, verdict, rel)
	}
	return fmt.Sprintf("%s %s (%s)", what, verdict, d.Reason)
}

func arrow(d Direction) string {
	if d == Both {
		return "<->"
	}
	return "->"
}

func servicesText(svcs []Service) string {
	if len(svcs) == 0 {
		return "any service"
	}
	parts := make([]string, len(svcs))
	for i, s := range svcs {
		parts[i] = s.String()
	}
	return strings.Join(parts, " ")
}

func describeFlow(f *Flow) string {
	switch f.Proto {
	case ProtoTCP:
		return fmt.Sprintf("tcp/%d", f.DstPort)
	case ProtoUDP:
		return fmt.Sprintf("udp/%d", f.DstPort)
	case ProtoICMP:
		return fmt.Sprintf("icmp/%d", f.ICMPType)
	case ProtoICMPv6:
		return fmt.Sprintf("icmpv6/%d", f.ICMPType)
	}
	return fmt.Sprintf("proto/%d", f.Proto)
}

func (s *Snapshot) groupsText(id ParticipantID) string {
	p := s.participant(id)
	if p == nil || len(p.groups) == 0 {
		return "no group"
	}
	names := make([]string, len(p.groups))
	for i, g := range p.groups {
		names[i] = fmt.Sprintf("%q", s.groups[g].name)
	}
	if len(names) == 1 {
		return "group " + names[0]
	}
	return "groups " + strings.Join(names, ", ")
}

// Linked reports whether some enabled relation links a's groups with b's
// groups in either direction, or a group both belong to lets its members
// talk to each other, regardless of services and validity windows. The
// broker uses it to decide which networks to route into a participant's
// tunnel; Allowed still decides every packet.
func (s *Snapshot) Linked(a, b ParticipantID) bool {
	pa, pb := s.participant(a), s.participant(b)
	if pa == nil || pb == nil {
		return false
	}
	if _, ok := s.sharedIntraGroup(pa, pb); ok {
		return true
	}
	for _, x := range [2][2]*participant{{pa, pb}, {pb, pa}} {
		prof, other := x[0].prof, x[1]
		for _, gb := range other.groups {
			w, bit := gb>>6, uint64(1)<<(gb&63)
			if prof.reach[w]&bit == 0 {
				continue
			}
			i := prof.rank[w] + uint32(bits.OnesCount64(prof.reach[w]&(bit-1)))
			for _, ri := range s.ruleIdx[prof.spans[i]:prof.spans[i+1]] {
				if !s.rules[ri].disabled {
					return true
				}
			}
		}
	}
	return false
}

// Enabled reports whether the participant exists and is not disabled.
func (s *Snapshot) Enabled(id ParticipantID) bool {
	p := s.participant(id)
	return p != nil && !p.disabled
}

// IsDevice reports whether the participant is a device (a plant gateway)
// rather than a user.
func (s *Snapshot) IsDevice(id ParticipantID) bool {
	p := s.participant(id)
	return p != nil && p.device
}
