package datachannel

import "testing"

func BenchmarkSeal(b *testing.B) {
	for _, v := range variants {
		b.Run(v.String(), func(b *testing.B) {
			cli, _ := pairAuth(b, v.c, v.auth, 0)
			buf := make([]byte, 2048)
			b.SetBytes(1400)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := cli.Seal(buf, SealHeadroom, 1400, 5); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, v := range variants {
		b.Run(v.String(), func(b *testing.B) {
			cli, srv := pairAuth(b, v.c, v.auth, 0)
			// Seal a ring of packets up front; each run opens a copy of the
			// next one. Ids stay fresh because they keep increasing: the
			// ring is resealed (outside the timer) when it wraps.
			const ring = 1024
			pkts := make([][]byte, ring)
			reseal := func() {
				for i := range pkts {
					buf := make([]byte, 2048)
					p, err := cli.Seal(buf, SealHeadroom, 1400, 5)
					if err != nil {
						b.Fatal(err)
					}
					pkts[i] = p
				}
			}
			reseal()
			work := make([]byte, 2048)
			b.SetBytes(1400)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%ring == 0 && i > 0 {
					b.StopTimer()
					reseal()
					b.StartTimer()
				}
				p := pkts[i%ring]
				w := work[:len(p)]
				copy(w, p)
				if _, err := srv.Open(w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
