// Package store keeps the broker's persistent state in an embedded,
// crash-safe SQLite database (modernc.org/sqlite: pure Go, no cgo).
//
// A Store holds:
//
//   - the configuration administrators edit (Config: the policy.Model,
//     the devices' networks and the broker's Settings: where it listens and
//     what its profiles connect to), changed atomically by Update, with a
//     revision for optimistic concurrency (Replace, ErrConflict);
//   - secrets (CA key, server key, tls-crypt key: opaque blobs by name),
//     sealed at rest with AES-256-GCM under a key kept outside the
//     database (Options.SecretKey), so that a copy of the database file
//     alone does not give them away;
//   - the records of the certificates the CA issued, and their revocation;
//   - the stable tunnel address of each participant;
//   - management accounts and the hashes of their API session tokens;
//   - the event log (Append, Events, PruneEvents, WriteEventsCSV);
//   - license files by license number.
//
// Backup writes an encrypted archive of all of it (argon2id and AES-256-GCM,
// in authenticated chunks, streamed) and Restore puts one back, atomically,
// into a live Store; StageRestore and Apply do it in two steps, so that
// reading a slow upload holds no lock. An archive holds at most
// MaxBackupSize bytes.
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL: once a write method
// has returned nil, its change survives the process being killed and the
// machine losing power. Every write method is one transaction; several
// processes may share the database file (a write waits up to 5 s for
// another's lock).
//
// # Schema
//
// The schema is an ordered list of migrations; the versions applied are
// recorded in the table schema_migrations. Open applies the missing ones,
// each in its own transaction, and refuses (ErrSchema) a database written by
// a newer program. Times are stored as UTC RFC 3339 text with a fixed-width
// nanosecond fraction, so that they sort as text.
//
// # Portability
//
// The package talks to the database only through database/sql, and every
// SQL statement is in one file, sql.go, in portable SQL ("?" placeholders,
// TEXT, INTEGER and BLOB columns, INSERT ... ON CONFLICT, RETURNING). The
// few SQLite-specific statements are marked there (the events ID column,
// VACUUM INTO, ATTACH and the PRAGMA checks used by backup and restore). A
// PostgreSQL backend can be added by rewriting that file and the connection
// settings in store.go.
package store
