package ikecrypto

import (
	"crypto/sha1"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNATDetectionHash(t *testing.T) {
	spii := [8]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	spir := [8]byte{}

	// IPv4: 4 address bytes, port big-endian.
	in := append(append(spii[:], spir[:]...), 192, 0, 2, 1, 0x11, 0x94)
	want := sha1.Sum(in)
	ap := netip.MustParseAddrPort("192.0.2.1:4500")
	require.Equal(t, want, NATDetectionHash(spii, spir, ap))
	// An IPv4-mapped IPv6 address (as from a dual-stack socket) hashes the same.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), 4500)
	require.True(t, mapped.Addr().Is4In6())
	require.Equal(t, want, NATDetectionHash(spii, spir, mapped))

	// IPv6: 16 address bytes.
	ap6 := netip.MustParseAddrPort("[2001:db8::1]:500")
	a16 := ap6.Addr().As16()
	in6 := append(append(append(spii[:], spir[:]...), a16[:]...), 0x01, 0xf4)
	require.Equal(t, sha1.Sum(in6), NATDetectionHash(spii, spir, ap6))

	// Every input matters.
	spir[7] = 1
	require.NotEqual(t, want, NATDetectionHash(spii, spir, ap))
	require.NotEqual(t, want, NATDetectionHash(spii, [8]byte{}, netip.MustParseAddrPort("192.0.2.1:500")))
	require.NotEqual(t, want, NATDetectionHash(spii, [8]byte{}, netip.MustParseAddrPort("192.0.2.2:4500")))
}
