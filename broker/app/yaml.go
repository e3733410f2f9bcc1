package app

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// fileConfig is the declarative broker.yaml: the whole setup in one file
// that can live in version control. See the README for a complete example.
// Its settings (listen to ipsec, user_routes) become the stored
// store.Settings, its entries the stored model.
type fileConfig struct {
	// Listen is the address OpenVPN and IPsec listen on; empty means all.
	Listen string `yaml:"listen"`
	// Port for OpenVPN over UDP and TCP; zero means DefaultPort.
	Port int `yaml:"port"`
	// PublicAddress is what exported profiles connect to; empty means
	// DefaultPublicAddress.
	PublicAddress string `yaml:"public_address"`
	// Pool is the tunnel network; empty means DefaultPool.
	Pool string `yaml:"pool"`
	// Pool6 is the IPv6 tunnel network, e.g. fd00:8::/64; empty means
	// none. With it, participants get an IPv6 tunnel address too and
	// devices may have IPv6 networks (and aliases).
	Pool6 string `yaml:"pool6"`
	// IPsec configures the IKEv2 responder; by default it serves UDP 4500
	// and, with the privileges, 500.
	IPsec ipsecConfig `yaml:"ipsec"`
	// UserRoutes are pushed to every user besides the networks its
	// relations reach, e.g. the whole alias range, so that relations added
	// later work without reconnecting.
	UserRoutes []string         `yaml:"user_routes"`
	Groups     []groupConfig    `yaml:"groups"`
	Users      []userConfig     `yaml:"users"`
	Devices    []deviceConfig   `yaml:"devices"`
	Relations  []relationConfig `yaml:"relations"`
	// Licenses are license files to activate (paths relative to this
	// file), and to release: a license with release_to is released and its
	// release statement written there, for the vendor.
	Licenses []licenseConfig `yaml:"licenses"`

	path       string         // the file, empty for the built-in config
	raw        []byte         // its content
	pool       netip.Prefix   // Pool, parsed
	pool6      netip.Prefix   // Pool6, parsed; invalid when empty
	userRoutes []netip.Prefix // UserRoutes, parsed
}

type licenseConfig struct {
	File      string `yaml:"file"`
	ReleaseTo string `yaml:"release_to"`
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
	// PasswordHash lets the user log in to the management API with a
	// password (`broker hash-password` makes one); without it the user
	// logs in with a certificate only.
	PasswordHash string `yaml:"password_hash"`
	// ESPProposals are the user's own IPsec child SA proposals, in place
	// of ipsec.esp_proposals; empty: those.
	ESPProposals string `yaml:"esp_proposals"`
}

type deviceConfig struct {
	Name     string          `yaml:"name"`
	Groups   []string        `yaml:"groups"`
	Networks []networkConfig `yaml:"networks"`
	Disabled bool            `yaml:"disabled"`
	// ESPProposals are the device's own IPsec child SA proposals, in
	// place of ipsec.esp_proposals; empty: those.
	ESPProposals string `yaml:"esp_proposals"`
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

// defaultConfig is what a broker without Config.ConfigFile starts with:
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

// loadConfig reads and checks broker.yaml at path, or the built-in setup
// for "", and fills in the defaults.
func loadConfig(path string) (*fileConfig, error) {
	data := []byte(defaultConfig)
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c fileConfig
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", nameOr(path, "built-in config"), err)
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.PublicAddress == "" {
		c.PublicAddress = DefaultPublicAddress
	}
	if c.Pool == "" {
		c.Pool = DefaultPool.String()
	}
	c.IPsec.defaults()
	c.path, c.raw = path, data
	if err := profile.ValidHost(c.PublicAddress); err != nil {
		return nil, fmt.Errorf("%s: public_address: %w", nameOr(path, "built-in config"), err)
	}
	var err error
	if c.pool, err = netip.ParsePrefix(c.Pool); err != nil {
		return nil, fmt.Errorf("%s: pool: %w", nameOr(path, "built-in config"), err)
	}
	if c.Pool6 != "" {
		if c.pool6, err = netip.ParsePrefix(c.Pool6); err != nil {
			return nil, fmt.Errorf("%s: pool6: %w", nameOr(path, "built-in config"), err)
		}
	}
	for _, r := range c.UserRoutes {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("%s: user_routes: %w", nameOr(path, "built-in config"), err)
		}
		c.userRoutes = append(c.userRoutes, p)
	}
	for _, u := range c.Users {
		if u.PasswordHash != "" && !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
			return nil, fmt.Errorf("%s: user %q: password_hash must be an argon2id hash (broker hash-password makes one)", nameOr(path, "built-in config"), u.Name)
		}
	}
	return &c, nil
}

// settings are the file's settings as they are stored.
func (c *fileConfig) settings() store.Settings {
	return store.Settings{
		Listen: c.Listen, Port: c.Port, PublicAddress: c.PublicAddress,
		Pool: c.pool, Pool6: c.pool6, UserRoutes: c.userRoutes,
		IPsecPort: c.IPsec.Port, IKEPort: c.IPsec.IKEPort,
		Proposals: store.IPsecProposals{IKE: c.IPsec.IKEProposals, ESP: c.IPsec.ESPProposals},
	}
}

// apply writes the file's settings and entries into a stored
// configuration: the settings replace the stored ones, an entry with the
// name of an existing one replaces it, the others are added, and entries
// the file does not name (made through the API) stay.
func (c *fileConfig) apply(sc *store.Config) error {
	// A participant's own proposals are part of its entry: those of the
	// participants the file names come from the file, the others' stay.
	own := sc.Settings.Proposals.Participants
	sc.Settings = c.settings()
	setOwn := func(name, esp string) {
		if esp == "" {
			delete(own, name)
			return
		}
		if own == nil {
			own = map[string]string{}
		}
		own[name] = esp
	}
	for _, u := range c.Users {
		setOwn(u.Name, u.ESPProposals)
	}
	for _, d := range c.Devices {
		setOwn(d.Name, d.ESPProposals)
	}
	if len(own) > 0 {
		sc.Settings.Proposals.Participants = own
	}
	m := &sc.Model
	for _, g := range c.Groups {
		upsert(&m.Groups, policy.Group{Name: g.Name, Subgroups: g.Subgroups, Intra: g.Intra}, func(x policy.Group) string { return x.Name })
	}
	for _, u := range c.Users {
		upsert(&m.Users, policy.User{Name: u.Name, Roles: u.Roles, Groups: u.Groups, Disabled: u.Disabled}, func(x policy.User) string { return x.Name })
	}
	for _, d := range c.Devices {
		dev := policy.Device{Name: d.Name, Groups: d.Groups, Disabled: d.Disabled}
		var nets []store.Network
		for _, n := range d.Networks {
			lan, err := netip.ParsePrefix(n.LAN)
			if err != nil {
				return fmt.Errorf("device %q: lan %q: %w", d.Name, n.LAN, err)
			}
			net := store.Network{LAN: lan}
			if n.Alias != "" {
				if net.Alias, err = netip.ParsePrefix(n.Alias); err != nil {
					return fmt.Errorf("device %q: alias %q: %w", d.Name, n.Alias, err)
				}
			}
			dev.Subnets = append(dev.Subnets, lan)
			nets = append(nets, net)
		}
		upsert(&m.Devices, dev, func(x policy.Device) string { return x.Name })
		if sc.Networks == nil {
			sc.Networks = map[string][]store.Network{}
		}
		sc.Networks[d.Name] = nets
	}
	for _, r := range c.Relations {
		rel := policy.Relation{Name: r.Name, From: r.From, To: r.To, Disabled: r.Disabled}
		switch r.Direction {
		case "", "one-way":
		case "both":
			rel.Direction = policy.Both
		default:
			return fmt.Errorf("relation %q: direction %q: want one-way or both", r.Name, r.Direction)
		}
		for _, s := range r.Services {
			svc, err := policy.ParseService(s)
			if err != nil {
				return fmt.Errorf("relation %q: %w", r.Name, err)
			}
			rel.Services = append(rel.Services, svc)
		}
		upsert(&m.Relations, rel, func(x policy.Relation) string { return x.Name })
	}
	return nil
}

func upsert[T any](list *[]T, v T, name func(T) string) {
	for i := range *list {
		if name((*list)[i]) == name(v) {
			(*list)[i] = v
			return
		}
	}
	*list = append(*list, v)
}

// check refuses a stored configuration the broker would refuse to run
// with its pool, so that it is never stored and a bad file is reported at
// once, naming the network and the conflict.
func check(sc *store.Config) error {
	_, devices, err := model.Compile(sc)
	if err != nil {
		return err
	}
	s := withDefaults(sc.Settings)
	return broker.CheckNetworks6(s.Pool, s.Pool6, devices)
}

// ipsecConfig is the IPsec part of broker.yaml.
type ipsecConfig struct {
	// Port is the UDP port of IKE with NAT traversal and of ESP; zero
	// means DefaultIPsecPort, negative turns IPsec off.
	Port int `yaml:"port"`
	// IKEPort is the plain IKE port initiators start on by default; zero
	// means DefaultIKEPort, negative none. It needs privileges; without
	// them the broker serves IPsec on Port only (its profiles use it).
	IKEPort int `yaml:"ike_port"`
	// IKEProposals and ESPProposals are the proposals of every IPsec peer
	// in strongSwan's syntax ("aes256gcm16-prfsha384-ecp384", several
	// separated by commas); empty: the ipsec package's defaults. A
	// participant may have its own ESP proposals (esp_proposals in its
	// entry); IKE proposals are the installation's, since the broker
	// answers IKE_SA_INIT before the peer says who it is.
	IKEProposals string `yaml:"ike_proposals"`
	ESPProposals string `yaml:"esp_proposals"`
}

func (c *ipsecConfig) defaults() {
	if c.Port == 0 {
		c.Port = DefaultIPsecPort
	}
	if c.IKEPort == 0 {
		c.IKEPort = DefaultIKEPort
	}
}
