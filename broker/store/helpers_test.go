package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// Backups in the tests use cheap key derivation; TestBackupFormat checks
	// the production parameters.
	backupKDF = kdfParams{time: 1, memory: 64, threads: 1}
	os.Exit(m.Run())
}

// productionKDF are the parameters Backup writes outside the tests.
var productionKDF = kdfParams{time: 3, memory: 64 * 1024, threads: 4}

// openTest opens a new store in a temporary directory, closed at the end of
// the test.
func openTest(t testing.TB) (*Store, string) {
	t.Helper()
	return openTestAt(t, nil)
}

// openTestAt is openTest with the store's clock set to now (nil: the real
// clock).
func openTestAt(t testing.TB, now func() time.Time) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "broker.db")
	s, err := OpenWith(path, Options{Now: now, SecretKey: testKey})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// testKey is the secret key of the test stores.
var testKey = bytes.Repeat([]byte{0x5e}, SecretKeySize)

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var bg = context.Background()

// clockSkews are the offsets from the real clock that the clock tests run
// at: a decision that reads the real clock instead of the store's fails at
// one of them.
var clockSkews = []struct {
	name string
	d    time.Duration
}{
	{"two-years-behind", -2 * 365 * 24 * time.Hour},
	{"real-time", 0},
	{"two-years-ahead", 2 * 365 * 24 * time.Hour},
}
