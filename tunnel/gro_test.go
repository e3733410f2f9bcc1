package tunnel

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/remotegate/remotegate/internal/packet"
)

// segSpec describes one TCP segment for segment(); zero fields take the
// defaults of a bulk transfer from 10.0.0.1:40000 to 10.0.0.2:5201.
type segSpec struct {
	v6       bool
	seq      uint32
	payload  int
	psh, syn bool
	ttl      uint8
	srcPort  uint16
	tsval    uint32 // TCP timestamp option value
	fragment bool   // IPv4 more-fragments bit
	badSum   bool
}

// segment builds a complete IP packet with gopacket, checksums computed, in
// a buffer with Headroom in front.
func segment(t testing.TB, s segSpec) []byte {
	t.Helper()
	if s.ttl == 0 {
		s.ttl = 64
	}
	if s.srcPort == 0 {
		s.srcPort = 40000
	}
	if s.tsval == 0 {
		s.tsval = 1000
	}
	payload := make([]byte, s.payload)
	for i := range payload {
		payload[i] = byte(s.seq) + byte(i)*7
	}
	ts := make([]byte, 8)
	binary.BigEndian.PutUint32(ts, s.tsval)
	binary.BigEndian.PutUint32(ts[4:], 77)
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(s.srcPort), DstPort: 5201, Seq: s.seq, Ack: 9999,
		ACK: !s.syn, SYN: s.syn, PSH: s.psh, Window: 512,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts},
		},
	}
	var ip gopacket.SerializableLayer
	if s.v6 {
		ip6 := &layers.IPv6{Version: 6, HopLimit: s.ttl, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		_ = tcp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, TTL: s.ttl, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
			Id: uint16(s.seq), SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)}
		if s.fragment {
			ip4.Flags = layers.IPv4MoreFragments
		}
		_ = tcp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	pkt := sb.Bytes()
	if s.badSum {
		pkt[len(pkt)-1] ^= 0xff
	}
	buf := make([]byte, Headroom, Headroom+len(pkt))
	return append(buf, pkt...)
}

// run builds count consecutive full segments starting at seq 1000.
func run(t testing.TB, v6 bool, count, size int) [][]byte {
	var bufs [][]byte
	for i := 0; i < count; i++ {
		bufs = append(bufs, segment(t, segSpec{v6: v6, seq: 1000 + uint32(i*size), payload: size}))
	}
	return bufs
}

// writeAll runs the coalescer over bufs as TUN.Write does and returns the
// writes and how many packets each took.
func writeAll(c *coalescer, bufs [][]byte) (outs [][]byte, counts []int) {
	for i := 0; i < len(bufs); {
		out, n := c.next(bufs[i:], Headroom)
		outs = append(outs, bytes.Clone(out))
		counts = append(counts, n)
		i += n
	}
	return outs, counts
}

func TestCoalesceMergesARun(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		bufs := run(t, v6, 10, 1000)
		// The last segment is short and pushed, as at the end of a write.
		bufs = append(bufs, segment(t, segSpec{v6: v6, seq: 1000 + 10*1000, payload: 300, psh: true}))
		var wantPayload []byte
		originals := make([][]byte, len(bufs))
		for i, b := range bufs {
			originals[i] = bytes.Clone(b[Headroom:])
			p := gopacket.NewPacket(originals[i], firstLayer(v6), gopacket.Default)
			wantPayload = append(wantPayload, p.TransportLayer().LayerPayload()...)
		}
		c := newCoalescer()
		outs, counts := writeAll(c, bufs)
		if len(outs) != 1 || counts[0] != 11 {
			t.Fatalf("v6=%v: %d writes taking %v packets, want one write of 11", v6, len(outs), counts)
		}
		out := outs[0]
		h := parseVnetHdr(out)
		ipLen, wantType := 20, uint8(vnetGSOTCPv4)
		if v6 {
			ipLen, wantType = 40, vnetGSOTCPv6
		}
		want := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: wantType, hdrLen: uint16(ipLen + 32),
			gsoSize: 1000, csumStart: uint16(ipLen), csumOffset: 16}
		if h != want {
			t.Fatalf("v6=%v: virtio-net header %+v, want %+v", v6, h, want)
		}
		pkt := out[vnetHdrLen:]
		if len(pkt) != ipLen+32+len(wantPayload) {
			t.Fatalf("merged packet is %d bytes, want %d", len(pkt), ipLen+32+len(wantPayload))
		}
		// Let the kernel's part happen: complete the checksum, then the
		// packet must decode as one valid TCP segment with all the data.
		if !completeChecksum(pkt, h) {
			t.Fatal("completeChecksum refused the merged packet")
		}
		p := gopacket.NewPacket(pkt, firstLayer(v6), gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("merged packet does not decode: %v", el.Error())
		}
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !bytes.Equal(tcp.Payload, wantPayload) {
			t.Fatal("merged payload differs from the segments' payloads in order")
		}
		if tcp.Seq != 1000 || !tcp.PSH || !tcp.ACK || tcp.Ack != 9999 {
			t.Fatalf("merged TCP header: seq %d PSH %v ACK %v ack %d", tcp.Seq, tcp.PSH, tcp.ACK, tcp.Ack)
		}
		seg := tcpSegment{v6: v6, ipLen: ipLen}
		if !tcpChecksumOK(pkt, seg) {
			t.Fatal("TCP checksum of the merged packet is wrong")
		}
		if !v6 {
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if int(ip.Length) != len(pkt) {
				t.Fatalf("IPv4 total length %d, want %d", ip.Length, len(pkt))
			}
			if packet.Fold(packet.Sum(pkt[:20], 0)) != 0xffff {
				t.Fatal("IPv4 header checksum is wrong")
			}
		} else if ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); int(ip.Length) != len(pkt)-40 {
			t.Fatalf("IPv6 payload length %d, want %d", ip.Length, len(pkt)-40)
		}
		// The callers' packets are untouched past offset.
		for i, b := range bufs {
			if !bytes.Equal(b[Headroom:], originals[i]) {
				t.Fatalf("packet %d was modified", i)
			}
		}
		if c.packets.Load() != 11 || c.writes.Load() != 1 {
			t.Fatalf("counters: %d packets, %d writes", c.packets.Load(), c.writes.Load())
		}
	}
}

func firstLayer(v6 bool) gopacket.Decoder {
	if v6 {
		return layers.LayerTypeIPv6
	}
	return layers.LayerTypeIPv4
}

// TestCoalesceStops lists what must end a run; counts is how many packets
// each write takes.
func TestCoalesceStops(t *testing.T) {
	base := func(i int) segSpec { return segSpec{seq: 1000 + uint32(i)*1000, payload: 1000} }
	with := func(i int, f func(*segSpec)) segSpec { s := base(i); f(&s); return s }
	cases := []struct {
		name   string
		segs   []segSpec
		counts []int
	}{
		{"one packet", []segSpec{base(0)}, []int{1}},
		{"all merge", []segSpec{base(0), base(1), base(2)}, []int{3}},
		{"sequence gap", []segSpec{base(0), base(2), base(3)}, []int{1, 2}},
		{"other flow", []segSpec{base(0), with(1, func(s *segSpec) { s.srcPort = 40001 }), base(2)}, []int{1, 1, 1}},
		{"other TTL", []segSpec{base(0), with(1, func(s *segSpec) { s.ttl = 9 })}, []int{1, 1}},
		{"other options", []segSpec{base(0), with(1, func(s *segSpec) { s.tsval = 1001 })}, []int{1, 1}},
		{"PSH ends a run", []segSpec{with(0, func(s *segSpec) { s.psh = true }), base(1)}, []int{1, 1}},
		{"PSH closes a run", []segSpec{base(0), with(1, func(s *segSpec) { s.psh = true }), base(2)}, []int{2, 1}},
		{"short segment closes a run", []segSpec{base(0), with(1, func(s *segSpec) { s.payload = 500 }),
			{seq: 2500, payload: 1000}}, []int{2, 1}},
		{"larger segment after a smaller", []segSpec{with(0, func(s *segSpec) { s.payload = 500 }), {seq: 1500, payload: 1000}}, []int{1, 1}},
		{"SYN", []segSpec{with(0, func(s *segSpec) { s.syn = true; s.payload = 0 }), base(1)}, []int{1, 1}},
		{"pure ACK", []segSpec{with(0, func(s *segSpec) { s.payload = 0 }), base(0)}, []int{1, 1}},
		{"fragment", []segSpec{with(0, func(s *segSpec) { s.fragment = true }), base(1)}, []int{1, 1}},
		{"bad checksum second", []segSpec{base(0), with(1, func(s *segSpec) { s.badSum = true }), base(2)}, []int{1, 1, 1}},
		{"bad checksum first", []segSpec{with(0, func(s *segSpec) { s.badSum = true }), base(1), base(2)}, []int{1, 2}},
		{"IPv4 then IPv6", []segSpec{base(0), with(1, func(s *segSpec) { s.v6 = true })}, []int{1, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var bufs [][]byte
			for _, s := range tc.segs {
				bufs = append(bufs, segment(t, s))
			}
			originals := make([][]byte, len(bufs))
			for i, b := range bufs {
				originals[i] = bytes.Clone(b[Headroom:])
			}
			outs, counts := writeAll(newCoalescer(), bufs)
			if !equalInts(counts, tc.counts) {
				t.Fatalf("writes take %v packets, want %v", counts, tc.counts)
			}
			// A packet written alone goes out unchanged behind an empty
			// virtio-net header.
			i := 0
			for w, out := range outs {
				if counts[w] == 1 {
					if parseVnetHdr(out) != (vnetHdr{}) || !bytes.Equal(out[vnetHdrLen:], originals[i]) {
						t.Fatalf("write %d: a lone packet was changed", w)
					}
				}
				i += counts[w]
			}
		})
	}
}

func TestCoalesceStaysUnder64K(t *testing.T) {
	bufs := run(t, false, 60, 1400)
	outs, counts := writeAll(newCoalescer(), bufs)
	if len(outs) < 2 {
		t.Fatalf("60 segments of 1400 bytes went out in %d write(s)", len(outs))
	}
	sum := 0
	for i, out := range outs {
		if len(out)-vnetHdrLen > 0xffff {
			t.Fatalf("write %d is %d bytes", i, len(out)-vnetHdrLen)
		}
		sum += counts[i]
	}
	if sum != 60 {
		t.Fatalf("writes took %d packets, want 60", sum)
	}
}

func TestCoalesceSmallOffset(t *testing.T) {
	// With less than vnetHdrLen in front, lone packets are copied.
	b := segment(t, segSpec{seq: 1, payload: 10})[Headroom-4:]
	out, n := newCoalescer().next([][]byte{b}, 4)
	if n != 1 || !bytes.Equal(out[vnetHdrLen:], b[4:]) {
		t.Fatal("lone packet with small offset not written as is")
	}
}

func TestCompleteChecksumRejectsBadOffsets(t *testing.T) {
	pkt := make([]byte, 40)
	for _, h := range []vnetHdr{{csumStart: 41}, {csumStart: 20, csumOffset: 19}, {csumStart: 0xffff, csumOffset: 0xffff}} {
		if completeChecksum(pkt, h) {
			t.Fatalf("completeChecksum accepted %+v for a 40-byte packet", h)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCoalesceAllocs(t *testing.T) {
	bufs := run(t, false, 64, 1448)
	c := newCoalescer()
	if n := testing.AllocsPerRun(50, func() {
		for i := 0; i < len(bufs); {
			_, n := c.next(bufs[i:], Headroom)
			i += n
		}
	}); n != 0 {
		t.Fatalf("coalescing a batch allocates %v times", n)
	}
}

func BenchmarkCoalesce(b *testing.B) {
	bufs := run(b, false, 64, 1448)
	c := newCoalescer()
	b.SetBytes(64 * 1500)
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < len(bufs); {
			_, n := c.next(bufs[i:], Headroom)
			i += n
		}
	}
}

// FuzzCoalesce feeds arbitrary packet batches (each packet prefixed with a
// 2-byte length) through the coalescer: it must not panic, must account for
// every packet, must pass lone packets unchanged, and must produce merged
// packets whose length fields match.
func FuzzCoalesce(f *testing.F) {
	var seed []byte
	for _, b := range append(run(f, false, 3, 100), run(f, true, 2, 50)...) {
		seed = binary.BigEndian.AppendUint16(seed, uint16(len(b)-Headroom))
		seed = append(seed, b[Headroom:]...)
	}
	f.Add(seed)
	f.Add([]byte{0, 1, 0x45})
	f.Fuzz(func(t *testing.T, data []byte) {
		var bufs [][]byte
		for len(data) >= 2 && len(bufs) < 16 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			b := make([]byte, Headroom, Headroom+n)
			bufs = append(bufs, append(b, data[:n]...))
			data = data[n:]
		}
		if len(bufs) == 0 {
			return
		}
		originals := make([][]byte, len(bufs))
		for i, b := range bufs {
			originals[i] = bytes.Clone(b[Headroom:])
		}
		c := newCoalescer()
		for i := 0; i < len(bufs); {
			out, n := c.next(bufs[i:], Headroom)
			if n < 1 || i+n > len(bufs) {
				t.Fatalf("next took %d packets at %d of %d", n, i, len(bufs))
			}
			h := parseVnetHdr(out)
			pkt := out[vnetHdrLen:]
			if n == 1 {
				if h != (vnetHdr{}) || !bytes.Equal(pkt, originals[i]) {
					t.Fatal("lone packet changed")
				}
			} else {
				seg, ok := parseTCPSegment(pkt)
				if !ok || int(h.hdrLen) != seg.ipLen+seg.tcpLen || int(h.gsoSize) != parseLen(t, originals[i]) {
					t.Fatalf("merged packet inconsistent: %+v", h)
				}
				want := 0
				for _, o := range originals[i : i+n] {
					want += parseLen(t, o)
				}
				if seg.payload != want {
					t.Fatalf("merged payload %d bytes, want %d", seg.payload, want)
				}
			}
			i += n
		}
	})
}

func parseLen(t *testing.T, pkt []byte) int {
	s, ok := parseTCPSegment(pkt)
	if !ok {
		t.Fatal("a merged packet was not a candidate")
	}
	return s.payload
}
