package nat_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/remotegate/remotegate/internal/packet"
	"github.com/remotegate/remotegate/nat"
)

// Addresses of the stories below: an engineer outside, plant 7's PLC (real
// and alias), plant 7's router inside the LAN, and the gateway's own address,
// which no mapping covers.
var (
	engineer    = addr("172.16.5.2")
	plcReal     = addr("192.168.0.10")
	plcAlias    = addr("10.200.7.10")
	routerReal  = addr("192.168.0.1")
	routerAlias = addr("10.200.7.1")
	gatewayWAN  = addr("100.64.0.1")

	engineer6 = addr("2001:db8:ffff::5")
	plcReal6  = addr("fd00:1::10")
	plcAlias6 = addr("2001:db8:7::10")
)

// withDestination returns p with its IP destination set to dst (and the IPv4
// header checksum recomputed): what translating the IP header only gives.
func withDestination(p []byte, dst netip.Addr) []byte {
	p = bytes.Clone(p)
	if p[0]>>4 == 6 {
		copy(p[24:40], dst.AsSlice())
		return p
	}
	copy(p[16:20], dst.AsSlice())
	fixIPv4HeaderChecksum(p)
	return p
}

// ah is an IPsec AH header (next header to be filled in) with 12 bytes of
// authentication data: 24 bytes, length field 4 (RFC 4302: in 4-byte units,
// minus 2).
var ah = []byte{0, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}

func fixIPv4HeaderChecksum(p []byte) {
	hl := int(p[0]&0x0f) * 4
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], packet.Checksum(p[:hl], 0))
}

// TestICMPErrorsThroughTheMapping follows path-MTU discovery and traceroute
// through plant 7's mapping: each error must arrive exactly as if the
// packets had been built with the translated addresses from the start.
func TestICMPErrorsThroughTheMapping(t *testing.T) {
	tbl := plant7(t)
	r := rand.New(rand.NewPCG(5, 6))
	tcp := randomFlow(r, false, kindTCP)
	tcp.payload = make([]byte, 1400)
	outer := randomFlow(r, false, kindEcho)
	tcp6 := randomFlow(r, true, kindTCP)
	tcp6.ipv6Ext = nil
	outer6 := randomFlow(r, true, kindEcho)
	outer6.ipv6Ext = nil
	udp6 := randomFlow(r, true, kindUDP)
	udp6.ipv6Ext = nil
	fragNeeded := icmpError{3, 4, 1280}
	timeExceeded := icmpError{11, 0, 0}
	tooBig := icmpError{2, 0, 1280}

	tests := []struct {
		name          string
		dir           nat.Direction
		before, after []byte
	}{
		{
			// The PLC sends a large segment to the engineer; a router on
			// the way needs fragmentation and tells the PLC's alias.
			name:   "fragmentation needed to the PLC",
			dir:    nat.ToDevice,
			before: buildICMPError(t, outer, fragNeeded, addr("198.51.100.1"), plcAlias, build(t, tcp, plcAlias, engineer)[:28]),
			after:  buildICMPError(t, outer, fragNeeded, addr("198.51.100.1"), plcReal, build(t, tcp, plcReal, engineer)[:28]),
		},
		{
			// The engineer's traceroute reaches the plant's router, which
			// answers from its LAN address.
			name:   "time exceeded from the plant router",
			dir:    nat.FromDevice,
			before: buildICMPError(t, outer, timeExceeded, routerReal, engineer, build(t, tcp, engineer, plcReal)[:48]),
			after:  buildICMPError(t, outer, timeExceeded, routerAlias, engineer, build(t, tcp, engineer, plcAlias)[:48]),
		},
		{
			// The gateway answers from its own address, outside the
			// mapping: only the quoted destination is translated.
			name:   "fragmentation needed from the gateway",
			dir:    nat.FromDevice,
			before: buildICMPError(t, outer, fragNeeded, gatewayWAN, engineer, build(t, tcp, engineer, plcReal)),
			after:  buildICMPError(t, outer, fragNeeded, gatewayWAN, engineer, build(t, tcp, engineer, plcAlias)),
		},
		{
			name:   "packet too big to the PLC",
			dir:    nat.ToDevice,
			before: buildICMPError(t, outer6, tooBig, engineer6, plcAlias6, build(t, tcp6, plcAlias6, engineer6)),
			after:  buildICMPError(t, outer6, tooBig, engineer6, plcReal6, build(t, tcp6, plcReal6, engineer6)),
		},
		{
			// A quoted IPsec AH header is walked to reach the UDP checksum;
			// the AH authentication data is the sender's business.
			name: "packet too big quoting an AH packet",
			dir:  nat.ToDevice,
			before: buildICMPError(t, outer6, tooBig, engineer6, plcAlias6,
				ipv6WithHeader(build(t, udp6, plcAlias6, engineer6), 51, ah)),
			after: buildICMPError(t, outer6, tooBig, engineer6, plcReal6,
				ipv6WithHeader(build(t, udp6, plcReal6, engineer6), 51, ah)),
		},
		{
			name:   "packet too big from the PLC",
			dir:    nat.FromDevice,
			before: buildICMPError(t, outer6, tooBig, plcReal6, engineer6, build(t, tcp6, engineer6, plcReal6)[:60]),
			after:  buildICMPError(t, outer6, tooBig, plcAlias6, engineer6, build(t, tcp6, engineer6, plcAlias6)[:60]),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := rewriteOK(t, tbl, tt.before, tt.dir)
			if !changed || !bytes.Equal(got, tt.after) {
				t.Fatalf("changed %v, %s", changed, diff(tt.after, got))
			}
			if err := verifyChecksums(got); err != nil {
				t.Fatal(err)
			}
			back, _ := rewriteOK(t, tbl.Invert(), got, tt.dir)
			if !bytes.Equal(back, tt.before) {
				t.Fatalf("inverse: %s", diff(tt.before, back))
			}
		})
	}
}

// TestICMPQuoteSplitChecksum cuts the quote in the middle of the quoted UDP
// checksum: half a checksum cannot be updated, so that byte stays, and the
// outer ICMP checksum must still match the bytes as they are.
func TestICMPQuoteSplitChecksum(t *testing.T) {
	tbl := plant7(t)
	r := rand.New(rand.NewPCG(7, 8))
	for _, v6 := range []bool{false, true} {
		src, dst := engineer, plcReal
		if v6 {
			src, dst = engineer6, plcReal6
		}
		f := randomFlow(r, v6, kindUDP)
		f.ipv6Ext = nil
		f.ipv4Options = false
		quote := build(t, f, src, dst)
		cut := upperOffset(quote) + 7 // one byte of the UDP checksum
		pkt := buildICMPError(t, randomFlow(r, v6, kindEcho), icmpError{3, 3, 0}, dst, src, quote[:cut])
		got, changed := rewriteOK(t, tbl, pkt, nat.FromDevice)
		if !changed {
			t.Fatal("not changed")
		}
		if err := verifyChecksums(got); err != nil {
			t.Fatalf("v6=%v: %v", v6, err)
		}
		if got[len(got)-1] != pkt[len(pkt)-1] {
			t.Errorf("v6=%v: the half checksum changed", v6)
		}
		back, _ := rewriteOK(t, tbl.Invert(), got, nat.FromDevice)
		if !bytes.Equal(back, pkt) {
			t.Fatalf("v6=%v: inverse: %s", v6, diff(pkt, back))
		}
	}
}

// zeroChecksumPayload returns a 2-byte payload for which f's UDP or TCP
// checksum from src to dst is 0 (computed from scratch).
func zeroChecksumPayload(t *testing.T, f flow, src, dst netip.Addr) []byte {
	f.payload = []byte{0, 0}
	p := build(t, f, src, dst)
	at := transportChecksumOffset(p, f.kind)
	// The payload word adds to the sum what the checksum lacks to be 0.
	c := binary.BigEndian.Uint16(p[at:])
	if f.kind != kindTCP && c == 0xffff {
		c = 0
	}
	return []byte{byte(c >> 8), byte(c)}
}

func TestUDPChecksum(t *testing.T) {
	tbl := plant7(t)
	r := rand.New(rand.NewPCG(9, 10))
	for _, v6 := range []bool{false, true} {
		src, alias, real := engineer, plcAlias, plcReal
		if v6 {
			src, alias, real = engineer6, plcAlias6, plcReal6
		}
		t.Run("zero stays zero", func(t *testing.T) {
			f := randomFlow(r, v6, kindUDPNoChecksum)
			before, after := build(t, f, src, alias), build(t, f, src, real)
			got, _ := rewriteOK(t, tbl, before, nat.ToDevice)
			at := udpChecksumOffset(got)
			if got[at] != 0 || got[at+1] != 0 || !bytes.Equal(got, after) {
				t.Fatalf("v6=%v: %s", v6, diff(after, got))
			}
		})
		t.Run("computed zero is sent as 0xffff", func(t *testing.T) {
			f := randomFlow(r, v6, kindUDP)
			f.payload = zeroChecksumPayload(t, f, src, real)
			before, after := build(t, f, src, alias), build(t, f, src, real)
			at := udpChecksumOffset(after)
			if after[at] != 0xff || after[at+1] != 0xff {
				t.Fatalf("test setup: checksum %x, want ffff", after[at:at+2])
			}
			got, _ := rewriteOK(t, tbl, before, nat.ToDevice)
			if !bytes.Equal(got, after) {
				t.Fatalf("v6=%v: %s", v6, diff(after, got))
			}
			back, _ := rewriteOK(t, tbl.Invert(), got, nat.ToDevice)
			if !bytes.Equal(back, before) {
				t.Fatalf("v6=%v: inverse: %s", v6, diff(before, back))
			}
		})
	}
}

// TestNonCanonicalChecksum feeds a TCP checksum of 0xffff, the other
// ones'-complement zero, which no correct sender computes but which
// verifies. Rewrite writes the canonical form, and the inverse rewrite gives
// 0x0000 back: the one documented exception to exact restoration.
func TestNonCanonicalChecksum(t *testing.T) {
	tbl := plant7(t)
	f := randomFlow(rand.New(rand.NewPCG(11, 12)), false, kindTCP)
	f.ipv4Options = false
	f.payload = zeroChecksumPayload(t, f, engineer, plcAlias)
	before := build(t, f, engineer, plcAlias)
	at := transportChecksumOffset(before, kindTCP)
	if before[at] != 0 || before[at+1] != 0 {
		t.Fatalf("test setup: checksum %x, want 0000", before[at:at+2])
	}
	before[at], before[at+1] = 0xff, 0xff
	got, _ := rewriteOK(t, tbl, before, nat.ToDevice)
	if !bytes.Equal(got, build(t, f, engineer, plcReal)) {
		t.Fatal("result is not the canonical packet")
	}
	back, _ := rewriteOK(t, tbl.Invert(), got, nat.ToDevice)
	if back[at] != 0 || back[at+1] != 0 || !equalUpToCanonicalZero(before, back) {
		t.Fatalf("inverse: %s", diff(before, back))
	}
}

// TestSumNeutralMapping maps 1.2.3.0/24 to 3.2.1.0/24: the address words sum
// to the same value, so no checksum changes, not even a non-canonical one.
func TestSumNeutralMapping(t *testing.T) {
	tbl := mustTable(t, mapping("3.2.1.0/24", "1.2.3.0/24"))
	f := randomFlow(rand.New(rand.NewPCG(13, 14)), false, kindTCP)
	before := build(t, f, engineer, addr("1.2.3.4"))
	at := transportChecksumOffset(before, kindTCP)
	before[at], before[at+1] = 0xff, 0xff // wrong, and must stay so
	got, changed := rewriteOK(t, tbl, before, nat.ToDevice)
	want := bytes.Clone(before)
	copy(want[16:20], []byte{3, 2, 1, 4})
	if !changed || !bytes.Equal(got, want) {
		t.Fatalf("changed %v, %s", changed, diff(want, got))
	}
}

// TestSumNeutralQuote: with a mapping whose translation does not change any
// sum, an ICMP error's quote is translated and no checksum changes.
func TestSumNeutralQuote(t *testing.T) {
	tbl := mustTable(t, mapping("3.2.1.0/24", "1.2.3.0/24"))
	f := randomFlow(rand.New(rand.NewPCG(35, 36)), false, kindUDP)
	f.ipv4Options = false
	quote := build(t, f, addr("1.2.3.4"), engineer)
	before := buildICMPError(t, randomFlow(rand.New(rand.NewPCG(37, 38)), false, kindEcho), icmpError{11, 0, 0}, engineer, addr("1.2.3.4"), quote)
	got, changed := rewriteOK(t, tbl, before, nat.ToDevice)
	want := bytes.Clone(before)
	copy(want[16:20], []byte{3, 2, 1, 4})
	copy(want[28+12:28+16], []byte{3, 2, 1, 4})
	if !changed || !bytes.Equal(got, want) {
		t.Fatalf("changed %v, %s", changed, diff(want, got))
	}
}

// fragmentIPv4 returns the fragment of the whole IPv4 packet p (no options)
// that carries p's IP payload from byte off (a multiple of 8) for n bytes.
func fragmentIPv4(p []byte, off, n int) []byte {
	payload := p[20:]
	more := off+n < len(payload)
	n = min(n, len(payload)-off)
	frag := append(bytes.Clone(p[:20]), payload[off:off+n]...)
	binary.BigEndian.PutUint16(frag[2:], uint16(len(frag)))
	flags := uint16(off / 8)
	if more {
		flags |= 0x2000
	}
	binary.BigEndian.PutUint16(frag[6:], flags)
	fixIPv4HeaderChecksum(frag)
	return frag
}

// fragmentIPv6 is fragmentIPv4 for an IPv6 packet without extension headers:
// it inserts a Fragment header.
func fragmentIPv6(p []byte, off, n int) []byte {
	payload := p[40:]
	more := off+n < len(payload)
	n = min(n, len(payload)-off)
	frag := bytes.Clone(p[:40])
	frag[6] = 44
	fh := make([]byte, 8)
	fh[0] = p[6]
	field := uint16(off)
	if more {
		field |= 1
	}
	binary.BigEndian.PutUint16(fh[2:], field)
	binary.BigEndian.PutUint32(fh[4:], 0xc0ffee)
	frag = append(append(frag, fh...), payload[off:off+n]...)
	binary.BigEndian.PutUint16(frag[4:], uint16(len(frag)-40))
	return frag
}

// TestFragments: a first fragment carries the transport header, whose
// checksum (over the whole datagram) is updated incrementally; later
// fragments get their addresses translated only, whatever their bytes look
// like.
func TestFragments(t *testing.T) {
	tbl := plant7(t)
	r := rand.New(rand.NewPCG(15, 16))
	for _, v6 := range []bool{false, true} {
		src, alias, real := engineer, plcAlias, plcReal
		fragment := fragmentIPv4
		if v6 {
			src, alias, real = engineer6, plcAlias6, plcReal6
			fragment = fragmentIPv6
		}
		for _, kind := range []payloadKind{kindTCP, kindUDP, kindEcho} {
			f := randomFlow(r, v6, kind)
			f.ipv6Ext, f.ipv4Options = nil, false
			f.payload = make([]byte, 600)
			before, after := build(t, f, src, alias), build(t, f, src, real)
			for _, off := range []int{0, 8, 16, 200} {
				fb, fa := fragment(before, off, 200), fragment(after, off, 200)
				if off > 0 {
					fa = withDestination(fb, real)
				}
				got, changed := rewriteOK(t, tbl, fb, nat.ToDevice)
				if !changed || !bytes.Equal(got, fa) {
					t.Fatalf("v6=%v %v offset %d: changed %v, %s", v6, kind, off, changed, diff(fa, got))
				}
				back, _ := rewriteOK(t, tbl.Invert(), got, nat.ToDevice)
				if !bytes.Equal(back, fb) {
					t.Fatalf("v6=%v %v offset %d: inverse: %s", v6, kind, off, diff(fb, back))
				}
			}
		}
	}
}

// ipv6WithHeader returns the IPv6 packet p (no extension headers) with the
// extension header h (next-header byte filled in) of type typ inserted.
func ipv6WithHeader(p []byte, typ uint8, h []byte) []byte {
	out := bytes.Clone(p[:40])
	h = bytes.Clone(h)
	h[0] = p[6]
	out[6] = typ
	out = append(append(out, h...), p[40:]...)
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	return out
}

func TestUnsupported(t *testing.T) {
	tbl := plant7(t)
	r := rand.New(rand.NewPCG(17, 18))
	f4 := randomFlow(r, false, kindTCP)
	f4.ipv4Options = false
	f6 := randomFlow(r, true, kindTCP)
	f6.ipv6Ext = nil

	lsrr := func(p []byte, pointer byte) []byte {
		// Loose source route with one hop (IHL 7: 7 option bytes, 1 pad).
		opt := []byte{131, 7, pointer, 198, 51, 100, 1, 0}
		out := append(append(bytes.Clone(p[:20]), opt...), p[20:]...)
		out[0] = 0x47
		binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
		fixIPv4HeaderChecksum(out)
		return out
	}
	routing := func(segmentsLeft byte) []byte {
		return []byte{0, 2, 0, segmentsLeft, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}
	}
	ahIPv4 := func(p []byte) []byte {
		out := append(bytes.Clone(p[:20]), ah...)
		out[len(p[:20])] = 6
		out = append(out, p[20:]...)
		out[9] = 51
		binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
		fixIPv4HeaderChecksum(out)
		return out
	}
	icmp4 := func(quote []byte, src, dst netip.Addr) []byte {
		return buildICMPError(t, randomFlow(r, false, kindEcho), icmpError{3, 3, 0}, src, dst, quote)
	}
	icmp6 := func(quote []byte, src, dst netip.Addr) []byte {
		f := randomFlow(r, true, kindEcho)
		f.ipv6Ext = nil
		return buildICMPError(t, f, icmpError{1, 4, 0}, src, dst, quote)
	}
	mobility := func(p []byte) []byte {
		out := bytes.Clone(p[:40])
		out[6] = 135
		out = append(out, 59, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint16(out[4:], 8)
		return out
	}

	tests := []struct {
		name  string
		pkt   []byte
		dir   nat.Direction
		error bool // false: translated without error
	}{
		{"IPv4 source route to the device", lsrr(build(t, f4, engineer, plcAlias), 4), nat.ToDevice, true},
		{"IPv4 source route already followed", lsrr(build(t, f4, engineer, plcAlias), 8), nat.ToDevice, false},
		{"IPv4 source route from the device", lsrr(build(t, f4, plcReal, engineer), 4), nat.FromDevice, false},
		{"IPv4 AH", ahIPv4(build(t, f4, engineer, plcAlias)), nat.ToDevice, true},
		{"IPv6 AH", ipv6WithHeader(build(t, f6, engineer6, plcAlias6), 51, ah), nat.ToDevice, true},
		{"IPv6 routing header with segments left", ipv6WithHeader(build(t, f6, engineer6, plcAlias6), 43, routing(1)), nat.ToDevice, true},
		{"IPv6 routing header done", ipv6WithHeader(build(t, f6, engineer6, plcAlias6), 43, routing(0)), nat.ToDevice, false},
		{"IPv6 routing header from the device", ipv6WithHeader(build(t, f6, plcReal6, engineer6), 43, routing(1)), nat.FromDevice, false},
		{"IPv6 mobility header", mobility(build(t, f6, engineer6, plcAlias6)), nat.ToDevice, true},
		{"quoted IPv4 source route to the device", icmp4(lsrr(build(t, f4, engineer, plcReal), 4), plcReal, engineer), nat.FromDevice, true},
		{"quoted IPv4 source route from the device", icmp4(lsrr(build(t, f4, plcAlias, engineer), 4), engineer, plcAlias), nat.ToDevice, false},
		{"quoted IPv6 routing header to the device", icmp6(ipv6WithHeader(build(t, f6, engineer6, plcReal6), 43, routing(1)), plcReal6, engineer6), nat.FromDevice, true},
		{"quoted IPv6 routing header from the device", icmp6(ipv6WithHeader(build(t, f6, plcAlias6, engineer6), 43, routing(1)), engineer6, plcAlias6), nat.ToDevice, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bytes.Clone(tt.pkt)
			changed, err := tbl.Rewrite(got, tt.dir)
			if tt.error {
				if !errors.Is(err, nat.ErrUnsupported) || changed || !bytes.Equal(got, tt.pkt) {
					t.Fatalf("Rewrite = %v, %v; want ErrUnsupported and the packet unchanged", changed, err)
				}
				// The same packet passes when no address needs translating.
				other := mustTable(t, mapping("192.0.2.0/24", "198.18.0.0/24"))
				if changed, err := other.Rewrite(got, tt.dir); changed || err != nil {
					t.Fatalf("unmatched: Rewrite = %v, %v; want false, nil", changed, err)
				}
				return
			}
			if err != nil || !changed {
				t.Fatalf("Rewrite = %v, %v; want true, nil", changed, err)
			}
			if err := verifyChecksums(got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOtherProtocols: protocols whose checksums do not cover the
// addresses (GRE, SCTP, ESP, ICMPv4 echo) get the IP header translated only;
// DCCP and UDP-Lite checksum the pseudo header like UDP and are updated.
func TestOtherProtocols(t *testing.T) {
	tbl := plant7(t)
	r := rand.New(rand.NewPCG(19, 20))
	for _, v6 := range []bool{false, true} {
		src, alias, real := engineer, plcAlias, plcReal
		if v6 {
			src, alias, real = engineer6, plcAlias6, plcReal6
		}
		for _, proto := range []uint8{47, 132, 50, 33, 136} {
			f := randomFlow(r, v6, kindUDP)
			f.ipv6Ext, f.ipv4Options = nil, false
			// Build as UDP, then relabel: DCCP and UDP-Lite keep their
			// checksum at byte 6, so it only needs recomputing.
			relabel := func(p []byte) []byte {
				p = bytes.Clone(p)
				at := upperOffset(p)
				if v6 {
					p[6] = proto
				} else {
					p[9] = proto
					fixIPv4HeaderChecksum(p)
				}
				if proto == 33 || proto == 136 {
					seg := p[at:]
					seg[6], seg[7] = 0, 0
					srcB, dstB := p[12:16], p[16:20]
					if v6 {
						srcB, dstB = p[8:24], p[24:40]
					}
					binary.BigEndian.PutUint16(seg[6:], packet.Checksum(seg, packet.PseudoHeaderSum(proto, srcB, dstB, len(seg))))
				}
				return p
			}
			before, after := relabel(build(t, f, src, alias)), relabel(build(t, f, src, real))
			if proto != 33 && proto != 136 {
				after = withDestination(before, real)
			}
			got, changed := rewriteOK(t, tbl, before, nat.ToDevice)
			if !changed || !bytes.Equal(got, after) {
				t.Fatalf("v6=%v protocol %d: changed %v, %s", v6, proto, changed, diff(after, got))
			}
			if err := verifyChecksums(got); err != nil {
				t.Fatalf("v6=%v protocol %d: %v", v6, proto, err)
			}
		}
	}
}

// TestICMPv4EchoChecksumUntouched: the ICMPv4 checksum does not cover the IP
// header, so translating an echo request changes the IP header only.
func TestICMPv4EchoChecksumUntouched(t *testing.T) {
	f := randomFlow(rand.New(rand.NewPCG(21, 22)), false, kindEcho)
	f.ipv4Options = false
	before := build(t, f, engineer, plcAlias)
	got, _ := rewriteOK(t, plant7(t), before, nat.ToDevice)
	if !bytes.Equal(got[20:], before[20:]) {
		t.Fatalf("ICMP message changed: %s", diff(before[20:], got[20:]))
	}
	if p := got[16:20]; !bytes.Equal(p, plcReal.AsSlice()) {
		t.Fatalf("destination %v", p)
	}
}
