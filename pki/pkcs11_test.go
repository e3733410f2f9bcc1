//go:build cgo && !nopkcs11

package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// Test token credentials; each test gets its own SoftHSM2 token directory.
const (
	hsmTokenLabel = "test"
	hsmUserPIN    = "1234"
	hsmSOPIN      = "5678"
)

// softHSMModuleCandidates are where Debian, Ubuntu, Fedora and source
// builds put the SoftHSM2 module. SOFTHSM2_MODULE overrides them.
var softHSMModuleCandidates = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// skipOrFailPKCS11 skips a test whose tools are missing, loudly, except in
// CI, which installs softhsm2 and opensc and must therefore run the test.
func skipOrFailPKCS11(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("PKCS#11 test cannot run although CI is set (install softhsm2 and opensc): %s", reason)
	}
	tb.Skip("SKIPPING PKCS#11 test: " + reason + " (apt-get install softhsm2 opensc)")
}

// softHSMModule returns the SoftHSM2 module path or skips/fails.
func softHSMModule(tb testing.TB) string {
	tb.Helper()
	candidates := softHSMModuleCandidates
	if m := os.Getenv("SOFTHSM2_MODULE"); m != "" {
		candidates = []string{m}
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	skipOrFailPKCS11(tb, "SoftHSM2 module libsofthsm2.so not found in "+strings.Join(candidates, ", "))
	return ""
}

// testHSM is a SoftHSM2 token in a private directory.
type testHSM struct {
	module string
	conf   string
}

// newTestHSM creates a fresh SoftHSM2 token labelled "test" (user PIN 1234,
// SO PIN 5678) in tb's temporary directory and points SOFTHSM2_CONF at it.
func newTestHSM(tb testing.TB) *testHSM {
	tb.Helper()
	module := softHSMModule(tb)
	for _, tool := range []string{"softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFailPKCS11(tb, tool+" not found in PATH")
		}
	}
	dir := tb.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	confText := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", hsmTokenLabel,
		"--pin", hsmUserPIN, "--so-pin", hsmSOPIN).CombinedOutput()
	if err != nil {
		tb.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return &testHSM{module: module, conf: conf}
}

// config returns a PKCS11Config for the test token.
func (h *testHSM) config() PKCS11Config {
	return PKCS11Config{Module: h.module, TokenLabel: hsmTokenLabel, PIN: hsmUserPIN}
}

// open opens the test token and closes it when the test ends.
func (h *testHSM) open(tb testing.TB) *Token {
	tb.Helper()
	tok, err := OpenToken(h.config())
	if err != nil {
		tb.Fatalf("OpenToken: %v", err)
	}
	tb.Cleanup(func() {
		if err := tok.Close(); err != nil {
			tb.Errorf("Token.Close: %v", err)
		}
	})
	return tok
}

// pkcs11Tool runs pkcs11-tool against the test token.
func (h *testHSM) pkcs11Tool(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("pkcs11-tool", append([]string{"--module", h.module}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// signAndVerify signs a message with every scheme the key type supports and
// verifies each signature against the public key in software.
func signAndVerify(t *testing.T, key crypto.Signer) {
	t.Helper()
	msg := []byte("remotegate: signed on the token")
	d256 := sha256.Sum256(msg)
	d384 := sha512.Sum384(msg)
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		for _, c := range []struct {
			hash   crypto.Hash
			digest []byte
		}{{crypto.SHA256, d256[:]}, {crypto.SHA384, d384[:]}} {
			sig, err := key.Sign(rand.Reader, c.digest, c.hash)
			if err != nil {
				t.Fatalf("ECDSA Sign(%v): %v", c.hash, err)
			}
			if !ecdsa.VerifyASN1(pub, c.digest, sig) {
				t.Errorf("ECDSA %v signature does not verify", c.hash)
			}
		}
	case *rsa.PublicKey:
		sig, err := key.Sign(rand.Reader, d256[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 Sign: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d256[:], sig); err != nil {
			t.Errorf("RSA PKCS#1 v1.5 SHA-256 signature does not verify: %v", err)
		}
		sig, err = key.Sign(rand.Reader, d384[:], crypto.SHA384)
		if err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 SHA-384 Sign: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA384, d384[:], sig); err != nil {
			t.Errorf("RSA PKCS#1 v1.5 SHA-384 signature does not verify: %v", err)
		}
		for _, salt := range []int{rsa.PSSSaltLengthEqualsHash, rsa.PSSSaltLengthAuto, 20} {
			opts := &rsa.PSSOptions{SaltLength: salt, Hash: crypto.SHA256}
			sig, err := key.Sign(rand.Reader, d256[:], opts)
			if err != nil {
				t.Fatalf("RSA-PSS Sign (salt %d): %v", salt, err)
			}
			want := salt
			if salt <= 0 {
				want = sha256.Size
			}
			// Verifying with the exact salt length proves the token used
			// the one we asked for.
			if err := rsa.VerifyPSS(pub, crypto.SHA256, d256[:], sig, &rsa.PSSOptions{SaltLength: want}); err != nil {
				t.Errorf("RSA-PSS signature (salt option %d) does not verify with salt %d: %v", salt, want, err)
			}
		}
	default:
		t.Fatalf("unexpected public key type %T", pub)
	}
}

func TestTokenGenerateSignVerify(t *testing.T) {
	h := newTestHSM(t)
	tok := h.open(t)
	algs := []KeyAlgorithm{ECDSAP256, ECDSAP384, RSA3072}
	for i, alg := range algs {
		t.Run(alg.String(), func(t *testing.T) {
			key, err := tok.GenerateKey("key-"+alg.String(), []byte{byte(i + 1)}, alg)
			if err != nil {
				t.Fatalf("GenerateKey: %v", err)
			}
			switch pub := key.Public().(type) {
			case *ecdsa.PublicKey:
				if want := alg.curve(); pub.Curve != want {
					t.Errorf("curve %s, want %s", pub.Curve.Params().Name, want.Params().Name)
				}
			case *rsa.PublicKey:
				if pub.N.BitLen() != alg.rsaBits() {
					t.Errorf("modulus of %d bits, want %d", pub.N.BitLen(), alg.rsaBits())
				}
			}
			signAndVerify(t, key)
		})
	}

	// The keys are token objects: a new Token (after closing the first
	// one, as after a restart) finds them by label, by ID and by both.
	if err := tok.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	tok2 := h.open(t)
	for i, alg := range algs {
		for _, sel := range []struct {
			label string
			id    []byte
		}{{"key-" + alg.String(), nil}, {"", []byte{byte(i + 1)}}, {"key-" + alg.String(), []byte{byte(i + 1)}}} {
			key, err := tok2.Signer(sel.label, sel.id)
			if err != nil {
				t.Fatalf("Signer(%q, %x): %v", sel.label, sel.id, err)
			}
			if got := key.(*tokenSigner).label; got != "key-"+alg.String() {
				t.Errorf("Signer(%q, %x) found key %q", sel.label, sel.id, got)
			}
			signAndVerify(t, key)
		}
	}
}

func TestTokenKeyIsSensitiveAndNotExtractable(t *testing.T) {
	h := newTestHSM(t)
	tok := h.open(t)
	key, err := tok.GenerateKey("ca-key", []byte{0xca, 0xfe}, ECDSAP256)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}

	// What an administrator would check with the standard tool.
	out := h.pkcs11Tool(t, "--login", "--pin", hsmUserPIN, "--list-objects", "--type", "privkey")
	var block string
	for _, b := range strings.Split(out, "Private Key Object") {
		if strings.Contains(b, "label:      ca-key") {
			block = b
		}
	}
	if block == "" {
		t.Fatalf("pkcs11-tool does not list the private key ca-key:\n%s", out)
	}
	for _, want := range []string{"ID:         cafe", "sensitive", "always sensitive", "never extractable", "local"} {
		if !strings.Contains(block, want) {
			t.Errorf("pkcs11-tool output for ca-key lacks %q:\n%s", want, block)
		}
	}
	usage := block[strings.Index(block, "Usage:"):]
	usage = usage[:strings.IndexByte(usage, '\n')]
	if !strings.Contains(usage, "sign") || strings.Contains(usage, "decrypt") || strings.Contains(usage, "unwrap") {
		t.Errorf("private key usage should be sign only, got %q", usage)
	}

	// The same through the PKCS#11 API.
	ts := key.(*tokenSigner)
	boolAttrs := map[uint]bool{
		pkcs11.CKA_TOKEN:             true,
		pkcs11.CKA_PRIVATE:           true,
		pkcs11.CKA_SENSITIVE:         true,
		pkcs11.CKA_ALWAYS_SENSITIVE:  true,
		pkcs11.CKA_EXTRACTABLE:       false,
		pkcs11.CKA_NEVER_EXTRACTABLE: true,
		pkcs11.CKA_SIGN:              true,
		pkcs11.CKA_DECRYPT:           false,
	}
	names := map[uint]string{
		pkcs11.CKA_TOKEN: "CKA_TOKEN", pkcs11.CKA_PRIVATE: "CKA_PRIVATE", pkcs11.CKA_SENSITIVE: "CKA_SENSITIVE",
		pkcs11.CKA_ALWAYS_SENSITIVE: "CKA_ALWAYS_SENSITIVE", pkcs11.CKA_EXTRACTABLE: "CKA_EXTRACTABLE",
		pkcs11.CKA_NEVER_EXTRACTABLE: "CKA_NEVER_EXTRACTABLE", pkcs11.CKA_SIGN: "CKA_SIGN", pkcs11.CKA_DECRYPT: "CKA_DECRYPT",
	}
	err = tok.withSession(func(s pkcs11.SessionHandle) error {
		for typ, want := range boolAttrs {
			attrs, err := tok.ctx.GetAttributeValue(s, ts.priv, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
			if err != nil {
				return fmt.Errorf("GetAttributeValue(%s): %w", names[typ], err)
			}
			got := len(attrs[0].Value) == 1 && attrs[0].Value[0] != 0
			if got != want {
				t.Errorf("%s = %v, want %v", names[typ], got, want)
			}
		}
		// A sensitive key's value cannot be read at all.
		_, err := tok.ctx.GetAttributeValue(s, ts.priv, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if !isP11Error(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
			t.Errorf("reading CKA_VALUE of the private key: got %v, want CKR_ATTRIBUTE_SENSITIVE", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// selfSignedCA makes a CA certificate whose key is signer.
func selfSignedCA(t testing.TB, signer crypto.Signer, sigAlg x509.SignatureAlgorithm) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "remotegate token CA", Organization: []string{"remotegate test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SignatureAlgorithm:    sigAlg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		t.Fatalf("CreateCertificate (CA, %v): %v", sigAlg, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// issueLeaf issues a certificate for pub, signed by the CA's key.
func issueLeaf(t testing.TB, ca *x509.Certificate, caKey crypto.Signer, pub crypto.PublicKey, cn string, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = append(tmpl.IPAddresses, []byte{127, 0, 0, 1})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatalf("CreateCertificate (%s): %v", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writeCertPEM(t testing.TB, dir, name string, cert *x509.Certificate) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTokenCAAcceptedByOpenSSL is the acceptance test: a CA whose key is
// generated on the token issues certificates that openssl verify accepts.
func TestTokenCAAcceptedByOpenSSL(t *testing.T) {
	h := newTestHSM(t)
	if _, err := exec.LookPath("openssl"); err != nil {
		skipOrFailPKCS11(t, "openssl not found in PATH")
	}
	tok := h.open(t)
	cases := []struct {
		alg    KeyAlgorithm
		sigAlg x509.SignatureAlgorithm
	}{
		{ECDSAP256, x509.ECDSAWithSHA256},
		{ECDSAP384, x509.ECDSAWithSHA384},
		{RSA3072, x509.SHA256WithRSA},
		{RSA3072, x509.SHA384WithRSAPSS},
	}
	for i, c := range cases {
		t.Run(c.alg.String()+"-"+c.sigAlg.String(), func(t *testing.T) {
			caKey, err := tok.GenerateKey(fmt.Sprintf("ca-%d", i), nil, c.alg)
			if err != nil {
				t.Fatalf("GenerateKey: %v", err)
			}
			ca := selfSignedCA(t, caKey, c.sigAlg)
			if ca.SignatureAlgorithm != c.sigAlg {
				t.Fatalf("CA signed with %v, want %v", ca.SignatureAlgorithm, c.sigAlg)
			}
			if err := ca.CheckSignatureFrom(ca); err != nil {
				t.Fatalf("Go rejects the self-signed CA: %v", err)
			}
			leafKey, err := GenerateKey(ECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			leaf := issueLeaf(t, ca, caKey, leafKey.Public(), "device-1", x509.ExtKeyUsageClientAuth)

			dir := t.TempDir()
			caFile := writeCertPEM(t, dir, "ca.pem", ca)
			leafFile := writeCertPEM(t, dir, "leaf.pem", leaf)
			out, err := exec.Command("openssl", "verify", "-CAfile", caFile, caFile, leafFile).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl verify rejects the certificates: %v\n%s", err, out)
			}
			for _, f := range []string{caFile, leafFile} {
				if !strings.Contains(string(out), f+": OK") {
					t.Errorf("openssl verify did not report %s: OK:\n%s", f, out)
				}
			}

			// A certificate signed by another key must be refused, or the
			// check above proves nothing.
			otherKey, _ := GenerateKey(ECDSAP256)
			forged := issueLeaf(t, selfSignedCA(t, otherKey, x509.ECDSAWithSHA256), otherKey, leafKey.Public(), "device-1", x509.ExtKeyUsageClientAuth)
			forgedFile := writeCertPEM(t, dir, "forged.pem", forged)
			if out, err := exec.Command("openssl", "verify", "-CAfile", caFile, forgedFile).CombinedOutput(); err == nil {
				t.Errorf("openssl verify accepts a certificate the token CA did not sign:\n%s", out)
			}
		})
	}
}

func TestOpenTokenWrongPIN(t *testing.T) {
	h := newTestHSM(t)
	cfg := h.config()
	cfg.PIN = "0000"
	tok, err := OpenToken(cfg)
	if err == nil {
		tok.Close()
		t.Fatal("OpenToken with a wrong PIN succeeded")
	}
	if !errors.Is(err, ErrWrongPIN) {
		t.Errorf("error %v does not match ErrWrongPIN", err)
	}
	var p11err pkcs11.Error
	if !errors.As(err, &p11err) || p11err != pkcs11.CKR_PIN_INCORRECT {
		t.Errorf("error %v does not wrap CKR_PIN_INCORRECT", err)
	}

	// While another Token of this process is logged in, the token itself
	// no longer checks the PIN (CKR_USER_ALREADY_LOGGED_IN); the wrong PIN
	// must still be refused.
	good := h.open(t)
	if _, err := OpenToken(cfg); !errors.Is(err, ErrWrongPIN) {
		t.Errorf("second OpenToken with a wrong PIN: got %v, want ErrWrongPIN", err)
	}
	// And the right PIN shares the login.
	second := h.open(t)
	key, err := second.GenerateKey("shared", nil, ECDSAP256)
	if err != nil {
		t.Fatalf("GenerateKey on the second Token: %v", err)
	}
	if err := second.Close(); err != nil {
		t.Fatalf("Close second: %v", err)
	}
	// Closing the second Token must not log the first one out.
	if _, err := good.Signer("shared", nil); err != nil {
		t.Errorf("first Token lost its login when the second closed: %v", err)
	}
	if _, err := key.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, ErrTokenClosed) {
		t.Errorf("Sign with a key of a closed Token: got %v, want ErrTokenClosed", err)
	}
}

func TestOpenTokenNotFound(t *testing.T) {
	h := newTestHSM(t)
	for _, cfg := range []PKCS11Config{
		{Module: h.module, TokenLabel: "no-such-token", PIN: hsmUserPIN},
		{Module: h.module, TokenLabel: hsmTokenLabel, TokenSerial: "0000000000000000", PIN: hsmUserPIN},
	} {
		tok, err := OpenToken(cfg)
		if err == nil {
			tok.Close()
			t.Fatalf("OpenToken(%v) succeeded", cfg)
		}
		if !errors.Is(err, ErrTokenNotFound) {
			t.Errorf("OpenToken(%v): %v does not match ErrTokenNotFound", cfg, err)
		}
		if !strings.Contains(err.Error(), `"test"`) {
			t.Errorf("error %q does not list the present token \"test\"", err)
		}
	}
	// By serial alone.
	tok := h.open(t)
	bySerial, err := OpenToken(PKCS11Config{Module: h.module, TokenSerial: tok.Serial(), PIN: hsmUserPIN})
	if err != nil {
		t.Fatalf("OpenToken by serial %q: %v", tok.Serial(), err)
	}
	if bySerial.Label() != hsmTokenLabel {
		t.Errorf("token by serial has label %q", bySerial.Label())
	}
	bySerial.Close()
}

func TestOpenTokenBadModule(t *testing.T) {
	notAModule := filepath.Join(t.TempDir(), "libnot-pkcs11.so")
	if err := os.WriteFile(notAModule, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, module := range []string{"", "/nonexistent/libpkcs11.so", notAModule} {
		_, err := OpenToken(PKCS11Config{Module: module, TokenLabel: "x"})
		if !errors.Is(err, ErrModuleLoad) {
			t.Errorf("OpenToken(module %q): got %v, want ErrModuleLoad", module, err)
		}
	}
	if _, err := OpenToken(PKCS11Config{Module: "/nonexistent/libpkcs11.so"}); err == nil {
		t.Error("OpenToken without label or serial succeeded")
	}
}

func TestTokenConcurrentSignatures(t *testing.T) {
	h := newTestHSM(t)
	cfg := h.config()
	cfg.MaxSessions = 4
	tok, err := OpenToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	for _, alg := range []KeyAlgorithm{ECDSAP256, RSA2048} {
		key, err := tok.GenerateKey("concurrent-"+alg.String(), nil, alg)
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		const n = 100
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				digest := sha256.Sum256([]byte(fmt.Sprintf("message %d", i)))
				var opts crypto.SignerOpts = crypto.SHA256
				if i%2 == 1 {
					opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
				}
				sig, err := key.Sign(rand.Reader, digest[:], opts)
				if err != nil {
					errs <- fmt.Errorf("signature %d: %w", i, err)
					return
				}
				switch pub := key.Public().(type) {
				case *ecdsa.PublicKey:
					if !ecdsa.VerifyASN1(pub, digest[:], sig) {
						errs <- fmt.Errorf("signature %d does not verify", i)
					}
				case *rsa.PublicKey:
					var err error
					if pss, ok := opts.(*rsa.PSSOptions); ok {
						err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, pss)
					} else {
						err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
					}
					if err != nil {
						errs <- fmt.Errorf("signature %d does not verify: %w", i, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%v: %v", alg, err)
		}
		if got := len(tok.idle); got > cfg.MaxSessions {
			t.Errorf("%d idle sessions, more than MaxSessions %d", got, cfg.MaxSessions)
		}
	}
}

func TestTokenKeyManagement(t *testing.T) {
	h := newTestHSM(t)
	tok := h.open(t)
	if _, err := tok.GenerateKey("dup", []byte{7}, ECDSAP256); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		label string
		id    []byte
	}{{"dup", nil}, {"other", []byte{7}}} {
		if _, err := tok.GenerateKey(c.label, c.id, ECDSAP256); !errors.Is(err, ErrKeyExists) {
			t.Errorf("GenerateKey(%q, %x) over an existing key: got %v, want ErrKeyExists", c.label, c.id, err)
		}
	}
	if _, err := tok.GenerateKey("", nil, ECDSAP256); err == nil {
		t.Error("GenerateKey without label and ID succeeded")
	}
	if _, err := tok.GenerateKey("bad-alg", nil, KeyAlgorithm(42)); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("GenerateKey(KeyAlgorithm(42)): got %v, want ErrUnsupportedAlgorithm", err)
	}
	if _, err := tok.Signer("missing", nil); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Signer(missing): got %v, want ErrKeyNotFound", err)
	}
	if _, err := tok.Signer("dup", []byte{8}); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Signer(dup, 08): got %v, want ErrKeyNotFound (label matches, ID does not)", err)
	}
	if err := tok.DeleteKey("dup", nil); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if _, err := tok.Signer("dup", nil); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Signer after DeleteKey: got %v, want ErrKeyNotFound", err)
	}
	out := h.pkcs11Tool(t, "--login", "--pin", hsmUserPIN, "--list-objects")
	if strings.Contains(out, "dup") {
		t.Errorf("DeleteKey left objects behind:\n%s", out)
	}
	if err := tok.DeleteKey("dup", nil); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("second DeleteKey: got %v, want ErrKeyNotFound", err)
	}

	// A key made by another tool (pkcs11-tool) is usable too.
	h.pkcs11Tool(t, "--login", "--pin", hsmUserPIN, "--keypairgen", "--key-type", "EC:secp384r1",
		"--label", "made-by-pkcs11-tool", "--id", "4242", "--usage-sign")
	key, err := tok.Signer("", []byte{0x42, 0x42})
	if err != nil {
		t.Fatalf("Signer for a pkcs11-tool key: %v", err)
	}
	signAndVerify(t, key)

	if err := tok.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tok.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := tok.Signer("made-by-pkcs11-tool", nil); !errors.Is(err, ErrTokenClosed) {
		t.Errorf("Signer after Close: got %v, want ErrTokenClosed", err)
	}
}

func TestTokenFromURI(t *testing.T) {
	h := newTestHSM(t)
	tok := h.open(t)
	want, err := tok.GenerateKey("uri-key", []byte{1, 2, 3}, ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(hsmUserPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{
		"pkcs11:token=test;object=uri-key;id=%01%02%03;type=private?module-path=" + h.module + "&pin-value=" + hsmUserPIN,
		"pkcs11:token=test;id=%01%02%03?module-path=" + h.module + "&pin-source=file:" + pinFile,
	} {
		u, err := ParsePKCS11URI(uri)
		if err != nil {
			t.Fatalf("ParsePKCS11URI(%q): %v", uri, err)
		}
		cfg, err := u.Config()
		if err != nil {
			t.Fatalf("Config: %v", err)
		}
		byURI, err := OpenToken(cfg)
		if err != nil {
			t.Fatalf("OpenToken(%v): %v", cfg, err)
		}
		key, err := byURI.Signer(u.Object, u.ID)
		if err != nil {
			t.Fatalf("Signer(%q, %x): %v", u.Object, u.ID, err)
		}
		if !key.Public().(*ecdsa.PublicKey).Equal(want.Public()) {
			t.Error("the URI found a different key")
		}
		signAndVerify(t, key)
		byURI.Close()
	}
}

func TestP11ErrorMapping(t *testing.T) {
	cases := []struct {
		code uint
		want error
	}{
		{pkcs11.CKR_PIN_INCORRECT, ErrWrongPIN},
		{pkcs11.CKR_PIN_LEN_RANGE, ErrWrongPIN},
		{pkcs11.CKR_PIN_LOCKED, ErrPINLocked},
		{pkcs11.CKR_DEVICE_REMOVED, ErrTokenRemoved},
		{pkcs11.CKR_TOKEN_NOT_PRESENT, ErrTokenRemoved},
		{pkcs11.CKR_SESSION_HANDLE_INVALID, ErrTokenRemoved},
		{pkcs11.CKR_SESSION_CLOSED, ErrTokenRemoved},
		{pkcs11.CKR_FUNCTION_FAILED, nil},
	}
	for _, c := range cases {
		err := p11Error("C_Test", pkcs11.Error(c.code))
		var p11err pkcs11.Error
		if !errors.As(err, &p11err) || uint(p11err) != c.code {
			t.Errorf("0x%x: %v does not wrap the pkcs11.Error", c.code, err)
		}
		if !strings.HasPrefix(err.Error(), "pki: ") || !strings.Contains(err.Error(), "C_Test") {
			t.Errorf("0x%x: message %q lacks the pki prefix or the operation", c.code, err)
		}
		for _, sentinel := range []error{ErrWrongPIN, ErrPINLocked, ErrTokenRemoved} {
			if got := errors.Is(err, sentinel); got != (sentinel == c.want) {
				t.Errorf("0x%x: errors.Is(%v, %v) = %v", c.code, err, sentinel, got)
			}
		}
	}
	if err := p11Error("C_Test", errors.New("other")); !strings.HasPrefix(err.Error(), "pki: ") {
		t.Errorf("non-PKCS#11 error %q lacks the pki prefix", err)
	}
}

func TestECDSARawToASN1(t *testing.T) {
	// Software signatures cover random r and s: about half have the high
	// bit set (needing a 0x00 pad) and some have leading zero bytes
	// (which must be stripped).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var highBit, leadingZero int
	for i := range 2000 {
		digest := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, 64)
		r.FillBytes(raw[:32])
		s.FillBytes(raw[32:])
		if raw[0]&0x80 != 0 || raw[32]&0x80 != 0 {
			highBit++
		}
		if raw[0] == 0 || raw[32] == 0 {
			leadingZero++
		}
		der, err := ecdsaRawToASN1(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], der) {
			t.Fatalf("converted signature %x does not verify", der)
		}
	}
	// With 2000 signatures both cases are practically certain: a leading
	// zero byte in r or s has probability 1/128 per signature, so missing
	// it 2000 times has probability below 1e-6.
	if highBit == 0 || leadingZero == 0 {
		t.Errorf("random signatures missed an edge case: %d with high bit, %d with leading zero", highBit, leadingZero)
	}

	// Exact encodings for the edge cases.
	cases := []struct {
		raw, der []byte
	}{
		// r = 0x80 needs a zero pad; s = 0x01 with leading zeros.
		{[]byte{0x00, 0x80, 0x00, 0x01}, []byte{0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01}},
		// r = 0x7fff needs no pad; s = 0x0100 keeps its inner zero byte.
		{[]byte{0x7f, 0xff, 0x01, 0x00}, []byte{0x30, 0x08, 0x02, 0x02, 0x7f, 0xff, 0x02, 0x02, 0x01, 0x00}},
		// r = 0xff (high bit) and s = 0x0080 (leading zero, then high bit).
		{[]byte{0x00, 0xff, 0x00, 0x80}, []byte{0x30, 0x08, 0x02, 0x02, 0x00, 0xff, 0x02, 0x02, 0x00, 0x80}},
	}
	for _, c := range cases {
		got, err := ecdsaRawToASN1(c.raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, c.der) {
			t.Errorf("ecdsaRawToASN1(%x) = %x, want %x", c.raw, got, c.der)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, {0, 0, 1, 1}} {
		if _, err := ecdsaRawToASN1(bad); err == nil {
			t.Errorf("ecdsaRawToASN1(%x) accepted a malformed signature", bad)
		}
	}
}

func TestPKCS1DigestInfo(t *testing.T) {
	// CKM_RSA_PKCS over our DigestInfo must equal a normal PKCS#1 v1.5
	// signature; rsa.SignPKCS1v15 with hash 0 is exactly "pad and sign".
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("digest info")
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		hh := h.New()
		hh.Write(msg)
		digest := hh.Sum(nil)
		input, err := pkcs1DigestInfo(h, digest)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		raw, err := rsa.SignPKCS1v15(nil, key, 0, input)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, h, digest, raw); err != nil {
			t.Errorf("%v: DigestInfo %x is not what PKCS#1 v1.5 expects: %v", h, input, err)
		}
	}
	if _, err := pkcs1DigestInfo(crypto.MD5, make([]byte, 16)); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("MD5: got %v, want ErrUnsupportedAlgorithm", err)
	}
}

func BenchmarkSignECDSAP256Token(b *testing.B) {
	h := newTestHSM(b)
	tok := h.open(b)
	key, err := tok.GenerateKey("bench", nil, ECDSAP256)
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

func BenchmarkSignECDSAP256TokenParallel(b *testing.B) {
	h := newTestHSM(b)
	tok := h.open(b)
	key, err := tok.GenerateKey("bench", nil, ECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("benchmark"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestKeyPairTemplates pins the private key attributes independently of
// SoftHSM2, whose defaults (for example CKA_EXTRACTABLE false) could hide a
// template that forgot one; a real smartcard may default differently.
func TestKeyPairTemplates(t *testing.T) {
	priv, pub := keyPairTemplates("ca", []byte{1}, nil)
	want := map[uint][]byte{
		pkcs11.CKA_CLASS:       pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY).Value,
		pkcs11.CKA_TOKEN:       {1},
		pkcs11.CKA_PRIVATE:     {1},
		pkcs11.CKA_SENSITIVE:   {1},
		pkcs11.CKA_EXTRACTABLE: {0},
		pkcs11.CKA_SIGN:        {1},
		pkcs11.CKA_DECRYPT:     {0},
		pkcs11.CKA_UNWRAP:      {0},
		pkcs11.CKA_DERIVE:      {0},
		pkcs11.CKA_LABEL:       []byte("ca"),
		pkcs11.CKA_ID:          {1},
	}
	got := map[uint][]byte{}
	for _, a := range priv {
		if _, dup := got[a.Type]; dup {
			t.Errorf("private template sets attribute 0x%x twice", a.Type)
		}
		got[a.Type] = a.Value
	}
	for typ, v := range want {
		if !bytes.Equal(got[typ], v) {
			t.Errorf("private template attribute 0x%x = %x, want %x", typ, got[typ], v)
		}
	}
	var pubToken bool
	for _, a := range pub {
		if a.Type == pkcs11.CKA_TOKEN && bytes.Equal(a.Value, []byte{1}) {
			pubToken = true
		}
	}
	if !pubToken {
		t.Error("public key template does not make a token object; Signer could not pair the key after a restart")
	}
}
