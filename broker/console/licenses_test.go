package console

import (
	"bytes"
	"crypto/ed25519"
	"html"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/license"
)

// licensed is an env whose API limits participants by license: a vendor
// key the product trusts, and an installation with its own ID and key.
type licensed struct {
	*env
	vendor          ed25519.PrivateKey
	installation    string
	installationKey ed25519.PrivateKey
}

func newLicensedEnv(t *testing.T) *licensed {
	t.Helper()
	pub, vendor, err := license.GenerateVendorKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	installation, err := license.NewInstallationID(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ikey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	state := license.NewState(&license.Verifier{Product: "remotegate", Keys: []ed25519.PublicKey{pub}}, installation, 7*24*time.Hour)
	e := newReadyEnv(t, func(c *api.Config) { c.Licenses, c.InstallationKey = state, ikey })
	return &licensed{env: e, vendor: vendor, installation: installation, installationKey: ikey}
}

// issue makes a license file as the vendor would.
func (l *licensed) issue(number string, participants int) []byte {
	l.t.Helper()
	file, err := license.Issue(l.vendor, license.License{
		Number: number, Product: "remotegate", Edition: "standard", Participants: participants,
		Issued: l.clock.now().AddDate(0, 0, -1), Installation: l.installation,
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return file
}

// upload posts a multipart form as a browser sends a form with a file:
// the fields in order, then the file.
func (b *browser) upload(path string, fields [][2]string, fileField, fileName string, content []byte) *resp {
	b.e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			b.e.t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile(fileField, fileName)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if _, err := fw.Write(content); err != nil {
		b.e.t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		b.e.t.Fatal(err)
	}
	req, err := http.NewRequest("POST", b.e.srv.URL+path, &body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// An administrator adds a +64 license file on the licenses page, sees the
// capacity it gives, and releases it again: the release statement
// downloads and verifies as the installation's.
func TestLicenseAddAndRelease(t *testing.T) {
	l := newLicensedEnv(t)
	root := l.apiLogin(adminName, testPassword)
	// root and eve, and two devices: the base license's four.
	for _, name := range []string{"plant-1", "plant-2"} {
		l.apiExpect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{"name": name})
	}
	b := l.browser()
	b.login(adminName, testPassword)
	page := b.expectPage("/licenses", http.StatusOK, "4 participants of a capacity of 4: 4 participants: base 4.", l.installation, "No licenses added")

	// A fifth participant is refused, and the form says why.
	r := b.submit("/devices", "/devices", url.Values{"name": {"plant-3"}})
	if r.Status != http.StatusConflict || !strings.Contains(r.Body, "exceed the licensed capacity of 4") {
		t.Fatalf("a fifth participant on the base license: %d\n%s", r.Status, r.Body)
	}

	csrf := [][2]string{{"csrf", b.csrf(page)}}
	good := l.issue("RG-2026-000064", 64)
	// A file whose signature does not match is refused next to the field,
	// and adds nothing.
	tampered := bytes.Replace(good, []byte("participants: 64"), []byte("participants: 65"), 1)
	r = b.upload("/licenses", csrf, "file", "tampered.lic", tampered)
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `id="f-file-error"`) || !strings.Contains(r.Body, "signature") {
		t.Fatalf("a tampered license: %d\n%s", r.Status, r.Body)
	}
	// Without the page's CSRF token, nothing is added.
	if r := b.upload("/licenses", [][2]string{{"csrf", "forged"}}, "file", "good.lic", good); r.Status != http.StatusForbidden {
		t.Fatalf("a license upload with a forged token: %d", r.Status)
	}
	b.expectPage("/licenses", http.StatusOK, "No licenses added")

	r = b.upload("/licenses", csrf, "file", "RG-2026-000064.lic", good)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("adding the license: %d\n%s", r.Status, r.Body)
	}
	page = b.expectPage(r.location(), http.StatusOK, "The license was added.", "counting", `href="/licenses/RG-2026-000064/release"`)
	// What a person reads (html/template writes "+" as "&#43;").
	for _, want := range []string{"4 participants of a capacity of 68: 68 participants: base 4 + RG-2026-000064 (+64).",
		"<td>RG-2026-000064</td><td>standard</td><td>+64</td>"} {
		if !strings.Contains(html.UnescapeString(page.Body), want) {
			t.Errorf("the licenses page does not say %q:\n%s", want, page.Body)
		}
	}
	// The same file again: said next to the field.
	r = b.upload("/licenses", csrf, "file", "again.lic", good)
	if r.Status != http.StatusConflict || !strings.Contains(r.Body, `id="f-file-error"`) || !strings.Contains(r.Body, "RG-2026-000064") {
		t.Fatalf("the same license again: %d\n%s", r.Status, r.Body)
	}
	// Now there is room for the fifth.
	if r := b.submit("/devices", "/devices", url.Values{"name": {"plant-3"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("a fifth participant with the +64 license: %d\n%s", r.Status, r.Body)
	}

	// Release: a confirmation first, then the statement as a download.
	confirm := b.expectPage("/licenses/RG-2026-000064/release", http.StatusOK, "Release the license RG-2026-000064?", "Release and download the statement")
	r = b.post("/licenses/RG-2026-000064/release", url.Values{"csrf": {b.csrf(confirm)}})
	if r.Status != http.StatusOK {
		t.Fatalf("release: %d\n%s", r.Status, r.Body)
	}
	if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename="RG-2026-000064.release"` {
		t.Errorf("release statement's Content-Disposition %q", cd)
	}
	checkHeaders(t, "release statement", r.Header, true)
	rel, err := license.VerifyRelease([]byte(r.Body))
	if err != nil {
		t.Fatalf("the downloaded statement does not verify: %v\n%s", err, r.Body)
	}
	if rel.Number != "RG-2026-000064" || rel.Installation != l.installation || !rel.InstallationKey.Equal(l.installationKey.Public()) {
		t.Fatalf("release statement for %+v", rel)
	}
	// A statement changed after signing does not verify: the check above
	// can fail.
	if _, err := license.VerifyRelease(bytes.Replace([]byte(r.Body), []byte(l.installation), []byte(strings.Repeat("0", len(l.installation))), 1)); err == nil {
		t.Fatal("a forged release statement verifies")
	}

	page = b.expectPage("/licenses", http.StatusOK, "5 participants of a capacity of 4", "released")
	if strings.Contains(page.Body, `href="/licenses/RG-2026-000064/release"`) {
		t.Error("a released license still offers release")
	}
	// Released twice: the API's refusal, with its status.
	r = b.post("/licenses/RG-2026-000064/release", url.Values{"csrf": {b.csrf(page)}})
	if r.Status != http.StatusConflict || !strings.Contains(r.Body, "was released") {
		t.Fatalf("a second release: %d\n%s", r.Status, r.Body)
	}
	// The release is in the event log, by root.
	r = b.expectPage("/events?kind=license", http.StatusOK, "released license RG-2026-000064", "activated license RG-2026-000064")
	if !strings.Contains(r.Body, "<td>"+adminName+"</td>") {
		t.Errorf("the license events do not name root:\n%s", r.Body)
	}
}
