package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/policy"
)

// loginMessages are the notices the login page shows after a redirect.
var loginMessages = map[string]string{
	"expired":   "Your session ended. Log in again.",
	"logout":    "You are logged out.",
	"bootstrap": "The administrator is named and the one-time account “admin” no longer exists. Log in as the administrator you named.",
	"restored":  "The backup was restored and every session ended. Log in again.",
	"password":  "Your password was changed.",
}

type loginData struct {
	Next  string
	Login string // the login form's CSRF token
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, r, http.StatusOK, &page{Notice: loginMessages[r.URL.Query().Get("m")]}, r.URL.Query().Get("next"))
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, p *page, next string) {
	p.Title = "Log in"
	p.Data = loginData{Next: safeNext(next), Login: c.loginToken(w, r)}
	c.render(w, r, nil, status, "login", p)
}

type tokenResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// startSession keeps the API token in the session cookie and sends the
// browser on.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, res *result, next string) {
	var tok tokenResponse
	if err := json.Unmarshal(res.Body, &tok); err != nil || tok.Token == "" {
		c.errorPage(w, r, nil, http.StatusBadGateway, "The management API gave no session.")
		return
	}
	// Whose session it is: the table of sessions drops an account's own
	// first when it is full.
	var a account
	if res := c.api(r, tok.Token, "GET", "/api/v1/account", nil); !res.decode(&a) {
		c.api(r, tok.Token, "POST", "/api/v1/logout", nil)
		c.errorPage(w, r, nil, http.StatusBadGateway, "The management API did not say whose session it gave: "+res.message())
		return
	}
	c.sess.add(tok.Token, a.Name, c.now(), c.cfg.IdleTimeout)
	setCookie(w, sessionCookie, tok.Token, tok.Expires)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

func (c *Console) loginPassword(w http.ResponseWriter, r *http.Request) {
	if !c.checkLogin(w, r) {
		return
	}
	name, next := r.PostFormValue("name"), r.PostFormValue("next")
	res := c.api(r, "", "POST", "/api/v1/login", map[string]string{"name": name, "password": r.PostFormValue("password")})
	if res.ok() {
		c.startSession(w, r, res, next)
		return
	}
	p := &page{Form: url.Values{"name": {name}}, Errors: map[string]string{}}
	switch res.Status {
	case http.StatusUnauthorized:
		p.Errors["password"] = "Wrong name or password."
		if name == api.BootstrapAccount {
			p.Errors["name"] = "The one-time account “admin” exists only until the first administrator is named; after that, log in as that administrator."
		}
	case http.StatusTooManyRequests:
		p.Error = res.message() + " (retry after " + res.Header.Get("Retry-After") + " s)"
	default:
		p.Error = res.message()
	}
	c.renderLogin(w, r, res.Status, p, next)
}

// loginCertificate logs in with the client certificate the browser gave
// the TLS listener (a smartcard): the API checks it against the CA.
func (c *Console) loginCertificate(w http.ResponseWriter, r *http.Request) {
	if !c.checkLogin(w, r) {
		return
	}
	next := r.PostFormValue("next")
	res := c.api(r, "", "POST", "/api/v1/login/certificate", nil)
	if res.ok() {
		c.startSession(w, r, res, next)
		return
	}
	msg := "Your certificate was not accepted: " + res.message() + "."
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		msg = "Your browser sent no client certificate. Insert your smartcard (or install your certificate) and reload the page, then choose it when the browser asks."
	}
	c.renderLogin(w, r, res.Status, &page{Error: msg}, next)
}

func (c *Console) logout(q *req) {
	c.api(q.r, q.token, "POST", "/api/v1/logout", nil)
	c.sess.remove(q.token)
	clearCookie(q.w, sessionCookie)
	http.Redirect(q.w, q.r, "/login?m=logout", http.StatusSeeOther)
}

// endSession forgets the session after the API ended it (bootstrap,
// restore) and sends the browser to the login page.
func (c *Console) endSession(q *req, why string) {
	c.sess.remove(q.token)
	clearCookie(q.w, sessionCookie)
	http.Redirect(q.w, q.r, "/login?m="+why, http.StatusSeeOther)
}

func (c *Console) bootstrapPage(q *req) {
	if !q.acct.Bootstrap {
		http.Redirect(q.w, q.r, "/", http.StatusSeeOther)
		return
	}
	c.render(q.w, q.r, q, http.StatusOK, "bootstrap", &page{Title: "Name the administrator"})
}

func (c *Console) bootstrapPost(q *req) {
	name, pw := q.r.PostFormValue("name"), q.r.PostFormValue("password")
	p := &page{Title: "Name the administrator", Form: url.Values{"name": {name}}, Errors: map[string]string{}}
	if pw != q.r.PostFormValue("password2") {
		p.Errors["password2"] = "The two passwords differ."
		c.render(q.w, q.r, q, http.StatusBadRequest, "bootstrap", p)
		return
	}
	res := c.api(q.r, q.token, "POST", "/api/v1/bootstrap", map[string]string{"name": name, "password": pw})
	switch {
	case res.ok():
		// The API deleted the bootstrap account and its session with it.
		c.endSession(q, "bootstrap")
	case res.Status == http.StatusBadRequest || res.Status == http.StatusConflict:
		p.Errors[fieldOf(res.message(), "name", "password")] = res.message()
		c.render(q.w, q.r, q, res.Status, "bootstrap", p)
	default:
		c.apiFailed(q, res)
	}
}

func (c *Console) passwordPage(q *req) {
	c.render(q.w, q.r, q, http.StatusOK, "password", &page{Title: "Change your password", Notice: c.notice(q)})
}

func (c *Console) passwordPost(q *req) {
	p := &page{Title: "Change your password", Errors: map[string]string{}}
	if q.r.PostFormValue("new_password") != q.r.PostFormValue("new_password2") {
		p.Errors["new_password2"] = "The two new passwords differ."
		c.render(q.w, q.r, q, http.StatusBadRequest, "password", p)
		return
	}
	res := c.api(q.r, q.token, "PUT", "/api/v1/password", map[string]string{
		"old_password": q.r.PostFormValue("old_password"), "new_password": q.r.PostFormValue("new_password")})
	switch {
	case res.ok():
		c.redirect(q, "/password", "Your password was changed; your other sessions ended.")
	case res.Status == http.StatusBadRequest || res.Status == http.StatusTooManyRequests:
		field := "new_password"
		if msg := res.message(); res.Status == http.StatusTooManyRequests || contains(msg, "old password", "certificate") {
			field = "old_password"
		}
		p.Errors[field] = res.message()
		c.render(q.w, q.r, q, res.Status, "password", p)
	default:
		c.apiFailed(q, res)
	}
}

// profileFormats are the formats offered for download.
var profileFormats = []struct{ Value, Label string }{
	{"ovpn", "OpenVPN profile (.ovpn)"},
	{"pkcs12", "PKCS#12 certificate and key (.p12, needs a password)"},
	{"swanctl", "strongSwan IKEv2 (swanctl, .tar)"},
	{"mobileconfig", "macOS and iOS IKEv2 (.mobileconfig, users only, needs a password)"},
	{"powershell", "Windows 10/11 IKEv2 (PowerShell script, users only, needs a password)"},
	{"sswan", "Android strongSwan app (.sswan, users only, needs a password)"},
}

type profileData struct {
	Name    string
	Formats any
	Action  string
}

func (c *Console) ownProfilePage(q *req) {
	if !c.need(q, policy.RightConnectVPN) {
		return
	}
	c.render(q.w, q.r, q, http.StatusOK, "profile", &page{Title: "My VPN profile",
		Data: profileData{Name: q.acct.Name, Formats: profileFormats, Action: "/profile"}})
}

func (c *Console) ownProfilePost(q *req) {
	c.profileDownload(q, "/api/v1/profile", "My VPN profile", q.acct.Name, "/profile")
}

// profileDownload asks the API for a profile and streams it, or renders
// the form again with the API's reason.
func (c *Console) profileDownload(q *req, apiPath, title, name, action string) {
	format := q.r.PostFormValue("format")
	body, _ := json.Marshal(map[string]string{"format": format, "password": q.r.PostFormValue("password")})
	res, started := c.download(q, "POST", apiPath, bytesReader(body), nil)
	if started {
		return
	}
	switch res.Status {
	case http.StatusBadRequest:
		p := &page{Title: title, Form: url.Values{"format": {format}}, Errors: map[string]string{
			fieldOf(res.message(), "format", "password"): res.message()},
			Data: profileData{Name: name, Formats: profileFormats, Action: action}}
		c.render(q.w, q.r, q, res.Status, "profile", p)
		return
	case http.StatusTooManyRequests:
		// The API bounds the profiles users export for themselves.
		q.w.Header().Set("Retry-After", res.Header.Get("Retry-After"))
		c.render(q.w, q.r, q, res.Status, "profile", &page{Title: title, Form: url.Values{"format": {format}},
			Error: "No profile now: " + res.message() + ".", Data: profileData{Name: name, Formats: profileFormats, Action: action}})
		return
	}
	c.apiFailed(q, res)
}
