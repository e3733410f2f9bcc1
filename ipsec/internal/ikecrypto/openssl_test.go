package ikecrypto

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// These tests cross-check signatures and AlgorithmIdentifiers with an
// independent implementation, the openssl command, when it is installed.

func needOpenSSL(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
}

func openssl(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	return b
}

func writeKeys(t *testing.T, dir string, signer crypto.Signer) {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(signer.Public())
	require.NoError(t, err)
	writeFile(t, dir, "pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	pkcs8, err := x509.MarshalPKCS8PrivateKey(signer)
	require.NoError(t, err)
	writeFile(t, dir, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
}

func digestOf(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// pkeyutlOpts are the openssl options for a scheme; the input is the
// digest except for Ed25519 (-rawin, the octets).
func pkeyutlOpts(sc scheme) []string {
	switch {
	case sc.key == keyEd25519:
		return []string{"-rawin"}
	case sc.key == keyECDSA:
		return nil
	case sc.pss:
		return []string{"-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:" + strconv.Itoa(sc.salt), "-pkeyopt", "digest:" + hashName(sc.hash)}
	}
	return []string{"-pkeyopt", "digest:" + hashName(sc.hash)}
}

func hashName(h crypto.Hash) string {
	return map[crypto.Hash]string{crypto.SHA1: "sha1", crypto.SHA256: "sha256", crypto.SHA384: "sha384", crypto.SHA512: "sha512"}[h]
}

func TestOpenSSLVerifiesOurSignatures(t *testing.T) {
	needOpenSSL(t)
	k := getKeys()
	for _, tc := range []struct {
		name   string
		signer crypto.Signer
		peer   []uint16
		opts   SignOptions
	}{
		{"ECDSA-P256-SHA256", k.p256, SupportedHashes, SignOptions{}},
		{"ECDSA-P384-SHA384", k.p384, SupportedHashes, SignOptions{}},
		{"ECDSA-P521-SHA512", k.p521, SupportedHashes, SignOptions{}},
		{"RSA-PKCS1-SHA1 (method 1)", k.rsa2048, nil, SignOptions{}},
		{"RSA-PKCS1-SHA256", k.rsa2048, []uint16{HashSHA256}, SignOptions{}},
		{"RSA-PKCS1-SHA512", k.rsa2048, []uint16{HashSHA512}, SignOptions{}},
		{"RSA-PSS-SHA256", k.rsa2048, []uint16{HashSHA256}, SignOptions{RSAPSS: true}},
		{"RSA-PSS-SHA384", k.rsa2048, []uint16{HashSHA384}, SignOptions{RSAPSS: true}},
		{"Ed25519", k.ed, []uint16{HashIdentity}, SignOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeKeys(t, dir, tc.signer)
			method, data, err := SignWith(tc.signer, tc.peer, testOctets, tc.opts)
			require.NoError(t, err)
			var sc scheme
			sig := data
			if method == AuthDigitalSignature {
				sc, err = parseAlgorithmIdentifier(data[1 : 1+data[0]])
				require.NoError(t, err)
				sig = data[1+data[0]:]
			} else {
				require.Equal(t, AuthRSA, method)
				sc = scheme{key: keyRSA, hash: crypto.SHA1}
			}
			in := testOctets
			if sc.key != keyEd25519 {
				in = digestOf(sc.hash, testOctets)
			}
			writeFile(t, dir, "in.bin", in)
			writeFile(t, dir, "sig.bin", sig)
			args := append([]string{"pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-in", "in.bin", "-sigfile", "sig.bin"}, pkeyutlOpts(sc)...)
			out, err := openssl(t, dir, args...)
			require.NoError(t, err, out)
			require.Contains(t, out, "Signature Verified Successfully")

			// And openssl notices a different message.
			in[0] ^= 1
			writeFile(t, dir, "in.bin", in)
			out, err = openssl(t, dir, args...)
			require.Error(t, err, out)
		})
	}
}

func TestWeVerifyOpenSSLSignatures(t *testing.T) {
	needOpenSSL(t)
	k := getKeys()
	for _, tc := range []struct {
		name   string
		signer crypto.Signer
		alg    []byte
		sc     scheme
	}{
		{"ECDSA-P256-SHA256", k.p256, algECDSASHA256, scheme{key: keyECDSA, hash: crypto.SHA256}},
		{"ECDSA-P384-SHA512", k.p384, algECDSASHA512, scheme{key: keyECDSA, hash: crypto.SHA512}},
		{"RSA-PKCS1-SHA384", k.rsa2048, algRSASHA384, scheme{key: keyRSA, hash: crypto.SHA384}},
		{"RSA-PSS-SHA256", k.rsa2048, algPSSSHA256, scheme{key: keyRSA, hash: crypto.SHA256, pss: true, salt: 32}},
		{"RSA-PSS-SHA512", k.rsa2048, algPSSSHA512, scheme{key: keyRSA, hash: crypto.SHA512, pss: true, salt: 64}},
		{"Ed25519", k.ed, algEd25519, scheme{key: keyEd25519}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeKeys(t, dir, tc.signer)
			in := testOctets
			if tc.sc.key != keyEd25519 {
				in = digestOf(tc.sc.hash, testOctets)
			}
			writeFile(t, dir, "in.bin", in)
			args := append([]string{"pkeyutl", "-sign", "-inkey", "key.pem", "-in", "in.bin", "-out", "sig.bin"}, pkeyutlOpts(tc.sc)...)
			out, err := openssl(t, dir, args...)
			require.NoError(t, err, out)
			sig := readFile(t, dir, "sig.bin")
			require.NoError(t, Verify(tc.signer.Public(), AuthDigitalSignature, digitalSignature(tc.alg, sig), testOctets))
			require.ErrorIs(t, Verify(tc.signer.Public(), AuthDigitalSignature, digitalSignature(tc.alg, sig), testOctets[1:]), ErrAuthentication)
		})
	}
	// openssl's ECDSA signature as raw r‖s for method 9.
	dir := t.TempDir()
	writeKeys(t, dir, k.p256)
	writeFile(t, dir, "in.bin", digestOf(crypto.SHA256, testOctets))
	out, err := openssl(t, dir, "pkeyutl", "-sign", "-inkey", "key.pem", "-in", "in.bin", "-out", "sig.bin")
	require.NoError(t, err, out)
	raw, err := ecdsaDERToRaw(readFile(t, dir, "sig.bin"), 32)
	require.NoError(t, err)
	require.NoError(t, Verify(&k.p256.PublicKey, AuthECDSA256, raw, testOctets))
}

// TestPSSAlgorithmIdentifierMatchesOpenSSL compares our RSASSA-PSS
// AlgorithmIdentifiers with the signatureAlgorithm openssl writes into a
// PSS-signed certificate.
func TestPSSAlgorithmIdentifierMatchesOpenSSL(t *testing.T) {
	needOpenSSL(t)
	dir := t.TempDir()
	writeKeys(t, dir, getKeys().rsa2048)
	for _, tc := range []struct {
		hash string
		salt string
		want []byte
	}{{"sha256", "32", algPSSSHA256}, {"sha384", "48", algPSSSHA384}, {"sha512", "64", algPSSSHA512}} {
		out, err := openssl(t, dir, "req", "-x509", "-new", "-key", "key.pem", "-subj", "/CN=pss", "-"+tc.hash,
			"-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:"+tc.salt, "-outform", "DER", "-out", "cert.der")
		require.NoError(t, err, out)
		// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
		cert := cryptobyte.String(readFile(t, dir, "cert.der"))
		var seq, alg cryptobyte.String
		require.True(t, cert.ReadASN1(&seq, cbasn1.SEQUENCE))
		require.True(t, seq.SkipASN1(cbasn1.SEQUENCE))
		require.True(t, seq.ReadASN1Element(&alg, cbasn1.SEQUENCE))
		require.Equal(t, tc.want, []byte(alg), tc.hash)
	}
}
