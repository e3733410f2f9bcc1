package ipsec

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net/netip"
	"strings"
)

// dnAttributes are the attribute names ParseID understands in a
// distinguished name, as strongSwan and OpenSSL write them.
var dnAttributes = map[string]asn1.ObjectIdentifier{
	"C":            {2, 5, 4, 6},
	"ST":           {2, 5, 4, 8},
	"L":            {2, 5, 4, 7},
	"O":            {2, 5, 4, 10},
	"OU":           {2, 5, 4, 11},
	"CN":           {2, 5, 4, 3},
	"SN":           {2, 5, 4, 5},
	"SERIALNUMBER": {2, 5, 4, 5},
	"E":            {1, 2, 840, 113549, 1, 9, 1},
	"EMAIL":        {1, 2, 840, 113549, 1, 9, 1},
}

// ParseID reads an identity the way strongSwan's configuration does
// (swanctl.conf local.id / remote.id), so that the same strings work on
// both sides: an IP address is an address identity, a string with '='
// a distinguished name ("C=CH, O=Example, CN=gw.example.com", attributes
// in the order given), one with '@' an e-mail address, anything else a
// host name. The prefixes "fqdn:", "email:", "keyid:" and "dn:" force a
// type.
//
// A DN matches a certificate only when its DER encoding equals the
// certificate's subject: ParseID encodes values the way Go's x509 package
// does (PrintableString where possible, else UTF8String; e-mail addresses
// as IA5String).
func ParseID(s string) (ID, error) {
	kind, rest, found := strings.Cut(s, ":")
	if found {
		switch strings.ToLower(kind) {
		case "fqdn":
			return FQDN(rest), nil
		case "email", "rfc822":
			return ID{Type: IDEmail, Value: []byte(rest)}, nil
		case "keyid":
			return ID{Type: IDKeyID, Value: []byte(rest)}, nil
		case "dn", "asn1dn":
			return parseDN(rest)
		}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Is4() {
			v := a.As4()
			return ID{Type: IDIPv4, Value: v[:]}, nil
		}
		v := a.As16()
		return ID{Type: IDIPv6, Value: v[:]}, nil
	}
	switch {
	case s == "":
		return ID{}, fmt.Errorf("%w: empty identity", ErrConfig)
	case strings.Contains(s, "="):
		return parseDN(s)
	case strings.Contains(s, "@"):
		return ID{Type: IDEmail, Value: []byte(s)}, nil
	}
	return FQDN(s), nil
}

func parseDN(s string) (ID, error) {
	var rdns pkix.RDNSequence
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		oid, known := dnAttributes[strings.ToUpper(strings.TrimSpace(k))]
		if !ok || !known {
			return ID{}, fmt.Errorf("%w: distinguished name %q: cannot read %q", ErrConfig, s, part)
		}
		var val any = strings.TrimSpace(v)
		if oid.Equal(dnAttributes["E"]) {
			val = asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(strings.TrimSpace(v))}
		}
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: val}})
	}
	der, err := asn1.Marshal(rdns)
	if err != nil {
		return ID{}, fmt.Errorf("%w: distinguished name %q: %w", ErrConfig, s, err)
	}
	return ID{Type: IDDN, Value: der}, nil
}
