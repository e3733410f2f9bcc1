package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestKeyAlgorithmString(t *testing.T) {
	want := map[KeyAlgorithm]string{
		ECDSAP256: "ECDSA-P256",
		ECDSAP384: "ECDSA-P384",
		RSA2048:   "RSA-2048",
		RSA3072:   "RSA-3072",
		RSA4096:   "RSA-4096",
	}
	for alg, name := range want {
		if got := alg.String(); got != name {
			t.Errorf("%d.String() = %q, want %q", int(alg), got, name)
		}
		back, err := ParseKeyAlgorithm(name)
		if err != nil || back != alg {
			t.Errorf("ParseKeyAlgorithm(%q) = %v, %v; want %v", name, back, err, alg)
		}
	}
	var zero KeyAlgorithm
	if zero != ECDSAP256 {
		t.Errorf("the zero KeyAlgorithm is %v, want ECDSA-P256", zero)
	}
	if got := KeyAlgorithm(99).String(); got != "KeyAlgorithm(99)" {
		t.Errorf("KeyAlgorithm(99).String() = %q", got)
	}
	if _, err := ParseKeyAlgorithm("DSA-1024"); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("ParseKeyAlgorithm(DSA-1024): got %v, want ErrUnsupportedAlgorithm", err)
	}
}

func TestGenerateKey(t *testing.T) {
	algs := []KeyAlgorithm{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096}
	if testing.Short() {
		algs = algs[:3]
	}
	for _, alg := range algs {
		t.Run(alg.String(), func(t *testing.T) {
			key, err := GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			switch k := key.(type) {
			case *ecdsa.PrivateKey:
				if k.Curve != alg.curve() {
					t.Errorf("curve %s for %v", k.Curve.Params().Name, alg)
				}
			case *rsa.PrivateKey:
				if k.N.BitLen() != alg.rsaBits() {
					t.Errorf("%d-bit modulus for %v", k.N.BitLen(), alg)
				}
			default:
				t.Fatalf("GenerateKey(%v) returned %T", alg, key)
			}
			checkSigns(t, key)
		})
	}
	if _, err := GenerateKey(KeyAlgorithm(-1)); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("GenerateKey(-1): got %v, want ErrUnsupportedAlgorithm", err)
	}
}

func BenchmarkSignECDSAP256Software(b *testing.B) {
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("benchmark"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}
