package console

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/pki"
)

// browserWithCertificate is a browser that presents cert at the TLS
// handshake, as a browser does with a smartcard's certificate.
func (e *env) browserWithCertificate(cert tls.Certificate) *browser {
	e.t.Helper()
	b := e.browser()
	tr := b.client.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	b.client.Transport = tr
	return b
}

// textarea returns the text of the textarea with the id on a page, as the
// browser shows it.
func textarea(t *testing.T, page *resp, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<textarea id="` + regexp.QuoteMeta(id) + `"[^>]*>(.*?)</textarea>`).FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatalf("no textarea %q on the page:\n%s", id, page.Body)
	}
	return html.UnescapeString(m[1])
}

func parseCertPEM(t *testing.T, text string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate:\n%s", text)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// certRow is the row of the certificates table for a serial, as text.
func certRow(t *testing.T, page *resp, serial string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr><td>` + regexp.QuoteMeta(serial) + `</td>.*?</tr>`).FindString(page.Body)
	if m == "" {
		t.Fatalf("no row for certificate %s:\n%s", serial, page.Body)
	}
	return m
}

// An administrator issues a certificate for a user on the certificates
// page, renews it and revokes the first one through the forms: the list
// shows each one's state, and the revoked certificate no longer logs in
// while its renewal does.
func TestCertificateRenewAndRevokeThroughForms(t *testing.T) {
	e := newReadyEnv(t)
	b := e.browser()
	b.login(adminName, testPassword)

	r := b.submit("/certificates", "/certificates", url.Values{"common_name": {vpnUser}, "profile": {"user"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("issue: %d\n%s", r.Status, r.Body)
	}
	first := parseCertPEM(t, textarea(t, r, "pem-cert"))
	keyPEM := textarea(t, r, "pem-key")
	serial := pki.SerialString(first.SerialNumber)
	if first.Subject.CommonName != vpnUser || !strings.Contains(r.Body, "Issued certificate "+serial+" for "+vpnUser) {
		t.Fatalf("issued %v %s:\n%s", first.Subject, serial, r.Body)
	}
	firstTLS, err := tls.X509KeyPair([]byte(textarea(t, r, "pem-cert")), []byte(keyPEM))
	if err != nil {
		t.Fatalf("the page's certificate and key: %v", err)
	}
	row := certRow(t, b.expectPage("/certificates", http.StatusOK), serial)
	if !strings.Contains(row, "<td>valid</td>") || !strings.Contains(row, "Renew "+serial) {
		t.Fatalf("a fresh certificate's row: %s", row)
	}

	// The certificate logs eve in.
	login := func(cert tls.Certificate) *resp {
		t.Helper()
		return e.browserWithCertificate(cert).submit("/login", "/login/certificate", url.Values{})
	}
	smartcard := e.browserWithCertificate(firstTLS)
	if r := smartcard.submit("/login", "/login/certificate", url.Values{}); r.Status != http.StatusSeeOther {
		t.Fatalf("certificate login with the issued certificate: %d\n%s", r.Status, r.Body)
	}
	smartcard.expectPage("/profile", http.StatusOK, "<strong>eve</strong>")

	// Renew: a new serial for the same name and key, shown without a key.
	page := b.get("/certificates")
	r = b.post("/certificates/"+serial+"/renew", url.Values{"csrf": {b.csrf(page)}})
	if r.Status != http.StatusCreated {
		t.Fatalf("renew: %d\n%s", r.Status, r.Body)
	}
	renewedPEM := textarea(t, r, "pem-cert")
	renewed := parseCertPEM(t, renewedPEM)
	newSerial := pki.SerialString(renewed.SerialNumber)
	if newSerial == serial || renewed.Subject.CommonName != vpnUser || !strings.Contains(r.Body, "Renewed: the new certificate is "+newSerial) {
		t.Fatalf("renewed as %s for %v:\n%s", newSerial, renewed.Subject, r.Body)
	}
	if strings.Contains(r.Body, `id="pem-key"`) {
		t.Errorf("the renewal shows a key, but the key is the first certificate's own")
	}
	renewedTLS, err := tls.X509KeyPair([]byte(renewedPEM), []byte(keyPEM))
	if err != nil {
		t.Fatalf("the renewed certificate with the first key: %v", err)
	}

	// Revoke the first, after a confirmation page that asks for a reason.
	confirm := b.expectPage("/certificates/"+serial+"/revoke", http.StatusOK, "Revoke the certificate "+serial+"?", `<option value="1">key compromise</option>`)
	r = b.post("/certificates/"+serial+"/revoke", url.Values{"csrf": {b.csrf(confirm)}, "reason": {"1"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", r.Status, r.Body)
	}
	page = b.expectPage(r.location(), http.StatusOK, "Revoked the certificate "+serial+".")
	if row := certRow(t, page, serial); !strings.Contains(row, "<td>revoked ") || strings.Contains(row, "Renew") || strings.Contains(row, "/revoke") {
		t.Errorf("the revoked certificate's row: %s", row)
	}
	if row := certRow(t, page, newSerial); !strings.Contains(row, "<td>valid</td>") {
		t.Errorf("the renewed certificate's row: %s", row)
	}
	// The CA says so too, with the reason chosen.
	if rec, ok := e.ca.Lookup(first.SerialNumber); !ok || rec.RevokedAt.IsZero() || rec.Reason != pki.ReasonKeyCompromise {
		t.Fatalf("the CA's record of the revoked certificate: %+v", rec)
	}

	// The session opened with it ended with it; the administrator's did
	// not.
	if r := smartcard.get("/profile"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login?m=expired") {
		t.Fatalf("the session opened with the revoked certificate: %d %q; want it ended", r.Status, r.location())
	}
	b.expectPage("/certificates", http.StatusOK, "Logged in as <strong>"+adminName+"</strong>")

	// The revoked certificate's login is refused, and the page says so;
	// the renewed one still logs in.
	r = login(firstTLS)
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "Your certificate was not accepted") {
		t.Fatalf("certificate login with the revoked certificate: %d\n%s", r.Status, r.Body)
	}
	if r := login(renewedTLS); r.Status != http.StatusSeeOther {
		t.Fatalf("certificate login with the renewed certificate: %d\n%s", r.Status, r.Body)
	}

	// A revoked certificate cannot be renewed: the API says why.
	r = b.post("/certificates/"+serial+"/renew", url.Values{"csrf": {b.csrf(page)}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "revoked") {
		t.Fatalf("renewing the revoked certificate: %d\n%s", r.Status, r.Body)
	}
}
