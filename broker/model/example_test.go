package model_test

import (
	"fmt"
	"log"
	"net/netip"

	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// A configuration as the store holds it, compiled into what the broker
// runs: the plant's LAN is reached under its alias.
func ExampleCompile() {
	c := &store.Config{
		Model: policy.Model{Devices: []policy.Device{{Name: "plant-7"}}},
		Networks: map[string][]store.Network{"plant-7": {{
			LAN:   netip.MustParsePrefix("192.168.0.0/24"),
			Alias: netip.MustParsePrefix("10.200.7.0/24"),
		}}},
	}
	_, devices, err := model.Compile(c)
	if err != nil {
		log.Fatal(err)
	}
	real, _ := devices["plant-7"].NAT.RealOf(netip.MustParseAddr("10.200.7.10"))
	fmt.Println("10.200.7.10 is", real)
	// Output: 10.200.7.10 is 192.168.0.10
}
