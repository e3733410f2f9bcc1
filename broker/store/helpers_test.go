package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
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
	path := filepath.Join(t.TempDir(), "broker.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var bg = context.Background()
