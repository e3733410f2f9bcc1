package ipsec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/remotegate/remotegate/ipsec/internal/esp"
	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// CREATE_CHILD_SA (RFC 7296 §1.3) in both roles of the exchange: the
// peer's requests (rekey of a child SA, rekey of the IKE SA, an additional
// child SA) are answered here whichever side started the IKE SA, and the
// rekey of a child SA that we start is sent from here.

// refusal is the answer to a CREATE_CHILD_SA that is refused.
func refusal(t message.NotifyType, data []byte) ([]message.Payload, func()) {
	return []message.Payload{&message.Notify{NotifyType: t, Data: data}}, func() {}
}

// handleCreateChild answers the peer's CREATE_CHILD_SA; the link's lock is
// held.
func (sa *ikeSA) handleCreateChild(ps []message.Payload) ([]message.Payload, func()) {
	saP, ok := message.Find[*message.SA](ps)
	nonce, ok2 := message.Find[*message.Nonce](ps)
	if !ok || !ok2 || len(nonce.Data) < 16 || len(nonce.Data) > 256 || len(saP.Proposals) == 0 {
		return refusal(message.NotifyInvalidSyntax, nil)
	}
	if out, after, refused := sa.peerCreateChildRefusal(ps); refused {
		return out, after
	}
	ke, hasKE := message.Find[*message.KE](ps)
	nr, err := sa.cfg.random(nonceLen)
	if err != nil {
		return refusal(message.NotifyTemporaryFailure, nil)
	}
	if saP.Proposals[0].Protocol == message.ProtoIKE {
		if !hasKE {
			return refusal(message.NotifyInvalidSyntax, nil)
		}
		return sa.rekeyIKE(saP, ke, nonce.Data, nr)
	}
	var old *childSA
	for _, n := range message.Notifies(ps) {
		if n.NotifyType == message.NotifyRekeySA && n.Protocol == message.ProtoESP && len(n.SPI) == 4 {
			spi := binary.BigEndian.Uint32(n.SPI)
			for _, c := range sa.children {
				if c.outSPI == spi && c.rekeyed.IsZero() {
					old = c
				}
			}
			if old == nil {
				return []message.Payload{&message.Notify{Protocol: message.ProtoESP, SPI: n.SPI, NotifyType: message.NotifyChildSANotFound}}, func() {}
			}
			if old.closing {
				// We are deleting it (RFC 7296 §2.25.1): the peer
				// makes a new child once our Delete arrives.
				return refusal(message.NotifyTemporaryFailure, nil)
			}
		}
	}
	// The addresses the child may cover: those of the child it replaces,
	// or what the role allows an additional one.
	var allowedPeer, allowedLocal []netip.Prefix
	if old != nil {
		allowedPeer, allowedLocal = prefixesOf(old.peerTS), prefixesOf(old.localTS)
	} else if allowedPeer, allowedLocal, ok = sa.role.additionalChild(sa); !ok {
		return refusal(message.NotifyNoAdditionalSAs, nil)
	}
	keGroup := uint16(0)
	if hasKE {
		keGroup = ke.Group
	}
	sel, err := selectESP(sa.cfg.espProposals, saP, keGroup)
	if g := sa.otherPFSGroup(saP, keGroup); err != nil && hasKE && g != 0 {
		return refusal(message.NotifyInvalidKEPayload, binary.BigEndian.AppendUint16(nil, g))
	}
	if err != nil && hasKE {
		// Perhaps a suite we take, without the group of the KE payload.
		if alt, err2 := selectESP(sa.cfg.espProposals, saP, 0); err2 == nil && alt.DHGroup == 0 {
			sel, err = alt, nil
		}
	}
	if err != nil {
		return refusal(message.NotifyNoProposalChosen, nil)
	}
	var shared []byte
	var myKE *message.KE
	if sel.DHGroup != 0 {
		dh, err := ikecrypto.NewDH(sel.DHGroup, sa.cfg.rand)
		if err == nil {
			shared, err = dh.SharedSecret(ke.Data)
		}
		if err != nil {
			return refusal(message.NotifyInvalidSyntax, nil)
		}
		myKE = &message.KE{Group: sel.DHGroup, Data: dh.Public()}
	}
	tsi, ok1 := findTS(ps, false)
	tsr, ok3 := findTS(ps, true)
	if !ok1 || !ok3 {
		return refusal(message.NotifyInvalidSyntax, nil)
	}
	// The peer started the exchange: TSi is its side, TSr ours.
	peerTS, localTS := narrow(tsi.Selectors, allowedPeer), narrow(tsr.Selectors, allowedLocal)
	if len(peerTS) == 0 || len(localTS) == 0 {
		sa.cfg.log.Info("CHILD_SA refused: traffic selectors", "initiator", tsString(tsi.Selectors), "responder", tsString(tsr.Selectors))
		return refusal(message.NotifyTSUnacceptable, nil)
	}
	child, err := sa.newChild(sel, shared, nonce.Data, nr, false, peerTS, localTS)
	if err != nil {
		sa.cfg.log.Error("CHILD_SA", "error", err)
		return refusal(message.NotifyNoProposalChosen, nil)
	}
	out := []message.Payload{
		&message.SA{Proposals: []message.Proposal{sel.transforms(message.ProtoESP, binary.BigEndian.AppendUint32(nil, child.inSPI))}},
		&message.Nonce{Data: nr},
	}
	if myKE != nil {
		out = append(out, myKE)
	}
	out = append(out, &message.TrafficSelectors{Selectors: peerTS}, &message.TrafficSelectors{Responder: true, Selectors: localTS})
	if old != nil {
		old.rekeyed = sa.cfg.now()
		// Our traffic stays on the old SA until the peer shows that it has
		// the new one, by sending on it or deleting the old one (RFC 7296
		// §2.8; strongSwan does the same as responder): if this response
		// is lost, the peer installs the new SA only when our answer to its
		// retransmission arrives, seconds later, and all we sent on the
		// new SA meanwhile would be dropped.
		child.replaces.Store(old)
		sa.peerRekeyedChild(old, child, nonce.Data, nr)
	}
	return out, func() { sa.role.childUp(sa, child, old) }
}

// rekeyChild starts the rekey of a child SA of ours (RFC 7296 §1.3.3),
// with a key exchange when our ESP proposals ask for PFS: the new child
// SA takes our traffic when the peer answers, and the old one is deleted
// then (rekey.go). The link's lock is held.
func (sa *ikeSA) rekeyChild(old *childSA) error {
	return sa.startChildRekey(old, sa.pfsGroup(old))
}

// newChild reserves an inbound SPI for a child SA, keys it and adds it to
// the IKE SA.
func (sa *ikeSA) newChild(sel chosen, shared, ni, nr []byte, weInitiated bool, peerTS, localTS []message.Selector) (*childSA, error) {
	c := &childSA{sa: sa}
	spi, err := sa.table.Reserve(sa.cfg.rand, c)
	if err != nil {
		return nil, err
	}
	c.inSPI = spi
	if err := sa.keyChild(c, sel, shared, ni, nr, weInitiated); err != nil {
		sa.table.Remove(spi)
		return nil, err
	}
	c.peerTS, c.localTS = cloneSelectors(peerTS), cloneSelectors(localTS)
	sa.children = append(sa.children, c)
	return c, nil
}

// keyChild derives the keys of a child SA whose inbound SPI is reserved
// (child.inSPI) and makes its ESP SAs. weInitiated says whether we started
// the exchange that created it: its initiator's traffic uses the first
// half of KEYMAT (RFC 7296 §2.17).
func (sa *ikeSA) keyChild(child *childSA, sel chosen, shared, ni, nr []byte, weInitiated bool) error {
	keys, err := ikecrypto.DeriveChildKeys(sa.prf, sa.keys.D, sel.childSuite(), shared, ni, nr)
	if err != nil {
		return fmt.Errorf("ipsec: child SA keys: %w", err)
	}
	inE, inA, outE, outA := keys.EncrI, keys.IntegI, keys.EncrR, keys.IntegR
	if weInitiated {
		inE, inA, outE, outA = outE, outA, inE, inA
	}
	child.sa, child.suite, child.created, child.outSPI = sa, sel, sa.cfg.now(), binary.BigEndian.Uint32(sel.spi)
	child.ike.Store(sa)
	if child.out, err = esp.NewOutbound(esp.Params{SPI: child.outSPI, Encr: sel.Encryption, EncrKey: outE, Integ: sel.Integrity, IntegKey: outA, ESN: sel.esn}); err != nil {
		return fmt.Errorf("ipsec: child SA: %w", err)
	}
	if child.in, err = esp.NewInbound(esp.Params{SPI: child.inSPI, Encr: sel.Encryption, EncrKey: inE, Integ: sel.Integrity, IntegKey: inA, ESN: sel.esn}, true); err != nil {
		return fmt.Errorf("ipsec: child SA: %w", err)
	}
	return nil
}

// rekeyIKE answers the rekey of the IKE SA (RFC 7296 §1.3.2, §2.18): a new
// IKE SA with new SPIs and keys, whose original initiator is the peer,
// takes over the children and the tunnel; this one waits for the peer's
// Delete.
func (sa *ikeSA) rekeyIKE(saP *message.SA, ke *message.KE, ni, nr []byte) ([]message.Payload, func()) {
	sel, wrongKE, err := selectIKE(sa.cfg.ikeProposals, saP, ke.Group)
	if err != nil {
		return refusal(message.NotifyNoProposalChosen, nil)
	}
	if wrongKE {
		return refusal(message.NotifyInvalidKEPayload, binary.BigEndian.AppendUint16(nil, sel.DHGroup))
	}
	if len(sel.spi) != 8 {
		return refusal(message.NotifyInvalidSyntax, nil)
	}
	dh, err := ikecrypto.NewDH(sel.DHGroup, sa.cfg.rand)
	if err != nil {
		return refusal(message.NotifyNoProposalChosen, nil)
	}
	shared, err := dh.SharedSecret(ke.Data)
	if err != nil {
		return refusal(message.NotifyInvalidSyntax, nil)
	}
	n := &ikeSA{cfg: sa.cfg, role: sa.role, link: sa.link, table: sa.table, created: sa.cfg.now(), firstRemote: sa.firstRemote,
		suite: sel, ni: bytes.Clone(ni), nr: nr, established: true, peerHashes: sa.peerHashes, psk: sa.psk, frag: sa.frag}
	copy(n.spii[:], sel.spi)
	if n.spir, err = sa.newSPI(); err != nil {
		return refusal(message.NotifyTemporaryFailure, nil)
	}
	if n.prf, err = ikecrypto.NewPRF(sel.PRF); err == nil {
		n.keys, err = ikecrypto.DeriveRekeyedIKEKeys(sa.prf, sa.keys.D, sel.ikeSuite(), shared, ni, nr, n.spii, n.spir)
	}
	if err == nil {
		err = n.installSK()
	}
	if err != nil {
		return refusal(message.NotifyNoProposalChosen, nil)
	}
	out := []message.Payload{
		&message.SA{Proposals: []message.Proposal{sel.transforms(message.ProtoIKE, n.spir[:])}},
		&message.Nonce{Data: nr},
		&message.KE{Group: sel.DHGroup, Data: dh.Public()},
	}
	return out, func() {
		// The children and the tunnel move to the new SA; this one waits
		// for the peer's delete.
		n.children = sa.children
		for _, c := range n.children {
			c.moveTo(n)
		}
		sa.children = nil
		n.session.Store(sa.session.Load())
		sa.rekeyedTo = n
		if sa.rk.ours {
			// Ours is in flight: the two collide (ikeRekeyAnswered).
			sa.rk.peerNonce = lowest(ni, nr)
		}
		sa.link.rekeys.peerIKE++
		sa.role.ikeRekeyed(sa, n)
		sa.cfg.log.Info("IKE SA rekeyed", "remote", sa.link.ep.Load().remote, "proposal", sel.String())
	}
}

func findTS(ps []message.Payload, responder bool) (*message.TrafficSelectors, bool) {
	for _, p := range ps {
		if ts, ok := p.(*message.TrafficSelectors); ok && ts.Responder == responder {
			return ts, true
		}
	}
	return nil, false
}
