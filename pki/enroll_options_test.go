package pki

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// EnrollmentHandlerWith asks the product before it issues, under the
// product's lock: a refusal is a 403 with the product's reason and keeps
// the token; the hook hears of each certificate issued.
func TestEnrollmentHandlerWithAsksTheProduct(t *testing.T) {
	ca := newTestCA(t, ECDSAP256)
	var mu sync.Mutex
	known := map[string]bool{}
	var heard []string
	srv := httptest.NewServer(ca.EnrollmentHandlerWith(EnrollmentOptions{
		Lock: &mu,
		Allow: func(req TokenRequest) error {
			if mu.TryLock() {
				mu.Unlock()
				t.Error("Allow ran without the product's lock")
			}
			if !known[req.CommonName] {
				return errors.New("no device " + req.CommonName)
			}
			return nil
		},
		Issued: func(_ *http.Request, cert *x509.Certificate, renewal bool) {
			heard = append(heard, cert.Subject.CommonName+map[bool]string{false: " enrolled", true: " renewed"}[renewal])
		},
	}))
	defer srv.Close()
	token, err := ca.NewEnrollmentToken(TokenRequest{Profile: ProfileDevice, CommonName: "plant7-gw"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := GenerateKey(ECDSAP256)
	body := base64.StdEncoding.EncodeToString(csrFor(t, key, "plant7-gw"))
	post := func() (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/.well-known/est/simpleenroll", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, text := post(); code != http.StatusForbidden || !strings.Contains(text, "enrollment refused: no device plant7-gw") {
		t.Fatalf("enrollment the product refuses: %d %s", code, text)
	}
	if len(heard) != 0 || len(ca.Records()) != 0 {
		t.Fatalf("a refused enrollment issued: %v", heard)
	}
	known["plant7-gw"] = true
	if code, text := post(); code != http.StatusOK || !strings.Contains(text, "BEGIN CERTIFICATE") {
		t.Fatalf("the token after the refusal: %d %s", code, text)
	}
	if len(heard) != 1 || heard[0] != "plant7-gw enrolled" {
		t.Fatalf("the hook heard %q", heard)
	}
}
