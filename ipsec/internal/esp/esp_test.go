package esp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"

	"github.com/remotegate/remotegate/tunnel"
	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range testSuites {
		for _, esn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/esn=%v", s.name, esn), func(t *testing.T) {
				o, in := pair(t, s, esn, true)
				require.LessOrEqual(t, o.HeaderLen(), tunnel.Headroom)
				require.LessOrEqual(t, o.Tailroom(), tunnel.Tailroom)
				var seq uint32
				for _, size := range []int{1, 40, 1400, 1500} {
					for _, v6 := range []bool{false, true} {
						var inner []byte
						var wantNH uint8
						switch {
						case v6 && size >= 40:
							inner, wantNH = ipv6Packet(size), NextHeaderIPv6
						case !v6 && size >= 20:
							inner, wantNH = ipv4Packet(size), NextHeaderIPv4
						default:
							continue // a header alone does not fit: see TestTooShortInner
						}
						pkt := seal(t, o, inner)
						seq++
						require.Equal(t, uint32(testSPI), binary.BigEndian.Uint32(pkt))
						require.Equal(t, seq, binary.BigEndian.Uint32(pkt[4:]))
						require.Zero(t, (len(pkt)-o.HeaderLen()-s.integLen/2-icvIfAEAD(s))%s.align(), "ciphertext not aligned")
						require.False(t, bytes.Contains(pkt, inner[20:]), "plaintext visible on the wire")
						got, nh, err := in.Open(pkt)
						require.NoError(t, err)
						require.Equal(t, wantNH, nh)
						require.Equal(t, inner, got)
						require.Equal(t, o.HeaderLen(), cap(pkt)-cap(got), "inner packet not in place")
					}
				}
				require.Equal(t, uint64(seq), o.Sent())
				st := in.Stats()
				require.Equal(t, uint64(seq), st.Packets)
				require.Equal(t, uint64(seq), st.Highest)
				require.Equal(t, o.Stats().Bytes, st.Bytes)
			})
		}
	}
}

func icvIfAEAD(s testSuite) int {
	if s.encr == EncrAESCBC {
		return 0
	}
	return 16
}

// TestTooShortInner: a 1-byte "packet" is sealed (Seal only looks at the
// version nibble) but the receiver refuses it as shorter than an IP header.
func TestTooShortInner(t *testing.T) {
	for _, s := range testSuites {
		o, in := pair(t, s, false, true)
		for _, b := range []byte{0x45, 0x60} {
			_, _, err := in.Open(seal(t, o, []byte{b}))
			require.ErrorIs(t, err, ErrInnerLength, s.name)
		}
	}
}

// TestGCMWireFormat decrypts a sealed packet with crypto/cipher alone, as
// strongSwan would: the notes' captured case, an 84-byte ICMP echo that
// becomes a 120-byte UDP payload.
func TestGCMWireFormat(t *testing.T) {
	for _, esn := range []bool{false, true} {
		s := suiteByName(t, "AES-GCM-256")
		o, _ := pair(t, s, esn, true)
		inner := ipv4Packet(84)
		inner[9] = 1 // ICMP
		pkt := seal(t, o, inner)
		require.Len(t, pkt, 120) // 8 + 8 + (84 + 2 pad + 2) + 16
		require.Equal(t, []byte{0xc1, 0xa2, 0xb3, 0xc4, 0, 0, 0, 1}, pkt[:8])
		require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 1}, pkt[8:16], "IV is the 64-bit sequence number")

		keymat := s.params(esn).EncrKey
		b, err := aes.NewCipher(keymat[:32])
		require.NoError(t, err)
		gcm, err := cipher.NewGCM(b)
		require.NoError(t, err)
		nonce := append(bytes.Clone(keymat[32:]), pkt[8:16]...) // salt | IV
		aad := pkt[:8]                                          // SPI | Seq
		if esn {
			aad = []byte{0xc1, 0xa2, 0xb3, 0xc4, 0, 0, 0, 0, 0, 0, 0, 1} // SPI | SeqHi | SeqLo
		}
		plain, err := gcm.Open(nil, nonce, pkt[16:], aad)
		require.NoError(t, err)
		require.Equal(t, append(bytes.Clone(inner), 1, 2, 2, 4), plain)
	}
}

// TestCBCWireFormat checks ICV coverage (including SeqHi with ESN, RFC 4303
// §3.3.2.1) and CBC encryption with the standard library alone.
func TestCBCWireFormat(t *testing.T) {
	for _, esn := range []bool{false, true} {
		s := suiteByName(t, "AES-CBC-256/SHA256")
		o, _ := pair(t, s, esn, true)
		setSent(o, 1<<32+6) // next is 2^32+7: SeqHi 1 with ESN
		if !esn {
			setSent(o, 6)
		}
		inner := ipv6Packet(100)
		pkt := seal(t, o, inner)
		// 8 + IV 16 + (100 + 10 pad + 2) + 16
		require.Len(t, pkt, 8+16+112+16)
		require.Equal(t, uint32(7), binary.BigEndian.Uint32(pkt[4:]))

		p := s.params(esn)
		mac := hmac.New(sha256.New, p.IntegKey)
		mac.Write(pkt[:len(pkt)-16])
		if esn {
			mac.Write([]byte{0, 0, 0, 1})
		}
		require.Equal(t, mac.Sum(nil)[:16], pkt[len(pkt)-16:])

		b, err := aes.NewCipher(p.EncrKey)
		require.NoError(t, err)
		plain := make([]byte, 112)
		cipher.NewCBCDecrypter(b, pkt[8:24]).CryptBlocks(plain, pkt[24:len(pkt)-16])
		require.Equal(t, append(bytes.Clone(inner), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 41), plain)
	}
}

func TestCBCIVsDiffer(t *testing.T) {
	s := suiteByName(t, "AES-CBC-128/SHA256")
	o, _ := pair(t, s, false, true)
	o2, _ := pair(t, s, false, true)
	seen := map[string]bool{}
	for range 100 {
		for _, ob := range []*Outbound{o, o2} {
			iv := string(seal(t, ob, ipv4Packet(20))[8:24])
			require.False(t, seen[iv], "IV repeated")
			seen[iv] = true
		}
	}
}

// TestIndependentlySealed opens packets built with the standard library
// only (the reverse direction of the wire format tests) and covers every
// trailer outcome.
func TestIndependentlySealed(t *testing.T) {
	v4 := ipv4Packet(60)
	v6 := ipv6Packet(60)
	cases := []struct {
		name      string
		plaintext func(align int) []byte
		want      []byte
		nh        uint8
		err       error
	}{
		{"ipv4", func(a int) []byte { return trailer(v4, a, 4) }, v4, 4, nil},
		{"ipv6", func(a int) []byte { return trailer(v6, a, 41) }, v6, 41, nil},
		{"tfc padded ipv4", func(a int) []byte { return trailer(append(bytes.Clone(v4), make([]byte, 37)...), a, 4) }, v4, 4, nil},
		{"tfc padded ipv6", func(a int) []byte { return trailer(append(bytes.Clone(v6), make([]byte, 300)...), a, 41) }, v6, 41, nil},
		{"dummy", func(a int) []byte { return trailer(nil, a, 59) }, nil, 59, ErrDummy},
		{"dummy with payload", func(a int) []byte { return trailer(pattern(40, 1), a, 59) }, nil, 59, ErrDummy},
		{"udp next header", func(a int) []byte { return trailer(v4, a, 17) }, nil, 17, ErrNextHeader},
		{"ipv6 content as ipv4", func(a int) []byte { return trailer(v6, a, 4) }, nil, 4, ErrNextHeader},
		{"ipv4 content as ipv6", func(a int) []byte { return trailer(v4, a, 41) }, nil, 41, ErrNextHeader},
		{"ipv4 cut short", func(a int) []byte { return trailer(v4[:59], a, 4) }, nil, 4, ErrInnerLength},
		{"ipv6 cut short", func(a int) []byte { return trailer(v6[:59], a, 41) }, nil, 41, ErrInnerLength},
		{"ipv4 shorter than header", func(a int) []byte { return trailer(v4[:19], a, 4) }, nil, 4, ErrInnerLength},
		{"ipv4 bad ihl", func(a int) []byte {
			p := bytes.Clone(v4)
			p[0] = 0x44
			return trailer(p, a, 4)
		}, nil, 4, ErrInnerLength},
		{"ipv4 total below ihl", func(a int) []byte {
			p := bytes.Clone(v4)
			binary.BigEndian.PutUint16(p[2:], 19)
			return trailer(p, a, 4)
		}, nil, 4, ErrInnerLength},
		{"pad length too large", func(a int) []byte {
			p := trailer(v4, a, 4)
			p[len(p)-2] = byte(len(p) - 1)
			return p
		}, nil, 4, ErrPadding},
		{"pad length 255", func(a int) []byte {
			p := trailer(v4, a, 4)
			p[len(p)-2] = 255
			return p
		}, nil, 4, ErrPadding},
		{"non-default padding", func(a int) []byte {
			p := trailerPad(v4, 18, 4)
			p[60+5] = 9
			return p
		}, nil, 4, ErrPadding},
		{"zero padding", func(a int) []byte {
			p := trailerPad(v4, 18, 4)
			clear(p[60 : 60+18])
			return p
		}, nil, 4, ErrPadding},
		{"long default padding", func(a int) []byte { return trailerPad(v4, 210, 4) }, v4, 4, nil},
		{"longest default padding", func(a int) []byte { return trailerPad(ipv4Packet(63), 255, 4) }, ipv4Packet(63), 4, nil},
	}
	for _, s := range testSuites {
		for _, esn := range []bool{false, true} {
			_, in := pair(t, s, esn, true)
			for i, c := range cases {
				seq := uint64(i + 1)
				if esn {
					seq += 3 << 32
					if i == 0 {
						skipTo(in, 3<<32)
					}
				}
				pkt := rawSeal(t, s, esn, seq, c.plaintext(s.align()))
				got, nh, err := in.Open(pkt)
				require.Equal(t, c.err, err, "%s esn=%v %s", s.name, esn, c.name)
				if c.err == nil || errors.Is(c.err, ErrNextHeader) || errors.Is(c.err, ErrDummy) || errors.Is(c.err, ErrInnerLength) {
					require.Equal(t, c.nh, nh, "%s %s", s.name, c.name)
				}
				if c.err == nil {
					require.Equal(t, c.want, got, "%s %s", s.name, c.name)
				}
			}
			// Authentic packets count whatever their trailer.
			require.Equal(t, uint64(len(cases)), in.Stats().Packets, s.name)
		}
	}
}

func TestReplay(t *testing.T) {
	for _, name := range []string{"AES-GCM-256", "AES-CBC-256/SHA256"} {
		s := suiteByName(t, name)
		for _, esn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/esn=%v", name, esn), func(t *testing.T) {
				o, in := pair(t, s, esn, true)
				var pkts [][]byte
				for range 3000 {
					pkts = append(pkts, seal(t, o, ipv4Packet(40)))
				}
				open := func(seq int) error {
					_, _, err := in.Open(bytes.Clone(pkts[seq-1]))
					return err
				}
				// Out of order within the window.
				require.NoError(t, open(5))
				require.NoError(t, open(3))
				require.NoError(t, open(4))
				require.NoError(t, open(1))
				// Duplicates.
				require.ErrorIs(t, open(3), ErrReplay)
				require.ErrorIs(t, open(5), ErrReplay)
				// A duplicate with a broken ICV is refused by the pre-check,
				// before any cryptography.
				bad := bytes.Clone(pkts[3])
				bad[len(bad)-1] ^= 1
				_, _, err := in.Open(bad)
				require.ErrorIs(t, err, ErrReplay)

				// Forged packet far ahead: not accepted, window not moved.
				forged := bytes.Clone(pkts[2999])
				forged[30] ^= 0x80
				_, _, err = in.Open(forged)
				require.ErrorIs(t, err, ErrAuthentication)
				require.Equal(t, uint64(5), in.Stats().Highest)
				require.NoError(t, open(2), "genuine lower packet after a forged high one")
				require.NoError(t, open(3000), "genuine packet with the forged one's number")

				// 3000 - 1983 = 1017 is the oldest still acceptable. With
				// ESN an older low half means the next 2^32 block (RFC 4303
				// Appendix A), which is new, so it is refused only by the
				// integrity check.
				tooOld := ErrReplay
				if esn {
					tooOld = ErrAuthentication
				}
				require.NoError(t, open(3000-1983))
				require.ErrorIs(t, open(3000-1984), tooOld)
				require.ErrorIs(t, open(6), tooOld)
				require.NoError(t, open(2999))
				require.ErrorIs(t, open(3000), ErrReplay)
				require.Equal(t, uint64(3000), in.Stats().Highest)
				require.Equal(t, uint64(8), in.Stats().Packets)
			})
		}
	}
}

func TestReplayDisabled(t *testing.T) {
	s := suiteByName(t, "ChaCha20-Poly1305")
	o, in := pair(t, s, false, false)
	pkt := seal(t, o, ipv4Packet(40))
	for range 3 {
		_, _, err := in.Open(bytes.Clone(pkt))
		require.NoError(t, err)
	}
	require.Equal(t, uint64(3), in.Stats().Packets)
}

func TestESNCrossing(t *testing.T) {
	for _, name := range []string{"AES-GCM-128", "ChaCha20-Poly1305", "AES-CBC-128/SHA512"} {
		s := suiteByName(t, name)
		for _, replayWindow := range []bool{true, false} {
			o, in := pair(t, s, true, replayWindow)
			setSent(o, 1<<32-3)
			skipTo(in, 1<<32-10)
			pkts := map[uint64][]byte{}
			for seq := uint64(1<<32 - 2); seq <= 1<<32+2; seq++ {
				inner := ipv4Packet(40 + int(seq&7))
				pkt := seal(t, o, inner)
				require.Equal(t, uint32(seq), binary.BigEndian.Uint32(pkt[4:]), "low half on the wire")
				pkts[seq] = pkt
			}
			require.Equal(t, uint64(1<<32+2), o.Sent())
			// In order with gaps, then the gaps late, across the boundary.
			for _, seq := range []uint64{1<<32 - 2, 1 << 32, 1<<32 + 2, 1<<32 - 1, 1<<32 + 1} {
				got, _, err := in.Open(bytes.Clone(pkts[seq]))
				require.NoError(t, err, "%s seq %#x", name, seq)
				require.Equal(t, 40+int(seq&7), len(got))
			}
			require.Equal(t, uint64(1<<32+2), in.Stats().Highest)
			_, _, err := in.Open(bytes.Clone(pkts[1<<32]))
			if replayWindow {
				require.ErrorIs(t, err, ErrReplay)
			} else {
				require.NoError(t, err)
			}
		}
	}
}

// TestESNHighHalfAuthenticated: a receiver that guesses another high half
// (here: it is a whole 2^32 block ahead) fails authentication.
func TestESNHighHalfAuthenticated(t *testing.T) {
	for _, name := range []string{"AES-GCM-256", "AES-CBC-256/SHA384"} {
		s := suiteByName(t, name)
		o, in := pair(t, s, true, true)
		setSent(o, 1<<32+100)
		pkt := seal(t, o, ipv4Packet(40))
		skipTo(in, 2<<32+105)
		_, _, err := in.Open(pkt)
		require.ErrorIs(t, err, ErrAuthentication, name)
	}
}

func TestFullSeq(t *testing.T) {
	in := &Inbound{esn: true}
	const w = replayWidth
	cases := []struct {
		highest uint64
		lo      uint32
		want    uint64
		ok      bool
	}{
		{0, 1, 1, true},
		{0, 0, 0, true},
		{0, math.MaxUint32, 0, false}, // before 0
		{0, math.MaxUint32 - w + 2, 0, false},
		{0, math.MaxUint32 - w + 1, math.MaxUint32 - w + 1, true}, // far ahead
		{5000, 5000 - w + 1, 5000 - w + 1, true},
		{5000, 5000 - w, 1<<32 + 5000 - w, true}, // below the window: next block
		{5000, 7, 1<<32 + 7, true},
		{5000, 9000, 9000, true},
		{1<<32 + 5, math.MaxUint32, math.MaxUint32, true}, // previous block
		{1<<32 + 5, 6, 1<<32 + 6, true},
		{1<<32 + 5, 1 << 31, 1<<32 + 1<<31, true},
		{1<<32 + w - 1, 0, 1 << 32, true},
		{1<<32 + w - 1, math.MaxUint32, 1<<32 + math.MaxUint32, true}, // ahead, same block
		{1<<32 + w, 0, 2 << 32, true},                                 // 0 fell out of the window
		{math.MaxUint64 - 10, 3, 0, false},                            // past 2^64-1
	}
	for _, c := range cases {
		in.highest = c.highest
		got, ok := in.fullSeq(c.lo)
		require.Equal(t, c.ok, ok, "highest %#x lo %#x", c.highest, c.lo)
		if ok {
			require.Equal(t, c.want, got, "highest %#x lo %#x", c.highest, c.lo)
		}
	}
	in.esn = false
	got, ok := in.fullSeq(math.MaxUint32)
	require.True(t, ok)
	require.Equal(t, uint64(math.MaxUint32), got)
}

func TestSequenceExhausted(t *testing.T) {
	for _, name := range []string{"AES-GCM-256", "AES-CBC-256/SHA256"} {
		s := suiteByName(t, name)
		o, in := pair(t, s, false, true)
		setSent(o, math.MaxUint32-2)
		skipTo(in, math.MaxUint32-2)
		for _, want := range []uint32{math.MaxUint32 - 1, math.MaxUint32} {
			pkt := seal(t, o, ipv4Packet(40))
			require.Equal(t, want, binary.BigEndian.Uint32(pkt[4:]))
			_, _, err := in.Open(pkt)
			require.NoError(t, err)
		}
		buf := make([]byte, 256)
		copy(buf[64:], ipv4Packet(40))
		for range 3 {
			_, err := o.Seal(buf, 64, 40)
			require.ErrorIs(t, err, ErrSequenceExhausted)
		}
		require.Equal(t, uint64(math.MaxUint32), o.Sent())
		require.Equal(t, uint64(math.MaxUint32), o.Stats().Packets)
	}
}

func TestSealErrors(t *testing.T) {
	for _, s := range testSuites {
		o, _ := pair(t, s, false, true)
		h, tr := o.HeaderLen(), o.Tailroom()
		inner := ipv4Packet(100)
		mk := func(head, tail int) []byte {
			b := make([]byte, head+len(inner)+tail)
			copy(b[head:], inner)
			return b
		}
		_, err := o.Seal(mk(h-1, tr), h-1, 100)
		require.ErrorIs(t, err, ErrBuffer, s.name)
		_, err = o.Seal(mk(h, tr-1), h, 100)
		require.ErrorIs(t, err, ErrBuffer, s.name)
		_, err = o.Seal(mk(h, tr), h, -1)
		require.ErrorIs(t, err, ErrBuffer, s.name)
		_, err = o.Seal(mk(h, tr), h+1000, 1)
		require.ErrorIs(t, err, ErrBuffer, s.name)
		_, err = o.Seal(nil, 0, 0)
		require.ErrorIs(t, err, ErrBuffer, s.name)
		_, err = o.Seal(mk(h, tr), h, 0)
		require.ErrorIs(t, err, ErrNotIP, s.name)
		b := mk(h, tr)
		b[h] = 0x50
		_, err = o.Seal(b, h, 100)
		require.ErrorIs(t, err, ErrNotIP, s.name)
		require.Zero(t, o.Sent(), "failed Seals must not use sequence numbers")
		// Exactly the documented room, counted in capacity, is enough.
		b = mk(h, 0)
		b = append(b, make([]byte, tr)...)[:h+100]
		pkt, err := o.Seal(b, h, 100)
		require.NoError(t, err, s.name)
		require.Equal(t, 0, cap(b)-cap(pkt), "packet starts at the buffer start")
	}
}

func TestParamsErrors(t *testing.T) {
	good := suiteByName(t, "AES-GCM-256").params(false)
	cbc := suiteByName(t, "AES-CBC-256/SHA256").params(false)
	cases := []Params{
		func() Params { p := good; p.SPI = 0; return p }(),
		func() Params { p := good; p.SPI = 255; return p }(),
		func() Params { p := good; p.Encr = 3; return p }(),
		func() Params { p := good; p.EncrKey = p.EncrKey[:32]; return p }(),
		func() Params { p := good; p.Integ = IntegHMACSHA256128; return p }(),
		func() Params { p := good; p.Encr = EncrChaCha20Poly1305; p.EncrKey = p.EncrKey[:20]; return p }(),
		func() Params { p := cbc; p.Integ = IntegNone; return p }(),
		func() Params { p := cbc; p.Integ = 2; return p }(),
		func() Params { p := cbc; p.IntegKey = p.IntegKey[:20]; return p }(),
		func() Params { p := cbc; p.EncrKey = p.EncrKey[:20]; return p }(),
	}
	for i, p := range cases {
		_, err := NewOutbound(p)
		require.ErrorIs(t, err, ErrParams, "case %d", i)
		_, err = NewInbound(p, true)
		require.ErrorIs(t, err, ErrParams, "case %d", i)
	}
	// The constructors keep their own copies of the keys.
	p := good
	p.EncrKey = bytes.Clone(good.EncrKey)
	o, err := NewOutbound(p)
	require.NoError(t, err)
	clear(p.EncrKey)
	_, in := pair(t, suiteByName(t, "AES-GCM-256"), false, true)
	_, _, err = in.Open(seal(t, o, ipv4Packet(20)))
	require.NoError(t, err)
	require.Equal(t, uint32(testSPI), o.SPI())
	require.Equal(t, uint32(testSPI), in.SPI())
	require.False(t, o.ESN() || in.ESN())
}

// TestOpenFailures: every failure path returns its sentinel and nothing
// panics on short, garbage or truncated input.
func TestOpenFailures(t *testing.T) {
	for _, s := range testSuites {
		o, in := pair(t, s, false, true)
		valid := seal(t, o, ipv4Packet(100))
		spiOnly := func(n int) []byte {
			b := make([]byte, n)
			binary.BigEndian.PutUint32(b, testSPI)
			b[7] = 9 // seq 9
			return b
		}
		with := func(f func(p []byte)) []byte {
			p := bytes.Clone(valid)
			f(p)
			return p
		}
		hdr, icv := o.HeaderLen(), len(valid)-o.HeaderLen()-112
		if s.encr != EncrAESCBC {
			icv = 16
		}
		cases := []struct {
			name string
			pkt  []byte
			err  error
		}{
			{"nil", nil, ErrShort},
			{"empty", []byte{}, ErrShort},
			{"keepalive", Keepalive[:], ErrShort},
			{"header only", spiOnly(hdr), ErrShort},
			{"no room for trailer", spiOnly(hdr + icv + 1), ErrShort},
			{"wrong SPI", with(func(p []byte) { p[0] ^= 1 }), ErrSPI},
			{"sequence 0", with(func(p []byte) { clear(p[4:8]) }), ErrReplay},
			{"bad ICV", with(func(p []byte) { p[len(p)-1] ^= 1 }), ErrAuthentication},
			{"bad IV", with(func(p []byte) { p[hdr-1] ^= 1 }), ErrAuthentication},
			{"bad ciphertext", with(func(p []byte) { p[hdr] ^= 1 }), ErrAuthentication},
			{"bad sequence", with(func(p []byte) { p[7] ^= 2 }), ErrAuthentication},
			{"garbage", append(spiOnly(hdr), pattern(160+icv, 3)...), ErrAuthentication},
			{"truncated by a block", bytes.Clone(valid[:len(valid)-16]), ErrAuthentication},
		}
		if s.encr == EncrAESCBC {
			cases = append(cases,
				struct {
					name string
					pkt  []byte
					err  error
				}{"not whole blocks", bytes.Clone(valid[:len(valid)-1]), ErrShort},
				struct {
					name string
					pkt  []byte
					err  error
				}{"one byte more", append(bytes.Clone(valid), 0), ErrShort},
			)
		} else {
			cases = append(cases, struct {
				name string
				pkt  []byte
				err  error
			}{"truncated by one", bytes.Clone(valid[:len(valid)-1]), ErrAuthentication})
		}
		for _, c := range cases {
			got, _, err := in.Open(c.pkt)
			require.Equal(t, c.err, err, "%s: %s", s.name, c.name) // unwrapped sentinels
			require.Nil(t, got)
		}
		require.Zero(t, in.Stats().Packets, "failures are not counted as packets")
		// After all that, the genuine packet still opens.
		_, _, err := in.Open(valid)
		require.NoError(t, err, s.name)
	}
}

func TestConcurrentSeal(t *testing.T) {
	for _, name := range []string{"AES-GCM-256", "AES-CBC-256/SHA256"} {
		s := suiteByName(t, name)
		o, in := pair(t, s, false, true)
		const workers, each = 8, 200
		var mu sync.Mutex
		var all [][]byte
		var sealers, readers sync.WaitGroup
		for w := range workers {
			sealers.Go(func() {
				var mine [][]byte
				for i := range each {
					inner := ipv4Packet(20 + w*10 + i%5)
					buf := make([]byte, tunnel.Headroom+len(inner)+tunnel.Tailroom)
					copy(buf[tunnel.Headroom:], inner)
					pkt, err := o.Seal(buf, tunnel.Headroom, len(inner))
					if err != nil {
						t.Error(err)
						return
					}
					mine = append(mine, pkt)
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			})
		}
		// Stats readers race with the sealers and the opener.
		stop := make(chan struct{})
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					_ = o.Stats()
					_ = in.Stats()
				}
			}
		})
		sealers.Wait()
		require.Len(t, all, workers*each)
		sort.Slice(all, func(i, j int) bool {
			return binary.BigEndian.Uint32(all[i][4:]) < binary.BigEndian.Uint32(all[j][4:])
		})
		for i, p := range all {
			require.Equal(t, uint32(i+1), binary.BigEndian.Uint32(p[4:]), "sequence numbers unique and dense")
			_, _, err := in.Open(p)
			require.NoError(t, err)
		}
		close(stop)
		readers.Wait()
		require.Equal(t, uint64(workers*each), o.Sent())
	}
}

func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, name := range []string{"AES-GCM-256", "ChaCha20-Poly1305", "AES-CBC-256/SHA256", "AES-CBC-128/SHA512"} {
		s := suiteByName(t, name)
		for _, esn := range []bool{false, true} {
			o, in := pair(t, s, esn, true)
			buf := make([]byte, tunnel.BufferSize)
			inner := ipv4Packet(1400)
			if a := testing.AllocsPerRun(100, func() {
				copy(buf[tunnel.Headroom:], inner) // Seal encrypted the last one in place
				if _, err := o.Seal(buf, tunnel.Headroom, 1400); err != nil {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Errorf("%s esn=%v: Seal allocates %v per packet", name, esn, a)
			}
			pkts := make([][]byte, 202)
			for i := range pkts {
				pkts[i] = seal(t, o, ipv4Packet(1400))
			}
			i := 0
			if a := testing.AllocsPerRun(200, func() {
				if _, _, err := in.Open(pkts[i]); err != nil {
					t.Fatal(err)
				}
				i++
			}); a != 0 {
				t.Errorf("%s esn=%v: Open allocates %v per packet", name, esn, a)
			}
			// Failure paths: replay (pre-check), authentication, SPI, short,
			// and the trailer checks after authentication.
			fails := [][]byte{pkts[0], pkts[1][:10], bytes.Clone(pkts[2])}
			fails[2][0] ^= 1
			bad := seal(t, o, ipv4Packet(100))
			bad[len(bad)-1] ^= 1
			fails = append(fails, bad)
			// Authentic packets with bad trailers, opened again and again
			// by an Inbound without replay window.
			_, noReplay := pair(t, s, esn, false)
			if esn {
				skipTo(noReplay, o.Sent())
			}
			authentic := [][]byte{
				rawSeal(t, s, esn, o.Sent()+1, trailer(nil, s.align(), 59)),
				rawSeal(t, s, esn, o.Sent()+1, trailer(ipv4Packet(60)[:50], s.align(), 4)),
				rawSeal(t, s, esn, o.Sent()+1, trailer(ipv4Packet(60), s.align(), 17)),
				rawSeal(t, s, esn, o.Sent()+1, func() []byte {
					p := trailerPad(ipv4Packet(60), 18, 4)
					p[70] = 0
					return p
				}()),
			}
			for j, f := range append(fails, authentic...) {
				target := in
				if j >= len(fails) {
					target = noReplay
				}
				work := make([]byte, len(f))
				if a := testing.AllocsPerRun(50, func() {
					copy(work, f)
					if _, _, err := target.Open(work); err == nil {
						t.Fatalf("failure case %d opened", j)
					}
				}); a != 0 {
					t.Errorf("%s esn=%v: failing Open %d allocates %v", name, esn, j, a)
				}
			}
		}
	}
}
