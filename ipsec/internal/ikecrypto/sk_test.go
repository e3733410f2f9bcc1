package ikecrypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/chacha20poly1305"
)

var skSuites = []struct {
	name  string
	suite Suite
}{
	{"AES-GCM-16-128", Suite{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256}},
	{"AES-GCM-16-192", Suite{Encr: EncrAESGCM16, EncrKeyBits: 192, PRF: PRFHMACSHA256}},
	{"AES-GCM-16-256", Suite{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA256}},
	{"ChaCha20-Poly1305", Suite{Encr: EncrChaCha20Poly1305, EncrKeyBits: 256, PRF: PRFHMACSHA256}},
	{"AES-CBC-128/SHA1-96", Suite{Encr: EncrAESCBC, EncrKeyBits: 128, Integ: IntegHMACSHA196, PRF: PRFHMACSHA1}},
	{"AES-CBC-128/SHA256-128", Suite{Encr: EncrAESCBC, EncrKeyBits: 128, Integ: IntegHMACSHA256128, PRF: PRFHMACSHA256}},
	{"AES-CBC-192/SHA384-192", Suite{Encr: EncrAESCBC, EncrKeyBits: 192, Integ: IntegHMACSHA384192, PRF: PRFHMACSHA384}},
	{"AES-CBC-256/SHA256-128", Suite{Encr: EncrAESCBC, EncrKeyBits: 256, Integ: IntegHMACSHA256128, PRF: PRFHMACSHA256}},
	{"AES-CBC-256/SHA512-256", Suite{Encr: EncrAESCBC, EncrKeyBits: 256, Integ: IntegHMACSHA512256, PRF: PRFHMACSHA512}},
}

// skPair returns a sealer and an opener with the same keys (one direction
// as seen from both ends).
func skPair(t testing.TB, s Suite) (*SKCipher, *SKCipher) {
	t.Helper()
	el, err := EncrKeyLen(s.Encr, s.EncrKeyBits)
	require.NoError(t, err)
	il, err := IntegKeyLen(s.Integ)
	require.NoError(t, err)
	ek, ik := pattern(el, 0x20), pattern(il, 0x90)
	seal, err := NewSKCipher(s, ek, ik, nil)
	require.NoError(t, err)
	open, err := NewSKCipher(s, ek, ik, nil)
	require.NoError(t, err)
	return seal, open
}

// testPrefix is an IKE header plus SK header with consistent lengths.
func testPrefix(c *SKCipher, innerLen int) []byte {
	body := c.BodyLen(innerLen)
	p := make([]byte, 0, 32)
	p = append(p, testSPIi[:]...)
	p = append(p, testSPIr[:]...)
	p = append(p, 46, 0x20, 35, 0x08) // next SK, version 2.0, IKE_AUTH, I flag
	p = binary.BigEndian.AppendUint32(p, 1)
	p = binary.BigEndian.AppendUint32(p, uint32(32+body))
	p = append(p, 35, 0) // SK: next payload IDi, not critical
	p = binary.BigEndian.AppendUint16(p, uint16(4+body))
	return p
}

func TestSKRoundTrip(t *testing.T) {
	for _, tc := range skSuites {
		t.Run(tc.name, func(t *testing.T) {
			seal, open := skPair(t, tc.suite)
			for _, n := range []int{0, 1, 2, 14, 15, 16, 17, 31, 32, 100, 1024} {
				inner := pattern(n, byte(n))
				prefix := testPrefix(seal, n)
				msg, err := seal.Seal(bytes.Clone(prefix), inner)
				require.NoError(t, err)
				require.Equal(t, prefix, msg[:len(prefix)])
				require.Len(t, msg, len(prefix)+seal.BodyLen(n), "BodyLen")
				if tc.suite.Encr == EncrAESCBC {
					ct := len(msg) - len(prefix) - 16 - ICVLen(tc.suite.Integ)
					require.Zero(t, ct%16)
					require.Less(t, ct-n-1, 16, "minimal padding")
				}
				got, err := open.Open(prefix, msg[len(prefix):])
				require.NoError(t, err, "inner %d", n)
				require.Equal(t, inner, got)
				// The sealer can open its own output too (same keys).
				got, err = seal.Open(prefix, msg[len(prefix):])
				require.NoError(t, err)
				require.Equal(t, inner, got)
			}
		})
	}
}

func TestSKBitFlips(t *testing.T) {
	for _, tc := range skSuites {
		t.Run(tc.name, func(t *testing.T) {
			seal, open := skPair(t, tc.suite)
			inner := []byte("IDi payload and friends")
			prefix := testPrefix(seal, len(inner))
			msg, err := seal.Seal(bytes.Clone(prefix), inner)
			require.NoError(t, err)
			for i := range msg {
				for _, bit := range []byte{0x01, 0x80} {
					m := bytes.Clone(msg)
					m[i] ^= bit
					_, err := open.Open(m[:len(prefix)], m[len(prefix):])
					require.ErrorIs(t, err, ErrAuthentication, "byte %d bit %#x", i, bit)
				}
			}
			// An empty or shortened prefix is a different AAD.
			_, err = open.Open(nil, msg[len(prefix):])
			require.ErrorIs(t, err, ErrAuthentication)
			_, err = open.Open(msg[:len(prefix)-4], msg[len(prefix):])
			require.ErrorIs(t, err, ErrAuthentication)
		})
	}
}

func TestSKTruncated(t *testing.T) {
	for _, tc := range skSuites {
		t.Run(tc.name, func(t *testing.T) {
			seal, open := skPair(t, tc.suite)
			prefix := testPrefix(seal, 40)
			msg, err := seal.Seal(bytes.Clone(prefix), pattern(40, 0))
			require.NoError(t, err)
			body := msg[len(prefix):]
			for n := range len(body) {
				_, err := open.Open(prefix, body[:n])
				require.Error(t, err, "truncated to %d", n)
				require.True(t, errors.Is(err, ErrShort) || errors.Is(err, ErrAuthentication), "%d: %v", n, err)
			}
			// Trailing garbage is not ignored either.
			_, err = open.Open(prefix, append(bytes.Clone(body), 0))
			require.Error(t, err)
			_, err = open.Open(prefix, nil)
			require.ErrorIs(t, err, ErrShort)
		})
	}
}

func TestSKWrongKey(t *testing.T) {
	s := skSuites[2].suite
	a, err := NewSKCipher(s, pattern(36, 1), nil, nil)
	require.NoError(t, err)
	b, err := NewSKCipher(s, pattern(36, 2), nil, nil)
	require.NoError(t, err)
	msg, err := a.Seal([]byte("hdr"), []byte("x"))
	require.NoError(t, err)
	_, err = b.Open([]byte("hdr"), msg[3:])
	require.ErrorIs(t, err, ErrAuthentication)

	// Same key, different salt: also a different nonce.
	k := pattern(36, 1)
	k[35] ^= 1
	c, err := NewSKCipher(s, k, nil, nil)
	require.NoError(t, err)
	_, err = c.Open([]byte("hdr"), msg[3:])
	require.ErrorIs(t, err, ErrAuthentication)
}

func TestNewSKCipherErrors(t *testing.T) {
	gcm := Suite{Encr: EncrAESGCM16, EncrKeyBits: 256}
	cbc := Suite{Encr: EncrAESCBC, EncrKeyBits: 256, Integ: IntegHMACSHA256128}
	for _, tc := range []struct {
		s      Suite
		ek, ik []byte
	}{
		{gcm, pattern(32, 0), nil},           // salt missing
		{gcm, pattern(36, 0), pattern(1, 0)}, // integ key with AEAD
		{cbc, pattern(32, 0), pattern(20, 0)},
		{cbc, pattern(36, 0), pattern(32, 0)},
		{Suite{Encr: EncrChaCha20Poly1305}, pattern(32, 0), nil},
		{Suite{Encr: EncrAESCBC, EncrKeyBits: 256}, pattern(32, 0), nil},
		{Suite{Encr: 3, EncrKeyBits: 192, Integ: IntegHMACSHA196}, pattern(24, 0), pattern(20, 0)},
	} {
		_, err := NewSKCipher(tc.s, tc.ek, tc.ik, nil)
		require.Error(t, err, "%+v", tc.s)
	}
	// A reader that fails.
	_, err := NewSKCipher(gcm, pattern(36, 0), nil, bytes.NewReader(nil))
	require.Error(t, err)
	c, err := NewSKCipher(cbc, pattern(32, 0), pattern(32, 0), bytes.NewReader(nil))
	require.NoError(t, err)
	_, err = c.Seal(nil, []byte("x"))
	require.Error(t, err, "CBC needs random IVs")
}

// TestSKAESGCMIndependent rebuilds an AES-GCM SK payload with crypto/cipher
// directly: nonce = salt | IV, AAD = prefix, plaintext = inner | pad length 0.
func TestSKAESGCMIndependent(t *testing.T) {
	s := Suite{Encr: EncrAESGCM16, EncrKeyBits: 256}
	key, salt := pattern(32, 0x40), []byte{0xca, 0xfe, 0xba, 0xbe}
	c, err := NewSKCipher(s, append(bytes.Clone(key), salt...), nil, zeroReader{})
	require.NoError(t, err)
	inner := []byte("inner payloads")
	prefix := testPrefix(c, len(inner))
	msg, err := c.Seal(bytes.Clone(prefix), inner)
	require.NoError(t, err)

	// IV base is 0 from zeroReader; the first IV is 1, the next 2.
	iv := []byte{0, 0, 0, 0, 0, 0, 0, 1}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	want := append(bytes.Clone(iv), gcm.Seal(nil, append(bytes.Clone(salt), iv...), append(bytes.Clone(inner), 0), prefix)...)
	require.Equal(t, want, msg[len(prefix):])

	msg2, err := c.Seal(bytes.Clone(prefix), inner)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 2}, msg2[len(prefix):len(prefix)+8])
	require.NotEqual(t, msg, msg2)

	// And a message built by the independent construction with padding
	// opens: receivers accept any pad that fits.
	iv = []byte{9, 9, 9, 9, 9, 9, 9, 9}
	pt := append(bytes.Clone(inner), 0xee, 0xee, 0xee, 3)
	body := append(bytes.Clone(iv), gcm.Seal(nil, append(bytes.Clone(salt), iv...), pt, prefix)...)
	got, err := c.Open(prefix, body)
	require.NoError(t, err)
	require.Equal(t, inner, got)

	// A pad length that does not fit the authentic plaintext.
	pt = append(bytes.Clone(inner), byte(len(inner)+1))
	body = append(bytes.Clone(iv), gcm.Seal(nil, append(bytes.Clone(salt), iv...), pt, prefix)...)
	_, err = c.Open(prefix, body)
	require.ErrorIs(t, err, ErrInvalidPadding)
	// Exactly fitting is fine (everything is padding).
	pt = append(bytes.Clone(inner), byte(len(inner)))
	body = append(bytes.Clone(iv), gcm.Seal(nil, append(bytes.Clone(salt), iv...), pt, prefix)...)
	got, err = c.Open(prefix, body)
	require.NoError(t, err)
	require.Empty(t, got)
}

// TestSKChaCha20RFC7634 is the IKEv2 example of RFC 7634 Appendix B: an
// INFORMATIONAL request (message ID 9) with one Notify payload.
func TestSKChaCha20RFC7634(t *testing.T) {
	keymat := fromHex(t, `
		80 81 82 83 84 85 86 87 88 89 8a 8b 8c 8d 8e 8f
		90 91 92 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f
		a0 a1 a2 a3`)
	prefix := fromHex(t, `
		c0 c1 c2 c3 c4 c5 c6 c7 d0 d1 d2 d3 d4 d5 d6 d7
		2e 20 25 00 00 00 00 09 00 00 00 45 29 00 00 29`)
	iv := fromHex(t, "10 11 12 13 14 15 16 17")
	inner := fromHex(t, "00 00 00 0c 00 00 40 01 00 00 00 0a")
	ctTag := fromHex(t, `
		61 03 94 70 1f 8d 01 7f 7c 12 92 48 89
		6b 71 bf e2 52 36 ef d7 cd c6 70 66 90 63 15 b2`)

	c, err := NewSKCipher(Suite{Encr: EncrChaCha20Poly1305, EncrKeyBits: 256}, keymat, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 0x45-len(prefix), c.BodyLen(len(inner)), "lengths in the RFC's header")

	body := append(bytes.Clone(iv), ctTag...)
	got, err := c.Open(prefix, body)
	require.NoError(t, err)
	require.Equal(t, inner, got)

	// Sealing with the RFC's IV reproduces the RFC's bytes.
	c.ivBase = binary.BigEndian.Uint64(iv) - 1
	msg, err := c.Seal(bytes.Clone(prefix), inner)
	require.NoError(t, err)
	require.Equal(t, append(bytes.Clone(prefix), body...), msg)

	// Cross-check the construction with x/crypto directly.
	aead, _ := chacha20poly1305.New(keymat[:32])
	require.Equal(t, ctTag, aead.Seal(nil, append(bytes.Clone(keymat[32:]), iv...), append(bytes.Clone(inner), 0), prefix))
}

// TestSKCBCIndependent checks AES-CBC + HMAC-SHA2-256-128 against
// crypto/cipher and crypto/hmac used directly.
func TestSKCBCIndependent(t *testing.T) {
	s := Suite{Encr: EncrAESCBC, EncrKeyBits: 256, Integ: IntegHMACSHA256128}
	ek, ik := pattern(32, 1), pattern(32, 0x81)
	c, err := NewSKCipher(s, ek, ik, nil)
	require.NoError(t, err)
	block, _ := aes.NewCipher(ek)
	icv := func(data []byte) []byte { return refHMAC(sha256.New, ik, data)[:16] }

	// Our output, checked by hand.
	inner := []byte("twenty bytes inner!!")
	prefix := testPrefix(c, len(inner))
	msg, err := c.Seal(bytes.Clone(prefix), inner)
	require.NoError(t, err)
	require.Len(t, msg, len(prefix)+16+32+16)
	require.Equal(t, icv(msg[:len(msg)-16]), msg[len(msg)-16:])
	pt := make([]byte, 32)
	cipher.NewCBCDecrypter(block, msg[len(prefix):len(prefix)+16]).CryptBlocks(pt, msg[len(prefix)+16:len(msg)-16])
	require.Equal(t, inner, pt[:20])
	require.Equal(t, byte(11), pt[31], "pad length")

	// A message built by hand, with non-minimal padding, opens.
	build := func(pt []byte) []byte {
		iv := pattern(16, 0xf0)
		ct := make([]byte, len(pt))
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, pt)
		body := append(iv, ct...)
		return append(body, icv(append(bytes.Clone(prefix), body...))...)
	}
	pt = append(bytes.Clone(inner), make([]byte, 27)...)
	pt = append(pt, 27) // 20 + 27 + 1 = 48
	got, err := c.Open(prefix, build(pt))
	require.NoError(t, err)
	require.Equal(t, inner, got)

	// Authentic but the pad length exceeds the plaintext: refused, no panic.
	for _, pad := range []byte{48, 200, 255} {
		pt[47] = pad
		_, err = c.Open(prefix, build(pt))
		require.ErrorIs(t, err, ErrInvalidPadding, "pad %d", pad)
	}
	pt[47] = 47 // the whole plaintext is padding: empty inner
	got, err = c.Open(prefix, build(pt))
	require.NoError(t, err)
	require.Empty(t, got)

	// Authentic but not whole blocks: refused before decryption.
	body := build(pt)
	odd := append(bytes.Clone(body[:16+47]), icv(append(bytes.Clone(prefix), body[:16+47]...))...)
	_, err = c.Open(prefix, odd)
	require.ErrorIs(t, err, ErrShort)

	// Random IVs: two seals of the same input differ.
	m1, _ := c.Seal(bytes.Clone(prefix), inner)
	m2, _ := c.Seal(bytes.Clone(prefix), inner)
	require.NotEqual(t, m1[len(prefix):len(prefix)+16], m2[len(prefix):len(prefix)+16])
}

func TestSKSealInPlace(t *testing.T) {
	for _, tc := range skSuites {
		seal, open := skPair(t, tc.suite)
		inner := pattern(300, 7)
		prefix := testPrefix(seal, len(inner))
		buf := make([]byte, len(prefix), len(prefix)+seal.BodyLen(len(inner)))
		copy(buf, prefix)
		msg, err := seal.Seal(buf, inner)
		require.NoError(t, err)
		require.Same(t, &buf[0], &msg[0], "%s: appended in place", tc.name)
		got, err := open.Open(msg[:len(prefix)], msg[len(prefix):])
		require.NoError(t, err)
		require.Equal(t, inner, got)
		if isAEAD(tc.suite.Encr) {
			allocs := testing.AllocsPerRun(50, func() {
				_, _ = seal.Seal(buf[:len(prefix)], inner)
			})
			// The nonce escapes through the cipher.AEAD interface; the
			// message itself must not be copied.
			require.LessOrEqual(t, allocs, 1.0, "%s: Seal into a buffer with room", tc.name)
		}
	}
}

func TestSKOpenDoesNotModifyBody(t *testing.T) {
	for _, tc := range skSuites {
		seal, open := skPair(t, tc.suite)
		prefix := testPrefix(seal, 50)
		msg, err := seal.Seal(bytes.Clone(prefix), pattern(50, 0))
		require.NoError(t, err)
		orig := bytes.Clone(msg)
		_, err = open.Open(msg[:len(prefix)], msg[len(prefix):])
		require.NoError(t, err)
		require.Equal(t, orig, msg, tc.name)
	}
}

func TestSKConcurrent(t *testing.T) {
	for _, tc := range []Suite{skSuites[2].suite, skSuites[7].suite} {
		seal, open := skPair(t, tc)
		var wg sync.WaitGroup
		ivs := make(chan string, 400)
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					inner := pattern(g*7+i, byte(g))
					prefix := testPrefix(seal, len(inner))
					msg, err := seal.Seal(bytes.Clone(prefix), inner)
					if err != nil {
						t.Error(err)
						return
					}
					ivs <- string(msg[len(prefix) : len(prefix)+8])
					got, err := open.Open(prefix, msg[len(prefix):])
					if err != nil || !bytes.Equal(got, inner) {
						t.Errorf("round trip: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(ivs)
		seen := map[string]bool{}
		for iv := range ivs {
			require.False(t, seen[iv], "IV reused")
			seen[iv] = true
		}
	}
}

func TestSKCBCICVBeforeDecrypt(t *testing.T) {
	// Open computes the ICV over exactly prefix | IV | ciphertext.
	s := skSuites[7].suite
	seal, open := skPair(t, s)
	prefix := testPrefix(seal, 3)
	msg, err := seal.Seal(bytes.Clone(prefix), []byte("abc"))
	require.NoError(t, err)
	mac := hmac.New(sha256.New, pattern(32, 0x90))
	mac.Write(msg[:len(msg)-16])
	require.Equal(t, mac.Sum(nil)[:16], msg[len(msg)-16:])
	_, err = open.Open(prefix, msg[len(prefix):])
	require.NoError(t, err)
}
