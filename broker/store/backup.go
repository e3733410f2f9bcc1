package store

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/crypto/argon2"
)

// The backup archive format:
//
//	magic "RGBACKUP" | version 1 | argon2id time, memory (KiB), threads
//	(uint32 big-endian each) | salt (16 bytes) | nonce (12 bytes) |
//	AES-256-GCM ciphertext of the SQLite database file, with its tag
//
// The key is argon2id(passphrase, salt, time, memory, threads, 32 bytes);
// the header (everything before the ciphertext) is the GCM additional data,
// so no byte of the archive can change without Restore noticing.
const (
	backupMagic   = "RGBACKUP"
	backupVersion = 1
	saltSize      = 16
	nonceSize     = 12
	headerSize    = len(backupMagic) + 1 + 3*4 + saltSize + nonceSize
	tagSize       = 16
)

// kdfParams are argon2id parameters.
type kdfParams struct {
	time, memory, threads uint32
}

// backupKDF are the parameters Backup writes (a test may lower them to run
// faster; Restore reads them from the archive).
var backupKDF = kdfParams{time: 3, memory: 64 * 1024, threads: 4}

// valid bounds the parameters Restore accepts, so that a damaged or hostile
// archive cannot make it spend minutes or gigabytes deriving a key.
func (p kdfParams) valid() bool {
	return p.time >= 1 && p.time <= 16 &&
		p.threads >= 1 && p.threads <= 255 &&
		p.memory >= 8*p.threads && p.memory <= 1<<20
}

func (p kdfParams) key(passphrase, salt []byte) []byte {
	return argon2.IDKey(passphrase, salt, p.time, p.memory, uint8(p.threads), 32)
}

// Backup writes an encrypted archive of the whole database (configuration,
// secrets, certificates, addresses, accounts and tokens, events, licenses)
// to w. The passphrase must not be empty; Restore needs it.
func (s *Store) Backup(ctx context.Context, w io.Writer, passphrase []byte) error {
	if len(passphrase) == 0 {
		return errors.New("store: backup: empty passphrase")
	}
	tmp, err := s.tempFile()
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer removeDB(tmp)
	if _, err := s.db.ExecContext(ctx, sqlVacuumInto, tmp); err != nil {
		return fmt.Errorf("store: backup: copy database: %w", err)
	}
	plain, err := os.ReadFile(tmp)
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer clear(plain)
	archive, err := seal(plain, passphrase, backupKDF)
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := w.Write(archive); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// seal encrypts plain into an archive.
func seal(plain, passphrase []byte, p kdfParams) ([]byte, error) {
	header := make([]byte, 0, headerSize)
	header = append(header, backupMagic...)
	header = append(header, backupVersion)
	header = binary.BigEndian.AppendUint32(header, p.time)
	header = binary.BigEndian.AppendUint32(header, p.memory)
	header = binary.BigEndian.AppendUint32(header, p.threads)
	salt := make([]byte, saltSize+nonceSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	header = append(header, salt...)
	aead, err := newAEAD(p.key(passphrase, salt[:saltSize]))
	if err != nil {
		return nil, err
	}
	out := make([]byte, headerSize, headerSize+len(plain)+tagSize)
	copy(out, header)
	return aead.Seal(out, salt[saltSize:], plain, header), nil
}

// unseal decrypts an archive; every failure is ErrBadBackup.
func unseal(archive, passphrase []byte) ([]byte, error) {
	if len(archive) < headerSize+tagSize || !bytes.HasPrefix(archive, []byte(backupMagic)) {
		return nil, fmt.Errorf("%w: no backup header", ErrBadBackup)
	}
	header := archive[:headerSize]
	rest := header[len(backupMagic):]
	if rest[0] != backupVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrBadBackup, rest[0])
	}
	p := kdfParams{
		time:    binary.BigEndian.Uint32(rest[1:]),
		memory:  binary.BigEndian.Uint32(rest[5:]),
		threads: binary.BigEndian.Uint32(rest[9:]),
	}
	if !p.valid() {
		return nil, fmt.Errorf("%w: key derivation parameters out of range", ErrBadBackup)
	}
	salt := rest[13 : 13+saltSize]
	nonce := rest[13+saltSize : 13+saltSize+nonceSize]
	aead, err := newAEAD(p.key(passphrase, salt))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	plain, err := aead.Open(nil, nonce, archive[headerSize:], header)
	if err != nil {
		return nil, ErrBadBackup
	}
	return plain, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Restore replaces the whole content of the database with the backup read
// from r, atomically: on any error the database is unchanged. It fails with
// ErrBadBackup if the archive is damaged or the passphrase is wrong, and with
// ErrSchema if the backup was written by a newer program; a backup of an
// older schema is migrated first. The Store stays usable while and after it
// restores.
//
// The configuration revision after Restore is one more than the larger of
// the revisions before and in the backup, so that a revision is never
// reused for a different configuration (see Replace).
func (s *Store) Restore(ctx context.Context, r io.Reader, passphrase []byte) error {
	archive, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("store: restore: read backup: %w", err)
	}
	plain, err := unseal(archive, passphrase)
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	defer clear(plain)
	tmp, err := s.tempFile()
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	defer removeDB(tmp)
	if err := os.WriteFile(tmp, plain, 0o600); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	if err := s.prepareBackup(ctx, tmp); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	if err := s.restoreFrom(ctx, tmp); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	return nil
}

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// prepareBackup checks the decrypted database at path and migrates it to
// the current schema version.
func (s *Store) prepareBackup(ctx context.Context, path string) error {
	head := make([]byte, len(sqliteMagic))
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || string(head) != sqliteMagic {
		return fmt.Errorf("%w: not a database", ErrBadBackup)
	}
	db, err := openDB(path, dsnParamsPlain, false)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	defer db.Close()
	if err := checkDB(ctx, db); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	v, err := schemaVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("%w: no schema version: %v", ErrBadBackup, err)
	}
	switch {
	case v > len(migrations):
		return fmt.Errorf("%w: backup has version %d, this program knows up to %d", ErrSchema, v, len(migrations))
	case v < 1:
		return fmt.Errorf("%w: empty schema", ErrBadBackup)
	}
	if err := migrate(ctx, db, len(migrations), s.now); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	return db.Close()
}

// checkDB runs SQLite's integrity and foreign key checks on db.
func checkDB(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, sqlIntegrityCheck)
	if err != nil {
		return err
	}
	var results []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return err
		}
		results = append(results, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(results) != 1 || results[0] != "ok" {
		return fmt.Errorf("integrity check: %q", results)
	}
	rows, err = db.QueryContext(ctx, sqlForeignKeyChk)
	if err != nil {
		return err
	}
	bad := rows.Next()
	rows.Close()
	if bad {
		return errors.New("foreign key check failed")
	}
	return rows.Err()
}

// restoreFrom replaces the content of every table with that of the
// database at path, in one write transaction.
func (s *Store) restoreFrom(ctx context.Context, path string) (err error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, sqlAttachBackup, path); err != nil {
		return fmt.Errorf("attach backup: %w", err)
	}
	defer func() {
		if _, derr := conn.ExecContext(context.Background(), sqlDetachBackup); derr != nil {
			// Do not return a connection with the backup attached to the
			// pool: database/sql discards one that reports ErrBadConn.
			conn.Raw(func(any) error { return driver.ErrBadConn })
			if err == nil {
				err = fmt.Errorf("detach backup: %w", derr)
			}
		}
	}()
	return inTx(ctx, conn, nil, func(tx *sql.Tx) error {
		before, err := readRevision(ctx, tx)
		if err != nil {
			return err
		}
		for i := len(restoreTables) - 1; i >= 0; i-- {
			if _, err := tx.ExecContext(ctx, sqlDeleteAll(restoreTables[i])); err != nil {
				return fmt.Errorf("clear %s: %w", restoreTables[i], err)
			}
		}
		for _, t := range restoreTables {
			if _, err := tx.ExecContext(ctx, sqlCopyFromBackup(t)); err != nil {
				return fmt.Errorf("copy %s: %w", t, err)
			}
		}
		restored, err := readRevision(ctx, tx)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadBackup, err)
		}
		_, err = tx.ExecContext(ctx, sqlSetMeta, strconv.FormatInt(max(before, restored)+1, 10), metaRevision)
		return err
	})
}

func readRevision(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v string
	if err := tx.QueryRowContext(ctx, sqlGetMeta, metaRevision).Scan(&v); err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad stored revision %q", v)
	}
	return n, nil
}

// tempFile creates an empty file (mode 0600) for a copy of the database, in
// the database's directory if possible, else in os.TempDir, and returns its
// path.
func (s *Store) tempFile() (string, error) {
	f, err := os.CreateTemp(filepath.Dir(s.path), ".rgstore-*.tmp")
	if err != nil {
		f, err = os.CreateTemp("", "rgstore-*.tmp")
		if err != nil {
			return "", err
		}
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// removeDB removes a scratch database and the files SQLite may have put
// beside it.
func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
}
