package ikecrypto

import (
	"bytes"
	"testing"
)

func BenchmarkDH(b *testing.B) {
	for _, g := range allGroups {
		b.Run(g.name, func(b *testing.B) {
			peer, err := NewDH(g.group, nil)
			if err != nil {
				b.Fatal(err)
			}
			pub := peer.Public()
			b.ReportAllocs()
			for b.Loop() {
				d, err := NewDH(g.group, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.SharedSecret(pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDeriveIKEKeys(b *testing.B) {
	for _, tc := range ikeSuites {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DeriveIKEKeys(tc.suite, testNi, testNr, testGIR, testSPIi, testSPIr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSKCipher(b *testing.B) {
	inner := pattern(1024, 0)
	for _, tc := range []struct {
		name  string
		suite Suite
	}{skSuites[2], skSuites[3], skSuites[7]} {
		seal, open := skPair(b, tc.suite)
		prefix := testPrefix(seal, len(inner))
		buf := make([]byte, len(prefix), len(prefix)+seal.BodyLen(len(inner)))
		copy(buf, prefix)
		b.Run(tc.name+"/Seal", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(inner)))
			for b.Loop() {
				if _, err := seal.Seal(buf[:len(prefix)], inner); err != nil {
					b.Fatal(err)
				}
			}
		})
		msg, err := seal.Seal(bytes.Clone(prefix), inner)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/Open", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(inner)))
			for b.Loop() {
				if _, err := open.Open(prefix, msg[len(prefix):]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
