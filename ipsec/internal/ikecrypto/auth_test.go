package ikecrypto

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"io"
	"math/big"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

type testKeys struct {
	p256, p384, p521 *ecdsa.PrivateKey
	rsa2048          *rsa.PrivateKey
	ed               ed25519.PrivateKey
}

var getKeys = sync.OnceValue(func() testKeys {
	var k testKeys
	k.p256, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k.p384, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	k.p521, _ = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	k.rsa2048, _ = rsa.GenerateKey(rand.Reader, 2048)
	_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
	return k
})

var testOctets = []byte("RealMessage2 | Ni | prf(SK_pr, IDr')")

// recordingSigner stands in for a PKCS#11 key: it only exposes
// crypto.Signer and records what it was asked to sign.
type recordingSigner struct {
	inner  crypto.Signer
	digest []byte
	opts   crypto.SignerOpts
}

func (r *recordingSigner) Public() crypto.PublicKey { return r.inner.Public() }

func (r *recordingSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	r.digest, r.opts = bytes.Clone(digest), opts
	return r.inner.Sign(rand, digest, opts)
}

func TestSignedOctetsAndPSK(t *testing.T) {
	prf, _ := NewPRF(PRFHMACSHA256)
	h := hashFor(t, 5)
	msg, nonce, skp := []byte("IKE_SA_INIT bytes"), pattern(32, 1), pattern(32, 2)
	idBody := []byte{2, 0, 0, 0, 'v', 'p', 'n'} // ID_FQDN "vpn"
	octets := SignedOctets(msg, nonce, prf, skp, idBody)
	want := append(append(bytes.Clone(msg), nonce...), refHMAC(h, skp, idBody)...)
	require.Equal(t, want, octets)

	psk := []byte("secret")
	pad := []byte{'K', 'e', 'y', ' ', 'P', 'a', 'd', ' ', 'f', 'o', 'r', ' ', 'I', 'K', 'E', 'v', '2'}
	require.Len(t, pad, 17)
	require.Equal(t, refHMAC(h, refHMAC(h, psk, pad), octets), PSKAuth(prf, psk, octets))
	require.NotEqual(t, PSKAuth(prf, []byte("other"), octets), PSKAuth(prf, psk, octets))

	mic := PSKAuth(prf, psk, octets)
	require.NoError(t, VerifyPSKAuth(prf, psk, octets, mic))
	require.ErrorIs(t, VerifyPSKAuth(prf, psk, octets[1:], mic), ErrAuthentication)
	require.ErrorIs(t, VerifyPSKAuth(prf, psk, octets, mic[:31]), ErrAuthentication)
	require.ErrorIs(t, VerifyPSKAuth(prf, psk, octets, nil), ErrAuthentication)
	require.ErrorIs(t, VerifyPSKAuth(prf, nil, octets, PSKAuth(prf, nil, octets)), ErrAuthentication)
	require.ErrorIs(t, VerifyPSKAuth(PRF{}, psk, octets, mic), ErrAuthentication)
	// A zero PRF never yields something an empty or fixed payload matches.
	require.Len(t, PSKAuth(PRF{}, psk, octets), 32)
	require.NotEqual(t, PSKAuth(PRF{}, psk, octets), PSKAuth(PRF{}, psk, octets))
}

func TestSignVerifyECDSA(t *testing.T) {
	k := getKeys()
	for _, tc := range []struct {
		key     *ecdsa.PrivateKey
		classic uint8
		size    int
		alg     []byte // chosen when the peer supports SHA-256/384/512
		alg512  []byte // chosen when the peer supports SHA-512 only
	}{
		{k.p256, AuthECDSA256, 32, algECDSASHA256, algECDSASHA512},
		{k.p384, AuthECDSA384, 48, algECDSASHA384, algECDSASHA512},
		{k.p521, AuthECDSA521, 66, algECDSASHA512, algECDSASHA512},
	} {
		name := tc.key.Curve.Params().Name
		pub := &tc.key.PublicKey

		// Classic method: raw r‖s of fixed width.
		rs := &recordingSigner{inner: tc.key}
		m, data, err := Sign(rs, nil, testOctets)
		require.NoError(t, err, name)
		require.Equal(t, tc.classic, m, name)
		require.Len(t, data, 2*tc.size, name)
		require.Len(t, rs.digest, rs.opts.HashFunc().Size(), "a digest, not the octets")
		require.NoError(t, Verify(pub, m, data, testOctets), name)
		require.ErrorIs(t, Verify(pub, m, data, []byte("other octets")), ErrAuthentication)
		// The raw form is not DER: method 14 framing of it fails.
		require.Error(t, Verify(pub, AuthDigitalSignature, digitalSignature(tc.alg, data), testOctets))

		// Digital Signature: DER with the AlgorithmIdentifier.
		m, data, err = Sign(rs, SupportedHashes, testOctets)
		require.NoError(t, err)
		require.Equal(t, AuthDigitalSignature, m)
		require.Equal(t, byte(len(tc.alg)), data[0])
		require.Equal(t, tc.alg, data[1:1+len(tc.alg)], name)
		_, _, ok := parseECDSADER(data[1+len(tc.alg):])
		require.True(t, ok, "DER signature")
		require.NoError(t, Verify(pub, m, data, testOctets))
		require.ErrorIs(t, Verify(pub, m, data, testOctets[1:]), ErrAuthentication)

		m, data, err = Sign(tc.key, []uint16{HashSHA512}, testOctets)
		require.NoError(t, err)
		require.Equal(t, AuthDigitalSignature, m)
		require.Equal(t, tc.alg512, data[1:1+len(tc.alg512)])
		require.NoError(t, Verify(pub, m, data, testOctets))

		// The peer offers only hashes we cannot use: fall back to classic.
		m, _, err = Sign(tc.key, []uint16{HashSHA1, HashIdentity}, testOctets)
		require.NoError(t, err)
		require.Equal(t, tc.classic, m)
	}

	// P-256 signs with SHA-256 first, but with SHA-384 if that is all the
	// peer has.
	_, data, err := Sign(k.p256, []uint16{HashSHA384}, testOctets)
	require.NoError(t, err)
	require.Equal(t, algECDSASHA384, data[1:13])
	// P-384 never uses SHA-256 (strongSwan's key size rule).
	m, _, err := Sign(k.p384, []uint16{HashSHA256}, testOctets)
	require.NoError(t, err)
	require.Equal(t, AuthECDSA384, m)

	// Method of another curve is refused.
	_, data, _ = Sign(k.p256, nil, testOctets)
	require.ErrorIs(t, Verify(&k.p256.PublicKey, AuthECDSA384, data, testOctets), ErrAuthentication)
	require.ErrorIs(t, Verify(&k.p384.PublicKey, AuthECDSA256, data, testOctets), ErrAuthentication)
	require.ErrorIs(t, Verify(&k.p256.PublicKey, AuthECDSA256, data[:63], testOctets), ErrAuthentication)
	require.ErrorIs(t, Verify(&k.rsa2048.PublicKey, AuthECDSA256, data, testOctets), ErrAuthentication)
}

func TestECDSARawConversion(t *testing.T) {
	// Small r and s need left padding to the coordinate size.
	der := []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x7f}
	raw, err := ecdsaDERToRaw(der, 32)
	require.NoError(t, err)
	want := make([]byte, 64)
	want[31], want[63] = 1, 0x7f
	require.Equal(t, want, raw)
	back, err := ecdsaRawToDER(raw)
	require.NoError(t, err)
	require.Equal(t, der, back)

	// High bit set: DER needs a leading zero, raw does not.
	raw[32] = 0x80
	back, err = ecdsaRawToDER(raw)
	require.NoError(t, err)
	r, s, ok := parseECDSADER(back)
	require.True(t, ok)
	require.Equal(t, int64(1), r.Int64())
	require.Equal(t, 0, s.Cmp(new(big.Int).SetBytes(raw[32:])))

	for _, bad := range [][]byte{nil, {0x30, 0}, {0x30, 0x03, 0x02, 0x01, 0x01}, append(bytes.Clone(der), 0)} {
		_, err := ecdsaDERToRaw(bad, 32)
		require.Error(t, err)
	}
	// r wider than the curve.
	big := []byte{0x30, 0x25, 0x02, 0x21, 0x01}
	big = append(big, make([]byte, 32)...)
	big = append(big, 0x02, 0x01, 0x01)
	_, err = ecdsaDERToRaw(big, 32)
	require.Error(t, err)
}

func TestSignVerifyRSA(t *testing.T) {
	k := getKeys()
	pub := &k.rsa2048.PublicKey

	// Classic: PKCS#1 v1.5 with SHA-1, signing a SHA-1 digest.
	rs := &recordingSigner{inner: k.rsa2048}
	m, data, err := Sign(rs, nil, testOctets)
	require.NoError(t, err)
	require.Equal(t, AuthRSA, m)
	require.Len(t, data, 256)
	require.Equal(t, crypto.SHA1, rs.opts)
	d := sha1.Sum(testOctets)
	require.Equal(t, d[:], rs.digest)
	require.NoError(t, Verify(pub, m, data, testOctets))
	require.ErrorIs(t, Verify(pub, m, data, []byte("x")), ErrAuthentication)

	for _, tc := range []struct {
		peer []uint16
		hash crypto.Hash
		alg  []byte
		pss  []byte
	}{
		{[]uint16{HashSHA256, HashSHA384, HashSHA512}, crypto.SHA256, algRSASHA256, algPSSSHA256},
		{[]uint16{HashSHA512, HashSHA384}, crypto.SHA384, algRSASHA384, algPSSSHA384},
		{[]uint16{HashSHA512}, crypto.SHA512, algRSASHA512, algPSSSHA512},
	} {
		m, data, err := Sign(rs, tc.peer, testOctets)
		require.NoError(t, err)
		require.Equal(t, AuthDigitalSignature, m)
		require.Equal(t, tc.hash, rs.opts)
		require.Equal(t, append([]byte{byte(len(tc.alg))}, tc.alg...), data[:1+len(tc.alg)])
		require.NoError(t, Verify(pub, m, data, testOctets), "%v", tc.hash)
		require.ErrorIs(t, Verify(pub, m, data, testOctets[:5]), ErrAuthentication)

		m, data, err = SignWith(rs, tc.peer, testOctets, SignOptions{RSAPSS: true})
		require.NoError(t, err)
		require.Equal(t, AuthDigitalSignature, m)
		opts, ok := rs.opts.(*rsa.PSSOptions)
		require.True(t, ok)
		require.Equal(t, tc.hash, opts.Hash)
		require.Equal(t, tc.hash.Size(), opts.SaltLength)
		require.Equal(t, tc.pss, data[1:1+len(tc.pss)])
		require.NoError(t, Verify(pub, m, data, testOctets), "PSS %v", tc.hash)
		require.ErrorIs(t, Verify(pub, m, data, testOctets[:5]), ErrAuthentication)
		// The salt length is enforced: the same signature under a PSS
		// identifier with another salt length does not verify.
		other := bytes.Clone(data)
		other[len(tc.pss)] ^= 0x01 // last byte of the AlgorithmIdentifier is the salt length
		require.ErrorIs(t, Verify(pub, m, other, testOctets), ErrAuthentication)
	}

	// Only SHA-1 offered: classic method.
	m, _, err = Sign(k.rsa2048, []uint16{HashSHA1}, testOctets)
	require.NoError(t, err)
	require.Equal(t, AuthRSA, m)

	// Larger keys start at SHA-384 (up to 7680 bits), then SHA-512. Only
	// the size of the public key matters, so a stub stands in for the
	// slow key generation.
	for bits, want := range map[int]crypto.Hash{3072: crypto.SHA256, 3073: crypto.SHA384, 4096: crypto.SHA384, 7680: crypto.SHA384, 8192: crypto.SHA512} {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		rs := &recordingSigner{inner: failingSigner{pub: &rsa.PublicKey{N: n.Add(n, big.NewInt(1)), E: 65537}, sig: []byte{1}}}
		m, data, err := Sign(rs, SupportedHashes, testOctets)
		require.NoError(t, err)
		require.Equal(t, AuthDigitalSignature, m)
		require.Equal(t, want, rs.opts, "%d bits", bits)
		require.Equal(t, algID(scheme{key: keyRSA, hash: want}), data[1:16])
	}
}

func TestSignVerifyEd25519(t *testing.T) {
	k := getKeys()
	pub := k.ed.Public()
	rs := &recordingSigner{inner: k.ed}
	m, data, err := Sign(rs, []uint16{HashSHA256, HashIdentity}, testOctets)
	require.NoError(t, err)
	require.Equal(t, AuthDigitalSignature, m)
	require.Equal(t, testOctets, rs.digest, "Ed25519 signs the octets themselves")
	require.Equal(t, crypto.Hash(0), rs.opts)
	require.Equal(t, append([]byte{7}, algEd25519...), data[:8])
	require.Len(t, data, 8+64)
	require.NoError(t, Verify(pub, m, data, testOctets))
	require.ErrorIs(t, Verify(pub, m, data, []byte("no")), ErrAuthentication)

	_, _, err = Sign(k.ed, []uint16{HashSHA256}, testOctets)
	require.ErrorIs(t, err, ErrUnsupportedAlgorithm)
	_, _, err = Sign(k.ed, nil, testOctets)
	require.ErrorIs(t, err, ErrUnsupportedAlgorithm)
	require.ErrorIs(t, Verify(pub, AuthRSA, data, testOctets), ErrAuthentication)
}

// TestVerifyKeyTypeMismatch: a method-14 AlgorithmIdentifier must match
// the certificate's key type, even if the rest looks plausible.
func TestVerifyKeyTypeMismatch(t *testing.T) {
	k := getKeys()
	_, ecSig, err := Sign(k.p256, SupportedHashes, testOctets)
	require.NoError(t, err)
	_, rsaSig, err := Sign(k.rsa2048, SupportedHashes, testOctets)
	require.NoError(t, err)
	_, edSig, err := Sign(k.ed, SupportedHashes, testOctets)
	require.NoError(t, err)

	// Right data, wrong key type.
	require.ErrorIs(t, Verify(&k.rsa2048.PublicKey, AuthDigitalSignature, ecSig, testOctets), ErrAuthentication)
	require.ErrorIs(t, Verify(k.ed.Public(), AuthDigitalSignature, rsaSig, testOctets), ErrAuthentication)
	require.ErrorIs(t, Verify(&k.p256.PublicKey, AuthDigitalSignature, edSig, testOctets), ErrAuthentication)

	// The ECDSA signature relabelled as RSA, checked with the ECDSA key.
	relabelled := digitalSignature(algRSASHA256, ecSig[1+len(algECDSASHA256):])
	err = Verify(&k.p256.PublicKey, AuthDigitalSignature, relabelled, testOctets)
	require.ErrorIs(t, err, ErrAuthentication)
	require.Contains(t, err.Error(), "RSA signature algorithm for an ECDSA key")

	// Relabelled to another hash of the right key type: no longer verifies.
	relabelled = digitalSignature(algECDSASHA384, ecSig[1+len(algECDSASHA256):])
	require.ErrorIs(t, Verify(&k.p256.PublicKey, AuthDigitalSignature, relabelled, testOctets), ErrAuthentication)
}

func TestVerifyRejects(t *testing.T) {
	k := getKeys()
	pub := &k.p256.PublicKey
	_, good, _ := Sign(k.p256, SupportedHashes, testOctets)
	sig := good[13:]
	sha1WithRSA := fromHex(t, "300d06092a864886f70d0101050500")
	ecdsaSHA1 := fromHex(t, "300906072a8648ce3d0401")
	for name, data := range map[string][]byte{
		"empty":              nil,
		"length only":        {12},
		"length too long":    append([]byte{200}, good[1:]...),
		"no signature":       good[:13],
		"length zero":        append([]byte{0}, sig...),
		"ecdsa-with-SHA1":    digitalSignature(ecdsaSHA1, sig),
		"sha1WithRSA":        digitalSignature(sha1WithRSA, sig),
		"trailing in AlgID":  digitalSignature(append(bytes.Clone(algECDSASHA256), 0), sig),
		"bad params":         digitalSignature(fromHex(t, "300c06082a8648ce3d0403020101ff"), sig),
		"not a sequence":     digitalSignature(fromHex(t, "310a06082a8648ce3d040302"), sig),
		"unknown OID":        digitalSignature(fromHex(t, "300506032a0304"), sig),
		"garbage":            bytes.Repeat([]byte{0xff}, 40),
		"ed25519 params":     digitalSignature(fromHex(t, "300706032b65700500"), sig),
		"PSS without params": digitalSignature(fromHex(t, "300b06092a864886f70d01010a"), sig),
	} {
		err := Verify(pub, AuthDigitalSignature, data, testOctets)
		require.ErrorIs(t, err, ErrAuthentication, name)
	}
	require.NoError(t, Verify(pub, AuthDigitalSignature, good, testOctets))

	// Other methods and keys.
	for _, m := range []uint8{0, AuthPSK, 3, 12, 13, 15, 255} {
		require.ErrorIs(t, Verify(pub, m, good, testOctets), ErrAuthentication, "method %d", m)
	}
	for _, key := range []crypto.PublicKey{nil, (*ecdsa.PublicKey)(nil), (*rsa.PublicKey)(nil), ed25519.PublicKey{1, 2}, "key"} {
		err := Verify(key, AuthDigitalSignature, good, testOctets)
		require.ErrorIs(t, err, ErrAuthentication)
		require.ErrorIs(t, err, ErrUnsupportedAlgorithm)
	}
	_, _, err := Sign(nil, nil, testOctets)
	require.Error(t, err)
}

func TestAlgorithmIdentifiers(t *testing.T) {
	for _, tc := range []struct {
		der []byte
		sc  scheme
	}{
		{algECDSASHA256, scheme{key: keyECDSA, hash: crypto.SHA256}},
		{algECDSASHA384, scheme{key: keyECDSA, hash: crypto.SHA384}},
		{algECDSASHA512, scheme{key: keyECDSA, hash: crypto.SHA512}},
		{algRSASHA256, scheme{key: keyRSA, hash: crypto.SHA256}},
		{algRSASHA384, scheme{key: keyRSA, hash: crypto.SHA384}},
		{algRSASHA512, scheme{key: keyRSA, hash: crypto.SHA512}},
		{algEd25519, scheme{key: keyEd25519}},
		{algPSSSHA256, scheme{key: keyRSA, hash: crypto.SHA256, pss: true, salt: 32}},
		{algPSSSHA384, scheme{key: keyRSA, hash: crypto.SHA384, pss: true, salt: 48}},
		{algPSSSHA512, scheme{key: keyRSA, hash: crypto.SHA512, pss: true, salt: 64}},
		// RSA with absent NULL; ECDSA with a NULL some encoders add.
		{fromHex(t, "300b06092a864886f70d01010b"), scheme{key: keyRSA, hash: crypto.SHA256}},
		{fromHex(t, "300c06082a8648ce3d0403020500"), scheme{key: keyECDSA, hash: crypto.SHA256}},
		// PSS with absent hash parameters (RFC 4055 allows both) and an
		// explicit trailer field 1.
		{fromHex(t, "303d06092a864886f70d01010a3030a00d300b0609608648016503040201a11a301806092a864886f70d010108300b0609608648016503040201a203020120"),
			scheme{key: keyRSA, hash: crypto.SHA256, pss: true, salt: 32}},
		{fromHex(t, "304606092a864886f70d01010a3039a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120a303020101"),
			scheme{key: keyRSA, hash: crypto.SHA256, pss: true, salt: 32}},
	} {
		require.Equal(t, byte(0x30), tc.der[0])
		require.Equal(t, len(tc.der)-2, int(tc.der[1]), "outer length of %x", tc.der)
		sc, err := parseAlgorithmIdentifier(tc.der)
		require.NoError(t, err, "%x", tc.der)
		require.Equal(t, tc.sc, sc, "%x", tc.der)
	}
	for name, der := range map[string]string{
		"PSS MGF1 hash differs": "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020120",
		"PSS default SHA-1":     "300d06092a864886f70d01010a3000",
		"PSS trailer 2":         "304606092a864886f70d01010a3039a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120a303020102",
		"PSS junk at end":       "304306092a864886f70d01010a3036a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a2030201200500",
		"PSS hash params junk":  "304106092a864886f70d01010a3034a00f300d06096086480165030402010101a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120",
	} {
		_, err := parseAlgorithmIdentifier(fromHex(t, der))
		require.Error(t, err, name)
	}
}

func TestSignerErrorsPropagate(t *testing.T) {
	boom := errors.New("token removed")
	s := failingSigner{pub: &getKeys().p256.PublicKey, err: boom}
	_, _, err := Sign(s, nil, testOctets)
	require.ErrorIs(t, err, boom)
	_, _, err = Sign(s, SupportedHashes, testOctets)
	require.ErrorIs(t, err, boom)
	// A signer returning a malformed ECDSA signature for a classic method.
	s.err, s.sig = nil, []byte{1, 2, 3}
	_, _, err = Sign(s, nil, testOctets)
	require.Error(t, err)
}

type failingSigner struct {
	pub crypto.PublicKey
	sig []byte
	err error
}

func (f failingSigner) Public() crypto.PublicKey { return f.pub }
func (f failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return f.sig, f.err
}

// TestECDSARawLeadingZero signs until r or s has a leading zero byte (1 in
// 128 per signature) and checks the raw form stays 64 bytes and verifies.
func TestECDSARawLeadingZero(t *testing.T) {
	k := getKeys().p256
	found := false
	for i := 0; i < 3000 && !found; i++ {
		_, data, err := Sign(k, nil, testOctets)
		require.NoError(t, err)
		require.Len(t, data, 64)
		if data[0] == 0 || data[32] == 0 {
			found = true
			require.NoError(t, Verify(&k.PublicKey, AuthECDSA256, data, testOctets))
		}
	}
	require.True(t, found)
}

func TestDigestsMatchHash(t *testing.T) {
	rs := &recordingSigner{inner: getKeys().p256}
	_, _, err := Sign(rs, []uint16{HashSHA256}, testOctets)
	require.NoError(t, err)
	d := sha256.Sum256(testOctets)
	require.Equal(t, d[:], rs.digest)
	require.Equal(t, crypto.SHA256, rs.opts)
}
