package model_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/remotegate/remotegate/broker"
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

// A vendor's product takes the domain steps without HTTP: a store in a
// directory of its own, the running broker, and a Manager over both. A
// device whose plant LAN 192.168.0.0/24 is reached under 10.200.7.0/24 is
// created (checked, stored, applied to the broker, recorded in the event
// log) and listed.
func ExampleManager() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "remotegate")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	empty, err := policy.Compile(&policy.Model{})
	if err != nil {
		log.Fatal(err)
	}
	brk, err := broker.New(broker.Config{Policy: empty, Pool: netip.MustParsePrefix("10.8.0.0/24")})
	if err != nil {
		log.Fatal(err)
	}
	m, err := model.New(model.Config{Store: st, Broker: brk})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Load(ctx); err != nil { // the stored configuration, in force
		log.Fatal(err)
	}

	err = m.CreateDevice(ctx, "", model.Device{Name: "plant-7", Networks: []store.Network{{
		LAN:   netip.MustParsePrefix("192.168.0.0/24"),
		Alias: netip.MustParsePrefix("10.200.7.0/24"),
	}}})
	if err != nil {
		log.Fatal(err)
	}
	devices, err := m.Devices(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range devices {
		for _, n := range d.Networks {
			fmt.Printf("%s: LAN %v under %v, %s\n", d.Name, n.LAN, n.Alias, brk.Status(d.Name))
		}
	}
	// A second device under the same alias is refused before anything
	// is stored.
	err = m.CreateDevice(ctx, "", model.Device{Name: "plant-8", Networks: devices[0].Networks})
	fmt.Println("plant-8 refused as invalid:", errors.Is(err, model.ErrInvalid))
	// Output:
	// plant-7: LAN 192.168.0.0/24 under 10.200.7.0/24, offline
	// plant-8 refused as invalid: true
}
