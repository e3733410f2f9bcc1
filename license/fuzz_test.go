package license

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
	"testing"
)

func FuzzParse(f *testing.F) {
	priv := testKey(1)
	full := mustIssue(f, priv, testLicense())
	f.Add(full)
	f.Add(mustIssue(f, priv, pack("RG-1", 1)))
	f.Add(append([]byte("comment\n"), append(bytes.Clone(full), "trailer"...)...))
	f.Add(bytes.Replace(full, []byte("participants: 64"), []byte("participants: 0x40"), 1))
	f.Add(bytes.Replace(full, []byte("\n"), []byte("\r\n"), -1))
	f.Add([]byte(LicenseBegin + "\n" + LicenseEnd + "\n"))
	f.Add([]byte(""))
	v := verifier(priv)
	f.Fuzz(func(t *testing.T, data []byte) {
		l, msg, sig, err := Parse(data)
		if err != nil {
			if l != nil || msg != nil || sig != nil || !errors.Is(err, ErrFormat) {
				t.Fatalf("Parse error %v with results %v %q %x", err, l, msg, sig)
			}
			if _, verr := v.Verify(data); verr == nil {
				t.Fatal("Verify succeeded where Parse failed")
			}
			return
		}
		if len(sig) != ed25519.SignatureSize {
			t.Fatalf("signature of %d bytes", len(sig))
		}
		// The license re-marshals to exactly the signed payload.
		p, err := l.payload()
		if err != nil {
			t.Fatalf("parsed license does not validate: %v", err)
		}
		if string(msg) != LicenseSigningPrefix+string(p) {
			t.Fatalf("re-marshaled payload %q, signed message %q", p, msg)
		}
		// The canonical armor parses to the same.
		l2, msg2, sig2, err := Parse(licenseSpec.armor(p, sig))
		if err != nil || !reflect.DeepEqual(l, l2) || !bytes.Equal(msg, msg2) || !bytes.Equal(sig, sig2) {
			t.Fatalf("canonical armor: %v", err)
		}
		// Verify agrees with the signature check.
		got, err := v.Verify(data)
		want := l.KeyID == KeyID(pubOf(priv)) && ed25519.Verify(pubOf(priv), msg, sig) && l.Product == "remotegate"
		if (err == nil) != want {
			t.Fatalf("Verify error %v, want success %v", err, want)
		}
		if err == nil && !reflect.DeepEqual(got, l) {
			t.Fatalf("Verify = %+v, Parse = %+v", got, l)
		}
	})
}

func FuzzParseRelease(f *testing.F) {
	stmt, err := IssueRelease(testKey(9), "RG-1", testInstallation, now0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stmt)
	f.Add(append([]byte("comment\n"), stmt...))
	f.Add(bytes.Replace(stmt, []byte("T12:00:00Z"), []byte("T12:00:00+00:00"), 1))
	f.Add(mustIssue(f, testKey(1), testLicense()))
	f.Add([]byte(ReleaseBegin + "\n" + ReleaseEnd + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, msg, sig, err := ParseRelease(data)
		if err != nil {
			if r != nil || !errors.Is(err, ErrFormat) {
				t.Fatalf("ParseRelease error %v with %v", err, r)
			}
			if _, verr := VerifyRelease(data); verr == nil {
				t.Fatal("VerifyRelease succeeded where ParseRelease failed")
			}
			return
		}
		p, err := releaseSpec.payloadOf(r.values())
		if err != nil || string(msg) != ReleaseSigningPrefix+string(p) {
			t.Fatalf("re-marshaled payload %q (%v), signed message %q", p, err, msg)
		}
		if len(r.InstallationKey) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
			t.Fatalf("key %d bytes, signature %d bytes", len(r.InstallationKey), len(sig))
		}
		got, err := VerifyRelease(data)
		want := ed25519.Verify(r.InstallationKey, msg, sig)
		if (err == nil) != want || (err != nil && !errors.Is(err, ErrSignature)) {
			t.Fatalf("VerifyRelease error %v, want success %v", err, want)
		}
		if err == nil && !reflect.DeepEqual(got, r) {
			t.Fatalf("VerifyRelease = %+v, ParseRelease = %+v", got, r)
		}
	})
}
