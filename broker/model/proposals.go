package model

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/ipsec"
)

// IPsecProposals are the IPsec proposals of a configuration, parsed: what
// the broker's IPsec server is given. Nil lists mean the ipsec package's
// defaults.
type IPsecProposals struct {
	IKE, ESP []ipsec.Proposal
	// Participants are the child SA proposals of single participants,
	// by name, in place of ESP.
	Participants map[string][]ipsec.Proposal
}

// ESPFor returns the child SA proposals of the participant called name:
// its own, else ESP (nil: the defaults).
func (p *IPsecProposals) ESPFor(name string) []ipsec.Proposal {
	if own, ok := p.Participants[name]; ok {
		return own
	}
	return p.ESP
}

// ParseIPsecProposals reads the proposals of c.Settings.Proposals, in
// strongSwan's syntax, and refuses (ErrInvalid) one that does not parse
// or that names no participant of c. Compile checks them so, which keeps a
// configuration with proposals the IPsec server would refuse from being
// stored.
func ParseIPsecProposals(c *store.Config) (*IPsecProposals, error) {
	sp := c.Settings.Proposals
	var p IPsecProposals
	var err error
	if sp.IKE != "" {
		if p.IKE, err = ipsec.ParseIKEProposals(sp.IKE); err != nil {
			return nil, fmt.Errorf("%w: IKE proposals: %w", ErrInvalid, err)
		}
	}
	if sp.ESP != "" {
		if p.ESP, err = ipsec.ParseESPProposals(sp.ESP); err != nil {
			return nil, fmt.Errorf("%w: ESP proposals: %w", ErrInvalid, err)
		}
	}
	if len(sp.Participants) == 0 {
		return &p, nil
	}
	known := Participants(c)
	p.Participants = make(map[string][]ipsec.Proposal, len(sp.Participants))
	for _, name := range slices.Sorted(maps.Keys(sp.Participants)) {
		if _, ok := known[name]; !ok {
			return nil, fmt.Errorf("%w: ESP proposals of %q: no such participant", ErrInvalid, name)
		}
		if p.Participants[name], err = ipsec.ParseESPProposals(sp.Participants[name]); err != nil {
			return nil, fmt.Errorf("%w: ESP proposals of %q: %w", ErrInvalid, name, err)
		}
	}
	return &p, nil
}

// forgetProposals removes the own proposals of a participant that is
// deleted, so that a participant made later under its name starts with
// the installation's.
func forgetProposals(cfg *store.Config, name string) {
	delete(cfg.Settings.Proposals.Participants, name)
	if len(cfg.Settings.Proposals.Participants) == 0 {
		cfg.Settings.Proposals.Participants = nil
	}
}

// IPsecProposals returns the IPsec proposals in force, as stored (strongSwan
// syntax; empty: the defaults).
func (m *Manager) IPsecProposals(ctx context.Context) (store.IPsecProposals, error) {
	cfg, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return store.IPsecProposals{}, err
	}
	return cfg.Settings.Proposals, nil
}

// SetIPsecProposals replaces the IPsec proposals. They apply from each
// participant's next connection (IKE SA) on: its IKE SA chooses from the
// IKE proposals, its children and all their rekeys from its own ESP
// proposals, else the installation's. Tunnels that are up keep their
// algorithms. A proposal that does not
// parse, or names no participant, is refused with ErrInvalid.
func (m *Manager) SetIPsecProposals(ctx context.Context, actor string, p store.IPsecProposals) error {
	if len(p.Participants) == 0 {
		p.Participants = nil
	}
	return m.Change(ctx, actor, "changed the IPsec proposals", func(cfg *store.Config, _ *store.Tx) error {
		cfg.Settings.Proposals = p
		return nil
	})
}
