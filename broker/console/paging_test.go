package console

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// rowNameRE reads the first cell of each row of a participants table.
var rowNameRE = regexp.MustCompile(`<tr><td>([a-z0-9-]+)</td>`)

// TestTablesPageAndSortAt1024: with 1,024 participants the participants
// page shows them 50 at a time, sorted as asked, with the count, and the
// last page holds the rest; a page beyond the last shows the last.
func TestTablesPageAndSortAt1024(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a store with 1,024 participants and 10,000 events")
	}
	e, cookie := benchEnv(t)
	get := func(path string, pageText string) []string {
		t.Helper()
		r := httptest.NewRequest("GET", "https://broker.example"+path, nil)
		r.AddCookie(cookie)
		w := httptest.NewRecorder()
		e.console.ServeHTTP(w, r)
		body := w.Body.String()
		if w.Code != http.StatusOK || !strings.Contains(body, pageText) {
			t.Fatalf("%s: %d, want 200 with %q:\n%.2000s", path, w.Code, pageText, body[strings.Index(body, "<main"):])
		}
		var names []string
		for _, m := range rowNameRE.FindAllStringSubmatch(body, -1) {
			names = append(names, m[1])
		}
		return names
	}
	first := get("/participants", "Page 1 of 21 (1–50 of 1024)")
	if len(first) != 50 || first[0] != "eve" || first[1] != "plant-0000" || first[49] != "plant-0048" {
		t.Errorf("page 1 by name: %d rows %q…%q; want eve, plant-0000…plant-0048", len(first), first[0], first[len(first)-1])
	}
	desc := get("/participants?sort=name&dir=desc", "Page 1 of 21 (1–50 of 1024)")
	if len(desc) != 50 || desc[0] != "user-0511" || desc[1] != "user-0510" {
		t.Errorf("page 1 by name, descending: %d rows starting %q, %q; want user-0511, user-0510", len(desc), desc[0], desc[1])
	}
	last := get("/participants?page=21", "Page 21 of 21 (1001–1024 of 1024)")
	if len(last) != 24 || last[len(last)-1] != "user-0511" {
		t.Errorf("page 21: %d rows ending %q; want the last 24 ending user-0511", len(last), last[len(last)-1])
	}
	if beyond := get("/participants?page=999", "Page 21 of 21 (1001–1024 of 1024)"); len(beyond) != 24 || beyond[0] != last[0] {
		t.Errorf("page 999: %d rows; want the last page", len(beyond))
	}
	byKind := get("/participants?sort=kind", "Page 1 of 21")
	if byKind[0] != "plant-0000" { // devices before users, then by name
		t.Errorf("by kind: first %q", byKind[0])
	}
}
