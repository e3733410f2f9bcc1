package model

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
	"github.com/remotegate/remotegate/nat"
	"github.com/remotegate/remotegate/policy"
)

// ErrCapacity refuses a change that would take the number of participants
// (users plus devices) beyond the licensed capacity.
var ErrCapacity = errors.New("model: participant capacity reached")

// Compile turns a stored configuration into the broker's access model and
// device networks: a device's networks with an alias are exposed through
// 1:1 NAT, the others under their real prefixes. The devices' subnets in
// the model are taken from c.Networks, whatever c.Model says, so that the
// policy and the routes cannot disagree.
func Compile(c *store.Config) (*policy.Snapshot, map[string]broker.DeviceNetworks, error) {
	m := c.Model
	m.Devices = slices.Clone(m.Devices)
	devices := map[string]broker.DeviceNetworks{}
	for i, d := range m.Devices {
		var nets broker.DeviceNetworks
		var mappings []nat.Mapping
		for _, n := range c.Networks[d.Name] {
			nets.LANs = append(nets.LANs, n.LAN)
			if n.Alias.IsValid() {
				mappings = append(mappings, nat.Mapping{Real: n.LAN, Alias: n.Alias})
			}
		}
		if len(mappings) > 0 {
			t, err := nat.NewTable(mappings...)
			if err != nil {
				return nil, nil, fmt.Errorf("device %q: %w", d.Name, err)
			}
			nets.NAT = t
		}
		m.Devices[i].Subnets = nets.LANs
		devices[d.Name] = nets
	}
	snap, err := policy.Compile(&m)
	if err != nil {
		return nil, nil, err
	}
	if _, err := ParseIPsecProposals(c); err != nil {
		return nil, nil, err
	}
	return snap, devices, nil
}

// Participants maps the name of every participant of c, users and devices,
// to its creation time.
func Participants(c *store.Config) map[string]time.Time {
	m := make(map[string]time.Time, len(c.Model.Users)+len(c.Model.Devices))
	for _, u := range c.Model.Users {
		m[u.Name] = u.Created
	}
	for _, d := range c.Model.Devices {
		m[d.Name] = d.Created
	}
	return m
}

// CheckNewParticipants finishes a change of the configuration c whose
// participants were before (from Participants) until now. It sets the
// creation times: participants that existed keep theirs, whatever the
// change said (a creation time orders participants by seniority and is not
// editable), new ones are created now. It then refuses, with ErrCapacity,
// a change that adds participants beyond the capacity of lic (nil: no
// limit); a change that does not add participants is never refused, so an
// installation over its capacity (after a license lapsed) can still be
// edited and cleaned up.
func CheckNewParticipants(before map[string]time.Time, c *store.Config, lic *license.State, now time.Time) error {
	return CheckNewParticipantsAdmitting(before, c, lic, now, "")
}

// CheckNewParticipantsAdmitting is CheckNewParticipants that does not count
// the new participant called admitted (if it is new) toward the
// participants the change adds: the administrator named at the bootstrap,
// which is never refused for capacity (an installation whose participants
// fill its licenses must still be administrable).
func CheckNewParticipantsAdmitting(before map[string]time.Time, c *store.Config, lic *license.State, now time.Time, admitted string) error {
	m := &c.Model
	for i := range m.Users {
		m.Users[i].Created = createdAt(before, m.Users[i].Name, now)
	}
	for i := range m.Devices {
		m.Devices[i].Created = createdAt(before, m.Devices[i].Name, now)
	}
	if lic == nil {
		return nil
	}
	n := len(m.Users) + len(m.Devices)
	added := n
	if _, existed := before[admitted]; admitted != "" && !existed && isParticipant(c, admitted) {
		added--
	}
	if capacity := lic.Capacity(now); added > len(before) && n > capacity.Participants {
		return fmt.Errorf("%w: %d participants would exceed the licensed capacity of %s", ErrCapacity, n, capacity)
	}
	return nil
}

// isParticipant reports whether c has a user or device called name.
func isParticipant(c *store.Config, name string) bool {
	for _, u := range c.Model.Users {
		if u.Name == name {
			return true
		}
	}
	for _, d := range c.Model.Devices {
		if d.Name == name {
			return true
		}
	}
	return false
}

func createdAt(before map[string]time.Time, name string, now time.Time) time.Time {
	if t, ok := before[name]; ok {
		return t
	}
	return now.UTC().Truncate(time.Second)
}
