package api

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/pki"
)

// estLab is the API and the enrollment handler on one HTTPS listener, as a
// product mounts them, asking for optional client certificates of the CA
// (for certificate login and simplereenroll).
type estLab struct {
	*env
	https *httptest.Server
	root  string
}

func newESTLab(t *testing.T) *estLab {
	t.Helper()
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.Handle("/", e.srv)
	mux.Handle(EnrollmentPath, e.srv.EnrollmentHandler())
	hs := httptest.NewUnstartedServer(mux)
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Certificate())
	hs.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	// The API calls of env go to this listener too.
	e.http = hs
	return &estLab{env: e, https: hs, root: e.mustLogin("root")}
}

// token creates an enrollment token for device through the API.
func (l *estLab) token(device string, body any) enrollmentView {
	l.t.Helper()
	var v enrollmentView
	if err := json.Unmarshal(l.expect(http.StatusCreated, "POST", "/api/v1/devices/"+device+"/enrollment", l.root, body), &v); err != nil {
		l.t.Fatal(err)
	}
	return v
}

// est posts a CSR as docs/ENROLLMENT.md shows: base64 DER, Content-Type
// application/pkcs10, the token as a bearer token (if any), the client
// certificate (if any) over TLS.
func (l *estLab) est(op, token string, csrDER []byte, client *tls.Certificate) (int, string) {
	l.t.Helper()
	req, err := http.NewRequest("POST", l.https.URL+EnrollmentPath+op, strings.NewReader(base64.StdEncoding.EncodeToString(csrDER)+"\n"))
	if err != nil {
		l.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/pkcs10")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := l.https.Client()
	if client != nil {
		tr := c.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{*client}
		c = &http.Client{Transport: tr}
	}
	resp, err := c.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// csr makes a key and a CSR for it; the subject says cn.
func csr(t *testing.T, cn string) ([]byte, *tls.Certificate) {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, &tls.Certificate{PrivateKey: key}
}

// chain parses an application/pem-certificate-chain answer.
func chain(t *testing.T, text string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
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

// End to end, as docs/ENROLLMENT.md tells a plant gateway's integrator:
// an administrator creates a token through the API, the gateway posts its
// CSR with it to /.well-known/est/simpleenroll on the same HTTPS port and
// gets a device certificate of the broker's CA with the key it holds;
// the token works once; a wrong one gets nothing; the certificate renews
// itself at simplereenroll.
func TestDeviceEnrollsOverESTWithATokenFromTheAPI(t *testing.T) {
	l := newESTLab(t)
	l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": "plant7-gw"})

	// No body: the default lifetime.
	tok := l.token("plant7-gw", nil)
	if tok.Device != "plant7-gw" || len(tok.Token) < 40 || tok.Path != "/.well-known/est/simpleenroll" ||
		!tok.Expires.Equal(l.clock.now().Add(24*time.Hour)) {
		t.Fatalf("token: %+v", tok)
	}

	der, key := csr(t, "whatever-the-gateway-says")
	if code, text := l.est("simpleenroll", "not-the-token", der, nil); code != http.StatusUnauthorized || !strings.Contains(text, "enrollment token invalid") {
		t.Fatalf("a wrong token: %d %s", code, text)
	}
	if code, _ := l.est("simpleenroll", "", der, nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	code, text := l.est("simpleenroll", tok.Token, der, nil)
	if code != http.StatusOK {
		t.Fatalf("simpleenroll: %d %s", code, text)
	}
	certs := chain(t, text)
	if len(certs) != 2 || !certs[1].Equal(l.ca.Certificate()) {
		t.Fatalf("simpleenroll answered %d certificates, want the device's and the CA's", len(certs))
	}
	cert := certs[0]
	if cert.Subject.CommonName != "plant7-gw" || !holdsKey(cert, key) {
		t.Fatalf("issued %q for another identity or key", cert.Subject.CommonName)
	}
	if name, err := (&pki.Verifier{CA: l.ca}).Verify([]*x509.Certificate{cert}); err != nil || name != "plant7-gw" {
		t.Fatalf("the broker's verifier on the enrolled certificate: %q, %v", name, err)
	}
	serial := pki.SerialString(cert.SerialNumber)
	var view certView
	if err := json.Unmarshal(l.expect(http.StatusOK, "GET", "/api/v1/certificates/"+serial, l.root, nil), &view); err != nil {
		t.Fatal(err)
	}
	if view.Profile != "device" || view.CommonName != "plant7-gw" {
		t.Fatalf("the API lists the enrolled certificate as %+v", view)
	}

	// Once only.
	if code, text := l.est("simpleenroll", tok.Token, der, nil); code != http.StatusUnauthorized || !strings.Contains(text, "already used") {
		t.Fatalf("the token's second use: %d %s", code, text)
	}

	// The event log: the token made (not shown), the certificate with
	// its serial.
	var events []eventView
	if err := json.Unmarshal(l.expect(http.StatusOK, "GET", "/api/v1/events?kind=certificate&participant=plant7-gw", l.root, nil), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Actor != "root" || !strings.HasPrefix(events[0].Message, `created an enrollment token for device "plant7-gw", valid until `) ||
		events[1].Attrs["serial"] != serial || events[1].Message != `enrolled device certificate `+serial+` for "plant7-gw" over EST` {
		t.Fatalf("events: %+v", events)
	}
	for _, ev := range events {
		if strings.Contains(ev.Message+strings.Join(mapValues(ev.Attrs), " "), tok.Token) {
			t.Fatal("the event log shows the token")
		}
	}

	// Renewal with the current certificate as the TLS client certificate.
	der2, key2 := csr(t, "plant7-gw")
	key.Certificate = [][]byte{cert.Raw}
	code, text = l.est("simplereenroll", "", der2, key)
	if code != http.StatusOK {
		t.Fatalf("simplereenroll: %d %s", code, text)
	}
	renewed := chain(t, text)[0]
	if renewed.Subject.CommonName != "plant7-gw" || renewed.SerialNumber.Cmp(cert.SerialNumber) == 0 ||
		!holdsKey(renewed, key2) {
		t.Fatalf("re-enrolled %q, serial %s", renewed.Subject.CommonName, pki.SerialString(renewed.SerialNumber))
	}
	if code, _ := l.est("simplereenroll", "", der2, nil); code != http.StatusUnauthorized {
		t.Fatalf("simplereenroll without a client certificate: %d", code)
	}

	// cacerts: the CA certificate, to anyone.
	resp, err := l.https.Client().Get(l.https.URL + EnrollmentPath + "cacerts")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := chain(t, string(b)); resp.StatusCode != http.StatusOK || len(got) != 1 || !got[0].Equal(l.ca.Certificate()) {
		t.Fatalf("cacerts: %d, %d certificates", resp.StatusCode, len(got))
	}
}

// holdsKey reports whether cert is for the key of c.
func holdsKey(cert *x509.Certificate, c *tls.Certificate) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(c.PrivateKey.(crypto.Signer).Public())
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// A token is for a device that exists, and still exists when it is used;
// it expires; and its lifetime is bounded.
func TestEnrollmentTokensAreForDevices(t *testing.T) {
	l := newESTLab(t)
	l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": "plant7-gw"})
	l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": "plant8-gw"})

	// Users and unknown names get no token.
	for _, name := range []string{"root", "ghost"} {
		if out := string(l.expect(http.StatusNotFound, "POST", "/api/v1/devices/"+name+"/enrollment", l.root, nil)); !strings.Contains(out, `no device \"`+name+`\"`) {
			t.Fatalf("token for %s: %s", name, out)
		}
	}
	for _, body := range []any{map[string]any{"ttl_seconds": 59}, map[string]any{"ttl_seconds": 604801}, map[string]any{"ttl": "1h"}, "[]"} {
		l.expect(http.StatusBadRequest, "POST", "/api/v1/devices/plant7-gw/enrollment", l.root, body)
	}

	// The device deleted after the token was made: refused, and the
	// token stays unused.
	tok := l.token("plant7-gw", map[string]any{"ttl_seconds": 3600})
	if !tok.Expires.Equal(l.clock.now().Add(time.Hour)) {
		t.Fatalf("a token for an hour expires at %v", tok.Expires)
	}
	l.expect(http.StatusNoContent, "DELETE", "/api/v1/devices/plant7-gw", l.root, nil)
	der, _ := csr(t, "plant7-gw")
	if code, text := l.est("simpleenroll", tok.Token, der, nil); code != http.StatusForbidden || !strings.Contains(text, `no device "plant7-gw"`) {
		t.Fatalf("enrolling a deleted device: %d %s", code, text)
	}
	// Made again under the same name, the device may use it.
	l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": "plant7-gw"})
	if code, text := l.est("simpleenroll", tok.Token, der, nil); code != http.StatusOK {
		t.Fatalf("the token once the device exists again: %d %s", code, text)
	}

	// Expiry, on the broker's clock.
	late := l.token("plant8-gw", nil)
	l.clock.add(24*time.Hour + time.Second)
	if code, text := l.est("simpleenroll", late.Token, der, nil); code != http.StatusUnauthorized || !strings.Contains(text, "expired") {
		t.Fatalf("an expired token: %d %s", code, text)
	}
}
