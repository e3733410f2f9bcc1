package ipsec

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
)

func TestParseIKEProposals(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Proposal
	}{
		{"aes256gcm16-prfsha384-ecp384", []Proposal{{Encryption: EncrAESGCM16, KeyBits: 256, PRF: PRFHMACSHA384, DHGroup: DHECP384}}},
		// The PRF follows the integrity algorithm when none is named.
		{"aes128-sha256-modp3072", []Proposal{{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA256, PRF: PRFHMACSHA256, DHGroup: DHModp3072}}},
		{"aes256gcm16-prfsha512-ecp521", []Proposal{{Encryption: EncrAESGCM16, KeyBits: 512 / 2, PRF: PRFHMACSHA512, DHGroup: DHECP521}}},
		// Several groups: every combination, in the order written.
		{"aes256-sha256-x25519-ecp256-modp2048", []Proposal{
			{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA256, PRF: PRFHMACSHA256, DHGroup: DHCurve25519},
			{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA256, PRF: PRFHMACSHA256, DHGroup: DHECP256},
			{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA256, PRF: PRFHMACSHA256, DHGroup: DHModp2048},
		}},
		// Two proposals, aliases, upper case and spaces; a duplicate once.
		{" CHACHA20POLY1305-prfsha2_256-curve25519 , aes-sha2_512-prfsha384-ecp256,chacha20poly1305-prfsha256-x25519", []Proposal{
			{Encryption: EncrChaCha20Poly1305, PRF: PRFHMACSHA256, DHGroup: DHCurve25519},
			{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA512, PRF: PRFHMACSHA384, DHGroup: DHECP256},
		}},
		{"aes192gcm128-aes128gcm16-prfsha256-ecp256", []Proposal{
			{Encryption: EncrAESGCM16, KeyBits: 192, PRF: PRFHMACSHA256, DHGroup: DHECP256},
			{Encryption: EncrAESGCM16, KeyBits: 128, PRF: PRFHMACSHA256, DHGroup: DHECP256},
		}},
	} {
		got, err := ParseIKEProposals(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseIKEProposals(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if got, err := ParseIKEProposals("default"); err != nil || !slices.Equal(got, DefaultIKEProposals) {
		t.Errorf("default: %d proposals, %v", len(got), err)
	}
}

func TestParseESPProposals(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Proposal
	}{
		{"aes256gcm16", []Proposal{{Encryption: EncrAESGCM16, KeyBits: 256}}},
		{"aes128-sha256-modp2048", []Proposal{{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA256, DHGroup: DHModp2048}}},
		{"chacha20poly1305-noesn", []Proposal{{Encryption: EncrChaCha20Poly1305}}},
		{"aes256gcm16-ecp384,aes256gcm16", []Proposal{{Encryption: EncrAESGCM16, KeyBits: 256, DHGroup: DHECP384}, {Encryption: EncrAESGCM16, KeyBits: 256}}},
		{"aes192-sha384-sha512", []Proposal{{Encryption: EncrAESCBC, KeyBits: 192, Integrity: IntegHMACSHA384}, {Encryption: EncrAESCBC, KeyBits: 192, Integrity: IntegHMACSHA512}}},
	} {
		got, err := ParseESPProposals(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseESPProposals(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if got, err := ParseESPProposals("default"); err != nil || !slices.Equal(got, DefaultESPProposals) {
		t.Errorf("default: %v, %v", got, err)
	}
}

// The errors name the offending keyword and say why it is refused.
func TestParseProposalsErrors(t *testing.T) {
	for _, tc := range []struct {
		ike      bool
		in, want string
	}{
		{true, "aes128-sha256-modp1024", `"modp1024": deprecated`},
		{true, "aes128-sha1-modp2048", `"sha1": deprecated`},
		{true, "3des-sha256-modp2048", `"3des": deprecated`},
		{true, "aes256-sha256-modp4096", `"modp4096": not implemented`},
		{true, "aes256gcm16-prfsha256-x448", `"x448": not implemented`},
		{true, "aes128ctr-sha256-ecp256", `"aes128ctr": not implemented`},
		{true, "aes256gcm16-prfsha256-ecp256x", `"ecp256x": unknown keyword`},
		{true, "aes256gcm16-ecp256", "needs a PRF"},
		{true, "aes256-ecp256", "needs an integrity algorithm"},
		{true, "aes256gcm16-sha256-prfsha256-ecp256", "takes no integrity algorithm"},
		{true, "aes256gcm16-aes256-sha256-prfsha256-ecp256", "cannot share a proposal"},
		{true, "aes256-sha256", "no key exchange group"},
		{true, "sha256-prfsha256-ecp256", "no encryption algorithm"},
		{true, "aes256gcm16-prfsha256-ecp256,", "empty"},
		{true, "aes256gcm16--prfsha256-ecp256", "empty keyword"},
		{true, "aes256gcm16-prfsha256-ecp256-noesn", `"noesn": unknown keyword`},
		{false, "aes256gcm16-prfsha256", `"prfsha256": a PRF belongs in IKE proposals only`},
		{false, "aes256gcm16-esn", `"esn": not offered`},
		{false, "aes128-md5", `"md5": deprecated`},
		{false, "", "empty"},
	} {
		var err error
		if tc.ike {
			_, err = ParseIKEProposals(tc.in)
		} else {
			_, err = ParseESPProposals(tc.in)
		}
		if !errors.Is(err, ErrProposal) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want ErrProposal with %q", tc.in, err, tc.want)
		}
	}
}

// strongSwan 5.9's default proposals as charon logs them with Debian's
// plugins (notes §3.3), written in its syntax with what is deprecated or
// not implemented left out. Both must equal our defaults, as sets: then a
// strongSwan peer configured with any one proposal out of its default
// finds it in our offer, and ours in what it accepts.
const (
	swanDefaultIKE = "aes128-aes192-aes256-sha256-sha384-sha512-prfsha256-prfsha384-prfsha512-x25519-ecp256-ecp384-ecp521-modp3072-modp2048," +
		"aes128gcm16-aes192gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-x25519-ecp256-ecp384-ecp521-modp3072-modp2048"
	swanDefaultESP = "aes128gcm16-aes192gcm16-aes256gcm16-chacha20poly1305,aes128-aes192-aes256-sha256-sha384-sha512"
)

func TestDefaultsCoverStrongSwan(t *testing.T) {
	for _, tc := range []struct {
		parse func(string) ([]Proposal, error)
		in    string
		ours  []Proposal
	}{
		{ParseIKEProposals, swanDefaultIKE, DefaultIKEProposals},
		{ParseESPProposals, swanDefaultESP, DefaultESPProposals},
	} {
		theirs, err := tc.parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range theirs {
			if !slices.Contains(tc.ours, p) {
				t.Errorf("%v is in strongSwan's default but not in ours", p)
			}
		}
		if len(theirs) != len(tc.ours) {
			t.Errorf("%d proposals of strongSwan's default, %d of ours", len(theirs), len(tc.ours))
		}
	}
	// The two that a strongSwan responder refused before the defaults had
	// MODP-3072 and ECP-521: our offer carries them, and our responder
	// takes them.
	offer := &message.SA{Proposals: wireProposals(DefaultIKEProposals, message.ProtoIKE, nil, DHCurve25519)}
	for _, s := range []string{"aes128-sha256-modp3072", "aes256gcm16-prfsha512-ecp521"} {
		ps, err := ParseIKEProposals(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := selectIKE(ps, offer, DHCurve25519); err != nil {
			t.Errorf("%s: not in our default offer: %v", s, err)
		}
		peer := &message.SA{Proposals: wireProposals(ps, message.ProtoIKE, nil, ps[0].DHGroup)}
		if c, wrongKE, err := selectIKE(DefaultIKEProposals, peer, ps[0].DHGroup); err != nil || wrongKE || c.Proposal != ps[0] {
			t.Errorf("%s: our responder chose %v (wrong KE %v): %v", s, c.Proposal, wrongKE, err)
		}
	}
}

// An ESP proposal with a group takes a rekey's key exchange in that group
// only; one without takes any group we implement.
func TestSelectESPGroup(t *testing.T) {
	sa := &message.SA{Proposals: []message.Proposal{{Number: 1, Protocol: message.ProtoESP, SPI: []byte{1, 2, 3, 4}, Transforms: []message.Transform{
		tr(message.TransformEncr, EncrAESCBC, 128), tr(message.TransformInteg, IntegHMACSHA256, 0),
		tr(message.TransformDH, DHModp2048, 0), tr(message.TransformDH, DHECP521, 0), tr(message.TransformESN, 0, 0),
	}}}}
	pfs, _ := ParseESPProposals("aes128-sha256-modp2048")
	if c, err := selectESP(pfs, sa, DHModp2048); err != nil || c.DHGroup != DHModp2048 {
		t.Errorf("modp2048: %v %v", c.Proposal, err)
	}
	if _, err := selectESP(pfs, sa, DHECP521); !errors.Is(err, ErrNoProposal) {
		t.Errorf("ecp521 taken by a modp2048 proposal: %v", err)
	}
	if c, err := selectESP(DefaultESPProposals, sa, DHECP521); err != nil || c.DHGroup != DHECP521 {
		t.Errorf("default, ecp521: %v %v", c.Proposal, err)
	}
	// The first child has no key exchange: the proposal is taken without.
	if c, err := selectESP(pfs, sa, 0); err != nil || c.DHGroup != 0 {
		t.Errorf("without KE: %v %v", c.Proposal, err)
	}
}

// String writes what the parser reads back.
func TestProposalStringRoundTrip(t *testing.T) {
	for _, p := range DefaultIKEProposals {
		got, err := ParseIKEProposals(p.String())
		if err != nil || len(got) != 1 || got[0] != p {
			t.Errorf("%v: %v %v", p, got, err)
		}
	}
	for _, p := range DefaultESPProposals {
		p.DHGroup = DHECP521
		got, err := ParseESPProposals(p.String())
		if err != nil || len(got) != 1 || got[0] != p {
			t.Errorf("%v: %v %v", p, got, err)
		}
	}
}

func FuzzParseProposals(f *testing.F) {
	for _, s := range []string{swanDefaultIKE, swanDefaultESP, "aes256gcm16-prfsha384-ecp384", "aes128-sha256-modp2048,default",
		"chacha20poly1305-noesn", "aes-sha2_256-prfsha512-curve25519", "aes256gcm16-esn", "3des-md5-modp1024", ",,-", "AES256GCM16-PRFSHA256-X25519"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, ike bool) {
		parse, name := ParseESPProposals, "ESP"
		if ike {
			parse, name = ParseIKEProposals, "IKE"
		}
		ps, err := parse(s)
		if err != nil {
			if !errors.Is(err, ErrProposal) {
				t.Fatalf("%s %q: error %v does not wrap ErrProposal", name, s, err)
			}
			return
		}
		if len(ps) == 0 {
			t.Fatalf("%s %q: no proposals and no error", name, s)
		}
		for _, p := range ps {
			c := chosen{Proposal: p}
			if ike {
				if p.PRF == 0 || p.DHGroup == 0 {
					t.Fatalf("%q: IKE proposal %v without PRF or group", s, p)
				}
				if err := c.ikeSuite().Validate(); err != nil {
					t.Fatalf("%q: %v: %v", s, p, err)
				}
			} else {
				if p.PRF != 0 {
					t.Fatalf("%q: ESP proposal %v with a PRF", s, p)
				}
				if err := c.childSuite().Validate(); err != nil {
					t.Fatalf("%q: %v: %v", s, p, err)
				}
				if p.DHGroup != 0 && ikecrypto.DHPublicLen(p.DHGroup) == 0 {
					t.Fatalf("%q: %v: a group we do not implement", s, p)
				}
			}
			back, err := parse(p.String())
			if err != nil || len(back) != 1 || back[0] != p {
				t.Fatalf("%q: %v reads back as %v, %v", s, p, back, err)
			}
		}
	})
}
