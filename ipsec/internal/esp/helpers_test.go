package esp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"
	"testing"

	"github.com/remotegate/remotegate/tunnel"
	"golang.org/x/crypto/chacha20poly1305"
)

// testSuite is one transform combination under test.
type testSuite struct {
	name     string
	encr     uint16
	keyLen   int // including the salt for AEAD
	integ    uint16
	integLen int
}

var testSuites = []testSuite{
	{"AES-GCM-128", EncrAESGCM16, 20, IntegNone, 0},
	{"AES-GCM-256", EncrAESGCM16, 36, IntegNone, 0},
	{"ChaCha20-Poly1305", EncrChaCha20Poly1305, 36, IntegNone, 0},
	{"AES-CBC-128/SHA256", EncrAESCBC, 16, IntegHMACSHA256128, 32},
	{"AES-CBC-128/SHA384", EncrAESCBC, 16, IntegHMACSHA384192, 48},
	{"AES-CBC-128/SHA512", EncrAESCBC, 16, IntegHMACSHA512256, 64},
	{"AES-CBC-256/SHA256", EncrAESCBC, 32, IntegHMACSHA256128, 32},
	{"AES-CBC-256/SHA384", EncrAESCBC, 32, IntegHMACSHA384192, 48},
	{"AES-CBC-256/SHA512", EncrAESCBC, 32, IntegHMACSHA512256, 64},
}

func suiteByName(t testing.TB, name string) testSuite {
	t.Helper()
	for _, s := range testSuites {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no suite %q", name)
	return testSuite{}
}

const testSPI = 0xc1a2b3c4

// pattern is deterministic key material: distinct per purpose via seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func (s testSuite) params(esn bool) Params {
	p := Params{SPI: testSPI, Encr: s.encr, EncrKey: pattern(s.keyLen, 0x10), Integ: s.integ, ESN: esn}
	if s.integLen > 0 {
		p.IntegKey = pattern(s.integLen, 0x80)
	}
	return p
}

func pair(t testing.TB, s testSuite, esn, replayWindow bool) (*Outbound, *Inbound) {
	t.Helper()
	o, err := NewOutbound(s.params(esn))
	if err != nil {
		t.Fatalf("%s: NewOutbound: %v", s.name, err)
	}
	in, err := NewInbound(s.params(esn), replayWindow)
	if err != nil {
		t.Fatalf("%s: NewInbound: %v", s.name, err)
	}
	return o, in
}

// ipv4Packet is a well-formed-enough IPv4 packet of total bytes (>= 20).
func ipv4Packet(total int) []byte {
	p := pattern(total, 0x33)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(total))
	return p
}

// ipv6Packet is an IPv6 packet of total bytes (>= 40).
func ipv6Packet(total int) []byte {
	p := pattern(total, 0x55)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(total-40))
	return p
}

// seal copies inner into a tunnel-sized buffer and seals it; the result is
// a fresh slice with no spare capacity.
func seal(t testing.TB, o *Outbound, inner []byte) []byte {
	t.Helper()
	buf := make([]byte, tunnel.Headroom+len(inner)+tunnel.Tailroom)
	copy(buf[tunnel.Headroom:], inner)
	pkt, err := o.Seal(buf, tunnel.Headroom, len(inner))
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return bytes.Clone(pkt)
}

// setSent is the test hook that moves an Outbound's counter: the next Seal
// uses n+1.
func setSent(o *Outbound, n uint64) { o.seq.Store(n) }

// skipTo is the test hook that makes an Inbound behave as if it had accepted
// sequence number seq.
func skipTo(in *Inbound, seq uint64) {
	in.window.Check(seq)
	in.highest = seq
}

// The raw sealers below build packets independently of the package, with
// the standard library only, from a plaintext that already contains the
// trailer. They let the tests feed Open packets this package would never
// produce (bad padding, dummy, TFC) and cross-check the wire format.

func rawSealAEAD(t testing.TB, s testSuite, esn bool, seq uint64, plaintext []byte) []byte {
	t.Helper()
	p := s.params(esn)
	key, salt := p.EncrKey[:len(p.EncrKey)-4], p.EncrKey[len(p.EncrKey)-4:]
	var a cipher.AEAD
	var err error
	if s.encr == EncrChaCha20Poly1305 {
		a, err = chacha20poly1305.New(key)
	} else {
		var b cipher.Block
		b, err = aes.NewCipher(key)
		if err == nil {
			a, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 16)
	binary.BigEndian.PutUint32(hdr, p.SPI)
	binary.BigEndian.PutUint32(hdr[4:], uint32(seq))
	binary.BigEndian.PutUint64(hdr[8:], seq^0x5a5a) // any unique IV will do for the receiver
	nonce := append(bytes.Clone(salt), hdr[8:16]...)
	aad := hdr[:8]
	if esn {
		aad = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, p.SPI), seq)
	}
	return a.Seal(hdr, nonce, plaintext, aad)
}

func hashFor(integ uint16) func() hash.Hash {
	switch integ {
	case IntegHMACSHA256128:
		return sha256.New
	case IntegHMACSHA384192:
		return sha512.New384
	}
	return sha512.New
}

func rawSealCBC(t testing.TB, s testSuite, esn bool, seq uint64, plaintext []byte) []byte {
	t.Helper()
	if len(plaintext)%16 != 0 {
		t.Fatalf("CBC plaintext of %d bytes", len(plaintext))
	}
	p := s.params(esn)
	b, err := aes.NewCipher(p.EncrKey)
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 24+len(plaintext))
	binary.BigEndian.PutUint32(pkt, p.SPI)
	binary.BigEndian.PutUint32(pkt[4:], uint32(seq))
	copy(pkt[8:24], pattern(16, byte(seq)))
	cipher.NewCBCEncrypter(b, pkt[8:24]).CryptBlocks(pkt[24:], plaintext)
	mac := hmac.New(hashFor(s.integ), p.IntegKey)
	mac.Write(pkt)
	if esn {
		mac.Write(binary.BigEndian.AppendUint32(nil, uint32(seq>>32)))
	}
	return append(pkt, mac.Sum(nil)[:s.integLen/2]...)
}

func rawSeal(t testing.TB, s testSuite, esn bool, seq uint64, plaintext []byte) []byte {
	t.Helper()
	if s.encr == EncrAESCBC {
		return rawSealCBC(t, s, esn, seq, plaintext)
	}
	return rawSealAEAD(t, s, esn, seq, plaintext)
}

// trailer appends default padding to align, pad length and next header.
func trailer(payload []byte, align int, nh byte) []byte {
	out := bytes.Clone(payload)
	pad := (align - (len(payload)+2)%align) % align
	for i := range pad {
		out = append(out, byte(i+1))
	}
	return append(out, byte(pad), nh)
}

func (s testSuite) align() int {
	if s.encr == EncrAESCBC {
		return 16
	}
	return 4
}

// trailerPad appends pad default padding bytes, pad length and next header;
// the caller picks pad so that the total is aligned for the suites in use
// (62 + 18, 62 + 210 and 65 + 255 are multiples of 16).
func trailerPad(payload []byte, pad int, nh byte) []byte {
	out := bytes.Clone(payload)
	for i := range pad {
		out = append(out, byte(i+1))
	}
	return append(out, byte(pad), nh)
}
