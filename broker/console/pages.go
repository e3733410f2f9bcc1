package console

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// need renders the 403 page unless the account holds the right, for the
// pages that read nothing from the API (a form, a confirmation) before the
// POST that the API checks: the right is the one the API's route table
// gives that POST, and the account's rights are the API's answer.
func (c *Console) need(q *req, right policy.Rights) bool {
	if q.acct.rights&right == right {
		return true
	}
	c.errorPage(q.w, q.r, q, http.StatusForbidden, fmt.Sprintf("Your account may not do this: %q lacks the right %s.", q.acct.Name, right))
	return false
}

// exists renders the API's refusal (403, 404) unless reading the entry at
// apiPath succeeds: a confirmation page asks about something the account
// may see, with the right of the change it confirms.
func (c *Console) exists(q *req, apiPath string) bool {
	res := c.api(q.r, q.token, "GET", apiPath, nil)
	if !res.ok() {
		c.apiFailed(q, res)
		return false
	}
	return true
}

// contains reports whether msg contains any of words, ignoring case.
func contains(msg string, words ...string) bool {
	m := strings.ToLower(msg)
	for _, w := range words {
		if strings.Contains(m, strings.ToLower(w)) {
			return true
		}
	}
	return false
}

// fieldOf maps an API message to the form field it is about: the first of
// fields[1:] whose name (underscores read as spaces) the message mentions,
// else fields[0].
func fieldOf(msg string, fields ...string) string {
	for _, f := range fields[1:] {
		if contains(msg, f, strings.ReplaceAll(f, "_", " ")) {
			return f
		}
	}
	return fields[0]
}

// The API's views, as the console reads them.

type participantJSON struct {
	Name    string      `json:"name"`
	Kind    string      `json:"kind"`
	Status  string      `json:"status"`
	Address *netip.Addr `json:"address"`
}

type sessionJSON struct {
	Participant string    `json:"participant"`
	Protocol    string    `json:"protocol"`
	Remote      string    `json:"remote"`
	Address     string    `json:"address"`
	Since       time.Time `json:"since"`
	BytesIn     uint64    `json:"bytes_in"`
	BytesOut    uint64    `json:"bytes_out"`
}

type eventJSON struct {
	ID          int64             `json:"id"`
	Time        time.Time         `json:"time"`
	Kind        string            `json:"kind"`
	Participant string            `json:"participant"`
	Actor       string            `json:"actor"`
	Message     string            `json:"message"`
	Attrs       map[string]string `json:"attrs"`
}

type licenseJSON struct {
	Number       string     `json:"number"`
	Edition      string     `json:"edition"`
	Participants int        `json:"participants"`
	Issued       string     `json:"issued"`
	Expires      string     `json:"expires"`
	Activated    time.Time  `json:"activated"`
	Released     *time.Time `json:"released"`
	State        string     `json:"state"`
}

type licensesJSON struct {
	Installation string        `json:"installation"`
	Capacity     int           `json:"capacity"`
	Description  string        `json:"description"`
	InUse        int           `json:"participants"`
	Licenses     []licenseJSON `json:"licenses"`
}

type deviceJSON struct {
	Name     string          `json:"name"`
	Groups   []string        `json:"groups,omitempty"`
	Disabled bool            `json:"disabled,omitempty"`
	Networks []store.Network `json:"networks,omitempty"`
	Created  time.Time       `json:"created,omitzero"`
	Status   string          `json:"-"`
}

type certJSON struct {
	Serial     string     `json:"serial"`
	CommonName string     `json:"common_name"`
	Profile    string     `json:"profile"`
	NotBefore  time.Time  `json:"not_before"`
	NotAfter   time.Time  `json:"not_after"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Reason     *int       `json:"reason"`
}

// row is a participant with its live session, if any.
type row struct {
	Name, Kind, Status, Address string
	Protocol, Remote            string
	Since                       time.Time
	BytesIn, BytesOut           uint64
}

var rowKeys = map[string]func(a, b *row) int{
	"name":    byString(func(r *row) string { return r.Name }),
	"kind":    byString(func(r *row) string { return r.Kind + "\x00" + r.Name }),
	"status":  byString(func(r *row) string { return r.Status + "\x00" + r.Name }),
	"address": func(a, b *row) int { return compareAddr(a.Address, b.Address) },
	"since":   byTime(func(r *row) time.Time { return r.Since }),
	"bytes": func(a, b *row) int {
		return cmp.Compare(a.BytesIn+a.BytesOut, b.BytesIn+b.BytesOut)
	},
}

func compareAddr(a, b string) int {
	x, errx := netip.ParseAddr(a)
	y, erry := netip.ParseAddr(b)
	switch {
	case errx != nil && erry != nil:
		return 0
	case errx != nil:
		return 1
	case erry != nil:
		return -1
	}
	return x.Compare(y)
}

// participants reads the participants and their sessions from the API.
func (c *Console) participants(q *req) ([]row, *result) {
	res := c.api(q.r, q.token, "GET", "/api/v1/participants", nil)
	var ps []participantJSON
	if !res.decode(&ps) {
		return nil, res
	}
	sres := c.api(q.r, q.token, "GET", "/api/v1/sessions", nil)
	var ss []sessionJSON
	if !sres.decode(&ss) {
		return nil, sres
	}
	byName := make(map[string]*sessionJSON, len(ss))
	for i := range ss {
		byName[ss[i].Participant] = &ss[i]
	}
	rows := make([]row, 0, len(ps))
	for _, p := range ps {
		r := row{Name: p.Name, Kind: p.Kind, Status: p.Status}
		if p.Address != nil {
			r.Address = p.Address.String()
		}
		if s := byName[p.Name]; s != nil {
			r.Protocol, r.Remote, r.Since, r.BytesIn, r.BytesOut = s.Protocol, s.Remote, s.Since, s.BytesIn, s.BytesOut
		}
		rows = append(rows, r)
	}
	return rows, nil
}

type participantsData struct {
	Rows            []row
	Table           *table
	Online, Offline int
	Links           bool // profile links (manage-certificates)
}

func (c *Console) participantsData(q *req, rows []row) *participantsData {
	d := &participantsData{Links: q.acct.Can("manage-certificates")}
	for _, r := range rows {
		if r.Status == "online" {
			d.Online++
		} else {
			d.Offline++
		}
	}
	d.Rows, d.Table = sortPage(q.r, rows, rowKeys, "name")
	return d
}

type dashboardData struct {
	Participants *participantsData
	Licenses     *licensesJSON
	Events       []eventJSON
}

// dashboard shows what the account's API calls return: each part only if
// its call succeeded. An account that manages nothing has its profile.
func (c *Console) dashboard(q *req) {
	if !q.acct.Manages() {
		http.Redirect(q.w, q.r, "/profile", http.StatusSeeOther)
		return
	}
	var d dashboardData
	if rows, res := c.participants(q); res == nil {
		d.Participants = c.participantsData(q, rows)
	}
	var lic licensesJSON
	if c.api(q.r, q.token, "GET", "/api/v1/licenses", nil).decode(&lic) {
		d.Licenses = &lic
	}
	c.api(q.r, q.token, "GET", "/api/v1/events?order=newest&limit=10", nil).decode(&d.Events)
	c.render(q.w, q.r, q, http.StatusOK, "dashboard", &page{Title: "Dashboard", Data: d})
}

func (c *Console) participantsPage(q *req) {
	rows, res := c.participants(q)
	if res != nil {
		c.apiFailed(q, res)
		return
	}
	c.render(q.w, q.r, q, http.StatusOK, "participants", &page{Title: "Participants", Data: c.participantsData(q, rows)})
}

func (c *Console) profilePage(q *req) {
	if !c.need(q, policy.RightManageCertificates) {
		return
	}
	name := q.r.PathValue("name")
	c.render(q.w, q.r, q, http.StatusOK, "profile", &page{Title: "Profile of " + name,
		Data: profileData{Name: name, Formats: profileFormats, Action: "/participants/" + url.PathEscape(name) + "/profile"}})
}

func (c *Console) profilePost(q *req) {
	name := q.r.PathValue("name")
	c.profileDownload(q, "/api/v1/participants/"+esc(name)+"/profile", "Profile of "+name, name, "/participants/"+url.PathEscape(name)+"/profile")
}

// Sessions.

func (c *Console) sessionsPage(q *req) {
	res := c.api(q.r, q.token, "GET", "/api/v1/sessions", nil)
	var ss []sessionJSON
	if !res.decode(&ss) {
		c.apiFailed(q, res)
		return
	}
	rows := make([]row, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, row{Name: s.Participant, Status: "online", Address: s.Address, Protocol: s.Protocol, Remote: s.Remote, Since: s.Since, BytesIn: s.BytesIn, BytesOut: s.BytesOut})
	}
	d := &participantsData{Online: len(rows)}
	d.Rows, d.Table = sortPage(q.r, rows, rowKeys, "name")
	c.render(q.w, q.r, q, http.StatusOK, "sessions", &page{Title: "Live sessions", Notice: c.notice(q), Data: d})
}

// confirmData is a confirmation page's question and form.
type confirmData struct {
	Question, Detail, Action, Button, Back string
	Reasons                                bool // revocation reasons
}

func (c *Console) confirm(q *req, title string, d confirmData) {
	c.render(q.w, q.r, q, http.StatusOK, "confirm", &page{Title: title, Data: d})
}

func (c *Console) terminateConfirm(q *req) {
	if !c.need(q, policy.RightSystemSettings) {
		return
	}
	name := q.r.PathValue("participant")
	c.confirm(q, "Terminate a session", confirmData{
		Question: fmt.Sprintf("Terminate the session of %s?", name),
		Detail:   "The tunnel drops at once; the participant may connect again unless it is disabled or its certificate revoked.",
		Action:   q.r.URL.Path, Button: "Terminate", Back: "/sessions"})
}

func (c *Console) terminatePost(q *req) {
	name := q.r.PathValue("participant")
	res := c.api(q.r, q.token, "DELETE", "/api/v1/sessions/"+esc(name), nil)
	if !res.ok() {
		c.apiFailed(q, res)
		return
	}
	c.redirect(q, "/sessions", "Terminated the session of "+name+".")
}

// Deleting a named entry: a confirmation page, then the API's DELETE.

func (c *Console) deleteConfirm(kind, back, apiPrefix string) func(*req) {
	return func(q *req) {
		name := q.r.PathValue("name")
		if !c.exists(q, apiPrefix+esc(name)) {
			return
		}
		c.confirm(q, "Delete a "+kind, confirmData{
			Question: fmt.Sprintf("Delete the %s %s?", kind, name),
			Detail:   "This cannot be undone.",
			Action:   q.r.URL.Path, Button: "Delete", Back: back + "/" + url.PathEscape(name)})
	}
}

func (c *Console) deletePost(kind, back, apiPrefix string) func(*req) {
	return func(q *req) {
		name := q.r.PathValue("name")
		res := c.api(q.r, q.token, "DELETE", apiPrefix+esc(name), nil)
		if res.Status == http.StatusConflict {
			c.render(q.w, q.r, q, res.Status, "confirm", &page{Title: "Delete a " + kind, Error: res.message(),
				Data: confirmData{Question: fmt.Sprintf("Delete the %s %s?", kind, name), Action: q.r.URL.Path, Button: "Delete", Back: back}})
			return
		}
		if !res.ok() {
			c.apiFailed(q, res)
			return
		}
		c.redirect(q, back, fmt.Sprintf("Deleted the %s %s.", kind, name))
	}
}

// Users.

type usersData struct {
	Users []policy.User
	Table *table
	Roles []string
	User  *policy.User // the one shown
	Certs []certJSON
}

var userKeys = map[string]func(a, b *policy.User) int{
	"name":    byString(func(u *policy.User) string { return u.Name }),
	"created": byTime(func(u *policy.User) time.Time { return u.Created }),
	"roles":   byString(func(u *policy.User) string { return strings.Join(u.Roles, ",") }),
}

// roleNames lists the roles to choose from: the predefined and the
// model's.
func (c *Console) roleNames(q *req) []string {
	names := []string{policy.RoleAdmin, policy.RoleVPNUser}
	var roles []policy.Role
	if c.api(q.r, q.token, "GET", "/api/v1/roles", nil).decode(&roles) {
		for _, r := range roles {
			names = append(names, r.Name)
		}
	}
	return names
}

func (c *Console) usersPage(q *req) { c.usersRender(q, http.StatusOK, &page{Notice: c.notice(q)}) }

func (c *Console) usersRender(q *req, status int, p *page) {
	res := c.api(q.r, q.token, "GET", "/api/v1/users", nil)
	var us []policy.User
	if !res.decode(&us) {
		c.apiFailed(q, res)
		return
	}
	d := &usersData{Roles: c.roleNames(q)}
	d.Users, d.Table = sortPage(q.r, us, userKeys, "name")
	p.Title, p.Data = "Users", d
	c.render(q.w, q.r, q, status, "users", p)
}

// submit makes a form's change through the API. On success it redirects
// to next with the notice. A refusal the form can explain (400, 409, and
// the statuses in also) renders the form again through render, with the
// typed values and the API's message next to the field errorsOf picks;
// any other failure is the error page.
func (c *Console) submit(q *req, method, path string, body any, render func(*req, int, *page), errorsOf func(msg string) map[string]string, next, notice string, also ...int) {
	res := c.api(q.r, q.token, method, path, body)
	if res.ok() {
		c.redirect(q, next, notice)
		return
	}
	if res.Status != http.StatusBadRequest && res.Status != http.StatusConflict && !slices.Contains(also, res.Status) {
		c.apiFailed(q, res)
		return
	}
	render(q, res.Status, &page{Form: q.r.PostForm, Errors: errorsOf(res.message())})
}

func (c *Console) userCreate(q *req) {
	f := q.r.PostForm
	body := map[string]any{"name": f.Get("name"), "roles": splitList(f.Get("roles")), "groups": splitList(f.Get("groups")),
		"disabled": f.Get("disabled") != "", "password": f.Get("password")}
	c.submit(q, "POST", "/api/v1/users", body, c.usersRender,
		func(msg string) map[string]string {
			return map[string]string{fieldOf(msg, "name", "password", "roles", "groups", "role", "group"): msg}
		},
		"/users", "Created the user "+f.Get("name")+".")
}

func (c *Console) userPage(q *req) { c.userRender(q, http.StatusOK, &page{Notice: c.notice(q)}) }

func (c *Console) userRender(q *req, status int, p *page) {
	name := q.r.PathValue("name")
	res := c.api(q.r, q.token, "GET", "/api/v1/users/"+esc(name), nil)
	var u policy.User
	if !res.decode(&u) {
		c.apiFailed(q, res)
		return
	}
	d := &usersData{User: &u, Roles: c.roleNames(q)}
	var certs []certJSON
	if c.api(q.r, q.token, "GET", "/api/v1/certificates", nil).decode(&certs) {
		for _, ct := range certs {
			if ct.CommonName == name {
				d.Certs = append(d.Certs, ct)
			}
		}
	}
	p.Title, p.Data = "User "+name, d
	c.render(q.w, q.r, q, status, "user", p)
}

// fixErrors maps "group"/"role" mentions to the plural fields.
func fixErrors(m map[string]string) map[string]string {
	for from, to := range map[string]string{"group": "groups", "role": "roles"} {
		if v, ok := m[from]; ok {
			delete(m, from)
			m[to] = v
		}
	}
	return m
}

func (c *Console) userUpdate(q *req) {
	name, f := q.r.PathValue("name"), q.r.PostForm
	body := policy.User{Name: name, Roles: splitList(f.Get("roles")), Groups: splitList(f.Get("groups")), Disabled: f.Get("disabled") != ""}
	c.submit(q, "PUT", "/api/v1/users/"+esc(name), body, c.userRender,
		func(msg string) map[string]string {
			return fixErrors(map[string]string{fieldOf(msg, "roles", "groups", "group", "role"): msg})
		},
		"/users/"+url.PathEscape(name), "Saved the user "+name+".")
}

func (c *Console) userPassword(q *req) {
	name, f := q.r.PathValue("name"), q.r.PostForm
	if f.Get("password") != f.Get("password2") {
		c.userRender(q, http.StatusBadRequest, &page{Errors: map[string]string{"password2": "The two passwords differ."}})
		return
	}
	res := c.api(q.r, q.token, "PUT", "/api/v1/users/"+esc(name)+"/password", map[string]string{"password": f.Get("password")})
	if !res.ok() {
		if res.Status != http.StatusBadRequest {
			c.apiFailed(q, res)
			return
		}
		c.userRender(q, res.Status, &page{Errors: map[string]string{"password": res.message()}})
		return
	}
	c.redirect(q, "/users/"+url.PathEscape(name), "Set the password of "+name+"; its sessions ended.")
}

// Roles.

// rightList is every right, for the role form.
func rightList() []string {
	var out []string
	for i := 0; policy.Rights(1<<i)&policy.AllRights != 0; i++ {
		out = append(out, policy.Rights(1<<i).String())
	}
	return out
}

type roleRow struct {
	Name   string
	Rights []string
}

type rolesData struct {
	Roles  []roleRow
	All    []string
	Role   *roleRow
	Rights map[string]bool
}

func rightsOf(r policy.Rights) []string {
	var out []string
	for _, n := range rightList() {
		if x, _ := policy.ParseRight(n); r&x != 0 {
			out = append(out, n)
		}
	}
	return out
}

func (c *Console) rolesPage(q *req) { c.rolesRender(q, http.StatusOK, &page{Notice: c.notice(q)}) }

func (c *Console) rolesRender(q *req, status int, p *page) {
	res := c.api(q.r, q.token, "GET", "/api/v1/roles", nil)
	var rs []policy.Role
	if !res.decode(&rs) {
		c.apiFailed(q, res)
		return
	}
	d := &rolesData{All: rightList(), Roles: []roleRow{
		{policy.RoleAdmin, []string{"every right (predefined)"}},
		{policy.RoleVPNUser, []string{policy.RightConnectVPN.String() + " (predefined)"}}}}
	for _, r := range rs {
		d.Roles = append(d.Roles, roleRow{r.Name, rightsOf(r.Rights)})
	}
	d.Rights = map[string]bool{}
	for _, n := range p.Form["right"] {
		d.Rights[n] = true
	}
	p.Title, p.Data = "Roles and rights", d
	c.render(q.w, q.r, q, status, "roles", p)
}

// roleBody reads the role form.
func roleBody(name string, f url.Values) (map[string]any, string) {
	rights := []string{}
	for _, n := range f["right"] {
		if _, err := policy.ParseRight(n); err != nil {
			return nil, err.Error()
		}
		rights = append(rights, n)
	}
	return map[string]any{"name": name, "rights": rights}, ""
}

func (c *Console) roleCreate(q *req) {
	f := q.r.PostForm
	body, bad := roleBody(f.Get("name"), f)
	if bad != "" {
		c.rolesRender(q, http.StatusBadRequest, &page{Form: f, Errors: map[string]string{"rights": bad}})
		return
	}
	c.submit(q, "POST", "/api/v1/roles", body, c.rolesRender,
		func(msg string) map[string]string {
			return map[string]string{fieldOf(msg, "name", "rights", "right"): msg}
		},
		"/roles", "Created the role "+f.Get("name")+".", http.StatusForbidden)
}

func (c *Console) rolePage(q *req) { c.roleRender(q, http.StatusOK, &page{Notice: c.notice(q)}) }

func (c *Console) roleRender(q *req, status int, p *page) {
	name := q.r.PathValue("name")
	res := c.api(q.r, q.token, "GET", "/api/v1/roles/"+esc(name), nil)
	var r policy.Role
	if !res.decode(&r) {
		c.apiFailed(q, res)
		return
	}
	d := &rolesData{All: rightList(), Role: &roleRow{r.Name, rightsOf(r.Rights)}, Rights: map[string]bool{}}
	for _, n := range d.Role.Rights {
		d.Rights[n] = true
	}
	p.Title, p.Data = "Role "+name, d
	c.render(q.w, q.r, q, status, "role", p)
}

func (c *Console) roleUpdate(q *req) {
	name := q.r.PathValue("name")
	body, bad := roleBody(name, q.r.PostForm)
	if bad != "" {
		c.roleRender(q, http.StatusBadRequest, &page{Errors: map[string]string{"rights": bad}})
		return
	}
	res := c.api(q.r, q.token, "PUT", "/api/v1/roles/"+esc(name), body)
	if !res.ok() {
		if res.Status == http.StatusBadRequest || res.Status == http.StatusConflict {
			c.roleRender(q, res.Status, &page{Errors: map[string]string{"rights": res.message()}})
			return
		}
		c.apiFailed(q, res)
		return
	}
	c.redirect(q, "/roles/"+url.PathEscape(name), "Saved the role "+name+".")
}

// Devices.

type devicesData struct {
	Devices []deviceJSON
	Table   *table
	Device  *deviceJSON
	Status  bool // the status column (view-events)
	// Enrollment is a one-time EST token just created for Device, shown
	// this once.
	Enrollment *enrollmentJSON
}

// enrollmentJSON is the API's answer to a new enrollment token.
type enrollmentJSON struct {
	Device  string    `json:"device"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	Path    string    `json:"path"`
}

var deviceKeys = map[string]func(a, b *deviceJSON) int{
	"name":    byString(func(d *deviceJSON) string { return d.Name }),
	"created": byTime(func(d *deviceJSON) time.Time { return d.Created }),
	"status":  byString(func(d *deviceJSON) string { return d.Status + "\x00" + d.Name }),
}

// networksText writes networks as the form reads them.
func networksText(nets []store.Network) string {
	var b strings.Builder
	for _, n := range nets {
		b.WriteString(n.LAN.String())
		if n.Alias.IsValid() {
			b.WriteString(" as " + n.Alias.String())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// parseNetworks reads one network a line: "192.168.0.0/24", or with an
// alias "192.168.0.0/24 as 10.100.1.0/24" ("->", "=" and a space also
// separate).
func parseNetworks(text string) ([]store.Network, error) {
	var out []store.Network
	for i, line := range strings.Split(text, "\n") {
		fields := strings.Fields(strings.NewReplacer("->", " ", "=", " ", " as ", " ").Replace(" " + strings.TrimSpace(line) + " "))
		if len(fields) == 0 {
			continue
		}
		if len(fields) > 2 {
			return nil, fmt.Errorf("line %d: want a LAN prefix and optionally its alias, e.g. 192.168.0.0/24 as 10.100.1.0/24", i+1)
		}
		var n store.Network
		var err error
		if n.LAN, err = netip.ParsePrefix(fields[0]); err != nil {
			return nil, fmt.Errorf("line %d: LAN %q is not a prefix like 192.168.0.0/24", i+1, fields[0])
		}
		if len(fields) == 2 {
			if n.Alias, err = netip.ParsePrefix(fields[1]); err != nil {
				return nil, fmt.Errorf("line %d: alias %q is not a prefix like 10.100.1.0/24", i+1, fields[1])
			}
		}
		out = append(out, n)
	}
	return out, nil
}

func (c *Console) devicesPage(q *req) { c.devicesRender(q, http.StatusOK, &page{Notice: c.notice(q)}) }

// statuses reads the participants' states, if the account may.
func (c *Console) statuses(q *req) map[string]string {
	var ps []participantJSON
	if !c.api(q.r, q.token, "GET", "/api/v1/participants", nil).decode(&ps) {
		return nil
	}
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.Name] = p.Status
	}
	return m
}

func (c *Console) devicesRender(q *req, status int, p *page) {
	res := c.api(q.r, q.token, "GET", "/api/v1/devices", nil)
	var ds []deviceJSON
	if !res.decode(&ds) {
		c.apiFailed(q, res)
		return
	}
	d := &devicesData{}
	if st := c.statuses(q); st != nil {
		d.Status = true
		for i := range ds {
			ds[i].Status = st[ds[i].Name]
		}
	}
	d.Devices, d.Table = sortPage(q.r, ds, deviceKeys, "name")
	p.Title, p.Data = "Devices", d
	c.render(q.w, q.r, q, status, "devices", p)
}

func deviceBody(name string, f url.Values) (*deviceJSON, map[string]string) {
	nets, err := parseNetworks(f.Get("networks"))
	if err != nil {
		return nil, map[string]string{"networks": err.Error()}
	}
	return &deviceJSON{Name: name, Groups: splitList(f.Get("groups")), Disabled: f.Get("disabled") != "", Networks: nets}, nil
}

var deviceFields = []string{"name", "networks", "groups", "alias", "lan", "group", "prefix", "route", "overlap"}

func deviceErrors(msg string) map[string]string {
	f := fieldOf(msg, deviceFields...)
	switch f {
	case "alias", "lan", "prefix", "route", "overlap":
		f = "networks"
	case "group":
		f = "groups"
	}
	return map[string]string{f: msg}
}

func (c *Console) deviceCreate(q *req) {
	f := q.r.PostForm
	body, bad := deviceBody(f.Get("name"), f)
	if bad != nil {
		c.devicesRender(q, http.StatusBadRequest, &page{Form: f, Errors: bad})
		return
	}
	c.submit(q, "POST", "/api/v1/devices", body, c.devicesRender, deviceErrors,
		"/devices", "Created the device "+f.Get("name")+".")
}

func (c *Console) devicePage(q *req) { c.deviceRender(q, http.StatusOK, &page{Notice: c.notice(q)}) }

func (c *Console) deviceRender(q *req, status int, p *page) {
	name := q.r.PathValue("name")
	res := c.api(q.r, q.token, "GET", "/api/v1/devices/"+esc(name), nil)
	var dv deviceJSON
	if !res.decode(&dv) {
		c.apiFailed(q, res)
		return
	}
	if st := c.statuses(q); st != nil {
		dv.Status = st[name]
	}
	if p.Form == nil {
		p.Form = url.Values{"groups": {strings.Join(dv.Groups, ", ")}, "networks": {networksText(dv.Networks)}}
		if dv.Disabled {
			p.Form.Set("disabled", "on")
		}
	}
	data := &devicesData{Device: &dv}
	if e, ok := p.Data.(*enrollmentJSON); ok {
		data.Enrollment = e
	}
	p.Title, p.Data = "Device "+name, data
	c.render(q.w, q.r, q, status, "device", p)
}

// deviceEnrollment creates a one-time token with which the device enrols
// over EST (docs/ENROLLMENT.md) and shows it this once, with the URL the
// device posts its CSR to.
func (c *Console) deviceEnrollment(q *req) {
	name := q.r.PathValue("name")
	res := c.api(q.r, q.token, "POST", "/api/v1/devices/"+esc(name)+"/enrollment", nil)
	var e enrollmentJSON
	if !res.decode(&e) {
		c.apiFailed(q, res)
		return
	}
	e.Path = "https://" + q.r.Host + e.Path
	c.deviceRender(q, http.StatusOK, &page{Data: &e})
}

func (c *Console) deviceUpdate(q *req) {
	name, f := q.r.PathValue("name"), q.r.PostForm
	body, bad := deviceBody(name, f)
	if bad != nil {
		c.deviceRender(q, http.StatusBadRequest, &page{Form: f, Errors: bad})
		return
	}
	c.submit(q, "PUT", "/api/v1/devices/"+esc(name), body, c.deviceRender, deviceErrors,
		"/devices/"+url.PathEscape(name), "Saved the device "+name+".", http.StatusForbidden)
}

// Groups.

type groupsData struct {
	Groups []policy.Group
	Group  *policy.Group
}

func (c *Console) groupsPage(q *req) { c.groupsRender(q, http.StatusOK, &page{Notice: c.notice(q)}) }

func (c *Console) groupsRender(q *req, status int, p *page) {
	res := c.api(q.r, q.token, "GET", "/api/v1/groups", nil)
	var gs []policy.Group
	if !res.decode(&gs) {
		c.apiFailed(q, res)
		return
	}
	slices.SortFunc(gs, func(a, b policy.Group) int { return cmp.Compare(a.Name, b.Name) })
	p.Title, p.Data = "Participant groups", &groupsData{Groups: gs}
	c.render(q.w, q.r, q, status, "groups", p)
}

func groupBody(name string, f url.Values) policy.Group {
	return policy.Group{Name: name, Subgroups: splitList(f.Get("subgroups")), Intra: f.Get("intra") != ""}
}

func (c *Console) groupCreate(q *req) {
	f := q.r.PostForm
	c.submit(q, "POST", "/api/v1/groups", groupBody(f.Get("name"), f), c.groupsRender,
		func(msg string) map[string]string {
			field := fieldOf(msg, "name", "subgroup", "cycle")
			if field != "name" {
				field = "subgroups"
			}
			return map[string]string{field: msg}
		},
		"/groups", "Created the group "+f.Get("name")+".")
}

func (c *Console) groupPage(q *req) { c.groupRender(q, http.StatusOK, &page{Notice: c.notice(q)}) }

func (c *Console) groupRender(q *req, status int, p *page) {
	name := q.r.PathValue("name")
	res := c.api(q.r, q.token, "GET", "/api/v1/groups/"+esc(name), nil)
	var g policy.Group
	if !res.decode(&g) {
		c.apiFailed(q, res)
		return
	}
	if p.Form == nil {
		p.Form = url.Values{"subgroups": {strings.Join(g.Subgroups, ", ")}}
		if g.Intra {
			p.Form.Set("intra", "on")
		}
	}
	p.Title, p.Data = "Group "+name, &groupsData{Group: &g}
	c.render(q.w, q.r, q, status, "group", p)
}

func (c *Console) groupUpdate(q *req) {
	name, f := q.r.PathValue("name"), q.r.PostForm
	c.submit(q, "PUT", "/api/v1/groups/"+esc(name), groupBody(name, f), c.groupRender,
		func(msg string) map[string]string {
			return map[string]string{"subgroups": msg}
		},
		"/groups/"+url.PathEscape(name), "Saved the group "+name+".")
}

// Relations.

type relationRow struct {
	policy.Relation
	ServicesText string
}

type relationsData struct {
	Relations []relationRow
	Relation  *relationRow
	Groups    []string
}

// formTime is the value of a datetime-local input, read and written in
// UTC.
const formTime = "2006-01-02T15:04"

func relationBody(name string, f url.Values) (*policy.Relation, map[string]string) {
	rel := &policy.Relation{Name: name, From: f.Get("from"), To: f.Get("to"), Disabled: f.Get("disabled") != ""}
	errs := map[string]string{}
	switch f.Get("direction") {
	case "both":
		rel.Direction = policy.Both
	case "one-way", "":
	default:
		errs["direction"] = "Choose one-way or both."
	}
	for _, s := range splitList(f.Get("services")) {
		svc, err := policy.ParseService(s)
		if err != nil {
			errs["services"] = err.Error()
			break
		}
		rel.Services = append(rel.Services, svc)
	}
	for _, t := range []struct {
		field string
		dst   *time.Time
	}{{"not_before", &rel.NotBefore}, {"not_after", &rel.NotAfter}} {
		if v := strings.TrimSpace(f.Get(t.field)); v != "" {
			at, err := time.Parse(formTime, v)
			if err != nil {
				errs[t.field] = "Want a date and time like 2025-06-01T08:00 (UTC)."
				continue
			}
			*t.dst = at
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return rel, nil
}

func servicesText(ss []policy.Service) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.String())
	}
	return strings.Join(out, ", ")
}

func relationForm(r *policy.Relation) url.Values {
	f := url.Values{"from": {r.From}, "to": {r.To}, "direction": {r.Direction.String()}, "services": {servicesText(r.Services)}}
	if !r.NotBefore.IsZero() {
		f.Set("not_before", r.NotBefore.UTC().Format(formTime))
	}
	if !r.NotAfter.IsZero() {
		f.Set("not_after", r.NotAfter.UTC().Format(formTime))
	}
	if r.Disabled {
		f.Set("disabled", "on")
	}
	return f
}

var relationFields = []string{"name", "services", "service", "from", "to", "direction", "not_before", "not_after", "group"}

func relationErrors(msg string) map[string]string {
	f := fieldOf(msg, relationFields...)
	switch f {
	case "service":
		f = "services"
	case "group":
		f = "from"
	}
	return map[string]string{f: msg}
}

// groupNames lists the groups to choose from, if the account may read
// them (the same right as relations).
func (c *Console) groupNames(q *req) []string {
	names := []string{policy.GroupVPNUser}
	var gs []policy.Group
	if c.api(q.r, q.token, "GET", "/api/v1/groups", nil).decode(&gs) {
		for _, g := range gs {
			names = append(names, g.Name)
		}
	}
	slices.Sort(names)
	return names
}

func (c *Console) relationsPage(q *req) {
	c.relationsRender(q, http.StatusOK, &page{Notice: c.notice(q), Form: url.Values{"direction": {"one-way"}}})
}

func (c *Console) relationsRender(q *req, status int, p *page) {
	res := c.api(q.r, q.token, "GET", "/api/v1/relations", nil)
	var rs []policy.Relation
	if !res.decode(&rs) {
		c.apiFailed(q, res)
		return
	}
	d := &relationsData{Groups: c.groupNames(q)}
	for _, r := range rs {
		d.Relations = append(d.Relations, relationRow{r, servicesText(r.Services)})
	}
	slices.SortFunc(d.Relations, func(a, b relationRow) int { return cmp.Compare(a.Name, b.Name) })
	p.Title, p.Data = "Communication relations", d
	c.render(q.w, q.r, q, status, "relations", p)
}

func (c *Console) relationCreate(q *req) {
	f := q.r.PostForm
	rel, bad := relationBody(f.Get("name"), f)
	if bad != nil {
		c.relationsRender(q, http.StatusBadRequest, &page{Form: f, Errors: bad})
		return
	}
	c.submit(q, "POST", "/api/v1/relations", rel, c.relationsRender, relationErrors,
		"/relations", "Created the relation "+f.Get("name")+".")
}

func (c *Console) relationPage(q *req) {
	c.relationRender(q, http.StatusOK, &page{Notice: c.notice(q)})
}

func (c *Console) relationRender(q *req, status int, p *page) {
	name := q.r.PathValue("name")
	res := c.api(q.r, q.token, "GET", "/api/v1/relations/"+esc(name), nil)
	var rel policy.Relation
	if !res.decode(&rel) {
		c.apiFailed(q, res)
		return
	}
	if p.Form == nil {
		p.Form = relationForm(&rel)
	}
	p.Title, p.Data = "Relation "+name, &relationsData{Relation: &relationRow{rel, servicesText(rel.Services)}, Groups: c.groupNames(q)}
	c.render(q.w, q.r, q, status, "relation", p)
}

func (c *Console) relationUpdate(q *req) {
	name, f := q.r.PathValue("name"), q.r.PostForm
	rel, bad := relationBody(name, f)
	if bad != nil {
		c.relationRender(q, http.StatusBadRequest, &page{Form: f, Errors: bad})
		return
	}
	c.submit(q, "PUT", "/api/v1/relations/"+esc(name), rel, c.relationRender, relationErrors,
		"/relations/"+url.PathEscape(name), "Saved the relation "+name+".")
}

// relationSwitch enables or disables a relation: how a connection is
// activated and deactivated. It reads the relation and writes it back
// with the one field changed.
func (c *Console) relationSwitch(disable bool) func(*req) {
	return func(q *req) {
		name := q.r.PathValue("name")
		res := c.api(q.r, q.token, "GET", "/api/v1/relations/"+esc(name), nil)
		var rel policy.Relation
		if !res.decode(&rel) {
			c.apiFailed(q, res)
			return
		}
		rel.Disabled = disable
		if res = c.api(q.r, q.token, "PUT", "/api/v1/relations/"+esc(name), rel); !res.ok() {
			c.apiFailed(q, res)
			return
		}
		verb := "Enabled"
		if disable {
			verb = "Disabled"
		}
		c.redirect(q, "/relations", verb+" the relation "+name+".")
	}
}

// Certificates.

type certsData struct {
	Certs  []certJSON
	Table  *table
	Issued *issuedJSON
}

type issuedJSON struct {
	Certificate    certJSON `json:"certificate"`
	CertificatePEM string   `json:"certificate_pem"`
	KeyPEM         string   `json:"key_pem"`
}

var certKeys = map[string]func(a, b *certJSON) int{
	"name":      byString(func(c *certJSON) string { return c.CommonName }),
	"not_after": byTime(func(c *certJSON) time.Time { return c.NotAfter }),
	"serial":    byString(func(c *certJSON) string { return fmt.Sprintf("%040s", c.Serial) }),
}

func (c *Console) certificatesPage(q *req) {
	c.certificatesRender(q, http.StatusOK, &page{Notice: c.notice(q), Form: url.Values{"profile": {"user"}}}, nil)
}

func (c *Console) certificatesRender(q *req, status int, p *page, issued *issuedJSON) {
	res := c.api(q.r, q.token, "GET", "/api/v1/certificates", nil)
	var cs []certJSON
	if !res.decode(&cs) {
		c.apiFailed(q, res)
		return
	}
	d := &certsData{Issued: issued}
	d.Certs, d.Table = sortPage(q.r, cs, certKeys, "name")
	p.Title, p.Data = "Certificates", d
	c.render(q.w, q.r, q, status, "certificates", p)
}

func (c *Console) certificateIssue(q *req) {
	f := q.r.PostForm
	res := c.api(q.r, q.token, "POST", "/api/v1/certificates", map[string]string{"common_name": f.Get("common_name"), "profile": f.Get("profile")})
	var out issuedJSON
	if !res.decode(&out) {
		if res.Status != http.StatusBadRequest {
			c.apiFailed(q, res)
			return
		}
		c.certificatesRender(q, res.Status, &page{Form: f, Errors: map[string]string{fieldOf(res.message(), "common_name", "profile"): res.message()}}, nil)
		return
	}
	// The key is shown once, on this answer to the POST; it is not
	// stored anywhere.
	c.certificatesRender(q, http.StatusCreated, &page{Notice: "Issued certificate " + out.Certificate.Serial + " for " + out.Certificate.CommonName + ". Copy the key now: it is not kept.", Form: url.Values{"profile": {"user"}}}, &out)
}

func (c *Console) certificatePEM(q *req) {
	serial := q.r.PathValue("serial")
	res, started := c.download(q, "GET", "/api/v1/certificates/"+esc(serial)+"?format=pem", nil, nil)
	if !started {
		c.apiFailed(q, res)
	}
}

func (c *Console) certificateRenew(q *req) {
	serial := q.r.PathValue("serial")
	res := c.api(q.r, q.token, "POST", "/api/v1/certificates/"+esc(serial)+"/renew", map[string]string{})
	var out issuedJSON
	if !res.decode(&out) {
		c.apiFailed(q, res)
		return
	}
	c.certificatesRender(q, http.StatusCreated, &page{Notice: "Renewed: the new certificate is " + out.Certificate.Serial + ".", Form: url.Values{"profile": {"user"}}}, &out)
}

func (c *Console) revokeConfirm(q *req) {
	serial := q.r.PathValue("serial")
	if !c.exists(q, "/api/v1/certificates/"+esc(serial)) {
		return
	}
	c.render(q.w, q.r, q, http.StatusOK, "confirm", &page{Title: "Revoke a certificate", Data: confirmData{
		Question: "Revoke the certificate " + serial + "?",
		Detail:   "Its holder's live tunnel ends, and its next connection or certificate login is refused; if it is a user's, that user's sessions in this console and the API end too. This cannot be undone.",
		Action:   q.r.URL.Path, Button: "Revoke", Back: "/certificates", Reasons: true}, Form: url.Values{}})
}

func (c *Console) revokePost(q *req) {
	serial := q.r.PathValue("serial")
	reason, err := strconv.Atoi(q.r.PostFormValue("reason"))
	if err != nil {
		reason = 0
	}
	res := c.api(q.r, q.token, "POST", "/api/v1/certificates/"+esc(serial)+"/revoke", map[string]int{"reason": reason})
	if !res.ok() {
		c.apiFailed(q, res)
		return
	}
	c.redirect(q, "/certificates", "Revoked the certificate "+serial+".")
}

// Events.

type eventsData struct {
	Events []eventJSON
	// Older links to the next page back; Newest to the first page.
	Older, Newest, CSV string
}

// eventsQuery turns the filter form into the API's query.
func eventsQuery(f url.Values) (url.Values, map[string]string) {
	q, errs := url.Values{}, map[string]string{}
	for _, k := range []string{"participant", "kind"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	for _, k := range []string{"since", "until"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" {
			t, err := time.Parse(formTime, v)
			if err != nil {
				errs[k] = "Want a date and time like 2025-06-01T08:00 (UTC)."
				continue
			}
			q.Set(k, t.Format(time.RFC3339))
		}
	}
	return q, errs
}

func (c *Console) eventsPage(q *req) {
	f := q.r.URL.Query()
	aq, errs := eventsQuery(f)
	p := &page{Title: "Event log", Form: f, Errors: errs}
	d := &eventsData{}
	if len(errs) == 0 {
		aq.Set("order", "newest")
		aq.Set("limit", strconv.Itoa(pageSize))
		if b, err := strconv.ParseInt(f.Get("before"), 10, 64); err == nil && b > 0 {
			aq.Set("before", strconv.FormatInt(b, 10))
		}
		res := c.api(q.r, q.token, "GET", "/api/v1/events?"+aq.Encode(), nil)
		if !res.decode(&d.Events) {
			if res.Status != http.StatusBadRequest {
				c.apiFailed(q, res)
				return
			}
			p.Error = res.message()
		}
	}
	keep := cloneValues(f)
	keep.Del("before")
	d.Newest = "/events?" + keep.Encode()
	d.CSV = "/events/csv?" + keep.Encode()
	if len(d.Events) == pageSize {
		keep.Set("before", strconv.FormatInt(d.Events[len(d.Events)-1].ID, 10))
		d.Older = "/events?" + keep.Encode()
	}
	p.Data = d
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusBadRequest
	}
	c.render(q.w, q.r, q, status, "events", p)
}

// eventsCSV downloads the filtered events (the oldest first, at most the
// API's limit) as the API writes them.
func (c *Console) eventsCSV(q *req) {
	aq, errs := eventsQuery(q.r.URL.Query())
	if len(errs) > 0 {
		c.errorPage(q.w, q.r, q, http.StatusBadRequest, "The filter is not valid; correct it on the event log page.")
		return
	}
	aq.Set("format", "csv")
	aq.Set("limit", strconv.Itoa(store.MaxEventLimit))
	res, started := c.download(q, "GET", "/api/v1/events?"+aq.Encode(), nil, nil)
	if !started {
		c.apiFailed(q, res)
	}
}

// Licenses.

func (c *Console) licensesPage(q *req) {
	c.licensesRender(q, http.StatusOK, &page{Notice: c.notice(q)})
}

func (c *Console) licensesRender(q *req, status int, p *page) {
	res := c.api(q.r, q.token, "GET", "/api/v1/licenses", nil)
	var l licensesJSON
	if !res.decode(&l) {
		c.apiFailed(q, res)
		return
	}
	p.Title, p.Data = "Licenses", &l
	c.render(q.w, q.r, q, status, "licenses", p)
}

func (c *Console) licenseAdd(q *req) {
	file, _, err := q.r.FormFile("file")
	if err != nil {
		c.licensesRender(q, http.StatusBadRequest, &page{Errors: map[string]string{"file": "Choose a license file."}})
		return
	}
	defer file.Close()
	body, err := io.ReadAll(io.LimitReader(file, maxForm)) // the form is bounded by maxForm already
	if err != nil {
		c.licensesRender(q, http.StatusBadRequest, &page{Errors: map[string]string{"file": err.Error()}})
		return
	}
	res := c.api(q.r, q.token, "POST", "/api/v1/licenses", body)
	if !res.ok() {
		if res.Status == http.StatusBadRequest || res.Status == http.StatusConflict || res.Status == http.StatusRequestEntityTooLarge {
			c.licensesRender(q, res.Status, &page{Errors: map[string]string{"file": res.message()}})
			return
		}
		c.apiFailed(q, res)
		return
	}
	c.redirect(q, "/licenses", "The license was added.")
}

func (c *Console) releaseConfirm(q *req) {
	number := q.r.PathValue("number")
	if !c.need(q, policy.RightManageLicenses) {
		return
	}
	c.confirm(q, "Release a license", confirmData{
		Question: "Release the license " + number + "?",
		Detail:   "It stops counting here at once. You get a signed release statement to download: send it to the vendor to use the license on another installation.",
		Action:   q.r.URL.Path, Button: "Release and download the statement", Back: "/licenses"})
}

func (c *Console) releasePost(q *req) {
	number := q.r.PathValue("number")
	res, started := c.download(q, "POST", "/api/v1/licenses/"+esc(number)+"/release", nil, nil)
	if !started {
		c.apiFailed(q, res)
	}
}

// Backup and restore.

func (c *Console) backupPage(q *req) {
	if !c.need(q, policy.RightBackup) {
		return
	}
	c.render(q.w, q.r, q, http.StatusOK, "backup", &page{Title: "Backup and restore", Notice: c.notice(q)})
}

func (c *Console) backupPost(q *req) {
	f := q.r.PostForm
	if f.Get("passphrase") != f.Get("passphrase2") {
		c.render(q.w, q.r, q, http.StatusBadRequest, "backup", &page{Title: "Backup and restore", Errors: map[string]string{"passphrase2": "The two passphrases differ."}})
		return
	}
	body, _ := jsonBytes(map[string]string{"passphrase": f.Get("passphrase")})
	res, started := c.download(q, "POST", "/api/v1/backup", bytesReader(body), nil)
	if started {
		return
	}
	if res.Status == http.StatusBadRequest {
		c.render(q.w, q.r, q, res.Status, "backup", &page{Title: "Backup and restore", Errors: map[string]string{"passphrase": res.message()}})
		return
	}
	c.apiFailed(q, res)
}

// restorePost streams the uploaded backup to the API. The form's parts
// come in document order: the CSRF token first, checked before anything
// else is read, then the passphrase and the choice of installation, then
// the file, which is handed to the API as it arrives.
func (c *Console) restorePost(q *req) {
	fail := func(status int, field, msg string) {
		c.render(q.w, q.r, q, status, "backup", &page{Title: "Backup and restore", Errors: map[string]string{field: msg}})
	}
	mr, err := q.r.MultipartReader()
	if err != nil {
		c.errorPage(q.w, q.r, q, http.StatusForbidden, "This form has expired or was not made by this console; nothing was changed.")
		return
	}
	vals := map[string]string{}
	for _, name := range []string{csrfField, "passphrase", "installation"} {
		part, err := mr.NextPart()
		if err != nil || part.FormName() != name {
			if name == csrfField {
				c.errorPage(q.w, q.r, q, http.StatusForbidden, "This form has expired or was not made by this console; nothing was changed.")
				return
			}
			fail(http.StatusBadRequest, "file", "The form is incomplete; reload the page and try again.")
			return
		}
		v, _ := io.ReadAll(io.LimitReader(part, 4<<10))
		vals[name] = string(v)
		if name == csrfField && !csrfOK(vals[name], q.csrf) {
			c.errorPage(q.w, q.r, q, http.StatusForbidden, "This form has expired or was not made by this console; nothing was changed.")
			return
		}
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "file" {
		fail(http.StatusBadRequest, "file", "Choose a backup file.")
		return
	}
	path := "/api/v1/restore"
	if vals["installation"] == "restore" {
		path += "?installation=restore"
	}
	res := c.api2(q, "POST", path, part, http.Header{"X-Backup-Passphrase": {vals["passphrase"]}, "Content-Type": {"application/octet-stream"}})
	switch {
	case res.ok():
		// Every API session ended with the restore, this one too.
		c.endSession(q, "restored")
	case res.Status == http.StatusBadRequest || res.Status == http.StatusRequestEntityTooLarge:
		fail(res.Status, fieldOf(res.message(), "file", "passphrase"), res.message())
	default:
		c.apiFailed(q, res)
	}
}

// api2 is api with a streamed body and extra headers.
func (c *Console) api2(q *req, method, path string, body io.Reader, header http.Header) *result {
	r, err := c.apiRequest(q.r, q.token, method, path, body)
	if err != nil {
		return &result{Status: http.StatusInternalServerError, Body: errorJSON(err.Error())}
	}
	for k, v := range header {
		r.Header[k] = v
	}
	rec := &recorder{header: http.Header{}}
	c.cfg.API.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &result{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()}
}

// System.

type systemData struct {
	CASubject, CAIssuer string
	CANotAfter          time.Time
	GoVersion           string
	Module, Version     string
	Deps                []dep
	Addresses           []Address
	MetricsURL          string
}

type dep struct{ Path, Version string }

func (c *Console) systemPage(q *req) {
	if !c.need(q, policy.RightSystemSettings) {
		return
	}
	d := &systemData{GoVersion: runtime.Version(), Addresses: c.cfg.Addresses, MetricsURL: c.cfg.MetricsURL}
	if ca := c.cfg.CA; ca != nil {
		d.CASubject, d.CAIssuer, d.CANotAfter = ca.Subject.String(), ca.Issuer.String(), ca.NotAfter
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		d.Module, d.Version = bi.Main.Path, bi.Main.Version
		for _, m := range bi.Deps {
			d.Deps = append(d.Deps, dep{m.Path, m.Version})
		}
	}
	c.render(q.w, q.r, q, http.StatusOK, "system", &page{Title: "System", Data: d})
}
