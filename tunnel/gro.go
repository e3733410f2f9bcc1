package tunnel

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"

	"github.com/remotegate/remotegate/internal/packet"
)

// The virtio-net header that a TUN device opened with IFF_VNET_HDR puts in
// front of every packet (struct virtio_net_hdr in
// include/uapi/linux/virtio_net.h; native byte order for a TUN device).
const (
	vnetHdrLen = 10

	vnetFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM

	vnetGSONone  = 0 // VIRTIO_NET_HDR_GSO_NONE
	vnetGSOTCPv4 = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	vnetGSOTCPv6 = 4 // VIRTIO_NET_HDR_GSO_TCPV6
)

type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

func (h vnetHdr) put(b []byte) {
	b[0] = h.flags
	b[1] = h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

func parseVnetHdr(b []byte) vnetHdr {
	return vnetHdr{
		flags:      b[0],
		gsoType:    b[1],
		hdrLen:     binary.NativeEndian.Uint16(b[2:]),
		gsoSize:    binary.NativeEndian.Uint16(b[4:]),
		csumStart:  binary.NativeEndian.Uint16(b[6:]),
		csumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

const (
	tcpFlagPSH = 0x08
	tcpFlagACK = 0x10

	ipProtoTCP = 6

	// maxCoalesced bounds a coalesced packet: the IPv4 total length and the
	// IPv6 payload length are 16-bit fields.
	maxCoalesced = 0xffff + 40
)

// tcpSegment is what coalescing needs to know about a TCP packet.
type tcpSegment struct {
	v6      bool
	ipLen   int // IP header length
	tcpLen  int // TCP header length, options included
	seq     uint32
	psh     bool
	payload int
}

// parseTCPSegment reports whether pkt may take part in coalescing: an IPv4
// packet without options or fragmentation, or an IPv6 packet without
// extension headers, carrying a TCP segment with data whose only flags are
// ACK, and PSH on the last. Everything else (SYN, FIN, RST, URG, ECN signals,
// pure ACKs) passes through unchanged, as the kernel's own GRO does.
func parseTCPSegment(pkt []byte) (tcpSegment, bool) {
	var s tcpSegment
	if len(pkt) < 40 {
		return s, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if pkt[0] != 0x45 || pkt[9] != ipProtoTCP ||
			int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) ||
			binary.BigEndian.Uint16(pkt[6:])&^0x4000 != 0 { // only DF may be set
			return s, false
		}
		s.ipLen = 20
	case 6:
		if len(pkt) < 60 || pkt[6] != ipProtoTCP ||
			int(binary.BigEndian.Uint16(pkt[4:])) != len(pkt)-40 {
			return s, false
		}
		s.v6 = true
		s.ipLen = 40
	default:
		return s, false
	}
	tcp := pkt[s.ipLen:]
	s.tcpLen = int(tcp[12]>>4) * 4
	if s.tcpLen < 20 || len(tcp) < s.tcpLen || tcp[12]&0x0f != 0 {
		return s, false
	}
	switch tcp[13] {
	case tcpFlagACK:
	case tcpFlagACK | tcpFlagPSH:
		s.psh = true
	default:
		return s, false
	}
	s.payload = len(tcp) - s.tcpLen
	if s.payload == 0 {
		return s, false
	}
	s.seq = binary.BigEndian.Uint32(tcp[4:])
	return s, true
}

// sameFlow reports whether b may follow a in one coalesced packet: every
// header field is equal except those that differ between segments of one
// send (IPv4 total length, identification and header checksum, IPv6 payload
// length, TCP sequence number, checksum and the PSH flag). Both were accepted
// by parseTCPSegment with equal header lengths.
func sameFlow(a, b []byte, s tcpSegment) bool {
	if s.v6 {
		// Version, traffic class, flow label; next header, hop limit; addresses.
		if !bytes.Equal(a[0:4], b[0:4]) || a[6] != b[6] || a[7] != b[7] || !bytes.Equal(a[8:40], b[8:40]) {
			return false
		}
	} else {
		// TOS; flags; TTL, protocol; addresses.
		if a[1] != b[1] || a[6] != b[6] || a[8] != b[8] || a[9] != b[9] || !bytes.Equal(a[12:20], b[12:20]) {
			return false
		}
	}
	ta, tb := a[s.ipLen:s.ipLen+s.tcpLen], b[s.ipLen:s.ipLen+s.tcpLen]
	return bytes.Equal(ta[0:4], tb[0:4]) && // ports
		bytes.Equal(ta[8:13], tb[8:13]) && // acknowledgment number, data offset
		ta[13]&^tcpFlagPSH == tb[13]&^tcpFlagPSH &&
		bytes.Equal(ta[14:16], tb[14:16]) && // window
		bytes.Equal(ta[18:], tb[18:]) // urgent pointer, options
}

// addrs returns the source and destination address of a parsed packet.
func addrs(pkt []byte, s tcpSegment) (src, dst []byte) {
	if s.v6 {
		return pkt[8:24], pkt[24:40]
	}
	return pkt[12:16], pkt[16:20]
}

// tcpChecksumOK verifies the TCP checksum of a parsed packet. Coalesced
// packets reach the kernel with CHECKSUM_PARTIAL, which it does not verify,
// so a segment that was corrupted before it was encrypted at the far end
// must be caught here.
func tcpChecksumOK(pkt []byte, s tcpSegment) bool {
	src, dst := addrs(pkt, s)
	sum := packet.PseudoHeaderSum(ipProtoTCP, src, dst, len(pkt)-s.ipLen)
	return packet.Fold(packet.Sum(pkt[s.ipLen:], sum)) == 0xffff
}

// coalescer merges runs of consecutive TCP segments of one flow into one
// large packet with a GSO virtio-net header, so that the kernel's TCP stack
// handles one packet where it would have handled up to 45: the receive-side
// offload (GRO) that a NIC driver does, done for the TUN device. Only
// consecutive packets are merged, so the order of packets is never changed.
type coalescer struct {
	buf []byte // vnetHdrLen + maxCoalesced

	packets, writes atomic.Uint64 // read by TUN.Stats from other goroutines
}

func newCoalescer() *coalescer {
	return &coalescer{buf: make([]byte, vnetHdrLen+maxCoalesced)}
}

// next returns what to write to the TUN device for bufs[0][offset:] and as
// many of the packets after it as can be merged with it, and how many
// packets that is. The returned slice starts with the virtio-net header; it
// aliases either c's buffer or bufs[0], whose vnetHdrLen bytes before offset
// it overwrites.
func (c *coalescer) next(bufs [][]byte, offset int) ([]byte, int) {
	first := bufs[0][offset:]
	n := 1
	seg, ok := parseTCPSegment(first)
	total := len(first)
	if ok && len(bufs) > 1 {
		n, total = c.merge(bufs, offset, first, seg)
	}
	c.writes.Add(1)
	c.packets.Add(uint64(n))
	if n > 1 {
		c.finish(seg, total)
		return c.buf[:vnetHdrLen+total], n
	}
	if offset >= vnetHdrLen {
		out := bufs[0][offset-vnetHdrLen:]
		vnetHdr{}.put(out)
		return out, 1
	}
	vnetHdr{}.put(c.buf)
	return c.buf[:vnetHdrLen+copy(c.buf[vnetHdrLen:], first)], 1
}

// merge copies first and the packets that can follow it into c.buf (after
// the virtio-net header) and returns how many packets it took and the length
// of the merged packet.
func (c *coalescer) merge(bufs [][]byte, offset int, first []byte, seg tcpSegment) (n, total int) {
	gsoSize := seg.payload
	total = len(first)
	nextSeq := seg.seq + uint32(seg.payload)
	last := seg
	n = 1
	for n < len(bufs) && !last.psh && last.payload == gsoSize {
		pkt := bufs[n][offset:]
		s, ok := parseTCPSegment(pkt)
		if !ok || s.v6 != seg.v6 || s.tcpLen != seg.tcpLen || s.seq != nextSeq ||
			s.payload > gsoSize || total+s.payload > maxCoalesced ||
			!sameFlow(first, pkt, seg) || !tcpChecksumOK(pkt, s) {
			break
		}
		if n == 1 {
			if !tcpChecksumOK(first, seg) {
				return 1, total
			}
			copy(c.buf[vnetHdrLen:], first)
		}
		total += copy(c.buf[vnetHdrLen+total:], pkt[s.ipLen+s.tcpLen:])
		nextSeq += uint32(s.payload)
		last = s
		n++
	}
	if n > 1 && last.psh {
		c.buf[vnetHdrLen+seg.ipLen+13] |= tcpFlagPSH
	}
	return n, total
}

// finish fixes the headers of the merged packet in c.buf and writes the GSO
// virtio-net header in front of it. The TCP checksum field gets the
// pseudo-header sum only: with VIRTIO_NET_HDR_F_NEEDS_CSUM the kernel adds
// the rest when it needs the checksum (CHECKSUM_PARTIAL).
func (c *coalescer) finish(seg tcpSegment, total int) {
	p := c.buf[vnetHdrLen : vnetHdrLen+total]
	h := vnetHdr{
		flags:      vnetFlagNeedsCsum,
		gsoType:    vnetGSOTCPv4,
		hdrLen:     uint16(seg.ipLen + seg.tcpLen),
		gsoSize:    uint16(seg.payload),
		csumStart:  uint16(seg.ipLen),
		csumOffset: 16,
	}
	if seg.v6 {
		h.gsoType = vnetGSOTCPv6
		binary.BigEndian.PutUint16(p[4:], uint16(total-40))
	} else {
		binary.BigEndian.PutUint16(p[2:], uint16(total))
		p[10], p[11] = 0, 0
		binary.BigEndian.PutUint16(p[10:], packet.Checksum(p[:20], 0))
	}
	src, dst := addrs(p, seg)
	binary.BigEndian.PutUint16(p[seg.ipLen+16:], packet.Fold(packet.PseudoHeaderSum(ipProtoTCP, src, dst, total-seg.ipLen)))
	h.put(c.buf)
}

// completeChecksum finishes a packet the kernel handed over with
// VIRTIO_NET_HDR_F_NEEDS_CSUM: the field at csumStart+csumOffset holds the
// pseudo-header sum, and the checksum covers everything from csumStart on.
// It reports false when the header points outside the packet.
func completeChecksum(pkt []byte, h vnetHdr) bool {
	start, field := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)
	if start > len(pkt) || field+2 > len(pkt) {
		return false
	}
	binary.BigEndian.PutUint16(pkt[field:], packet.Checksum(pkt[start:], 0))
	return true
}
