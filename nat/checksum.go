package nat

import "encoding/binary"

// Incremental checksum update (RFC 1624, equation 3: HC' = ~(~HC + ~m + m')).
//
// A delta is the ones'-complement sum of ~m + m' over the 16-bit words that
// changed, folded to 16 bits and normalized so that zero is always 0 (never
// 0xffff, the other ones'-complement zero). Normalizing matters twice: a delta
// of 0 lets Rewrite leave a checksum field untouched, and a non-zero delta
// keeps ~HC + delta from being 0, so the updated field is always in canonical
// form (0x0000 rather than 0xffff for zero), which is what a from-scratch
// computation yields and what makes an inverse rewrite restore the bytes.

// normalizeDelta folds an unfolded ones'-complement sum (below 2^32 - 2^16)
// to a delta.
func normalizeDelta(sum uint32) uint32 {
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	if sum == 0xffff {
		return 0
	}
	return sum
}

// updateChecksum applies delta to the 16-bit checksum field at b[0:2] and
// returns the change it made, ~old + new, for a checksum that covers the
// field. zeroMeansNone is for UDP: a field of 0 means the sender computed no
// checksum and stays 0, and a computed 0 is sent as 0xffff (RFC 768).
func updateChecksum(b []byte, delta uint32, zeroMeansNone bool) uint32 {
	if delta == 0 {
		return 0
	}
	old := binary.BigEndian.Uint16(b)
	if zeroMeansNone && old == 0 {
		return 0
	}
	sum := uint32(^old) + delta
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	updated := ^uint16(sum)
	if zeroMeansNone && updated == 0 {
		updated = 0xffff
	}
	binary.BigEndian.PutUint16(b, updated)
	return uint32(^old) + uint32(updated)
}
