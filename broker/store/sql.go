package store

// Every SQL statement of the package is in this file. The statements use
// standard types (TEXT, INTEGER, BLOB), "?" placeholders, INSERT ... ON
// CONFLICT and INSERT ... RETURNING, which SQLite and PostgreSQL both
// understand. The SQLite-specific parts are few and marked "SQLite:" below;
// a PostgreSQL backend rewrites this file (and the DSN in store.go).

import (
	"strconv"
	"strings"
)

// Meta keys: the configuration revision, and the broker's settings (JSON
// of Settings; no row: none stored).
const (
	metaRevision = "config_revision"
	metaSettings = "settings"
)

// migrations is the schema history: migrations[i] brings a database from
// version i to version i+1. Append only; never edit a released migration.
var migrations = [][]string{
	// 1: the initial schema.
	{
		`CREATE TABLE meta (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		)`,
		`INSERT INTO meta (key, value) VALUES ('` + metaRevision + `', '0')`,
		`CREATE TABLE roles (
			name TEXT PRIMARY KEY,
			seq  INTEGER NOT NULL,
			doc  TEXT NOT NULL
		)`,
		`CREATE TABLE users (
			name TEXT PRIMARY KEY,
			seq  INTEGER NOT NULL,
			doc  TEXT NOT NULL
		)`,
		`CREATE TABLE devices (
			name TEXT PRIMARY KEY,
			seq  INTEGER NOT NULL,
			doc  TEXT NOT NULL
		)`,
		// "groups" is a keyword in SQLite and PostgreSQL.
		`CREATE TABLE participant_groups (
			name TEXT PRIMARY KEY,
			seq  INTEGER NOT NULL,
			doc  TEXT NOT NULL
		)`,
		`CREATE TABLE relations (
			name TEXT PRIMARY KEY,
			seq  INTEGER NOT NULL,
			doc  TEXT NOT NULL
		)`,
		`CREATE TABLE secrets (
			name  TEXT PRIMARY KEY,
			value BLOB NOT NULL
		)`,
		`CREATE TABLE certificates (
			serial      TEXT PRIMARY KEY,
			common_name TEXT NOT NULL,
			profile     INTEGER NOT NULL,
			not_before  TEXT NOT NULL,
			not_after   TEXT NOT NULL,
			der         BLOB NOT NULL,
			revoked_at  TEXT,
			reason      INTEGER NOT NULL
		)`,
		`CREATE TABLE addresses (
			participant TEXT PRIMARY KEY,
			addr        TEXT NOT NULL UNIQUE
		)`,
		`CREATE TABLE accounts (
			name          TEXT PRIMARY KEY,
			password_hash TEXT NOT NULL,
			must_change   INTEGER NOT NULL,
			disabled      INTEGER NOT NULL,
			created       TEXT NOT NULL,
			updated       TEXT NOT NULL
		)`,
		`CREATE TABLE tokens (
			hash    BLOB PRIMARY KEY,
			account TEXT NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
			created TEXT NOT NULL,
			expires TEXT NOT NULL
		)`,
		`CREATE INDEX tokens_account ON tokens (account)`,
		// SQLite: INTEGER PRIMARY KEY AUTOINCREMENT never reuses an ID, even
		// after the newest events were pruned (PostgreSQL: BIGSERIAL).
		`CREATE TABLE events (
			id          INTEGER PRIMARY KEY AUTOINCREMENT,
			time        TEXT NOT NULL,
			kind        TEXT NOT NULL,
			participant TEXT NOT NULL,
			actor       TEXT NOT NULL,
			message     TEXT NOT NULL,
			attrs       TEXT
		)`,
		`CREATE TABLE licenses (
			number   TEXT PRIMARY KEY,
			file     BLOB NOT NULL,
			added    TEXT NOT NULL,
			released TEXT
		)`,
	},
	// 2: indexes for the event filters.
	{
		`CREATE INDEX events_time ON events (time)`,
		`CREATE INDEX events_participant ON events (participant)`,
	},
	// 3: secrets sealed at rest (value is then nonce | AES-256-GCM
	// ciphertext); the rows of older programs are in clear until a store
	// with a key seals them.
	{
		`ALTER TABLE secrets ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0`,
	},
}

// Schema versions.
const (
	sqlCreateMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT
	)`
	sqlSchemaVersion    = `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`
	sqlMigrationApplied = `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`
	sqlRecordMigration  = `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`
)

// docTable holds the statements for one kind of model entry: a table of
// (name, seq, doc) rows.
type docTable struct {
	kind                              string // for error messages
	selectAll, insert, update, delete string
}

func newDocTable(kind, table string) docTable {
	return docTable{
		kind:      kind,
		selectAll: `SELECT name, seq, doc FROM ` + table + ` ORDER BY seq, name`,
		insert:    `INSERT INTO ` + table + ` (name, seq, doc) VALUES (?, ?, ?)`,
		update:    `UPDATE ` + table + ` SET doc = ? WHERE name = ?`,
		delete:    `DELETE FROM ` + table + ` WHERE name = ?`,
	}
}

// The configuration tables.
var (
	rolesTable     = newDocTable("role", "roles")
	usersTable     = newDocTable("user", "users")
	devicesTable   = newDocTable("device", "devices")
	groupsTable    = newDocTable("group", "participant_groups")
	relationsTable = newDocTable("relation", "relations")
)

// Configuration revision and settings.
const (
	sqlGetMeta    = `SELECT value FROM meta WHERE key = ?`
	sqlSetMeta    = `UPDATE meta SET value = ? WHERE key = ?`
	sqlUpsertMeta = `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`
	sqlDeleteMeta = `DELETE FROM meta WHERE key = ?`
)

// Secrets.
const (
	sqlGetSecret = `SELECT value, sealed FROM secrets WHERE name = ?`
	sqlPutSecret = `INSERT INTO secrets (name, value, sealed) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, sealed = excluded.sealed`
	sqlPutSecretIfAbsent = `INSERT INTO secrets (name, value, sealed) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`
	sqlSecretRows   = `SELECT name, value, sealed FROM secrets`
	sqlClearSecrets = `SELECT name, value, sealed FROM secrets WHERE sealed = 0`
	sqlOneSealed    = `SELECT name, value FROM secrets WHERE sealed = 1 LIMIT 1`
	sqlSealSecret   = `UPDATE secrets SET value = ?, sealed = 1 WHERE name = ? AND sealed = 0`
	sqlTruncateWAL  = `PRAGMA wal_checkpoint(TRUNCATE)` // SQLite
)

// Certificates.
const (
	sqlPutCertificate = `INSERT INTO certificates
		(serial, common_name, profile, not_before, not_after, der, revoked_at, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (serial) DO UPDATE SET
			common_name = excluded.common_name,
			profile = excluded.profile,
			not_before = excluded.not_before,
			not_after = excluded.not_after,
			der = excluded.der,
			revoked_at = excluded.revoked_at,
			reason = excluded.reason`
	sqlRevokeCertificate = `UPDATE certificates SET revoked_at = ?, reason = ? WHERE serial = ?`
	sqlCertificates      = `SELECT der, profile, revoked_at, reason FROM certificates
		ORDER BY not_before, serial`
)

// Addresses.
const (
	sqlAddresses     = `SELECT participant, addr FROM addresses`
	sqlAddressHolder = `SELECT participant FROM addresses WHERE addr = ? AND participant <> ?`
	sqlSetAddress    = `INSERT INTO addresses (participant, addr) VALUES (?, ?)
		ON CONFLICT (participant) DO UPDATE SET addr = excluded.addr`
	sqlDeleteAddress = `DELETE FROM addresses WHERE participant = ?`
)

// Accounts and tokens.
const (
	sqlAccount = `SELECT name, password_hash, must_change, disabled, created, updated
		FROM accounts WHERE name = ?`
	sqlPutAccount = `INSERT INTO accounts
		(name, password_hash, must_change, disabled, created, updated)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			password_hash = excluded.password_hash,
			must_change = excluded.must_change,
			disabled = excluded.disabled,
			updated = excluded.updated`
	sqlDeleteAccount = `DELETE FROM accounts WHERE name = ?`
	sqlAccountExists = `SELECT COUNT(*) FROM accounts WHERE name = ?`
	sqlPutToken      = `INSERT INTO tokens (hash, account, created, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (hash) DO UPDATE SET
			account = excluded.account,
			created = excluded.created,
			expires = excluded.expires`
	sqlToken                = `SELECT account, created, expires FROM tokens WHERE hash = ? AND expires > ?`
	sqlDeleteToken          = `DELETE FROM tokens WHERE hash = ?`
	sqlDeleteTokensOf       = `DELETE FROM tokens WHERE account = ?`
	sqlDeleteTokensOfExcept = `DELETE FROM tokens WHERE account = ? AND hash <> ?`
	sqlPruneTokens          = `DELETE FROM tokens WHERE expires <= ?`
)

// Events.
const (
	sqlAppendEvent = `INSERT INTO events (time, kind, participant, actor, message, attrs)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`
	sqlPruneEvents = `DELETE FROM events WHERE time < ?`
)

// eventsQuery returns the statement and arguments selecting the events f
// matches, at most limit of them, by ascending ID. Times are already
// formatted (empty: no bound).
func eventsQuery(after, before int64, since, until, participant, kind string, limit int, newest bool) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT id, time, kind, participant, actor, message, attrs FROM events WHERE id > ?`)
	args := []any{after}
	if before > 0 {
		b.WriteString(` AND id < ?`)
		args = append(args, before)
	}
	if since != "" {
		b.WriteString(` AND time >= ?`)
		args = append(args, since)
	}
	if until != "" {
		b.WriteString(` AND time < ?`)
		args = append(args, until)
	}
	if participant != "" {
		b.WriteString(` AND participant = ?`)
		args = append(args, participant)
	}
	if kind != "" {
		b.WriteString(` AND kind = ?`)
		args = append(args, kind)
	}
	order := ` ORDER BY id`
	if newest {
		order = ` ORDER BY id DESC`
	}
	b.WriteString(order + ` LIMIT ` + strconv.Itoa(limit))
	return b.String(), args
}

// Licenses.
const (
	sqlPutLicense = `INSERT INTO licenses (number, file, added, released) VALUES (?, ?, ?, ?)
		ON CONFLICT (number) DO UPDATE SET
			file = excluded.file,
			released = excluded.released`
	sqlLicenses       = `SELECT number, file, added, released FROM licenses ORDER BY added, number`
	sqlReleaseLicense = `UPDATE licenses SET released = ? WHERE number = ?`
)

// Backup and restore.
const (
	// SQLite: a consistent copy of the database into a new (or empty) file.
	sqlVacuumInto = `VACUUM INTO ?`
	// SQLite: checks of a database file about to be restored.
	sqlIntegrityCheck = `PRAGMA integrity_check`
	sqlForeignKeyChk  = `PRAGMA foreign_key_check`
	// SQLite: the backup is attached to the live connection as "bk".
	sqlAttachBackup = `ATTACH DATABASE ? AS bk`
	sqlDetachBackup = `DETACH DATABASE bk`
	// The secrets of the attached backup.
	sqlBackupSecretRows = `SELECT name, value, sealed FROM bk.secrets`
)

// restoreTables lists every table Restore replaces, parents before
// children (rows are deleted in the reverse order and inserted in this
// one). schema_migrations is not copied: the backup has been migrated to
// the live version before. Two are special (see restoreFrom): tokens are
// deleted and not copied, secrets are copied row by row.
var restoreTables = []string{
	"meta",
	"roles", "users", "devices", "participant_groups", "relations",
	"secrets", "certificates", "addresses",
	"accounts", "tokens",
	"events", "licenses",
}

func sqlDeleteAll(table string) string { return `DELETE FROM ` + table }
func sqlCopyFromBackup(table string) string {
	return `INSERT INTO ` + table + ` SELECT * FROM bk.` + table
}
