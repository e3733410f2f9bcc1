package license

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReleaseStatement(t *testing.T) {
	inst := testKey(9)
	at := time.Date(2027, 3, 1, 10, 30, 15, 999_999_999, time.FixedZone("CET", 3600))
	stmt, err := IssueRelease(inst, "RG-1", testInstallation, at)
	if err != nil {
		t.Fatal(err)
	}
	want := ReleaseBegin + "\n" +
		"number: RG-1\n" +
		"installation: " + testInstallation + "\n" +
		"released: 2027-03-01T09:30:15Z\n" +
		"installation-key: " + base64.StdEncoding.EncodeToString(pubOf(inst)) + "\n" +
		"signature: "
	if !strings.HasPrefix(string(stmt), want) || !strings.HasSuffix(string(stmt), "==\n"+ReleaseEnd+"\n") {
		t.Fatalf("statement:\n%s", stmt)
	}
	r, err := VerifyRelease(append([]byte("Release of RG-1, plant 4\n"), stmt...))
	if err != nil {
		t.Fatal(err)
	}
	if r.Number != "RG-1" || r.Installation != testInstallation || !r.Released.Equal(time.Date(2027, 3, 1, 9, 30, 15, 0, time.UTC)) ||
		r.Released.Location() != time.UTC || !r.InstallationKey.Equal(pubOf(inst)) {
		t.Errorf("VerifyRelease = %+v", r)
	}
	_, msg, sig, err := ParseRelease(stmt)
	if err != nil || !strings.HasPrefix(string(msg), ReleaseSigningPrefix+"number: RG-1\n") || !ed25519.Verify(pubOf(inst), msg, sig) {
		t.Errorf("ParseRelease: %v, msg %q", err, msg)
	}

	for name, args := range map[string]struct {
		number, installation string
		at                   time.Time
	}{
		"number":       {"rg-1", testInstallation, at},
		"installation": {"RG-1", "", at},
		"released":     {"RG-1", testInstallation, time.Time{}},
	} {
		_, err := IssueRelease(inst, args.number, args.installation, args.at)
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) || fe.Field != name {
			t.Errorf("IssueRelease with bad %s: %v", name, err)
		}
	}
	if _, err := IssueRelease(nil, "RG-1", testInstallation, at); err == nil {
		t.Error("IssueRelease without a key succeeded")
	}
}

func TestReleaseTamper(t *testing.T) {
	inst := testKey(9)
	stmt, err := IssueRelease(inst, "RG-1", testInstallation, day(2027, 3, 1))
	if err != nil {
		t.Fatal(err)
	}
	for i := range stmt {
		for _, b := range []byte{alternative(stmt[i]), '#'} {
			if b == stmt[i] {
				continue
			}
			tampered := bytes.Clone(stmt)
			tampered[i] = b
			if _, err := VerifyRelease(tampered); !errors.Is(err, ErrSignature) && !errors.Is(err, ErrFormat) {
				t.Fatalf("byte %d %q -> %q: %v", i, stmt[i], b, err)
			}
		}
	}
	// Valid-looking changes of each field fail the signature.
	for _, c := range [][2]string{
		{"number: RG-1", "number: RG-2"},
		{"installation: 3f1c", "installation: 4f1c"},
		{"released: 2027-03-01T00:00:00Z", "released: 2027-03-01T00:00:01Z"},
	} {
		tampered := bytes.Replace(stmt, []byte(c[0]), []byte(c[1]), 1)
		if bytes.Equal(tampered, stmt) {
			t.Fatalf("%q not found", c[0])
		}
		if _, err := VerifyRelease(tampered); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v", c[1], err)
		}
	}
	// Another key in the statement: the signature does not verify.
	other := "installation-key: " + base64.StdEncoding.EncodeToString(pubOf(testKey(10)))
	tampered := bytes.Replace(stmt, []byte("installation-key: "+base64.StdEncoding.EncodeToString(pubOf(inst))), []byte(other), 1)
	if _, err := VerifyRelease(tampered); !errors.Is(err, ErrSignature) {
		t.Errorf("other installation key: %v", err)
	}
}

func TestReleaseParseErrors(t *testing.T) {
	stmt, err := IssueRelease(testKey(9), "RG-1", testInstallation, day(2027, 3, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func([]string) []string
		msg  string
	}{
		{func(l []string) []string { l[3] = "released: 2027-03-01T01:00:00+01:00"; return l }, `license: release statement: line 4: released "2027-03-01T01:00:00+01:00": must be an RFC 3339 UTC time`},
		{func(l []string) []string { l[3] = "released: 2027-03-01T00:00:00.5Z"; return l }, `line 4: released "2027-03-01T00:00:00.5Z": must be`},
		{func(l []string) []string { l[4] = "installation-key: AAAA"; return l }, `line 5: installation-key "AAAA": must be standard base64 of 32 bytes`},
		{func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, `line 2: missing field "number" before "installation"`},
		{func(l []string) []string { return append(l[:2:2], append([]string{"edition: standard"}, l[2:]...)...) }, `line 3: unknown field "edition"`},
	} {
		_, err := VerifyRelease(editLines(stmt, tc.edit))
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("got %v, want %q", err, tc.msg)
		}
	}
	// A license is not a release statement, and vice versa.
	lic := mustIssue(t, testKey(1), testLicense())
	if _, err := VerifyRelease(lic); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "this is a license, not a release statement") {
		t.Errorf("license as release: %v", err)
	}
	if _, _, _, err := Parse(stmt); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "line 1: this is a release statement, not a license") {
		t.Errorf("release as license: %v", err)
	}
}
