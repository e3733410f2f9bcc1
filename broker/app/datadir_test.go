package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// status opens the broker in dir, as the status command does, and
// closes it.
func status(dir string, log *slog.Logger) error {
	b, err := Open(context.Background(), Config{DataDir: dir, Logger: log})
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Status(context.Background(), io.Discard)
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The data directory holds the CA key: the broker creates it 0700, and an
// existing one left open to other users (0755, as mkdir makes it) is made
// private at start, with broker.db, and says so in its log.
func TestDataDirIsMadePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := status(dir, log); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "broker.db")
	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("new data directory: mode %04o; want 0700", m)
	}
	if m := mode(t, db); m != 0o600 {
		t.Fatalf("new broker.db: mode %04o; want 0600", m)
	}
	if logs.Len() != 0 {
		t.Fatalf("a private data directory was reported: %s", logs.String())
	}

	// An installation made open to others (or copied with a permissive
	// umask).
	for path, m := range map[string]fs.FileMode{dir: 0o755, db: 0o644} {
		if err := os.Chmod(path, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := status(dir, log); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("data directory after the start: mode %04o; want 0700", m)
	}
	if m := mode(t, db); m != 0o600 {
		t.Errorf("broker.db after the start: mode %04o; want 0600", m)
	}
	for _, want := range []string{"path=" + dir + " mode=0755 now=0700", "path=" + db + " mode=0644 now=0600"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
}

// A data directory that belongs to another user is refused, untouched:
// that user could read the CA key or replace the database.
func TestDataDirOfAnotherUserIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err := status(dir, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "data directory "+dir+" belongs to user 65534, not to the user the broker runs as (0)") {
		t.Fatalf("start with another user's data directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "broker.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the broker wrote into it: %v", err)
	}
}

// A data directory path that names a file is refused.
func TestDataDirThatIsAFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := secureDataDir(path, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("a file as the data directory: %v", err)
	}
}
