package license

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestIssueParseVerify(t *testing.T) {
	priv := testKey(1)
	want := testLicense()
	file := mustIssue(t, priv, want)
	want.KeyID = KeyID(pubOf(priv))

	const wantPayload = "number: RG-2026-000123\n" +
		"product: remotegate\n" +
		"edition: standard\n" +
		"participants: 64\n" +
		"issued: 2026-11-23\n" +
		"expires: 2027-11-23\n" +
		"installation: " + testInstallation + "\n"
	wantPayloadKey := wantPayload + "key: " + want.KeyID + "\n"
	if !strings.HasPrefix(string(file), LicenseBegin+"\n"+wantPayloadKey+"signature: ") ||
		!strings.HasSuffix(string(file), "\n"+LicenseEnd+"\n") {
		t.Fatalf("file:\n%s", file)
	}

	l, msg, sig, err := Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*l, want) {
		t.Errorf("Parse = %+v, want %+v", *l, want)
	}
	if string(msg) != LicenseSigningPrefix+wantPayloadKey {
		t.Errorf("signed message = %q", msg)
	}
	if !ed25519.Verify(pubOf(priv), msg, sig) {
		t.Error("signature returned by Parse does not verify the message")
	}
	got, err := verifier(priv).Verify(file)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Verify = %+v, want %+v", *got, want)
	}

	// Optional fields omitted.
	minimal := pack("RG-1", 1)
	file = mustIssue(t, priv, minimal)
	if bytes.Contains(file, []byte("expires:")) || bytes.Contains(file, []byte("installation:")) {
		t.Errorf("optional fields not omitted:\n%s", file)
	}
	l, err = verifier(priv).Verify(file)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Expires.IsZero() || l.Installation != "" || l.Participants != 1 {
		t.Errorf("minimal license = %+v", *l)
	}
}

func TestIssueKeepsUTCDate(t *testing.T) {
	l := pack("RG-1", 64)
	l.Issued = time.Date(2026, 11, 23, 23, 30, 0, 0, time.FixedZone("X", -2*3600)) // 2026-11-24 01:30 UTC
	l.Expires = time.Date(2027, 1, 2, 15, 4, 5, 0, time.UTC)
	l.KeyID = "00000000" // ignored
	got, err := verifier(testKey(1)).Verify(mustIssue(t, testKey(1), l))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Issued.Equal(day(2026, 11, 24)) || !got.Expires.Equal(day(2027, 1, 2)) || got.Issued.Location() != time.UTC {
		t.Errorf("Issued %v, Expires %v", got.Issued, got.Expires)
	}
	if got.KeyID != KeyID(pubOf(testKey(1))) {
		t.Errorf("KeyID = %q", got.KeyID)
	}
}

func TestIssueValidation(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*License)
	}{
		{"number", func(l *License) { l.Number = "rg-1" }},
		{"number", func(l *License) { l.Number = "" }},
		{"number", func(l *License) { l.Number = strings.Repeat("A", 65) }},
		{"product", func(l *License) { l.Product = "RemoteGate" }},
		{"product", func(l *License) { l.Product = strings.Repeat("a", 33) }},
		{"edition", func(l *License) { l.Edition = "" }},
		{"edition", func(l *License) { l.Edition = "std edition" }},
		{"participants", func(l *License) { l.Participants = 0 }},
		{"participants", func(l *License) { l.Participants = -64 }},
		{"participants", func(l *License) { l.Participants = MaxParticipants + 1 }},
		{"issued", func(l *License) { l.Issued = time.Time{} }},
		{"issued", func(l *License) { l.Issued = day(1999, 12, 31) }},
		{"expires", func(l *License) { l.Expires = l.Issued }},
		{"expires", func(l *License) { l.Expires = l.Issued.AddDate(0, 0, -1) }},
		{"installation", func(l *License) { l.Installation = "a_b" }},
		{"installation", func(l *License) { l.Installation = strings.Repeat("a", 129) }},
	} {
		l := testLicense()
		tc.edit(&l)
		_, err := Issue(testKey(1), l)
		var fe *FormatError
		if !errors.Is(err, ErrFormat) || !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Issue with bad %s: %v", tc.field, err)
		}
	}
	l := testLicense()
	l.Participants = MaxParticipants
	l.Number = strings.Repeat("9", 64)
	l.Installation = strings.Repeat("Z", 128)
	if _, err := Issue(testKey(1), l); err != nil {
		t.Errorf("Issue at the limits: %v", err)
	}
	if _, err := Issue(ed25519.PrivateKey{1, 2, 3}, testLicense()); err == nil {
		t.Error("Issue with a short key succeeded")
	}
}

func TestCommentsAroundArmorIgnored(t *testing.T) {
	priv := testKey(1)
	file := mustIssue(t, priv, testLicense())
	wrapped := "Licensed to ACME Plant 4.\r\n  key: ffffffff\n\n" + string(file) + "signature: AAAA\nthanks\n-----END REMOTEGATE LICENSE-----"
	if _, err := verifier(priv).Verify([]byte(wrapped)); err != nil {
		t.Fatal(err)
	}
	// No final LF after the END line.
	if _, err := verifier(priv).Verify(bytes.TrimSuffix(file, []byte("\n"))); err != nil {
		t.Fatal(err)
	}
}

// alternative returns a byte of the same class as c (digit, lower, upper)
// so that the tampered value usually stays syntactically valid.
func alternative(c byte) byte {
	switch {
	case c == '9' || c == 'z' || c == 'Z' || c == 'f':
		return c - 1
	case c >= '0' && c <= '8', c >= 'a' && c <= 'y', c >= 'A' && c <= 'Y':
		return c + 1
	case c == '-':
		return '0'
	}
	return 'x'
}

// TestTamperAnyByte changes every byte of the armored block, in two ways,
// and expects a clear error every time.
func TestTamperAnyByte(t *testing.T) {
	priv := testKey(1)
	v := verifier(priv)
	file := mustIssue(t, priv, testLicense())
	for i := range file {
		for _, b := range []byte{alternative(file[i]), '#'} {
			if b == file[i] {
				continue
			}
			tampered := bytes.Clone(file)
			tampered[i] = b
			_, err := v.Verify(tampered)
			if !errors.Is(err, ErrSignature) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("byte %d %q -> %q: Verify error %v\n%s", i, file[i], b, err, tampered)
			}
		}
	}
}

// TestTamperEveryField changes one character of every field value, keeping
// it valid, and expects ErrSignature (ErrUnknownKey for the key ID).
func TestTamperEveryField(t *testing.T) {
	priv := testKey(1)
	v := verifier(priv)
	file := mustIssue(t, priv, testLicense())
	lines := strings.Split(string(file), "\n")
	for i := 1; i <= 8; i++ { // number .. key
		name, value, _ := strings.Cut(lines[i], ": ")
		positions := []int{0, len(value) - 1}
		if name == "issued" || name == "expires" {
			positions = positions[1:] // the day keeps the dates valid and ordered
		}
		for _, pos := range positions {
			tampered := editLines(file, func(l []string) []string {
				b := []byte(value)
				b[pos] = alternative(b[pos])
				l[i] = name + ": " + string(b)
				return l
			})
			_, err := v.Verify(tampered)
			want := ErrSignature
			if name == "key" {
				want = ErrUnknownKey
			}
			if !errors.Is(err, want) {
				t.Errorf("%s changed at %d: got %v, want %v", name, pos, err, want)
			}
			if want == ErrSignature && !strings.HasPrefix(err.Error(), "license: signature does not verify") {
				t.Errorf("error text %q", err)
			}
		}
	}
	// The key ID of another trusted key: the signature does not verify.
	other := testKey(2)
	tampered := bytes.Replace(file, []byte("key: "+KeyID(pubOf(priv))), []byte("key: "+KeyID(pubOf(other))), 1)
	if _, err := verifier(priv, other).Verify(tampered); !errors.Is(err, ErrSignature) {
		t.Errorf("key ID of another trusted key: %v", err)
	}
}

func TestTamperSignature(t *testing.T) {
	priv := testKey(1)
	v := verifier(priv)
	file := mustIssue(t, priv, testLicense())
	_, _, sig, err := Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	orig := "signature: " + base64.StdEncoding.EncodeToString(sig)
	for i := range sig {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(sig)
			bad[i] ^= bit
			tampered := bytes.Replace(file, []byte(orig), []byte("signature: "+base64.StdEncoding.EncodeToString(bad)), 1)
			if _, err := v.Verify(tampered); !errors.Is(err, ErrSignature) {
				t.Fatalf("signature byte %d ^ %#x: %v", i, bit, err)
			}
		}
	}
}

// TestStructureErrors checks the strict parser: each case must fail with
// ErrFormat naming the line.
func TestStructureErrors(t *testing.T) {
	file := mustIssue(t, testKey(1), testLicense())
	// Lines (1-based): 1 BEGIN, 2 number, 3 product, 4 edition,
	// 5 participants, 6 issued, 7 expires, 8 installation, 9 key,
	// 10 signature, 11 END.
	swap := func(i, j int) func([]string) []string {
		return func(l []string) []string { l[i], l[j] = l[j], l[i]; return l }
	}
	del := func(i int) func([]string) []string {
		return func(l []string) []string { return append(l[:i:i], l[i+1:]...) }
	}
	insert := func(i int, s string) func([]string) []string {
		return func(l []string) []string { return append(l[:i:i], append([]string{s}, l[i:]...)...) }
	}
	set := func(i int, s string) func([]string) []string {
		return func(l []string) []string { l[i] = s; return l }
	}
	for _, tc := range []struct {
		name string
		edit func([]string) []string
		line int
		msg  string
	}{
		{"reordered", swap(2, 3), 3, `line 3: missing field "product" before "edition"`},
		{"reordered optional", swap(6, 7), 8, `line 8: field "expires" out of order: it must come before "installation"`},
		{"duplicate", insert(3, "product: remotegate"), 4, `line 4: duplicate field "product" (first on line 3)`},
		{"duplicate later", insert(4, "product: remotegate"), 5, `line 5: duplicate field "product" (first on line 3)`},
		{"unknown", insert(4, "seats: 64"), 5, `line 5: unknown field "seats"`},
		{"missing", del(3), 4, `line 4: missing field "edition" before "participants"`},
		{"missing key", del(8), 9, `line 9: missing field "key" before "signature"`},
		{"missing signature", del(9), 10, `line 10: missing field "signature"`},
		{"missing END", del(10), 10, `line 10: missing the END line`},
		{"trailing space", func(l []string) []string { l[4] += " "; return l }, 5, `line 5: participants "64 ": trailing whitespace`},
		{"CRLF", func(l []string) []string { l[2] += "\r"; return l }, 3, `line 3: product "remotegate\r": trailing whitespace (CRLF line ends?)`},
		{"CRLF armor", func(l []string) []string { l[0] += "\r"; return l }, 1, "line 1: BEGIN line with surrounding whitespace"},
		{"empty line", insert(5, ""), 6, "line 6: empty line inside the license"},
		{"no space", set(1, "number:RG-2026-000123"), 2, `line 2: field "number": expected a space`},
		{"not a field", set(4, "participants 64"), 5, `line 5: expected "name: value"`},
		{"empty value", set(6, "expires: "), 7, `line 7: expires "": must be a date`},
		{"field after signature", insert(10, "note: hello"), 11, "line 11: expected the END line after the signature"},
		{"key before installation", swap(7, 8), 9, `line 9: field "installation" out of order: it must come before "key"`},
		{"signature before key", swap(8, 9), 9, `line 9: missing field "key" before "signature"`},
		{"second license", func(l []string) []string { return append(l, l...) }, 12, "line 12: a second BEGIN line"},
		{"END without BEGIN", del(0), 10, "line 10: END line without a BEGIN line"},
		{"no armor", func(l []string) []string { return l[1:10] }, 0, "no " + LicenseBegin + " line found"},
		{"indented END", set(10, " "+LicenseEnd), 11, "line 11: END line with surrounding whitespace"},
	} {
		bad := editLines(file, tc.edit)
		_, _, _, err := Parse(bad)
		var fe *FormatError
		if !errors.Is(err, ErrFormat) || !errors.As(err, &fe) {
			t.Errorf("%s: got %v, want ErrFormat\n%s", tc.name, err, bad)
			continue
		}
		if fe.Line != tc.line || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "license: ") {
			t.Errorf("%s: got %q (line %d), want line %d and %q", tc.name, err, fe.Line, tc.line, tc.msg)
		}
	}
}

func TestValueErrors(t *testing.T) {
	file := mustIssue(t, testKey(1), testLicense())
	for _, tc := range []struct {
		line  int // 1-based
		value string
		msg   string
	}{
		{5, "participants: 0x40", `license: line 5: participants "0x40": must be a decimal number from 1 to 1000000 without leading zeros`},
		{5, "participants: 064", `participants "064": must be`},
		{5, "participants: 0", `participants "0": must be`},
		{5, "participants: 1000001", `participants "1000001": must be`},
		{5, "participants: +64", `participants "+64": must be`},
		{2, "number: rg-1", `line 2: number "rg-1": must be 1 to 64 characters A-Z, 0-9 or -`},
		{3, "product: Remotegate", `line 3: product "Remotegate": must be`},
		{4, "edition:  standard", `line 4: edition " standard": must be`},
		{6, "issued: 2026-02-30", `line 6: issued "2026-02-30": must be a date YYYY-MM-DD`},
		{6, "issued: 2026-1-23", `issued "2026-1-23": must be a date`},
		{6, "issued: 1999-11-23", `issued "1999-11-23": must be a date`},
		{7, "expires: 2026-11-23", `line 7: expires "2026-11-23": must be after issued 2026-11-23`},
		{8, "installation: 3f1c_9a", `line 8: installation "3f1c_9a": must be`},
		{9, "key: FE812C12", `line 9: key "FE812C12": must be 8 lowercase hex digits`},
		{10, "signature: AAAA", `line 10: signature "AAAA": must be standard base64 of 64 bytes`},
	} {
		bad := editLines(file, func(l []string) []string { l[tc.line-1] = tc.value; return l })
		_, err := verifier(testKey(1)).Verify(bad)
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) || fe.Line != tc.line || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: got %v, want line %d and %q", tc.value, err, tc.line, tc.msg)
		}
	}
	// A signature whose padding bits are not zero is not canonical.
	_, _, sig, _ := Parse(file)
	enc := base64.StdEncoding.EncodeToString(sig)
	noncanonical := enc[:85] + string(enc[85]+1) + "=="
	if _, err := base64.StdEncoding.DecodeString(noncanonical); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(file, []byte(enc), []byte(noncanonical), 1)
	if _, _, _, err := Parse(bad); !errors.Is(err, ErrFormat) {
		t.Errorf("non-canonical base64: %v", err)
	}
	if _, _, _, err := Parse(bytes.Repeat([]byte("#"), MaxFileSize+1)); !errors.Is(err, ErrFormat) {
		t.Errorf("oversized input: %v", err)
	}
}

func TestProduct(t *testing.T) {
	priv := testKey(1)
	l := testLicense()
	l.Product = "remotegate-lite"
	file := mustIssue(t, priv, l)
	if _, err := verifier(priv).Verify(file); !errors.Is(err, ErrProduct) {
		t.Errorf("other product: %v", err)
	}
	if _, err := (&Verifier{Keys: []ed25519.PublicKey{pubOf(priv)}}).Verify(file); !errors.Is(err, ErrProduct) {
		t.Errorf("verifier without product: %v", err)
	}
	if _, err := (&Verifier{Product: "remotegate-lite", Keys: []ed25519.PublicKey{pubOf(priv)}}).Verify(file); err != nil {
		t.Errorf("matching product: %v", err)
	}
}

func TestUnknownKey(t *testing.T) {
	file := mustIssue(t, testKey(1), testLicense())
	for _, v := range []*Verifier{
		verifier(testKey(2)),
		verifier(),
		{Product: "remotegate", Keys: []ed25519.PublicKey{{1, 2, 3}}},
	} {
		_, err := v.Verify(file)
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), KeyID(pubOf(testKey(1)))) {
			t.Errorf("Verify with %d keys: %v", len(v.Keys), err)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey(1), testKey(2)
	oldFile := mustIssue(t, oldKey, pack("RG-OLD", 64))
	newFile := mustIssue(t, newKey, pack("RG-NEW", 256))
	both := verifier(oldKey, newKey)
	for _, f := range [][]byte{oldFile, newFile} {
		if _, err := both.Verify(f); err != nil {
			t.Errorf("Keys=[old,new]: %v", err)
		}
	}
	onlyNew := verifier(newKey)
	if _, err := onlyNew.Verify(newFile); err != nil {
		t.Errorf("Keys=[new], new license: %v", err)
	}
	if _, err := onlyNew.Verify(oldFile); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Keys=[new], old license: %v", err)
	}
	// Capacity with licenses of both keys.
	s := NewState(both, testInstallation, 0)
	for _, f := range [][]byte{oldFile, newFile} {
		if _, err := s.Activate(f, day(2027, 1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Capacity(day(2027, 1, 1)).Participants; got != 4+64+256 {
		t.Errorf("capacity = %d", got)
	}
}

func TestVendor(t *testing.T) {
	priv := testKey(3)
	v, err := NewVendor(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !v.PublicKey().Equal(pubOf(priv)) || v.KeyID() != KeyID(pubOf(priv)) || len(v.KeyID()) != 8 {
		t.Errorf("PublicKey/KeyID mismatch: %s", v.KeyID())
	}
	f, err := v.Issue(testLicense())
	if err != nil {
		t.Fatal(err)
	}
	if want := mustIssue(t, priv, testLicense()); !bytes.Equal(f, want) {
		t.Error("Vendor.Issue differs from Issue")
	}
	if _, err := NewVendor(nil); err == nil {
		t.Error("NewVendor(nil) succeeded")
	}
}

func TestVendorKeyFiles(t *testing.T) {
	pub, priv, err := GenerateVendorKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, privPEM := MarshalVendorPublicKey(pub), MarshalVendorPrivateKey(priv)
	if !strings.HasPrefix(string(pubPEM), "-----BEGIN "+VendorPublicKeyPEM+"-----\n") ||
		!strings.HasPrefix(string(privPEM), "-----BEGIN "+VendorPrivateKeyPEM+"-----\n") {
		t.Fatalf("PEM:\n%s%s", pubPEM, privPEM)
	}
	pub2, err := ParseVendorPublicKey(append([]byte("# vendor key 2026\n"), pubPEM...))
	if err != nil || !pub2.Equal(pub) {
		t.Fatalf("ParseVendorPublicKey: %v", err)
	}
	priv2, err := ParseVendorPrivateKey(privPEM)
	if err != nil || !priv2.Equal(priv) {
		t.Fatalf("ParseVendorPrivateKey: %v", err)
	}
	for name, f := range map[string]func() error{
		"private as public": func() error { _, err := ParseVendorPublicKey(privPEM); return err },
		"public as private": func() error { _, err := ParseVendorPrivateKey(pubPEM); return err },
		"two keys":          func() error { _, err := ParseVendorPublicKey(append(bytes.Clone(pubPEM), pubPEM...)); return err },
		"empty":             func() error { _, err := ParseVendorPublicKey(nil); return err },
		"garbage": func() error {
			_, err := ParseVendorPublicKey([]byte("-----BEGIN " + VendorPublicKeyPEM + "-----\nAAAA\n-----END " + VendorPublicKeyPEM + "-----\n"))
			return err
		},
	} {
		if err := f(); err == nil || !strings.HasPrefix(err.Error(), "license: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Deterministic from the reader.
	p1, _, _ := GenerateVendorKey(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	p2, _, _ := GenerateVendorKey(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if !p1.Equal(p2) {
		t.Error("GenerateVendorKey does not use the reader")
	}
	if _, _, err := GenerateVendorKey(bytes.NewReader(nil)); err == nil {
		t.Error("GenerateVendorKey with an empty reader succeeded")
	}
}

func TestNewInstallationID(t *testing.T) {
	a, err := NewInstallationID(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewInstallationID(nil)
	if len(a) != 32 || checkInstallation(a) != "" || !allOf(a, 32, 32, isLowerHex) || a == b {
		t.Errorf("IDs %q, %q", a, b)
	}
	c, _ := NewInstallationID(bytes.NewReader(make([]byte, 16)))
	if c != strings.Repeat("0", 32) {
		t.Errorf("from zero reader: %q", c)
	}
	if _, err := NewInstallationID(io.LimitReader(bytes.NewReader(make([]byte, 16)), 8)); err == nil {
		t.Error("short reader: no error")
	}
}
