package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/nat"
	"github.com/remotegate/remotegate/policy"
)

// config is the declarative broker.yaml: the whole setup in one file that
// can live in version control. See the README for a complete example.
type config struct {
	// Listen is the address OpenVPN listens on; empty means all.
	Listen string `yaml:"listen"`
	// Port for OpenVPN over UDP and TCP; zero means 1194.
	Port int `yaml:"port"`
	// PublicAddress is what exported profiles connect to; empty means
	// 127.0.0.1.
	PublicAddress string `yaml:"public_address"`
	// Pool is the tunnel network; empty means 10.8.0.0/24.
	Pool      string           `yaml:"pool"`
	Groups    []groupConfig    `yaml:"groups"`
	Users     []userConfig     `yaml:"users"`
	Devices   []deviceConfig   `yaml:"devices"`
	Relations []relationConfig `yaml:"relations"`
}

type groupConfig struct {
	Name      string   `yaml:"name"`
	Subgroups []string `yaml:"subgroups"`
	Intra     bool     `yaml:"intra"`
}

type userConfig struct {
	Name     string   `yaml:"name"`
	Roles    []string `yaml:"roles"`
	Groups   []string `yaml:"groups"`
	Disabled bool     `yaml:"disabled"`
}

type deviceConfig struct {
	Name     string          `yaml:"name"`
	Groups   []string        `yaml:"groups"`
	Networks []networkConfig `yaml:"networks"`
	Disabled bool            `yaml:"disabled"`
}

// networkConfig is a LAN behind a device and, optionally, the alias it is
// reached under.
type networkConfig struct {
	LAN   string `yaml:"lan"`
	Alias string `yaml:"alias"`
}

type relationConfig struct {
	Name      string   `yaml:"name"`
	From      string   `yaml:"from"`
	To        string   `yaml:"to"`
	Direction string   `yaml:"direction"` // one-way (default) or both
	Services  []string `yaml:"services"`  // any (default), tcp, tcp/102, udp/161, icmp, ...
	Disabled  bool     `yaml:"disabled"`
}

// defaultConfig is what `go run ./examples/broker` uses without -config:
// one engineer, one plant gateway with the LAN 192.168.0.0/24 exposed as
// 10.200.1.0/24, and a one-way relation for TCP and ICMP.
const defaultConfig = `
port: 1194
public_address: 127.0.0.1
pool: 10.8.0.0/24
groups:
  - name: plant1
users:
  - name: engineer
    roles: [vpn_user]
    groups: [vpn_user_group]
devices:
  - name: plant1-gw
    groups: [plant1]
    networks:
      - lan: 192.168.0.0/24
        alias: 10.200.1.0/24
relations:
  - name: engineers-to-plant1
    from: vpn_user_group
    to: plant1
    direction: one-way
    services: [tcp, icmp]
`

func loadConfig(path string) (*config, error) {
	data := []byte(defaultConfig)
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", nameOr(path, "built-in config"), err)
	}
	if c.Port == 0 {
		c.Port = 1194
	}
	if c.PublicAddress == "" {
		c.PublicAddress = "127.0.0.1"
	}
	if c.Pool == "" {
		c.Pool = "10.8.0.0/24"
	}
	return &c, nil
}

func nameOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// model turns the file into the access model and the devices' networks.
func (c *config) model() (*policy.Model, map[string]broker.DeviceNetworks, error) {
	m := &policy.Model{}
	for _, g := range c.Groups {
		m.Groups = append(m.Groups, policy.Group{Name: g.Name, Subgroups: g.Subgroups, Intra: g.Intra})
	}
	for _, u := range c.Users {
		m.Users = append(m.Users, policy.User{Name: u.Name, Roles: u.Roles, Groups: u.Groups, Disabled: u.Disabled})
	}
	devices := map[string]broker.DeviceNetworks{}
	for _, d := range c.Devices {
		dev := policy.Device{Name: d.Name, Groups: d.Groups, Disabled: d.Disabled}
		var nets broker.DeviceNetworks
		var mappings []nat.Mapping
		for _, n := range d.Networks {
			lan, err := netip.ParsePrefix(n.LAN)
			if err != nil {
				return nil, nil, fmt.Errorf("device %q: lan %q: %w", d.Name, n.LAN, err)
			}
			dev.Subnets = append(dev.Subnets, lan)
			nets.LANs = append(nets.LANs, lan)
			if n.Alias != "" {
				alias, err := netip.ParsePrefix(n.Alias)
				if err != nil {
					return nil, nil, fmt.Errorf("device %q: alias %q: %w", d.Name, n.Alias, err)
				}
				mappings = append(mappings, nat.Mapping{Real: lan, Alias: alias})
			}
		}
		if len(mappings) > 0 {
			t, err := nat.NewTable(mappings...)
			if err != nil {
				return nil, nil, fmt.Errorf("device %q: %w", d.Name, err)
			}
			nets.NAT = t
		}
		m.Devices = append(m.Devices, dev)
		devices[d.Name] = nets
	}
	for _, r := range c.Relations {
		rel := policy.Relation{Name: r.Name, From: r.From, To: r.To, Disabled: r.Disabled}
		switch r.Direction {
		case "", "one-way":
		case "both":
			rel.Direction = policy.Both
		default:
			return nil, nil, fmt.Errorf("relation %q: direction %q: want one-way or both", r.Name, r.Direction)
		}
		for _, s := range r.Services {
			svc, err := policy.ParseService(s)
			if err != nil {
				return nil, nil, fmt.Errorf("relation %q: %w", r.Name, err)
			}
			rel.Services = append(rel.Services, svc)
		}
		m.Relations = append(m.Relations, rel)
	}
	return m, devices, nil
}
