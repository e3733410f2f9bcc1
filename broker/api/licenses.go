package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/license"
)

// ErrCapacity refuses a change that would take the number of participants
// (users plus devices) beyond the licensed capacity; it is
// model.ErrCapacity, which the domain step returns.
var ErrCapacity = model.ErrCapacity

// What counts as a participant, for licenses: every user and every device
// of the model, administrators included. A user is a participant whatever
// its roles and groups: one without connect-vpn or without a group can be
// given them at any time, and its tunnel then works at once (user_routes
// are pushed so that relations added later need no reconnect); counting
// it only from then on would let an edit of roles or groups, not a
// create, take an installation beyond its licenses. The broker admits at
// connect the participants that fit the capacity, the oldest first
// (policy.Model.Seniority), so the installation's count, the API's refusals
// and the broker's admissions all count the same set.
//
// One participant is admitted beyond the capacity: the administrator
// named at the bootstrap (POST /api/v1/bootstrap). An installation whose
// participants already fill its licenses, say four on the base license
// from a declarative configuration, must still be administrable, and the
// bootstrap is its only way in. That administrator then counts like any
// user: the installation is over its capacity, creating participants is
// refused until there is room (a participant deleted, or a license added),
// and, being the newest participant, it is the one the broker refuses at
// connect meanwhile; its logins to the API are not limited by licenses.

// maxLicenseFile bounds an uploaded license file; real ones are well under
// a kilobyte.
const maxLicenseFile = 64 << 10

// CheckLicenses records the license changes since the last call (expiries,
// the ends of grace periods) in the event log and gives the broker the
// capacity they leave (see model.Manager.CheckLicenses). The embedding
// product calls it periodically, e.g. once a minute.
func (s *Server) CheckLicenses(ctx context.Context) { s.m.CheckLicenses(ctx) }

// licenseView is a license as the API shows it.
type licenseView struct {
	Number       string     `json:"number"`
	Product      string     `json:"product"`
	Edition      string     `json:"edition"`
	Participants int        `json:"participants"`
	Issued       string     `json:"issued"`
	Expires      string     `json:"expires,omitempty"`
	Installation string     `json:"installation,omitempty"`
	Activated    time.Time  `json:"activated"`
	Released     *time.Time `json:"released,omitempty"`
	// State is "counting", "in-grace", "lapsed" or "released".
	State string `json:"state"`
}

type licensesView struct {
	Installation string `json:"installation"`
	// Capacity is the number of participants the licenses allow; 0 when
	// the product does not limit it.
	Capacity    int           `json:"capacity"`
	Description string        `json:"description"`
	InUse       int           `json:"participants"`
	Licenses    []licenseView `json:"licenses"`
}

const dateOnly = "2006-01-02"

func viewOf(e license.Entry, c license.Capacity) licenseView {
	l := e.License
	v := licenseView{
		Number: l.Number, Product: l.Product, Edition: l.Edition, Participants: l.Participants,
		Issued: l.Issued.Format(dateOnly), Installation: l.Installation, Activated: e.Activated, State: "lapsed",
	}
	if !l.Expires.IsZero() {
		v.Expires = l.Expires.Format(dateOnly)
	}
	if !e.Released.IsZero() {
		r := e.Released
		v.Released, v.State = &r, "released"
		return v
	}
	for _, x := range c.Counting {
		if x.Number == l.Number {
			v.State = "counting"
		}
	}
	for _, x := range c.InGrace {
		if x.Number == l.Number {
			v.State = "in-grace"
		}
	}
	return v
}

func (s *Server) listLicenses(w http.ResponseWriter, r *http.Request, _ *caller) {
	cfg, err := s.cfg.Store.Config(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := licensesView{InUse: len(cfg.Model.Users) + len(cfg.Model.Devices), Licenses: []licenseView{}, Description: "no limit"}
	if lic := s.cfg.Licenses; lic != nil {
		c := lic.Capacity(s.now())
		out.Installation, out.Capacity, out.Description = lic.Installation(), c.Participants, c.String()
		for _, e := range lic.Entries() {
			out.Licenses = append(out.Licenses, viewOf(e, c))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// addLicense activates the license file in the request body.
func (s *Server) addLicense(w http.ResponseWriter, r *http.Request, c *caller) {
	if s.cfg.Licenses == nil {
		writeModelError(w, model.ErrUnlicensed)
		return
	}
	file, err := io.ReadAll(r.Body) // at most maxLicenseFile (bodyLimit)
	if err != nil {
		writeBodyError(w, fmt.Errorf("reading the license file: %w", err))
		return
	}
	e, capacity, err := s.m.AddLicense(r.Context(), c.name, file)
	if err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, viewOf(e, capacity))
}

// releaseLicense releases a license and answers with the release statement
// that lets the vendor re-issue it for another installation.
func (s *Server) releaseLicense(w http.ResponseWriter, r *http.Request, c *caller) {
	number := r.PathValue("number")
	stmt, err := s.m.ReleaseLicense(r.Context(), c.name, number)
	if err != nil {
		writeModelError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+number+`.release"`)
	_, _ = w.Write(stmt)
}
