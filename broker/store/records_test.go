package store

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/pki"
)

func TestSecrets(t *testing.T) {
	s, _ := openTest(t)
	if _, err := s.Secret(bg, "ca-key"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing secret: %v, want ErrNotFound", err)
	}
	must(t, s.PutSecret(bg, "ca-key", []byte{1, 2, 3}))
	must(t, s.PutSecret(bg, "empty", nil))
	got, err := s.Secret(bg, "ca-key")
	must(t, err)
	if !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Fatalf("secret %x", got)
	}
	got, err = s.Secret(bg, "empty")
	must(t, err)
	if got == nil || len(got) != 0 {
		t.Fatalf("empty secret: %#v", got)
	}
	must(t, s.PutSecret(bg, "ca-key", []byte{4}))
	got, err = s.Secret(bg, "ca-key")
	must(t, err)
	if !bytes.Equal(got, []byte{4}) {
		t.Fatalf("replaced secret %x", got)
	}
}

func TestPutSecretIfAbsent(t *testing.T) {
	s1, path := openTest(t)
	s2, err := OpenWith(path, Options{SecretKey: testKey})
	must(t, err)
	defer s2.Close()
	// Racing stores (as processes at first start) all agree on one value.
	var wg sync.WaitGroup
	results := make([][]byte, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := []*Store{s1, s2}[i%2]
			v, err := s.PutSecretIfAbsent(bg, "tls-crypt", []byte{byte(i)})
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}()
	}
	wg.Wait()
	stored, err := s1.Secret(bg, "tls-crypt")
	must(t, err)
	for i, r := range results {
		if !bytes.Equal(r, stored) {
			t.Errorf("caller %d got %x, stored is %x", i, r, stored)
		}
	}
	got, err := s1.PutSecretIfAbsent(bg, "tls-crypt", []byte("other"))
	must(t, err)
	if !bytes.Equal(got, stored) {
		t.Fatalf("second PutSecretIfAbsent returned %x, want the first value %x", got, stored)
	}
}

// newCert makes a self-signed certificate with the given serial, name and
// NotBefore.
func newCert(t *testing.T, serial int64, cn string, notBefore time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return cert
}

func TestCertificates(t *testing.T) {
	s, _ := openTest(t)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	// Put out of issue order.
	c2 := newCert(t, 0xbeef, "plant-7", t0.Add(time.Hour))
	c1 := newCert(t, 0x0a, "broker", t0)
	c3 := newCert(t, 0xbeef01, "alice", t0.Add(2*time.Hour))
	must(t, s.PutCertificate(bg, pki.Record{Certificate: c2, Profile: pki.ProfileDevice}))
	must(t, s.PutCertificate(bg, pki.Record{Certificate: c1, Profile: pki.ProfileServer}))
	must(t, s.PutCertificate(bg, pki.Record{Certificate: c3, Profile: pki.ProfileUser}))
	if err := s.PutCertificate(bg, pki.Record{}); err == nil {
		t.Fatal("PutCertificate without a certificate succeeded")
	}

	revokedAt := time.Date(2025, 4, 1, 12, 0, 0, 123456789, time.UTC)
	must(t, s.RevokeCertificate(bg, "00BEEF", revokedAt, pki.ReasonKeyCompromise))
	if err := s.RevokeCertificate(bg, "abc", revokedAt, pki.ReasonUnspecified); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking an unknown serial: %v, want ErrNotFound", err)
	}
	if err := s.RevokeCertificate(bg, "not hex", revokedAt, pki.ReasonUnspecified); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking a malformed serial: %v, want ErrNotFound", err)
	}

	recs, err := s.Certificates(bg)
	must(t, err)
	want := []struct {
		cert    *x509.Certificate
		profile pki.Profile
		revoked time.Time
		reason  pki.RevocationReason
	}{
		{c1, pki.ProfileServer, time.Time{}, 0},
		{c2, pki.ProfileDevice, revokedAt, pki.ReasonKeyCompromise},
		{c3, pki.ProfileUser, time.Time{}, 0},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if !r.Certificate.Equal(w.cert) || r.Certificate.SerialNumber.Cmp(w.cert.SerialNumber) != 0 ||
			r.Certificate.Subject.CommonName != w.cert.Subject.CommonName {
			t.Errorf("record %d: certificate %v, want %v", i, r.Certificate.Subject, w.cert.Subject)
		}
		if r.Profile != w.profile || !r.RevokedAt.Equal(w.revoked) || r.Reason != w.reason {
			t.Errorf("record %d: %v %v %v, want %v %v %v", i, r.Profile, r.RevokedAt, r.Reason, w.profile, w.revoked, w.reason)
		}
	}

	// Put replaces by serial (e.g. the CA writes back a revoked record).
	must(t, s.PutCertificate(bg, pki.Record{Certificate: c1, Profile: pki.ProfileServer, RevokedAt: revokedAt, Reason: pki.ReasonSuperseded}))
	recs, err = s.Certificates(bg)
	must(t, err)
	if len(recs) != 3 || !recs[0].RevokedAt.Equal(revokedAt) || recs[0].Reason != pki.ReasonSuperseded {
		t.Fatalf("after replacing: %d records, first %+v", len(recs), recs[0])
	}
}

func TestAddresses(t *testing.T) {
	s, _ := openTest(t)
	a1, a2 := netip.MustParseAddr("100.64.0.2"), netip.MustParseAddr("fd00::7")
	must(t, s.SetAddress(bg, "alice", a1))
	must(t, s.SetAddress(bg, "plant-7", a2))
	if err := s.SetAddress(bg, "bob", a1); err == nil {
		t.Fatal("two participants got the same address")
	}
	if err := s.SetAddress(bg, "bob", netip.Addr{}); err == nil {
		t.Fatal("invalid address accepted")
	}
	got, err := s.Addresses(bg)
	must(t, err)
	if want := map[string]netip.Addr{"alice": a1, "plant-7": a2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	a3 := netip.MustParseAddr("100.64.0.3")
	must(t, s.SetAddress(bg, "alice", a3))
	must(t, s.SetAddress(bg, "alice", a3)) // same again
	must(t, s.SetAddress(bg, "bob", a1))   // freed by alice
	must(t, s.DeleteAddress(bg, "plant-7"))
	if err := s.DeleteAddress(bg, "plant-7"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a missing address: %v, want ErrNotFound", err)
	}
	got, err = s.Addresses(bg)
	must(t, err)
	if want := map[string]netip.Addr{"alice": a3, "bob": a1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
}

func TestAccounts(t *testing.T) {
	s, _ := openTest(t)
	if _, err := s.Account(bg, "root"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	created := time.Date(2025, 1, 1, 0, 0, 0, 5, time.UTC)
	a := Account{Name: "root", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", MustChange: true, Created: created, Updated: created}
	must(t, s.PutAccount(bg, a))
	got, err := s.Account(bg, "root")
	must(t, err)
	if !reflect.DeepEqual(*got, a) {
		t.Fatalf("account %+v, want %+v", *got, a)
	}
	// Replacing keeps Created; zero Updated becomes now.
	before := time.Now()
	must(t, s.PutAccount(bg, Account{Name: "root", PasswordHash: "new", Disabled: true}))
	got, err = s.Account(bg, "root")
	must(t, err)
	if got.PasswordHash != "new" || got.MustChange || !got.Disabled || !got.Created.Equal(created) ||
		got.Updated.Before(before.Add(-time.Millisecond)) || got.Updated.After(time.Now()) {
		t.Fatalf("replaced account %+v", got)
	}
	if err := s.PutAccount(bg, Account{}); err == nil {
		t.Fatal("account without a name accepted")
	}
	must(t, s.DeleteAccount(bg, "root"))
	if _, err := s.Account(bg, "root"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted account: %v", err)
	}
	if err := s.DeleteAccount(bg, "root"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a missing account: %v", err)
	}
}

func hashOf(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// TestTokens runs on the store's clock set two years behind the real one,
// on it, and two years ahead: a token's expiry is judged by that clock
// alone, so a store that read the real clock would fail the first or the
// last run.
func TestTokens(t *testing.T) {
	for _, skew := range clockSkews {
		t.Run(skew.name, func(t *testing.T) { testTokens(t, time.Now().Add(skew.d).UTC()) })
	}
}

func testTokens(t *testing.T, now time.Time) {
	s, _ := openTestAt(t, func() time.Time { return now })
	must(t, s.PutAccount(bg, Account{Name: "alice"}))
	must(t, s.PutAccount(bg, Account{Name: "bob"}))
	if a, err := s.Account(bg, "alice"); err != nil || !a.Created.Equal(now) || !a.Updated.Equal(now) {
		t.Fatalf("account stamped %+v (%v), want the store's clock %v", a, err, now)
	}
	live := Token{Hash: hashOf("t1"), Account: "alice", Created: now.Add(-time.Minute), Expires: now.Add(time.Hour)}
	must(t, s.PutToken(bg, live))
	must(t, s.PutToken(bg, Token{Hash: hashOf("t2"), Account: "alice", Expires: now.Add(-time.Second)}))
	must(t, s.PutToken(bg, Token{Hash: hashOf("t3"), Account: "bob", Expires: now.Add(time.Hour)}))
	if tok, err := s.Token(bg, hashOf("t3")); err != nil || !tok.Created.Equal(now) {
		t.Fatalf("token stamped %+v (%v), want the store's clock %v", tok, err, now)
	}
	must(t, s.PutToken(bg, Token{Hash: hashOf("t4"), Account: "bob", Expires: now.Add(time.Hour)}))

	if err := s.PutToken(bg, Token{Hash: hashOf("x"), Account: "nobody", Expires: now.Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token of an unknown account: %v, want ErrNotFound", err)
	}
	if err := s.PutToken(bg, Token{Hash: []byte("raw token"), Account: "alice", Expires: now.Add(time.Hour)}); err == nil {
		t.Fatal("token that is not a SHA-256 accepted")
	}
	if err := s.PutToken(bg, Token{Hash: hashOf("y"), Account: "alice"}); err == nil {
		t.Fatal("token without expiry accepted")
	}

	got, err := s.Token(bg, hashOf("t1"))
	must(t, err)
	if !reflect.DeepEqual(*got, live) {
		t.Fatalf("token %+v, want %+v", *got, live)
	}
	for _, tok := range []string{"t2", "nope"} {
		if _, err := s.Token(bg, hashOf(tok)); !errors.Is(err, ErrNotFound) {
			t.Errorf("token %s: %v, want ErrNotFound", tok, err)
		}
	}

	n, err := s.PruneTokens(bg, now)
	must(t, err)
	if n != 1 {
		t.Fatalf("pruned %d tokens, want 1", n)
	}
	must(t, s.DeleteToken(bg, hashOf("t1")))
	must(t, s.DeleteToken(bg, hashOf("t1"))) // logging out twice is fine
	if _, err := s.Token(bg, hashOf("t1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted token: %v", err)
	}
	must(t, s.DeleteTokensOf(bg, "bob"))
	for _, tok := range []string{"t3", "t4"} {
		if _, err := s.Token(bg, hashOf(tok)); !errors.Is(err, ErrNotFound) {
			t.Errorf("token %s of bob survived DeleteTokensOf: %v", tok, err)
		}
	}
	// Deleting an account deletes its tokens.
	must(t, s.PutToken(bg, Token{Hash: hashOf("t5"), Account: "alice", Expires: now.Add(time.Hour)}))
	must(t, s.DeleteAccount(bg, "alice"))
	must(t, s.PutAccount(bg, Account{Name: "alice"}))
	if _, err := s.Token(bg, hashOf("t5")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token of a deleted account: %v", err)
	}
}

func TestLicenses(t *testing.T) {
	s, _ := openTest(t)
	t0 := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	l2 := License{Number: "L-2", File: []byte("second"), Added: t0.Add(time.Hour)}
	l1 := License{Number: "L-1", File: []byte("first"), Added: t0}
	must(t, s.PutLicense(bg, l2))
	must(t, s.PutLicense(bg, l1))
	got, err := s.Licenses(bg)
	must(t, err)
	if want := []License{l1, l2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("licenses %+v, want %+v", got, want)
	}
	rel := t0.Add(48 * time.Hour)
	must(t, s.ReleaseLicense(bg, "L-1", rel))
	if err := s.ReleaseLicense(bg, "L-9", rel); !errors.Is(err, ErrNotFound) {
		t.Fatalf("releasing an unknown license: %v", err)
	}
	// Replacing the file keeps Added.
	must(t, s.PutLicense(bg, License{Number: "L-2", File: []byte("renewed"), Added: t0.Add(99 * time.Hour)}))
	got, err = s.Licenses(bg)
	must(t, err)
	l1.Released = rel
	l2.File = []byte("renewed")
	if want := []License{l1, l2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("licenses %+v, want %+v", got, want)
	}
	if err := s.PutLicense(bg, License{}); err == nil {
		t.Fatal("license without a number accepted")
	}
}

func TestOpenSettings(t *testing.T) {
	s, path := openTest(t)
	fi, err := os.Stat(path)
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode %v, want 0600", fi.Mode().Perm())
	}
	var mode string
	var syncMode, fk int
	must(t, s.db.QueryRowContext(bg, "PRAGMA journal_mode").Scan(&mode))
	must(t, s.db.QueryRowContext(bg, "PRAGMA synchronous").Scan(&syncMode))
	must(t, s.db.QueryRowContext(bg, "PRAGMA foreign_keys").Scan(&fk))
	if mode != "wal" || syncMode != 2 || fk != 1 {
		t.Fatalf("journal_mode %s, synchronous %d, foreign_keys %d; want wal, 2 (FULL), 1", mode, syncMode, fk)
	}
	if _, err := Open(path + "?mode=ro"); err == nil {
		t.Fatal("path with a query accepted")
	}
}

// TestCreateAccount: an account is created once; a second CreateAccount
// for the name changes nothing, whatever it carries.
func TestCreateAccount(t *testing.T) {
	st, _ := openTest(t)
	ctx := context.Background()
	if err := st.PutAccount(ctx, Account{Name: "pat", PasswordHash: "$argon2id$set-by-an-administrator"}); err != nil {
		t.Fatal(err)
	}
	created, err := st.CreateAccount(ctx, Account{Name: "pat"})
	if err != nil || created {
		t.Fatalf("CreateAccount over an existing account: %v, %v; want false, nil", created, err)
	}
	if a, err := st.Account(ctx, "pat"); err != nil || a.PasswordHash != "$argon2id$set-by-an-administrator" {
		t.Fatalf("the existing account after CreateAccount: %+v, %v", a, err)
	}
	created, err = st.CreateAccount(ctx, Account{Name: "olga"})
	if err != nil || !created {
		t.Fatalf("CreateAccount of a new account: %v, %v; want true, nil", created, err)
	}
	if a, err := st.Account(ctx, "olga"); err != nil || a.PasswordHash != "" || a.Created.IsZero() {
		t.Fatalf("the new account: %+v, %v", a, err)
	}
}
