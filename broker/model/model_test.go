package model_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
	"github.com/remotegate/remotegate/policy"
)

// Compile exposes an aliased network through NAT, a plain one under its
// real prefix, and takes the devices' subnets from the networks rather
// than from what the model says.
func TestCompile(t *testing.T) {
	lan := netip.MustParsePrefix("192.168.0.0/24")
	plain := netip.MustParsePrefix("172.16.5.0/24")
	c := &store.Config{
		Model: policy.Model{
			Groups: []policy.Group{{Name: "plant"}, {Name: "eng"}},
			Users:  []policy.User{{Name: "alice", Groups: []string{"eng"}}},
			Devices: []policy.Device{
				{Name: "gw1", Groups: []string{"plant"}, Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.1.0/24")}},
				{Name: "gw2", Groups: []string{"plant"}},
			},
			Relations: []policy.Relation{{Name: "r", From: "eng", To: "plant"}},
		},
		Networks: map[string][]store.Network{
			"gw1": {{LAN: lan, Alias: netip.MustParsePrefix("10.200.1.0/24")}},
			"gw2": {{LAN: plain}},
		},
	}
	snap, devices, err := model.Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	if real, ok := devices["gw1"].NAT.RealOf(netip.MustParseAddr("10.200.1.10")); !ok || real != netip.MustParseAddr("192.168.0.10") {
		t.Errorf("gw1's alias 10.200.1.10 maps to %v, %v; want 192.168.0.10", real, ok)
	}
	if devices["gw2"].NAT != nil || !slices.Equal(devices["gw2"].LANs, []netip.Prefix{plain}) {
		t.Errorf("gw2: %+v; want its LAN without NAT", devices["gw2"])
	}
	var subnets []netip.Prefix
	for _, d := range snap.Model().Devices {
		if d.Name == "gw1" {
			subnets = d.Subnets
		}
	}
	if !slices.Equal(subnets, []netip.Prefix{lan}) {
		t.Errorf("gw1's subnets in the compiled model: %v; want the networks' %v", subnets, lan)
	}
	if c.Model.Devices[0].Subnets[0] != netip.MustParsePrefix("10.1.1.0/24") {
		t.Error("Compile changed the configuration it was given")
	}

	// A bad model is refused with the policy's error.
	c.Model.Relations[0].To = "nowhere"
	if _, _, err := model.Compile(c); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("a relation to an unknown group: %v", err)
	}
}

// Creation times are kept for participants that existed and set for new
// ones; adding beyond the capacity is refused, and a change that adds
// nothing never is.
func TestCheckNewParticipants(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 500, time.UTC)
	old := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	lic := license.NewState(&license.Verifier{Product: "remotegate"}, "inst", 0)
	c := &store.Config{Model: policy.Model{
		Users:   []policy.User{{Name: "a", Created: old}, {Name: "b"}},
		Devices: []policy.Device{{Name: "d1", Created: old}},
	}}
	before := model.Participants(c)
	if len(before) != 3 || !before["a"].Equal(old) {
		t.Fatalf("Participants = %v", before)
	}
	c.Model.Users[0].Created = now // not editable
	c.Model.Devices = append(c.Model.Devices, policy.Device{Name: "d2"})
	if err := model.CheckNewParticipants(before, c, lic, now); err != nil {
		t.Fatalf("4 participants on the base license of 4: %v", err)
	}
	if !c.Model.Users[0].Created.Equal(old) || !c.Model.Devices[1].Created.Equal(now.Truncate(time.Second)) {
		t.Errorf("creation times %v and %v; want the old one kept and the new one now", c.Model.Users[0].Created, c.Model.Devices[1].Created)
	}

	before = model.Participants(c)
	c.Model.Devices = append(c.Model.Devices, policy.Device{Name: "d3"})
	err := model.CheckNewParticipants(before, c, lic, now)
	if !errors.Is(err, model.ErrCapacity) || !strings.Contains(err.Error(), "5 participants would exceed the licensed capacity of 4 participants") {
		t.Fatalf("a fifth participant: %v; want ErrCapacity naming the capacity", err)
	}

	// Over the capacity already (a license lapsed): a change that adds
	// nothing passes, so that the installation can be cleaned up.
	before = model.Participants(c)
	c.Model.Users[1].Disabled = true
	if err := model.CheckNewParticipants(before, c, lic, now); err != nil {
		t.Fatalf("a change without new participants over the capacity: %v", err)
	}
	// Without licenses nothing is refused.
	c.Model.Devices = append(c.Model.Devices, policy.Device{Name: "d4"})
	if err := model.CheckNewParticipants(model.Participants(c), c, nil, now); err != nil {
		t.Fatalf("no license state: %v", err)
	}
}
