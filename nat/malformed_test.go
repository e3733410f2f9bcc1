package nat_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/remotegate/remotegate/nat"
)

// checkContract runs Rewrite on pkt and checks what must hold for any input:
// no panic, no write beyond the packet (the slice's capacity equals its
// length and guard bytes follow it in memory), errors wrap a sentinel and
// leave the packet unchanged, an unchanged result means unchanged bytes, and
// the inverted table undoes a rewrite. It returns the error.
func checkContract(t *testing.T, tbl, inv *nat.Table, pkt []byte, dir nat.Direction) error {
	t.Helper()
	const guard = 32
	buf := make([]byte, len(pkt)+guard)
	copy(buf, pkt)
	for i := len(pkt); i < len(buf); i++ {
		buf[i] = 0xa5
	}
	p := buf[:len(pkt):len(pkt)]
	changed, err := tbl.Rewrite(p, dir)
	for i := len(pkt); i < len(buf); i++ {
		if buf[i] != 0xa5 {
			t.Fatalf("Rewrite wrote beyond the packet at byte %d (packet %x)", i, pkt)
		}
	}
	if err != nil {
		if !errors.Is(err, nat.ErrTruncated) && !errors.Is(err, nat.ErrMalformed) && !errors.Is(err, nat.ErrUnsupported) {
			t.Fatalf("error %q wraps no packet sentinel", err)
		}
		if changed {
			t.Fatalf("Rewrite = true, %v", err)
		}
		if !bytes.Equal(p, pkt) {
			t.Fatalf("Rewrite returned %v but changed the packet: %s\npacket %x", err, diff(pkt, p), pkt)
		}
		return err
	}
	if !changed {
		if !bytes.Equal(p, pkt) {
			t.Fatalf("Rewrite reported no change but changed the packet: %s\npacket %x", diff(pkt, p), pkt)
		}
		return nil
	}
	changed, err = inv.Rewrite(p, dir)
	if err != nil || !changed {
		t.Fatalf("inverse Rewrite = %v, %v; want true, nil (packet %x)", changed, err, pkt)
	}
	if !equalUpToCanonicalZero(pkt, p) {
		t.Fatalf("inverse Rewrite does not restore the packet: %s\npacket %x", diff(pkt, p), pkt)
	}
	return nil
}

// sampleTable maps every test address used below, both ways, with alias and
// real prefixes covering each other so that inverse rewrites match exactly
// the addresses the forward rewrite translated.
func sampleTable(t testing.TB) *nat.Table {
	return mustTable(t,
		mapping("192.168.0.0/24", "10.200.7.0/24"),
		mapping("10.200.7.0/24", "192.168.0.0/24"),
		mapping("fd00:1::/64", "2001:db8:7::/64"),
		mapping("2001:db8:7::/64", "fd00:1::/64"))
}

// samplePackets returns valid packets of every kind, all addressed so that
// sampleTable translates them in both directions.
func samplePackets(t testing.TB) [][]byte {
	r := rand.New(rand.NewPCG(23, 24))
	var out [][]byte
	for _, v6 := range []bool{false, true} {
		a, b := plcAlias, plcReal
		if v6 {
			a, b = plcAlias6, plcReal6
		}
		for kind := range numPayloadKinds {
			for _, ext := range []bool{false, true} {
				f := randomFlow(r, v6, kind)
				f.payload = f.payload[:min(len(f.payload), 24)]
				f.ipv4Options = ext
				f.ipv6Ext = nil
				if ext && v6 {
					f.ipv6Ext = []uint8{0, 43, 44, 60}
				}
				p := build(t, f, a, b)
				out = append(out, p)
				for _, n := range []int{len(p), upperOffset(p) + 8} {
					out = append(out, buildICMPError(t, randomFlow(r, v6, kindEcho), randomICMPError(r, v6), b, a, p[:n]))
				}
			}
		}
	}
	return out
}

// needed returns how many bytes of a sample packet Rewrite needs to see: the
// IP headers, the transport header, and for an ICMP error the quoted IP
// header.
func needed(p []byte) int {
	proto, off := upperLayer(p)
	switch proto {
	case 6:
		return off + 20
	case 17:
		return off + 8
	case 1, 58:
		if typ := p[off]; (proto == 1 && (typ == 3 || typ == 11 || typ == 12)) || (proto == 58 && typ >= 1 && typ <= 4) {
			q := p[off+8:]
			if q[0]>>4 == 4 {
				return off + 8 + int(q[0]&0x0f)*4
			}
			return off + 8 + 40
		}
		return off + 8
	}
	panic(fmt.Sprintf("protocol %d", proto))
}

// setLength makes the IP length field say len(p).
func setLength(p []byte) {
	if p[0]>>4 == 6 {
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		return
	}
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	if int(p[0]&0x0f)*4 <= len(p) {
		fixIPv4HeaderChecksum(p)
	}
}

// TestTruncatedAtEveryLength cuts every sample packet at every length, once
// leaving the IP length field as it was (always ErrTruncated) and once fixing
// it (ErrTruncated exactly when a needed header is cut, else a rewrite).
func TestTruncatedAtEveryLength(t *testing.T) {
	tbl := sampleTable(t)
	inv := tbl.Invert()
	for _, p := range samplePackets(t) {
		need := needed(p)
		for n := range len(p) {
			for _, dir := range []nat.Direction{nat.ToDevice, nat.FromDevice} {
				cut := bytes.Clone(p[:n])
				if err := checkContract(t, tbl, inv, cut, dir); !errors.Is(err, nat.ErrTruncated) {
					t.Fatalf("%x cut at %d: err = %v, want ErrTruncated", p, n, err)
				}
				if _, hl := upperLayer(p); (p[0]>>4 == 6 && n < 40) || (p[0]>>4 == 4 && n < hl) {
					continue // the IP header itself is cut: covered above
				}
				setLength(cut)
				err := checkContract(t, tbl, inv, cut, dir)
				if n < need && !errors.Is(err, nat.ErrTruncated) {
					t.Fatalf("%x cut at %d of %d needed, length fixed: err = %v, want ErrTruncated", p, n, need, err)
				}
				if n >= need && err != nil {
					t.Fatalf("%x cut at %d (%d needed), length fixed: %v", p, n, need, err)
				}
			}
		}
	}
}

func TestMalformed(t *testing.T) {
	tbl := sampleTable(t)
	r := rand.New(rand.NewPCG(25, 26))
	f4 := randomFlow(r, false, kindUDP)
	f4.ipv4Options = false
	udp4 := build(t, f4, engineer, plcAlias)
	f6 := randomFlow(r, true, kindUDP)
	f6.ipv6Ext = nil
	udp6 := build(t, f6, engineer6, plcAlias6)
	icmp4 := func(quote []byte) []byte {
		return buildICMPError(t, randomFlow(r, false, kindEcho), icmpError{3, 1, 0}, routerReal, engineer, quote)
	}
	icmp6 := func(quote []byte) []byte {
		f := randomFlow(r, true, kindEcho)
		f.ipv6Ext = nil
		return buildICMPError(t, f, icmpError{1, 0, 0}, plcReal6, engineer6, quote)
	}
	garbage := make([]byte, 64)
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	garbage[0] = 0x95 // version 9

	edit := func(p []byte, f func([]byte)) []byte {
		p = bytes.Clone(p)
		f(p)
		return p
	}
	withOptions := func(opts ...byte) []byte {
		p := append(append(bytes.Clone(udp4[:20]), opts...), udp4[20:]...)
		p[0] = byte(0x40 | (20+len(opts))/4)
		setLength(p)
		return p
	}
	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, nat.ErrTruncated},
		{"IP version 5", edit(udp4, func(p []byte) { p[0] = 0x55 }), nat.ErrMalformed},
		{"IP version 0", make([]byte, 40), nat.ErrMalformed},
		{"IHL 4", edit(udp4, func(p []byte) { p[0] = 0x44 }), nat.ErrMalformed},
		{"IHL 0", edit(udp4, func(p []byte) { p[0] = 0x40 }), nat.ErrMalformed},
		{"IHL beyond the packet", edit(udp4[:28], func(p []byte) { p[0] = 0x48; setLength(p) }), nat.ErrTruncated},
		{"total length too big", edit(udp4, func(p []byte) { p[3]++ }), nat.ErrTruncated},
		{"total length too small", edit(udp4, func(p []byte) { p[3]-- }), nat.ErrMalformed},
		{"total length below the header", edit(udp4, func(p []byte) { p[2], p[3] = 0, 8 }), nat.ErrMalformed},
		{"trailing bytes", append(bytes.Clone(udp4), 0), nat.ErrMalformed},
		{"IPv6 payload length too big", edit(udp6, func(p []byte) { p[5]++ }), nat.ErrTruncated},
		{"IPv6 payload length too small", edit(udp6, func(p []byte) { p[5]-- }), nat.ErrMalformed},
		{"IPv6 jumbogram", edit(udp6, func(p []byte) { p[4], p[5] = 0, 0 }), nat.ErrMalformed},
		{"IPv6 extension header beyond the packet", ipv6WithHeader(udp6, 60, []byte{0, 255, 1, 4, 0, 0, 0, 0}), nat.ErrTruncated},
		{"IPv4 option without length", withOptions(1, 1, 1, 7), nat.ErrMalformed},
		{"IPv4 option length 1", withOptions(7, 1, 0, 0), nat.ErrMalformed},
		{"IPv4 option beyond the header", withOptions(68, 12, 5, 0), nat.ErrMalformed},
		{"ICMP header cut", edit(icmp4(udp4)[:24], setLength), nat.ErrTruncated},
		{"ICMP error quoting garbage", icmp4(garbage), nat.ErrMalformed},
		{"ICMP error quoting 19 bytes", icmp4(udp4[:19]), nat.ErrTruncated},
		{"ICMP error quoting IHL 3", icmp4(edit(udp4, func(p []byte) { p[0] = 0x43 })), nat.ErrMalformed},
		{"ICMP error quoting IHL 15", icmp4(edit(udp4[:40], func(p []byte) { p[0] = 0x4f })), nat.ErrTruncated},
		{"ICMP error quoting bad options", icmp4(withOptions(7, 9, 4, 0)), nat.ErrMalformed},
		{"ICMP error quoting IPv6", icmp4(udp6), nat.ErrMalformed},
		{"ICMPv6 error quoting IPv4", icmp6(append(bytes.Clone(udp4), make([]byte, 20)...)), nat.ErrMalformed},
		{"ICMPv6 error quoting garbage", icmp6(garbage), nat.ErrMalformed},
		{"ICMPv6 error quoting 39 bytes", icmp6(udp6[:39]), nat.ErrTruncated},
	}
	inv := tbl.Invert()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, dir := range []nat.Direction{nat.ToDevice, nat.FromDevice} {
				err := checkContract(t, tbl, inv, tt.pkt, dir)
				if !errors.Is(err, tt.want) {
					t.Fatalf("%v: err = %v, want %v", dir, err, tt.want)
				}
				t.Logf("%v: %v", dir, err)
			}
		})
	}
}

// TestRandomBytes feeds random bytes, with plausible version and length
// fields, in every protocol, so that most get past the first checks.
func TestRandomBytes(t *testing.T) {
	tbl := sampleTable(t)
	inv := tbl.Invert()
	r := rand.New(rand.NewPCG(27, 28))
	protos := []byte{0, 1, 6, 17, 33, 43, 44, 50, 51, 58, 59, 60, 135, 136}
	for range 30000 {
		p := make([]byte, r.IntN(160))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		if len(p) >= 40 {
			if r.IntN(2) == 0 {
				p[0] = 0x45 + byte(r.IntN(3))
				p[9] = protos[r.IntN(len(protos))]
				copy(p[16:20], plcAlias.AsSlice())
				p[6] &= 0x3f // mostly first fragments
			} else {
				p[0] = 0x60
				p[6] = protos[r.IntN(len(protos))]
				copy(p[24:40], plcAlias6.AsSlice())
			}
			setLength(p)
		}
		checkContract(t, tbl, inv, p, nat.Direction(r.IntN(2)))
	}
}
