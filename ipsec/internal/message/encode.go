package message

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
)

// Marshal encodes a whole message: h with NextPayload and Length filled in
// from ps, then the payload chain. The other header fields are written as
// given (Version 0 becomes Version2).
func Marshal(h Header, ps []Payload) ([]byte, error) {
	b := make([]byte, HeaderLen, HeaderLen+encodedSizeHint(ps))
	b, first, err := AppendPayloads(b, ps)
	if err != nil {
		return nil, err
	}
	if uint64(len(b)) > math.MaxUint32 {
		return nil, lengthf("message of %d bytes", len(b))
	}
	h.NextPayload = first
	h.Length = uint32(len(b))
	h.AppendTo(b[:0])
	return b, nil
}

// encodedSizeHint estimates the encoded size so that Marshal allocates once
// in the common case; it need not be exact.
func encodedSizeHint(ps []Payload) int {
	n := 0
	for _, p := range ps {
		n += 16
		switch q := p.(type) {
		case *SA:
			if q != nil {
				for _, pr := range q.Proposals {
					n += 8 + len(pr.SPI) + 12*len(pr.Transforms)
				}
			}
		case *KE:
			if q != nil {
				n += len(q.Data)
			}
		case *Nonce:
			if q != nil {
				n += len(q.Data)
			}
		case *Notify:
			if q != nil {
				n += len(q.SPI) + len(q.Data)
			}
		case *ID:
			if q != nil {
				n += len(q.Data)
			}
		case *Cert:
			if q != nil {
				n += len(q.Data)
			}
		case *Auth:
			if q != nil {
				n += len(q.Data)
			}
		case *TrafficSelectors:
			if q != nil {
				n += tsIPv6Len * len(q.Selectors)
			}
		case *Encrypted:
			if q != nil {
				n += len(q.Body)
			}
		}
	}
	return n
}

// AppendPayloads appends the generic-payload chain ps to b and returns the
// type of its first payload (NoNext for an empty chain), which the caller
// puts in the header or in the Next Payload field of the SK payload that
// will carry the chain. Each payload's Next Payload field is the type of the
// following payload; the last one's is NoNext, except for an *Encrypted or
// *Fragment, which must be last and contributes its own NextPayload.
//
// On error the returned slice is b unchanged up to its original length (the
// caller must not use the rest).
func AppendPayloads(b []byte, ps []Payload) (out []byte, first PayloadType, err error) {
	if len(ps) == 0 {
		return b, NoNext, nil
	}
	orig := len(b)
	for i, p := range ps {
		if p == nil || (reflect.ValueOf(p).Kind() == reflect.Pointer && reflect.ValueOf(p).IsNil()) {
			return b[:orig], NoNext, syntaxf("payload %d is nil", i)
		}
		typ := p.Type()
		var next PayloadType
		if i+1 < len(ps) {
			if typ == PayloadSK || typ == PayloadSKF {
				return b[:orig], NoNext, syntaxf("payload %d: %v must be the last payload", i, typ)
			}
			if ps[i+1] != nil {
				next = ps[i+1].Type()
			}
		} else {
			switch q := p.(type) {
			case *Encrypted:
				next = q.NextPayload
			case *Fragment:
				next = q.NextPayload
			}
		}
		var flags byte
		if u, ok := p.(*Unknown); ok && u.Critical {
			flags = criticalBit
		}
		start := len(b)
		b = append(b, byte(next), flags, 0, 0)
		b, err = appendBody(b, p)
		if err != nil {
			return b[:orig], NoNext, fmt.Errorf("%w (payload %d)", err, i)
		}
		n := len(b) - start
		if n > maxPayloadLen {
			return b[:orig], NoNext, lengthf("payload %d (%v): %d bytes exceed the 16-bit length", i, typ, n)
		}
		binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	}
	return b, ps[0].Type(), nil
}

// appendBody appends the body of p (everything after the generic header).
func appendBody(b []byte, p Payload) ([]byte, error) {
	switch q := p.(type) {
	case *SA:
		return appendSA(b, q)
	case *KE:
		b = binary.BigEndian.AppendUint16(b, q.Group)
		return append(append(b, 0, 0), q.Data...), nil
	case *ID:
		b = append(b, byte(q.IDType), q.reserved[0], q.reserved[1], q.reserved[2])
		return append(b, q.Data...), nil
	case *Cert:
		return append(append(b, q.Encoding), q.Data...), nil
	case *CertReq:
		return append(append(b, q.Encoding), q.Data...), nil
	case *Auth:
		return append(append(b, byte(q.Method), 0, 0, 0), q.Data...), nil
	case *Nonce:
		return append(b, q.Data...), nil
	case *Notify:
		if len(q.SPI) > math.MaxUint8 {
			return b, syntaxf("Notify: SPI of %d bytes", len(q.SPI))
		}
		b = append(b, byte(q.Protocol), byte(len(q.SPI)))
		b = binary.BigEndian.AppendUint16(b, uint16(q.NotifyType))
		return append(append(b, q.SPI...), q.Data...), nil
	case *Delete:
		return appendDelete(b, q)
	case *VendorID:
		return append(b, q.Data...), nil
	case *TrafficSelectors:
		return appendTS(b, q)
	case *CP:
		return appendCP(b, q)
	case *EAP:
		return append(b, q.Data...), nil
	case *Encrypted:
		return append(b, q.Body...), nil
	case *Fragment:
		if q.Number == 0 || q.Number > q.Total {
			return b, syntaxf("SKF: fragment %d of %d", q.Number, q.Total)
		}
		b = binary.BigEndian.AppendUint16(b, q.Number)
		b = binary.BigEndian.AppendUint16(b, q.Total)
		return append(b, q.Body...), nil
	case *Unknown:
		// A known type would be decoded as that type, and NoNext would end
		// the chain early: either way the peer would see something else.
		if q.PayloadType == NoNext || q.PayloadType.known() {
			return b, syntaxf("Unknown payload with type %v", q.PayloadType)
		}
		return append(b, q.Data...), nil
	}
	return b, syntaxf("unsupported payload implementation %T", p)
}

func appendSA(b []byte, sa *SA) ([]byte, error) {
	for i, p := range sa.Proposals {
		last := byte(2)
		if i == len(sa.Proposals)-1 {
			last = 0
		}
		if s := len(p.SPI); s != 0 && s != 4 && s != 8 {
			return b, syntaxf("SA: proposal %d: SPI of %d bytes", i+1, s)
		}
		if len(p.Transforms) > math.MaxUint8 {
			return b, syntaxf("SA: proposal %d: %d transforms", i+1, len(p.Transforms))
		}
		ps := len(b)
		b = append(b, last, 0, 0, 0, p.Number, byte(p.Protocol), byte(len(p.SPI)), byte(len(p.Transforms)))
		b = append(b, p.SPI...)
		for j, t := range p.Transforms {
			tlast := byte(3)
			if j == len(p.Transforms)-1 {
				tlast = 0
			}
			ts := len(b)
			b = append(b, tlast, 0, 0, 0, byte(t.Type), 0)
			b = binary.BigEndian.AppendUint16(b, t.ID)
			switch {
			case len(t.RawAttributes) > 0:
				if _, _, err := parseAttributes(t.RawAttributes); err != nil {
					return b, fmt.Errorf("%w (SA: proposal %d: transform %d: RawAttributes)", err, i+1, j+1)
				}
				b = append(b, t.RawAttributes...)
			case t.KeyLength != 0:
				b = binary.BigEndian.AppendUint16(b, keyLengthAttr)
				b = binary.BigEndian.AppendUint16(b, t.KeyLength)
			}
			tn := len(b) - ts
			if tn > maxPayloadLen {
				return b, lengthf("SA: proposal %d: transform %d of %d bytes", i+1, j+1, tn)
			}
			binary.BigEndian.PutUint16(b[ts+2:], uint16(tn))
		}
		n := len(b) - ps
		if n > maxPayloadLen {
			return b, lengthf("SA: proposal %d of %d bytes", i+1, n)
		}
		binary.BigEndian.PutUint16(b[ps+2:], uint16(n))
	}
	return b, nil
}

func appendDelete(b []byte, d *Delete) ([]byte, error) {
	if len(d.SPIs) > math.MaxUint16 {
		return b, syntaxf("Delete: %d SPIs", len(d.SPIs))
	}
	if d.SPISize == 0 && len(d.SPIs) != 0 {
		return b, syntaxf("Delete: SPI size 0 with %d SPIs", len(d.SPIs))
	}
	b = append(b, byte(d.Protocol), d.SPISize)
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.SPIs)))
	for k, spi := range d.SPIs {
		if len(spi) != int(d.SPISize) {
			return b, syntaxf("Delete: SPI %d has %d bytes, SPI size is %d", k, len(spi), d.SPISize)
		}
		b = append(b, spi...)
	}
	return b, nil
}

func appendTS(b []byte, ts *TrafficSelectors) ([]byte, error) {
	if len(ts.Selectors) > math.MaxUint8 {
		return b, syntaxf("%v: %d selectors", ts.Type(), len(ts.Selectors))
	}
	b = append(b, byte(len(ts.Selectors)), 0, 0, 0)
	for k, s := range ts.Selectors {
		switch {
		case s.Start.Is4() && s.End.Is4():
			b = append(b, tsIPv4AddrRange, s.Protocol, 0, tsIPv4Len)
			b = binary.BigEndian.AppendUint16(b, s.StartPort)
			b = binary.BigEndian.AppendUint16(b, s.EndPort)
			s4, e4 := s.Start.As4(), s.End.As4()
			b = append(append(b, s4[:]...), e4[:]...)
		case s.Start.Is6() && s.End.Is6():
			b = append(b, tsIPv6AddrRange, s.Protocol, 0, tsIPv6Len)
			b = binary.BigEndian.AppendUint16(b, s.StartPort)
			b = binary.BigEndian.AppendUint16(b, s.EndPort)
			s16, e16 := s.Start.As16(), s.End.As16()
			b = append(append(b, s16[:]...), e16[:]...)
		default:
			return b, syntaxf("%v: selector %d: addresses %v and %v are not of one family", ts.Type(), k+1, s.Start, s.End)
		}
	}
	return b, nil
}

func appendCP(b []byte, cp *CP) ([]byte, error) {
	b = append(b, cp.CfgType, 0, 0, 0)
	for k, a := range cp.Attributes {
		if a.Type > 0x7fff {
			return b, syntaxf("CP: attribute %d: type %#x has more than 15 bits", k+1, a.Type)
		}
		if len(a.Value) > math.MaxUint16 {
			return b, lengthf("CP: attribute %d: value of %d bytes", k+1, len(a.Value))
		}
		b = binary.BigEndian.AppendUint16(b, a.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
	}
	return b, nil
}
