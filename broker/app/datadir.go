package app

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// secureDataDir creates the data directory with mode 0700 or makes an
// existing one private: it holds the CA key, every certificate key and the
// accounts, so no other user may read it. An existing directory must belong
// to the user the broker runs as (one made by someone else could be read,
// or its files replaced, by them); group and other permissions on it are
// removed (0700), and on the files in it (broker.db and SQLite's -wal,
// -shm and journal files, which copy its mode) as well, each change logged.
// What cannot be made private is refused, saying why.
func secureDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("data directory %s belongs to user %d, not to the user the broker runs as (%d): it would hold the CA key where that user can read and replace it; make it this user's with mode 0700 (chown, chmod) or choose another data directory (-data)",
			dir, uid, os.Geteuid())
	}
	if err := private(dir, fi.Mode().Perm(), 0o700, log); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		if err := private(filepath.Join(dir, e.Name()), info.Mode().Perm(), info.Mode().Perm()&^0o077, log); err != nil {
			return err
		}
	}
	return nil
}

// private changes path's permissions from mode to want if mode lets the
// group or others in.
func private(path string, mode, want fs.FileMode, log *slog.Logger) error {
	if mode&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, want); err != nil {
		return fmt.Errorf("%s has mode %04o, open to other users, and cannot be made private (%04o): %w", path, mode, want, err)
	}
	log.Warn("the data directory was open to other users: made private", "path", path, "mode", fmt.Sprintf("%04o", mode), "now", fmt.Sprintf("%04o", want))
	return nil
}
