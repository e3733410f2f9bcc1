package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testKeyPassword is the password of the encrypted files in testdata/keys
// (see testdata/keys/generate.sh).
var testKeyPassword = []byte("testpass")

// requireKeysOpenSSL returns the openssl binary or skips loudly; in CI,
// where openssl is installed, a missing binary is a failure.
func requireKeysOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl not found although CI is set (apt-get install openssl)")
		}
		t.Skip("SKIPPING openssl interoperability test: openssl not found in PATH (apt-get install openssl)")
	}
	return path
}

// runKeysOpenSSL runs openssl and fails the test with its output on error.
func runKeysOpenSSL(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(requireKeysOpenSSL(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readTestKey(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "keys", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// equalKeys reports whether two private keys are the same key.
func equalKeys(a, b crypto.Signer) bool {
	ka, ok := a.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && ka.Equal(b)
}

// checkSigns signs with key and verifies with its public key, proving that
// the parsed key is a working private key and not just well-formed bytes.
func checkSigns(t testing.TB, key crypto.Signer) {
	t.Helper()
	msg := []byte("key file test")
	digest := sha256.Sum256(msg)
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil || !ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Errorf("ECDSA key does not sign verifiably (err %v)", err)
		}
	case *rsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("RSA key does not sign verifiably: %v", err)
		}
	case ed25519.PublicKey:
		sig, err := key.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil || !ed25519.Verify(pub, msg, sig) {
			t.Errorf("Ed25519 key does not sign verifiably (err %v)", err)
		}
	default:
		t.Errorf("unexpected public key type %T", pub)
	}
}

func keyDescription(key crypto.Signer) string {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PrivateKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", key)
	}
}

func TestParsePrivateKeyPEMFormats(t *testing.T) {
	cases := []struct {
		file     string
		password []byte
		want     string
		sameAs   string // plain file holding the same key
	}{
		{"rsa2048-pkcs1.pem", nil, "RSA 2048", ""},
		{"rsa2048-pkcs8.pem", nil, "RSA 2048", "rsa2048-pkcs1.pem"},
		{"ec-p256-sec1.pem", nil, "ECDSA P-256", ""},
		{"ec-p256-pkcs8.pem", nil, "ECDSA P-256", "ec-p256-sec1.pem"},
		{"ec-p384-pkcs8.pem", nil, "ECDSA P-384", ""},
		{"ed25519-pkcs8.pem", nil, "Ed25519", ""},
		{"ec-p256-aes256-sha256.pem", testKeyPassword, "ECDSA P-256", "ec-p256-sec1.pem"},
		{"ec-p256-aes128-sha1.pem", testKeyPassword, "ECDSA P-256", "ec-p256-sec1.pem"},
		{"rsa2048-aes192-sha512.pem", testKeyPassword, "RSA 2048", "rsa2048-pkcs1.pem"},
		{"ed25519-aes256.pem", testKeyPassword, "Ed25519", "ed25519-pkcs8.pem"},
		// A password given for an unencrypted key is ignored.
		{"ec-p384-pkcs8.pem", testKeyPassword, "ECDSA P-384", ""},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			key, err := ParsePrivateKeyPEM(readTestKey(t, c.file), c.password)
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			if got := keyDescription(key); got != c.want {
				t.Errorf("parsed %s, want %s", got, c.want)
			}
			checkSigns(t, key)
			if c.sameAs != "" {
				plain, err := ParsePrivateKeyPEM(readTestKey(t, c.sameAs), nil)
				if err != nil {
					t.Fatal(err)
				}
				if !equalKeys(key, plain) {
					t.Errorf("%s and %s hold different keys", c.file, c.sameAs)
				}
			}
		})
	}
}

func TestParsePrivateKeyPEMErrors(t *testing.T) {
	ecSEC1 := readTestKey(t, "ec-p256-sec1.pem")
	pkcs8 := readTestKey(t, "ec-p256-pkcs8.pem")
	encrypted := readTestKey(t, "ec-p256-aes256-sha256.pem")

	// Flip a byte of the ciphertext's last block: the padding no longer
	// checks out, which is what a wrong password looks like too.
	block, _ := pem.Decode(encrypted)
	tampered := bytes.Clone(block.Bytes)
	tampered[len(tampered)-1] ^= 0x55
	tamperedPEM := pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: tampered})

	garbled, _ := pem.Decode(pkcs8)
	garbledPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: garbled.Bytes[:len(garbled.Bytes)-5]})

	cases := []struct {
		name     string
		data     []byte
		password []byte
		want     error
		mention  string
	}{
		{"empty", nil, nil, ErrNoPrivateKey, ""},
		{"certificate only", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), nil, ErrNoPrivateKey, ""},
		{"two keys", append(bytes.Clone(pkcs8), readTestKey(t, "ec-p384-pkcs8.pem")...), nil, ErrMultiplePrivateKeys, ""},
		{"openssh key", pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte{1}}), nil, ErrUnsupportedKey, "OPENSSH"},
		{"x25519 cannot sign", readTestKey(t, "x25519-pkcs8.pem"), nil, ErrUnsupportedKey, "cannot sign"},
		{"truncated pkcs8", garbledPEM, nil, ErrMalformedKey, "PKCS#8"},
		{"no password", encrypted, nil, ErrPasswordRequired, ""},
		{"wrong password", encrypted, []byte("wrong"), ErrWrongPassword, ""},
		{"tampered ciphertext", tamperedPEM, testKeyPassword, ErrWrongPassword, ""},
		{"legacy Proc-Type PEM", readTestKey(t, "ec-p256-proctype.pem"), testKeyPassword, ErrLegacyEncryption, "Proc-Type"},
		{"PBES1", readTestKey(t, "ec-p256-pbes1.pem"), testKeyPassword, ErrLegacyEncryption, "PBES1"},
		{"scrypt", readTestKey(t, "ec-p256-scrypt.pem"), testKeyPassword, ErrUnsupportedEncryption, "scrypt"},
		{"3DES", readTestKey(t, "ec-p256-des3.pem"), testKeyPassword, ErrUnsupportedEncryption, "AES-CBC"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, err := ParsePrivateKeyPEM(c.data, c.password)
			if err == nil {
				t.Fatalf("parsed a %T, want error %v", key, c.want)
			}
			if !errors.Is(err, c.want) {
				t.Errorf("error %q does not match %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "pki: ") {
				t.Errorf("error %q lacks the pki: prefix", err)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("error %q does not mention %q", err, c.mention)
			}
		})
	}
	// The SEC1 file still parses: the EC PARAMETERS block before the key
	// is skipped, not mistaken for a second key.
	if _, err := ParsePrivateKeyPEM(ecSEC1, nil); err != nil {
		t.Errorf("SEC1 with EC PARAMETERS: %v", err)
	}
}

func TestLoadKeyFile(t *testing.T) {
	path := filepath.Join("testdata", "keys", "ec-p256-aes256-sha256.pem")
	key, err := LoadKeyFile(path, testKeyPassword)
	if err != nil {
		t.Fatalf("LoadKeyFile: %v", err)
	}
	checkSigns(t, key)

	_, err = LoadKeyFile(path, []byte("wrong"))
	if !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), path) {
		t.Errorf("wrong password: got %v, want ErrWrongPassword naming %s", err, path)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	if _, err := LoadKeyFile(missing, nil); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist naming the file", err)
	}
	huge := filepath.Join(t.TempDir(), "huge.pem")
	if err := os.WriteFile(huge, make([]byte, maxKeyFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(huge, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: got %v, want a size error", err)
	}
}

// softwareTestKeys returns one key of each supported type.
func softwareTestKeys(t testing.TB) []crypto.Signer {
	t.Helper()
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return []crypto.Signer{ec256, ec384, ec521, ed, rsaKey}
}

func TestMarshalPrivateKeyPEMRoundTrip(t *testing.T) {
	for _, key := range softwareTestKeys(t) {
		t.Run(keyDescription(key), func(t *testing.T) {
			plain, err := MarshalPrivateKeyPEM(key, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(plain, []byte("-----BEGIN PRIVATE KEY-----\n")) {
				t.Errorf("unencrypted output is not a PRIVATE KEY block:\n%s", plain)
			}
			// A cheap iteration count keeps this test fast; the real
			// count is covered by TestMarshalPrivateKeyPEMOpenSSLDecrypts.
			enc, err := marshalPrivateKeyPEM(key, []byte("s3cret"), 1000)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(enc, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")) {
				t.Errorf("encrypted output is not an ENCRYPTED PRIVATE KEY block:\n%s", enc)
			}
			for _, c := range []struct {
				data     []byte
				password []byte
			}{{plain, nil}, {enc, []byte("s3cret")}} {
				back, err := ParsePrivateKeyPEM(c.data, c.password)
				if err != nil {
					t.Fatalf("parsing our own output: %v", err)
				}
				if !equalKeys(key, back) {
					t.Error("round trip changed the key")
				}
			}
			if _, err := ParsePrivateKeyPEM(enc, []byte("s3cret!")); !errors.Is(err, ErrWrongPassword) {
				t.Errorf("wrong password: got %v, want ErrWrongPassword", err)
			}
		})
	}

	// Two encryptions of the same key differ (fresh salt and IV).
	key := softwareTestKeys(t)[0]
	a, _ := marshalPrivateKeyPEM(key, []byte("pw"), 1000)
	b, _ := marshalPrivateKeyPEM(key, []byte("pw"), 1000)
	if bytes.Equal(a, b) {
		t.Error("two encryptions are identical: salt or IV is not random")
	}

	var nilEC *ecdsa.PrivateKey
	for _, bad := range []crypto.Signer{nil, opaqueSigner{key}, nilEC, ed25519.PrivateKey{1, 2}} {
		if _, err := MarshalPrivateKeyPEM(bad, nil); !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("MarshalPrivateKeyPEM(%T): got %v, want ErrUnsupportedKey", bad, err)
		}
	}
}

// opaqueSigner stands for a key whose private part is not available, like
// a key on a token.
type opaqueSigner struct{ crypto.Signer }

// TestOpenSSLEncryptedKeysParse has openssl write encrypted keys the ways
// operators do and checks that they parse to the same key.
func TestOpenSSLEncryptedKeysParse(t *testing.T) {
	requireKeysOpenSSL(t)
	dir := t.TempDir()
	plainFile := filepath.Join(dir, "plain.pem")
	runKeysOpenSSL(t, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", plainFile)
	plain, err := LoadKeyFile(plainFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cipher := range []string{"aes-128-cbc", "aes-192-cbc", "aes-256-cbc"} {
		for _, prf := range []string{"hmacWithSHA1", "hmacWithSHA256", "hmacWithSHA384", "hmacWithSHA512"} {
			t.Run(cipher+"-"+prf, func(t *testing.T) {
				out := filepath.Join(dir, cipher+prf+".pem")
				runKeysOpenSSL(t, "pkcs8", "-topk8", "-v2", cipher, "-v2prf", prf, "-iter", "10000",
					"-in", plainFile, "-passout", "pass:open sesame", "-out", out)
				key, err := LoadKeyFile(out, []byte("open sesame"))
				if err != nil {
					t.Fatalf("LoadKeyFile: %v", err)
				}
				if !equalKeys(key, plain) {
					t.Error("decrypted key differs from the original")
				}
				if _, err := LoadKeyFile(out, []byte("open sesame ")); !errors.Is(err, ErrWrongPassword) {
					t.Errorf("wrong password: got %v, want ErrWrongPassword", err)
				}
			})
		}
	}
	// "openssl genpkey ... -aes256" writes encrypted PKCS#8 directly.
	for _, alg := range [][]string{
		{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"},
		{"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
		{"-algorithm", "ED25519"},
	} {
		t.Run("genpkey"+alg[1], func(t *testing.T) {
			out := filepath.Join(dir, "genpkey-"+alg[1]+".pem")
			runKeysOpenSSL(t, append(append([]string{"genpkey"}, alg...), "-aes256", "-pass", "pass:pw", "-out", out)...)
			key, err := LoadKeyFile(out, []byte("pw"))
			if err != nil {
				t.Fatalf("LoadKeyFile: %v", err)
			}
			checkSigns(t, key)
		})
	}
}

// TestMarshalPrivateKeyPEMOpenSSLDecrypts checks that openssl reads what
// MarshalPrivateKeyPEM writes, with the documented parameters.
func TestMarshalPrivateKeyPEMOpenSSLDecrypts(t *testing.T) {
	requireKeysOpenSSL(t)
	dir := t.TempDir()
	keys := softwareTestKeys(t)
	for i, key := range keys {
		t.Run(keyDescription(key), func(t *testing.T) {
			var enc []byte
			var err error
			if i == 0 {
				enc, err = MarshalPrivateKeyPEM(key, []byte("pass phrase"))
			} else {
				// The exported function's 600,000 iterations are tested
				// once; the other key types use a cheaper count.
				enc, err = marshalPrivateKeyPEM(key, []byte("pass phrase"), 2048)
			}
			if err != nil {
				t.Fatal(err)
			}
			encFile := filepath.Join(dir, fmt.Sprintf("enc%d.pem", i))
			if err := os.WriteFile(encFile, enc, 0o600); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				dump := runKeysOpenSSL(t, "asn1parse", "-in", encFile)
				for _, want := range []string{":PBES2", ":PBKDF2", ":hmacWithSHA256", ":aes-256-cbc", "INTEGER           :0927C0"} {
					if !strings.Contains(dump, want) {
						t.Errorf("openssl asn1parse output lacks %q (600000 = 0x0927C0):\n%s", want, dump)
					}
				}
			}
			plainFile := filepath.Join(dir, fmt.Sprintf("plain%d.pem", i))
			runKeysOpenSSL(t, "pkcs8", "-in", encFile, "-passin", "pass:pass phrase", "-out", plainFile)
			back, err := LoadKeyFile(plainFile, nil)
			if err != nil {
				t.Fatalf("parsing openssl's decryption: %v", err)
			}
			if !equalKeys(key, back) {
				t.Error("openssl decrypted a different key")
			}
			out, err := exec.Command("openssl", "pkcs8", "-in", encFile, "-passin", "pass:wrong", "-out", filepath.Join(dir, "x.pem")).CombinedOutput()
			if err == nil {
				t.Errorf("openssl decrypted our file with a wrong password:\n%s", out)
			}
		})
	}
}

// FuzzParsePrivateKeyPEM checks that no input panics, and that every key
// that parses survives a MarshalPrivateKeyPEM round trip.
func FuzzParsePrivateKeyPEM(f *testing.F) {
	// A crafted iteration count would make single inputs take seconds.
	saved := maxPBKDF2Iterations
	maxPBKDF2Iterations = 20_000
	f.Cleanup(func() { maxPBKDF2Iterations = saved })

	entries, err := os.ReadDir(filepath.Join("testdata", "keys"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".pem") {
			data := readTestKey(f, e.Name())
			f.Add(data, testKeyPassword)
			f.Add(data, []byte(nil))
		}
	}
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"), []byte(nil))
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"), []byte("x"))

	f.Fuzz(func(t *testing.T, data, password []byte) {
		key, err := ParsePrivateKeyPEM(data, password)
		if err != nil {
			if key != nil {
				t.Fatalf("error %v with a non-nil key", err)
			}
			if !strings.HasPrefix(err.Error(), "pki: ") {
				t.Fatalf("error %q lacks the pki: prefix", err)
			}
			return
		}
		for _, pw := range [][]byte{nil, []byte("fuzz")} {
			out, err := marshalPrivateKeyPEM(key, pw, 1)
			if err != nil {
				t.Fatalf("cannot marshal a parsed %T: %v", key, err)
			}
			back, err := ParsePrivateKeyPEM(out, pw)
			if err != nil {
				t.Fatalf("cannot parse our own output: %v", err)
			}
			if !equalKeys(key, back) {
				t.Fatal("round trip changed the key")
			}
		}
	})
}
