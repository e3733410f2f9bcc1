package ipsec

import (
	"encoding/binary"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// handleInformational answers an INFORMATIONAL request (RFC 7296 §1.4):
// an empty one is a dead peer check, answered empty; Delete payloads
// remove the IKE SA or child SAs, and the answer names the child SAs of
// ours that went with them.
func (sa *ikeSA) handleInformational(ps []message.Payload) ([]message.Payload, func()) {
	var out []message.Payload
	removed := false
	for _, p := range ps {
		d, ok := p.(*message.Delete)
		if !ok {
			continue
		}
		switch d.Protocol {
		case message.ProtoIKE:
			switch {
			case sa.rekeyedTo != nil:
				// The old SA of a rekey: the tunnel lives on in the new one.
				return nil, sa.retireLocked
			case sa.deleting:
				// Both sides delete at once: this answer is as good as the
				// one to ours.
				return nil, sa.goneLocked
			}
			return nil, func() { sa.closeLocked(ErrDeleted, false) }
		case message.ProtoESP:
			var ours [][]byte
			for _, spi := range d.SPIs {
				if len(spi) != 4 {
					continue
				}
				if c := sa.removeChildByOutSPI(binary.BigEndian.Uint32(spi)); c != nil {
					ours = append(ours, binary.BigEndian.AppendUint32(nil, c.inSPI))
					removed = true
				}
			}
			if len(ours) > 0 {
				out = append(out, &message.Delete{Protocol: message.ProtoESP, SPISize: 4, SPIs: ours})
			}
		}
	}
	return out, func() {
		if removed && sa.link.out.Load() == nil && !sa.closed && !sa.deleting {
			sa.role.childless(sa)
		}
	}
}

// deleteChild asks the peer to delete a child SA of ours (after we
// rekeyed it); it goes when the peer answers. The link's lock is held.
func (sa *ikeSA) deleteChild(c *childSA) {
	c.closing = true
	spi := binary.BigEndian.AppendUint32(nil, c.inSPI)
	sa.enqueue(message.Informational, []message.Payload{&message.Delete{Protocol: message.ProtoESP, SPISize: 4, SPIs: [][]byte{spi}}},
		func([]message.Payload) { sa.removeChild(c) })
}

// removeChildByOutSPI removes the child whose outbound SPI (the peer's
// inbound) is spi; the link's lock is held.
func (sa *ikeSA) removeChildByOutSPI(spi uint32) *childSA {
	for _, c := range sa.children {
		if c.outSPI == spi {
			sa.removeChild(c)
			return c
		}
	}
	return nil
}

// removeChild removes a child SA of this IKE SA, moving our traffic to
// its successor.
func (sa *ikeSA) removeChild(c *childSA) {
	for i, x := range sa.children {
		if x == c {
			sa.children = append(sa.children[:i], sa.children[i+1:]...)
			sa.table.Remove(c.inSPI)
			sa.handOver(c)
			return
		}
	}
}

// expireChildren removes the rekeyed child SAs whose grace time is over.
func (sa *ikeSA) expireChildren(now time.Time) {
	for i := 0; i < len(sa.children); i++ {
		c := sa.children[i]
		if !c.rekeyed.IsZero() && now.Sub(c.rekeyed) > rekeyedGrace {
			sa.removeChild(c)
			i--
		}
	}
}

// dropChildren removes all child SAs: the IKE SA is ending.
func (sa *ikeSA) dropChildren() {
	for _, c := range sa.children {
		sa.table.Remove(c.inSPI)
		sa.link.out.CompareAndSwap(c, nil)
	}
	sa.children = nil
}

// handOver moves our outbound traffic off c, which is going away, to the
// child that replaced it in a rekey, if any; the link's lock is held.
func (sa *ikeSA) handOver(c *childSA) {
	for _, n := range sa.children {
		if n.replaces.Load() == c {
			n.replaces.Store(nil)
			sa.link.out.CompareAndSwap(c, n)
			return
		}
	}
	sa.link.out.CompareAndSwap(c, nil)
}
