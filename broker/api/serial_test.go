package api

import (
	"crypto/x509"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/pki"
)

// A certificate's serial reads the same in the API's answers, in the
// events of its issue, renewal, export and revocation, and in the refusal
// a transport logs when the revoked certificate comes back: one text form,
// pki.SerialString, so that a serial from one can be searched in the
// others.
func TestOneSerialFormatInTheAPIAndTheEvents(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "u1", "roles": []string{"vpn_user"}})
	var got issued
	if err := json.Unmarshal(e.expect(http.StatusCreated, "POST", "/api/v1/certificates", root, map[string]any{"common_name": "u1", "profile": "user"}), &got); err != nil {
		t.Fatal(err)
	}
	var renewed issued
	if err := json.Unmarshal(e.expect(http.StatusCreated, "POST", "/api/v1/certificates/"+got.Certificate.Serial+"/renew", root, map[string]any{}), &renewed); err != nil {
		t.Fatal(err)
	}
	var revoked certView
	if err := json.Unmarshal(e.expect(http.StatusOK, "POST", "/api/v1/certificates/"+got.Certificate.Serial+"/revoke", root, map[string]any{"reason": 1}), &revoked); err != nil {
		t.Fatal(err)
	}
	e.expect(http.StatusOK, "POST", "/api/v1/participants/u1/profile", root, map[string]any{"format": "pkcs12", "password": "secret"})

	var events []eventView
	if err := json.Unmarshal(e.expect(http.StatusOK, "GET", "/api/v1/events?kind=certificate", root, nil), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 4 {
		t.Fatalf("%d certificate events, want 4 (issue, renew, revoke, export): %+v", len(events), events)
	}
	var exported string
	for _, r := range e.ca.Records() {
		if s := pki.SerialString(r.Certificate.SerialNumber); s != got.Certificate.Serial && s != renewed.Certificate.Serial {
			exported = s
		}
	}
	for i, want := range []struct{ serial, verb string }{
		{got.Certificate.Serial, "issued user certificate "},
		{renewed.Certificate.Serial, "renewed user certificate "},
		{revoked.Serial, "revoked certificate "},
		{exported, "exported a pkcs12 profile with certificate "},
	} {
		ev := events[i]
		if want.serial == "" || ev.Attrs["serial"] != want.serial || !strings.Contains(ev.Message, want.verb+want.serial+" ") {
			t.Errorf("event %d: %q with serial %q; want %q%s", i, ev.Message, ev.Attrs["serial"], want.verb, want.serial)
		}
	}
	if revoked.Serial != got.Certificate.Serial {
		t.Fatalf("revoke answered serial %s for %s", revoked.Serial, got.Certificate.Serial)
	}

	// The CSV export carries the same text.
	csv := string(e.expect(http.StatusOK, "GET", "/api/v1/events?kind=certificate&format=csv", root, nil))
	if !strings.Contains(csv, `""serial"":""`+got.Certificate.Serial+`""`) {
		t.Fatalf("the CSV export does not carry the serial %s:\n%s", got.Certificate.Serial, csv)
	}

	// What a transport logs when the revoked certificate returns.
	rec, ok := e.ca.Lookup(revoked.certSerial(t))
	if !ok {
		t.Fatal("the CA lost the revoked certificate")
	}
	_, err := (&pki.Verifier{CA: e.ca}).Verify([]*x509.Certificate{rec.Certificate})
	if err == nil || !strings.Contains(err.Error(), "(serial "+revoked.Serial+")") {
		t.Fatalf("the refusal of the revoked certificate: %v; want serial %s", err, revoked.Serial)
	}
}

// certSerial parses the view's serial as the API does.
func (v certView) certSerial(t *testing.T) *big.Int {
	t.Helper()
	n, ok := parseSerial(v.Serial)
	if !ok {
		t.Fatalf("serial %q is not hex", v.Serial)
	}
	return n
}
