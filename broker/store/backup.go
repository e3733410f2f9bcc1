package store

import (
	"bufio"
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

// The backup archive format (version 2):
//
//	magic "RGBACKUP" | version 2 | argon2id time, memory (KiB), threads
//	(uint32 big-endian each) | salt (16 bytes) | nonce (12 bytes) |
//	chunks
//
// The key is argon2id(passphrase, salt, time, memory, threads, 32 bytes).
// The plaintext is the store's secret key (Options.SecretKey), which opens
// the secrets sealed in the database, as one byte of length (0 without a
// key, or SecretKeySize) and the key, followed by the SQLite database file.
// A restore on other hardware, under another key, seals them anew.
//
// The plaintext is cut into chunks of chunkSize bytes, each sealed on its
// own with AES-256-GCM, so that neither Backup nor Restore holds the
// archive in memory: chunk i has the nonce
// with i (uint64 big-endian) XORed into its last 8 bytes, and as additional
// data the header (everything before the first chunk), i, and a byte that
// is 1 for the last chunk and 0 before. Every chunk but the last holds
// exactly chunkSize bytes; the last holds the rest (possibly nothing). So no
// byte of the archive can change, no chunk move, and no chunk be cut off or
// added at the end without Restore noticing.
//
// Version 1, written before, is one AES-256-GCM seal of the whole database
// with the header as additional data; Restore still reads it (in memory, up
// to maxV1Size).
const (
	backupMagic    = "RGBACKUP"
	backupVersion  = 2
	backupVersion1 = 1
	saltSize       = 16
	nonceSize      = 12
	headerSize     = len(backupMagic) + 1 + 3*4 + saltSize + nonceSize
	tagSize        = 16
	chunkSize      = 64 << 10
)

// MaxBackupSize is the largest backup archive, in bytes: Backup refuses to
// write a larger one (ErrBackupTooLarge) and Restore stops reading one
// there, so that every backup the store writes can be restored, and a
// restore cannot fill the disk with an endless upload. A store near the
// limit holds mostly events: a shorter event retention keeps it below.
const MaxBackupSize = 1 << 30

// maxBackupSize is MaxBackupSize; a test lowers it.
var maxBackupSize int64 = MaxBackupSize

// maxV1Size bounds a version 1 archive, which must be read into memory to
// be decrypted: an upload of junk cannot make Restore allocate more.
const maxV1Size int64 = 256 << 20

// archiveSize is the size of the archive of a plaintext of n bytes.
func archiveSize(n int64) int64 {
	chunks := max(1, (n+chunkSize-1)/chunkSize)
	return int64(headerSize) + n + chunks*tagSize
}

// kdfParams are argon2id parameters.
type kdfParams struct {
	time, memory, threads uint32
}

// maxKDF are the parameters Backup writes, and the most Restore accepts:
// a damaged or hostile archive cannot make it spend more time or memory on
// deriving a key than a genuine one (64 MiB).
var maxKDF = kdfParams{time: 3, memory: 64 * 1024, threads: 4}

// backupKDF are the parameters Backup writes (a test may lower them to run
// faster; Restore reads them from the archive).
var backupKDF = maxKDF

// check refuses parameters outside what Backup writes, before any work.
func (p kdfParams) check() error {
	if p.time < 1 || p.threads < 1 || p.memory < 8*p.threads {
		return fmt.Errorf("%w: key derivation parameters (time %d, memory %d KiB, threads %d) out of range",
			ErrBadBackup, p.time, p.memory, p.threads)
	}
	if p.time > maxKDF.time || p.memory > maxKDF.memory || p.threads > maxKDF.threads {
		return fmt.Errorf("%w: key derivation parameters (time %d, memory %d KiB, threads %d) exceed what this program writes (%d, %d KiB, %d)",
			ErrBadBackup, p.time, p.memory, p.threads, maxKDF.time, maxKDF.memory, maxKDF.threads)
	}
	return nil
}

func (p kdfParams) key(passphrase, salt []byte) []byte {
	return argon2.IDKey(passphrase, salt, p.time, p.memory, uint8(p.threads), 32)
}

// header is a parsed archive header.
type header struct {
	raw     []byte // the header's bytes, the additional data
	version byte
	kdf     kdfParams
	salt    []byte
	nonce   []byte
}

func newHeader(version byte, p kdfParams) (*header, error) {
	raw := make([]byte, 0, headerSize)
	raw = append(raw, backupMagic...)
	raw = append(raw, version)
	raw = binary.BigEndian.AppendUint32(raw, p.time)
	raw = binary.BigEndian.AppendUint32(raw, p.memory)
	raw = binary.BigEndian.AppendUint32(raw, p.threads)
	random := make([]byte, saltSize+nonceSize)
	if _, err := rand.Read(random); err != nil {
		return nil, err
	}
	raw = append(raw, random...)
	return parseHeader(raw)
}

// parseHeader reads the header at the start of b (at least headerSize
// bytes); every failure is ErrBadBackup.
func parseHeader(b []byte) (*header, error) {
	if len(b) < headerSize || !bytes.HasPrefix(b, []byte(backupMagic)) {
		return nil, fmt.Errorf("%w: no backup header", ErrBadBackup)
	}
	h := &header{raw: b[:headerSize:headerSize]}
	rest := h.raw[len(backupMagic):]
	h.version = rest[0]
	if h.version != backupVersion && h.version != backupVersion1 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrBadBackup, h.version)
	}
	h.kdf = kdfParams{
		time:    binary.BigEndian.Uint32(rest[1:]),
		memory:  binary.BigEndian.Uint32(rest[5:]),
		threads: binary.BigEndian.Uint32(rest[9:]),
	}
	if err := h.kdf.check(); err != nil {
		return nil, err
	}
	h.salt = rest[13 : 13+saltSize]
	h.nonce = rest[13+saltSize : 13+saltSize+nonceSize]
	return h, nil
}

// aead derives the archive key from the passphrase.
func (h *header) aead(passphrase []byte) (cipher.AEAD, error) {
	key := h.kdf.key(passphrase, h.salt)
	defer clear(key)
	return newAEAD(key)
}

// chunkNonce and chunkAD are the nonce and additional data of chunk i.
func (h *header) chunkNonce(dst []byte, i uint64) []byte {
	dst = append(dst[:0], h.nonce...)
	var ctr [8]byte
	binary.BigEndian.PutUint64(ctr[:], i)
	for j := range ctr {
		dst[nonceSize-8+j] ^= ctr[j]
	}
	return dst
}

func (h *header) chunkAD(dst []byte, i uint64, last bool) []byte {
	dst = append(dst[:0], h.raw...)
	dst = binary.BigEndian.AppendUint64(dst, i)
	if last {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// sealWriter encrypts what is written to it into chunks. It keeps a full
// chunk until more follows, so that Close can mark the last one.
type sealWriter struct {
	w         io.Writer
	h         *header
	aead      cipher.AEAD
	i         uint64
	buf, out  []byte
	nonce, ad []byte
}

func newSealWriter(w io.Writer, passphrase []byte, p kdfParams) (*sealWriter, error) {
	h, err := newHeader(backupVersion, p)
	if err != nil {
		return nil, err
	}
	aead, err := h.aead(passphrase)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(h.raw); err != nil {
		return nil, err
	}
	return &sealWriter{w: w, h: h, aead: aead, buf: make([]byte, 0, chunkSize),
		out: make([]byte, 0, chunkSize+tagSize)}, nil
}

func (sw *sealWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if len(sw.buf) == chunkSize {
			if err := sw.flush(false); err != nil {
				return n, err
			}
		}
		k := copy(sw.buf[len(sw.buf):chunkSize], p)
		sw.buf = sw.buf[:len(sw.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

func (sw *sealWriter) flush(last bool) error {
	sw.nonce = sw.h.chunkNonce(sw.nonce, sw.i)
	sw.ad = sw.h.chunkAD(sw.ad, sw.i, last)
	sw.out = sw.aead.Seal(sw.out[:0], sw.nonce, sw.buf, sw.ad)
	clear(sw.buf)
	sw.buf = sw.buf[:0]
	sw.i++
	_, err := sw.w.Write(sw.out)
	return err
}

// Close writes the last chunk.
func (sw *sealWriter) Close() error { return sw.flush(true) }

// openReader decrypts the chunks of a version 2 archive. Every failure of
// the archive is ErrBadBackup; Read returns io.EOF only after the last
// chunk was authenticated.
type openReader struct {
	r         *bufio.Reader
	h         *header
	aead      cipher.AEAD
	i         uint64
	done      bool
	in, plain []byte
	nonce, ad []byte
}

func newOpenReader(r io.Reader, h *header, passphrase []byte) (*openReader, error) {
	aead, err := h.aead(passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	return &openReader{r: bufio.NewReaderSize(r, chunkSize+tagSize), h: h, aead: aead,
		in: make([]byte, chunkSize+tagSize)}, nil
}

func (or *openReader) Read(p []byte) (int, error) {
	for len(or.plain) == 0 {
		if or.done {
			return 0, io.EOF
		}
		if err := or.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, or.plain)
	or.plain = or.plain[n:]
	return n, nil
}

// next reads and opens the next chunk.
func (or *openReader) next() error {
	n, err := io.ReadFull(or.r, or.in)
	last := false
	switch {
	case err == nil:
		// A full chunk is the last one if nothing follows.
		if _, perr := or.r.Peek(1); perr == io.EOF {
			last = true
		} else if perr != nil {
			return perr
		}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		last = true
	default:
		return err
	}
	if n < tagSize {
		return fmt.Errorf("%w: truncated", ErrBadBackup)
	}
	or.nonce = or.h.chunkNonce(or.nonce, or.i)
	or.ad = or.h.chunkAD(or.ad, or.i, last)
	plain, err := or.aead.Open(or.in[:0], or.nonce, or.in[:n], or.ad)
	if err != nil {
		return ErrBadBackup
	}
	or.plain = plain
	or.i++
	or.done = last
	return nil
}

// limitReader fails with ErrBackupTooLarge once more than n bytes were
// read; limit is the size it names in the error.
type limitReader struct {
	r        io.Reader
	n, limit int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, l.err()
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, l.err()
	}
	return n, err
}

func (l *limitReader) err() error {
	return fmt.Errorf("%w: more than %d MiB", ErrBackupTooLarge, l.limit>>20)
}

// Backup writes an encrypted archive of the whole database (configuration,
// secrets, certificates, addresses, accounts and tokens, events, licenses)
// to w, streaming it. The secrets stay sealed in it, and the archive
// carries the store's secret key, so that the backup restores on new
// hardware under another key: the passphrase protects them all. The
// passphrase must not be empty; Restore needs it.
// It fails with ErrBackupTooLarge, before writing anything, if the archive
// would be larger than MaxBackupSize.
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
	f, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if size := archiveSize(1 + int64(len(s.key)) + fi.Size()); size > maxBackupSize {
		return fmt.Errorf("store: backup: %w: the archive would have %d MiB, the limit is %d MiB (a shorter event retention makes the database smaller)",
			ErrBackupTooLarge, size>>20, maxBackupSize>>20)
	}
	sw, err := newSealWriter(w, passphrase, backupKDF)
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := sw.Write(append([]byte{byte(len(s.key))}, s.key...)); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := io.Copy(sw, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := sw.Close(); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// ctxReader stops reading when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Restore replaces the whole content of the database with the backup read
// from r, atomically: on any error the database is unchanged. It is
// StageRestore and Apply with the zero RestoreOptions in one call; see them.
func (s *Store) Restore(ctx context.Context, r io.Reader, passphrase []byte) error {
	staged, err := s.StageRestore(ctx, r, passphrase)
	if err != nil {
		return err
	}
	defer staged.Close()
	return staged.Apply(ctx, RestoreOptions{})
}

// StagedRestore is a backup decrypted, checked and migrated into a
// temporary file, ready to replace the content of the store.
type StagedRestore struct {
	s    *Store
	path string
	// key is the secret key of the store the backup was taken of (nil if
	// it had none): it opens the secrets sealed in the backup.
	key []byte
}

// StageRestore reads the backup archive from r, streaming it (it is never
// held in memory) into a temporary database beside the store's, and checks
// it. It fails with ErrBadBackup if the archive is damaged, not a backup,
// asks for a costlier key derivation than Backup writes, or the passphrase
// is wrong; with ErrBackupTooLarge if it is larger than MaxBackupSize (it
// reads no more than that); and with ErrSchema if the backup was written by
// a newer program. A backup of an older schema is migrated. The store is
// not touched: the caller applies the result (Apply) or drops it (Close),
// so that a slow upload holds no lock.
func (s *Store) StageRestore(ctx context.Context, r io.Reader, passphrase []byte) (*StagedRestore, error) {
	tmp, err := s.tempFile()
	if err != nil {
		return nil, fmt.Errorf("store: restore: %w", err)
	}
	key, err := s.stage(ctx, r, passphrase, tmp)
	if err != nil {
		removeDB(tmp)
		return nil, fmt.Errorf("store: restore: %w", err)
	}
	return &StagedRestore{s: s, path: tmp, key: key}, nil
}

// stage decrypts the archive from r into the file tmp and returns the
// secret key it carries.
func (s *Store) stage(ctx context.Context, r io.Reader, passphrase []byte, tmp string) ([]byte, error) {
	lr := &limitReader{r: ctxReader{ctx, r}, n: maxBackupSize, limit: maxBackupSize}
	raw := make([]byte, headerSize)
	if _, err := io.ReadFull(lr, raw); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: no backup header", ErrBadBackup)
		}
		return nil, fmt.Errorf("read backup: %w", err)
	}
	h, err := parseHeader(raw)
	if err != nil {
		return nil, err
	}
	var key []byte
	if h.version == backupVersion1 {
		if lr.limit > maxV1Size {
			lr.n, lr.limit = maxV1Size-int64(headerSize), maxV1Size
		}
		if err := writeV1(lr, h, passphrase, tmp); err != nil {
			return nil, err
		}
	} else {
		or, err := newOpenReader(lr, h, passphrase)
		if err != nil {
			return nil, err
		}
		if key, err = readKeySection(or); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(f, or)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if errors.Is(err, ErrBadBackup) || errors.Is(err, ErrBackupTooLarge) {
				return nil, err
			}
			return nil, fmt.Errorf("read backup: %w", err)
		}
	}
	return key, s.prepareBackup(ctx, tmp)
}

// readKeySection reads the secret key at the start of the plaintext: its
// length (one byte: 0, or SecretKeySize), then the key.
func readKeySection(r io.Reader) ([]byte, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, sectionErr(err)
	}
	switch n[0] {
	case 0:
		return nil, nil
	case SecretKeySize:
	default:
		return nil, fmt.Errorf("%w: a secret key of %d bytes", ErrBadBackup, n[0])
	}
	key := make([]byte, SecretKeySize)
	if _, err := io.ReadFull(r, key); err != nil {
		return nil, sectionErr(err)
	}
	return key, nil
}

func sectionErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: no secret key section", ErrBadBackup)
	}
	return err
}

// writeV1 decrypts the rest of a version 1 archive from r into the file at
// path.
func writeV1(r io.Reader, h *header, passphrase []byte, path string) error {
	sealed, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, ErrBackupTooLarge) {
			return err
		}
		return fmt.Errorf("read backup: %w", err)
	}
	defer clear(sealed)
	if len(sealed) < tagSize {
		return fmt.Errorf("%w: truncated", ErrBadBackup)
	}
	aead, err := h.aead(passphrase)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	plain, err := aead.Open(sealed[:0], h.nonce, sealed, h.raw)
	if err != nil {
		return ErrBadBackup
	}
	return os.WriteFile(path, plain, 0o600)
}

// RestoreOptions tune Apply. The zero value restores everything the
// backup holds but its tokens.
type RestoreOptions struct {
	// KeepSecrets names secrets that keep the value this store has (or
	// stay absent if it has none): the backup's values of these names are
	// not restored. A product lists here what identifies this very
	// installation, such as the ID and key a license is bound to, so that
	// restoring another broker's backup does not make two installations
	// of one; moving to new hardware leaves them out to bring them along.
	// The store does not know which secrets those are.
	KeepSecrets []string
}

// Apply replaces the whole content of the store with the staged backup,
// atomically: on any error the store is unchanged. The Store stays usable
// while and after it restores.
//
// Apply ends every API session: the store's tokens are deleted and the
// backup's are not restored, so that neither a token logged out since the
// backup nor another broker's token comes back. The accounts are the
// backup's; their users log in again.
//
// The configuration revision after Apply is one more than the larger of
// the revisions before and in the backup, so that a revision is never
// reused for a different configuration (see Replace).
func (p *StagedRestore) Apply(ctx context.Context, opts RestoreOptions) error {
	if p.path == "" {
		return errors.New("store: restore: already closed")
	}
	if err := p.s.restoreFrom(ctx, p.path, p.key, opts); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	return nil
}

// Close removes the staged backup.
func (p *StagedRestore) Close() error {
	if p.path != "" {
		removeDB(p.path)
		p.path = ""
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
// database at path, in one write transaction: tokens are deleted, the
// secrets opts keeps stay as they are, the others are sealed with the
// store's key (those of the backup sealed with its key, backupKey, are
// opened with it first).
func (s *Store) restoreFrom(ctx context.Context, path string, backupKey []byte, opts RestoreOptions) (err error) {
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
		keep := make(map[string]bool, len(opts.KeepSecrets))
		for _, name := range opts.KeepSecrets {
			keep[name] = true
		}
		kept, err := readSecrets(ctx, tx, sqlSecretRows, keep, true)
		if err != nil {
			return err
		}
		restored, err := readSecrets(ctx, tx, sqlBackupSecretRows, keep, false)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadBackup, err)
		}
		if err := s.resealSecrets(restored, backupKey); err != nil {
			return err
		}
		for i := len(restoreTables) - 1; i >= 0; i-- {
			if _, err := tx.ExecContext(ctx, sqlDeleteAll(restoreTables[i])); err != nil {
				return fmt.Errorf("clear %s: %w", restoreTables[i], err)
			}
		}
		for _, t := range restoreTables {
			switch t {
			case "tokens":
				continue // every session ends
			case "secrets":
				for _, sr := range append(kept, restored...) {
					if _, err := tx.ExecContext(ctx, sqlPutSecret, sr.name, sr.value, sr.sealed); err != nil {
						return fmt.Errorf("copy secrets: %w", err)
					}
				}
				continue
			}
			if _, err := tx.ExecContext(ctx, sqlCopyFromBackup(t)); err != nil {
				return fmt.Errorf("copy %s: %w", t, err)
			}
		}
		after, err := readRevision(ctx, tx)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadBackup, err)
		}
		_, err = tx.ExecContext(ctx, sqlSetMeta, strconv.FormatInt(max(before, after)+1, 10), metaRevision)
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
