// Package nat translates the addresses of IP packets between a device's real
// LAN and the alias under which the broker exposes it: 1:1 prefix NAT.
//
// Many plants use the same machine LAN, say 192.168.0.0/24. To reach several
// of them from one VPN, the broker exposes each device's LAN under a unique
// alias prefix of the same length, say 10.200.7.0/24 for plant 7. An address
// keeps its host bits and swaps its prefix: the PLC at 192.168.0.10 in plant 7
// is 10.200.7.10 to the engineers. A Table holds one device's mappings; an
// Index finds the device (and table) that owns an alias address.
//
// # Directions
//
// Rewrite translates one address field of a packet, chosen by the Direction
// (and, in an ICMP error, one field of the quoted packet, see below):
//
//   - ToDevice: a packet going to the device. Its destination, an alias,
//     becomes the real address. The source is left alone.
//   - FromDevice: a packet coming from the device. Its source, a real address,
//     becomes the alias. The destination is left alone.
//
// An address that no mapping covers is left alone, and a packet with no
// translated address is returned unchanged as (false, nil). Table.Invert
// swaps Real and Alias: rewriting with the inverted table in the same
// Direction undoes a rewrite.
//
// # Checksums
//
// Rewrite updates every checksum that covers a translated address
// incrementally (RFC 1624): the IPv4 header checksum, and the TCP, UDP,
// UDP-Lite, DCCP and ICMPv6 checksums, which cover the IP pseudo header. The
// ICMPv4 checksum does not cover the IP header and changes only when an ICMP
// error's quoted packet changes. Because host bits stay and only prefix bits
// change, the update is the same for every host of a mapping and is computed
// once, in NewTable. A UDP (and UDP-Lite) checksum of 0 means "no checksum"
// and stays 0, in IPv6 too (RFC 6935 allows it for tunnels); a computed 0 is
// written as 0xffff (RFC 768). Checksums are
// never verified: an incremental update keeps a wrong checksum wrong, so the
// receiver still drops a damaged packet. Updated checksums are in canonical
// form, as a sender computing them from scratch would write them.
//
// # ICMP errors
//
// Path-MTU discovery and traceroute rely on ICMP errors reaching the host
// whose packet caused them, and on that host recognizing the packet quoted in
// the error. ICMPv4 destination unreachable, time exceeded and parameter
// problem, and ICMPv6 destination unreachable, packet too big, time exceeded
// and parameter problem quote the offending packet, which travelled the other
// way, so Rewrite translates the opposite address field in the quote:
//
//   - ToDevice: the error goes to a device host about a packet that host sent
//     earlier. The outer destination alias becomes real, and the quoted
//     source, which the outside saw as the alias, becomes real again.
//   - FromDevice: the error comes from the device about a packet that was
//     sent to it. The outer source becomes the alias, and the quoted
//     destination, which reached the device as a real address, becomes the
//     alias again.
//
// The outer and the quoted address are looked up separately: an ICMP error
// that the device's own router emits from an address outside the mapping
// still gets its quote translated. With the quoted address Rewrite updates
// the quoted IPv4 header checksum and the quoted transport checksum, and
// then the outer ICMP checksum, which covers the quote (and, for ICMPv6, the
// outer addresses). The quote may be truncated (RFC 792 quotes only the IP
// header and 8 bytes): its IP header must be complete, but a transport
// checksum that is not wholly quoted (a TCP checksum in an 8-byte quote) is
// left as it is, the outer ICMP checksum then covering only what changed.
// Ports are not translated, so the quoted ports need no change. Other ICMP
// messages (echo, redirect, router and neighbor discovery) are not looked
// into: their addresses in the IP header are translated like any other.
//
// # Fragments and extension headers
//
// The first fragment of a packet (offset 0) is treated like a whole packet:
// it holds the transport header, and an incremental update is right even
// though the checksum covers payload in later fragments. A later fragment
// holds no transport header and gets its IP addresses (and IPv4 header
// checksum) translated only. IPv6 Hop-by-Hop, Routing, Destination Options,
// Fragment and AH headers are walked to find the transport header; ESP and
// "no next header" end the walk, and their packets get their addresses
// translated only. IPv4 options are skipped, after checking that they are
// well formed.
//
// # Errors
//
// Rewrite checks the whole packet before it writes a byte, and a packet it
// reports an error for is left unchanged; it never panics and never reads or
// writes outside the slice. Errors wrap one of:
//
//   - ErrTruncated: the packet ends inside a header Rewrite needs (IP header,
//     IPv6 extension header, TCP/UDP/ICMP header, the quoted IP header of an
//     ICMP error), or the IP length field claims more bytes than there are.
//   - ErrMalformed: an IP version other than 4 or 6, an IPv4 header length
//     below 20, an IP length field claiming fewer bytes than there are (pass
//     exactly one packet per call), broken IPv4 options, or an ICMP error
//     quoting something that is not a packet of its family.
//   - ErrUnsupported: a packet whose translation would break it and so is
//     better dropped than forwarded: IPsec AH (it authenticates the
//     addresses), an IPv4 source route or IPv6 Routing header with hops left
//     when the destination is translated (the transport checksum then covers
//     the final destination, not the translated field), and IPv6 Mobility and
//     HIP headers (they checksum the addresses, which Rewrite does not
//     update). Unsupported features matter only when an address is actually
//     translated; malformed and truncated packets are errors regardless.
//
// NewTable and NewIndex report invalid configurations with ErrInvalidPrefix,
// ErrNotMasked, ErrFamilyMismatch, ErrLengthMismatch, ErrOverlap and
// ErrNilTable, naming the offending mapping or device.
//
// # Concurrency and cost
//
// Tables and indexes are immutable after construction and safe for
// concurrent use. Rewrite and Index.Lookup do not allocate. A table keeps its
// prefixes sorted and looks them up with a linear scan when it holds a few
// and with binary search when it holds many; an Index uses binary search.
package nat
