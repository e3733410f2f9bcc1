package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"sync"
	"sync/atomic"
)

// Outbound seals the packets of one SA in one direction. Seal is safe for
// concurrent use: each call takes its own sequence number from an atomic
// counter and the AEADs are stateless; the stateful CBC and HMAC
// implementations come from a pool, one per concurrent Seal.
type Outbound struct {
	s     *suite
	spi   uint32
	esn   bool
	limit uint64 // last usable sequence number

	// ivBlock generates AES-CBC IVs: IV = AES-ECB(random per-SA key,
	// sequence number). Distinct inputs under a secret key give outputs an
	// attacker cannot predict, which is what CBC needs (RFC 3602 §3;
	// NIST SP 800-38A appendix C), without a getrandom call per packet and
	// without an error path. The key is independent of the ESP key, so the
	// IVs reveal nothing about the ciphertext blocks.
	ivBlock cipher.Block
	cbc     sync.Pool // *cbcSealer

	seq   atomic.Uint64 // last sequence number handed out
	bytes atomic.Uint64 // ESP bytes sealed
}

// cbcSealer is one Seal call's CBC mode and HMAC.
type cbcSealer struct {
	mode ivBlockMode
	mac  hash.Hash
	hi   [4]byte
	sum  [64]byte
}

// NewOutbound prepares sealing for one SA. Sequence numbers start at 1.
func NewOutbound(p Params) (*Outbound, error) {
	s, err := newSuite(p)
	if err != nil {
		return nil, err
	}
	o := &Outbound{s: s, spi: p.SPI, esn: p.ESN, limit: math.MaxUint32}
	if p.ESN {
		o.limit = math.MaxUint64
	}
	if s.aead == nil {
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			return nil, fmt.Errorf("esp: IV key: %w", err)
		}
		if o.ivBlock, err = aes.NewCipher(k[:]); err != nil {
			return nil, fmt.Errorf("esp: IV key: %w", err)
		}
		o.cbc.New = func() any {
			var zero [aes.BlockSize]byte
			mode, _ := cipher.NewCBCEncrypter(s.block, zero[:]).(ivBlockMode)
			return &cbcSealer{mode: mode, mac: s.newMAC()}
		}
	}
	return o, nil
}

// SPI is the SPI this SA's packets carry.
func (o *Outbound) SPI() uint32 { return o.spi }

// ESN reports whether the SA uses extended sequence numbers.
func (o *Outbound) ESN() bool { return o.esn }

// HeaderLen is the headroom Seal needs in front of the inner packet: SPI,
// sequence number and IV.
func (o *Outbound) HeaderLen() int { return 8 + o.s.ivLen }

// Tailroom is the spare room Seal needs behind the inner packet: the
// largest padding, pad length and next header, and the ICV; for AEAD also
// 24 bytes of scratch for the nonce and AAD (45 in all). It is at most 49,
// within tunnel.Tailroom.
func (o *Outbound) Tailroom() int {
	if o.s.aead != nil {
		return o.s.align - 1 + 2 + o.s.icvLen + aeadScratch
	}
	return o.s.align - 1 + 2 + o.s.icvLen
}

// Sent is the number of sequence numbers used so far, which is also the last
// one sent. Rekey at a soft limit well below 2^32 without ESN: after
// 2^32-1 packets Seal fails with ErrSequenceExhausted.
func (o *Outbound) Sent() uint64 { return min(o.seq.Load(), o.limit) }

// OutboundStats are an Outbound's counters.
type OutboundStats struct {
	Packets uint64 // packets sealed (sequence numbers used)
	Bytes   uint64 // ESP bytes sealed (UDP payload)
}

// Stats may be called concurrently with Seal.
func (o *Outbound) Stats() OutboundStats {
	return OutboundStats{Packets: o.Sent(), Bytes: o.bytes.Load()}
}

// next reserves a sequence number. The counter only grows past the limit by
// failed calls, and 64 bits of those never wrap, so a sequence number (and
// with it an AEAD nonce) is never handed out twice.
func (o *Outbound) next() (uint64, error) {
	seq := o.seq.Add(1)
	if seq > o.limit || seq == 0 {
		return 0, ErrSequenceExhausted
	}
	return seq, nil
}

// Seal encrypts the inner IP packet buf[offset:offset+n] in place and returns
// the ESP packet, the UDP payload to send, as a sub-slice of buf:
//
//	SPI(4) | Seq(4) | IV(8 or 16) | E(inner | pad 1,2,3.. | pad length | next header) | ICV
//
// It needs HeaderLen bytes before offset and Tailroom bytes of capacity after
// offset+n (buf is used up to its capacity), else it fails with ErrBuffer;
// it may overwrite all of them. The next header, 4 or 41, comes from the
// inner packet's version nibble; anything else is ErrNotIP. The AEAD IV is the
// 64-bit sequence number, unique per key as RFC 4106 §3.1 requires.
func (o *Outbound) Seal(buf []byte, offset, n int) ([]byte, error) {
	hdr := 8 + o.s.ivLen
	if offset < hdr || n < 0 || offset > cap(buf) || n > cap(buf)-offset || cap(buf)-offset-n < o.Tailroom() {
		return nil, ErrBuffer
	}
	buf = buf[:cap(buf)]
	if n == 0 {
		return nil, ErrNotIP
	}
	var nh byte
	switch buf[offset] >> 4 {
	case 4:
		nh = NextHeaderIPv4
	case 6:
		nh = NextHeaderIPv6
	default:
		return nil, ErrNotIP
	}
	seq, err := o.next()
	if err != nil {
		return nil, err
	}
	start := offset - hdr
	binary.BigEndian.PutUint32(buf[start:], o.spi)
	binary.BigEndian.PutUint32(buf[start+4:], uint32(seq))

	// Trailer: default padding 1, 2, 3, ... (RFC 4303 §2.4) so that inner,
	// padding, pad length and next header fill whole alignment units.
	pad := (o.s.align - (n+2)%o.s.align) % o.s.align
	t := offset + n
	for i := range pad {
		buf[t+i] = byte(i + 1)
	}
	buf[t+pad] = byte(pad)
	buf[t+pad+1] = nh
	end := t + pad + 2 // end of plaintext

	var pkt []byte
	if o.s.aead != nil {
		iv := buf[offset-aeadIVLen : offset]
		binary.BigEndian.PutUint64(iv, seq)
		scratch := buf[end+aeadICVLen : end+aeadICVLen+aeadScratch]
		nonce := scratch[:12]
		copy(nonce, o.s.salt[:])
		copy(nonce[saltLen:], iv)
		aad := buf[start : start+8]
		if o.esn {
			aad = scratch[12:24]
			binary.BigEndian.PutUint32(aad, o.spi)
			binary.BigEndian.PutUint64(aad[4:], seq)
		}
		o.s.aead.Seal(buf[offset:offset], nonce, buf[offset:end], aad)
		pkt = buf[start : end+aeadICVLen]
	} else {
		iv := buf[offset-aes.BlockSize : offset]
		binary.BigEndian.PutUint64(iv, seq)
		clear(iv[8:])
		o.ivBlock.Encrypt(iv, iv)
		c, _ := o.cbc.Get().(*cbcSealer)
		if c.mode != nil {
			c.mode.SetIV(iv)
			c.mode.CryptBlocks(buf[offset:end], buf[offset:end])
		} else {
			cipher.NewCBCEncrypter(o.s.block, iv).CryptBlocks(buf[offset:end], buf[offset:end])
		}
		// Encrypt-then-MAC over SPI..ciphertext, plus the implicit high
		// half of the sequence number with ESN (RFC 4303 §3.3.2.1).
		c.mac.Reset()
		c.mac.Write(buf[start:end])
		if o.esn {
			binary.BigEndian.PutUint32(c.hi[:], uint32(seq>>32))
			c.mac.Write(c.hi[:])
		}
		copy(buf[end:end+o.s.icvLen], c.mac.Sum(c.sum[:0]))
		o.cbc.Put(c)
		pkt = buf[start : end+o.s.icvLen]
	}
	o.bytes.Add(uint64(len(pkt)))
	return pkt, nil
}
