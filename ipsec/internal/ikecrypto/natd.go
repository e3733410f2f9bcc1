package ikecrypto

import (
	"crypto/sha1"
	"encoding/binary"
	"net/netip"
)

// NATDetectionHash is the data of a NAT_DETECTION_SOURCE_IP or
// _DESTINATION_IP notify (RFC 7296 §2.23):
//
//	SHA-1(SPIi | SPIr | IP address | port)
//
// with the SPIs as on the wire (SPIr zero in an IKE_SA_INIT request), an
// IPv4 address as 4 bytes even when Go holds it IPv4-mapped (peers hash 4
// bytes; hashing 16 would make every NAT check fail), and the port in
// network byte order. The zone is not part of the hash.
func NATDetectionHash(spii, spir [8]byte, ap netip.AddrPort) [20]byte {
	var buf [8 + 8 + 16 + 2]byte
	b := append(buf[:0], spii[:]...)
	b = append(b, spir[:]...)
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		a := ip.As4()
		b = append(b, a[:]...)
	} else {
		a := ip.As16()
		b = append(b, a[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, ap.Port())
	return sha1.Sum(b)
}
