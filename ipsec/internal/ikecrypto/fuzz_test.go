package ikecrypto

import (
	"bytes"
	"crypto"
	"errors"
	"testing"
)

// fuzzCiphers are one AEAD and one CBC suite with fixed keys.
func fuzzCiphers(t testing.TB) []*SKCipher {
	var cs []*SKCipher
	for _, s := range []Suite{skSuites[2].suite, skSuites[3].suite, skSuites[7].suite, skSuites[4].suite} {
		c, _ := skPair(t, s)
		cs = append(cs, c)
	}
	return cs
}

// FuzzSKOpen feeds arbitrary prefixes and bodies to Open (which must fail
// cleanly, never panic) and checks that a valid message with any one byte
// changed is refused.
func FuzzSKOpen(f *testing.F) {
	cs := fuzzCiphers(f)
	for i, c := range cs {
		prefix := testPrefix(c, 20)
		msg, err := c.Seal(bytes.Clone(prefix), pattern(20, 0))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), prefix, msg[len(prefix):], uint16(0), byte(1))
	}
	f.Add(uint8(0), []byte{}, []byte{}, uint16(3), byte(0x80))
	f.Add(uint8(2), []byte("x"), bytes.Repeat([]byte{0xff}, 64), uint16(40), byte(0xff))
	f.Fuzz(func(t *testing.T, which uint8, prefix, body []byte, pos uint16, flip byte) {
		c := cs[int(which)%len(cs)]
		// The seeds are valid; anything else must fail with one of the
		// documented errors.
		if inner, err := c.Open(prefix, body); err == nil {
			if len(inner) >= len(body) {
				t.Fatalf("opened %d bytes from a %d-byte body", len(inner), len(body))
			}
		} else if !errors.Is(err, ErrAuthentication) && !errors.Is(err, ErrShort) && !errors.Is(err, ErrInvalidPadding) {
			t.Fatalf("unexpected error: %v", err)
		}

		// Seal the fuzzed body as inner payloads, mutate one byte.
		msg, err := c.Seal(bytes.Clone(prefix), body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Open(msg[:len(prefix)], msg[len(prefix):])
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("round trip failed: %v", err)
		}
		if flip == 0 {
			flip = 1
		}
		msg[int(pos)%len(msg)] ^= flip
		if _, err := c.Open(msg[:len(prefix)], msg[len(prefix):]); err == nil {
			t.Fatalf("mutated message at %d opened", int(pos)%len(msg))
		}
	})
}

// FuzzVerify feeds arbitrary Authentication Data to Verify with every key
// type and method; it must fail without panicking.
func FuzzVerify(f *testing.F) {
	k := getKeys()
	pubs := []crypto.PublicKey{&k.p256.PublicKey, &k.p384.PublicKey, &k.rsa2048.PublicKey, k.ed.Public()}
	for _, s := range []crypto.Signer{k.p256, k.rsa2048, k.ed} {
		_, data, err := Sign(s, SupportedHashes, testOctets)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(AuthDigitalSignature), data)
		f.Add(uint8(AuthDigitalSignature), data[:1+data[0]])
	}
	_, pss, _ := SignWith(k.rsa2048, SupportedHashes, testOctets, SignOptions{RSAPSS: true})
	f.Add(uint8(AuthDigitalSignature), pss)
	f.Add(uint8(AuthDigitalSignature), []byte{})
	f.Add(uint8(AuthDigitalSignature), []byte{0xff})
	f.Add(uint8(AuthECDSA256), make([]byte, 64))
	f.Add(uint8(AuthRSA), make([]byte, 256))
	f.Fuzz(func(t *testing.T, method uint8, data []byte) {
		for _, pub := range pubs {
			if err := Verify(pub, method, data, testOctets[:len(testOctets)-1]); err == nil {
				t.Fatalf("verified a signature over other octets")
			}
			_ = Verify(pub, method, data, testOctets)
		}
	})
}
