package ipsec

import (
	"fmt"
	"strings"

	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// Algorithm numbers (IANA "IKEv2 Parameters").
const (
	EncrAESCBC           uint16 = 12
	EncrAESGCM16         uint16 = 20
	EncrChaCha20Poly1305 uint16 = 28

	IntegHMACSHA256 uint16 = 12 // HMAC-SHA2-256-128
	IntegHMACSHA384 uint16 = 13 // HMAC-SHA2-384-192
	IntegHMACSHA512 uint16 = 14 // HMAC-SHA2-512-256

	PRFHMACSHA256 uint16 = 5
	PRFHMACSHA384 uint16 = 6
	PRFHMACSHA512 uint16 = 7

	DHModp2048   uint16 = 14
	DHECP256     uint16 = 19
	DHECP384     uint16 = 20
	DHCurve25519 uint16 = 31
)

// Proposal is one acceptable combination of algorithms. For the IKE SA
// PRF and DHGroup are required; for ESP, DHGroup is the group of a
// CREATE_CHILD_SA with perfect forward secrecy (0: none) and PRF is unused.
// Integrity is 0 for the AEAD ciphers (AES-GCM, ChaCha20-Poly1305).
type Proposal struct {
	Encryption uint16
	// KeyBits is the AES key size: 128, 192 or 256; 0 for
	// ChaCha20-Poly1305.
	KeyBits   int
	Integrity uint16
	PRF       uint16
	DHGroup   uint16
}

func (p Proposal) String() string {
	var b strings.Builder
	switch p.Encryption {
	case EncrAESCBC:
		fmt.Fprintf(&b, "aes%d", p.KeyBits)
	case EncrAESGCM16:
		fmt.Fprintf(&b, "aes%dgcm16", p.KeyBits)
	case EncrChaCha20Poly1305:
		b.WriteString("chacha20poly1305")
	default:
		fmt.Fprintf(&b, "encr%d", p.Encryption)
	}
	if p.Integrity != 0 {
		fmt.Fprintf(&b, "-%s", map[uint16]string{IntegHMACSHA256: "sha256", IntegHMACSHA384: "sha384", IntegHMACSHA512: "sha512"}[p.Integrity])
	}
	if p.PRF != 0 {
		fmt.Fprintf(&b, "-prf%s", map[uint16]string{PRFHMACSHA256: "sha256", PRFHMACSHA384: "sha384", PRFHMACSHA512: "sha512"}[p.PRF])
	}
	if p.DHGroup != 0 {
		fmt.Fprintf(&b, "-%s", map[uint16]string{DHModp2048: "modp2048", DHECP256: "ecp256", DHECP384: "ecp384", DHCurve25519: "x25519"}[p.DHGroup])
	}
	return b.String()
}

func (p Proposal) aead() bool {
	return p.Encryption == EncrAESGCM16 || p.Encryption == EncrChaCha20Poly1305
}

// DefaultIKEProposals accepts what RFC 8247 recommends and strongSwan
// offers by default: AES-GCM and ChaCha20-Poly1305, or AES-CBC with
// HMAC-SHA2; PRFs HMAC-SHA2; DH groups Curve25519, ECP-256, ECP-384 and
// MODP-2048. No SHA-1, no 3DES, no MODP-1024.
var DefaultIKEProposals = expand(
	[]Proposal{
		{Encryption: EncrAESGCM16, KeyBits: 256},
		{Encryption: EncrAESGCM16, KeyBits: 128},
		{Encryption: EncrChaCha20Poly1305},
		{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA256},
		{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA256},
		{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA384},
		{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA512},
	},
	[]uint16{PRFHMACSHA256, PRFHMACSHA384, PRFHMACSHA512},
	[]uint16{DHCurve25519, DHECP256, DHECP384, DHModp2048},
)

// DefaultESPProposals are the ESP suites accepted by default, without PFS
// groups; a CREATE_CHILD_SA that brings a KE payload may use any group of
// DefaultIKEProposals.
var DefaultESPProposals = []Proposal{
	{Encryption: EncrAESGCM16, KeyBits: 256},
	{Encryption: EncrAESGCM16, KeyBits: 128},
	{Encryption: EncrChaCha20Poly1305},
	{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA256},
	{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA256},
	{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA384},
	{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA512},
}

// expand combines ciphers with PRFs and groups, preferring the cipher.
func expand(ciphers []Proposal, prfs, groups []uint16) []Proposal {
	var out []Proposal
	for _, c := range ciphers {
		for _, prf := range prfs {
			for _, g := range groups {
				p := c
				p.PRF, p.DHGroup = prf, g
				out = append(out, p)
			}
		}
	}
	return out
}

// pfsGroups are the DH groups a CREATE_CHILD_SA may use.
var pfsGroups = []uint16{DHCurve25519, DHECP256, DHECP384, DHModp2048}

// offer is one transform choice within a peer's proposal.
type offer struct {
	encr                []message.Transform
	prf, integ, dh, esn []uint16
}

func offerOf(p *message.Proposal) offer {
	var o offer
	for _, t := range p.Transforms {
		if t.Unsupported {
			continue
		}
		switch t.Type {
		case message.TransformEncr:
			o.encr = append(o.encr, t)
		case message.TransformPRF:
			o.prf = append(o.prf, t.ID)
		case message.TransformInteg:
			o.integ = append(o.integ, t.ID)
		case message.TransformDH:
			o.dh = append(o.dh, t.ID)
		case message.TransformESN:
			o.esn = append(o.esn, t.ID)
		}
	}
	return o
}

func (o offer) hasEncr(p Proposal) bool {
	for _, t := range o.encr {
		if t.ID != p.Encryption {
			continue
		}
		switch {
		case p.Encryption == EncrChaCha20Poly1305 && t.KeyLength == 0,
			int(t.KeyLength) == p.KeyBits:
			return true
		}
	}
	return false
}

func has(list []uint16, v uint16) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// integOK: AEAD proposals carry no integrity transform, or "none" (0).
func (o offer) integOK(p Proposal) bool {
	if p.aead() {
		return len(o.integ) == 0 || has(o.integ, 0)
	}
	return has(o.integ, p.Integrity)
}

// chosen is a selected proposal with the peer's number and SPI.
type chosen struct {
	Proposal
	number uint8
	spi    []byte
	esn    bool
}

// selectIKE picks the first of ours that one of the peer's proposals
// allows, preferring a DH group equal to the KE payload's so that the peer
// needs no second round. It reports whether the KE group must change
// (INVALID_KE_PAYLOAD).
func selectIKE(ours []Proposal, sa *message.SA, keGroup uint16) (chosen, bool, error) {
	for pass := 0; pass < 2; pass++ {
		for i := range sa.Proposals {
			pp := &sa.Proposals[i]
			if pp.Protocol != message.ProtoIKE {
				continue
			}
			o := offerOf(pp)
			for _, p := range ours {
				if pass == 0 && p.DHGroup != keGroup {
					continue
				}
				if o.hasEncr(p) && o.integOK(p) && has(o.prf, p.PRF) && has(o.dh, p.DHGroup) {
					return chosen{Proposal: p, number: pp.Number, spi: pp.SPI}, p.DHGroup != keGroup, nil
				}
			}
		}
	}
	return chosen{}, false, ErrNoProposal
}

// selectESP picks an ESP suite; keGroup is the group of the KE payload of a
// CREATE_CHILD_SA (0: none, then a proposal without PFS is needed).
func selectESP(ours []Proposal, sa *message.SA, keGroup uint16) (chosen, error) {
	for i := range sa.Proposals {
		pp := &sa.Proposals[i]
		if pp.Protocol != message.ProtoESP || len(pp.SPI) != 4 {
			continue
		}
		o := offerOf(pp)
		esn := false
		switch {
		case len(o.esn) == 0 || has(o.esn, 0):
		case has(o.esn, 1):
			esn = true
		default:
			continue
		}
		for _, p := range ours {
			if !o.hasEncr(p) || !o.integOK(p) {
				continue
			}
			c := chosen{Proposal: p, number: pp.Number, spi: pp.SPI, esn: esn}
			c.DHGroup = 0
			switch {
			case keGroup != 0 && has(o.dh, keGroup) && has(pfsGroups, keGroup):
				c.DHGroup = keGroup
			case keGroup != 0:
				continue
			case len(o.dh) > 0 && !has(o.dh, 0):
				// The peer insists on PFS but sent no KE (IKE_AUTH strips
				// it: RFC 7296 §1.2); the first child has none anyway.
			}
			return c, nil
		}
	}
	return chosen{}, ErrNoProposal
}

// transforms renders a chosen proposal as the single proposal of a
// response (RFC 7296 §3.3.6: the peer's number, one transform per type).
func (c chosen) transforms(proto message.Protocol, spi []byte) message.Proposal {
	mp := message.Proposal{Number: c.number, Protocol: proto, SPI: spi}
	encr := message.Transform{Type: message.TransformEncr, ID: c.Encryption}
	if c.Encryption != EncrChaCha20Poly1305 {
		encr.KeyLength = uint16(c.KeyBits)
	}
	mp.Transforms = append(mp.Transforms, encr)
	if proto == message.ProtoIKE {
		mp.Transforms = append(mp.Transforms, message.Transform{Type: message.TransformPRF, ID: c.PRF})
	}
	if c.Integrity != 0 {
		mp.Transforms = append(mp.Transforms, message.Transform{Type: message.TransformInteg, ID: c.Integrity})
	}
	if c.DHGroup != 0 {
		mp.Transforms = append(mp.Transforms, message.Transform{Type: message.TransformDH, ID: c.DHGroup})
	}
	if proto == message.ProtoESP {
		esn := uint16(0)
		if c.esn {
			esn = 1
		}
		mp.Transforms = append(mp.Transforms, message.Transform{Type: message.TransformESN, ID: esn})
	}
	return mp
}

func (c chosen) ikeSuite() ikecrypto.Suite {
	return ikecrypto.Suite{Encr: c.Encryption, EncrKeyBits: c.keyBits(), Integ: c.Integrity, PRF: c.PRF, DH: c.DHGroup}
}

func (c chosen) childSuite() ikecrypto.ChildSuite {
	return ikecrypto.ChildSuite{Encr: c.Encryption, EncrKeyBits: c.keyBits(), Integ: c.Integrity, ESN: c.esn, DH: c.DHGroup}
}

func (c chosen) keyBits() int {
	if c.Encryption == EncrChaCha20Poly1305 {
		return 256
	}
	return c.KeyBits
}
