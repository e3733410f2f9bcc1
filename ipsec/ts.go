package ipsec

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// narrow intersects the peer's traffic selectors with the prefixes it may
// have (RFC 7296 §2.9): each selector is cut to each allowed prefix it
// overlaps, keeping the selector's protocol and ports. The result is a
// subset of what the peer proposed, as a responder must answer.
func narrow(proposed []message.Selector, allowed []netip.Prefix) []message.Selector {
	var out []message.Selector
	for _, s := range proposed {
		for _, p := range allowed {
			p = p.Masked()
			if p.Addr().BitLen() != s.Start.BitLen() {
				continue
			}
			lo, hi := p.Addr(), lastAddr(p)
			start, end := maxAddr(s.Start, lo), minAddr(s.End, hi)
			if start.Compare(end) > 0 {
				continue
			}
			n := s
			n.Start, n.End = start, end
			out = append(out, n)
		}
	}
	return out
}

// lastAddr is the highest address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Compare(b) <= 0 {
		return a
	}
	return b
}

// tsString renders selectors the way strongSwan logs them: a range that is
// a prefix as the prefix ("10.240.0.0/24"), any other as "first-last",
// followed by "[protocol/ports]" unless they are any.
func tsString(sel []message.Selector) string {
	parts := make([]string, 0, len(sel))
	for _, s := range sel {
		r := s.Start.String() + "-" + s.End.String()
		for bits := 0; bits <= s.Start.BitLen(); bits++ {
			if p := netip.PrefixFrom(s.Start, bits); p.Masked().Addr() == s.Start && lastAddr(p) == s.End {
				r = p.String()
				break
			}
		}
		if s.Protocol != 0 || s.StartPort != 0 || s.EndPort != 0xffff {
			r += fmt.Sprintf("[%d/%d-%d]", s.Protocol, s.StartPort, s.EndPort)
		}
		parts = append(parts, r)
	}
	return strings.Join(parts, " ")
}
