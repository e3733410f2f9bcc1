package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestParsePKCS11URI uses the examples of RFC 7512 section 3 and a few of
// our own.
func TestParsePKCS11URI(t *testing.T) {
	cases := []struct {
		uri  string
		want PKCS11URI
	}{
		{"pkcs11:", PKCS11URI{}},
		{"PKCS11:object=my-pubkey;type=public", PKCS11URI{Object: "my-pubkey", Type: "public"}},
		{"pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
			PKCS11URI{Object: "my-key", Type: "private", PINSource: "file:/etc/token"}},
		{"pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;" +
			"object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
			PKCS11URI{Token: "The Software PKCS#11 Softtoken", Manufacturer: "Snake Oil, Inc.", Model: "1.0",
				Object: "my-certificate", Type: "cert", ID: []byte{0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91},
				PINSource: "file:/etc/token_pin"}},
		{"pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
			PKCS11URI{Object: "my-sign-key", Type: "private", ModuleName: "mypkcs11"}},
		{"pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
			PKCS11URI{Object: "my-sign-key", Type: "private", ModulePath: "/mnt/libmypkcs11.so.1"}},
		{"pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
			PKCS11URI{Token: "Software PKCS#11 softtoken", Manufacturer: "Snake Oil, Inc.", PINValue: "the-pin"}},
		{"pkcs11:slot-description=Sun%20Metaslot", PKCS11URI{SlotDescription: "Sun Metaslot"}},
		{"pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
			PKCS11URI{LibraryManufacturer: "Snake Oil, Inc.", LibraryDescription: "Soft Token Library", LibraryVersion: "1.23"}},
		{"pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ef%fe?pin-value=secret",
			PKCS11URI{Token: "My token% created by Joe", LibraryVersion: "3", ID: []byte{1, 2, 3, 0xba, 0xdd, 0xef, 0xfe}, PINValue: "secret"}},
		{"pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
			PKCS11URI{Token: "A name with a substring %;", Object: "my-certificate", Type: "cert"}},
		{"pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
			PKCS11URI{Token: "Name with a small A with acute: á", Object: "my-certificate", Type: "cert"}},
		{"pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
			PKCS11URI{Token: "my-token", Object: "my-certificate", Type: "cert", PINSource: "file:/etc/token_pin",
				VendorPath: map[string]string{"vendor-aaa": "value-a"}, VendorQuery: map[string]string{"vendor-bbb": "value-b"}}},
		{"pkcs11:slot-manufacturer=Acme;slot-id=12;serial=0123456789abcdef",
			PKCS11URI{SlotManufacturer: "Acme", SlotID: "12", Serial: "0123456789abcdef"}},
		// Characters RFC 7512 allows unescaped in values.
		{"pkcs11:object=a:b@c!$'()*+,=&d?module-path=/usr/lib/x.so&pin-value=p/q?r|s;t",
			PKCS11URI{Object: "a:b@c!$'()*+,=&d", ModulePath: "/usr/lib/x.so", PINValue: "p/q?r|s;t"}},
	}
	for _, c := range cases {
		t.Run(c.uri, func(t *testing.T) {
			got, err := ParsePKCS11URI(c.uri)
			if err != nil {
				t.Fatalf("ParsePKCS11URI: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %#v\nwant %#v", got, c.want)
			}
			again, err := ParsePKCS11URI(got.Encode())
			if err != nil {
				t.Fatalf("re-parsing %q: %v", got.Encode(), err)
			}
			if !reflect.DeepEqual(again, got) {
				t.Errorf("Encode round trip changed the URI: %q gives %#v", got.Encode(), again)
			}
		})
	}
}

func TestParsePKCS11URIErrors(t *testing.T) {
	cases := []struct {
		uri, mention string
	}{
		{"", "pkcs11:"},
		{"https://example.com/", "pkcs11:"},
		{"pkcs11:token", `"token"`},
		{"pkcs11:=x", "empty name"},
		{"pkcs11:tok en=x", `"tok en"`},
		{"pkcs11:token=a;token=b", `"token" appears more than once`},
		{"pkcs11:object=a b", `"object"`},
		{"pkcs11:type=secret", `"type"`},
		{"pkcs11:type=Private", `"type"`},
		{"pkcs11:id=%zz", `"id"`},
		{"pkcs11:id=%0", `"id"`},
		{"pkcs11:id=%", `"id"`},
		{"pkcs11:slot-id=abc", `"slot-id"`},
		{"pkcs11:slot-id=-1", `"slot-id"`},
		{"pkcs11:library-version=1.x", `"library-version"`},
		{"pkcs11:library-version=.1", `"library-version"`},
		{"pkcs11:pin-value=1234", `"pin-value" belongs in the query`},
		{"pkcs11:?token=x", `"token" belongs in the path`},
		{"pkcs11:?id=%01", `"id" belongs in the path`},
		{"pkcs11:?module-path=lib/libsofthsm2.so", `"module-path"`},
		{"pkcs11:?module-name=../evil", `"module-name"`},
		{"pkcs11:?pin-value=1&pin-value=2", `"pin-value" appears more than once`},
		{"pkcs11:?pin-value=1&pin-source=file:/pin", "pin-value and pin-source"},
		{"pkcs11:?pin-value=a%20b c", `"pin-value"`},
		{"pkcs11:object=x#frag", "fragment"},
	}
	for _, c := range cases {
		t.Run(c.uri, func(t *testing.T) {
			u, err := ParsePKCS11URI(c.uri)
			if err == nil {
				t.Fatalf("accepted: %#v", u)
			}
			if !errors.Is(err, ErrInvalidPKCS11URI) {
				t.Errorf("error %v does not match ErrInvalidPKCS11URI", err)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("error %q does not mention %s", err, c.mention)
			}
			if !reflect.DeepEqual(u, PKCS11URI{}) {
				t.Errorf("partial result %#v returned with the error", u)
			}
		})
	}
}

func TestPKCS11URIStringRedactsPIN(t *testing.T) {
	u, err := ParsePKCS11URI("pkcs11:token=ca;object=root?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=s3cr3t-PIN")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{u.String(), fmt.Sprint(u), fmt.Sprintf("%v", &u)} {
		if strings.Contains(s, "s3cr3t") || !strings.Contains(s, "pin-value=REDACTED") {
			t.Errorf("String form %q leaks or drops the PIN", s)
		}
	}
	if !strings.Contains(u.Encode(), "pin-value=s3cr3t-PIN") {
		t.Errorf("Encode %q lost the PIN", u.Encode())
	}
	cfg, err := u.Config()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "s3cr3t") || !strings.Contains(s, "REDACTED") {
			t.Errorf("PKCS11Config formatted as %q leaks or drops the PIN", s)
		}
	}
}

func TestPKCS11URIConfig(t *testing.T) {
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte("9876\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		uri     string
		want    PKCS11Config
		wantErr string
	}{
		{uri: "pkcs11:token=ca?module-path=/m.so&pin-value=1234",
			want: PKCS11Config{Module: "/m.so", TokenLabel: "ca", PIN: "1234"}},
		{uri: "pkcs11:serial=abc?module-path=/m.so&pin-source=file:" + pinFile,
			want: PKCS11Config{Module: "/m.so", TokenSerial: "abc", PIN: "9876"}},
		{uri: "pkcs11:serial=abc?module-path=/m.so&pin-source=file://" + pinFile,
			want: PKCS11Config{Module: "/m.so", TokenSerial: "abc", PIN: "9876"}},
		{uri: "pkcs11:token=ca;serial=abc?module-path=/m.so&pin-source=" + pinFile,
			want: PKCS11Config{Module: "/m.so", TokenLabel: "ca", TokenSerial: "abc", PIN: "9876"}},
		{uri: "pkcs11:token=ca?pin-value=1", wantErr: "module-path is required"},
		{uri: "pkcs11:token=ca?module-name=softhsm2", wantErr: "module-name"},
		{uri: "pkcs11:object=key?module-path=/m.so", wantErr: "token or serial"},
		{uri: "pkcs11:token=ca?module-path=/m.so&pin-source=relative/pin", wantErr: "pin-source"},
		{uri: "pkcs11:token=ca?module-path=/m.so&pin-source=/nonexistent/pin", wantErr: "/nonexistent/pin"},
	}
	for _, c := range cases {
		u, err := ParsePKCS11URI(c.uri)
		if err != nil {
			t.Fatalf("ParsePKCS11URI(%q): %v", c.uri, err)
		}
		got, err := u.Config()
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: got %v, want an error mentioning %q", c.uri, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.uri, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: got %#v, want %#v (PINs %q, %q)", c.uri, got, c.want, got.PIN, c.want.PIN)
		}
	}
}

// TestPKCS11Stub checks the build without PKCS#11 (go test -tags nopkcs11,
// or CGO_ENABLED=0): every entry point fails with ErrPKCS11Unavailable.
func TestPKCS11Stub(t *testing.T) {
	if pkcs11Available {
		t.Skip("PKCS#11 is compiled in; run with -tags nopkcs11 to test the stub")
	}
	if _, err := OpenToken(PKCS11Config{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "x"}); !errors.Is(err, ErrPKCS11Unavailable) {
		t.Errorf("OpenToken: got %v, want ErrPKCS11Unavailable", err)
	}
	var tok *Token
	if _, err := tok.GenerateKey("k", nil, ECDSAP256); !errors.Is(err, ErrPKCS11Unavailable) {
		t.Errorf("GenerateKey: got %v", err)
	}
	if _, err := tok.Signer("k", nil); !errors.Is(err, ErrPKCS11Unavailable) {
		t.Errorf("Signer: got %v", err)
	}
}

// FuzzParsePKCS11URI checks that no input panics and that every URI that
// parses encodes to a canonical form that parses to the same value.
func FuzzParsePKCS11URI(f *testing.F) {
	for _, seed := range []string{
		"pkcs11:",
		"pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
		"pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
		"pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
		"pkcs11:slot-id=3;slot-description=x?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
		"pkcs11:object=a:b@c!$'()*+,=&d?pin-value=p/q?r|s;t",
		"pkcs11:id=%zz",
		"pkcs11:token=a;token=b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		u, err := ParsePKCS11URI(uri)
		if err != nil {
			if !errors.Is(err, ErrInvalidPKCS11URI) {
				t.Fatalf("error %v does not wrap ErrInvalidPKCS11URI", err)
			}
			return
		}
		enc := u.Encode()
		back, err := ParsePKCS11URI(enc)
		if err != nil {
			t.Fatalf("%q parses, but its encoding %q does not: %v", uri, enc, err)
		}
		if !reflect.DeepEqual(u, back) {
			t.Fatalf("round trip through %q changed %#v into %#v", enc, u, back)
		}
		if back.Encode() != enc {
			t.Fatalf("encoding is not canonical: %q then %q", enc, back.Encode())
		}
		if u.PINValue != "" && strings.Contains(u.String(), "pin-value="+percentEncode(u.PINValue, true)) && u.PINValue != "REDACTED" {
			t.Fatalf("String %q shows the PIN", u.String())
		}
	})
}
