package app

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/remotegate/remotegate/broker/store"
)

// The store seals its secrets (CA key, server keys, tls-crypt key,
// installation key) with a key that is not in the database, so that a copy
// of broker.db alone does not give the CA away. The key is in a file:
// broker.key in the data directory, created at the first start, unless
// REMOTEGATE_SECRET_KEY_FILE names another (on another volume, a removable
// medium, or a systemd credential: $CREDENTIALS_DIRECTORY/broker.key).
const (
	secretKeyEnv  = "REMOTEGATE_SECRET_KEY_FILE"
	secretKeyName = "broker.key"
)

// secretKeyPath is where the key file is: file if set, else as
// Config.SecretKeyFile says.
func secretKeyPath(dataDir, file string) string {
	if file != "" {
		return file
	}
	if p := os.Getenv(secretKeyEnv); p != "" {
		return p
	}
	return filepath.Join(dataDir, secretKeyName)
}

// openStore opens broker.db in dataDir with the secret key in keyFile (see
// secretKeyPath), creating the key file with a new random key if there is
// none. A key file created here for a database whose secrets another key
// sealed is removed again, and the error says what is missing.
func openStore(dataDir, keyFile string) (*store.Store, string, error) {
	keyPath := secretKeyPath(dataDir, keyFile)
	key, created, err := loadSecretKey(keyPath)
	if err != nil {
		return nil, keyPath, err
	}
	st, err := store.OpenWith(filepath.Join(dataDir, "broker.db"), store.Options{SecretKey: key})
	clear(key)
	if errors.Is(err, store.ErrSecretKey) && created {
		os.Remove(keyPath)
		return nil, keyPath, fmt.Errorf("%w; the key file %s was missing: put back the one the database was used with, or name it in %s (Config.SecretKeyFile)", err, keyPath, secretKeyEnv)
	}
	if err != nil {
		return nil, keyPath, fmt.Errorf("%w (key file %s)", err, keyPath)
	}
	return st, keyPath, nil
}

// loadSecretKey reads the key file at path (the key in hex), or creates it
// with a new random key if it does not exist; created says which. A key
// file that others may read is refused.
func loadSecretKey(path string) (key []byte, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if data, err = createSecretKey(path); err != nil {
			return nil, false, fmt.Errorf("secret key: %w", err)
		}
		created = true
	} else if err != nil {
		return nil, false, fmt.Errorf("secret key: %w", err)
	}
	defer clear(data)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, fmt.Errorf("secret key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, false, fmt.Errorf("secret key %s: others may access it (mode %04o): chmod 600 %s", path, perm, path)
	}
	key, err = hex.DecodeString(string(bytes.TrimSpace(data)))
	if err != nil || len(key) != store.SecretKeySize {
		return nil, false, fmt.Errorf("secret key %s: want %d bytes in hex (%d characters)", path, store.SecretKeySize, 2*store.SecretKeySize)
	}
	return key, created, nil
}

// createSecretKey writes a new random key to path (mode 0600) and returns
// the file's content. The file appears whole or not at all: it is written
// aside and linked into place, and if another process was quicker, its
// key is the one returned.
func createSecretKey(path string) ([]byte, error) {
	key := make([]byte, store.SecretKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	data := []byte(hex.EncodeToString(key) + "\n")
	clear(key)
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".broker-key-*") // mode 0600
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(f.Name(), path); errors.Is(err, os.ErrExist) {
		return os.ReadFile(path)
	} else if err != nil {
		return nil, err
	}
	// The key must outlive a crash before the store seals anything with it.
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}
