package ipsec

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrProposal: a proposal string is not one ParseIKEProposals or
// ParseESPProposals accepts. The message names the keyword and says
// whether it is unknown, deprecated or not implemented, so that an
// operator who copied a strongSwan configuration sees what to change.
var ErrProposal = errors.New("ipsec: invalid proposal")

// The keywords of strongSwan's proposal syntax that this package
// implements. Aliases map to the same algorithm; String writes the first
// spelling listed in the tables below.
var (
	encrKeywords = map[string]Proposal{
		"aes":              {Encryption: EncrAESCBC, KeyBits: 128},
		"aes128":           {Encryption: EncrAESCBC, KeyBits: 128},
		"aes192":           {Encryption: EncrAESCBC, KeyBits: 192},
		"aes256":           {Encryption: EncrAESCBC, KeyBits: 256},
		"aes128gcm16":      {Encryption: EncrAESGCM16, KeyBits: 128},
		"aes192gcm16":      {Encryption: EncrAESGCM16, KeyBits: 192},
		"aes256gcm16":      {Encryption: EncrAESGCM16, KeyBits: 256},
		"aes128gcm128":     {Encryption: EncrAESGCM16, KeyBits: 128},
		"aes192gcm128":     {Encryption: EncrAESGCM16, KeyBits: 192},
		"aes256gcm128":     {Encryption: EncrAESGCM16, KeyBits: 256},
		"chacha20poly1305": {Encryption: EncrChaCha20Poly1305},
	}
	integKeywords = []keyword{
		{"sha256", IntegHMACSHA256}, {"sha384", IntegHMACSHA384}, {"sha512", IntegHMACSHA512},
		{"sha2_256", IntegHMACSHA256}, {"sha2_384", IntegHMACSHA384}, {"sha2_512", IntegHMACSHA512},
	}
	prfKeywords = []keyword{
		{"prfsha256", PRFHMACSHA256}, {"prfsha384", PRFHMACSHA384}, {"prfsha512", PRFHMACSHA512},
		{"prfsha2_256", PRFHMACSHA256}, {"prfsha2_384", PRFHMACSHA384}, {"prfsha2_512", PRFHMACSHA512},
	}
	groupKeywords = []keyword{
		{"modp2048", DHModp2048}, {"modp3072", DHModp3072},
		{"ecp256", DHECP256}, {"ecp384", DHECP384}, {"ecp521", DHECP521},
		{"x25519", DHCurve25519}, {"curve25519", DHCurve25519},
	}
)

type keyword struct {
	name string
	id   uint16
}

func lookup(table []keyword, name string) (uint16, bool) {
	for _, k := range table {
		if k.name == name {
			return k.id, true
		}
	}
	return 0, false
}

// keywordOf is the canonical keyword of an algorithm, or kind and number
// for one without a keyword (a Proposal built by hand).
func keywordOf(table []keyword, id uint16, kind string) string {
	for _, k := range table {
		if k.id == id {
			return k.name
		}
	}
	return fmt.Sprintf("%s%d", kind, id)
}

// prfOfInteg is the PRF strongSwan derives from an integrity algorithm
// when a non-AEAD IKE proposal names none.
var prfOfInteg = map[uint16]uint16{
	IntegHMACSHA256: PRFHMACSHA256,
	IntegHMACSHA384: PRFHMACSHA384,
	IntegHMACSHA512: PRFHMACSHA512,
}

// refused are strongSwan keywords we know and do not take, with the
// reason, so that the error says more than "unknown".
var refused = map[string]string{}

func init() {
	deprecated := "deprecated (RFC 8247), not implemented"
	missing := "not implemented"
	for _, k := range strings.Fields("des 3des cast128 blowfish128 blowfish192 blowfish256 null md5 md5_128 sha sha1 sha1_160 prfmd5 prfsha1 " +
		"modp768 modp1024 modp1536 modp1024s160 modp2048s224 modp2048s256 ecp192 ecp224") {
		refused[k] = deprecated
	}
	for _, k := range strings.Fields("aes128ctr aes192ctr aes256ctr aes128ccm8 aes128ccm12 aes128ccm16 aes192ccm8 aes192ccm12 aes192ccm16 " +
		"aes256ccm8 aes256ccm12 aes256ccm16 aes128ccm64 aes128ccm96 aes128ccm128 aes192ccm64 aes192ccm96 aes192ccm128 aes256ccm64 aes256ccm96 aes256ccm128 " +
		"aes128gcm8 aes128gcm12 aes192gcm8 aes192gcm12 aes256gcm8 aes256gcm12 aes128gcm64 aes128gcm96 aes192gcm64 aes192gcm96 aes256gcm64 aes256gcm96 " +
		"aes128gmac aes192gmac aes256gmac camellia camellia128 camellia192 camellia256 serpent128 serpent192 serpent256 twofish128 twofish192 twofish256 " +
		"aesxcbc aescmac aes128gmac sha256_96 sha2_256_96 prfaesxcbc prfaescmac prfcamelliaxcbc " +
		"modp4096 modp6144 modp8192 x448 curve448 ecp224bp ecp256bp ecp384bp ecp512bp ntru112 ntru128 ntru192 ntru256 newhope128") {
		refused[k] = missing
	}
	refused["esn"] = "not offered: extended sequence numbers are taken when a peer requires them, never proposed"
}

// ParseIKEProposals reads IKE proposals in strongSwan's syntax
// (swanctl.conf's proposals): a comma-separated list, each proposal a
// dash-separated list of algorithm keywords, several of one kind being
// alternatives in order of preference. The result is every combination,
// in that order: "aes256-sha256-x25519-ecp256" is two Proposals.
//
// Accepted keywords: encryption aes128, aes192, aes256 (aes: aes128),
// aes128gcm16, aes192gcm16, aes256gcm16 (or …gcm128), chacha20poly1305;
// integrity sha256, sha384, sha512 (or sha2_256, …); PRF prfsha256,
// prfsha384, prfsha512; groups modp2048, modp3072, ecp256, ecp384,
// ecp521, x25519 (or curve25519). "default" as a whole proposal stands
// for DefaultIKEProposals.
//
// As in strongSwan, a non-AEAD proposal without a PRF takes the PRFs of
// its integrity algorithms, and an AEAD one needs an explicit PRF. Unlike
// strongSwan, AEAD and non-AEAD ciphers cannot share a proposal, and an
// AEAD proposal takes no integrity algorithm: such a configuration is an
// error rather than silently trimmed. The error wraps ErrProposal.
func ParseIKEProposals(s string) ([]Proposal, error) { return parseProposals(s, true) }

// ParseESPProposals reads ESP proposals in strongSwan's syntax
// (swanctl.conf's esp_proposals), with the keywords of ParseIKEProposals
// except the PRFs: "aes256gcm16", "aes128-sha256", "chacha20poly1305".
// A group makes it a proposal with perfect forward secrecy: the keys of a
// CREATE_CHILD_SA (a rekey) then come from a key exchange in that group;
// the first child, created with the IKE SA, never has one (RFC 7296
// §1.2). "noesn" is accepted and changes nothing; "esn" is refused, since
// extended sequence numbers are accepted when a peer requires them but
// never proposed. "default" stands for DefaultESPProposals.
func ParseESPProposals(s string) ([]Proposal, error) { return parseProposals(s, false) }

func parseProposals(s string, ike bool) ([]Proposal, error) {
	var out []Proposal
	seen := map[Proposal]bool{}
	add := func(ps []Proposal) {
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	for _, text := range strings.Split(s, ",") {
		text = strings.TrimSpace(text)
		if strings.EqualFold(text, "default") {
			if ike {
				add(DefaultIKEProposals)
			} else {
				add(DefaultESPProposals)
			}
			continue
		}
		ps, err := parseProposal(text, ike)
		if err != nil {
			return nil, err
		}
		add(ps)
	}
	return out, nil
}

// parseProposal reads one dash-separated proposal and expands it.
func parseProposal(text string, ike bool) ([]Proposal, error) {
	kind := "ESP"
	if ike {
		kind = "IKE"
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s proposal %q: %s", ErrProposal, kind, text, fmt.Sprintf(format, args...))
	}
	if text == "" {
		return nil, fail("empty")
	}
	var ciphers []Proposal
	var integs, prfs, groups []uint16
	appendNew := func(list []uint16, id uint16) []uint16 {
		if !slices.Contains(list, id) {
			list = append(list, id)
		}
		return list
	}
	for _, kw := range strings.Split(strings.ToLower(text), "-") {
		if c, ok := encrKeywords[kw]; ok {
			if !slices.Contains(ciphers, c) {
				ciphers = append(ciphers, c)
			}
			continue
		}
		if id, ok := lookup(integKeywords, kw); ok {
			integs = appendNew(integs, id)
			continue
		}
		if id, ok := lookup(prfKeywords, kw); ok {
			if !ike {
				return nil, fail("%q: a PRF belongs in IKE proposals only", kw)
			}
			prfs = appendNew(prfs, id)
			continue
		}
		if id, ok := lookup(groupKeywords, kw); ok {
			groups = appendNew(groups, id)
			continue
		}
		if kw == "noesn" && !ike {
			continue
		}
		if why, ok := refused[kw]; ok {
			return nil, fail("%q: %s", kw, why)
		}
		if kw == "" {
			return nil, fail("empty keyword")
		}
		return nil, fail("%q: unknown keyword", kw)
	}
	if len(ciphers) == 0 {
		return nil, fail("no encryption algorithm (aes256gcm16, aes256, chacha20poly1305, ...)")
	}
	aead := ciphers[0].aead()
	for _, c := range ciphers[1:] {
		if c.aead() != aead {
			return nil, fail("AEAD and non-AEAD ciphers (%s, %s) cannot share a proposal: write two, separated by a comma", ciphers[0], c)
		}
	}
	switch {
	case aead && len(integs) > 0:
		return nil, fail("an AEAD cipher (%s) takes no integrity algorithm", ciphers[0])
	case !aead && len(integs) == 0:
		return nil, fail("%s needs an integrity algorithm (sha256, sha384, sha512)", ciphers[0])
	}
	if ike {
		if len(prfs) == 0 && aead {
			return nil, fail("an AEAD cipher needs a PRF (prfsha256, prfsha384, prfsha512)")
		}
		if len(prfs) == 0 {
			for _, i := range integs {
				prfs = appendNew(prfs, prfOfInteg[i])
			}
		}
		if len(groups) == 0 {
			return nil, fail("no key exchange group (x25519, ecp256, ecp384, ecp521, modp3072, modp2048)")
		}
	}
	if len(integs) == 0 {
		integs = []uint16{0}
	}
	if len(prfs) == 0 {
		prfs = []uint16{0}
	}
	if len(groups) == 0 {
		groups = []uint16{0}
	}
	var out []Proposal
	for _, c := range ciphers {
		for _, i := range integs {
			for _, prf := range prfs {
				for _, g := range groups {
					p := c
					p.Integrity, p.PRF, p.DHGroup = i, prf, g
					out = append(out, p)
				}
			}
		}
	}
	return out, nil
}
