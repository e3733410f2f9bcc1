package ipsec

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/remotegate/remotegate/ipsec/internal/message"
)

func tr(t message.TransformType, id, bits uint16) message.Transform {
	return message.Transform{Type: t, ID: id, KeyLength: bits}
}

// strongSwan's `default` IKE proposals, shortened: #1 AES-CBC with
// HMAC-SHA2, #2 AEAD; its KE payload carries Curve25519.
var swDefault = &message.SA{Proposals: []message.Proposal{
	{Number: 1, Protocol: message.ProtoIKE, Transforms: []message.Transform{
		tr(message.TransformEncr, EncrAESCBC, 128), tr(message.TransformEncr, EncrAESCBC, 256),
		tr(message.TransformInteg, IntegHMACSHA256, 0), tr(message.TransformPRF, message.PRFHMACSHA1, 0),
		tr(message.TransformPRF, PRFHMACSHA256, 0), tr(message.TransformDH, DHCurve25519, 0), tr(message.TransformDH, DHModp2048, 0),
	}},
	{Number: 2, Protocol: message.ProtoIKE, Transforms: []message.Transform{
		tr(message.TransformEncr, EncrAESGCM16, 256), tr(message.TransformPRF, PRFHMACSHA256, 0),
		tr(message.TransformDH, DHCurve25519, 0), tr(message.TransformDH, DHECP256, 0),
	}},
}}

func TestSelectIKE(t *testing.T) {
	c, wrongKE, err := selectIKE(DefaultIKEProposals, swDefault, DHCurve25519)
	if err != nil || wrongKE {
		t.Fatalf("default proposals: %v, wrong KE %v", err, wrongKE)
	}
	// The first of the peer's proposals we accept, with its number; our
	// preference among its transforms (AES-256 before AES-128).
	if c.number != 1 || c.Encryption != EncrAESCBC || c.KeyBits != 256 || c.Integrity != IntegHMACSHA256 || c.PRF != PRFHMACSHA256 || c.DHGroup != DHCurve25519 {
		t.Fatalf("chose #%d %s", c.number, c.Proposal)
	}
	// The response: one transform per type, the key length, no SHA-1.
	p := c.transforms(message.ProtoIKE, nil)
	if len(p.Transforms) != 4 || p.Transforms[0].KeyLength != 256 {
		t.Fatalf("response proposal %+v", p)
	}

	// A KE payload of a group we take only in another proposal: we ask for
	// our group rather than refusing (notes, pitfall 6).
	onlyGCM := []Proposal{{Encryption: EncrAESGCM16, KeyBits: 256, PRF: PRFHMACSHA256, DHGroup: DHECP256}}
	c, wrongKE, err = selectIKE(onlyGCM, swDefault, DHCurve25519)
	if err != nil || !wrongKE || c.DHGroup != DHECP256 || c.number != 2 {
		t.Fatalf("INVALID_KE case: #%d %s wrongKE=%v err=%v", c.number, c.Proposal, wrongKE, err)
	}

	// Nothing in common.
	if _, _, err := selectIKE([]Proposal{{Encryption: EncrChaCha20Poly1305, PRF: PRFHMACSHA512, DHGroup: DHECP384}}, swDefault, DHCurve25519); !errors.Is(err, ErrNoProposal) {
		t.Fatalf("no common proposal: %v", err)
	}
	// A transform with an attribute we do not know is skipped, not taken.
	odd := &message.SA{Proposals: []message.Proposal{{Number: 1, Protocol: message.ProtoIKE, Transforms: []message.Transform{
		{Type: message.TransformEncr, ID: EncrAESGCM16, Unsupported: true}, tr(message.TransformPRF, PRFHMACSHA256, 0), tr(message.TransformDH, DHECP256, 0),
	}}}}
	if _, _, err := selectIKE(DefaultIKEProposals, odd, DHECP256); !errors.Is(err, ErrNoProposal) {
		t.Fatalf("unsupported transform taken: %v", err)
	}
}

func TestSelectESP(t *testing.T) {
	sa := &message.SA{Proposals: []message.Proposal{
		{Number: 1, Protocol: message.ProtoESP, SPI: []byte{0xc1, 0, 0, 1}, Transforms: []message.Transform{
			tr(message.TransformEncr, EncrAESGCM16, 128), tr(message.TransformEncr, EncrAESGCM16, 256), tr(message.TransformESN, 0, 0),
		}},
	}}
	c, err := selectESP(DefaultESPProposals, sa, 0)
	if err != nil || c.KeyBits != 256 || c.esn || string(c.spi) != string([]byte{0xc1, 0, 0, 1}) {
		t.Fatalf("chose %s esn=%v spi=%x: %v", c.Proposal, c.esn, c.spi, err)
	}
	p := c.transforms(message.ProtoESP, []byte{0, 0, 1, 0})
	if last := p.Transforms[len(p.Transforms)-1]; last.Type != message.TransformESN || last.ID != 0 {
		t.Fatalf("no ESN transform in the answer: %+v", p.Transforms)
	}
	// A rekey with a KE payload needs a proposal with that group.
	if _, err := selectESP(DefaultESPProposals, sa, DHECP256); !errors.Is(err, ErrNoProposal) {
		t.Fatalf("PFS group not offered but accepted: %v", err)
	}
	sa.Proposals[0].Transforms = append(sa.Proposals[0].Transforms, tr(message.TransformDH, DHECP256, 0))
	if c, err := selectESP(DefaultESPProposals, sa, DHECP256); err != nil || c.DHGroup != DHECP256 {
		t.Fatalf("PFS rekey: %s %v", c.Proposal, err)
	}
}

func sel(start, end string) message.Selector {
	return message.Selector{StartPort: 0, EndPort: 65535, Start: netip.MustParseAddr(start), End: netip.MustParseAddr(end)}
}

func TestNarrow(t *testing.T) {
	all := []message.Selector{sel("0.0.0.0", "255.255.255.255")}
	got := narrow(all, []netip.Prefix{netip.MustParsePrefix("10.233.0.1/32"), netip.MustParsePrefix("192.168.0.0/24")})
	if len(got) != 2 || got[0].Start != netip.MustParseAddr("10.233.0.1") || got[0].End != got[0].Start ||
		got[1].Start != netip.MustParseAddr("192.168.0.0") || got[1].End != netip.MustParseAddr("192.168.0.255") {
		t.Fatalf("narrowed 0.0.0.0/0 to %+v", got)
	}
	// A proposal inside what is allowed stays as it is, protocol and ports
	// included; one outside goes.
	in := message.Selector{Protocol: 6, StartPort: 102, EndPort: 102, Start: netip.MustParseAddr("192.168.0.10"), End: netip.MustParseAddr("192.168.0.20")}
	got = narrow([]message.Selector{in, sel("10.0.0.0", "10.0.0.255")}, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")})
	if len(got) != 1 || got[0] != in {
		t.Fatalf("narrowed to %+v", got)
	}
	if got := narrow(all, nil); len(got) != 0 {
		t.Fatalf("nothing allowed, yet %+v", got)
	}
	// IPv6 selectors are matched against IPv6 prefixes only.
	got = narrow([]message.Selector{sel("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/64")})
	if len(got) != 1 || got[0].End != netip.MustParseAddr("fd00::ffff:ffff:ffff:ffff") {
		t.Fatalf("IPv6: %+v", got)
	}
}

func TestInboundTrafficSelectors(t *testing.T) {
	c := &childSA{peerTS: []message.Selector{sel("10.233.0.1", "10.233.0.1")}, localTS: []message.Selector{sel("10.232.0.0", "10.232.0.255")}}
	pkt := make([]byte, 20)
	pkt[0] = 0x45
	copy(pkt[12:], []byte{10, 233, 0, 1})
	copy(pkt[16:], []byte{10, 232, 0, 1})
	if !c.allowsInbound(pkt) {
		t.Fatal("the peer's own address refused")
	}
	copy(pkt[12:], []byte{10, 233, 0, 2})
	if c.allowsInbound(pkt) {
		t.Fatal("a spoofed source passed")
	}
	if c.allowsInbound(pkt[:10]) {
		t.Fatal("a truncated packet passed")
	}
}
