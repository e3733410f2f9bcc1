package message

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

const (
	genericHeaderLen = 4
	criticalBit      = 0x80
	maxPayloadLen    = 0xffff
)

// Parse decodes a complete IKE message (without a non-ESP marker): the
// header, then the payload chain it announces. If the header parses but the
// payloads do not, the header is returned together with the error, so that
// the caller can still address an error notify (INVALID_SYNTAX,
// UNSUPPORTED_CRITICAL_PAYLOAD) to the sender's SPIs.
func Parse(b []byte) (Header, []Payload, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	ps, err := ParsePayloads(h.NextPayload, b[HeaderLen:])
	if err != nil {
		return h, nil, err
	}
	return h, ps, nil
}

// ParsePayloads decodes a chain of generic payloads filling b exactly. first
// is the type of the first payload: the header's NextPayload, or an SK's
// NextPayload for the decrypted inner chain (then b is the plaintext without
// padding and pad length).
//
// An SK or SKF payload ends the chain: its Next Payload field names the
// first payload inside the ciphertext (kept in NextPayload), and it must
// end exactly at the end of b. An unknown payload type is kept as *Unknown,
// or, with the critical bit, refused with an *UnsupportedCriticalError.
// The same rule applies to a decrypted inner chain, where an SK or SKF
// payload has no business at all: the caller refuses it there.
//
// Byte fields of the result alias b (see the package documentation).
func ParsePayloads(first PayloadType, b []byte) ([]Payload, error) {
	var ps []Payload
	next := first
	for i := 0; next != NoNext; i++ {
		typ := next
		if len(b) < genericHeaderLen {
			return nil, fmt.Errorf("%w: payload %d (%v): generic header needs %d bytes, %d left",
				ErrShort, i, typ, genericHeaderLen, len(b))
		}
		next = PayloadType(b[0])
		critical := b[1]&criticalBit != 0
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < genericHeaderLen || n > len(b) {
			return nil, lengthf("payload %d (%v): length %d, %d bytes left", i, typ, n, len(b))
		}
		body := b[genericHeaderLen:n:n]
		b = b[n:]
		p, err := parseBody(typ, next, critical, body)
		if err != nil {
			// The index tells apart payloads of the same type (notifies).
			return nil, fmt.Errorf("%w (payload %d)", err, i)
		}
		if ps == nil {
			// Most messages carry fewer than 16 payloads; one allocation.
			ps = make([]Payload, 0, 16)
		}
		ps = append(ps, p)
		if typ == PayloadSK || typ == PayloadSKF {
			if len(b) != 0 {
				return nil, lengthf("payload %d (%v): %d bytes after the encrypted payload, which must be last", i, typ, len(b))
			}
			return ps, nil
		}
	}
	if len(b) != 0 {
		return nil, lengthf("%d bytes after the last payload", len(b))
	}
	return ps, nil
}

// sub returns b[i:j] with its capacity clipped, or nil when empty, so that
// parsed fields never grow into the bytes that follow them and empty fields
// compare equal to unset ones.
func sub(b []byte, i, j int) []byte {
	if i == j {
		return nil
	}
	return b[i:j:j]
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// parseBody decodes the body of one payload of type typ. next is the Next
// Payload field of its generic header (only meaningful for SK and SKF).
func parseBody(typ, next PayloadType, critical bool, body []byte) (Payload, error) {
	switch typ {
	case PayloadSA:
		return parseSA(body)
	case PayloadKE:
		if len(body) < 4 {
			return nil, syntaxf("KE: body %d bytes, need 4", len(body))
		}
		return &KE{Group: be16(body), Data: sub(body, 4, len(body))}, nil
	case PayloadIDi, PayloadIDr:
		if len(body) < 4 {
			return nil, syntaxf("%v: body %d bytes, need 4", typ, len(body))
		}
		id := &ID{Responder: typ == PayloadIDr, IDType: IDType(body[0]), Data: sub(body, 4, len(body))}
		copy(id.reserved[:], body[1:4])
		return id, nil
	case PayloadCERT:
		if len(body) < 1 {
			return nil, syntaxf("CERT: empty body")
		}
		return &Cert{Encoding: body[0], Data: sub(body, 1, len(body))}, nil
	case PayloadCERTREQ:
		if len(body) < 1 {
			return nil, syntaxf("CERTREQ: empty body")
		}
		return &CertReq{Encoding: body[0], Data: sub(body, 1, len(body))}, nil
	case PayloadAUTH:
		if len(body) < 4 {
			return nil, syntaxf("AUTH: body %d bytes, need 4", len(body))
		}
		return &Auth{Method: AuthMethod(body[0]), Data: sub(body, 4, len(body))}, nil
	case PayloadNonce:
		return &Nonce{Data: sub(body, 0, len(body))}, nil
	case PayloadNotify:
		return parseNotify(body)
	case PayloadDelete:
		return parseDelete(body)
	case PayloadVendorID:
		return &VendorID{Data: sub(body, 0, len(body))}, nil
	case PayloadTSi, PayloadTSr:
		return parseTS(typ, body)
	case PayloadSK:
		return &Encrypted{NextPayload: next, Body: sub(body, 0, len(body))}, nil
	case PayloadSKF:
		return parseFragment(next, body)
	case PayloadCP:
		return parseCP(body)
	case PayloadEAP:
		return &EAP{Data: sub(body, 0, len(body))}, nil
	}
	if critical {
		return nil, &UnsupportedCriticalError{Type: typ}
	}
	return &Unknown{PayloadType: typ, Data: sub(body, 0, len(body))}, nil
}

// parseSA decodes the proposals of an SA payload. The proposal and transform
// "last" markers duplicate the length information; they must agree with it,
// since an implementation that trusts one and not the other could be made to
// see different proposals than we do.
func parseSA(body []byte) (*SA, error) {
	sa := &SA{}
	for i := 1; len(body) > 0; i++ {
		if len(body) < 8 {
			return nil, syntaxf("SA: proposal %d: %d bytes left, need 8", i, len(body))
		}
		last := body[0]
		n := int(be16(body[2:4]))
		if n < 8 || n > len(body) {
			return nil, syntaxf("SA: proposal %d: length %d, %d bytes left", i, n, len(body))
		}
		more := n < len(body)
		if (more && last != 2) || (!more && last != 0) {
			return nil, syntaxf("SA: proposal %d: last-substructure %d inconsistent with length", i, last)
		}
		p, err := parseProposal(i, body[:n:n])
		if err != nil {
			return nil, err
		}
		sa.Proposals = append(sa.Proposals, p)
		body = body[n:]
	}
	return sa, nil
}

func parseProposal(i int, b []byte) (Proposal, error) {
	p := Proposal{Number: b[4], Protocol: Protocol(b[5])}
	spiSize, count := int(b[6]), int(b[7])
	if spiSize != 0 && spiSize != 4 && spiSize != 8 {
		return p, syntaxf("SA: proposal %d: SPI size %d", i, spiSize)
	}
	if 8+spiSize > len(b) {
		return p, syntaxf("SA: proposal %d: SPI size %d exceeds proposal length %d", i, spiSize, len(b))
	}
	p.SPI = sub(b, 8, 8+spiSize)
	rest := b[8+spiSize:]
	if count > 0 {
		// Each transform takes at least 8 bytes; never allocate for more
		// transforms than the bytes can hold.
		p.Transforms = make([]Transform, 0, min(count, len(rest)/8))
	}
	for j := 1; j <= count; j++ {
		if len(rest) < 8 {
			return p, syntaxf("SA: proposal %d: transform %d of %d: %d bytes left, need 8", i, j, count, len(rest))
		}
		last := rest[0]
		n := int(be16(rest[2:4]))
		if n < 8 || n > len(rest) {
			return p, syntaxf("SA: proposal %d: transform %d: length %d, %d bytes left", i, j, n, len(rest))
		}
		if (j < count && last != 3) || (j == count && last != 0) {
			return p, syntaxf("SA: proposal %d: transform %d of %d: last-substructure %d", i, j, count, last)
		}
		t := Transform{Type: TransformType(rest[4]), ID: be16(rest[6:8])}
		attrs := rest[8:n]
		kl, ok, err := parseAttributes(attrs)
		if err != nil {
			return p, fmt.Errorf("%w (SA: proposal %d: transform %d)", err, i, j)
		}
		if ok {
			t.KeyLength = kl
		} else {
			// KeyLength stays 0 even if one was present, so that a
			// selector that forgets to check Unsupported still does not
			// match a variable-length cipher on it.
			t.Unsupported = true
			t.RawAttributes = sub(rest, 8, n)
		}
		p.Transforms = append(p.Transforms, t)
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return p, syntaxf("SA: proposal %d: %d bytes after %d transforms", i, len(rest), count)
	}
	return p, nil
}

// parseAttributes walks transform attributes. It returns the Key Length and
// ok = true only for the one form the codec understands and re-encodes
// canonically: no attributes, or a single TV Key Length that is not zero.
// Anything else that is well-formed gives ok = false (the transform is
// Unsupported); attributes running past the transform are a syntax error.
func parseAttributes(a []byte) (keyLength uint16, ok bool, err error) {
	ok = true
	seen := false
	for len(a) > 0 {
		if len(a) < 4 {
			return 0, false, syntaxf("attribute header: %d bytes left, need 4", len(a))
		}
		typ := be16(a)
		if typ&0x8000 != 0 { // TV: the value is the second half of the header
			if typ == keyLengthAttr && !seen {
				keyLength, seen = be16(a[2:4]), true
			} else {
				ok = false
			}
			a = a[4:]
			continue
		}
		n := 4 + int(be16(a[2:4]))
		if n > len(a) {
			return 0, false, syntaxf("attribute type %d: length %d, %d bytes left", typ, n-4, len(a)-4)
		}
		ok = false
		a = a[n:]
	}
	if seen && keyLength == 0 {
		ok = false
	}
	return keyLength, ok, nil
}

func parseNotify(body []byte) (*Notify, error) {
	if len(body) < 4 {
		return nil, syntaxf("Notify: body %d bytes, need 4", len(body))
	}
	spiSize := int(body[1])
	if 4+spiSize > len(body) {
		return nil, syntaxf("Notify: SPI size %d exceeds body %d", spiSize, len(body))
	}
	return &Notify{
		Protocol:   Protocol(body[0]),
		NotifyType: NotifyType(be16(body[2:4])),
		SPI:        sub(body, 4, 4+spiSize),
		Data:       sub(body, 4+spiSize, len(body)),
	}, nil
}

func parseDelete(body []byte) (*Delete, error) {
	if len(body) < 4 {
		return nil, syntaxf("Delete: body %d bytes, need 4", len(body))
	}
	d := &Delete{Protocol: Protocol(body[0]), SPISize: body[1]}
	size, count := int(body[1]), int(be16(body[2:4]))
	rest := body[4:]
	if size == 0 {
		// Deleting the IKE SA: no SPIs. A count without SPI bytes would
		// decode to empty SPIs nobody can act on.
		if count != 0 || len(rest) != 0 {
			return nil, syntaxf("Delete: SPI size 0 with %d SPIs and %d bytes", count, len(rest))
		}
		return d, nil
	}
	if size*count != len(rest) {
		return nil, syntaxf("Delete: %d SPIs of %d bytes, but %d bytes present", count, size, len(rest))
	}
	d.SPIs = make([][]byte, count)
	for k := range d.SPIs {
		d.SPIs[k] = rest[k*size : (k+1)*size : (k+1)*size]
	}
	return d, nil
}

func parseTS(typ PayloadType, body []byte) (*TrafficSelectors, error) {
	if len(body) < 4 {
		return nil, syntaxf("%v: body %d bytes, need 4", typ, len(body))
	}
	ts := &TrafficSelectors{Responder: typ == PayloadTSr}
	count := int(body[0])
	rest := body[4:]
	if count > 0 {
		ts.Selectors = make([]Selector, 0, min(count, len(rest)/tsIPv4Len))
	}
	for k := 1; k <= count; k++ {
		if len(rest) < 4 {
			return nil, syntaxf("%v: selector %d of %d: %d bytes left", typ, k, count, len(rest))
		}
		n := int(be16(rest[2:4]))
		var want int
		switch rest[0] {
		case tsIPv4AddrRange:
			want = tsIPv4Len
		case tsIPv6AddrRange:
			want = tsIPv6Len
		default:
			return nil, syntaxf("%v: selector %d: TS type %d", typ, k, rest[0])
		}
		if n != want || n > len(rest) {
			return nil, syntaxf("%v: selector %d: length %d (type %d needs %d), %d bytes left",
				typ, k, n, rest[0], want, len(rest))
		}
		s := Selector{Protocol: rest[1], StartPort: be16(rest[4:6]), EndPort: be16(rest[6:8])}
		if want == tsIPv4Len {
			s.Start = netip.AddrFrom4([4]byte(rest[8:12]))
			s.End = netip.AddrFrom4([4]byte(rest[12:16]))
		} else {
			s.Start = netip.AddrFrom16([16]byte(rest[8:24]))
			s.End = netip.AddrFrom16([16]byte(rest[24:40]))
		}
		ts.Selectors = append(ts.Selectors, s)
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, syntaxf("%v: %d bytes after %d selectors", typ, len(rest), count)
	}
	return ts, nil
}

func parseCP(body []byte) (*CP, error) {
	if len(body) < 4 {
		return nil, syntaxf("CP: body %d bytes, need 4", len(body))
	}
	cp := &CP{CfgType: body[0]}
	rest := body[4:]
	for k := 1; len(rest) > 0; k++ {
		if len(rest) < 4 {
			return nil, syntaxf("CP: attribute %d: %d bytes left, need 4", k, len(rest))
		}
		n := int(be16(rest[2:4]))
		if 4+n > len(rest) {
			return nil, syntaxf("CP: attribute %d: length %d, %d bytes left", k, n, len(rest)-4)
		}
		cp.Attributes = append(cp.Attributes, Attribute{Type: be16(rest) & 0x7fff, Value: sub(rest, 4, 4+n)})
		rest = rest[4+n:]
	}
	return cp, nil
}

func parseFragment(next PayloadType, body []byte) (*Fragment, error) {
	if len(body) < 4 {
		return nil, syntaxf("SKF: body %d bytes, need 4", len(body))
	}
	f := &Fragment{NextPayload: next, Number: be16(body), Total: be16(body[2:4]), Body: sub(body, 4, len(body))}
	if f.Number == 0 || f.Number > f.Total {
		return nil, syntaxf("SKF: fragment %d of %d", f.Number, f.Total)
	}
	return f, nil
}
