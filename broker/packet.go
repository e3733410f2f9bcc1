package broker

import (
	"encoding/binary"
	"net/netip"

	"github.com/remotegate/remotegate/policy"
)

// header is what the switch reads from a packet.
type header struct {
	src, dst netip.Addr
	proto    uint8
	sport    uint16
	dport    uint16
	icmpType uint8
	icmpID   uint16
	quote    policy.Quote
}

const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// parseHeader reads addresses, protocol and ports (ICMP type and echo
// identifier; for ICMP errors the quoted packet's header) from an IP packet.
// It reports false for packets too short or malformed to route.
func parseHeader(pkt []byte, h *header) bool {
	l4, ok := parseIP(pkt, h)
	if !ok {
		return false
	}
	h.sport, h.dport, h.icmpType, h.icmpID, h.quote = 0, 0, 0, 0, policy.Quote{}
	switch h.proto {
	case protoTCP, protoUDP:
		if len(l4) >= 4 {
			h.sport, h.dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		}
	case protoICMP, protoICMPv6:
		if len(l4) < 8 {
			return true
		}
		h.icmpType = l4[0]
		switch {
		case h.proto == protoICMP && (h.icmpType == 0 || h.icmpType == 8),
			h.proto == protoICMPv6 && (h.icmpType == 128 || h.icmpType == 129):
			h.icmpID = binary.BigEndian.Uint16(l4[4:])
		case h.proto == protoICMP && (h.icmpType == 3 || h.icmpType == 11 || h.icmpType == 12),
			h.proto == protoICMPv6 && h.icmpType >= 1 && h.icmpType <= 4:
			var inner header
			if ql4, ok := parseIP(l4[8:], &inner); ok {
				h.quote = policy.Quote{Proto: inner.proto, Src: inner.src, Dst: inner.dst}
				switch {
				case (inner.proto == protoTCP || inner.proto == protoUDP) && len(ql4) >= 4:
					h.quote.SrcPort, h.quote.DstPort = binary.BigEndian.Uint16(ql4), binary.BigEndian.Uint16(ql4[2:])
				case (inner.proto == protoICMP || inner.proto == protoICMPv6) && len(ql4) >= 8:
					h.quote.ICMPType, h.quote.ICMPID = ql4[0], binary.BigEndian.Uint16(ql4[4:])
				}
			}
		}
	}
	return true
}

// parseIP reads the IP header and returns the transport part. Quoted
// packets in ICMP errors may be truncated, so the transport part is only
// bounded by what is there.
func parseIP(pkt []byte, h *header) ([]byte, bool) {
	if len(pkt) < 1 {
		return nil, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return nil, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl {
			return nil, false
		}
		h.src = netip.AddrFrom4([4]byte(pkt[12:16]))
		h.dst = netip.AddrFrom4([4]byte(pkt[16:20]))
		h.proto = pkt[9]
		if binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0 {
			return nil, true // a later fragment: no transport header
		}
		return pkt[ihl:], true
	case 6:
		if len(pkt) < 40 {
			return nil, false
		}
		h.src = netip.AddrFrom16([16]byte(pkt[8:24]))
		h.dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		h.proto = pkt[6]
		return pkt[40:], true
	}
	return nil, false
}
