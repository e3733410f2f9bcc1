package main

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/license"
)

func runTool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(args, &stdout, &stderr)
	return stdout.String(), err
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	vendor := filepath.Join(dir, "vendor")
	out, err := runTool(t, "keygen", "-out", vendor)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "key ID ") {
		t.Errorf("keygen output %q", out)
	}
	st, err := os.Stat(vendor + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("vendor.key mode %v, want 0600", st.Mode().Perm())
	}
	pubPEM, err := os.ReadFile(vendor + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := license.ParseVendorPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runTool(t, "keygen", "-out", vendor); !errors.Is(err, os.ErrExist) {
		t.Errorf("keygen over existing files: %v", err)
	}

	// Issue to standard output, as in "licensetool issue ... > RG-1.lic".
	const inst = "3f1c9a0e5b7d42c68e1f0a2b4c6d8e90"
	lic, err := runTool(t, "issue", "-key", vendor+".key", "-number", "RG-1", "-participants", "64",
		"-issued", "2026-11-23", "-expires", "2027-11-23", "-installation", inst)
	if err != nil {
		t.Fatal(err)
	}
	licFile := filepath.Join(dir, "RG-1.lic")
	if err := os.WriteFile(licFile, []byte(lic), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := (&license.Verifier{Product: "remotegate", Keys: []ed25519.PublicKey{pub}}).Verify([]byte(lic))
	if err != nil {
		t.Fatal(err)
	}
	if l.Number != "RG-1" || l.Participants != 64 || l.Edition != "standard" || l.Installation != inst ||
		!l.Issued.Equal(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)) || !l.Expires.Equal(time.Date(2027, 11, 23, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("issued license %+v", l)
	}

	// Issue to a file, defaults.
	lic2 := filepath.Join(dir, "RG-2.lic")
	if _, err := runTool(t, "issue", "-key", vendor+".key", "-number", "RG-2", "-participants", "1024", "-edition", "enterprise", "-out", lic2); err != nil {
		t.Fatal(err)
	}

	out, err = runTool(t, "inspect", "-pub", vendor+".pub", licFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"number:           RG-1\n",
		"product:          remotegate\n",
		"edition:          standard\n",
		"participants:     +64\n",
		"issued:           2026-11-23\n",
		"expires:          2027-11-23\n",
		"installation:     " + inst + "\n",
		"key:              " + license.KeyID(pub) + "\n",
		"signature:        verified with vendor key " + license.KeyID(pub) + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	out, err = runTool(t, "inspect", "-pub", vendor+".pub", lic2)
	if err != nil || !strings.Contains(out, "expires:          never\n") || !strings.Contains(out, "installation:     any\n") ||
		!strings.Contains(out, "edition:          enterprise\n") {
		t.Errorf("inspect RG-2: %v\n%s", err, out)
	}

	// Another vendor key: not verified, exit status 1.
	other := filepath.Join(dir, "other")
	if _, err := runTool(t, "keygen", "-out", other); err != nil {
		t.Fatal(err)
	}
	out, err = runTool(t, "inspect", "-pub", other+".pub", licFile)
	if !errors.Is(err, license.ErrUnknownKey) || !strings.Contains(out, "signature:        NOT VERIFIED: license: signed with an unknown vendor key") {
		t.Errorf("inspect with another key: %v\n%s", err, out)
	}
	// Key rotation: both keys given.
	if _, err := runTool(t, "inspect", "-pub", other+".pub", "-pub", vendor+".pub", licFile); err != nil {
		t.Errorf("inspect with two keys: %v", err)
	}
	// Tampered file.
	tampered := filepath.Join(dir, "tampered.lic")
	if err := os.WriteFile(tampered, []byte(strings.Replace(lic, "participants: 64", "participants: 65", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runTool(t, "inspect", "-pub", vendor+".pub", tampered)
	if !errors.Is(err, license.ErrSignature) || !strings.Contains(out, "NOT VERIFIED: license: signature does not verify") {
		t.Errorf("inspect tampered: %v\n%s", err, out)
	}
	if _, err := runTool(t, "inspect", "-pub", vendor+".pub", "-product", "other", licFile); !errors.Is(err, license.ErrProduct) {
		t.Errorf("inspect -product other: %v", err)
	}

	// Release: the installation releases the license; the vendor verifies
	// the statement.
	_, instKey, _ := ed25519.GenerateKey(nil)
	s := license.NewState(&license.Verifier{Product: "remotegate", Keys: []ed25519.PublicKey{pub}}, inst, 0)
	now := time.Date(2027, 3, 1, 9, 30, 0, 0, time.UTC)
	if _, err := s.Activate([]byte(lic), now); err != nil {
		t.Fatal(err)
	}
	stmt, err := s.Release("RG-1", instKey, now)
	if err != nil {
		t.Fatal(err)
	}
	relFile := filepath.Join(dir, "RG-1.release")
	if err := os.WriteFile(relFile, stmt, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runTool(t, "verify-release", relFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"number:           RG-1\n",
		"installation:     " + inst + "\n",
		"released:         2027-03-01T09:30:00Z\n",
		"installation-key: ",
		"verified:         yes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify-release output lacks %q:\n%s", want, out)
		}
	}
	badRel := filepath.Join(dir, "bad.release")
	if err := os.WriteFile(badRel, bytes.Replace(stmt, []byte("number: RG-1"), []byte("number: RG-7"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runTool(t, "verify-release", badRel)
	if !errors.Is(err, license.ErrSignature) || !strings.Contains(out, "verified:         NO") {
		t.Errorf("verify-release tampered: %v\n%s", err, out)
	}
	if _, err := runTool(t, "verify-release", licFile); !errors.Is(err, license.ErrFormat) {
		t.Errorf("verify-release of a license: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"keygen"},
		{"keygen", "-out", filepath.Join(dir, "v"), "extra"},
		{"issue", "-number", "RG-1", "-participants", "64"},
		{"issue", "-key", filepath.Join(dir, "missing.key"), "-number", "RG-1", "-participants", "64"},
		{"issue", "-key", "k", "-number", "RG-1", "-participants", "64", "-expires", "23.11.2027"},
		{"inspect", filepath.Join(dir, "x.lic")},
		{"inspect", "-pub", filepath.Join(dir, "missing.pub"), "x.lic"},
		{"verify-release"},
		{"verify-release", filepath.Join(dir, "missing")},
	} {
		if _, err := runTool(t, args...); err == nil || errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: err = %v, want a failure", args, err)
		}
	}
	if _, err := runTool(t, "issue", "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("issue -h: %v", err)
	}

	// Invalid license fields are reported by the license package.
	vendor := filepath.Join(dir, "vendor")
	if _, err := runTool(t, "keygen", "-out", vendor); err != nil {
		t.Fatal(err)
	}
	_, err := runTool(t, "issue", "-key", vendor+".key", "-number", "rg-1", "-participants", "64")
	if !errors.Is(err, license.ErrFormat) || !strings.Contains(err.Error(), `number "rg-1"`) {
		t.Errorf("issue with a bad number: %v", err)
	}
	for _, p := range []string{"0x40", "064", "+64", "sixty"} {
		_, err := runTool(t, "issue", "-key", vendor+".key", "-number", "RG-1", "-participants", p)
		if err == nil || !strings.Contains(err.Error(), "-participants") {
			t.Errorf("issue -participants %s: %v", p, err)
		}
	}
	if _, err := runTool(t, "issue", "-key", vendor+".pub", "-number", "RG-1", "-participants", "64"); err == nil {
		t.Error("issue with the public key file succeeded")
	}
}
