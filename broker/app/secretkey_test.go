package app

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/pki"
)

// setUp does what the broker does at start before serving (Open): open
// the store, the licensing, the configuration and the keys.
func setUp(t *testing.T, dir string) (*store.Store, *keys) {
	t.Helper()
	b, err := Open(context.Background(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return b.st, b.keys
}

// dbBytes is the database file and its write-ahead log, as a copy of them
// would have it.
func dbBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, name := range []string{"broker.db", "broker.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// The keys the broker creates are sealed in broker.db with the key in
// broker.key (mode 0600): the database file does not hold the CA key, and
// without the key file the broker does not start.
func TestSecretsAreSealedWithTheKeyFile(t *testing.T) {
	t.Setenv(secretKeyEnv, "")
	ctx := context.Background()
	dir := t.TempDir()
	st, k := setUp(t, dir)
	caKey, err := st.Secret(ctx, secretCAKey)
	if err != nil || !bytes.Contains(caKey, []byte("PRIVATE KEY")) {
		t.Fatalf("CA key %q, %v", caKey, err)
	}
	check := func(when string) {
		t.Helper()
		raw := dbBytes(t, dir)
		if bytes.Contains(raw, caKey) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
			t.Fatalf("%s: broker.db holds a private key in clear", when)
		}
	}
	check("running")
	caCert := k.ca.Certificate()
	st.Close()
	check("stopped")
	keyFile := filepath.Join(dir, "broker.key")
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 2*store.SecretKeySize+1 {
		t.Fatalf("broker.key: %v, %v", fi, err)
	}

	// The next start uses it.
	st, k = setUp(t, dir)
	if !k.ca.Certificate().Equal(caCert) {
		t.Fatal("another CA after a restart")
	}
	st.Close()

	// A key file others may read is refused.
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openStore(dir, ""); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("key file with mode 0644: %v", err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}

	// The database without its key file: the broker says so, and leaves
	// no new key file behind.
	saved, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openStore(dir, ""); !errors.Is(err, store.ErrSecretKey) || !strings.Contains(err.Error(), "was missing") {
		t.Fatalf("start without the key file: %v, want ErrSecretKey", err)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a new key file was left behind: %v", err)
	}

	// REMOTEGATE_SECRET_KEY_FILE names the key file elsewhere.
	elsewhere := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(elsewhere, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(secretKeyEnv, elsewhere)
	st, k = setUp(t, dir)
	if !k.ca.Certificate().Equal(caCert) {
		t.Fatal("another CA with the key file elsewhere")
	}
	st.Close()
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("broker.key created although %s names the key file: %v", secretKeyEnv, err)
	}
	other := make([]byte, len(saved))
	copy(other, saved)
	// Another valid hex digit (flipping a bit of 'a' or 'f' would not
	// give one, and the start would fail for a malformed file instead).
	if other[0] == '0' {
		other[0] = '1'
	} else {
		other[0] = '0'
	}
	if err := os.WriteFile(elsewhere, other, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openStore(dir, ""); !errors.Is(err, store.ErrSecretKey) {
		t.Fatalf("start with another key: %v, want ErrSecretKey", err)
	}
}

// A data directory from before secrets were sealed (their rows in clear)
// is taken over: the first start creates broker.key and seals them, and
// the CA stays the same.
func TestDataDirectoryWithClearSecretsIsSealed(t *testing.T) {
	t.Setenv(secretKeyEnv, "")
	ctx := context.Background()
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "old broker CA"})
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := pki.MarshalPrivateKeyPEM(ca.Key(), nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := store.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string][]byte{secretCACert: pki.EncodeCertificatesPEM(ca.Certificate()), secretCAKey: caKey} {
		if _, err := db.Exec(`INSERT INTO secrets (name, value) VALUES (?, ?)`, name, v); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if !bytes.Contains(dbBytes(t, dir), caKey) {
		t.Fatal("the old data directory should have the CA key in clear")
	}

	st, k := setUp(t, dir)
	defer st.Close()
	if !k.ca.Certificate().Equal(ca.Certificate()) {
		t.Fatal("the broker made a new CA instead of taking the stored one")
	}
	if raw := dbBytes(t, dir); bytes.Contains(raw, caKey) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatal("broker.db still holds a private key in clear")
	}
	if got, err := st.Secret(ctx, secretCAKey); err != nil || !bytes.Equal(got, caKey) {
		t.Fatalf("sealed CA key: %v", err)
	}
}
