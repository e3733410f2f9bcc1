package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// openssl runs the openssl command, skipping the test loudly when it is
// missing (failing instead when CI is set: CI installs it).
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl not found (CI is set, so this fails instead of skipping)")
		}
		t.Skip("SKIPPING openssl cross-check: openssl not found (install it: make deps)")
	}
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestCA(t testing.TB, alg KeyAlgorithm) *CA {
	t.Helper()
	ca, err := NewCA(CAConfig{CommonName: "Plant Access CA", Algorithm: alg})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t testing.TB, ca *CA, p Profile, cn string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Profile: p, CommonName: cn, PublicKey: key.Public()}
	if p == ProfileServer {
		req.DNSNames, req.IPAddresses = []string{"broker.example"}, []net.IP{net.IPv4(10, 99, 0, 1)}
	}
	cert, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestIssuedCertificatesPassOpenSSL: server, device and user certificates
// from CAs with each key algorithm pass `openssl verify -purpose` for their
// role, and fail it for the other role.
func TestIssuedCertificatesPassOpenSSL(t *testing.T) {
	for _, alg := range []KeyAlgorithm{ECDSAP256, ECDSAP384, RSA3072} {
		t.Run(alg.String(), func(t *testing.T) {
			ca := newTestCA(t, alg)
			caFile := writeFile(t, "ca.pem", EncodeCertificatesPEM(ca.Certificate()))
			for _, c := range []struct {
				profile      Profile
				purpose      string
				wrongPurpose string
			}{
				{ProfileServer, "sslserver", "sslclient"},
				{ProfileDevice, "sslclient", "sslserver"},
				{ProfileUser, "sslclient", "sslserver"},
			} {
				cert, _ := issue(t, ca, c.profile, "participant-"+c.profile.String())
				f := writeFile(t, "cert.pem", EncodeCertificatesPEM(cert))
				out, err := openssl(t, "verify", "-CAfile", caFile, "-purpose", c.purpose, f)
				if err != nil || !strings.Contains(out, ": OK") {
					t.Fatalf("%v certificate, purpose %s: %v\n%s", c.profile, c.purpose, err, out)
				}
				if out, err := openssl(t, "verify", "-CAfile", caFile, "-purpose", c.wrongPurpose, f); err == nil {
					t.Fatalf("%v certificate passed purpose %s:\n%s", c.profile, c.wrongPurpose, out)
				}
			}
		})
	}
}

// TestRevocationInCRLAndOCSP: after Revoke, the CRL lists the serial and
// verifies with openssl, and openssl's OCSP client reports revoked for it
// and good for another certificate.
func TestRevocationInCRLAndOCSP(t *testing.T) {
	ca := newTestCA(t, ECDSAP256)
	revoked, _ := issue(t, ca, ProfileDevice, "plant7-gw")
	good, _ := issue(t, ca, ProfileDevice, "plant8-gw")
	if err := ca.Revoke(revoked.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(big.NewInt(12345), ReasonUnspecified); !errors.Is(err, ErrNotIssued) {
		t.Fatalf("revoking a foreign serial: %v", err)
	}
	der, err := ca.CRL()
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(revoked.SerialNumber) != 0 ||
		crl.RevokedCertificateEntries[0].ReasonCode != int(ReasonKeyCompromise) {
		t.Fatalf("CRL entries %+v, want serial %s", crl.RevokedCertificateEntries, revoked.SerialNumber)
	}
	if err := crl.CheckSignatureFrom(ca.Certificate()); err != nil || !crl.NextUpdate.After(time.Now()) {
		t.Fatalf("CRL signature %v, next update %v", err, crl.NextUpdate)
	}
	caFile := writeFile(t, "ca.pem", EncodeCertificatesPEM(ca.Certificate()))
	pemCRL, _ := ca.CRLPEM()
	crlFile := writeFile(t, "crl.pem", pemCRL)
	if out, err := openssl(t, "crl", "-in", crlFile, "-CAfile", caFile, "-noout", "-verify"); err != nil || !strings.Contains(out, "verify OK") {
		t.Fatalf("openssl crl -verify: %v\n%s", err, out)
	}
	// The CRL over HTTP, DER and PEM.
	srv := httptest.NewServer(ca.CRLHandler())
	defer srv.Close()
	for _, path := range []string{"/ca.crl", "/ca.crl.pem"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/ca.crl" && !bytes.Equal(body, der) || path == "/ca.crl.pem" && !bytes.Equal(body, pemCRL) {
			t.Fatalf("GET %s: %s, %d bytes", path, resp.Header.Get("Content-Type"), len(body))
		}
	}
	// OCSP with openssl's client against the handler.
	ocspSrv := httptest.NewServer(ca.OCSPHandler())
	defer ocspSrv.Close()
	for _, c := range []struct {
		cert *x509.Certificate
		want string
	}{{revoked, ": revoked"}, {good, ": good"}} {
		certFile := writeFile(t, "cert.pem", EncodeCertificatesPEM(c.cert))
		out, err := openssl(t, "ocsp", "-issuer", caFile, "-cert", certFile, "-url", ocspSrv.URL, "-CAfile", caFile, "-no_nonce")
		if err != nil || !strings.Contains(out, c.want) || !strings.Contains(out, "Response verify OK") {
			t.Fatalf("openssl ocsp for %q: %v\n%s", c.cert.Subject.CommonName, err, out)
		}
	}
}

func TestVerifierRefusesRevokedAndWrongUsage(t *testing.T) {
	ca := newTestCA(t, ECDSAP256)
	user, _ := issue(t, ca, ProfileUser, "bob")
	server, _ := issue(t, ca, ProfileServer, "broker")
	v := &Verifier{CA: ca}
	if id, err := v.Verify([]*x509.Certificate{user}); err != nil || id != "bob" {
		t.Fatalf("Verify(user) = %q, %v", id, err)
	}
	if _, err := v.Verify([]*x509.Certificate{server}); err == nil {
		t.Fatal("a server certificate was accepted as a client")
	}
	other := newTestCA(t, ECDSAP256)
	foreign, _ := issue(t, other, ProfileUser, "bob")
	if _, err := v.Verify([]*x509.Certificate{foreign}); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	if err := ca.Revoke(user.SerialNumber, ReasonPrivilegeWithdrawn); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify([]*x509.Certificate{user}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked certificate: %v, want ErrRevoked", err)
	}
}

func TestRenewKeepsIdentity(t *testing.T) {
	ca := newTestCA(t, ECDSAP256)
	old, _ := issue(t, ca, ProfileServer, "broker")
	newKey, _ := GenerateKey(ECDSAP256)
	renewed, err := ca.Renew(old, newKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 || renewed.Subject.CommonName != "broker" ||
		renewed.DNSNames[0] != "broker.example" || renewed.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth ||
		!publicKeysEqual(renewed.PublicKey, newKey.Public()) {
		t.Fatalf("renewed certificate %+v", renewed.Subject)
	}
	_ = ca.Revoke(renewed.SerialNumber, ReasonSuperseded)
	if _, err := ca.Renew(renewed, nil); !errors.Is(err, ErrRevoked) {
		t.Fatalf("renewing a revoked certificate: %v", err)
	}
}

func csrFor(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestEnrollment(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	ca, err := NewCA(CAConfig{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	token, err := ca.NewEnrollmentToken(TokenRequest{Profile: ProfileDevice, CommonName: "plant7-gw", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := GenerateKey(ECDSAP256)
	// A CSR whose signature does not match its key.
	bad := csrFor(t, key, "plant7-gw")
	bad[len(bad)-3] ^= 0x55
	if _, err := ca.Enroll(token, bad); !errors.Is(err, ErrBadCSR) {
		t.Fatalf("tampered CSR: %v, want ErrBadCSR", err)
	}
	// RSA 1024 is too weak.
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Enroll(token, csrFor(t, weak, "plant7-gw")); !errors.Is(err, ErrWeakKey) {
		t.Fatalf("RSA 1024 CSR: %v, want ErrWeakKey", err)
	}
	// The CSR's name is ignored: the token decides.
	cert, err := ca.Enroll(token, csrFor(t, key, "someone-else"))
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) || cert.Subject.CommonName != "plant7-gw" || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("issued %q for another key or identity", cert.Subject.CommonName)
	}
	if _, err := ca.Enroll(token, csrFor(t, key, "plant7-gw")); !errors.Is(err, ErrEnrollmentTokenUsed) {
		t.Fatalf("second use of a token: %v, want ErrEnrollmentTokenUsed", err)
	}
	if _, err := ca.Enroll("not-a-token", csrFor(t, key, "x")); !errors.Is(err, ErrEnrollmentTokenInvalid) {
		t.Fatalf("unknown token: %v", err)
	}
	late, _ := ca.NewEnrollmentToken(TokenRequest{Profile: ProfileDevice, CommonName: "plant8-gw", TTL: time.Hour})
	now = now.Add(2 * time.Hour)
	_, err = ca.Enroll(late, csrFor(t, key, "plant8-gw"))
	if !errors.Is(err, ErrEnrollmentTokenExpired) || !strings.Contains(err.Error(), "expired at 2026-11-23T11:00:00Z") {
		t.Fatalf("expired token: %v", err)
	}
	// Re-enrollment with a new key, proven by the current certificate.
	newKey, _ := GenerateKey(ECDSAP384)
	renewed, err := ca.Reenroll(cert, csrFor(t, newKey, "plant7-gw"))
	if err != nil || !publicKeysEqual(renewed.PublicKey, newKey.Public()) || renewed.Subject.CommonName != "plant7-gw" {
		t.Fatalf("Reenroll: %v", err)
	}
	if _, err := ca.Reenroll(cert, csrFor(t, newKey, "plant9-gw")); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("re-enrolling under another name: %v", err)
	}
}

func TestEnrollmentOverHTTP(t *testing.T) {
	ca := newTestCA(t, ECDSAP256)
	srv := httptest.NewServer(ca.EnrollmentHandler())
	defer srv.Close()
	token, _ := ca.NewEnrollmentToken(TokenRequest{Profile: ProfileDevice, CommonName: "plant7-gw"})
	key, _ := GenerateKey(ECDSAP256)
	body := base64.StdEncoding.EncodeToString(csrFor(t, key, "plant7-gw"))
	post := func(tok string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/.well-known/est/simpleenroll", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/pkcs10")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, text := post(token)
	if resp.StatusCode != http.StatusOK || !strings.Contains(text, "BEGIN CERTIFICATE") {
		t.Fatalf("simpleenroll: %d %s", resp.StatusCode, text)
	}
	certs := parsePEMCerts(t, []byte(text))
	if len(certs) != 2 || !publicKeysEqual(certs[0].PublicKey, key.Public()) || !certs[1].Equal(ca.Certificate()) {
		t.Fatalf("simpleenroll answered %d certificates", len(certs))
	}
	if resp, text := post(token); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(text, "already used") {
		t.Fatalf("second use: %d %s", resp.StatusCode, text)
	}
	if resp, _ := post(""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
}

func parsePEMCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pemBlock
		b, data = decodePEM(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func TestExportPKCS12(t *testing.T) {
	ca := newTestCA(t, ECDSAP256)
	cert, key := issue(t, ca, ProfileUser, "bob")
	p12, err := EncodePKCS12(key, cert, []*x509.Certificate{ca.Certificate()}, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	gotKey, gotCert, chain, err := pkcs12.DecodeChain(p12, "s3cret")
	if err != nil || !gotCert.Equal(cert) || len(chain) != 1 || !gotKey.(*ecdsa.PrivateKey).PublicKey.Equal(key.Public()) {
		t.Fatalf("decode: %v", err)
	}
	f := writeFile(t, "bob.p12", p12)
	out, err := openssl(t, "pkcs12", "-in", f, "-passin", "pass:s3cret", "-nokeys")
	if err != nil || !strings.Contains(out, "CN = bob") {
		t.Fatalf("openssl pkcs12: %v\n%s", err, out)
	}
	if _, err := EncodePKCS12(key, cert, nil, ""); !errors.Is(err, ErrInvalidRequest) {
		t.Fatal("PKCS#12 without a password was written")
	}
}

func TestImportCA(t *testing.T) {
	src := newTestCA(t, ECDSAP256)
	imported, err := ImportCA(src.Certificate(), src.key, CAConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := issue(t, imported, ProfileUser, "bob")
	if err := cert.CheckSignatureFrom(src.Certificate()); err != nil {
		t.Fatal(err)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := ImportCA(src.Certificate(), otherKey, CAConfig{}); !errors.Is(err, ErrNotCA) {
		t.Fatalf("import with a foreign key: %v", err)
	}
	leaf, leafKey := issue(t, src, ProfileServer, "x")
	if _, err := ImportCA(leaf, leafKey, CAConfig{}); !errors.Is(err, ErrNotCA) {
		t.Fatalf("import of a leaf certificate: %v", err)
	}
}

func FuzzParseEnrollmentBody(f *testing.F) {
	key, _ := GenerateKey(ECDSAP256)
	der := csrFor(f, key, "seed")
	f.Add(der)
	f.Add([]byte(base64.StdEncoding.EncodeToString(der)))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	ca := newTestCA(f, ECDSAP256)
	token, _ := ca.NewEnrollmentToken(TokenRequest{Profile: ProfileDevice, CommonName: "fuzz", TTL: time.Hour})
	f.Fuzz(func(t *testing.T, body []byte) {
		csr, err := ParseEnrollmentBody(body)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("error %v does not wrap ErrBadCSR", err)
			}
			return
		}
		cert, err := ca.Enroll(token, csr)
		if err == nil {
			// Only a CSR signed by its own key can enroll.
			parsed, perr := x509.ParseCertificateRequest(csr)
			if perr != nil || parsed.CheckSignature() != nil || !publicKeysEqual(cert.PublicKey, parsed.PublicKey) {
				t.Fatal("a certificate was issued for an invalid CSR")
			}
			token, _ = ca.NewEnrollmentToken(TokenRequest{Profile: ProfileDevice, CommonName: "fuzz", TTL: time.Hour})
		}
	})
}

// FuzzEnrollCSR hands arbitrary bytes to Enroll as a CSR: only a CSR
// signed by its own key may use the token.
func FuzzEnrollCSR(f *testing.F) {
	key, _ := GenerateKey(ECDSAP256)
	f.Add(csrFor(f, key, "seed"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	ca := newTestCA(f, ECDSAP256)
	f.Fuzz(func(t *testing.T, der []byte) {
		token, _ := ca.NewEnrollmentToken(TokenRequest{Profile: ProfileDevice, CommonName: "fuzz", TTL: time.Hour})
		cert, err := ca.Enroll(token, der)
		if err != nil {
			return
		}
		parsed, perr := x509.ParseCertificateRequest(der)
		if perr != nil || parsed.CheckSignature() != nil || !publicKeysEqual(cert.PublicKey, parsed.PublicKey) {
			t.Fatal("a certificate was issued for an invalid CSR")
		}
	})
}

func TestRevocationHookAndSmartcardMapping(t *testing.T) {
	var revoked []string
	ca, err := NewCA(CAConfig{OnRevoke: func(r Record) { revoked = append(revoked, r.Certificate.Subject.CommonName) }})
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := issue(t, ca, ProfileUser, "bob")
	v := &Verifier{CA: ca, Identity: func(c *x509.Certificate) (string, error) { return "user:" + c.Subject.CommonName, nil }}
	r := httptest.NewRequest(http.MethodGet, "https://broker/api", nil)
	if _, err := v.UserFromRequest(r); !errors.Is(err, ErrUnknownIdentity) {
		t.Fatalf("request without TLS: %v", err)
	}
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{bob}}
	if u, err := v.UserFromRequest(r); err != nil || u != "user:bob" {
		t.Fatalf("UserFromRequest = %q, %v", u, err)
	}
	_ = ca.Revoke(bob.SerialNumber, ReasonKeyCompromise)
	_ = ca.Revoke(bob.SerialNumber, ReasonKeyCompromise) // the hook runs once
	if len(revoked) != 1 || revoked[0] != "bob" {
		t.Fatalf("OnRevoke saw %v", revoked)
	}
	if _, err := v.UserFromRequest(r); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked smartcard: %v", err)
	}
}

func BenchmarkIssue(b *testing.B) {
	ca := newTestCA(b, ECDSAP256)
	key, _ := GenerateKey(ECDSAP256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.Issue(Request{Profile: ProfileDevice, CommonName: "plant7-gw", PublicKey: key.Public()}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOCSPResponse(b *testing.B) {
	ca := newTestCA(b, ECDSAP256)
	cert, _ := issue(b, ca, ProfileDevice, "plant7-gw")
	req, err := ocspRequest(cert, ca.Certificate())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.OCSPResponse(req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOnIssueRecordsBeforeHandingOut(t *testing.T) {
	var got []Record
	fail := false
	ca, err := NewCA(CAConfig{OnIssue: func(r Record) error {
		if fail {
			return errors.New("disk full")
		}
		got = append(got, r)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := GenerateKey(ECDSAP256)
	cert, err := ca.Issue(Request{Profile: ProfileUser, CommonName: "alice", PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := ca.Renew(cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Certificate.Equal(cert) || !got[1].Certificate.Equal(renewed) || got[1].Profile != ProfileUser {
		t.Fatalf("OnIssue saw %d records, want the issued and the renewed certificate", len(got))
	}
	fail = true
	_, err = ca.Issue(Request{Profile: ProfileUser, CommonName: "bob", PublicKey: key.Public()})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Issue with a failing OnIssue = %v; want the hook's error", err)
	}
	if n := len(ca.Records()); n != 2 {
		t.Fatalf("CA remembers %d certificates, want 2 (the failed one not)", n)
	}
}
