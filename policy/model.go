package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors; the errors Compile and Load return wrap one of them and
// name the offending element.
var (
	// ErrInvalid reports a model that contradicts itself or is malformed.
	ErrInvalid = errors.New("policy: invalid model")
	// ErrUnknownReference reports a name that refers to nothing.
	ErrUnknownReference = errors.New("policy: unknown reference")
	// ErrCycle reports participant groups that contain each other.
	ErrCycle = errors.New("policy: group cycle")
)

// Names of the predefined roles and group. Every compiled model has them;
// a model may use them but not redefine them.
const (
	RoleAdmin    = "admin"          // all rights
	RoleVPNUser  = "vpn_user"       // may only establish VPN connections
	GroupVPNUser = "vpn_user_group" // a participant group like any other
)

// Rights is a set of administrative rights. A role is a set of rights; a
// user holds the union of the rights of all its roles.
type Rights uint16

const (
	// RightManageUsers: create, change and delete users and roles.
	RightManageUsers Rights = 1 << iota
	// RightManageDevices: create, change and delete devices.
	RightManageDevices
	// RightManageGroups: participant groups and communication relations.
	RightManageGroups
	// RightManageAddressSpaces: NAT mappings of device networks.
	RightManageAddressSpaces
	// RightManageCertificates: the CA, enrollment and revocation.
	RightManageCertificates
	// RightManageLicenses: install and transfer licenses.
	RightManageLicenses
	// RightViewEvents: view and export the event log.
	RightViewEvents
	// RightBackup: backup and restore.
	RightBackup
	// RightSystemSettings: system settings.
	RightSystemSettings
	// RightConnectVPN: establish VPN connections.
	RightConnectVPN

	// AllRights is the set of every right (role admin).
	AllRights = RightConnectVPN<<1 - 1
)

var rightNames = [...]string{
	"manage-users", "manage-devices", "manage-groups", "manage-address-spaces",
	"manage-certificates", "manage-licenses", "view-events", "backup",
	"system-settings", "connect-vpn",
}

// String lists the rights by name, joined with "+"; the empty set is "none".
func (r Rights) String() string {
	if r == 0 {
		return "none"
	}
	var names []string
	for i, n := range rightNames {
		if r&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if rest := r &^ AllRights; rest != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint16(rest)))
	}
	return strings.Join(names, "+")
}

// ParseRight returns the right with the given name ("manage-users", ...).
func ParseRight(name string) (Rights, error) {
	for i, n := range rightNames {
		if n == name {
			return 1 << i, nil
		}
	}
	return 0, fmt.Errorf("%w: no right named %q (rights: %s)", ErrInvalid, name, strings.Join(rightNames[:], ", "))
}

// MarshalJSON writes the rights as a list of names.
func (r Rights) MarshalJSON() ([]byte, error) {
	names := []string{}
	for i, n := range rightNames {
		if r&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads a list of right names.
func (r *Rights) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("%w: rights: %w", ErrInvalid, err)
	}
	*r = 0
	for _, n := range names {
		right, err := ParseRight(n)
		if err != nil {
			return err
		}
		*r |= right
	}
	return nil
}

// Role is a named set of rights.
type Role struct {
	Name   string `json:"name"`
	Rights Rights `json:"rights"`
}

// User is a management account or VPN user: a participant that holds
// roles and is a member of participant groups.
type User struct {
	Name     string   `json:"name"`
	Roles    []string `json:"roles,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Disabled bool     `json:"disabled,omitempty"`
	// Created is when the participant was created; the zero Time means
	// before anything was recorded. It orders participants by seniority
	// when a license limits how many may connect: the oldest keep working.
	Created time.Time `json:"created,omitzero"`
}

// Device is a plant gateway: a participant with machine networks behind it.
type Device struct {
	Name     string         `json:"name"`
	Groups   []string       `json:"groups,omitempty"`
	Subnets  []netip.Prefix `json:"subnets,omitempty"`
	Disabled bool           `json:"disabled,omitempty"`
	// Created is when the participant was created, as for User.
	Created time.Time `json:"created,omitzero"`
}

// Group is a participant group. Members of its subgroups are members of it
// too. Whether members of one group may talk to each other is a property of
// the group, off unless Intra is set.
type Group struct {
	Name      string   `json:"name"`
	Subgroups []string `json:"subgroups,omitempty"`
	Intra     bool     `json:"intra,omitempty"`
}

// Direction says which side of a relation may open flows.
type Direction uint8

const (
	// OneWay: only members of the From group may open flows to the To
	// group; replies come back through the flow table.
	OneWay Direction = iota
	// Both: either side may open flows to the other.
	Both
)

func (d Direction) String() string {
	switch d {
	case OneWay:
		return "one-way"
	case Both:
		return "both"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// MarshalJSON writes "one-way" or "both".
func (d Direction) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "one-way" or "both".
func (d *Direction) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: direction: %w", ErrInvalid, err)
	}
	switch s {
	case "one-way":
		*d = OneWay
	case "both":
		*d = Both
	default:
		return fmt.Errorf("%w: direction %q: want one-way or both", ErrInvalid, s)
	}
	return nil
}

// IP protocol numbers used in services.
const (
	ProtoAny    uint8 = 0
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// PortRange is an inclusive range of ports.
type PortRange struct{ Low, High uint16 }

// Service is what a relation lets through: a protocol and, for TCP and
// UDP, destination port ranges (none: every port), for ICMP and ICMPv6 the
// message types of the opening packet (none: every type). Proto ProtoAny
// (zero) lets every protocol through and takes no ports or types.
type Service struct {
	Proto     uint8
	Ports     []PortRange
	ICMPTypes []uint8
}

// String writes the service as Load reads it: "any", "tcp", "tcp/102",
// "udp/1000-2000,3000", "icmp/8", "icmpv6", "proto/47".
func (s Service) String() string {
	var b strings.Builder
	switch s.Proto {
	case ProtoAny:
		return "any"
	case ProtoTCP:
		b.WriteString("tcp")
	case ProtoUDP:
		b.WriteString("udp")
	case ProtoICMP:
		b.WriteString("icmp")
	case ProtoICMPv6:
		b.WriteString("icmpv6")
	default:
		b.WriteString("proto/" + strconv.Itoa(int(s.Proto)))
		return b.String()
	}
	for i, p := range s.Ports {
		b.WriteByte("/,"[min(i, 1)])
		b.WriteString(strconv.Itoa(int(p.Low)))
		if p.High != p.Low {
			b.WriteString("-" + strconv.Itoa(int(p.High)))
		}
	}
	for i, t := range s.ICMPTypes {
		b.WriteByte("/,"[min(i, 1)])
		b.WriteString(strconv.Itoa(int(t)))
	}
	return b.String()
}

// ParseService reads the form String writes.
func ParseService(text string) (Service, error) {
	bad := func(why string) (Service, error) {
		return Service{}, fmt.Errorf("%w: service %q: %s", ErrInvalid, text, why)
	}
	name, list, hasList := strings.Cut(strings.TrimSpace(text), "/")
	var s Service
	switch name {
	case "any":
		if hasList {
			return bad("any takes no ports")
		}
		return s, nil
	case "tcp":
		s.Proto = ProtoTCP
	case "udp":
		s.Proto = ProtoUDP
	case "icmp":
		s.Proto = ProtoICMP
	case "icmpv6":
		s.Proto = ProtoICMPv6
	case "proto":
		n, err := strconv.ParseUint(list, 10, 8)
		if err != nil || n == 0 {
			return bad("want proto/N with N from 1 to 255")
		}
		s.Proto = uint8(n)
		return s, nil
	default:
		return bad("want any, tcp, udp, icmp, icmpv6 or proto/N")
	}
	if !hasList {
		return s, nil
	}
	for _, item := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		if s.Proto == ProtoICMP || s.Proto == ProtoICMPv6 {
			t, err := strconv.ParseUint(item, 10, 8)
			if err != nil || isRange {
				return bad("ICMP types are numbers from 0 to 255")
			}
			s.ICMPTypes = append(s.ICMPTypes, uint8(t))
			continue
		}
		l, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return bad("ports are numbers from 0 to 65535")
		}
		h := l
		if isRange {
			if h, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return bad("ports are numbers from 0 to 65535")
			}
		}
		s.Ports = append(s.Ports, PortRange{uint16(l), uint16(h)})
	}
	return s, nil
}

// MarshalJSON writes the String form.
func (s Service) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads the String form.
func (s *Service) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		return fmt.Errorf("%w: service: %w", ErrInvalid, err)
	}
	v, err := ParseService(text)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Relation is a communication relation: members of From may reach
// members of To (and, with Both, the other way) with the listed services
// (none: any service), between NotBefore and NotAfter when they are set.
type Relation struct {
	Name      string    `json:"name"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Direction Direction `json:"direction"`
	Services  []Service `json:"services,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	Disabled  bool      `json:"disabled,omitempty"`
}

// Model is what an administrator edits. Compile checks it and turns it
// into a Snapshot. The predefined roles admin and vpn_user and the group
// vpn_user_group exist in every model without being listed.
type Model struct {
	Roles     []Role     `json:"roles,omitempty"`
	Users     []User     `json:"users,omitempty"`
	Devices   []Device   `json:"devices,omitempty"`
	Groups    []Group    `json:"groups,omitempty"`
	Relations []Relation `json:"relations,omitempty"`
}

// maxLoad bounds what Load reads, so that a hostile file cannot exhaust
// memory.
const maxLoad = 64 << 20

// Load reads a model in JSON (the field names of the Model types; rights,
// directions and services as strings). Unknown fields are errors.
func Load(r io.Reader) (*Model, error) {
	dec := json.NewDecoder(io.LimitReader(r, maxLoad))
	dec.DisallowUnknownFields()
	var m Model
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the model", ErrInvalid)
	}
	return &m, nil
}

// Seniority returns the names of all participants, users and devices, the
// oldest first: by Created, with the zero time first; participants created
// at the same time keep their order in the model, users before devices. A
// product that may hold only N participants lets the first N connect.
func (m *Model) Seniority() []string {
	type entry struct {
		name    string
		created time.Time
	}
	all := make([]entry, 0, len(m.Users)+len(m.Devices))
	for _, u := range m.Users {
		all = append(all, entry{u.Name, u.Created})
	}
	for _, d := range m.Devices {
		all = append(all, entry{d.Name, d.Created})
	}
	slices.SortStableFunc(all, func(a, b entry) int { return a.created.Compare(b.created) })
	names := make([]string, len(all))
	for i, e := range all {
		names[i] = e.name
	}
	return names
}
