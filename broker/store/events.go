package store

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Event is one entry of the event log.
type Event struct {
	// ID is assigned by Append; IDs increase and are never reused.
	ID int64
	// Time is when it happened (zero: Append uses the current time).
	Time time.Time
	// Kind classifies the event, e.g. "connect", "disconnect",
	// "auth_failure", "policy_drop", "config_change", "license".
	Kind string
	// Participant is the user or device concerned; may be empty.
	Participant string
	// Actor is who caused it (an administrator's name); may be empty.
	Actor string
	// Message is the human-readable text.
	Message string
	// Attrs are optional details, stored as JSON.
	Attrs map[string]string
}

// Append adds e to the event log and returns its ID.
func (s *Store) Append(ctx context.Context, e Event) (int64, error) {
	var attrs any // NULL without attributes
	if len(e.Attrs) > 0 {
		b, err := json.Marshal(e.Attrs)
		if err != nil {
			return 0, fmt.Errorf("store: append event: %w", err)
		}
		attrs = string(b)
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, sqlAppendEvent, formatTime(s.orNow(e.Time)),
			e.Kind, e.Participant, e.Actor, e.Message, attrs).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("store: append event: %w", err)
	}
	return id, nil
}

// Limits of EventFilter.Limit.
const (
	DefaultEventLimit = 1000
	MaxEventLimit     = 10000
)

// EventFilter selects events. Zero fields do not restrict.
type EventFilter struct {
	// Since and Until bound Time: Since <= Time < Until (zero: open).
	Since, Until time.Time
	// Participant and Kind must match exactly (empty: any).
	Participant, Kind string
	// After is a cursor: only events with a greater ID are returned. Pass
	// the ID of the last event of a page to get the next page.
	After int64
	// Before is the cursor of Newest paging: only events with a smaller ID
	// are returned (zero: no bound). Pass the ID of the last event of a
	// page to get the next, older page.
	Before int64
	// Newest orders the events by ID descending, so that Limit keeps the
	// most recent ones: what a dashboard or a log read from the top shows.
	Newest bool
	// Limit is the largest number of events returned: DefaultEventLimit if
	// zero or negative, at most MaxEventLimit.
	Limit int
}

// Events returns the events f selects, ordered by ID ascending (descending
// with f.Newest).
func (s *Store) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultEventLimit
	case limit > MaxEventLimit:
		limit = MaxEventLimit
	}
	var since, until string
	if !f.Since.IsZero() {
		since = formatTime(f.Since)
	}
	if !f.Until.IsZero() {
		until = formatTime(f.Until)
	}
	q, args := eventsQuery(f.After, f.Before, since, until, f.Participant, f.Kind, limit, f.Newest)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e     Event
			t     string
			attrs sql.NullString
		)
		if err := rows.Scan(&e.ID, &t, &e.Kind, &e.Participant, &e.Actor, &e.Message, &attrs); err != nil {
			return nil, fmt.Errorf("store: events: %w", err)
		}
		if e.Time, err = parseTime(t); err != nil {
			return nil, fmt.Errorf("store: events: event %d: %w", e.ID, err)
		}
		if attrs.Valid && attrs.String != "" {
			if err := json.Unmarshal([]byte(attrs.String), &e.Attrs); err != nil {
				return nil, fmt.Errorf("store: events: event %d: bad stored attributes: %w", e.ID, err)
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	return out, nil
}

// PruneEvents removes the events that happened before the given time and
// returns how many it removed.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlPruneEvents, formatTime(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune events: %w", err)
	}
	return n, nil
}

// WriteEventsCSV writes events as CSV (RFC 4180) with the header
// id,time,kind,participant,actor,message,attrs: times in UTC as RFC 3339 with
// nanoseconds, attributes as a JSON object (empty field if none).
//
// A field that begins with "=", "+", "-", "@", a tab or a carriage return
// is written with a single quote in front ("'=1+1"), as OWASP advises
// against CSV injection: a spreadsheet would otherwise evaluate it as a
// formula. Event fields carry what peers and users chose (a certificate's
// common name, a login name), so every field is treated so.
func WriteEventsCSV(w io.Writer, events []Event) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"id", "time", "kind", "participant", "actor", "message", "attrs"}); err != nil {
		return fmt.Errorf("store: write events CSV: %w", err)
	}
	for _, e := range events {
		var attrs string
		if len(e.Attrs) > 0 {
			b, err := json.Marshal(e.Attrs)
			if err != nil {
				return fmt.Errorf("store: write events CSV: %w", err)
			}
			attrs = string(b)
		}
		rec := []string{strconv.FormatInt(e.ID, 10), e.Time.UTC().Format(time.RFC3339Nano),
			e.Kind, e.Participant, e.Actor, e.Message, attrs}
		for i := range rec {
			rec[i] = csvCell(rec[i])
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("store: write events CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("store: write events CSV: %w", err)
	}
	return nil
}

// csvCell neutralises a field a spreadsheet would take for a formula.
func csvCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
