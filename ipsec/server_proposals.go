package ipsec

import (
	"fmt"

	"github.com/remotegate/remotegate/tunnel"
)

// serverProposals are the proposals a running Server was given by
// SetProposals, defaulted.
type serverProposals struct {
	ike, esp []Proposal
}

// SetProposals replaces the IKE and ESP proposals of Config for the IKE SAs
// that start from now on; nil means the default set (DefaultIKEProposals,
// DefaultESPProposals), as in Config. The IKE SAs already established keep
// what they negotiated, and choose their rekeys from the proposals they
// started with, so a change never breaks a running tunnel.
//
// Config.ChildProposals, when it returns proposals for a peer, still
// takes precedence over esp.
func (s *Server) SetProposals(ike, esp []Proposal) error {
	if ike == nil {
		ike = DefaultIKEProposals
	}
	if esp == nil {
		esp = DefaultESPProposals
	}
	if len(ike) == 0 || len(esp) == 0 {
		return fmt.Errorf("%w: an empty proposal list accepts no peer (nil means the defaults)", ErrConfig)
	}
	for _, p := range ike {
		c := chosen{Proposal: p}
		if p.PRF == 0 || p.DHGroup == 0 {
			return fmt.Errorf("%w: IKE proposal %v needs a PRF and a DH group", ErrConfig, p)
		}
		if err := c.ikeSuite().Validate(); err != nil {
			return fmt.Errorf("%w: IKE proposal %v: %w", ErrConfig, p, err)
		}
	}
	for _, p := range esp {
		c := chosen{Proposal: p}
		if err := c.childSuite().Validate(); err != nil {
			return fmt.Errorf("%w: ESP proposal %v: %w", ErrConfig, p, err)
		}
	}
	s.proposals.Store(&serverProposals{ike: ike, esp: esp})
	return nil
}

// ikeProposals are the IKE proposals a new IKE SA chooses from.
func (s *Server) ikeProposals() []Proposal {
	if p := s.proposals.Load(); p != nil {
		return p.ike
	}
	return s.sc.ikeProposals
}

// configurePeer gives an IKE SA whose peer was just admitted as identity
// the proposals in force for it: the IKE proposals its own rekeys choose
// from, and the ESP proposals of its children (Config.ChildProposals,
// else the Server's). It runs with the link's lock held, before the SA
// has children or timers that read its configuration.
func (s *Server) configurePeer(sa *ikeSA, identity tunnel.Identity) {
	ike, esp := sa.cfg.ikeProposals, sa.cfg.espProposals
	if p := s.proposals.Load(); p != nil {
		ike, esp = p.ike, p.esp
	}
	if s.cfg.ChildProposals != nil {
		if own := s.cfg.ChildProposals(identity); len(own) > 0 {
			esp = own
		}
	}
	if sameList(ike, sa.cfg.ikeProposals) && sameList(esp, sa.cfg.espProposals) {
		return // the Server's own configuration, shared
	}
	c := *sa.cfg
	c.ikeProposals, c.espProposals = ike, esp
	sa.cfg = &c
}

// sameList reports whether a and b are the same slice (not merely equal).
func sameList(a, b []Proposal) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
