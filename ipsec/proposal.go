package ipsec

import (
	"fmt"
	"slices"
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
	DHModp3072   uint16 = 15
	DHECP256     uint16 = 19
	DHECP384     uint16 = 20
	DHECP521     uint16 = 21
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

// String is the proposal in strongSwan's syntax, which ParseIKEProposals
// and ParseESPProposals read back: "aes256gcm16-prfsha384-ecp384",
// "aes128-sha256-prfsha256-modp3072", "aes128-sha256-modp2048" (ESP with
// a PFS group).
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
		b.WriteString("-" + keywordOf(integKeywords, p.Integrity, "integ"))
	}
	if p.PRF != 0 {
		b.WriteString("-" + keywordOf(prfKeywords, p.PRF, "prf"))
	}
	if p.DHGroup != 0 {
		b.WriteString("-" + keywordOf(groupKeywords, p.DHGroup, "group"))
	}
	return b.String()
}

func (p Proposal) aead() bool {
	return p.Encryption == EncrAESGCM16 || p.Encryption == EncrChaCha20Poly1305
}

// defaultGroups are the key exchange groups of the defaults, in
// strongSwan 5.9's order of preference: the curves first, then MODP-3072
// and, last, MODP-2048 (RFC 8247 §2.4: SHOULD, but weaker than the others).
// strongSwan's default also has Curve448, Brainpool and MODP-4096 to
// -8192, which we do not implement.
var defaultGroups = []uint16{DHCurve25519, DHECP256, DHECP384, DHECP521, DHModp3072, DHModp2048}

// defaultCiphers are the encryption and integrity pairs of the defaults:
// strongSwan 5.9's default minus what is deprecated (3DES, SHA-1, MD5)
// and what we do not implement (AES-CCM, AES-CTR, Camellia, AES-XCBC and
// -CMAC, 8- and 12-byte GCM tags).
var defaultCiphers = []Proposal{
	{Encryption: EncrAESGCM16, KeyBits: 256},
	{Encryption: EncrAESGCM16, KeyBits: 128},
	{Encryption: EncrAESGCM16, KeyBits: 192},
	{Encryption: EncrChaCha20Poly1305},
	{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA256},
	{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA384},
	{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA512},
	{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA256},
	{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA384},
	{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA512},
	{Encryption: EncrAESCBC, KeyBits: 192, Integrity: IntegHMACSHA256},
	{Encryption: EncrAESCBC, KeyBits: 192, Integrity: IntegHMACSHA384},
	{Encryption: EncrAESCBC, KeyBits: 192, Integrity: IntegHMACSHA512},
}

// DefaultIKEProposals are offered by an initiator and accepted by a
// responder unless the configuration says otherwise. They cover strongSwan
// 5.9's default IKE proposals minus the deprecated algorithms (RFC 8247),
// so that a peer configured with any single proposal out of that set
// connects: AES-GCM (128, 192, 256 bits) and ChaCha20-Poly1305, or
// AES-CBC (128, 192, 256) with HMAC-SHA2-256, -384 or -512; PRFs
// HMAC-SHA2-256, -384, -512; groups Curve25519, ECP-256, -384, -521,
// MODP-3072 and MODP-2048, in that order of preference. An initiator sends
// its first key exchange with Curve25519; a responder that wants another
// of these groups asks for it (INVALID_KE_PAYLOAD), which costs one round
// trip. On the wire the list is two proposals, AEAD and non-AEAD.
var DefaultIKEProposals = expand(defaultCiphers,
	[]uint16{PRFHMACSHA256, PRFHMACSHA384, PRFHMACSHA512}, defaultGroups)

// DefaultESPProposals are the ESP suites offered and accepted by default,
// without PFS groups: the ciphers of DefaultIKEProposals, which cover
// strongSwan 5.9's default ESP proposals minus SHA-1 and AES-XCBC. A
// CREATE_CHILD_SA that brings a key exchange may use any group of
// DefaultIKEProposals with them.
var DefaultESPProposals = slices.Clone(defaultCiphers)

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

// pfsGroups are the groups a CREATE_CHILD_SA may use with an ESP proposal
// of ours that names none: every group we implement.
var pfsGroups = defaultGroups

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
// CREATE_CHILD_SA (0: none, then a proposal without PFS is needed). An ESP
// proposal of ours with a group takes a key exchange in that group only;
// one without takes any group we implement (pfsGroups).
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
			case keGroup != 0 && has(o.dh, keGroup) && (p.DHGroup == keGroup || p.DHGroup == 0 && has(pfsGroups, keGroup)):
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
