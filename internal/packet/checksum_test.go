package packet

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// referenceSum is RFC 1071 written the obvious way: 16-bit big-endian words.
func referenceSum(b []byte, initial uint64) uint16 {
	s := initial
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return fold(s)
}

func TestSumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 200; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		init := uint64(r.Uint32())
		if got, want := Fold(Sum(b, init)), referenceSum(b, init); got != want {
			t.Fatalf("len %d: Fold(Sum) = %#04x, reference %#04x", n, got, want)
		}
	}
	// All ones exercises every carry.
	b := make([]byte, 1501)
	for i := range b {
		b[i] = 0xff
	}
	if got, want := Fold(Sum(b, 0xffffffff)), referenceSum(b, 0xffffffff); got != want {
		t.Fatalf("all ones: %#04x, reference %#04x", got, want)
	}
}

// TestIPv4HeaderChecksum checks against a header from RFC 1071's companion
// example (Wikipedia's IPv4 header checksum example): the field is 0xb861.
func TestIPv4HeaderChecksum(t *testing.T) {
	h := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
		0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	if got := Checksum(h, 0); got != 0xb861 {
		t.Fatalf("Checksum = %#04x, want 0xb861", got)
	}
	binary.BigEndian.PutUint16(h[10:], 0xb861)
	if got := Fold(Sum(h, 0)); got != 0xffff {
		t.Fatalf("sum over a correct header folds to %#04x, want 0xffff", got)
	}
}

func FuzzSum(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint32(0))
	f.Add(make([]byte, 64), uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, b []byte, init uint32) {
		if got, want := Fold(Sum(b, uint64(init))), referenceSum(b, uint64(init)); got != want {
			t.Fatalf("Fold(Sum) = %#04x, reference %#04x", got, want)
		}
	})
}

func BenchmarkSum1400(b *testing.B) {
	buf := make([]byte, 1400)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		Sum(buf, 0)
	}
}

func TestSumAllocs(t *testing.T) {
	buf := make([]byte, 1400)
	if n := testing.AllocsPerRun(100, func() { Sum(buf, 0) }); n != 0 {
		t.Fatalf("Sum allocates %v times", n)
	}
}
