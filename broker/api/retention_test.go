package api

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/store"
)

// countRows counts the rows of a table in the database file, through a
// connection of its own: what is on disk, not what the store shows.
func (e *env) countRows(table string) int {
	e.t.Helper()
	db, err := sql.Open("sqlite", e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// Maintain removes expired tokens and the events older than the retention
// (400 days unless configured), on the API's clock.
func TestMaintainPrunesTokensAndEvents(t *testing.T) {
	for _, skew := range clockSkews {
		t.Run(skew.name, func(t *testing.T) { testMaintain(t, skew.d) })
	}
}

func testMaintain(t *testing.T, skew time.Duration) {
	e := newEnvAt(t, skew, func(c *Config) { c.TokenLifetime = time.Hour })
	ctx := context.Background()
	appendAt := func(msg string, at time.Time) {
		if _, err := e.store.Append(ctx, store.Event{Time: at, Kind: "test", Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	appendAt("old", e.start)
	appendAt("younger", e.start.Add(2*day))
	e.mustLogin("root")
	e.mustLogin("nobody")
	e.clock.add(30 * time.Minute)
	fresh := e.mustLogin("root")
	if n := e.countRows("tokens"); n != 3 {
		t.Fatalf("%d tokens stored, want 3", n)
	}
	e.clock.add(45 * time.Minute) // the first two have expired, not the last
	if err := e.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.countRows("tokens"); n != 1 {
		t.Fatalf("%d tokens stored after Maintain, want 1", n)
	}
	e.expect(http.StatusOK, "GET", "/api/v1/users", fresh, nil)

	kept := func() []string {
		t.Helper()
		evs, err := e.store.Events(ctx, store.EventFilter{Kind: "test"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			out = append(out, ev.Message)
		}
		return out
	}
	// 400 days after the first event, to the second: it is still kept.
	e.clock.add(400*day - 75*time.Minute)
	if err := e.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kept(); len(got) != 2 {
		t.Fatalf("events after 400 days: %q, want both", got)
	}
	e.clock.add(time.Second)
	if err := e.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kept(); len(got) != 1 || got[0] != "younger" {
		t.Fatalf("events after 400 days and a second: %q, want [younger]", got)
	}
}

func TestEventRetentionIsConfigurable(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.EventRetention = 7 * 24 * time.Hour })
	ctx := context.Background()
	if _, err := e.store.Append(ctx, store.Event{Time: e.start, Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	e.clock.add(7*24*time.Hour + time.Second)
	if err := e.srv.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if evs, err := e.store.Events(ctx, store.EventFilter{Kind: "test"}); err != nil || len(evs) != 0 {
		t.Fatalf("events after the retention: %+v, %v", evs, err)
	}
	cfg := e.srv.cfg
	cfg.EventRetention = -time.Hour
	if _, err := New(ctx, cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("negative retention: %v, want ErrConfig", err)
	}
}
