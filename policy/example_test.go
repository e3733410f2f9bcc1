package policy_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/remotegate/remotegate/policy"
)

// An administrator lets VPN users reach plant 7's PLCs with S7 (TCP 102)
// and SNMP (UDP 161), and nothing else; the plant may not call out.
func Example() {
	model := &policy.Model{
		Users: []policy.User{
			{Name: "alice", Roles: []string{policy.RoleAdmin}},
			{Name: "bob", Roles: []string{policy.RoleVPNUser}, Groups: []string{policy.GroupVPNUser}},
		},
		Devices: []policy.Device{
			{Name: "plant7-gw", Groups: []string{"plant7"}, Subnets: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}},
		},
		Groups: []policy.Group{{Name: "plant7"}},
		Relations: []policy.Relation{{
			Name: "service-access", From: policy.GroupVPNUser, To: "plant7", Direction: policy.OneWay,
			Services: []policy.Service{
				{Proto: policy.ProtoTCP, Ports: []policy.PortRange{{Low: 102, High: 102}}},
				{Proto: policy.ProtoUDP, Ports: []policy.PortRange{{Low: 161, High: 161}}},
			},
		}},
	}
	snap, err := policy.Compile(model)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(snap.ExplainCan("alice", policy.RightManageDevices))
	fmt.Println(snap.ExplainCan("bob", policy.RightManageDevices))

	bob, _ := snap.Lookup("bob")
	plc, _ := snap.Lookup("plant7-gw")
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, port := range []uint16{102, 80} {
		f := &policy.Flow{From: bob, To: plc, Proto: policy.ProtoTCP, DstPort: port}
		fmt.Println(snap.Explain(f, snap.Allowed(f, now)))
	}
	back := &policy.Flow{From: plc, To: bob, Proto: policy.ProtoTCP, DstPort: 22}
	fmt.Println(snap.Explain(back, snap.Allowed(back, now)))
	// Output:
	// "alice" may manage-devices: granted by role admin (manage-devices)
	// "bob" may not manage-devices: none of the roles vpn_user grants manage-devices
	// tcp/102 from "bob" to "plant7-gw" allowed by relation "service-access" (vpn_user_group -> plant7, tcp/102 udp/161)
	// tcp/80 from "bob" to "plant7-gw" denied: relation "service-access" (vpn_user_group -> plant7, tcp/102 udp/161) does not cover tcp/80
	// tcp/22 from "plant7-gw" to "bob" denied: relation "service-access" (vpn_user_group -> plant7, tcp/102 udp/161) is one-way; "plant7-gw" may not open flows to "bob"
}

// The data plane keeps a FlowFilter: replies to the flows a relation
// allowed pass, even over a one-way relation.
func ExampleFlowFilter() {
	snap, _ := policy.Compile(&policy.Model{
		Users:     []policy.User{{Name: "bob", Groups: []string{policy.GroupVPNUser}}},
		Devices:   []policy.Device{{Name: "plant7-gw", Groups: []string{"plant7"}}},
		Groups:    []policy.Group{{Name: "plant7"}},
		Relations: []policy.Relation{{Name: "snmp", From: policy.GroupVPNUser, To: "plant7", Services: []policy.Service{{Proto: policy.ProtoUDP}}}},
	})
	filter := policy.NewFlowFilter(snap, policy.FlowFilterConfig{})
	bob, _ := snap.Lookup("bob")
	plc, _ := snap.Lookup("plant7-gw")
	engineer, device := netip.MustParseAddr("10.8.0.2"), netip.MustParseAddr("10.200.7.10")
	now := time.Now()

	reply := &policy.Flow{From: plc, To: bob, Proto: policy.ProtoUDP, Src: device, Dst: engineer, SrcPort: 161, DstPort: 50000}
	fmt.Println("reply before the request:", filter.Check(reply, now).Allowed)
	request := &policy.Flow{From: bob, To: plc, Proto: policy.ProtoUDP, Src: engineer, Dst: device, SrcPort: 50000, DstPort: 161}
	fmt.Println("request:", filter.Check(request, now).Allowed)
	d := filter.Check(reply, now)
	fmt.Println("reply:", d.Allowed, d.Reason)
	// Output:
	// reply before the request: false
	// request: true
	// reply: true reply
}
