package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
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

// loadLicenses restores the license state from the store. A stored license
// that no longer verifies (say the product dropped the vendor key that
// signed it) is skipped with an error in the log rather than keeping the
// broker from starting: it just does not count.
func (s *Server) loadLicenses(ctx context.Context) error {
	lic := s.cfg.Licenses
	if lic == nil {
		return nil
	}
	stored, err := s.cfg.Store.Licenses(ctx)
	if err != nil {
		return err
	}
	entries := make([]license.Entry, 0, len(stored))
	for _, l := range stored {
		entries = append(entries, license.Entry{File: l.File, Activated: l.Added, Released: l.Released})
	}
	if err := lic.Restore(entries); err != nil {
		var good []license.Entry
		for _, e := range entries {
			if err := lic.Restore(append(good, e)); err != nil {
				s.log.Error("stored license does not count", "error", err)
				continue
			}
			good = append(good, e)
		}
		if err := lic.Restore(good); err != nil {
			return err
		}
	}
	s.applyCapacity(s.now())
	return nil
}

// applyCapacity gives the broker the capacity at now.
func (s *Server) applyCapacity(now time.Time) {
	if s.cfg.Licenses == nil {
		return
	}
	c := s.cfg.Licenses.Capacity(now)
	s.cfg.Broker.SetCapacity(c.Participants, c.String())
}

// CheckLicenses records the license changes since the last call (expiries,
// the ends of grace periods) in the event log and gives the broker the
// capacity they leave. The embedding product calls it periodically, e.g.
// once a minute; New does it once.
func (s *Server) CheckLicenses(ctx context.Context) {
	lic := s.cfg.Licenses
	if lic == nil {
		return
	}
	now := s.now()
	s.licMu.Lock()
	from := s.licChecked
	s.licChecked = now
	s.licMu.Unlock()
	for _, e := range lic.EventsBetween(from, now) {
		// Activations and releases through the API are logged when they
		// happen, with who did them.
		if e.Kind == license.EventActivated || e.Kind == license.EventReleased {
			continue
		}
		s.appendEvent(ctx, "license", "", "", fmt.Sprintf("license %s %s; capacity %s", e.Number, e.Kind, lic.Capacity(now)), map[string]string{"license": e.Number, "change": e.Kind})
	}
	s.applyCapacity(now)
}

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
	lic := s.cfg.Licenses
	if lic == nil {
		writeError(w, http.StatusConflict, "this broker does not limit participants by license")
		return
	}
	file, err := io.ReadAll(r.Body) // at most maxLicenseFile (bodyLimit)
	if err != nil {
		writeBodyError(w, fmt.Errorf("reading the license file: %w", err))
		return
	}
	s.licMu.Lock()
	defer s.licMu.Unlock()
	now := s.now()
	before := lic.Entries()
	l, err := lic.Activate(file, now)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, license.ErrDuplicate) || errors.Is(err, license.ErrReleased) || errors.Is(err, license.ErrRevoked) {
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	if err := s.cfg.Store.PutLicense(r.Context(), store.License{Number: l.Number, File: file, Added: now}); err != nil {
		s.undoLicenseChange(w, before, err) // not stored, so not activated
		return
	}
	capacity := lic.Capacity(now)
	s.applyCapacity(now)
	s.event(r, "license", "", c.name, fmt.Sprintf("activated license %s (+%d); capacity %s", l.Number, l.Participants, capacity),
		map[string]string{"license": l.Number, "change": license.EventActivated, "capacity": strconv.Itoa(capacity.Participants)})
	for _, e := range lic.Entries() {
		if e.License.Number == l.Number {
			writeJSON(w, http.StatusCreated, viewOf(e, capacity))
			return
		}
	}
}

// undoLicenseChange answers a license change that the store refused with
// err: the licenses go back to before, as the store still has them.
func (s *Server) undoLicenseChange(w http.ResponseWriter, before []license.Entry, err error) {
	if rerr := s.cfg.Licenses.Restore(before); rerr != nil {
		// The State keeps the change the store does not have: it counts
		// until the next start, which restores the stored licenses.
		s.log.Error("licenses in force differ from the stored ones until the next start", "error", rerr)
		err = fmt.Errorf("%w; and undoing the change failed: %w", err, rerr)
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

// releaseLicense releases a license and answers with the release statement
// that lets the vendor re-issue it for another installation.
func (s *Server) releaseLicense(w http.ResponseWriter, r *http.Request, c *caller) {
	lic := s.cfg.Licenses
	if lic == nil || s.cfg.InstallationKey == nil {
		writeError(w, http.StatusConflict, "this broker does not limit participants by license")
		return
	}
	number := r.PathValue("number")
	s.licMu.Lock()
	defer s.licMu.Unlock()
	now := s.now()
	before := lic.Entries()
	stmt, err := lic.Release(number, s.cfg.InstallationKey, now)
	if err != nil {
		status := http.StatusConflict
		if errors.Is(err, license.ErrNotActivated) {
			status = http.StatusNotFound
		}
		writeError(w, status, err.Error())
		return
	}
	var released time.Time
	for _, e := range lic.Entries() {
		if e.License.Number == number {
			released = e.Released
		}
	}
	if err := s.cfg.Store.ReleaseLicense(r.Context(), number, released); err != nil {
		s.undoLicenseChange(w, before, err) // not stored, so not released
		return
	}
	capacity := lic.Capacity(now)
	s.applyCapacity(now)
	s.event(r, "license", "", c.name, fmt.Sprintf("released license %s; capacity %s", number, capacity),
		map[string]string{"license": number, "change": license.EventReleased, "capacity": strconv.Itoa(capacity.Participants)})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+number+`.release"`)
	_, _ = w.Write(stmt)
}
