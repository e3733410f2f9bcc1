package datachannel

import (
	"bytes"
	"errors"
)

// PingMagic is the 16-byte keepalive payload; it is consumed, never
// delivered.
var PingMagic = [16]byte{0x2a, 0x18, 0x7b, 0xf3, 0x64, 0x1e, 0xb4, 0xcb, 0x07, 0xed, 0x2d, 0x0a, 0x98, 0x1f, 0xc7, 0x48}

// OCCMagic starts an OCC message; OCCMagic ‖ 0x06 is OCC_EXIT.
var OCCMagic = [16]byte{0x28, 0x7f, 0x34, 0x6b, 0xd4, 0xef, 0x7a, 0x81, 0x2d, 0x56, 0xb8, 0xd3, 0xaf, 0xc5, 0x45, 0x9c}

const occExit = 6

// IsPing reports whether p is a keepalive.
func IsPing(p []byte) bool { return len(p) == len(PingMagic) && bytes.Equal(p, PingMagic[:]) }

// IsOCCExit reports whether p is an OCC_EXIT (the peer is leaving).
func IsOCCExit(p []byte) bool {
	return len(p) >= len(OCCMagic)+1 && bytes.Equal(p[:len(OCCMagic)], OCCMagic[:]) && p[len(OCCMagic)] == occExit
}

// ErrCompressed is returned by Unframe for a compressed packet: this
// implementation never compresses and cannot decompress.
var ErrCompressed = errors.New("datachannel: compressed packet (compression is not supported)")

// ErrFraming is returned by Unframe for a header byte the framing does not
// know.
var ErrFraming = errors.New("datachannel: bad compression framing byte")

// Compression is the compression framing the peer expects. Nothing is ever
// compressed; the framing only marks packets as uncompressed.
type Compression uint8

const (
	// CompressionNone: no framing (the OpenVPN 2.6 default).
	CompressionNone Compression = iota
	// CompressionStub: "compress" / "compress stub" / "compress lz4": the
	// first byte moves to the end and 0xFB takes its place.
	CompressionStub
	// CompressionLZO: "comp-lzo no": a 0xFA byte in front.
	CompressionLZO
	// CompressionStubV2: "compress stub-v2": nothing, unless the packet
	// starts with 0x50, which is escaped as 0x50 0x00.
	CompressionStubV2
)

const (
	stubSwap         = 0xFB
	lzoNoCompress    = 0xFA
	lzoCompressed    = 0x66
	lz4Compressed    = 0x69
	v2Escape         = 0x50
	v2NoCompressByte = 0x00
)

// FrameHeadroom and FrameTailroom are the bytes Frame may need in front of
// and after the payload. A payload framed and then sealed needs
// FrameHeadroom+SealHeadroom in front and FrameTailroom+SealTailroom behind.
const (
	FrameHeadroom = 2
	FrameTailroom = 1
)

// Frame adds the framing to buf[off:off+n] in place and returns the new
// offset and length; it works up to cap(buf). CompressionLZO uses one byte of
// headroom, the CompressionStubV2 escape two, CompressionStub one byte of
// tailroom (the first byte moves to the end). If buf lacks that room, or off
// and n do not describe a range of buf, Frame changes nothing and returns
// newN = -1, which Seal rejects with ErrBuffer. Unknown values frame like
// CompressionNone.
func (c Compression) Frame(buf []byte, off, n int) (newOff, newN int) {
	if off < 0 || n < 0 || off > cap(buf) || n > cap(buf)-off {
		return off, -1
	}
	buf = buf[:cap(buf)]
	switch c {
	case CompressionStub:
		if off+n >= len(buf) {
			return off, -1
		}
		if n == 0 {
			buf[off] = stubSwap
			return off, 1
		}
		buf[off+n] = buf[off]
		buf[off] = stubSwap
		return off, n + 1
	case CompressionLZO:
		if off < 1 {
			return off, -1
		}
		buf[off-1] = lzoNoCompress
		return off - 1, n + 1
	case CompressionStubV2:
		if n > 0 && buf[off] == v2Escape {
			if off < 2 {
				return off, -1
			}
			buf[off-2], buf[off-1] = v2Escape, v2NoCompressByte
			return off - 2, n + 2
		}
	}
	return off, n
}

// Unframe removes the framing from a decrypted payload and returns the
// packet, which aliases p (the stub swap is undone in place). It returns
// ErrCompressed for a packet the peer compressed, which this package cannot
// decompress, and ErrFraming for a header byte the framing does not define.
// In stub mode it also accepts the 0xFA "not compressed" byte of comp-lzo, as
// OpenVPN's stub does.
func (c Compression) Unframe(p []byte) ([]byte, error) {
	switch c {
	case CompressionStub:
		if len(p) == 0 {
			return nil, ErrFraming
		}
		switch p[0] {
		case stubSwap:
			if len(p) == 1 {
				return p[:0], nil
			}
			p[0] = p[len(p)-1]
			return p[:len(p)-1], nil
		case lz4Compressed, lzoCompressed:
			return nil, ErrCompressed
		case lzoNoCompress:
			return p[1:], nil
		}
		return nil, ErrFraming
	case CompressionLZO:
		if len(p) == 0 {
			return nil, ErrFraming
		}
		switch p[0] {
		case lzoNoCompress:
			return p[1:], nil
		case lzoCompressed:
			return nil, ErrCompressed
		}
		return nil, ErrFraming
	case CompressionStubV2:
		if len(p) >= 2 && p[0] == v2Escape {
			if p[1] == v2NoCompressByte {
				return p[2:], nil
			}
			return nil, ErrCompressed
		}
	}
	return p, nil
}
