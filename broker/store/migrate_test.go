package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestMigrateFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := openDB(path, dsnParams, true)
	must(t, err)
	must(t, migrate(bg, db, 1, time.Now))
	if v, err := schemaVersion(bg, db); err != nil || v != 1 {
		t.Fatalf("version %d, %v; want 1", v, err)
	}
	_, err = db.ExecContext(bg, sqlAppendEvent, "2025-01-01T00:00:00.000000000Z", "connect", "alice", "", "kept", nil)
	must(t, err)
	must(t, db.Close())

	s, err := Open(path)
	must(t, err)
	defer s.Close()
	v, err := s.SchemaVersion(bg)
	must(t, err)
	if v != len(migrations) {
		t.Fatalf("version %d after Open, want %d", v, len(migrations))
	}
	var n int
	must(t, s.db.QueryRowContext(bg,
		`SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ('events_time', 'events_participant')`).Scan(&n))
	if n != 2 {
		t.Fatalf("%d of the indexes of migration 2", n)
	}
	must(t, s.db.QueryRowContext(bg, `SELECT COUNT(*) FROM schema_migrations WHERE applied_at <> ''`).Scan(&n))
	if n != len(migrations) {
		t.Fatalf("%d migrations recorded", n)
	}
	evs, err := s.Events(bg, EventFilter{Participant: "alice"})
	must(t, err)
	if len(evs) != 1 || evs[0].Message != "kept" {
		t.Fatalf("events after migrating: %+v", evs)
	}
	// Opening again applies nothing twice.
	s2, err := Open(path)
	must(t, err)
	defer s2.Close()
	if v, err := s2.SchemaVersion(bg); err != nil || v != len(migrations) {
		t.Fatalf("version %d, %v on reopening", v, err)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	s, path := openTest(t)
	_, err := s.db.ExecContext(bg, sqlRecordMigration, len(migrations)+1, "")
	must(t, err)
	must(t, s.Close())
	if _, err := Open(path); !errors.Is(err, ErrSchema) {
		t.Fatalf("Open of a newer database: %v, want ErrSchema", err)
	}
}
