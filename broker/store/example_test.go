package store_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

func ExampleStore_Update() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	lan := netip.MustParsePrefix("192.168.0.0/24")
	c, err := s.Update(ctx, func(c *store.Config) error {
		c.Model.Groups = append(c.Model.Groups, policy.Group{Name: "plants"})
		c.Model.Devices = append(c.Model.Devices, policy.Device{
			Name: "plant-7", Groups: []string{"plants"}, Subnets: []netip.Prefix{lan},
		})
		c.Networks["plant-7"] = []store.Network{{LAN: lan, Alias: netip.MustParsePrefix("10.200.7.0/24")}}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("revision", c.Revision)
	for _, n := range c.Networks["plant-7"] {
		fmt.Println(n.LAN, "as", n.Alias)
	}
	// Output:
	// revision 1
	// 192.168.0.0/24 as 10.200.7.0/24
}
