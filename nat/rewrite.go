package nat

import (
	"encoding/binary"
	"fmt"
)

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
const (
	protoHopByHop = 0
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoDCCP     = 33
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoICMPv6   = 58
	protoNoNext   = 59
	protoDestOpts = 60
	protoMobility = 135
	protoUDPLite  = 136
	protoHIP      = 139
)

// Offsets of the addresses in the fixed IP headers.
const (
	ipv4Src, ipv4Dst = 12, 16
	ipv6Src, ipv6Dst = 8, 24
)

const (
	ipv4MinHeader   = 20
	ipv6Header      = 40
	icmpHeader      = 8  // ICMP and ICMPv6; an error's quote follows it
	ipv4ChecksumOff = 10 // header checksum in the IPv4 header
)

// Rewrite translates the addresses of pkt, a whole IP packet starting with
// its IPv4 or IPv6 header, in place, and updates every checksum that covers
// them. ToDevice translates the destination from alias to real, FromDevice
// the source from real to alias; in ICMP errors the quoted packet is
// translated, too (see the package documentation).
//
// Rewrite reports whether it translated an address. A packet whose addresses
// match no mapping is left as it is and reported as (false, nil). A packet
// that is malformed, truncated or unsupported is reported with an error
// wrapping ErrTruncated, ErrMalformed or ErrUnsupported and is left as it is:
// Rewrite checks everything before it writes anything, and it never reads or
// writes outside pkt. It does not verify checksums: an incremental update
// keeps a wrong checksum wrong, so the receiver still drops a damaged packet.
func (t *Table) Rewrite(pkt []byte, dir Direction) (changed bool, err error) {
	if t == nil {
		return false, ErrNilTable
	}
	var rules *ruleSet
	switch dir {
	case ToDevice:
		rules = &t.toDevice
	case FromDevice:
		rules = &t.fromDevice
	default:
		return false, fmt.Errorf("%w: %d", ErrInvalidDirection, uint8(dir))
	}
	if len(pkt) == 0 {
		return false, fmt.Errorf("%w: empty", ErrTruncated)
	}
	switch pkt[0] >> 4 {
	case 4:
		return rules.rewriteIPv4(pkt, dir)
	case 6:
		return rules.rewriteIPv6(pkt, dir)
	}
	return false, fmt.Errorf("%w: IP version %d", ErrMalformed, pkt[0]>>4)
}

// translatedOffsets returns which address Rewrite translates in the outer
// packet and which in a quoted one: the quoted packet travelled the other way,
// so its source and destination are swapped relative to the outer packet.
func translatedOffsets(dir Direction, src, dst int) (outer, quoted int) {
	if dir == ToDevice {
		return dst, src
	}
	return src, dst
}

// checksumField locates the checksum of a transport protocol whose checksum
// covers the IP pseudo header, and so the addresses.
type checksumField struct {
	offset int // within the transport header
	minLen int // length of the shortest valid header
	// zeroMeansNone: a zero field means "no checksum" (UDP, RFC 768; also
	// accepted for IPv6 tunnels by RFC 6935) and must stay zero.
	zeroMeansNone bool
}

func pseudoHeaderChecksum(proto uint8, v6 bool) (checksumField, bool) {
	switch proto {
	case protoTCP:
		return checksumField{offset: 16, minLen: 20}, true
	case protoUDP, protoUDPLite:
		return checksumField{offset: 6, minLen: 8, zeroMeansNone: true}, true
	case protoDCCP:
		return checksumField{offset: 6, minLen: 12}, true
	case protoICMPv6:
		if v6 {
			return checksumField{offset: 2, minLen: icmpHeader}, true
		}
	}
	return checksumField{}, false
}

// isICMPv4Error reports the ICMP types that quote the offending packet and
// that path-MTU discovery and traceroute depend on: destination unreachable,
// time exceeded, parameter problem.
func isICMPv4Error(typ uint8) bool { return typ == 3 || typ == 11 || typ == 12 }

// isICMPv6Error reports destination unreachable, packet too big, time
// exceeded and parameter problem (RFC 4443).
func isICMPv6Error(typ uint8) bool { return typ >= 1 && typ <= 4 }

// quote is the packet an ICMP error quotes, as offsets into the outer packet.
type quote struct {
	addr          int // the address to translate
	ipChecksum    int // the quoted IPv4 header checksum; -1 for IPv6
	transport     int // the quoted transport checksum; -1 unless wholly quoted
	zeroMeansNone bool
	// dstRouted: the quoted destination is an intermediate hop of a source
	// route, so the quoted transport checksum does not cover it.
	dstRouted bool
}

// update brings the quoted checksums in line with the quoted address, which
// changed by delta, and returns the change of the quoted bytes' sum, which
// the ICMP checksum covers.
func (q *quote) update(pkt []byte, delta uint32) uint32 {
	if delta == 0 {
		return 0
	}
	change := delta // the address itself
	if q.ipChecksum >= 0 {
		change += updateChecksum(pkt[q.ipChecksum:q.ipChecksum+2], delta, false)
	}
	if q.transport >= 0 {
		change += updateChecksum(pkt[q.transport:q.transport+2], delta, q.zeroMeansNone)
	}
	return change
}

type ipv4Header struct {
	headerLen        int
	proto            uint8
	nonFirstFragment bool // no transport header: only the IP header is there to translate
	sourceRoute      bool // a source route option with hops left: the destination is not final
}

// parseIPv4Header checks an IPv4 header, but not its total length: a quoted
// header may describe a longer packet than was quoted. what names the header
// in errors.
func parseIPv4Header(b []byte, what string) (ipv4Header, error) {
	if len(b) < ipv4MinHeader {
		return ipv4Header{}, fmt.Errorf("%w: %s needs %d bytes, has %d", ErrTruncated, what, ipv4MinHeader, len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return ipv4Header{}, fmt.Errorf("%w: %s has IP version %d", ErrMalformed, what, v)
	}
	hl := int(b[0]&0x0f) * 4
	if hl < ipv4MinHeader {
		return ipv4Header{}, fmt.Errorf("%w: %s length %d is below %d", ErrMalformed, what, hl, ipv4MinHeader)
	}
	if len(b) < hl {
		return ipv4Header{}, fmt.Errorf("%w: %s length %d, has %d bytes", ErrTruncated, what, hl, len(b))
	}
	h := ipv4Header{
		headerLen:        hl,
		proto:            b[9],
		nonFirstFragment: binary.BigEndian.Uint16(b[6:])&0x1fff != 0,
	}
	if hl > ipv4MinHeader {
		var err error
		if h.sourceRoute, err = scanIPv4Options(b[ipv4MinHeader:hl]); err != nil {
			return ipv4Header{}, fmt.Errorf("%w in %s", err, what)
		}
	}
	return h, nil
}

// scanIPv4Options checks the option list (RFC 791) and reports whether a
// loose or strict source route still has hops to visit. With such a route
// the destination field holds the next hop, and TCP and UDP checksum the
// final destination instead.
func scanIPv4Options(opts []byte) (sourceRoute bool, err error) {
	const (
		optEnd  = 0
		optNOP  = 1
		optLSRR = 131
		optSSRR = 137
	)
	for i := 0; i < len(opts); {
		typ := opts[i]
		switch typ {
		case optEnd:
			return sourceRoute, nil
		case optNOP:
			i++
			continue
		}
		if len(opts)-i < 2 {
			return false, fmt.Errorf("%w: IPv4 option %d has no length", ErrMalformed, typ)
		}
		n := int(opts[i+1])
		if n < 2 || n > len(opts)-i {
			return false, fmt.Errorf("%w: IPv4 option %d has length %d, %d bytes left", ErrMalformed, typ, n, len(opts)-i)
		}
		// The pointer (third byte, counted from 1) passes the option's
		// end once every hop has been visited.
		if (typ == optLSRR || typ == optSSRR) && n >= 3 && int(opts[i+2]) <= n {
			sourceRoute = true
		}
		i += n
	}
	return sourceRoute, nil
}

func (s *ruleSet) rewriteIPv4(pkt []byte, dir Direction) (bool, error) {
	h, err := parseIPv4Header(pkt, "IPv4 header")
	if err != nil {
		return false, err
	}
	if total := int(binary.BigEndian.Uint16(pkt[2:])); total != len(pkt) {
		if total > len(pkt) {
			return false, fmt.Errorf("%w: IPv4 total length %d, packet has %d bytes", ErrTruncated, total, len(pkt))
		}
		return false, fmt.Errorf("%w: IPv4 total length %d, packet has %d bytes", ErrMalformed, total, len(pkt))
	}
	outerAddr, quotedAddr := translatedOffsets(dir, ipv4Src, ipv4Dst)

	checksumAt := -1 // the transport or ICMP checksum
	var zeroMeansNone, coversAddresses, hasQuote bool
	var q quote
	if !h.nonFirstFragment {
		segment := pkt[h.headerLen:]
		if h.proto == protoICMP {
			if len(segment) < icmpHeader {
				return false, fmt.Errorf("%w: ICMP header needs %d bytes, has %d", ErrTruncated, icmpHeader, len(segment))
			}
			// The ICMP checksum covers only the ICMP message: it changes
			// with the quoted packet but not with the outer addresses.
			checksumAt = h.headerLen + 2
			if isICMPv4Error(segment[0]) {
				if q, err = parseQuotedIPv4(pkt, h.headerLen+icmpHeader, quotedAddr); err != nil {
					return false, err
				}
				hasQuote = true
			}
		} else if f, ok := pseudoHeaderChecksum(h.proto, false); ok {
			if len(segment) < f.minLen {
				return false, fmt.Errorf("%w: protocol %d header needs %d bytes, has %d", ErrTruncated, h.proto, f.minLen, len(segment))
			}
			checksumAt = h.headerLen + f.offset
			zeroMeansNone = f.zeroMeansNone
			coversAddresses = true
		}
	}

	outer := s.find4(binary.BigEndian.Uint32(pkt[outerAddr:]))
	var quoted *rule4
	if hasQuote {
		quoted = s.find4(binary.BigEndian.Uint32(pkt[q.addr:]))
	}
	if outer == nil && quoted == nil {
		return false, nil
	}
	if outer != nil {
		if h.proto == protoAH {
			return false, fmt.Errorf("%w: IPsec AH authenticates the addresses", ErrUnsupported)
		}
		if dir == ToDevice && h.sourceRoute {
			return false, fmt.Errorf("%w: IPv4 source route with hops left", ErrUnsupported)
		}
	}
	if quoted != nil && dir == FromDevice && q.dstRouted {
		return false, fmt.Errorf("%w: quoted IPv4 source route with hops left", ErrUnsupported)
	}

	// Everything is checked; from here on nothing fails.
	var transportDelta uint32
	if outer != nil {
		a := binary.BigEndian.Uint32(pkt[outerAddr:])
		binary.BigEndian.PutUint32(pkt[outerAddr:], outer.apply(a))
		updateChecksum(pkt[ipv4ChecksumOff:ipv4ChecksumOff+2], outer.delta, false)
		if coversAddresses {
			transportDelta = outer.delta
		}
	}
	if quoted != nil {
		a := binary.BigEndian.Uint32(pkt[q.addr:])
		binary.BigEndian.PutUint32(pkt[q.addr:], quoted.apply(a))
		transportDelta += q.update(pkt, quoted.delta)
	}
	if checksumAt >= 0 {
		updateChecksum(pkt[checksumAt:checksumAt+2], normalizeDelta(transportDelta), zeroMeansNone)
	}
	return true, nil
}

// parseQuotedIPv4 checks the packet an ICMPv4 error quotes from start on. Its
// header must be complete; what follows may be cut anywhere (RFC 792 quotes
// only 8 bytes of it), so the transport checksum is updated only when both of
// its bytes are there.
func parseQuotedIPv4(pkt []byte, start, addr int) (quote, error) {
	b := pkt[start:]
	h, err := parseIPv4Header(b, "quoted IPv4 header")
	if err != nil {
		return quote{}, err
	}
	q := quote{
		addr:       start + addr,
		ipChecksum: start + ipv4ChecksumOff,
		transport:  -1,
		dstRouted:  h.sourceRoute,
	}
	if !h.nonFirstFragment {
		if f, ok := pseudoHeaderChecksum(h.proto, false); ok && len(b)-h.headerLen >= f.offset+2 {
			q.transport = start + h.headerLen + f.offset
			q.zeroMeansNone = f.zeroMeansNone
		}
	}
	return q, nil
}

// ipv6Chain is what walking the IPv6 extension headers found.
type ipv6Chain struct {
	proto  uint8 // the upper-layer protocol, or the header that was cut short
	offset int   // of the upper-layer header; -1 if the packet has none (non-first fragment, ESP, no next header)
	routed bool  // a Routing header with segments left: the destination is not final
	ah     bool
}

// walkIPv6 follows the extension headers of the IPv6 packet b (at least 40
// bytes) to the upper-layer header. ok is false if a header is cut short.
// The loop ends because every header advances the offset by at least 8 bytes.
func walkIPv6(b []byte) (c ipv6Chain, ok bool) {
	next, off := b[6], ipv6Header
	for {
		switch next {
		case protoHopByHop, protoRouting, protoDestOpts:
			if len(b)-off < 8 {
				c.proto, c.offset = next, -1
				return c, false
			}
			n := (int(b[off+1]) + 1) * 8
			if len(b)-off < n {
				c.proto, c.offset = next, -1
				return c, false
			}
			if next == protoRouting && b[off+3] != 0 { // segments left
				c.routed = true
			}
			next, off = b[off], off+n
		case protoFragment:
			if len(b)-off < 8 {
				c.proto, c.offset = next, -1
				return c, false
			}
			nonFirst := binary.BigEndian.Uint16(b[off+2:])>>3 != 0
			next, off = b[off], off+8
			if nonFirst {
				c.proto, c.offset = next, -1
				return c, true
			}
		case protoAH:
			if len(b)-off < 8 {
				c.proto, c.offset = next, -1
				return c, false
			}
			n := (int(b[off+1]) + 2) * 4 // RFC 4302: length in 4-byte units, minus 2
			if len(b)-off < n {
				c.proto, c.offset = next, -1
				return c, false
			}
			c.ah = true
			next, off = b[off], off+n
		case protoESP, protoNoNext:
			c.proto, c.offset = next, -1
			return c, true
		default:
			c.proto, c.offset = next, off
			return c, true
		}
	}
}

func (s *ruleSet) rewriteIPv6(pkt []byte, dir Direction) (bool, error) {
	if len(pkt) < ipv6Header {
		return false, fmt.Errorf("%w: IPv6 header needs %d bytes, has %d", ErrTruncated, ipv6Header, len(pkt))
	}
	if total := ipv6Header + int(binary.BigEndian.Uint16(pkt[4:])); total != len(pkt) {
		if total > len(pkt) {
			return false, fmt.Errorf("%w: IPv6 payload length %d, packet has %d bytes", ErrTruncated, total-ipv6Header, len(pkt))
		}
		// Also jumbograms (payload length 0, RFC 2675): they do not fit
		// the tunnels this package serves.
		return false, fmt.Errorf("%w: IPv6 payload length %d, packet has %d bytes", ErrMalformed, total-ipv6Header, len(pkt))
	}
	chain, ok := walkIPv6(pkt)
	if !ok {
		return false, fmt.Errorf("%w: IPv6 extension header (type %d) runs past the end", ErrTruncated, chain.proto)
	}
	outerAddr, quotedAddr := translatedOffsets(dir, ipv6Src, ipv6Dst)

	checksumAt := -1
	var zeroMeansNone, hasQuote bool
	var unsupported string // why translating the outer addresses would break the packet
	var q quote
	var err error
	if chain.ah {
		unsupported = "IPsec AH authenticates the addresses"
	}
	if chain.offset >= 0 {
		segment := pkt[chain.offset:]
		if f, ok := pseudoHeaderChecksum(chain.proto, true); ok {
			if len(segment) < f.minLen {
				return false, fmt.Errorf("%w: protocol %d header needs %d bytes, has %d", ErrTruncated, chain.proto, f.minLen, len(segment))
			}
			checksumAt = chain.offset + f.offset
			zeroMeansNone = f.zeroMeansNone
			if chain.proto == protoICMPv6 && isICMPv6Error(segment[0]) {
				if q, err = parseQuotedIPv6(pkt, chain.offset+icmpHeader, quotedAddr); err != nil {
					return false, err
				}
				hasQuote = true
			}
		} else if chain.proto == protoMobility || chain.proto == protoHIP {
			unsupported = "the Mobility or HIP header checksums the addresses"
		}
	}
	if chain.routed && dir == ToDevice {
		unsupported = "IPv6 Routing header with segments left"
	}

	outerHi := binary.BigEndian.Uint64(pkt[outerAddr:])
	outerLo := binary.BigEndian.Uint64(pkt[outerAddr+8:])
	outer := s.find6(outerHi, outerLo)
	var quoted *rule6
	var quotedHi, quotedLo uint64
	if hasQuote {
		quotedHi = binary.BigEndian.Uint64(pkt[q.addr:])
		quotedLo = binary.BigEndian.Uint64(pkt[q.addr+8:])
		quoted = s.find6(quotedHi, quotedLo)
	}
	if outer == nil && quoted == nil {
		return false, nil
	}
	if outer != nil && unsupported != "" {
		return false, fmt.Errorf("%w: %s", ErrUnsupported, unsupported)
	}
	if quoted != nil && dir == FromDevice && q.dstRouted {
		return false, fmt.Errorf("%w: quoted IPv6 Routing header with segments left", ErrUnsupported)
	}

	// Everything is checked; from here on nothing fails. IPv6 has no header
	// checksum; the ICMPv6 and transport checksums cover the addresses.
	var transportDelta uint32
	if outer != nil {
		hi, lo := outer.apply(outerHi, outerLo)
		binary.BigEndian.PutUint64(pkt[outerAddr:], hi)
		binary.BigEndian.PutUint64(pkt[outerAddr+8:], lo)
		transportDelta = outer.delta
	}
	if quoted != nil {
		hi, lo := quoted.apply(quotedHi, quotedLo)
		binary.BigEndian.PutUint64(pkt[q.addr:], hi)
		binary.BigEndian.PutUint64(pkt[q.addr+8:], lo)
		transportDelta += q.update(pkt, quoted.delta)
	}
	if checksumAt >= 0 {
		updateChecksum(pkt[checksumAt:checksumAt+2], normalizeDelta(transportDelta), zeroMeansNone)
	}
	return true, nil
}

// parseQuotedIPv6 checks the packet an ICMPv6 error quotes from start on. Its
// fixed header must be complete; extension headers and the transport header
// may be cut anywhere, and then the transport checksum is left alone.
func parseQuotedIPv6(pkt []byte, start, addr int) (quote, error) {
	b := pkt[start:]
	if len(b) < ipv6Header {
		return quote{}, fmt.Errorf("%w: quoted IPv6 header needs %d bytes, has %d", ErrTruncated, ipv6Header, len(b))
	}
	if v := b[0] >> 4; v != 6 {
		return quote{}, fmt.Errorf("%w: quoted IPv6 header has IP version %d", ErrMalformed, v)
	}
	chain, _ := walkIPv6(b) // a cut chain just hides the transport header
	q := quote{addr: start + addr, ipChecksum: -1, transport: -1, dstRouted: chain.routed}
	if chain.offset >= 0 {
		if f, ok := pseudoHeaderChecksum(chain.proto, true); ok && len(b)-chain.offset >= f.offset+2 {
			q.transport = start + chain.offset + f.offset
			q.zeroMeansNone = f.zeroMeansNone
		}
	}
	return q, nil
}
