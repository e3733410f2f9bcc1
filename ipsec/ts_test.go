package ipsec

import (
	"net/netip"
	"testing"

	"github.com/remotegate/remotegate/ipsec/internal/message"
)

func TestTSString(t *testing.T) {
	sel := func(start, end string, proto uint8, lo, hi uint16) message.Selector {
		return message.Selector{Protocol: proto, StartPort: lo, EndPort: hi, Start: netip.MustParseAddr(start), End: netip.MustParseAddr(end)}
	}
	for _, c := range []struct {
		sel  []message.Selector
		want string
	}{
		{[]message.Selector{sel("10.240.0.0", "10.240.0.255", 0, 0, 65535)}, "10.240.0.0/24"},
		{[]message.Selector{sel("10.233.0.1", "10.233.0.1", 0, 0, 65535)}, "10.233.0.1/32"},
		{[]message.Selector{sel("0.0.0.0", "255.255.255.255", 0, 0, 65535)}, "0.0.0.0/0"},
		{[]message.Selector{sel("10.0.0.1", "10.0.0.6", 0, 0, 65535)}, "10.0.0.1-10.0.0.6"},
		{[]message.Selector{sel("10.0.0.0", "10.0.0.255", 6, 443, 443), sel("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, 0, 65535)}, "10.0.0.0/24[6/443-443] ::/0"},
		{nil, ""},
	} {
		if got := tsString(c.sel); got != c.want {
			t.Errorf("tsString(%v) = %q, want %q", c.sel, got, c.want)
		}
	}
}
