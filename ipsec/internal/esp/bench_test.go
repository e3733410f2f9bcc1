package esp

import (
	"testing"

	"github.com/remotegate/remotegate/tunnel"
)

var benchSuites = []string{"AES-GCM-256", "ChaCha20-Poly1305", "AES-CBC-256/SHA256"}

func BenchmarkSeal(b *testing.B) {
	for _, name := range benchSuites {
		b.Run(name, func(b *testing.B) {
			o, _ := pair(b, suiteByName(b, name), false, true)
			buf := make([]byte, tunnel.BufferSize)
			inner := ipv4Packet(1400)
			b.SetBytes(1400)
			b.ReportAllocs()
			for b.Loop() {
				// Seal encrypts in place: restore the packet, as a TUN read
				// would (1400 bytes, small next to the cipher).
				copy(buf[tunnel.Headroom:], inner)
				if _, err := o.Seal(buf, tunnel.Headroom, 1400); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSealParallel(b *testing.B) {
	for _, name := range benchSuites {
		b.Run(name, func(b *testing.B) {
			o, _ := pair(b, suiteByName(b, name), true, true)
			inner := ipv4Packet(1400)
			b.SetBytes(1400)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, tunnel.BufferSize)
				for pb.Next() {
					copy(buf[tunnel.Headroom:], inner)
					if _, err := o.Seal(buf, tunnel.Headroom, 1400); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, name := range benchSuites {
		b.Run(name, func(b *testing.B) {
			o, in := pair(b, suiteByName(b, name), false, true)
			// A ring of sealed packets with increasing sequence numbers,
			// resealed outside the timer when it wraps; each iteration opens
			// a copy (Open decrypts in place), as a socket read would.
			const ring = 1024
			pkts := make([][]byte, ring)
			reseal := func() {
				for i := range pkts {
					pkts[i] = seal(b, o, ipv4Packet(1400))
				}
			}
			reseal()
			work := make([]byte, 2048)
			b.SetBytes(1400)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == ring {
					b.StopTimer()
					reseal()
					i = 0
					b.StartTimer()
				}
				p := pkts[i]
				i++
				w := work[:len(p)]
				copy(w, p)
				if _, _, err := in.Open(w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTableLookup(b *testing.B) {
	var tb Table[*Inbound]
	spis := make([]uint32, 0, 1000)
	for range 1000 {
		spi, err := tb.Reserve(nil, new(Inbound))
		if err != nil {
			b.Fatal(err)
		}
		spis = append(spis, spi)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := tb.Lookup(spis[i%len(spis)]); !ok {
			b.Fatal("missing")
		}
		i++
	}
}
