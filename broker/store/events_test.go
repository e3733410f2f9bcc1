package store

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ids(events []Event) []int64 {
	var out []int64
	for _, e := range events {
		out = append(out, e.ID)
	}
	return out
}

func TestEvents(t *testing.T) {
	s, _ := openTest(t)
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	// Ten events a minute apart: participants p0..p2 in turn, kinds
	// connect/disconnect alternately.
	var appended []Event
	for i := range 10 {
		e := Event{
			Time:        t0.Add(time.Duration(i) * time.Minute),
			Kind:        []string{"connect", "disconnect"}[i%2],
			Participant: fmt.Sprintf("p%d", i%3),
			Actor:       "",
			Message:     fmt.Sprintf("event %d", i),
		}
		if i == 4 {
			e.Actor = "admin"
			e.Attrs = map[string]string{"relation": "eng-to-plants", "port": "502"}
		}
		id, err := s.Append(bg, e)
		must(t, err)
		if id != int64(i+1) {
			t.Fatalf("event %d got ID %d", i, id)
		}
		e.ID = id
		appended = append(appended, e)
	}

	all, err := s.Events(bg, EventFilter{})
	must(t, err)
	if !reflect.DeepEqual(all, appended) {
		t.Fatalf("events\n%+v\nwant\n%+v", all, appended)
	}
	for _, tc := range []struct {
		name string
		f    EventFilter
		want []int64
	}{
		{"since", EventFilter{Since: t0.Add(7 * time.Minute)}, []int64{8, 9, 10}},
		{"until", EventFilter{Until: t0.Add(2 * time.Minute)}, []int64{1, 2}},
		{"since and until", EventFilter{Since: t0.Add(3 * time.Minute), Until: t0.Add(5 * time.Minute)}, []int64{4, 5}},
		{"since in another zone", EventFilter{Since: t0.Add(8 * time.Minute).In(time.FixedZone("CET", 3600))}, []int64{9, 10}},
		{"sub-second since", EventFilter{Since: t0.Add(8*time.Minute + time.Nanosecond)}, []int64{10}},
		{"participant", EventFilter{Participant: "p1"}, []int64{2, 5, 8}},
		{"kind", EventFilter{Kind: "disconnect"}, []int64{2, 4, 6, 8, 10}},
		{"participant and kind", EventFilter{Participant: "p0", Kind: "connect"}, []int64{1, 7}},
		{"after", EventFilter{After: 7}, []int64{8, 9, 10}},
		{"limit", EventFilter{Limit: 3}, []int64{1, 2, 3}},
		{"after and limit", EventFilter{After: 3, Limit: 2}, []int64{4, 5}},
		{"negative limit is the default", EventFilter{Limit: -1, After: 8}, []int64{9, 10}},
		{"nothing", EventFilter{Kind: "license"}, nil},
	} {
		got, err := s.Events(bg, tc.f)
		must(t, err)
		if !reflect.DeepEqual(ids(got), tc.want) {
			t.Errorf("%s: IDs %v, want %v", tc.name, ids(got), tc.want)
		}
	}

	// Paging with the cursor visits every event once.
	var paged []int64
	for after := int64(0); ; {
		page, err := s.Events(bg, EventFilter{After: after, Limit: 4})
		must(t, err)
		if len(page) == 0 {
			break
		}
		paged = append(paged, ids(page)...)
		after = page[len(page)-1].ID
	}
	if !reflect.DeepEqual(paged, ids(appended)) {
		t.Fatalf("paged %v", paged)
	}

	// Pruning; IDs are not reused after pruning the newest.
	n, err := s.PruneEvents(bg, t0.Add(5*time.Minute))
	must(t, err)
	if n != 5 {
		t.Fatalf("pruned %d, want 5", n)
	}
	n, err = s.PruneEvents(bg, t0.Add(time.Hour))
	must(t, err)
	if n != 5 {
		t.Fatalf("pruned %d, want 5", n)
	}
	id, err := s.Append(bg, Event{Kind: "license", Message: "now"})
	must(t, err)
	if id != 11 {
		t.Fatalf("ID after pruning %d, want 11", id)
	}
	got, err := s.Events(bg, EventFilter{})
	must(t, err)
	if len(got) != 1 || time.Since(got[0].Time) > time.Minute || got[0].Time.Location() != time.UTC {
		t.Fatalf("event with a zero time: %+v", got)
	}
}

func TestEventsLimit(t *testing.T) {
	s, _ := openTest(t)
	// More than the default limit, appended in one transaction.
	tx, err := s.db.BeginTx(bg, nil)
	must(t, err)
	for i := range DefaultEventLimit + 5 {
		_, err := tx.ExecContext(bg, sqlAppendEvent, formatTime(time.Unix(int64(i), 0)), "k", "", "", "", nil)
		must(t, err)
	}
	must(t, tx.Commit())
	got, err := s.Events(bg, EventFilter{})
	must(t, err)
	if len(got) != DefaultEventLimit {
		t.Fatalf("%d events with the default limit", len(got))
	}
	got, err = s.Events(bg, EventFilter{Limit: MaxEventLimit * 10})
	must(t, err)
	if len(got) != DefaultEventLimit+5 {
		t.Fatalf("%d events with a large limit", len(got))
	}
}

func TestWriteEventsCSV(t *testing.T) {
	events := []Event{
		{
			ID: 42, Time: time.Date(2025, 6, 1, 10, 0, 0, 120000000, time.FixedZone("CEST", 2*3600)),
			Kind: "policy_drop", Participant: "plant-7", Actor: "",
			Message: "dropped \"tcp\" to 10.200.7.10:502, no relation",
			Attrs:   map[string]string{"src": "100.64.0.2", "dst": "10.200.7.10"},
		},
		{ID: 43, Time: time.Date(2025, 6, 1, 8, 0, 1, 0, time.UTC), Kind: "config_change", Actor: "admin", Message: "line 1\nline 2"},
	}
	var b bytes.Buffer
	must(t, WriteEventsCSV(&b, events))
	want := "id,time,kind,participant,actor,message,attrs\n" +
		`42,2025-06-01T08:00:00.12Z,policy_drop,plant-7,,"dropped ""tcp"" to 10.200.7.10:502, no relation","{""dst"":""10.200.7.10"",""src"":""100.64.0.2""}"` + "\n" +
		"43,2025-06-01T08:00:01Z,config_change,,admin,\"line 1\nline 2\",\n"
	if b.String() != want {
		t.Fatalf("CSV\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	must(t, WriteEventsCSV(&b, nil))
	if b.String() != "id,time,kind,participant,actor,message,attrs\n" {
		t.Fatalf("CSV of no events: %q", b.String())
	}
}

// TestEventsCSVNeutralisesFormulas: a field a spreadsheet would evaluate
// (OWASP's CSV injection: "=", "+", "-", "@", tab, carriage return) gets a
// single quote in front, in every column; other fields are unchanged.
func TestEventsCSVNeutralisesFormulas(t *testing.T) {
	at := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	events := []Event{
		{ID: 1, Time: at, Kind: "auth_failure", Participant: "=HYPERLINK(\"http://evil\",\"x\")", Actor: "+cmd|' /C calc'!A0",
			Message: "-2+3", Attrs: map[string]string{"remote": "@SUM(1)"}},
		{ID: 2, Time: at, Kind: "@kind", Participant: "\t=1", Actor: "\r=1", Message: "=1+1"},
		{ID: 3, Time: at, Kind: "login", Participant: "plant-1", Actor: "jane.doe@example.com", Message: "a-b = c"},
	}
	var b bytes.Buffer
	must(t, WriteEventsCSV(&b, events))
	rows, err := csv.NewReader(&b).ReadAll()
	must(t, err)
	want := [][]string{
		{"id", "time", "kind", "participant", "actor", "message", "attrs"},
		{"1", "2025-06-01T08:00:00Z", "auth_failure", "'=HYPERLINK(\"http://evil\",\"x\")", "'+cmd|' /C calc'!A0", "'-2+3", `{"remote":"@SUM(1)"}`},
		{"2", "2025-06-01T08:00:00Z", "'@kind", "'\t=1", "'\r=1", "'=1+1", ""},
		{"3", "2025-06-01T08:00:00Z", "login", "plant-1", "jane.doe@example.com", "a-b = c", ""},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("CSV rows\n%q\nwant\n%q", rows, want)
	}
}

// FuzzEventsCSV: whatever the fields, the CSV has one record per event
// with seven fields, and no field begins like a formula.
func FuzzEventsCSV(f *testing.F) {
	f.Add("=1+1", "-rf", "@x", "\t\r\n\"", "+", "k")
	f.Add("plant-1", "admin", "message", "v", "\x00", "\xed\xa0\x80")
	f.Fuzz(func(t *testing.T, participant, actor, message, attr, key, kind string) {
		e := Event{ID: 7, Time: time.Unix(0, 0), Kind: kind, Participant: participant, Actor: actor, Message: message,
			Attrs: map[string]string{key: attr}}
		var b bytes.Buffer
		if err := WriteEventsCSV(&b, []Event{e}); err != nil {
			return // a field csv cannot write is refused, not written half
		}
		rows, err := csv.NewReader(&b).ReadAll()
		if err != nil {
			t.Fatalf("the CSV does not parse: %v\n%q", err, b.String())
		}
		if len(rows) != 2 || len(rows[1]) != 7 {
			t.Fatalf("%d records for one event: %q", len(rows), rows)
		}
		for _, cell := range rows[1] {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Fatalf("a field begins like a formula: %q", cell)
			}
		}
	})
}

// Newest pages the log from the most recent event back, with Before as the
// cursor, and combines with the other filters.
func TestEventsNewestFirst(t *testing.T) {
	s, _ := openTest(t)
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	for i := range 10 {
		_, err := s.Append(bg, Event{Time: t0.Add(time.Duration(i) * time.Minute), Kind: []string{"connect", "disconnect"}[i%2], Message: fmt.Sprintf("event %d", i)})
		must(t, err)
	}
	got, err := s.Events(bg, EventFilter{Newest: true, Limit: 3})
	must(t, err)
	if want := []int64{10, 9, 8}; !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("newest 3: %v, want %v", ids(got), want)
	}
	got, err = s.Events(bg, EventFilter{Newest: true, Limit: 3, Before: 8})
	must(t, err)
	if want := []int64{7, 6, 5}; !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("the page before 8: %v, want %v", ids(got), want)
	}
	got, err = s.Events(bg, EventFilter{Newest: true, Kind: "connect", Before: 6})
	must(t, err)
	if want := []int64{5, 3, 1}; !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("connect events before 6, newest first: %v, want %v", ids(got), want)
	}
}
