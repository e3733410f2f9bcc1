package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

var passphrase = []byte("correct horse battery staple")

// contents is everything a Store holds, as its read methods return it.
type contents struct {
	Config    *Config
	Secrets   map[string][]byte
	Certs     []pki.Record
	Addresses map[string]netip.Addr
	Account   *Account
	Token     *Token
	Events    []Event
	Licenses  []License
}

func readContents(t *testing.T, s *Store, secretNames ...string) contents {
	t.Helper()
	var c contents
	var err error
	c.Config, err = s.Config(bg)
	must(t, err)
	c.Secrets = map[string][]byte{}
	for _, n := range secretNames {
		if v, err := s.Secret(bg, n); err == nil {
			c.Secrets[n] = v
		}
	}
	c.Certs, err = s.Certificates(bg)
	must(t, err)
	c.Addresses, err = s.Addresses(bg)
	must(t, err)
	c.Account, _ = s.Account(bg, "root")
	c.Token, _ = s.Token(bg, hashOf("session"))
	c.Events, err = s.Events(bg, EventFilter{Limit: MaxEventLimit})
	must(t, err)
	c.Licenses, err = s.Licenses(bg)
	must(t, err)
	return c
}

// populate puts something of every kind into s.
func populate(t *testing.T, s *Store) {
	t.Helper()
	_, err := s.Update(bg, func(c *Config) error { sampleConfig(c); return nil })
	must(t, err)
	_, err = s.Update(bg, func(c *Config) error {
		c.Model.Users = append(c.Model.Users, policy.User{Name: "carol"})
		return nil
	})
	must(t, err)
	must(t, s.PutSecret(bg, "ca-key", []byte("-----BEGIN PRIVATE KEY-----...")))
	must(t, s.PutSecret(bg, "tls-crypt", bytes.Repeat([]byte{0xa5}, 256)))
	cert := newCert(t, 77, "plant-7", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	must(t, s.PutCertificate(bg, pki.Record{Certificate: cert, Profile: pki.ProfileDevice}))
	must(t, s.RevokeCertificate(bg, "4d", time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), pki.ReasonSuperseded))
	must(t, s.SetAddress(bg, "alice", netip.MustParseAddr("100.64.0.2")))
	must(t, s.PutAccount(bg, Account{Name: "root", PasswordHash: "$argon2id$x", MustChange: true}))
	must(t, s.PutToken(bg, Token{Hash: hashOf("session"), Account: "root", Expires: time.Now().Add(time.Hour)}))
	for i := range 3 {
		_, err := s.Append(bg, Event{Kind: "connect", Participant: "alice", Message: fmt.Sprint(i), Attrs: map[string]string{"i": fmt.Sprint(i)}})
		must(t, err)
	}
	must(t, s.PutLicense(bg, License{Number: "L-1", File: []byte("license file")}))
}

func TestBackupRestore(t *testing.T) {
	src, srcPath := openTest(t)
	populate(t, src)
	want := readContents(t, src, "ca-key", "tls-crypt")

	var archive bytes.Buffer
	must(t, src.Backup(bg, &archive, passphrase))
	// The temporary copy is gone.
	entries, err := os.ReadDir(filepath.Dir(srcPath))
	must(t, err)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "broker.db") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if bytes.Contains(archive.Bytes(), []byte("SQLite format 3")) || bytes.Contains(archive.Bytes(), []byte("plant-7")) {
		t.Fatal("archive is not encrypted")
	}

	// The destination has its own, different content, and more revisions.
	dst, dstPath := openTest(t)
	for range 5 {
		_, err := dst.Update(bg, func(c *Config) error {
			c.Model.Groups = append(c.Model.Groups, policy.Group{Name: fmt.Sprint("g", c.Revision)})
			return nil
		})
		must(t, err)
	}
	must(t, dst.PutSecret(bg, "other", []byte("x")))
	must(t, dst.PutAccount(bg, Account{Name: "someone"}))
	for range 7 {
		_, err := dst.Append(bg, Event{Kind: "old"})
		must(t, err)
	}

	must(t, dst.Restore(bg, bytes.NewReader(archive.Bytes()), passphrase))
	got := readContents(t, dst, "ca-key", "tls-crypt", "other")
	if got.Config.Revision != 6 { // max(2, 5) + 1
		t.Errorf("revision after restore %d, want 6", got.Config.Revision)
	}
	got.Config.Revision = want.Config.Revision
	if !reflect.DeepEqual(got.Config, want.Config) {
		t.Errorf("config\n%+v\nwant\n%+v", got.Config, want.Config)
	}
	if !reflect.DeepEqual(got.Secrets, want.Secrets) {
		t.Errorf("secrets %q, want %q", got.Secrets, want.Secrets)
	}
	if len(got.Certs) != 1 || !got.Certs[0].Certificate.Equal(want.Certs[0].Certificate) ||
		!got.Certs[0].RevokedAt.Equal(want.Certs[0].RevokedAt) || got.Certs[0].Reason != want.Certs[0].Reason {
		t.Errorf("certificates %+v, want %+v", got.Certs, want.Certs)
	}
	for name, pair := range map[string][2]any{
		"addresses": {got.Addresses, want.Addresses},
		"account":   {got.Account, want.Account},
		"events":    {got.Events, want.Events},
		"licenses":  {got.Licenses, want.Licenses},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) || reflect.ValueOf(pair[1]).IsNil() {
			t.Errorf("%s: %+v, want %+v", name, pair[0], pair[1])
		}
	}
	if _, err := dst.Account(bg, "someone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("account from before the restore: %v", err)
	}
	// A restore ends every session: the backup's token is not restored.
	if want.Token == nil || got.Token != nil {
		t.Errorf("token after the restore: %+v (backed up: %+v), want none", got.Token, want.Token)
	}

	// The live store goes on working, without reusing event IDs.
	c, err := dst.Update(bg, func(c *Config) error { c.Model.Users = c.Model.Users[:1]; return nil })
	must(t, err)
	if c.Revision != 7 || len(c.Model.Users) != 1 {
		t.Fatalf("update after restore: %+v", c)
	}
	id, err := dst.Append(bg, Event{Kind: "restore"})
	must(t, err)
	if id != 8 {
		t.Errorf("event ID after restore %d, want 8", id)
	}
	// And so does a fresh process on the file.
	must(t, dst.Close())
	reopened, err := Open(dstPath)
	must(t, err)
	defer reopened.Close()
	c2, err := reopened.Config(bg)
	must(t, err)
	if !reflect.DeepEqual(c2, c) {
		t.Fatalf("after reopening: %+v, want %+v", c2, c)
	}
}

func TestBackupFormat(t *testing.T) {
	saved := backupKDF
	backupKDF = productionKDF
	defer func() { backupKDF = saved }()
	if saved == productionKDF {
		t.Fatal("tests should run with cheap parameters")
	}
	s, _ := openTest(t)
	populate(t, s)
	if err := s.Backup(bg, new(bytes.Buffer), nil); err == nil {
		t.Fatal("backup with an empty passphrase")
	}
	var b bytes.Buffer
	must(t, s.Backup(bg, &b, passphrase))
	a := b.Bytes()
	if string(a[:8]) != "RGBACKUP" || a[8] != 2 {
		t.Fatalf("header %q", a[:9])
	}
	if tm, mem, th := binary.BigEndian.Uint32(a[9:]), binary.BigEndian.Uint32(a[13:]), binary.BigEndian.Uint32(a[17:]); tm != 3 || mem != 64*1024 || th != 4 {
		t.Fatalf("argon2id parameters %d, %d, %d; want 3, 65536, 4", tm, mem, th)
	}
	if len(a) < 49+16+4096 {
		t.Fatalf("archive of %d bytes", len(a))
	}
	// Two backups of the same content differ (fresh salt and nonce).
	var b2 bytes.Buffer
	must(t, s.Backup(bg, &b2, passphrase))
	if bytes.Equal(a[21:49], b2.Bytes()[21:49]) {
		t.Fatal("salt and nonce repeated")
	}
	dst, _ := openTest(t)
	must(t, dst.Restore(bg, bytes.NewReader(a), passphrase))
	c, err := dst.Config(bg)
	must(t, err)
	if len(c.Model.Users) != 3 {
		t.Fatalf("restored users %+v", c.Model.Users)
	}
}

// assertUnchanged fails if the configuration of s is not want.
func assertUnchanged(t *testing.T, s *Store, want *Config, what string) {
	t.Helper()
	got, err := s.Config(bg)
	must(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s changed the configuration", what)
	}
}

func TestRestoreRejects(t *testing.T) {
	src, _ := openTest(t)
	populate(t, src)
	var b bytes.Buffer
	must(t, src.Backup(bg, &b, passphrase))
	archive := b.Bytes()

	dst, _ := openTest(t)
	before, err := dst.Update(bg, func(c *Config) error {
		c.Model.Roles = []policy.Role{{Name: "keep", Rights: policy.RightBackup}}
		return nil
	})
	must(t, err)
	try := func(what string, data, pass []byte) {
		t.Helper()
		if err := dst.Restore(bg, bytes.NewReader(data), pass); !errors.Is(err, ErrBadBackup) {
			t.Fatalf("%s: %v, want ErrBadBackup", what, err)
		}
		assertUnchanged(t, dst, before, what)
	}
	try("wrong passphrase", archive, []byte("wrong"))
	try("empty passphrase", archive, nil)
	try("empty archive", nil, passphrase)
	try("header only", archive[:headerSize], passphrase)
	try("truncated", archive[:len(archive)-1], passphrase)
	try("extended", append(append([]byte(nil), archive...), 0), passphrase)
	// Every header byte, then bytes spread over the ciphertext and the tag.
	var positions []int
	for i := range headerSize {
		positions = append(positions, i)
	}
	for i := headerSize; i < len(archive); i += 1 + len(archive)/40 {
		positions = append(positions, i)
	}
	positions = append(positions, len(archive)-tagSize, len(archive)-1)
	for _, i := range positions {
		bad := append([]byte(nil), archive...)
		bad[i] ^= 0x01
		try(fmt.Sprintf("byte %d flipped", i), bad, passphrase)
	}

	// Authentic archives whose content is not a store.
	sealed := func(plain []byte) []byte { return sealDB(t, plain, nil) }
	try("not a database", sealed([]byte("hello, world")), passphrase)
	try("empty database", sealed(nil), passphrase)
	other := filepath.Join(t.TempDir(), "other.db")
	db, err := openDB(other, dsnParamsPlain, true)
	must(t, err)
	_, err = db.ExecContext(bg, `CREATE TABLE t (x INTEGER)`)
	must(t, err)
	must(t, db.Close())
	plain, err := os.ReadFile(other)
	must(t, err)
	try("a database that is not a store", sealed(plain), passphrase)
	damaged := append([]byte(nil), plain...)
	for i := 100; i < len(damaged); i++ {
		damaged[i] = 0xff
	}
	try("a damaged database", sealed(damaged), passphrase)

	// A backup from a newer program.
	newer := filepath.Join(t.TempDir(), "newer.db")
	ns, err := Open(newer)
	must(t, err)
	_, err = ns.db.ExecContext(bg, sqlRecordMigration, len(migrations)+1, "")
	must(t, err)
	must(t, ns.Close())
	plain, err = os.ReadFile(newer)
	must(t, err)
	if err := dst.Restore(bg, bytes.NewReader(sealed(plain)), passphrase); !errors.Is(err, ErrSchema) {
		t.Fatalf("backup of a newer schema: %v, want ErrSchema", err)
	}
	assertUnchanged(t, dst, before, "newer schema")
}

func TestRestoreOlderSchema(t *testing.T) {
	// A backup taken by a program that knew only migration 1, in the
	// archive format of its time (version 1).
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := openDB(path, dsnParams, true)
	must(t, err)
	must(t, migrate(bg, db, 1, time.Now))
	_, err = db.ExecContext(bg, usersTable.insert, "old-user", 1, `{"name":"old-user"}`)
	must(t, err)
	_, err = db.ExecContext(bg, sqlSetMeta, "4", metaRevision)
	must(t, err)
	must(t, db.Close())
	plain, err := os.ReadFile(path)
	must(t, err)
	archive := sealV1(t, plain)

	s, _ := openTest(t)
	must(t, s.Restore(bg, bytes.NewReader(archive), passphrase))
	c, err := s.Config(bg)
	must(t, err)
	if c.Revision != 5 || len(c.Model.Users) != 1 || c.Model.Users[0].Name != "old-user" {
		t.Fatalf("restored %+v", c)
	}
	v, err := s.SchemaVersion(bg)
	must(t, err)
	if v != len(migrations) {
		t.Fatalf("schema version %d after restoring an old backup", v)
	}
}

func FuzzRestore(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(filepath.Join(dir, "live.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Update(bg, func(c *Config) error { sampleConfig(c); return nil }); err != nil {
		f.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Backup(bg, &b, passphrase); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte("RGBACKUP\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= headerSize && bytes.HasPrefix(data, []byte(backupMagic)) {
			// A header that asks for costly key derivation is valid, but
			// would make each run take seconds.
			p := kdfParams{binary.BigEndian.Uint32(data[9:]), binary.BigEndian.Uint32(data[13:]), binary.BigEndian.Uint32(data[17:])}
			if p.check() == nil && uint64(p.time)*uint64(p.memory) > 16*uint64(backupKDF.time)*uint64(backupKDF.memory) {
				t.Skip("costly key derivation")
			}
		}
		before, err := s.Config(bg)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Restore(bg, bytes.NewReader(data), passphrase)
		if err == nil {
			return // an authentic backup (the seed)
		}
		if !errors.Is(err, ErrBadBackup) {
			t.Fatalf("Restore: %v, want ErrBadBackup", err)
		}
		after, err := s.Config(bg)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(after, before) {
			t.Fatal("failed Restore changed the configuration")
		}
	})
}

// A restore ends every API session, the store's and the backup's: a token
// logged out since the backup does not come back, nor do another broker's
// tokens. The secrets named in KeepSecrets keep this store's values, or
// their absence.
func TestRestoreEndsSessionsAndKeepsNamedSecrets(t *testing.T) {
	other, _ := openTest(t)
	must(t, other.PutAccount(bg, Account{Name: "root"}))
	must(t, other.PutToken(bg, Token{Hash: hashOf("theirs"), Account: "root", Expires: time.Now().Add(time.Hour)}))
	must(t, other.PutSecret(bg, "id", []byte("their id")))
	must(t, other.PutSecret(bg, "key", []byte("their key")))
	must(t, other.PutSecret(bg, "ca", []byte("their CA")))
	must(t, other.PutSecret(bg, "only-theirs", []byte("x")))
	var archive bytes.Buffer
	must(t, other.Backup(bg, &archive, passphrase))

	s, _ := openTest(t)
	must(t, s.PutAccount(bg, Account{Name: "root"}))
	must(t, s.PutToken(bg, Token{Hash: hashOf("mine"), Account: "root", Expires: time.Now().Add(time.Hour)}))
	must(t, s.PutSecret(bg, "id", []byte("my id")))
	must(t, s.PutSecret(bg, "ca", []byte("my CA")))
	staged, err := s.StageRestore(bg, bytes.NewReader(archive.Bytes()), passphrase)
	must(t, err)
	defer staged.Close()
	must(t, staged.Apply(bg, RestoreOptions{KeepSecrets: []string{"id", "key"}}))

	for _, tok := range []string{"mine", "theirs"} {
		if _, err := s.Token(bg, hashOf(tok)); !errors.Is(err, ErrNotFound) {
			t.Errorf("token %q after the restore: %v, want ErrNotFound", tok, err)
		}
	}
	var n int
	must(t, s.db.QueryRowContext(bg, `SELECT COUNT(*) FROM tokens`).Scan(&n))
	if n != 0 {
		t.Errorf("%d tokens stored after the restore", n)
	}
	for name, want := range map[string]string{"id": "my id", "ca": "their CA", "only-theirs": "x"} {
		if v, err := s.Secret(bg, name); err != nil || string(v) != want {
			t.Errorf("secret %s: %q, %v; want %q", name, v, err, want)
		}
	}
	if v, err := s.Secret(bg, "key"); !errors.Is(err, ErrNotFound) {
		t.Errorf("kept secret absent here: %q, %v; want ErrNotFound", v, err)
	}

	// Without KeepSecrets, all of the backup's secrets come.
	must(t, s.Restore(bg, bytes.NewReader(archive.Bytes()), passphrase))
	for name, want := range map[string]string{"id": "their id", "key": "their key"} {
		if v, err := s.Secret(bg, name); err != nil || string(v) != want {
			t.Errorf("secret %s: %q, %v; want %q", name, v, err, want)
		}
	}
}

// sealV2 encrypts plain into an archive of format version 2.
func sealV2(t testing.TB, plain []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	sw, err := newSealWriter(&b, passphrase, backupKDF)
	must(t, err)
	_, err = sw.Write(plain)
	must(t, err)
	must(t, sw.Close())
	return b.Bytes()
}

// sealDB encrypts the database file db into an archive as Backup does,
// with the secret key key (nil: none).
func sealDB(t testing.TB, db, key []byte) []byte {
	t.Helper()
	return sealV2(t, append(append([]byte{byte(len(key))}, key...), db...))
}

// sealV1 encrypts plain into an archive of format version 1, as Backup
// wrote them before archives were cut into chunks: one AES-256-GCM seal
// with the header as additional data.
func sealV1(t testing.TB, plain []byte) []byte {
	t.Helper()
	h, err := newHeader(backupVersion1, backupKDF)
	must(t, err)
	aead, err := h.aead(passphrase)
	must(t, err)
	return aead.Seal(append([]byte(nil), h.raw...), h.nonce, plain, h.raw)
}

// fillEvents appends n events of about size bytes of random text each,
// directly in SQL, so that a test gets a big database quickly (the
// archive is encrypted, not compressed: what the text says does not matter).
func fillEvents(t testing.TB, s *Store, n, size int) {
	t.Helper()
	_, err := s.db.ExecContext(bg, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
		INSERT INTO events (time, kind, participant, actor, message, attrs)
		SELECT ?, 'bulk', '', '', hex(zeroblob(?)), NULL FROM c`, n, formatTime(s.now()), size/2)
	must(t, err)
}

// A backup whose header asks for a costlier key derivation than Backup
// writes is refused before any of it is done: a hostile archive cannot make
// the broker allocate a gigabyte.
func TestRestoreRefusesCostlyKeyDerivation(t *testing.T) {
	s, _ := openTest(t)
	archive := sealV2(t, []byte("whatever"))
	for _, p := range []kdfParams{
		{time: 1, memory: 1 << 20, threads: 1}, // 1 GiB
		{time: 1, memory: maxKDF.memory + 1, threads: 1},
		{time: maxKDF.time + 1, memory: 64, threads: 1},
		{time: 1, memory: 8 * (maxKDF.threads + 1), threads: maxKDF.threads + 1},
	} {
		bad := append([]byte(nil), archive...)
		binary.BigEndian.PutUint32(bad[9:], p.time)
		binary.BigEndian.PutUint32(bad[13:], p.memory)
		binary.BigEndian.PutUint32(bad[17:], p.threads)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := s.Restore(bg, bytes.NewReader(bad), passphrase)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), "exceed what this program writes") {
			t.Errorf("%+v: %v, want ErrBadBackup about the key derivation", p, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("%+v: Restore allocated %d MiB before refusing", p, alloc>>20)
		}
	}
	// The production parameters themselves are accepted (TestBackupFormat
	// restores such a backup).
	if err := maxKDF.check(); err != nil {
		t.Fatal(err)
	}
}

// Neither Backup nor Restore holds the archive in memory: restoring a
// backup of many megabytes allocates a small part of its size.
func TestRestoreStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("moves megabytes; the unit run (without -short) has it")
	}
	src, _ := openTest(t)
	populate(t, src)
	fillEvents(t, src, 8<<10, 1000) // about 8 MiB
	var archive bytes.Buffer
	must(t, src.Backup(bg, &archive, passphrase))
	if archive.Len() < 8<<20 {
		t.Fatalf("archive of %d bytes", archive.Len())
	}
	dst, _ := openTest(t)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	must(t, dst.Restore(bg, bytes.NewReader(archive.Bytes()), passphrase))
	runtime.ReadMemStats(&after)
	t.Logf("restoring %d KiB allocated %d KiB", archive.Len()>>10, (after.TotalAlloc-before.TotalAlloc)>>10)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(archive.Len()/4) {
		t.Errorf("restoring %d MiB allocated %d MiB", archive.Len()>>20, alloc>>20)
	}
	var n int
	must(t, dst.db.QueryRowContext(bg, `SELECT COUNT(*) FROM events WHERE kind = 'bulk'`).Scan(&n))
	if n != 8<<10 {
		t.Fatalf("%d events restored", n)
	}
	// Backup too: the archive streams out.
	runtime.ReadMemStats(&before)
	must(t, dst.Backup(bg, io.Discard, passphrase))
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(archive.Len()/4) {
		t.Errorf("a backup of %d MiB allocated %d MiB", archive.Len()>>20, alloc>>20)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r    io.Reader
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

// endlessArchive is an authentic archive that never ends (chunks of
// zeros, none of them the last), and a function that stops it.
func endlessArchive() (io.Reader, func()) {
	pr, pw := io.Pipe()
	go func() {
		sw, err := newSealWriter(pw, passphrase, backupKDF)
		zeros := make([]byte, chunkSize)
		for err == nil {
			_, err = sw.Write(zeros)
		}
		pw.CloseWithError(err)
	}()
	return pr, func() { pr.Close() }
}

// junkV1 is a version 1 archive that never ends: a valid header, then
// junk.
type junkV1 struct{ header []byte }

func (j *junkV1) Read(p []byte) (int, error) {
	n := copy(p, j.header)
	j.header = j.header[n:]
	clear(p[n:])
	return len(p), nil
}

// A backup has a size limit: Backup does not write an archive above it,
// and Restore reads no further than it.
func TestBackupSizeLimit(t *testing.T) {
	saved := maxBackupSize
	maxBackupSize = 1 << 20
	defer func() { maxBackupSize = saved }()

	s, _ := openTest(t)
	populate(t, s)
	var b bytes.Buffer
	must(t, s.Backup(bg, &b, passphrase)) // below the limit
	archive := b.Bytes()

	fillEvents(t, s, 2000, 1000)
	var big bytes.Buffer
	err := s.Backup(bg, &big, passphrase)
	if !errors.Is(err, ErrBackupTooLarge) || !strings.Contains(err.Error(), "the limit is 1 MiB") {
		t.Fatalf("backup above the limit: %v, want ErrBackupTooLarge", err)
	}
	if big.Len() != 0 {
		t.Fatalf("a refused backup wrote %d bytes", big.Len())
	}

	dst, _ := openTest(t)
	before, err := dst.Config(bg)
	must(t, err)
	endless, stop := endlessArchive()
	defer stop()
	h, err := newHeader(backupVersion1, backupKDF)
	must(t, err)
	for what, r := range map[string]io.Reader{"archive": endless, "version 1 archive": &junkV1{header: h.raw}} {
		cr := &countingReader{r: r}
		err = dst.Restore(bg, cr, passphrase)
		if !errors.Is(err, ErrBackupTooLarge) {
			t.Fatalf("endless %s: %v, want ErrBackupTooLarge", what, err)
		}
		if cr.read > maxBackupSize+2*(chunkSize+tagSize) {
			t.Fatalf("endless %s: read %d bytes, limit %d", what, cr.read, maxBackupSize)
		}
		assertUnchanged(t, dst, before, "an endless archive")
	}
	must(t, dst.Restore(bg, bytes.NewReader(archive), passphrase))
}

// An archive is authenticated chunk by chunk, in order, up to the end:
// dropping, moving or cutting off chunks is noticed.
func TestRestoreRejectsChunkChanges(t *testing.T) {
	src, _ := openTest(t)
	populate(t, src)
	fillEvents(t, src, 300, 1000)
	var b bytes.Buffer
	must(t, src.Backup(bg, &b, passphrase))
	a := b.Bytes()
	chunk := chunkSize + tagSize
	body := a[headerSize:]
	if len(body) < 3*chunk {
		t.Fatalf("archive of %d bytes: fewer than 3 chunks", len(a))
	}
	dst, _ := openTest(t)
	cases := map[string][]byte{
		"last chunk dropped": a[:len(a)-(len(body)%chunk)],
		"cut after a chunk":  a[:headerSize+2*chunk],
		"middle chunk dropped": append(append([]byte(nil), a[:headerSize+chunk]...),
			a[headerSize+2*chunk:]...),
		"chunks swapped": append(append(append(append([]byte(nil), a[:headerSize]...),
			body[chunk:2*chunk]...), body[:chunk]...), body[2*chunk:]...),
		"chunk repeated": append(append([]byte(nil), a[:headerSize+chunk]...), body...),
	}
	for what, data := range cases {
		if err := dst.Restore(bg, bytes.NewReader(data), passphrase); !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: %v, want ErrBadBackup", what, err)
		}
	}
	must(t, dst.Restore(bg, bytes.NewReader(a), passphrase))
}

// A plaintext of exactly whole chunks ends with a full chunk marked last;
// an empty one with an empty chunk.
func TestSealChunkBoundaries(t *testing.T) {
	for _, n := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 2 * chunkSize, 3*chunkSize + 5} {
		plain := bytes.Repeat([]byte{7}, n)
		a := sealV2(t, plain)
		if int64(len(a)) != archiveSize(int64(n)) {
			t.Errorf("%d bytes: archive of %d, archiveSize says %d", n, len(a), archiveSize(int64(n)))
		}
		h, err := parseHeader(a)
		must(t, err)
		or, err := newOpenReader(bytes.NewReader(a[headerSize:]), h, passphrase)
		must(t, err)
		got, err := io.ReadAll(or)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%d bytes: read back %d bytes, %v", n, len(got), err)
		}
	}
}
