package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"math"
	"sync/atomic"

	"github.com/remotegate/remotegate/internal/replay"
)

// Inbound opens the packets of one SA. Open is not safe for concurrent use
// with itself: it keeps scratch space and the replay window in the Inbound,
// and one socket's receive loop calls it. Stats may be called from any
// goroutine at any time.
type Inbound struct {
	s      *suite
	spi    uint32
	esn    bool
	replay bool

	// CBC+HMAC state, reused by the single opening goroutine.
	mode ivBlockMode
	mac  hash.Hash

	// Scratch for the AEAD nonce and ESN AAD, the ESN high half for the
	// HMAC and the HMAC result: fields rather than locals, because locals
	// passed to the cipher interfaces would escape to the heap.
	nonce [12]byte
	aad   [12]byte
	hi    [4]byte
	sum   [64]byte

	window  replay.Window
	highest uint64 // highest authenticated sequence number

	packets    atomic.Uint64
	bytes      atomic.Uint64
	pubHighest atomic.Uint64
}

// NewInbound prepares opening for one SA. With replayWindow false every
// authentic packet is accepted, duplicates included (RFC 4303 §3.4.3 lets the
// receiver disable anti-replay, e.g. for manually keyed SAs); the highest
// sequence number is still tracked, as ESN needs it.
func NewInbound(p Params, replayWindow bool) (*Inbound, error) {
	s, err := newSuite(p)
	if err != nil {
		return nil, err
	}
	in := &Inbound{s: s, spi: p.SPI, esn: p.ESN, replay: replayWindow}
	if s.aead == nil {
		var zero [aes.BlockSize]byte
		in.mode, _ = cipher.NewCBCDecrypter(s.block, zero[:]).(ivBlockMode)
		in.mac = s.newMAC()
	}
	return in, nil
}

// SPI is the SPI this SA's packets carry (ours, chosen when the SA was
// negotiated).
func (in *Inbound) SPI() uint32 { return in.spi }

// ESN reports whether the SA uses extended sequence numbers.
func (in *Inbound) ESN() bool { return in.esn }

// InboundStats are an Inbound's counters. Only authentic packets count.
type InboundStats struct {
	Packets uint64 // authentic packets, dummy ones and bad trailers included
	Bytes   uint64 // their ESP bytes (UDP payload)
	Highest uint64 // highest authentic sequence number (64 bits with ESN)
}

// Stats may be called concurrently with Open.
func (in *Inbound) Stats() InboundStats {
	return InboundStats{Packets: in.packets.Load(), Bytes: in.bytes.Load(), Highest: in.pubHighest.Load()}
}

// fullSeq reconstructs the 64-bit sequence number from its low half
// (RFC 4303 Appendix A2.2, window width replayWidth): a low half at or above
// the bottom of the window belongs to the window's 2^32 block, one below it
// to the next block. It fails for numbers that would lie before 0 or past
// 2^64-1; both are older or newer than anything a sender can have sent.
// Without ESN the low half is the sequence number.
//
// Only this one guess is tried: the resynchronization of Appendix A3, for a
// sender whose last 2^32-W packets were all lost, is not implemented.
func (in *Inbound) fullSeq(lo uint32) (uint64, bool) {
	if !in.esn {
		return uint64(lo), true
	}
	tl, th := uint32(in.highest), uint32(in.highest>>32)
	bottom := tl - (replayWidth - 1) // wraps when the window spans two blocks
	if tl >= replayWidth-1 {
		if lo >= bottom {
			return uint64(th)<<32 | uint64(lo), true
		}
		if th == math.MaxUint32 {
			return 0, false
		}
		return uint64(th+1)<<32 | uint64(lo), true
	}
	if lo >= bottom {
		if th == 0 {
			return 0, false
		}
		return uint64(th-1)<<32 | uint64(lo), true
	}
	return uint64(th)<<32 | uint64(lo), true
}

// Open authenticates and decrypts pkt, the UDP payload starting at the SPI,
// in place, and returns the inner IP packet as a sub-slice of pkt and the
// next header (4 or 41). Open overwrites pkt, also when it fails.
//
// Steps (RFC 4303 §3.4): length, SPI, ESN reconstruction, replay pre-check
// (duplicates and packets older than the window fail with ErrReplay before
// any cryptography), authentication (AEAD open, or the HMAC compared in
// constant time before decrypting CBC), and only then the sequence number is
// marked seen. With ESN a low half below the window is taken to belong to the
// next 2^32 block (RFC 4303 Appendix A), so a genuinely old packet fails
// with ErrAuthentication instead of ErrReplay. Then the trailer: pad length and the
// default padding bytes (ErrPadding), next header 59 (ErrDummy, to be dropped
// silently) or anything but 4 and 41 (ErrNextHeader), and the inner packet is
// trimmed to its IP length, removing TFC padding (RFC 4303 §2.7); one shorter
// than its IP header says is ErrInnerLength. The trailer checks come after
// authentication, so they tell an attacker nothing.
//
// Every error is one of the sentinels ErrShort, ErrSPI, ErrReplay,
// ErrAuthentication, ErrPadding, ErrDummy, ErrNextHeader and ErrInnerLength;
// with the last three, nextHeader is the packet's next header.
func (in *Inbound) Open(pkt []byte) (inner []byte, nextHeader uint8, err error) {
	hdr := 8 + in.s.ivLen
	icv := in.s.icvLen
	if len(pkt) < hdr+2+icv {
		return nil, 0, ErrShort
	}
	if in.s.aead == nil {
		if ct := len(pkt) - hdr - icv; ct%aes.BlockSize != 0 {
			return nil, 0, ErrShort
		}
	}
	if binary.BigEndian.Uint32(pkt) != in.spi {
		return nil, 0, ErrSPI
	}
	seq, ok := in.fullSeq(binary.BigEndian.Uint32(pkt[4:]))
	if !ok {
		return nil, 0, ErrReplay
	}
	if in.replay {
		// replay.Window only has the marking Check; asking a copy answers
		// "would it be accepted" without touching the real window, for a
		// 264-byte copy instead of the cryptography a replay would cost.
		w := in.window
		if !w.Check(seq) {
			return nil, 0, ErrReplay
		}
	}

	var plain []byte
	if in.s.aead != nil {
		copy(in.nonce[:saltLen], in.s.salt[:])
		copy(in.nonce[saltLen:], pkt[8:hdr])
		aad := pkt[:8]
		if in.esn {
			binary.BigEndian.PutUint32(in.aad[:], in.spi)
			binary.BigEndian.PutUint64(in.aad[4:], seq)
			aad = in.aad[:]
		}
		plain, err = in.s.aead.Open(pkt[hdr:hdr], in.nonce[:], pkt[hdr:], aad)
		if err != nil {
			return nil, 0, ErrAuthentication
		}
	} else {
		end := len(pkt) - icv
		in.mac.Reset()
		in.mac.Write(pkt[:end])
		if in.esn {
			binary.BigEndian.PutUint32(in.hi[:], uint32(seq>>32))
			in.mac.Write(in.hi[:])
		}
		sum := in.mac.Sum(in.sum[:0])
		if subtle.ConstantTimeCompare(sum[:icv], pkt[end:]) != 1 {
			return nil, 0, ErrAuthentication
		}
		plain = pkt[hdr:end]
		if in.mode != nil {
			in.mode.SetIV(pkt[8:hdr])
			in.mode.CryptBlocks(plain, plain)
		} else {
			cipher.NewCBCDecrypter(in.s.block, pkt[8:hdr]).CryptBlocks(plain, plain)
		}
	}

	// Authentic: now the sequence number counts as seen.
	if in.replay && !in.window.Check(seq) {
		return nil, 0, ErrReplay // unreachable: the pre-check saw the same window
	}
	if seq > in.highest {
		in.highest = seq
		in.pubHighest.Store(seq)
	}
	in.packets.Add(1)
	in.bytes.Add(uint64(len(pkt)))

	if len(plain) < 2 {
		return nil, 0, ErrPadding
	}
	padLen := int(plain[len(plain)-2])
	nextHeader = plain[len(plain)-1]
	if padLen > len(plain)-2 {
		return nil, nextHeader, ErrPadding
	}
	payload := plain[:len(plain)-2-padLen]
	// The default padding is 1, 2, 3, ... (RFC 4303 §2.4); the receiver
	// SHOULD check it, and strongSwan sends nothing else.
	for i, b := range plain[len(payload) : len(plain)-2] {
		if b != byte(i+1) {
			return nil, nextHeader, ErrPadding
		}
	}
	switch nextHeader {
	case NextHeaderIPv4:
		return ipv4Inner(payload)
	case NextHeaderIPv6:
		return ipv6Inner(payload)
	case NextHeaderDummy:
		return nil, nextHeader, ErrDummy
	}
	return nil, nextHeader, ErrNextHeader
}

// ipv4Inner trims TFC padding behind an IPv4 packet.
func ipv4Inner(p []byte) ([]byte, uint8, error) {
	if len(p) < 20 {
		return nil, NextHeaderIPv4, ErrInnerLength
	}
	if p[0]>>4 != 4 {
		return nil, NextHeaderIPv4, ErrNextHeader
	}
	total := int(binary.BigEndian.Uint16(p[2:]))
	if ihl := int(p[0]&0x0f) * 4; ihl < 20 || total < ihl || total > len(p) {
		return nil, NextHeaderIPv4, ErrInnerLength
	}
	return p[:total], NextHeaderIPv4, nil
}

// ipv6Inner trims TFC padding behind an IPv6 packet. Jumbograms (payload
// length 0 with a hop-by-hop option) cannot travel in a UDP datagram, so 0
// means a bare header.
func ipv6Inner(p []byte) ([]byte, uint8, error) {
	if len(p) < 40 {
		return nil, NextHeaderIPv6, ErrInnerLength
	}
	if p[0]>>4 != 6 {
		return nil, NextHeaderIPv6, ErrNextHeader
	}
	total := 40 + int(binary.BigEndian.Uint16(p[4:]))
	if total > len(p) {
		return nil, NextHeaderIPv6, ErrInnerLength
	}
	return p[:total], NextHeaderIPv6, nil
}
