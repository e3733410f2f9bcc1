package ipsec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// Rekeys that we start (RFC 7296 §1.3.2, §1.3.3, §2.8), in both roles.
//
// The periodic tick (retransmit.go) looks at the lifetimes
// (lifetime.go): a child SA is rekeyed at its rekey time or when the
// packets sent on it reach the limit (the 32-bit sequence number), an IKE
// SA at its rekey time, and an SA still not rekeyed at its hard limit is
// deleted. One rekey of ours runs at a time per IKE SA: an IKE SA rekey
// waits for the child SA rekeys in flight and the other way round, as
// RFC 7296 §2.25.2 asks of a peer that starts them.
//
// Simultaneous rekeys (§2.8.1): when the peer's rekey of the same SA
// arrives while ours is in flight, both are answered and both complete;
// of the two new SAs, the one whose exchange has the lowest nonce is
// redundant, and its initiator deletes it. Both sides compute the same, so
// exactly one new SA survives. A rekey of a child SA while we rekey the
// IKE SA, or of the IKE SA while we rekey a child SA, is refused with
// TEMPORARY_FAILURE (§2.25.2); the peer, like us, tries again a little
// later.

// childRekey is the rekey state of a child SA; the link's lock guards it.
type childRekey struct {
	scheduled         bool
	rekeyAt, expireAt time.Time // zero: never
	retryAt           time.Time // after a failed rekey of ours
	packets           uint64    // rekey after this many packets sent; 0: never
	ours              bool      // our rekey of the child is in flight
	// pfsFlipped: the peer refused our proposals, and we tried again
	// with PFS when we had offered none, or without when we had.
	pfsFlipped bool
	expiring   bool // deleted at the hard limit
	// peerNew is the child of the peer's rekey of this child that we
	// answered while ours was in flight, and peerNonce the lowest nonce of
	// that exchange.
	peerNew   *childSA
	peerNonce []byte
}

// ikeRekey is the rekey state of an IKE SA; the link's lock guards it.
type ikeRekey struct {
	scheduled         bool
	rekeyAt, expireAt time.Time
	retryAt           time.Time
	ours              bool      // our rekey of the IKE SA is in flight
	peerNonce         []byte    // the lowest nonce of the peer's rekey of this IKE SA
	replacedAt        time.Time // when the tick first saw rekeyedTo set
}

// rekeyCounts counts the rekeys of a link, for logs and
// tests: child SAs and IKE SAs that we replaced, and those the peer did.
type rekeyCounts struct {
	ourChild, peerChild, ourIKE, peerIKE, redundant int
}

// lowest is the lower of an exchange's two nonces (RFC 7296 §2.8.1).
func lowest(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}

// retryDelay is how long we wait before trying a failed rekey again:
// random between one and two RetransmitTimeouts, so that two peers that
// collided do not collide again.
func (sa *ikeSA) retryDelay() time.Duration {
	d := sa.cfg.retransmitTimeout
	if r, err := sa.cfg.random(2); err == nil {
		d += time.Duration(binary.BigEndian.Uint16(r)) * d / 65536
	}
	return d
}

// rekeyTick starts the rekeys that are due and deletes what outlived its
// hard limit; the link's lock is held.
func (sa *ikeSA) rekeyTick(now time.Time) {
	if sa.rekeyedTo != nil && !sa.closed {
		// Replaced, and waiting for the peer's Delete: a peer that never
		// sends it (strongSwan drops the redundant IKE SA of a collision
		// silently when our Delete of the old one overtakes our answer to
		// its rekey) must not leave it with us for good.
		switch {
		case sa.rk.replacedAt.IsZero():
			sa.rk.replacedAt = now
		case now.Sub(sa.rk.replacedAt) > rekeyedGrace && sa.pending == nil && len(sa.queue) == 0:
			sa.retireLocked()
		}
		return
	}
	if sa.closed || sa.deleting || !sa.established {
		return
	}
	if !sa.rk.scheduled {
		sa.rk.scheduled = true
		sa.rk.rekeyAt, sa.rk.expireAt = sa.cfg.ikeLife.schedule(sa.cfg, sa.created)
	}
	if !sa.rk.expireAt.IsZero() && !now.Before(sa.rk.expireAt) {
		sa.cfg.log.Warn("IKE SA expired without a rekey", "remote", sa.link.ep.Load().remote)
		// A Delete would wait behind a request the peer has not answered
		// for long (the window is one request): then the peer learns of
		// the end by its own dead peer detection.
		sa.closeLocked(ErrExpired, sa.pending == nil)
		return
	}
	busy := sa.rk.ours
	for _, c := range slices.Clone(sa.children) {
		if !c.rekeyed.IsZero() || c.rk.expiring || c.out == nil {
			continue
		}
		if c.rk.ours {
			busy = true
			continue
		}
		if !c.rk.scheduled {
			c.rk.scheduled = true
			c.rk.rekeyAt, c.rk.expireAt = sa.cfg.childLife.schedule(sa.cfg, c.created)
			c.rk.packets = sa.cfg.childLife.packetLimit(c.suite.esn)
		}
		if !c.rk.expireAt.IsZero() && !now.Before(c.rk.expireAt) {
			sa.cfg.log.Warn("CHILD_SA expired without a rekey", "spi_in", fmt.Sprintf("%08x", c.inSPI))
			c.rk.expiring = true
			sa.expireChild(c)
			continue
		}
		due := !c.rk.rekeyAt.IsZero() && !now.Before(c.rk.rekeyAt) || c.rk.packets != 0 && c.out.Sent() >= c.rk.packets
		if due && !sa.rk.ours && !now.Before(c.rk.retryAt) {
			if err := sa.rekeyChild(c); err != nil {
				sa.cfg.log.Info("CHILD_SA rekey", "error", err)
				c.rk.retryAt = now.Add(sa.retryDelay())
				continue
			}
			busy = true
		}
	}
	if !busy && !sa.rk.rekeyAt.IsZero() && !now.Before(sa.rk.rekeyAt) && !now.Before(sa.rk.retryAt) {
		if err := sa.startIKERekey(sa.suite.DHGroup); err != nil {
			sa.cfg.log.Info("IKE SA rekey", "error", err)
			sa.rk.retryAt = now.Add(sa.retryDelay())
		}
	}
}

// expireChild deletes a child SA at its hard limit; a Client left without
// a child SA ends (role.childless).
func (sa *ikeSA) expireChild(c *childSA) {
	c.closing = true
	spi := binary.BigEndian.AppendUint32(nil, c.inSPI)
	sa.enqueue(message.Informational, []message.Payload{&message.Delete{Protocol: message.ProtoESP, SPISize: 4, SPIs: [][]byte{spi}}},
		func([]message.Payload) {
			sa.removeChild(c)
			if sa.link.out.Load() == nil && !sa.closed && !sa.deleting {
				if _, initiator := sa.role.(*Client); initiator {
					// A Client without a child carries nothing: its
					// tunnel ends, because its own child expired.
					sa.closeLocked(ErrExpired, true)
					return
				}
				sa.role.childless(sa)
			}
		})
}

// peerCreateChildRefusal refuses a CREATE_CHILD_SA of the peer that
// collides with an exchange of ours (RFC 7296 §2.25.2), or that comes on
// an IKE SA already replaced; ok false lets it through. The link's lock is
// held.
func (sa *ikeSA) peerCreateChildRefusal(ps []message.Payload) (out []message.Payload, after func(), refused bool) {
	saP, ok := message.Find[*message.SA](ps)
	if !ok || len(saP.Proposals) == 0 {
		return nil, nil, false
	}
	ikeRekey := saP.Proposals[0].Protocol == message.ProtoIKE
	busyChild := false
	for _, c := range sa.children {
		busyChild = busyChild || c.rk.ours
	}
	switch {
	case sa.rekeyedTo != nil,
		// Our IKE SA rekey is in flight: a child SA rekey would be made on
		// the IKE SA that goes away.
		!ikeRekey && sa.rk.ours,
		// Our child SA rekey is in flight: the children of the new IKE SA
		// would miss it.
		ikeRekey && busyChild:
		out, after = refusal(message.NotifyTemporaryFailure, nil)
		return out, after, true
	}
	return nil, nil, false
}

// peerRekeyedChild notes that we answered the peer's rekey of old with
// child (nonces ni, nr): if our rekey of old is in flight, the two collide
// (§2.8.1), resolved when our answer arrives (childRekeyAnswered).
func (sa *ikeSA) peerRekeyedChild(old, child *childSA, ni, nr []byte) {
	sa.link.rekeys.peerChild++
	if old.rk.ours {
		old.rk.peerNew, old.rk.peerNonce = child, lowest(ni, nr)
	}
}

// pfsGroup is the DH group of a rekey of c: the group it was made with,
// or the first group of our ESP proposals (strongSwan's esp_proposals
// with a group ask for PFS in rekeys); 0: no PFS.
func (sa *ikeSA) pfsGroup(c *childSA) uint16 {
	if c.suite.DHGroup != 0 {
		return c.suite.DHGroup
	}
	for _, p := range sa.cfg.espProposals {
		if p.DHGroup != 0 {
			return p.DHGroup
		}
	}
	return 0
}

// espRekeyOffer are our ESP proposals for a rekey: with a KE payload in
// group (PFS), their groups, and group for those that name none (we take
// any group we implement with them, see selectESP); else without groups.
func espRekeyOffer(ps []Proposal, group uint16) []Proposal {
	out := make([]Proposal, 0, len(ps))
	for _, p := range ps {
		p.PRF = 0
		switch {
		case group == 0:
			p.DHGroup = 0
		case p.DHGroup == 0:
			p.DHGroup = group
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// otherPFSGroup is a group of our ESP proposals, other than the one of
// the peer's KE payload, in which we would take the peer's CREATE_CHILD_SA:
// we answer INVALID_KE_PAYLOAD with it (RFC 7296 §1.3). 0: none.
func (sa *ikeSA) otherPFSGroup(saP *message.SA, keGroup uint16) uint16 {
	for _, p := range sa.cfg.espProposals {
		if p.DHGroup == 0 || p.DHGroup == keGroup {
			continue
		}
		if _, err := selectESP(sa.cfg.espProposals, saP, p.DHGroup); err == nil {
			return p.DHGroup
		}
	}
	return 0
}

// errInvalidKE is the peer's INVALID_KE_PAYLOAD: it wants group.
type errInvalidKE struct{ group uint16 }

func (e errInvalidKE) Error() string {
	return fmt.Sprintf("ipsec: the peer wants DH group %d", e.group)
}

// rekeyError is the error notify of an answer to a rekey of ours.
func rekeyError(ps []message.Payload) error {
	for _, n := range message.Notifies(ps) {
		if n.NotifyType == message.NotifyInvalidKEPayload && len(n.Data) == 2 {
			return errInvalidKE{binary.BigEndian.Uint16(n.Data)}
		}
	}
	return notifyError(ps)
}

// startChildRekey sends our rekey of old (RFC 7296 §1.3.3), with a key
// exchange in group (0: none). The link's lock is held.
func (sa *ikeSA) startChildRekey(old *childSA, group uint16) error {
	if sa.closed || sa.deleting || !sa.established || sa.rekeyedTo != nil {
		return fmt.Errorf("%w: the IKE SA is ending", ErrClosed)
	}
	// A placeholder holds the inbound SPI until the answer keys the child:
	// the ESP path skips it (no Inbound).
	placeholder := &childSA{sa: sa}
	spi, err := sa.table.Reserve(sa.cfg.rand, placeholder)
	if err != nil {
		return fmt.Errorf("ipsec: child SA: %w", err)
	}
	ni, err := sa.cfg.random(nonceLen)
	if err != nil {
		sa.table.Remove(spi)
		return err
	}
	var dh ikecrypto.DH
	if group != 0 {
		if dh, err = ikecrypto.NewDH(group, sa.cfg.rand); err != nil {
			sa.table.Remove(spi)
			return fmt.Errorf("ipsec: child SA rekey: %w", err)
		}
	}
	spiB := binary.BigEndian.AppendUint32(nil, spi)
	ps := []message.Payload{
		&message.Notify{Protocol: message.ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, old.inSPI), NotifyType: message.NotifyRekeySA},
		&message.SA{Proposals: wireProposals(espRekeyOffer(sa.cfg.espProposals, group), message.ProtoESP, spiB, group)},
		&message.Nonce{Data: ni},
	}
	if dh != nil {
		ps = append(ps, &message.KE{Group: group, Data: dh.Public()})
	}
	// We start the exchange: TSi is our side.
	ps = append(ps, &message.TrafficSelectors{Selectors: old.localTS}, &message.TrafficSelectors{Responder: true, Selectors: old.peerTS})
	old.rk.ours = true
	sa.enqueue(message.CreateChildSA, ps, func(resp []message.Payload) {
		old.rk.ours = false
		err := sa.childRekeyAnswered(old, spi, ni, dh, resp)
		if err == nil {
			return
		}
		sa.table.Remove(spi)
		old.rk.peerNew, old.rk.peerNonce = nil, nil
		var ike errInvalidKE
		if errors.As(err, &ike) && ike.group != group && old.rekeyed.IsZero() {
			if err = sa.startChildRekey(old, ike.group); err == nil {
				return
			}
		}
		if errors.Is(err, ErrNoProposal) && !old.rk.pfsFlipped && old.rekeyed.IsZero() {
			// The peer's child SA may want PFS that our proposals do not
			// name (strongSwan's esp_proposals with a group: the first
			// child, made in IKE_AUTH, shows none), or no PFS where ours
			// do: the other way once.
			old.rk.pfsFlipped = true
			other := uint16(0)
			if group == 0 {
				other = sa.suite.DHGroup
			}
			if err = sa.startChildRekey(old, other); err == nil {
				return
			}
		}
		old.rk.retryAt = sa.cfg.now().Add(sa.retryDelay())
		sa.cfg.log.Info("CHILD_SA rekey failed", "spi_in", fmt.Sprintf("%08x", old.inSPI), "error", err)
	})
	return nil
}

// childRekeyAnswered takes the answer to our rekey of old: the new child
// SA, whose inbound SPI is reserved, is keyed and takes our traffic, and
// old is deleted; or, if the peer rekeyed old at the same time and its
// exchange wins, the new child is the redundant one and is deleted.
func (sa *ikeSA) childRekeyAnswered(old *childSA, spi uint32, ni []byte, dh ikecrypto.DH, ps []message.Payload) error {
	if err := rekeyError(ps); err != nil {
		return err
	}
	saP, ok1 := message.Find[*message.SA](ps)
	nonce, ok2 := message.Find[*message.Nonce](ps)
	tsi, ok3 := findTS(ps, false)
	tsr, ok4 := findTS(ps, true)
	if !ok1 || !ok2 || !ok3 || !ok4 || len(nonce.Data) < 16 || len(nonce.Data) > 256 {
		return errors.New("ipsec: CREATE_CHILD_SA response without SA, nonce or traffic selectors")
	}
	if !singleProposal(saP, message.ProtoESP) {
		return fmt.Errorf("%w: the CREATE_CHILD_SA response is not one of our proposals", ErrNoProposal)
	}
	ke, hasKE := message.Find[*message.KE](ps)
	group := uint16(0)
	if dh != nil && hasKE {
		group = ke.Group
	}
	sel, err := selectESP(espRekeyOffer(sa.cfg.espProposals, group), saP, group)
	noPFS := dh != nil && !hasKE && !slices.ContainsFunc(sa.cfg.espProposals, func(p Proposal) bool { return p.DHGroup == 0 })
	if err != nil || noPFS || hasKE && (dh == nil || ke.Group != dh.Group()) {
		return fmt.Errorf("%w: the peer chose an ESP suite we did not offer", ErrNoProposal)
	}
	var shared []byte
	if sel.DHGroup != 0 {
		if shared, err = dh.SharedSecret(ke.Data); err != nil {
			return fmt.Errorf("ipsec: child SA rekey: %w", err)
		}
	}
	if !within(tsi.Selectors, old.localTS) || !within(tsr.Selectors, old.peerTS) || len(tsi.Selectors) == 0 || len(tsr.Selectors) == 0 {
		return fmt.Errorf("%w: traffic selectors %v === %v are not within the child's", ErrRefused, tsi.Selectors, tsr.Selectors)
	}
	child := &childSA{sa: sa, inSPI: spi}
	nr := bytes.Clone(nonce.Data)
	if err := sa.keyChild(child, sel, shared, ni, nr, true); err != nil {
		return err
	}
	child.localTS, child.peerTS = cloneSelectors(tsi.Selectors), cloneSelectors(tsr.Selectors)
	sa.table.Remove(spi)
	if err := sa.table.Add(spi, child); err != nil {
		return fmt.Errorf("ipsec: child SA: %w", err)
	}
	sa.children = append(sa.children, child)
	if peer := old.rk.peerNew; peer != nil {
		old.rk.peerNew = nil
		if bytes.Compare(lowest(ni, nr), old.rk.peerNonce) < 0 {
			// Ours is redundant: we delete it; the peer deletes old, and
			// our traffic moves to the peer's child as it does after any
			// rekey the peer started.
			child.rekeyed = sa.cfg.now()
			sa.link.rekeys.redundant++
			sa.cfg.log.Info("CHILD_SA rekey collision: ours is redundant", "spi_in", fmt.Sprintf("%08x", child.inSPI))
			sa.deleteChild(child)
			return nil
		}
		// The peer's is redundant: the peer deletes it, and it takes none
		// of our traffic.
		peer.rekeyed = sa.cfg.now()
		peer.replaces.Store(nil)
		sa.link.out.CompareAndSwap(peer, child)
		sa.cfg.log.Info("CHILD_SA rekey collision: the peer's is redundant", "spi_in", fmt.Sprintf("%08x", peer.inSPI))
	}
	if old.rekeyed.IsZero() {
		old.rekeyed = sa.cfg.now()
	}
	// As the initiator of the rekey we may send on the new child at once
	// (RFC 7296 §2.8): the peer installed it before it answered.
	sa.link.out.CompareAndSwap(old, child)
	sa.link.rekeys.ourChild++
	sa.role.childUp(sa, child, old)
	sa.deleteChild(old)
	return nil
}

// startIKERekey sends our rekey of the IKE SA (RFC 7296 §1.3.2) with a
// key exchange in group. The link's lock is held.
func (sa *ikeSA) startIKERekey(group uint16) error {
	n := sa.successor(true)
	var err error
	if n.spii, err = sa.newSPI(); err != nil {
		return err
	}
	ni, err := sa.cfg.random(nonceLen)
	if err != nil {
		return err
	}
	dh, err := ikecrypto.NewDH(group, sa.cfg.rand)
	if err != nil {
		return fmt.Errorf("ipsec: IKE SA rekey: %w", err)
	}
	ps := []message.Payload{
		&message.SA{Proposals: wireProposals(sa.cfg.ikeProposals, message.ProtoIKE, n.spii[:], group)},
		&message.Nonce{Data: ni},
		&message.KE{Group: group, Data: dh.Public()},
	}
	sa.rk.ours = true
	sa.enqueue(message.CreateChildSA, ps, func(resp []message.Payload) {
		sa.rk.ours = false
		err := sa.ikeRekeyAnswered(n, ni, dh, resp)
		if err == nil {
			return
		}
		sa.rk.peerNonce = nil
		var ike errInvalidKE
		if errors.As(err, &ike) && ike.group != group && sa.rekeyedTo == nil {
			if err = sa.startIKERekey(ike.group); err == nil {
				return
			}
		}
		sa.rk.retryAt = sa.cfg.now().Add(sa.retryDelay())
		sa.cfg.log.Info("IKE SA rekey failed", "remote", sa.link.ep.Load().remote, "error", err)
	})
	return nil
}

// successor is a new IKE SA that is to replace this one, with the state
// that rekeys keep; initiator says whether we are its original initiator.
func (sa *ikeSA) successor(initiator bool) *ikeSA {
	n := &ikeSA{cfg: sa.cfg, role: sa.role, link: sa.link, table: sa.table, created: sa.cfg.now(), firstRemote: sa.firstRemote,
		initiator: initiator, established: true, peerHashes: sa.peerHashes, psk: sa.psk, frag: sa.frag}
	n.session.Store(sa.session.Load())
	return n
}

// ikeRekeyAnswered takes the answer to our rekey of the IKE SA: n, whose
// SPI is ours, is keyed and takes over the children and the tunnel, and
// this IKE SA is deleted; or, if the peer rekeyed it at the same time and
// its exchange wins, n is redundant and is deleted.
func (sa *ikeSA) ikeRekeyAnswered(n *ikeSA, ni []byte, dh ikecrypto.DH, ps []message.Payload) error {
	if err := rekeyError(ps); err != nil {
		return err
	}
	saP, ok1 := message.Find[*message.SA](ps)
	nonce, ok2 := message.Find[*message.Nonce](ps)
	ke, ok3 := message.Find[*message.KE](ps)
	if !ok1 || !ok2 || !ok3 || len(nonce.Data) < 16 || len(nonce.Data) > 256 {
		return errors.New("ipsec: IKE SA rekey response without SA, nonce or KE")
	}
	if !singleProposal(saP, message.ProtoIKE) || ke.Group != dh.Group() {
		return fmt.Errorf("%w: the IKE SA rekey response is not one of our proposals", ErrNoProposal)
	}
	sel, wrongKE, err := selectIKE(sa.cfg.ikeProposals, saP, ke.Group)
	if err != nil || wrongKE || len(sel.spi) != 8 {
		return fmt.Errorf("%w: the peer chose an IKE suite we did not offer", ErrNoProposal)
	}
	shared, err := dh.SharedSecret(ke.Data)
	if err != nil {
		return fmt.Errorf("ipsec: IKE SA rekey: %w", err)
	}
	copy(n.spir[:], sel.spi)
	n.suite, n.ni, n.nr = sel, ni, bytes.Clone(nonce.Data)
	if n.prf, err = ikecrypto.NewPRF(sel.PRF); err == nil {
		n.keys, err = ikecrypto.DeriveRekeyedIKEKeys(sa.prf, sa.keys.D, sel.ikeSuite(), shared, n.ni, n.nr, n.spii, n.spir)
	}
	if err == nil {
		err = n.installSK()
	}
	if err != nil {
		return fmt.Errorf("ipsec: IKE SA rekey: %w", err)
	}
	if peer := sa.rekeyedTo; peer != nil {
		// The peer rekeyed this IKE SA too, and we answered (rekeyIKE):
		// the children went to peer.
		if bytes.Compare(lowest(n.ni, n.nr), sa.rk.peerNonce) < 0 {
			// Ours is redundant: we delete it; the peer deletes this one.
			sa.link.rekeys.redundant++
			sa.cfg.log.Info("IKE SA rekey collision: ours is redundant", "remote", sa.link.ep.Load().remote)
			n.rekeyedTo = peer
			sa.role.adopt(n)
			n.enqueue(message.Informational, []message.Payload{&message.Delete{Protocol: message.ProtoIKE}}, func([]message.Payload) { n.retireLocked() })
			return nil
		}
		// The peer's is redundant: it deletes it; ours takes over.
		sa.cfg.log.Info("IKE SA rekey collision: the peer's is redundant", "remote", sa.link.ep.Load().remote)
		n.children, peer.children = peer.children, nil
		peer.rekeyedTo = n
		defer sa.role.adopt(peer) // after ikeRekeyed, which replaces it as the current IKE SA
	} else {
		n.children, sa.children = sa.children, nil
	}
	for _, c := range n.children {
		c.moveTo(n)
	}
	sa.rekeyedTo = n
	sa.link.rekeys.ourIKE++
	sa.role.ikeRekeyed(sa, n)
	sa.cfg.log.Info("IKE SA rekeyed", "remote", sa.link.ep.Load().remote, "proposal", sel.String())
	sa.enqueue(message.Informational, []message.Payload{&message.Delete{Protocol: message.ProtoIKE}}, func([]message.Payload) { sa.retireLocked() })
	return nil
}

// moveTo makes n the IKE SA of the child (an IKE SA rekey); the ESP path
// reads it through ike, without the link's lock.
func (c *childSA) moveTo(n *ikeSA) {
	c.sa = n
	c.ike.Store(n)
}
