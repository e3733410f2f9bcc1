package ikecrypto

import (
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	testNi   = pattern(32, 0x10)
	testNr   = pattern(32, 0x50)
	testGIR  = pattern(32, 0xa0)
	testSPIi = [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	testSPIr = [8]byte{9, 10, 11, 12, 13, 14, 15, 16}
)

// The three suites of notes §4.1.
var ikeSuites = []struct {
	name                  string
	suite                 Suite
	d, a, e, p, keymatLen int
}{
	{"AES-GCM-16-256/PRF-SHA256", Suite{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA256, DH: DHECP256}, 32, 0, 36, 32, 168},
	{"AES-GCM-16-128/PRF-SHA256", Suite{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHCurve25519}, 32, 0, 20, 32, 136},
	{"AES-CBC-256/HMAC-SHA2-256-128/PRF-SHA256", Suite{Encr: EncrAESCBC, EncrKeyBits: 256, Integ: IntegHMACSHA256128, PRF: PRFHMACSHA256, DH: DHMODP2048}, 32, 32, 32, 32, 224},
}

func TestDeriveIKEKeys(t *testing.T) {
	for _, tc := range ikeSuites {
		t.Run(tc.name, func(t *testing.T) {
			k, err := DeriveIKEKeys(tc.suite, testNi, testNr, testGIR, testSPIi, testSPIr)
			require.NoError(t, err)

			// Reference: SKEYSEED = prf(Ni | Nr, g^ir), KEYMAT = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
			h := hashFor(t, tc.suite.PRF)
			skeyseed := refHMAC(h, append(append([]byte{}, testNi...), testNr...), testGIR)
			seed := append(append(append(append([]byte{}, testNi...), testNr...), testSPIi[:]...), testSPIr[:]...)
			keymat := refPlus(h, skeyseed, seed, tc.keymatLen)

			got := [][]byte{k.D, k.Ai, k.Ar, k.Ei, k.Er, k.Pi, k.Pr}
			lens := []int{tc.d, tc.a, tc.a, tc.e, tc.e, tc.p, tc.p}
			total := 0
			for i, g := range got {
				require.Len(t, g, lens[i], "key %d", i)
				require.Equal(t, keymat[total:total+lens[i]], g, "key %d", i)
				total += lens[i]
			}
			require.Equal(t, tc.keymatLen, total)

			// Keys are independent slices: appending to one does not
			// clobber the next.
			_ = append(k.D, 0xff)
			require.Equal(t, keymat[tc.d:tc.d+tc.a], k.Ai)
			if tc.a == 0 {
				_ = append(k.Ar, 0xff)
				require.Equal(t, keymat[tc.d:tc.d+tc.e], k.Ei)
			}
		})
	}
}

func TestDeriveRekeyedIKEKeys(t *testing.T) {
	oldPRF, _ := NewPRF(PRFHMACSHA512)
	oldSKd := pattern(64, 0x33)
	s := ikeSuites[2].suite
	newSPIi, newSPIr := [8]byte{0xaa}, [8]byte{0xbb}
	k, err := DeriveRekeyedIKEKeys(oldPRF, oldSKd, s, testGIR, testNi, testNr, newSPIi, newSPIr)
	require.NoError(t, err)

	// SKEYSEED with the old PRF (SHA-512), KEYMAT with the new one (SHA-256).
	skeyseed := refHMAC(hashFor(t, 7), oldSKd, testGIR, testNi, testNr)
	require.Len(t, skeyseed, 64)
	seed := append(append(append(append([]byte{}, testNi...), testNr...), newSPIi[:]...), newSPIr[:]...)
	keymat := refPlus(hashFor(t, 5), skeyseed, seed, 224)
	require.Equal(t, keymat[:32], k.D)
	require.Equal(t, keymat[32:64], k.Ai)
	require.Equal(t, keymat[192:], k.Pr)

	// It differs from an initial derivation with the same inputs.
	k0, err := DeriveIKEKeys(s, testNi, testNr, testGIR, newSPIi, newSPIr)
	require.NoError(t, err)
	require.NotEqual(t, k0.D, k.D)

	_, err = DeriveRekeyedIKEKeys(PRF{}, oldSKd, s, testGIR, testNi, testNr, newSPIi, newSPIr)
	require.Error(t, err)
	_, err = DeriveRekeyedIKEKeys(oldPRF, nil, s, testGIR, testNi, testNr, newSPIi, newSPIr)
	require.Error(t, err)
	_, err = DeriveRekeyedIKEKeys(oldPRF, oldSKd, s, nil, testNi, testNr, newSPIi, newSPIr)
	require.Error(t, err)
}

func TestDeriveChildKeys(t *testing.T) {
	prf, _ := NewPRF(PRFHMACSHA256)
	skd := pattern(32, 0x77)
	h := hashFor(t, 5)
	for _, tc := range []struct {
		name          string
		cs            ChildSuite
		encr, integ   int
		total         int
		sharedSecrets [][]byte
	}{
		{"AES-GCM-16-256", ChildSuite{Encr: EncrAESGCM16, EncrKeyBits: 256}, 36, 0, 72, nil},
		{"AES-CBC-256/SHA256", ChildSuite{Encr: EncrAESCBC, EncrKeyBits: 256, Integ: IntegHMACSHA256128}, 32, 32, 128, nil},
		{"ChaCha20-Poly1305", ChildSuite{Encr: EncrChaCha20Poly1305, EncrKeyBits: 256, ESN: true}, 36, 0, 72, nil},
		{"AES-CBC-128/SHA512", ChildSuite{Encr: EncrAESCBC, EncrKeyBits: 128, Integ: IntegHMACSHA512256}, 16, 64, 160, nil},
	} {
		for _, pfs := range [][]byte{nil, testGIR} {
			k, err := DeriveChildKeys(prf, skd, tc.cs, pfs, testNi, testNr)
			require.NoError(t, err, tc.name)
			seed := append(append(append([]byte{}, pfs...), testNi...), testNr...)
			keymat := refPlus(h, skd, seed, tc.total)
			e, i := tc.encr, tc.integ
			require.Equal(t, keymat[:e], k.EncrI, tc.name)
			require.Equal(t, keymat[e:e+i], k.IntegI, tc.name)
			require.Equal(t, keymat[e+i:2*e+i], k.EncrR, tc.name)
			require.Equal(t, keymat[2*e+i:], k.IntegR, tc.name)
			require.Len(t, k.EncrI, e)
			require.Len(t, k.IntegR, i)
		}
	}
	_, err := DeriveChildKeys(PRF{}, skd, ChildSuite{Encr: EncrAESGCM16, EncrKeyBits: 256}, nil, testNi, testNr)
	require.Error(t, err)
	_, err = DeriveChildKeys(prf, nil, ChildSuite{Encr: EncrAESGCM16, EncrKeyBits: 256}, nil, testNi, testNr)
	require.Error(t, err)
	_, err = DeriveChildKeys(prf, skd, ChildSuite{Encr: EncrAESGCM16, EncrKeyBits: 256, Integ: IntegHMACSHA256128}, nil, testNi, testNr)
	require.ErrorIs(t, err, ErrUnsupportedAlgorithm)
}

func TestSuiteValidate(t *testing.T) {
	good := []Suite{
		{Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, DH: DHECP256},
		{Encr: EncrAESGCM16, EncrKeyBits: 192, PRF: PRFHMACSHA384, DH: DHECP384},
		{Encr: EncrChaCha20Poly1305, EncrKeyBits: 256, PRF: PRFHMACSHA512, DH: DHCurve25519},
		{Encr: EncrChaCha20Poly1305, PRF: PRFHMACSHA256},
		{Encr: EncrAESCBC, EncrKeyBits: 256, Integ: IntegHMACSHA256128, PRF: PRFHMACSHA256, DH: DHMODP2048},
		{Encr: EncrAESCBC, EncrKeyBits: 128, Integ: IntegHMACSHA196, PRF: PRFHMACSHA1, DH: DHMODP3072},
		{Encr: EncrAESCBC, EncrKeyBits: 192, Integ: IntegHMACSHA512256, PRF: PRFHMACSHA256, DH: DHECP521},
	}
	for _, s := range good {
		require.NoError(t, s.Validate(), "%+v", s)
	}
	bad := []Suite{
		{Encr: EncrAESGCM16, EncrKeyBits: 256, Integ: IntegHMACSHA256128, PRF: PRFHMACSHA256}, // AEAD with integ
		{Encr: EncrChaCha20Poly1305, EncrKeyBits: 128, PRF: PRFHMACSHA256},                    // ChaCha is 256 only
		{Encr: EncrAESCBC, EncrKeyBits: 256, PRF: PRFHMACSHA256},                              // CBC without integ
		{Encr: EncrAESCBC, EncrKeyBits: 512, Integ: IntegHMACSHA256128, PRF: PRFHMACSHA256},   // key size
		{Encr: EncrAESGCM16, PRF: PRFHMACSHA256},                                              // no key size
		{Encr: 3, EncrKeyBits: 192, Integ: IntegHMACSHA196, PRF: PRFHMACSHA1},                 // 3DES
		{Encr: EncrAESCBC, EncrKeyBits: 256, Integ: 5, PRF: PRFHMACSHA256},                    // AES-XCBC-96
		{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: 4},                                        // AES128-XCBC PRF
		{Encr: EncrAESGCM16, EncrKeyBits: 256},                                                // no PRF
		{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA256, DH: 2},                     // MODP-1024
	}
	for _, s := range bad {
		require.Error(t, s.Validate(), "%+v", s)
		_, err := DeriveIKEKeys(s, testNi, testNr, testGIR, testSPIi, testSPIr)
		require.Error(t, err, "%+v", s)
	}
	require.ErrorIs(t, Suite{Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA256, DH: 2}.Validate(), ErrUnsupportedGroup)
}

func TestKeyLengths(t *testing.T) {
	for _, tc := range []struct {
		encr uint16
		bits int
		want int
	}{
		{EncrAESCBC, 128, 16}, {EncrAESCBC, 192, 24}, {EncrAESCBC, 256, 32},
		{EncrAESGCM16, 128, 20}, {EncrAESGCM16, 192, 28}, {EncrAESGCM16, 256, 36},
		{EncrChaCha20Poly1305, 256, 36}, {EncrChaCha20Poly1305, 0, 36},
	} {
		n, err := EncrKeyLen(tc.encr, tc.bits)
		require.NoError(t, err)
		require.Equal(t, tc.want, n, "%d/%d", tc.encr, tc.bits)
	}
	_, err := EncrKeyLen(EncrAESCBC, 0)
	require.ErrorIs(t, err, ErrUnsupportedAlgorithm)
	_, err = EncrKeyLen(99, 128)
	require.ErrorIs(t, err, ErrUnsupportedAlgorithm)

	for integ, want := range map[uint16][2]int{0: {0, 0}, 2: {20, 12}, 12: {32, 16}, 13: {48, 24}, 14: {64, 32}} {
		n, err := IntegKeyLen(integ)
		require.NoError(t, err)
		require.Equal(t, want[0], n)
		require.Equal(t, want[1], ICVLen(integ))
	}
	_, err = IntegKeyLen(5)
	require.ErrorIs(t, err, ErrUnsupportedAlgorithm)
	require.Zero(t, ICVLen(5))
}

func TestNonceLength(t *testing.T) {
	s := ikeSuites[0].suite
	for _, n := range [][]byte{nil, pattern(15, 0), make([]byte, 257)} {
		_, err := DeriveIKEKeys(s, n, testNr, testGIR, testSPIi, testSPIr)
		require.ErrorIs(t, err, ErrInvalidNonce)
		_, err = DeriveIKEKeys(s, testNi, n, testGIR, testSPIi, testSPIr)
		require.ErrorIs(t, err, ErrInvalidNonce)
	}
	for _, n := range [][]byte{pattern(16, 0), make([]byte, 256)} {
		_, err := DeriveIKEKeys(s, n, n, testGIR, testSPIi, testSPIr)
		require.NoError(t, err)
	}
	_, err := DeriveIKEKeys(s, testNi, testNr, nil, testSPIi, testSPIr)
	require.ErrorIs(t, err, ErrInvalidKeyLength)
}
