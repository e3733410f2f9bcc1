package packet

import (
	"encoding/binary"
	"math/bits"
)

// Sum adds b to the ones'-complement sum initial and returns the unfolded
// result. Chain calls to sum discontiguous pieces; only the last piece may have
// odd length. Fold turns the result into the 16-bit checksum field value.
//
// The loop adds 64-bit little-endian words with end-around carry and swaps
// bytes once at the end: the ones'-complement sum is independent of byte order
// (RFC 1071, section 2(B)), and wide words make it several times faster than
// adding 16-bit words.
func Sum(b []byte, initial uint64) uint64 {
	var acc, carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b), carry)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.LittleEndian.Uint32(b)), carry)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b)), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0]), carry)
	}
	acc, carry = bits.Add64(acc, 0, carry)
	acc += carry
	// Fold to 16 bits in little-endian order, then swap into network order
	// and add to the caller's big-endian sum.
	le := fold(acc)
	be := uint64(bits.ReverseBytes16(le))
	total, c := bits.Add64(initial, be, 0)
	return total + c
}

func fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// Fold reduces an unfolded sum to 16 bits. The checksum field of a packet is
// ^Fold(sum); a packet whose sum over header and data, checksum field
// included, folds to 0xffff is intact.
func Fold(sum uint64) uint16 { return fold(sum) }

// Checksum is the Internet checksum of b: the value for a checksum field that
// was zero while b was summed.
func Checksum(b []byte, initial uint64) uint16 { return ^fold(Sum(b, initial)) }

// PseudoHeaderSum is the unfolded sum of the TCP/UDP pseudo header (RFC 793,
// RFC 8200 section 8.1): source and destination address (4 or 16 bytes
// each), protocol number and the transport length.
func PseudoHeaderSum(proto uint8, src, dst []byte, length int) uint64 {
	s := Sum(src, 0)
	s = Sum(dst, s)
	return s + uint64(proto) + uint64(length)
}
