package udpbatch

import (
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// oobSize is the control buffer of one datagram: room for one IPV6_PKTINFO
// (the larger of the two) with its header, and slack for a message the
// kernel adds that we did not ask for.
const oobSize = 64

// enablePktinfo asks the kernel to report each datagram's destination
// address: IP_PKTINFO on an IPv4 socket, IPV6_RECVPKTINFO on an IPv6 one
// (Linux reports IPv4 datagrams of a dual-stack socket there too, as
// v4-mapped addresses). It reports whether that worked.
func enablePktinfo(c *net.UDPConn, v6 bool) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	return err == nil && serr == nil
}

func cmsgAlign(n int) int { return (n + unix.SizeofPtr - 1) &^ (unix.SizeofPtr - 1) }

// parsePktinfo returns the destination address from the control messages
// in oob, or the zero Addr when there is none. It does not allocate.
func parsePktinfo(oob []byte) netip.Addr {
	hdr := cmsgAlign(unix.SizeofCmsghdr)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return netip.Addr{}
		}
		data := oob[hdr:l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr (the header's
			// destination, which is what the client sent to).
			return netip.AddrFrom4([4]byte(data[8:12]))
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: addr, ifindex.
			return netip.AddrFrom16([16]byte(data[:16])).Unmap()
		}
		oob = oob[min(cmsgAlign(l), len(oob)):]
	}
	return netip.Addr{}
}

// putPktinfo writes into oob the control message that makes the kernel send
// from src, in the form the socket's family takes, and returns its length.
// oob must hold oobSize bytes.
func putPktinfo(oob []byte, src netip.Addr, v6 bool) int {
	hdr := cmsgAlign(unix.SizeofCmsghdr)
	clear(oob[:oobSize])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	if !v6 {
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(hdr + unix.SizeofInet4Pktinfo)
		// ifindex 0: the route decides the interface; spec_dst is the
		// source address.
		a := src.As4()
		copy(oob[hdr+4:hdr+8], a[:])
		return cmsgAlign(hdr + unix.SizeofInet4Pktinfo)
	}
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(hdr + unix.SizeofInet6Pktinfo)
	// An IPv4 source on a dual-stack socket goes v4-mapped; Linux takes it
	// for an IPv4 destination.
	a := src.As16()
	copy(oob[hdr:hdr+16], a[:])
	return cmsgAlign(hdr + unix.SizeofInet6Pktinfo)
}
