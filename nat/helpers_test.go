package nat_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/remotegate/remotegate/internal/packet"
	"github.com/remotegate/remotegate/nat"
)

// This file builds test packets with gopacket, which computes every checksum
// from scratch, and checks checksums independently with internal/packet.

// payloadKind is what a generated packet carries.
type payloadKind int

const (
	kindTCP payloadKind = iota
	kindUDP
	kindUDPNoChecksum // UDP with checksum 0 ("none")
	kindEcho          // ICMP or ICMPv6 echo request
	numPayloadKinds
)

func (k payloadKind) String() string {
	return [...]string{"TCP", "UDP", "UDP-no-checksum", "echo"}[k]
}

// flow holds everything about a packet except its addresses, so that the same
// packet can be built once with alias and once with real addresses.
type flow struct {
	v6      bool
	kind    payloadKind
	srcPort uint16
	dstPort uint16
	seq     uint32
	id      uint16
	ttl     uint8
	payload []byte
	// ipv4Options adds a NOP and a Record Route option (IHL 7).
	ipv4Options bool
	// ipv6Ext lists extension header types (0, 43, 44, 60) placed before the
	// upper-layer header.
	ipv6Ext []uint8
}

func randomFlow(r *rand.Rand, v6 bool, kind payloadKind) flow {
	f := flow{
		v6:      v6,
		kind:    kind,
		srcPort: uint16(r.Uint32()),
		dstPort: uint16(r.Uint32()),
		seq:     r.Uint32(),
		id:      uint16(r.Uint32()),
		ttl:     uint8(1 + r.IntN(255)),
	}
	n := r.IntN(200)
	if r.IntN(8) == 0 {
		n = 1400
	}
	f.payload = make([]byte, n)
	for i := range f.payload {
		f.payload[i] = byte(r.Uint32())
	}
	if v6 {
		exts := []uint8{0, 60, 43, 44}
		for i := r.IntN(4); i > 0; i-- {
			f.ipv6Ext = append(f.ipv6Ext, exts[r.IntN(len(exts))])
		}
	} else {
		f.ipv4Options = r.IntN(6) == 0
	}
	return f
}

var serializeOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, serializeOpts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return bytes.Clone(buf.Bytes())
}

// networkLayer returns the IP layer for src and dst and the layer that
// carries the extension headers (nil if none).
func networkLayer(f flow, src, dst netip.Addr, upper layers.IPProtocol) (ip gopacket.NetworkLayer, ext gopacket.SerializableLayer) {
	if !f.v6 {
		ip4 := &layers.IPv4{
			Version: 4, TTL: f.ttl, Id: f.id, Protocol: upper,
			SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice()),
		}
		if f.ipv4Options {
			ip4.Options = []layers.IPv4Option{
				{OptionType: 1},
				{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}},
			}
		}
		return ip4, nil
	}
	ip6 := &layers.IPv6{
		Version: 6, HopLimit: f.ttl, FlowLabel: uint32(f.id), NextHeader: upper,
		SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice()),
	}
	if len(f.ipv6Ext) == 0 {
		return ip6, nil
	}
	ip6.NextHeader = layers.IPProtocol(f.ipv6Ext[0])
	var raw []byte
	for i, typ := range f.ipv6Ext {
		next := uint8(upper)
		if i+1 < len(f.ipv6Ext) {
			next = f.ipv6Ext[i+1]
		}
		h := make([]byte, 8)
		h[0] = next
		switch typ {
		case 0, 60: // PadN option filling the header
			h[2], h[3] = 1, 4
		case 43: // Routing type 0 with no segments left
		case 44: // atomic fragment: offset 0, M clear
			binary.BigEndian.PutUint32(h[4:], uint32(f.id)<<8|uint32(f.ttl))
		}
		raw = append(raw, h...)
	}
	return ip6, gopacket.Payload(raw)
}

func layersOf(ip gopacket.NetworkLayer, ext gopacket.SerializableLayer, rest ...gopacket.SerializableLayer) []gopacket.SerializableLayer {
	ls := []gopacket.SerializableLayer{ip.(gopacket.SerializableLayer)}
	if ext != nil {
		ls = append(ls, ext)
	}
	return append(ls, rest...)
}

// build returns f as a whole IP packet from src to dst.
func build(t testing.TB, f flow, src, dst netip.Addr) []byte {
	t.Helper()
	payload := gopacket.Payload(f.payload)
	switch f.kind {
	case kindTCP:
		ip, ext := networkLayer(f, src, dst, layers.IPProtocolTCP)
		tcp := &layers.TCP{
			SrcPort: layers.TCPPort(f.srcPort), DstPort: layers.TCPPort(f.dstPort),
			Seq: f.seq, Ack: ^f.seq, ACK: true, PSH: true, Window: 65535,
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return serialize(t, layersOf(ip, ext, tcp, payload)...)
	case kindUDP, kindUDPNoChecksum:
		ip, ext := networkLayer(f, src, dst, layers.IPProtocolUDP)
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.srcPort), DstPort: layers.UDPPort(f.dstPort)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		pkt := serialize(t, layersOf(ip, ext, udp, payload)...)
		at := udpChecksumOffset(pkt)
		switch {
		case f.kind == kindUDPNoChecksum:
			pkt[at], pkt[at+1] = 0, 0
		case pkt[at] == 0 && pkt[at+1] == 0:
			// gopacket sends a computed 0 as 0, which means "no
			// checksum"; RFC 768 says 0xffff.
			pkt[at], pkt[at+1] = 0xff, 0xff
		}
		return pkt
	case kindEcho:
		if !f.v6 {
			ip, _ := networkLayer(f, src, dst, layers.IPProtocolICMPv4)
			icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: f.srcPort, Seq: f.dstPort}
			return serialize(t, layersOf(ip, nil, icmp, payload)...)
		}
		ip, ext := networkLayer(f, src, dst, layers.IPProtocolICMPv6)
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		echo := &layers.ICMPv6Echo{Identifier: f.srcPort, SeqNumber: f.dstPort}
		return serialize(t, layersOf(ip, ext, icmp, echo, payload)...)
	}
	t.Fatalf("unknown kind %d", f.kind)
	return nil
}

// upperLayer returns the upper-layer protocol and its offset in a packet
// built by build (walking the extension headers it uses).
func upperLayer(pkt []byte) (proto uint8, off int) {
	if pkt[0]>>4 == 4 {
		return pkt[9], int(pkt[0]&0x0f) * 4
	}
	next, off := pkt[6], 40
	for next == 0 || next == 43 || next == 44 || next == 60 {
		next, off = pkt[off], off+(int(pkt[off+1])+1)*8
	}
	return next, off
}

func upperOffset(pkt []byte) int {
	_, off := upperLayer(pkt)
	return off
}

func udpChecksumOffset(pkt []byte) int { return upperOffset(pkt) + 6 }

// transportChecksumOffset returns where the checksum that covers the pseudo
// header sits in a packet built by build, or -1 (ICMPv4 echo).
func transportChecksumOffset(pkt []byte, kind payloadKind) int {
	switch kind {
	case kindTCP:
		return upperOffset(pkt) + 16
	case kindUDP, kindUDPNoChecksum:
		return upperOffset(pkt) + 6
	case kindEcho:
		if pkt[0]>>4 == 6 {
			return upperOffset(pkt) + 2
		}
	}
	return -1
}

// icmpError describes an ICMP error message around a quote.
type icmpError struct {
	typ, code uint8
	word      uint32 // bytes 4 to 7: unused, MTU or pointer
}

func randomICMPError(r *rand.Rand, v6 bool) icmpError {
	if v6 {
		return []icmpError{{1, 4, 0}, {2, 0, 1280}, {3, 0, 0}, {4, 0, 40}}[r.IntN(4)]
	}
	return []icmpError{{3, 3, 0}, {3, 4, 1400}, {11, 0, 0}, {12, 0, 0}}[r.IntN(4)]
}

// buildICMPError returns an ICMP error from src to dst quoting quote. f
// supplies the outer IP header fields.
func buildICMPError(t testing.TB, f flow, e icmpError, src, dst netip.Addr, quote []byte) []byte {
	t.Helper()
	if !f.v6 {
		ip, _ := networkLayer(f, src, dst, layers.IPProtocolICMPv4)
		icmp := &layers.ICMPv4{
			TypeCode: layers.CreateICMPv4TypeCode(e.typ, e.code),
			Id:       uint16(e.word >> 16), Seq: uint16(e.word),
		}
		return serialize(t, layersOf(ip, nil, icmp, gopacket.Payload(quote))...)
	}
	ip, ext := networkLayer(f, src, dst, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(e.typ, e.code)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	body := binary.BigEndian.AppendUint32(nil, e.word)
	return serialize(t, layersOf(ip, ext, icmp, gopacket.Payload(append(body, quote...)))...)
}

// verifyChecksums recomputes from scratch, with internal/packet, every
// checksum of pkt that can be recomputed: the IPv4 header checksum, the
// transport or ICMP checksum of a whole packet, and in an ICMP error the
// quoted IPv4 header checksum and, if the quote is complete, the quoted
// transport checksum.
func verifyChecksums(pkt []byte) error {
	return verifyPacket(pkt, false)
}

func verifyPacket(pkt []byte, quoted bool) error {
	v6 := pkt[0]>>4 == 6
	var src, dst []byte
	var whole bool
	if v6 {
		src, dst = pkt[8:24], pkt[24:40]
		whole = 40+int(binary.BigEndian.Uint16(pkt[4:])) == len(pkt)
	} else {
		src, dst = pkt[12:16], pkt[16:20]
		if got := packet.Fold(packet.Sum(pkt[:int(pkt[0]&0x0f)*4], 0)); got != 0xffff {
			return fmt.Errorf("IPv4 header checksum wrong (sum %#04x)", got)
		}
		whole = int(binary.BigEndian.Uint16(pkt[2:])) == len(pkt)
	}
	if !whole {
		if quoted {
			return nil // truncated quote: the transport checksum covers missing bytes
		}
		return fmt.Errorf("length field does not match %d bytes", len(pkt))
	}
	proto, upper := upperLayer(pkt)
	seg := pkt[upper:]
	switch proto {
	case 6, 17, 33, 136, 58:
		if proto == 58 && !v6 {
			return nil
		}
		if proto == 17 && binary.BigEndian.Uint16(seg[6:]) == 0 {
			break // no checksum
		}
		sum := packet.PseudoHeaderSum(proto, src, dst, len(seg))
		if got := packet.Fold(packet.Sum(seg, sum)); got != 0xffff {
			return fmt.Errorf("protocol %d checksum wrong (sum %#04x)", proto, got)
		}
	case 1:
		if got := packet.Fold(packet.Sum(seg, 0)); got != 0xffff {
			return fmt.Errorf("ICMP checksum wrong (sum %#04x)", got)
		}
	}
	if !quoted && ((proto == 1 && !v6 && (seg[0] == 3 || seg[0] == 11 || seg[0] == 12)) ||
		(proto == 58 && v6 && seg[0] >= 1 && seg[0] <= 4)) {
		if err := verifyPacket(seg[8:], true); err != nil {
			return fmt.Errorf("quoted packet: %w", err)
		}
	}
	return nil
}

// equalUpToCanonicalZero reports whether got equals want except that a
// 16-bit word at an even offset may read 0x0000 in got where want has
// 0xffff: the two ones'-complement zeros, which Rewrite writes canonically.
func equalUpToCanonicalZero(want, got []byte) bool {
	if len(want) != len(got) {
		return false
	}
	for i := 0; i < len(want); i++ {
		if want[i] == got[i] {
			continue
		}
		w := i &^ 1
		if w+1 >= len(want) || want[w] != 0xff || want[w+1] != 0xff || got[w] != 0 || got[w+1] != 0 {
			return false
		}
		i = w + 1
	}
	return true
}

// diff describes the first difference between want and got.
func diff(want, got []byte) string {
	if len(want) != len(got) {
		return fmt.Sprintf("length %d, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i] != got[i] {
			lo, hi := max(0, i-4), min(len(want), i+8)
			return fmt.Sprintf("first difference at byte %d: got %s, want %s (from byte %d)",
				i, hex.EncodeToString(got[lo:hi]), hex.EncodeToString(want[lo:hi]), lo)
		}
	}
	return "equal"
}

func mustTable(t testing.TB, mappings ...nat.Mapping) *nat.Table {
	t.Helper()
	tbl, err := nat.NewTable(mappings...)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tbl
}

func mapping(real, alias string) nat.Mapping {
	return nat.Mapping{Real: netip.MustParsePrefix(real), Alias: netip.MustParsePrefix(alias)}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// plant7 is the example table: plant 7's LAN 192.168.0.0/24 as
// 10.200.7.0/24, and its IPv6 LAN as 2001:db8:7::/64.
func plant7(t testing.TB) *nat.Table {
	return mustTable(t,
		mapping("192.168.0.0/24", "10.200.7.0/24"),
		mapping("fd00:1::/64", "2001:db8:7::/64"))
}

// rewriteOK rewrites a copy of pkt and fails the test on error.
func rewriteOK(t testing.TB, tbl *nat.Table, pkt []byte, dir nat.Direction) ([]byte, bool) {
	t.Helper()
	out := bytes.Clone(pkt)
	changed, err := tbl.Rewrite(out, dir)
	if err != nil {
		t.Fatalf("Rewrite(%v): %v", dir, err)
	}
	return out, changed
}
