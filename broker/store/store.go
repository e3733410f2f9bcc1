package store

import (
	"bytes"
	"context"
	"crypto/cipher"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Sentinel errors. Errors returned by the Store wrap one of them where it
// applies, so callers test with errors.Is.
var (
	// ErrNotFound reports a name, serial or token the store does not hold.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict reports a configuration written against a revision that
	// is no longer the current one (optimistic concurrency, see Replace).
	ErrConflict = errors.New("store: revision conflict")
	// ErrBadBackup reports a backup archive that is damaged, not a backup,
	// or encrypted with another passphrase.
	ErrBadBackup = errors.New("store: not a valid backup, or wrong passphrase")
	// ErrBackupTooLarge reports a backup larger than MaxBackupSize: Backup
	// does not write it, Restore does not read it.
	ErrBackupTooLarge = errors.New("store: backup larger than the size limit")
	// ErrSecretKey reports a secret that cannot be stored or read for want
	// of the right secret key (Options.SecretKey): the store was opened
	// without one, or with another than the secrets were sealed with.
	ErrSecretKey = errors.New("store: secret key missing or wrong")
	// ErrSchema reports a database written by a newer program.
	ErrSchema = errors.New("store: database schema is newer than this program")
)

// driverName is the database/sql driver the store uses.
const driverName = "sqlite"

// dsnParams are the connection settings of the live database: WAL journal,
// a full sync at every commit (an acknowledged commit survives power loss),
// foreign keys enforced, a 5 s wait for another process's lock, and write
// transactions that take the write lock when they begin (BEGIN IMMEDIATE), so
// that a read-modify-write transaction never fails on upgrading its lock.
// Deleted and replaced content is overwritten with zeros (secure_delete),
// so that no old copy of a secret or a token lingers in free space.
const dsnParams = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)" +
	"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=secure_delete(1)&_txlock=immediate"

// dsnParamsPlain opens a scratch database (a backup being restored) without
// changing its journal mode.
const dsnParamsPlain = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate"

// Store is the broker's persistent state in one SQLite database file. Its
// methods are safe for concurrent use, also by several processes sharing the
// file.
type Store struct {
	db   *sql.DB
	path string
	// wsem serializes this process's write transactions, so that they queue
	// here (and give up when their context ends) instead of polling for
	// SQLite's write lock; other processes are still waited for by
	// busy_timeout.
	wsem chan struct{}
	// docWrites counts configuration rows written (inserted, updated or
	// deleted), for the tests of Update's diffing.
	docWrites atomic.Int64
	// now is Options.Now, never nil.
	now func() time.Time
	// key is Options.SecretKey (nil without one) and aead its cipher.
	key  []byte
	aead cipher.AEAD
}

// Options tune a Store. The zero value gives the defaults.
type Options struct {
	// Now is the store's clock: it stamps what is stored without a time of
	// its own (accounts, tokens, events, licenses, revocations, applied
	// migrations) and decides whether a token has expired. It should be
	// the clock of the rest of the program (the API's Config.Now), so that
	// a token issued at one time is judged on the same clock. Nil means
	// time.Now.
	Now func() time.Time
	// SecretKey seals the secrets at rest (CA key, server keys, tls-crypt
	// key, ...: see PutSecret): AES-256-GCM under these 32 bytes. It must
	// not be kept in the database, so that a copy of the database alone
	// does not give the secrets away; where it comes from (a key file
	// beside the database with mode 0600, a passphrase, a PKCS#11 token)
	// is the program's choice. OpenWith seals the secrets stored in clear
	// by an older program, and refuses (ErrSecretKey) a key that does not
	// open the secrets already sealed.
	//
	// Nil means no key: secrets stored in clear before can be read, sealed
	// ones cannot (ErrSecretKey), and storing a secret fails with
	// ErrSecretKey rather than putting it in clear.
	SecretKey []byte
}

// SecretKeySize is the size of Options.SecretKey.
const SecretKeySize = 32

// Open opens the database at path with the default Options; see OpenWith.
func Open(path string) (*Store, error) {
	return OpenWith(path, Options{})
}

// OpenWith opens the database at path, creating it (mode 0600) if missing,
// and applies the schema migrations it lacks, in order. It fails with
// ErrSchema if the database was written by a newer program.
func OpenWith(path string, opts Options) (*Store, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Store{path: path, wsem: make(chan struct{}, 1), now: now}
	if opts.SecretKey != nil {
		if len(opts.SecretKey) != SecretKeySize {
			return nil, fmt.Errorf("store: open %s: %w: the secret key has %d bytes, want %d", path, ErrSecretKey, len(opts.SecretKey), SecretKeySize)
		}
		s.key = bytes.Clone(opts.SecretKey)
		var err error
		if s.aead, err = newAEAD(s.key); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
	}
	db, err := openDB(path, dsnParams, true)
	if err != nil {
		return nil, err
	}
	s.db = db
	ctx := context.Background()
	if err := migrate(ctx, db, len(migrations), now); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if s.aead != nil {
		if err := s.sealClearSecrets(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
	}
	return s, nil
}

// openDB opens the SQLite database at path with the given DSN parameters,
// creating the file with mode 0600 first if create is set, and checks that
// it can be read.
func openDB(path, params string, create bool) (*sql.DB, error) {
	if path == "" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("store: open %q: unsupported database path", path)
	}
	if create {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("store: open: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("store: open: %w", err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	db, err := sql.Open(driverName, path+"?"+params)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.PingContext(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return db, nil
}

// Close closes the database. Calls that are still running may fail.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// SchemaVersion returns the schema version of the database: the number of
// migrations applied to it.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	v, err := schemaVersion(ctx, s.db)
	if err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// queryer is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, sqlSchemaVersion).Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// migrate brings db to schema version target (at most len(migrations)),
// each migration in its own transaction. Several processes may migrate the
// same file at once: a migration already recorded is skipped.
func migrate(ctx context.Context, db *sql.DB, target int, now func() time.Time) error {
	if err := inTx(ctx, db, nil, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlCreateMigrations)
		return err
	}); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	current, err := schemaVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("%w: version %d, this program knows up to %d", ErrSchema, current, len(migrations))
	}
	for v := current + 1; v <= target; v++ {
		err := inTx(ctx, db, nil, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, sqlMigrationApplied, v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil // another process was quicker
			}
			for _, stmt := range migrations[v-1] {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, sqlRecordMigration, v, formatTime(now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to version %d: %w", v, err)
		}
	}
	return nil
}

// beginner is what *sql.DB and *sql.Conn have in common.
type beginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// inTx runs fn in a transaction on b and commits it if fn returns nil.
// With opts nil, the transaction is a write transaction (BEGIN IMMEDIATE).
func inTx(ctx context.Context, b beginner, opts *sql.TxOptions, fn func(*sql.Tx) error) error {
	tx, err := b.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	// Rolls back if fn fails or panics; a no-op after Commit.
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// lockWrites waits for this process's write turn; the returned function ends it.
func (s *Store) lockWrites(ctx context.Context) (func(), error) {
	select {
	case s.wsem <- struct{}{}:
		return func() { <-s.wsem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// write runs fn in a write transaction.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return inTx(ctx, s.db, nil, fn)
}

// read runs fn in a read transaction: a consistent snapshot of the database.
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	return inTx(ctx, s.db, &sql.TxOptions{ReadOnly: true}, fn)
}

// timeLayout is RFC 3339 with a fixed-width fraction: in UTC, its text sorts
// as the time does, so SQL compares times as strings.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// formatTime is the stored form of t: UTC, RFC 3339 with nanoseconds.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// formatOptionalTime is nil (SQL NULL) for the zero time.
func formatOptionalTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// parseOptionalTime reads a nullable time column (NULL: the zero time).
func parseOptionalTime(s sql.NullString) (time.Time, error) {
	if !s.Valid {
		return time.Time{}, nil
	}
	return parseTime(s.String)
}

// orNow returns t, or the store's current time if t is zero.
func (s *Store) orNow(t time.Time) time.Time {
	if t.IsZero() {
		return s.now()
	}
	return t
}

// nonNil turns a nil slice into an empty one: a NOT NULL BLOB column does not
// take a nil []byte, which binds as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
