package console

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// page is what every template gets.
type page struct {
	Title string
	// Nav is the navigation for the account (empty when logged out).
	Nav  []navItem
	Acct *account
	// Path is the current page, to mark its navigation entry.
	Path string
	CSRF string
	// Notice is a success message, Error a message that belongs to no
	// field; Errors are messages by field name.
	Notice string
	Error  string
	Errors map[string]string
	// Form refills a form that was refused.
	Form url.Values
	Data any
}

// Err is the message of a field, for templates.
func (p *page) Err(field string) string { return p.Errors[field] }

// Val is a refused form's value of a field, for templates.
func (p *page) Val(field string) string { return p.Form.Get(field) }

type navItem struct {
	Path, Label string
	Current     bool
}

// navFor lists what the account may open: each entry's right is the one
// the API checks for the page's data.
func navFor(a *account, current string) []navItem {
	if a == nil || a.Bootstrap {
		return nil
	}
	all := []struct{ path, label, right string }{
		{"/", "Dashboard", ""},
		{"/participants", "Participants", "view-events"},
		{"/sessions", "Sessions", "view-events"},
		{"/users", "Users", "manage-users"},
		{"/roles", "Roles", "manage-users"},
		{"/devices", "Devices", "manage-devices"},
		{"/groups", "Groups", "manage-groups"},
		{"/relations", "Relations", "manage-groups"},
		{"/certificates", "Certificates", "manage-certificates"},
		{"/events", "Events", "view-events"},
		{"/licenses", "Licenses", "manage-licenses"},
		{"/backup", "Backup", "backup"},
		{"/system", "System", "system-settings"},
	}
	var out []navItem
	for _, n := range all {
		if (n.right == "" && a.Manages()) || (n.right != "" && a.Can(n.right)) {
			out = append(out, navItem{n.path, n.label, current == n.path || (n.path != "/" && strings.HasPrefix(current, n.path+"/"))})
		}
	}
	if a.Can("connect-vpn") {
		out = append(out, navItem{"/profile", "My VPN profile", current == "/profile"})
	}
	return append(out, navItem{"/password", "Password", current == "/password"})
}

// render writes the page with the status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, q *req, status int, name string, p *page) {
	t := c.pages[name]
	if t == nil {
		c.log.Error("console: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if q != nil {
		p.Acct, p.CSRF = q.acct, q.csrf
		p.Nav = navFor(q.acct, r.URL.Path)
	}
	p.Path = r.URL.Path
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("console: render", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage renders a page that says what went wrong, with the status.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, q *req, status int, msg string) {
	title := map[int]string{
		http.StatusForbidden: "Not allowed", http.StatusNotFound: "Not found",
	}[status]
	if title == "" {
		title = http.StatusText(status)
	}
	c.render(w, r, q, status, "error", &page{Title: title, Error: msg, Data: status})
}

// apiFailed renders the page for an API answer that is not a success:
// 401 logs out, 403 and 404 keep their status, others are errors.
func (c *Console) apiFailed(q *req, res *result) {
	switch res.Status {
	case http.StatusUnauthorized:
		c.sess.remove(q.token)
		clearCookie(q.w, sessionCookie)
		c.toLogin(q.w, q.r, "expired")
	case http.StatusForbidden:
		c.errorPage(q.w, q.r, q, http.StatusForbidden, "Your account may not do this: "+res.message())
	case http.StatusNotFound:
		c.errorPage(q.w, q.r, q, http.StatusNotFound, res.message())
	default:
		status := res.Status
		if status < 400 {
			status = http.StatusBadGateway
		}
		c.errorPage(q.w, q.r, q, status, res.message())
	}
}

// redirect answers a successful POST: the browser loads the page anew
// (post/redirect/get), with a notice. The notice travels in the URL with
// its MAC under the process's key, bound to the session, so that only
// this console's own redirects show one.
func (c *Console) redirect(q *req, to, notice string) {
	if notice != "" {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + url.Values{"notice": {notice}, noticeMAC: {c.noticeMAC(q, notice)}}.Encode()
	}
	http.Redirect(q.w, q.r, to, http.StatusSeeOther)
}

// noticeMAC is the query parameter of a notice's MAC.
const noticeMAC = "ns"

func (c *Console) noticeMAC(q *req, notice string) string {
	return c.mac("notice", q.token+"\x00"+notice)
}

// notice is the message a redirect carried, if this console made it for
// this session: a link crafted elsewhere ("…?notice=Your password expired,
// call +49…") shows nothing, rather than words the console never said.
func (c *Console) notice(q *req) string {
	v := q.r.URL.Query()
	n := v.Get("notice")
	if n == "" || !csrfOK(v.Get(noticeMAC), c.noticeMAC(q, n)) {
		return ""
	}
	if len(n) > 300 {
		n = n[:300]
	}
	return n
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ptime": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"bytes": humanBytes,
	"join":  func(s []string) string { return strings.Join(s, ", ") },
	"esc":   url.PathEscape,
	"list":  func(s ...string) []string { return s },
	// dict passes named values to a shared template ("input", ...).
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			if k, ok := kv[i].(string); ok {
				m[k] = kv[i+1]
			}
		}
		return m
	},
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// pageSize is the rows of a table page.
const pageSize = 50

// table is the state of a sorted, paged table: its links keep the rest of
// the query (filters) as they are.
type table struct {
	path  string
	query url.Values
	Sort  string
	Desc  bool
	Page  int // from 1
	Pages int
	Total int
	First int // the number of the first row shown, from 1
	Last  int
}

// SortURL is the link of a column heading: by key, ascending, or
// descending when the table is already sorted ascending by key.
func (t *table) SortURL(key string) string {
	q := cloneValues(t.query)
	q.Set("sort", key)
	q.Del("page")
	if t.Sort == key && !t.Desc {
		q.Set("dir", "desc")
	} else {
		q.Del("dir")
	}
	return t.path + "?" + q.Encode()
}

// AriaSort is the aria-sort value of a column heading.
func (t *table) AriaSort(key string) string {
	switch {
	case t.Sort != key:
		return "none"
	case t.Desc:
		return "descending"
	}
	return "ascending"
}

// Arrow marks the sorted column.
func (t *table) Arrow(key string) string {
	switch {
	case t.Sort != key:
		return ""
	case t.Desc:
		return " ▼"
	}
	return " ▲"
}

// PageURL links to page n.
func (t *table) PageURL(n int) string {
	q := cloneValues(t.query)
	q.Set("page", strconv.Itoa(n))
	return t.path + "?" + q.Encode()
}

func (t *table) Prev() int { return t.Page - 1 }
func (t *table) Next() int {
	if t.Page >= t.Pages {
		return 0
	}
	return t.Page + 1
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// sortPage sorts items by the query's sort key (one of keys, else def),
// and returns the query's page of them.
func sortPage[T any](r *http.Request, items []T, keys map[string]func(a, b *T) int, def string) ([]T, *table) {
	q := r.URL.Query()
	// A notice is said once: sorting and paging links do not repeat it.
	q.Del("notice")
	q.Del(noticeMAC)
	t := &table{path: r.URL.Path, query: q, Sort: q.Get("sort"), Desc: q.Get("dir") == "desc"}
	cmpf, ok := keys[t.Sort]
	if !ok {
		t.Sort, t.Desc, cmpf = def, false, keys[def]
	}
	slices.SortStableFunc(items, func(a, b T) int {
		if t.Desc {
			return cmpf(&b, &a)
		}
		return cmpf(&a, &b)
	})
	t.Total = len(items)
	t.Pages = max(1, (len(items)+pageSize-1)/pageSize)
	t.Page, _ = strconv.Atoi(q.Get("page"))
	t.Page = min(max(t.Page, 1), t.Pages)
	from := (t.Page - 1) * pageSize
	to := min(from+pageSize, len(items))
	t.First, t.Last = from+1, to
	if t.Total == 0 {
		t.First = 0
	}
	return items[from:to], t
}

// byString and byTime make sort keys.
func byString[T any](f func(*T) string) func(a, b *T) int {
	return func(a, b *T) int { return cmp.Compare(f(a), f(b)) }
}

func byTime[T any](f func(*T) time.Time) func(a, b *T) int {
	return func(a, b *T) int { return f(a).Compare(f(b)) }
}
