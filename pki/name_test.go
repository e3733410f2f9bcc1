package pki

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestIssueRefusesBadCommonNames: a common name that would break a line
// wherever the certificate is shown, or that X.509 does not allow, is
// refused before anything is signed or recorded; names with spaces, as
// CAs and servers have, are issued.
func TestIssueRefusesBadCommonNames(t *testing.T) {
	recorded := 0
	ca, err := NewCA(CAConfig{CommonName: "Plant Access CA", OnIssue: func(Record) error { recorded++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cn, why string }{
		{"", "no common name"},
		{strings.Repeat("a", 1<<20), "has 1048576 characters"},
		{strings.Repeat("ä", MaxCommonName+1), "has 65 characters"},
		{"alice\nbob", "U+000A"},
		{"a\x00b", "U+0000"},
		{"a\rb", "U+000D"},
		{"a\x1bb", "U+001B"},
		{"a\u202eb", "U+202E"},
		{"a\u2028b", "U+2028"},
		{"\xed\xa0\x80", "not valid UTF-8"},
	} {
		for _, p := range []Profile{ProfileUser, ProfileDevice, ProfileServer} {
			_, err := ca.Issue(Request{Profile: p, CommonName: c.cn, PublicKey: key.Public()})
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), c.why) {
				t.Errorf("Issue(%s, %.40q) = %v; want ErrInvalidRequest saying %q", p, c.cn, err, c.why)
			}
			if err != nil && (len(err.Error()) > 400 || strings.ContainsAny(err.Error(), "\n\r\x00")) {
				t.Errorf("Issue(%s, %.40q): a message of %d bytes: %q", p, c.cn, len(err.Error()), err)
			}
		}
		if _, err := ca.NewEnrollmentToken(TokenRequest{Profile: ProfileDevice, CommonName: c.cn, TTL: time.Hour}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("NewEnrollmentToken(%.40q) = %v; want ErrInvalidRequest", c.cn, err)
		}
	}
	if n := len(ca.Records()); n != 0 || recorded != 0 {
		t.Fatalf("the CA signed %d and recorded %d certificates with bad names", n, recorded)
	}
	for _, cn := range []string{"remotegate broker", "plant7-gw", "jane.doe@example.com", strings.Repeat("ä", MaxCommonName)} {
		cert, err := ca.Issue(Request{Profile: ProfileServer, CommonName: cn, PublicKey: key.Public()})
		if err != nil || cert.Subject.CommonName != cn {
			t.Errorf("Issue(%q): %v", cn, err)
		}
	}
}
