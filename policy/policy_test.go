package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// now is the fixed "current time" of the administrator's story.
var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// storyModel is a small plant network as an administrator sets it up:
// alice administers; bob is a VPN user in the predefined group and in
// maintenance; carol operates devices and is an engineer; erin is a
// contractor whose access window ended an hour ago; plant 9's gateway is
// switched off in the model.
func storyModel() *Model {
	return &Model{
		Roles: []Role{{Name: "operator", Rights: RightManageDevices | RightViewEvents}},
		Users: []User{
			{Name: "alice", Roles: []string{RoleAdmin}},
			{Name: "bob", Roles: []string{RoleVPNUser}, Groups: []string{GroupVPNUser, "maintenance"}},
			{Name: "carol", Roles: []string{"operator", RoleVPNUser}, Groups: []string{"engineers"}},
			{Name: "dave", Roles: []string{RoleAdmin}, Disabled: true},
			{Name: "erin", Roles: []string{RoleVPNUser}, Groups: []string{"contractors"}},
		},
		Devices: []Device{
			{Name: "plant7-gw", Groups: []string{"plant7"}, Subnets: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}},
			{Name: "plant8-gw", Groups: []string{"plant8"}, Subnets: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}},
			{Name: "plant9-gw", Groups: []string{"plant9"}, Disabled: true},
		},
		Groups: []Group{{Name: "maintenance"}, {Name: "engineers"}, {Name: "contractors"},
			{Name: "plant7"}, {Name: "plant8"}, {Name: "plant9"}},
		Relations: []Relation{
			{Name: "vpn-users-to-plant7", From: GroupVPNUser, To: "plant7", Direction: OneWay,
				Services: []Service{{Proto: ProtoTCP, Ports: []PortRange{{102, 102}}}, {Proto: ProtoUDP, Ports: []PortRange{{161, 161}}}}},
			{Name: "maintenance-to-plant8", From: "maintenance", To: "plant8", Direction: OneWay},
			{Name: "contractor-window", From: "contractors", To: "plant7", Direction: OneWay,
				NotBefore: now.Add(-25 * time.Hour), NotAfter: now.Add(-time.Hour)},
			{Name: "engineers-plant9", From: "engineers", To: "plant9", Direction: Both},
		},
	}
}

func compileStory(t *testing.T) *Snapshot {
	t.Helper()
	s, err := Compile(storyModel())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRightsOfPredefinedAndCustomRoles(t *testing.T) {
	s := compileStory(t)
	for _, c := range []struct {
		user    string
		right   Rights
		can     bool
		explain string
	}{
		{"alice", RightManageLicenses, true, `"alice" may manage-licenses: granted by role admin (manage-licenses)`},
		{"alice", AllRights, true, `"alice" may manage-users+manage-devices+manage-groups+manage-address-spaces+manage-certificates+manage-licenses+view-events+backup+system-settings+connect-vpn: granted by role admin (manage-users+manage-devices+manage-groups+manage-address-spaces+manage-certificates+manage-licenses+view-events+backup+system-settings+connect-vpn)`},
		{"bob", RightConnectVPN, true, `"bob" may connect-vpn: granted by role vpn_user (connect-vpn)`},
		{"bob", RightManageUsers, false, `"bob" may not manage-users: none of the roles vpn_user grants manage-users`},
		{"carol", RightManageDevices, true, `"carol" may manage-devices: granted by role operator (manage-devices)`},
		{"carol", RightManageDevices | RightConnectVPN, true, `"carol" may manage-devices+connect-vpn: granted by role operator (manage-devices), vpn_user (connect-vpn)`},
		{"carol", RightManageDevices | RightBackup, false, `"carol" may not manage-devices+backup: none of the roles operator, vpn_user grants backup`},
		{"dave", RightConnectVPN, false, `"dave" may not connect-vpn: the user is disabled`},
		{"plant7-gw", RightConnectVPN, false, `"plant7-gw" may not connect-vpn: it is a device, not a user`},
		{"mallory", RightConnectVPN, false, `"mallory" may not connect-vpn: no such user`},
	} {
		if got := s.Can(c.user, c.right); got != c.can {
			t.Errorf("Can(%s, %s) = %v, want %v", c.user, c.right, got, c.can)
		}
		if got := s.ExplainCan(c.user, c.right); got != c.explain {
			t.Errorf("ExplainCan(%s, %s)\n got %s\nwant %s", c.user, c.right, got, c.explain)
		}
	}
}

// flow builds a packet description between two named participants.
func flow(t *testing.T, s *Snapshot, from, to string, proto uint8, dport uint16) *Flow {
	t.Helper()
	f := &Flow{Proto: proto, Src: netip.MustParseAddr("10.8.0.2"), Dst: netip.MustParseAddr("10.200.7.10"), SrcPort: 40000, DstPort: dport}
	f.From, _ = s.Lookup(from)
	f.To, _ = s.Lookup(to)
	if proto == ProtoICMP || proto == ProtoICMPv6 {
		f.SrcPort, f.DstPort, f.ICMPType, f.ICMPID = 0, 0, uint8(dport), 77
	}
	return f
}

func TestFlowsFromTheAdministratorsView(t *testing.T) {
	s := compileStory(t)
	for _, c := range []struct {
		name     string
		from, to string
		proto    uint8
		port     uint16 // or ICMP type
		allowed  bool
		reason   Reason
		explain  string
	}{
		{"predefined group, TCP 102", "bob", "plant7-gw", ProtoTCP, 102, true, ReasonRelation,
			`tcp/102 from "bob" to "plant7-gw" allowed by relation "vpn-users-to-plant7" (vpn_user_group -> plant7, tcp/102 udp/161)`},
		{"predefined group, UDP 161", "bob", "plant7-gw", ProtoUDP, 161, true, ReasonRelation,
			`udp/161 from "bob" to "plant7-gw" allowed by relation "vpn-users-to-plant7" (vpn_user_group -> plant7, tcp/102 udp/161)`},
		{"service limited to TCP 102 and UDP 161", "bob", "plant7-gw", ProtoTCP, 80, false, ReasonService,
			`tcp/80 from "bob" to "plant7-gw" denied: relation "vpn-users-to-plant7" (vpn_user_group -> plant7, tcp/102 udp/161) does not cover tcp/80`},
		{"UDP 102 is not TCP 102", "bob", "plant7-gw", ProtoUDP, 102, false, ReasonService,
			`udp/102 from "bob" to "plant7-gw" denied: relation "vpn-users-to-plant7" (vpn_user_group -> plant7, tcp/102 udp/161) does not cover udp/102`},
		{"user in two groups reaches the second group's plant", "bob", "plant8-gw", ProtoICMP, 8, true, ReasonRelation,
			`icmp/8 from "bob" to "plant8-gw" allowed by relation "maintenance-to-plant8" (maintenance -> plant8, any service)`},
		{"one-way: the plant may not open flows to the user", "plant8-gw", "bob", ProtoTCP, 22, false, ReasonWrongDirection,
			`tcp/22 from "plant8-gw" to "bob" denied: relation "maintenance-to-plant8" (maintenance -> plant8, any service) is one-way; "plant8-gw" may not open flows to "bob"`},
		{"relation that expired an hour ago", "erin", "plant7-gw", ProtoTCP, 102, false, ReasonExpired,
			`tcp/102 from "erin" to "plant7-gw" denied: relation "contractor-window" (contractors -> plant7, any service) expired at 2026-11-23T09:00:00Z`},
		{"disabled device", "carol", "plant9-gw", ProtoTCP, 443, false, ReasonDisabledParticipant,
			`tcp/443 from "carol" to "plant9-gw" denied: participant "plant9-gw" is disabled`},
		{"no relation at all (default deny)", "alice", "plant7-gw", ProtoTCP, 102, false, ReasonNoRelation,
			`tcp/102 from "alice" to "plant7-gw" denied: no communication relation links "alice" (no group) with "plant7-gw" (group "plant7")`},
		{"plants do not reach each other", "plant7-gw", "plant8-gw", ProtoTCP, 102, false, ReasonNoRelation,
			`tcp/102 from "plant7-gw" to "plant8-gw" denied: no communication relation links "plant7-gw" (group "plant7") with "plant8-gw" (group "plant8")`},
		{"unknown participant", "mallory", "plant7-gw", ProtoTCP, 102, false, ReasonUnknownParticipant,
			`tcp/102 from "" to "plant7-gw" denied: unknown participant`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := flow(t, s, c.from, c.to, c.proto, c.port)
			d := s.Allowed(f, now)
			if d.Allowed != c.allowed || d.Reason != c.reason {
				t.Fatalf("Allowed = %v (%v), want %v (%v)", d.Allowed, d.Reason, c.allowed, c.reason)
			}
			if got := s.Explain(f, d); got != c.explain {
				t.Fatalf("Explain\n got %s\nwant %s", got, c.explain)
			}
		})
	}
}

func TestRepliesPassOnlyForOpenedFlows(t *testing.T) {
	s := compileStory(t)
	ff := NewFlowFilter(s, FlowFilterConfig{IdleTimeout: time.Minute})
	req := flow(t, s, "bob", "plant7-gw", ProtoUDP, 161)
	reply := reverse(req)
	if d := ff.Check(&reply, now); d.Allowed {
		t.Fatalf("a reply before any request passed: %+v", d)
	}
	if d := ff.Check(req, now); !d.Allowed {
		t.Fatalf("request denied: %s", s.Explain(req, d))
	}
	d := ff.Check(&reply, now.Add(time.Second))
	if !d.Allowed || d.Reason != ReasonReply {
		t.Fatalf("reply denied: %s", s.Explain(&reply, d))
	}
	want := `udp/40000 from "plant7-gw" to "bob" allowed as the reply to a flow allowed by relation "vpn-users-to-plant7" (vpn_user_group -> plant7, tcp/102 udp/161)`
	if got := s.Explain(&reply, d); got != want {
		t.Fatalf("Explain\n got %s\nwant %s", got, want)
	}
	// Another port of the plant is not a reply.
	other := reply
	other.SrcPort = 162
	if d := ff.Check(&other, now.Add(time.Second)); d.Allowed {
		t.Fatal("a packet from another port passed as a reply")
	}
	// Idle expiry: a minute after the last reply, the flow is forgotten.
	if d := ff.Check(&reply, now.Add(62*time.Second)); d.Allowed {
		t.Fatal("a reply passed after the flow expired")
	}
	// ICMP echo by identifier.
	ping := flow(t, s, "bob", "plant8-gw", ProtoICMP, icmpEchoRequest)
	pong := reverse(ping)
	pong.ICMPType = icmpEchoReply
	if d := ff.Check(ping, now); !d.Allowed {
		t.Fatal("echo request denied")
	}
	if d := ff.Check(&pong, now); !d.Allowed || d.Reason != ReasonReply {
		t.Fatalf("echo reply denied: %s", s.Explain(&pong, d))
	}
	pong.ICMPID++
	if d := ff.Check(&pong, now); d.Allowed {
		t.Fatal("echo reply with another identifier passed")
	}
}

func TestNewSnapshotStopsReplies(t *testing.T) {
	s := compileStory(t)
	ff := NewFlowFilter(s, FlowFilterConfig{})
	req := flow(t, s, "bob", "plant8-gw", ProtoTCP, 22)
	reply := reverse(req)
	ff.Check(req, now)
	if d := ff.Check(&reply, now); !d.Allowed {
		t.Fatal("reply denied")
	}
	m := storyModel()
	m.Relations[1].Disabled = true
	s2, err := Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	ff.SetSnapshot(s2)
	reply2 := reply
	reply2.From, _ = s2.Lookup("plant8-gw")
	reply2.To, _ = s2.Lookup("bob")
	if d := ff.Check(&reply2, now); d.Allowed {
		t.Fatal("a reply passed after its relation was disabled")
	}
	// A disabled relation explains itself.
	req2 := *req
	d := s2.Allowed(&req2, now)
	if d.Allowed || d.Reason != ReasonRelationDisabled || s2.RelationName(d.Relation) != "maintenance-to-plant8" {
		t.Fatalf("disabled relation: %+v", d)
	}
}

func TestIntraGroupIsOffUnlessSet(t *testing.T) {
	m := &Model{
		Users:  []User{{Name: "u1", Groups: []string{"team"}}, {Name: "u2", Groups: []string{"team"}}},
		Groups: []Group{{Name: "team"}},
	}
	s, err := Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	f := flow(t, s, "u1", "u2", ProtoTCP, 22)
	if d := s.Allowed(f, now); d.Allowed || d.Reason != ReasonNoRelation {
		t.Fatalf("members talk without Intra: %+v", d)
	}
	m.Groups[0].Intra = true
	s, _ = Compile(m)
	f = flow(t, s, "u1", "u2", ProtoTCP, 22)
	d := s.Allowed(f, now)
	if !d.Allowed || d.Reason != ReasonIntraGroup {
		t.Fatalf("members may not talk with Intra: %+v", d)
	}
	want := `tcp/22 from "u1" to "u2" allowed: both are members of group "team", whose members may talk to each other`
	if got := s.Explain(f, d); got != want {
		t.Fatalf("Explain\n got %s\nwant %s", got, want)
	}
}

func TestSubgroupMembersAreMembers(t *testing.T) {
	m := &Model{
		Users:     []User{{Name: "u", Groups: []string{"night-shift"}}},
		Devices:   []Device{{Name: "d", Groups: []string{"plc"}}},
		Groups:    []Group{{Name: "staff", Subgroups: []string{"shift"}}, {Name: "shift", Subgroups: []string{"night-shift"}}, {Name: "night-shift"}, {Name: "plc"}},
		Relations: []Relation{{Name: "staff-plc", From: "staff", To: "plc"}},
	}
	s, err := Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Allowed(flow(t, s, "u", "d", ProtoTCP, 102), now); !d.Allowed {
		t.Fatalf("member of a sub-subgroup denied: %+v", d)
	}
}

func TestValidationErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(m *Model)
		kind error
		text string
	}{
		{"unknown role", func(m *Model) { m.Users[0].Roles = []string{"root"} }, ErrUnknownReference, `user "alice" holds role "root", which is not defined`},
		{"unknown group of a user", func(m *Model) { m.Users[1].Groups = append(m.Users[1].Groups, "night") }, ErrUnknownReference, `user "bob" is a member of group "night", which is not defined`},
		{"unknown group of a relation", func(m *Model) { m.Relations[0].To = "plant70" }, ErrUnknownReference, `relation "vpn-users-to-plant7": to-group "plant70" is not defined`},
		{"unknown subgroup", func(m *Model) { m.Groups[0].Subgroups = []string{"x"} }, ErrUnknownReference, `group "maintenance" lists subgroup "x", which is not defined`},
		{"group cycle", func(m *Model) {
			m.Groups[0].Subgroups = []string{"engineers"}
			m.Groups[1].Subgroups = []string{"contractors"}
			m.Groups[2].Subgroups = []string{"maintenance"}
		}, ErrCycle, `groups contain each other:`},
		{"duplicate participant", func(m *Model) { m.Devices[0].Name = "bob" }, ErrInvalid, `participant "bob" is defined twice`},
		{"duplicate relation", func(m *Model) { m.Relations[1].Name = m.Relations[0].Name }, ErrInvalid, `relation "vpn-users-to-plant7" is defined twice`},
		{"redefined predefined role", func(m *Model) { m.Roles = append(m.Roles, Role{Name: RoleAdmin}) }, ErrInvalid, `role "admin" is predefined`},
		{"empty port range", func(m *Model) { m.Relations[0].Services[0].Ports[0] = PortRange{200, 100} }, ErrInvalid, `port range 200-100 is empty`},
		{"window ends before it begins", func(m *Model) { m.Relations[2].NotAfter = m.Relations[2].NotBefore.Add(-time.Hour) }, ErrInvalid, `relation "contractor-window": valid until`},
		{"ports on ICMP", func(m *Model) { m.Relations[0].Services[0].Proto = ProtoICMP }, ErrInvalid, `ports on an ICMP service`},
		{"subnet not a network", func(m *Model) { m.Devices[0].Subnets[0] = netip.MustParsePrefix("192.168.0.1/24") }, ErrInvalid, `device "plant7-gw": subnet 192.168.0.1/24`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := storyModel()
			c.edit(m)
			_, err := Compile(m)
			if !errors.Is(err, c.kind) {
				t.Fatalf("err = %v, want %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Fatalf("err = %q, want it to say %q", err, c.text)
			}
		})
	}
}

func TestCompileDoesNotKeepTheCallersModel(t *testing.T) {
	m := storyModel()
	s, err := Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	m.Relations[0].Services[0].Ports[0] = PortRange{1, 1}
	if d := s.Allowed(flow(t, s, "bob", "plant7-gw", ProtoTCP, 102), now); !d.Allowed {
		t.Fatal("editing the model after Compile changed the snapshot")
	}
}

func TestLoadRoundTrip(t *testing.T) {
	in := `{
	  "roles": [{"name": "operator", "rights": ["manage-devices", "view-events"]}],
	  "users": [{"name": "bob", "roles": ["vpn_user", "operator"], "groups": ["vpn_user_group"]}],
	  "devices": [{"name": "plant7-gw", "groups": ["plant7"], "subnets": ["192.168.0.0/24"]}],
	  "groups": [{"name": "plant7"}],
	  "relations": [{"name": "r", "from": "vpn_user_group", "to": "plant7", "direction": "one-way",
	                 "services": ["tcp/102", "udp/161-162,500", "icmp/8"], "not_after": "2027-01-01T00:00:00Z"}]
	}`
	m, err := Load(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Can("bob", RightViewEvents|RightConnectVPN) {
		t.Fatal("rights from JSON not applied")
	}
	for port, want := range map[uint16]bool{161: true, 162: true, 500: true, 163: false} {
		if d := s.Allowed(flow(t, s, "bob", "plant7-gw", ProtoUDP, port), now); d.Allowed != want {
			t.Errorf("udp/%d: allowed %v, want %v", port, d.Allowed, want)
		}
	}
	for _, bad := range []string{
		`{"users": [{"name": "x", "colour": "red"}]}`,
		`{"roles": [{"name": "r", "rights": ["fly"]}]}`,
		`{"relations": [{"name": "r", "direction": "sideways"}]}`,
		`{"relations": [{"name": "r", "services": ["tcp/99999"]}]}`,
		`{} {}`,
	} {
		if _, err := Load(strings.NewReader(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Load(%s) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestFlowTableIsBounded(t *testing.T) {
	s := compileStory(t)
	ff := NewFlowFilter(s, FlowFilterConfig{Size: 100})
	slots := 0
	for i := range ff.shards {
		slots += len(ff.shards[i].slots)
	}
	req := flow(t, s, "bob", "plant8-gw", ProtoUDP, 53)
	for i := range 20_000 {
		req.SrcPort = uint16(i)
		req.Src = netip.AddrFrom4([4]byte{10, 8, byte(i >> 8), byte(i)})
		if d := ff.Check(req, now); !d.Allowed {
			t.Fatal("request denied")
		}
	}
	after := 0
	for i := range ff.shards {
		after += len(ff.shards[i].slots)
	}
	if after != slots || slots > 64*flowProbe*2 {
		t.Fatalf("table has %d slots after 20,000 flows (%d before)", after, slots)
	}
	if ff.Stats().Evictions == 0 {
		t.Fatal("20,000 flows fit in a table of about 100 without evictions")
	}
	// The newest flow is remembered.
	reply := reverse(req)
	if d := ff.Check(&reply, now); !d.Allowed {
		t.Fatal("the newest flow's reply was denied")
	}
}

func TestFlowFilterConcurrentUse(t *testing.T) {
	s := compileStory(t)
	s2, err := Compile(storyModel())
	if err != nil {
		t.Fatal(err)
	}
	ff := NewFlowFilter(s, FlowFilterConfig{Size: 1024})
	done := make(chan bool)
	for g := range 4 {
		go func() {
			ok := true
			for i := range 5000 {
				req := Flow{Proto: ProtoUDP, Src: netip.AddrFrom4([4]byte{10, 8, byte(g), byte(i)}),
					Dst: netip.MustParseAddr("10.200.7.10"), SrcPort: uint16(i), DstPort: 161}
				snap := ff.Snapshot()
				req.From, _ = snap.Lookup("bob")
				req.To, _ = snap.Lookup("plant7-gw")
				if !ff.Check(&req, now).Allowed {
					ok = false
				}
				reply := reverse(&req)
				ff.Check(&reply, now) // may be evicted by other goroutines; must not race
				if i%500 == 0 {
					ff.SetSnapshot([]*Snapshot{s, s2}[i/500%2])
				}
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("a request was denied")
		}
	}
}

// TestICMPErrorsAboutAllowedFlowsPass: "fragmentation needed" from the
// plant about the engineer's S7 connection must reach the engineer over
// the one-way relation, or path-MTU discovery breaks; an error about a
// flow nobody opened does not pass.
func TestICMPErrorsAboutAllowedFlowsPass(t *testing.T) {
	s := compileStory(t)
	ff := NewFlowFilter(s, FlowFilterConfig{})
	req := flow(t, s, "bob", "plant7-gw", ProtoTCP, 102)
	if d := ff.Check(req, now); !d.Allowed {
		t.Fatal("request denied")
	}
	icmpErr := Flow{From: req.To, To: req.From, Proto: ProtoICMP, Src: netip.MustParseAddr("10.200.7.1"), Dst: req.Src, ICMPType: 3,
		Quote: Quote{Proto: ProtoTCP, Src: req.Src, Dst: req.Dst, SrcPort: req.SrcPort, DstPort: req.DstPort}}
	d := ff.Check(&icmpErr, now)
	if !d.Allowed || d.Reason != ReasonRelated {
		t.Fatalf("error about an allowed flow: %s", s.Explain(&icmpErr, d))
	}
	want := `icmp/3 from "plant7-gw" to "bob" allowed as an error about a flow allowed by relation "vpn-users-to-plant7" (vpn_user_group -> plant7, tcp/102 udp/161)`
	if got := s.Explain(&icmpErr, d); got != want {
		t.Fatalf("Explain\n got %s\nwant %s", got, want)
	}
	icmpErr.Quote.DstPort = 103
	if d := ff.Check(&icmpErr, now); d.Allowed {
		t.Fatal("an error about a flow nobody opened passed")
	}
	icmpErr.Quote = Quote{}
	if d := ff.Check(&icmpErr, now); d.Allowed {
		t.Fatal("an error without a quote passed")
	}
}

func TestLinked(t *testing.T) {
	s := compileStory(t)
	id := func(n string) ParticipantID { p, _ := s.Lookup(n); return p }
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"bob", "plant7-gw", true}, {"plant7-gw", "bob", true}, {"bob", "plant8-gw", true},
		{"alice", "plant7-gw", false}, {"plant7-gw", "plant8-gw", false},
		{"erin", "plant7-gw", true}, // expired, but linked: routes stay, packets are refused
	} {
		if got := s.Linked(id(c.a), id(c.b)); got != c.want {
			t.Errorf("Linked(%s, %s) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestIsDevice(t *testing.T) {
	snap, err := Compile(&Model{Users: []User{{Name: "alice"}}, Devices: []Device{{Name: "gw"}}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := snap.Lookup("alice")
	g, _ := snap.Lookup("gw")
	if snap.IsDevice(a) || !snap.IsDevice(g) || snap.IsDevice(ParticipantID(9999)) {
		t.Fatal("IsDevice mixes up users and devices")
	}
}
