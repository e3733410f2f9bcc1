package nat

import "errors"

// Errors about packets. Rewrite wraps them with %w and adds what it found, so
// callers can count drops by cause with errors.Is.
var (
	// ErrTruncated reports a packet that ends before a header that Rewrite
	// needs, or whose IP length field claims more bytes than the packet has.
	ErrTruncated = errors.New("nat: truncated packet")
	// ErrMalformed reports a header that cannot be right: a wrong IP version,
	// an IPv4 header length below 20 bytes, a length field that disagrees
	// with the packet, broken IPv4 options, or an ICMP error that does not
	// quote a packet of its own address family.
	ErrMalformed = errors.New("nat: malformed packet")
	// ErrUnsupported reports a packet that needs an address translated but
	// that a translation would break: IPsec AH (it authenticates the
	// addresses), a source route or IPv6 Routing header that still has hops to
	// visit (the transport checksum then covers the final destination, not
	// the translated field), and IPv6 Mobility and HIP headers (their checksums
	// cover the addresses and Rewrite does not update them).
	ErrUnsupported = errors.New("nat: unsupported packet")
	// ErrInvalidDirection reports a Direction other than ToDevice and
	// FromDevice.
	ErrInvalidDirection = errors.New("nat: invalid direction")
)

// Errors about tables and indexes, returned wrapped by NewTable and NewIndex
// with the offending mapping or device named.
var (
	// ErrInvalidPrefix reports a zero (unset) netip.Prefix.
	ErrInvalidPrefix = errors.New("nat: invalid prefix")
	// ErrFamilyMismatch reports a mapping between an IPv4 and an IPv6 prefix.
	ErrFamilyMismatch = errors.New("nat: real and alias prefixes differ in address family")
	// ErrLengthMismatch reports a mapping between prefixes of different
	// lengths: a 1:1 mapping needs the same number of host bits on both sides.
	ErrLengthMismatch = errors.New("nat: real and alias prefixes differ in length")
	// ErrNotMasked reports a prefix with bits set after its length, such as
	// 192.168.0.1/24; the error names the masked prefix that was probably
	// meant.
	ErrNotMasked = errors.New("nat: prefix has host bits set")
	// ErrOverlap reports two alias prefixes that overlap (in one table or
	// across the devices of an Index), or two real prefixes of one table that
	// overlap: either would make a translation ambiguous.
	ErrOverlap = errors.New("nat: overlapping prefixes")
	// ErrNilTable reports a nil *Table, passed to NewIndex or used as a
	// receiver.
	ErrNilTable = errors.New("nat: nil table")
)
