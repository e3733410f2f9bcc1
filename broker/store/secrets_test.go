package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// caKeyPEM stands for a CA key: what must never be found in the file.
var caKeyPEM = []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg" + strings.Repeat("Zm9v", 16) + "\n-----END PRIVATE KEY-----\n")

// fileBytes is the content of the database file and its write-ahead log:
// what a copy of the data directory gives away.
func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func anotherKey() []byte { return bytes.Repeat([]byte{0xa7}, SecretKeySize) }

// Secrets are sealed at rest: the database file does not contain them, and
// a sealed value moved to another name does not open.
func TestSecretsAreSealedAtRest(t *testing.T) {
	s, path := openTest(t)
	must(t, s.PutSecret(bg, "ca/key", caKeyPEM))
	got, err := s.PutSecretIfAbsent(bg, "tls-crypt", caKeyPEM)
	must(t, err)
	if !bytes.Equal(got, caKeyPEM) {
		t.Fatalf("PutSecretIfAbsent returned %q", got)
	}
	must(t, s.PutSecret(bg, "other", []byte("x")))
	if raw := fileBytes(t, path); bytes.Contains(raw, caKeyPEM[:40]) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatal("the database file holds the secret in clear")
	}
	if v, err := s.Secret(bg, "ca/key"); err != nil || !bytes.Equal(v, caKeyPEM) {
		t.Fatalf("Secret: %q, %v", v, err)
	}
	// Moving the sealed value of ca/key to another name.
	_, err = s.db.ExecContext(bg, `UPDATE secrets SET value = (SELECT value FROM secrets WHERE name = 'ca/key') WHERE name = 'other'`)
	must(t, err)
	if v, err := s.Secret(bg, "other"); !errors.Is(err, ErrSecretKey) {
		t.Fatalf("a sealed value under another name: %q, %v; want ErrSecretKey", v, err)
	}
}

// Without its key, or with another, a store does not give the secrets
// away, and says why; it does not store secrets in clear either.
func TestSecretKeyMissingOrWrong(t *testing.T) {
	s, path := openTest(t)
	must(t, s.PutSecret(bg, "ca/key", caKeyPEM))
	must(t, s.Close())

	nokey, err := Open(path)
	must(t, err)
	defer nokey.Close()
	if v, err := nokey.Secret(bg, "ca/key"); !errors.Is(err, ErrSecretKey) || !strings.Contains(err.Error(), "without a secret key") {
		t.Fatalf("Secret without the key: %q, %v; want ErrSecretKey", v, err)
	}
	if err := nokey.PutSecret(bg, "new", []byte("v")); !errors.Is(err, ErrSecretKey) {
		t.Fatalf("PutSecret without a key: %v, want ErrSecretKey", err)
	}
	if _, err := nokey.PutSecretIfAbsent(bg, "new", []byte("v")); !errors.Is(err, ErrSecretKey) {
		t.Fatalf("PutSecretIfAbsent without a key: %v, want ErrSecretKey", err)
	}
	if _, err := nokey.Secret(bg, "new"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused secret was stored: %v", err)
	}

	if _, err := OpenWith(path, Options{SecretKey: anotherKey()}); !errors.Is(err, ErrSecretKey) || !strings.Contains(err.Error(), "another key sealed them") {
		t.Fatalf("Open with another key: %v, want ErrSecretKey", err)
	}
	if _, err := OpenWith(path, Options{SecretKey: testKey[:16]}); !errors.Is(err, ErrSecretKey) {
		t.Fatalf("Open with a 16-byte key: %v, want ErrSecretKey", err)
	}

	// Two processes that opened an empty store with different keys: the
	// one with the other key cannot read what the first sealed.
	dir := t.TempDir()
	a, err := OpenWith(filepath.Join(dir, "b.db"), Options{SecretKey: testKey})
	must(t, err)
	defer a.Close()
	b, err := OpenWith(filepath.Join(dir, "b.db"), Options{SecretKey: anotherKey()})
	must(t, err)
	defer b.Close()
	must(t, a.PutSecret(bg, "ca/key", caKeyPEM))
	if v, err := b.Secret(bg, "ca/key"); !errors.Is(err, ErrSecretKey) || !strings.Contains(err.Error(), "does not open with this key") {
		t.Fatalf("Secret with another key: %q, %v; want ErrSecretKey", v, err)
	}
}

// A database from before secrets were sealed has them in clear; the first
// open with a key seals them, and no clear copy remains in the file.
func TestClearSecretsAreSealedAtTheFirstOpenWithAKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	db, err := openDB(path, dsnParams, true)
	must(t, err)
	must(t, migrate(bg, db, 2, time.Now))
	for _, name := range []string{"ca/key", "openvpn/server-key"} {
		_, err = db.ExecContext(bg, `INSERT INTO secrets (name, value) VALUES (?, ?)`, name, caKeyPEM)
		must(t, err)
	}
	_, err = db.ExecContext(bg, `INSERT INTO secrets (name, value) VALUES ('empty', x'')`)
	must(t, err)
	must(t, db.Close())
	if !bytes.Contains(fileBytes(t, path), caKeyPEM) {
		t.Fatal("the old database should hold the secret in clear")
	}

	// An older database opened without a key: readable, untouched.
	old, err := Open(path)
	must(t, err)
	if v, err := old.Secret(bg, "ca/key"); err != nil || !bytes.Equal(v, caKeyPEM) {
		t.Fatalf("clear secret without a key: %q, %v", v, err)
	}
	must(t, old.Close())

	s, err := OpenWith(path, Options{SecretKey: testKey})
	must(t, err)
	defer s.Close()
	for _, name := range []string{"ca/key", "openvpn/server-key"} {
		if v, err := s.Secret(bg, name); err != nil || !bytes.Equal(v, caKeyPEM) {
			t.Fatalf("%s after sealing: %q, %v", name, v, err)
		}
	}
	if v, err := s.Secret(bg, "empty"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("empty secret after sealing: %#v, %v", v, err)
	}
	var clearRows int
	must(t, s.db.QueryRowContext(bg, `SELECT COUNT(*) FROM secrets WHERE sealed = 0`).Scan(&clearRows))
	if clearRows != 0 {
		t.Fatalf("%d secrets left in clear", clearRows)
	}
	if raw := fileBytes(t, path); bytes.Contains(raw, caKeyPEM[:40]) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatal("a clear copy of the secret remains in the database file")
	}
	// Without the key now, the sealed secrets do not open.
	nokey, err := Open(path)
	must(t, err)
	defer nokey.Close()
	if _, err := nokey.Secret(bg, "ca/key"); !errors.Is(err, ErrSecretKey) {
		t.Fatalf("sealed secret without the key: %v", err)
	}
}

// A backup restores on new hardware, under another secret key: the
// archive carries the key its secrets were sealed with, and the restore
// seals them anew under the store's key.
func TestBackupRestoresUnderAnotherKey(t *testing.T) {
	src, _ := openTest(t)
	populate(t, src)
	must(t, src.PutSecret(bg, "ca/key", caKeyPEM))
	var archive bytes.Buffer
	must(t, src.Backup(bg, &archive, passphrase))

	path := filepath.Join(t.TempDir(), "broker.db")
	dst, err := OpenWith(path, Options{SecretKey: anotherKey()})
	must(t, err)
	must(t, dst.Restore(bg, bytes.NewReader(archive.Bytes()), passphrase))
	if v, err := dst.Secret(bg, "ca/key"); err != nil || !bytes.Equal(v, caKeyPEM) {
		t.Fatalf("restored secret: %q, %v", v, err)
	}
	if raw := fileBytes(t, path); bytes.Contains(raw, caKeyPEM[:40]) {
		t.Fatal("the restored database holds the secret in clear")
	}
	must(t, dst.Close())
	if _, err := OpenWith(path, Options{SecretKey: testKey}); !errors.Is(err, ErrSecretKey) {
		t.Fatalf("the restored secrets open with the backup's key: %v", err)
	}
	again, err := OpenWith(path, Options{SecretKey: anotherKey()})
	must(t, err)
	defer again.Close()
	if v, err := again.Secret(bg, "tls-crypt"); err != nil || !bytes.Equal(v, bytes.Repeat([]byte{0xa5}, 256)) {
		t.Fatalf("restored secret after reopening: %x, %v", v, err)
	}

	// An archive whose key is missing, damaged or of a wrong size.
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	_, err = src.db.ExecContext(bg, sqlVacuumInto, copyPath)
	must(t, err)
	dbFile, err := os.ReadFile(copyPath)
	must(t, err)
	for what, a := range map[string][]byte{
		"no key":         sealDB(t, dbFile, nil),
		"another key":    sealDB(t, dbFile, anotherKey()),
		"a 5-byte key":   sealV2(t, append([]byte{5, 1, 2, 3, 4, 5}, dbFile...)),
		"no key section": sealV2(t, nil),
	} {
		if err := again.Restore(bg, bytes.NewReader(a), passphrase); !errors.Is(err, ErrBadBackup) {
			t.Errorf("archive with %s: %v, want ErrBadBackup", what, err)
		}
	}
	if v, err := again.Secret(bg, "ca/key"); err != nil || !bytes.Equal(v, caKeyPEM) {
		t.Fatalf("after the refused restores: %q, %v", v, err)
	}

	// A store without a key cannot take the backup's secrets: it refuses
	// and stays as it was.
	nokey, err := Open(filepath.Join(t.TempDir(), "nokey.db"))
	must(t, err)
	defer nokey.Close()
	if err := nokey.Restore(bg, bytes.NewReader(archive.Bytes()), passphrase); !errors.Is(err, ErrSecretKey) {
		t.Fatalf("restore into a store without a key: %v, want ErrSecretKey", err)
	}
	if c, err := nokey.Config(bg); err != nil || c.Revision != 0 {
		t.Fatalf("the refused restore changed the store: %+v, %v", c, err)
	}
}

// A backup of a database whose secrets are in clear (a version 1 archive,
// from before secrets were sealed) restores with its secrets sealed.
func TestOldBackupWithClearSecretsRestoresSealed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := openDB(path, dsnParams, true)
	must(t, err)
	must(t, migrate(bg, db, 2, time.Now))
	_, err = db.ExecContext(bg, `INSERT INTO secrets (name, value) VALUES ('ca/key', ?)`, caKeyPEM)
	must(t, err)
	must(t, db.Close())
	plain, err := os.ReadFile(path)
	must(t, err)

	s, dst := openTest(t)
	must(t, s.Restore(bg, bytes.NewReader(sealV1(t, plain)), passphrase))
	if v, err := s.Secret(bg, "ca/key"); err != nil || !bytes.Equal(v, caKeyPEM) {
		t.Fatalf("restored secret: %q, %v", v, err)
	}
	if raw := fileBytes(t, dst); bytes.Contains(raw, caKeyPEM[:40]) {
		t.Fatal("the restored database holds the secret in clear")
	}
}
