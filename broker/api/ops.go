package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/remotegate/remotegate/broker/model"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/store"
)

type participantView struct {
	Name    string        `json:"name"`
	Kind    string        `json:"kind"`
	Status  broker.Status `json:"status"`
	Address *netip.Addr   `json:"address,omitempty"`
}

func (s *Server) listParticipants(w http.ResponseWriter, r *http.Request, _ *caller) {
	ps, err := s.m.ParticipantStates(r.Context())
	if err != nil {
		writeModelError(w, err)
		return
	}
	out := make([]participantView, 0, len(ps))
	for _, p := range ps {
		v := participantView{Name: p.Name, Kind: p.Kind, Status: p.Status}
		if p.Address.IsValid() {
			v.Address = &p.Address
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listSessions(w http.ResponseWriter, _ *http.Request, _ *caller) {
	writeJSON(w, http.StatusOK, s.cfg.Broker.Sessions())
}

func (s *Server) terminateSession(w http.ResponseWriter, r *http.Request, c *caller) {
	if err := s.m.Terminate(r.Context(), c.name, r.PathValue("participant")); err != nil {
		writeModelError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type eventView struct {
	ID          int64             `json:"id"`
	Time        time.Time         `json:"time"`
	Kind        string            `json:"kind"`
	Participant string            `json:"participant,omitempty"`
	Actor       string            `json:"actor,omitempty"`
	Message     string            `json:"message"`
	Attrs       map[string]string `json:"attrs,omitempty"`
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, _ *caller) {
	q := r.URL.Query()
	f := store.EventFilter{Participant: q.Get("participant"), Kind: q.Get("kind")}
	var err error
	parseTime := func(name string, dst *time.Time) {
		if v := q.Get(name); v != "" && err == nil {
			if *dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
				err = fmt.Errorf("%s: want an RFC 3339 time", name)
			}
		}
	}
	parseInt := func(name string, dst func(int64)) {
		if v := q.Get(name); v != "" && err == nil {
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil || n < 0 {
				err = fmt.Errorf("%s: want a non-negative integer", name)
				return
			}
			dst(n)
		}
	}
	parseTime("since", &f.Since)
	parseTime("until", &f.Until)
	parseInt("after", func(n int64) { f.After = n })
	parseInt("before", func(n int64) { f.Before = n })
	parseInt("limit", func(n int64) { f.Limit = int(min(n, store.MaxEventLimit)) })
	switch order := q.Get("order"); order {
	case "", "oldest":
	case "newest":
		f.Newest = true
	default:
		if err == nil {
			err = fmt.Errorf("order %q: want oldest or newest", order)
		}
	}
	format := q.Get("format")
	if err == nil && format != "" && format != "json" && format != "csv" {
		err = fmt.Errorf("format %q: want json or csv", format)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	events, err := s.m.Events(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if format == "csv" {
		var buf bytes.Buffer
		if err := store.WriteEventsCSV(&buf, events); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="events.csv"`)
		_, _ = w.Write(buf.Bytes())
		return
	}
	out := make([]eventView, 0, len(events))
	for _, e := range events {
		out = append(out, eventView(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// DefaultEventRetention is the event retention when Config.EventRetention
// is zero: a year of audit trail and a margin.
const DefaultEventRetention = model.DefaultEventRetention

// Maintain removes what the store no longer needs: expired API session
// tokens and events older than Config.EventRetention (see
// model.Manager.Maintain). The embedding product calls it periodically,
// e.g. once a minute with CheckLicenses.
func (s *Server) Maintain(ctx context.Context) error { return s.m.Maintain(ctx) }

func (s *Server) backup(w http.ResponseWriter, r *http.Request, c *caller) {
	req, ok := decode[struct {
		Passphrase string `json:"passphrase"`
	}](w, r)
	if !ok {
		return
	}
	if err := model.CheckBackupPassphrase(req.Passphrase); err != nil {
		writeModelError(w, err)
		return
	}
	// The archive streams out: the headers go with its first bytes, so
	// that an error before them (the copy of the database, the size limit)
	// is still an error response. An error after them cuts the archive
	// short, and a cut archive does not restore (its end is authenticated).
	out := &lazyHeaders{w: w, start: func(h http.Header) {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="remotegate-%s.backup"`, s.now().UTC().Format("20060102-150405")))
	}}
	err := s.m.Backup(r.Context(), c.name, out, req.Passphrase)
	switch {
	case err != nil && out.started:
		s.log.Error("backup cut short", "error", err)
		return
	case errors.Is(err, store.ErrBackupTooLarge):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// lazyHeaders calls start and writes the status 200 before the first
// byte of the body.
type lazyHeaders struct {
	w       http.ResponseWriter
	start   func(http.Header)
	started bool
}

func (l *lazyHeaders) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.start(l.w.Header())
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// The names of the secrets that identify an installation, as the example
// broker stores them: a random ID that licenses may be bound to, and the
// Ed25519 key that signs release statements (Config.InstallationSecrets).
const (
	SecretInstallationID  = model.SecretInstallationID
	SecretInstallationKey = model.SecretInstallationKey
)

// restoreResponse is the answer of a restore.
type restoreResponse struct {
	// RestartRequired: part of the restored state (another CA, another
	// installation identity) takes effect at the next start.
	RestartRequired bool `json:"restart_required"`
	// Installation is "kept" or "restored" (see Config.InstallationSecrets).
	Installation string `json:"installation"`
	// SessionsEnded is always true: a restore ends every API session,
	// including the caller's, who logs in again.
	SessionsEnded bool   `json:"sessions_ended"`
	Message       string `json:"message"`
}

// restore replaces everything with a backup. The configuration takes
// effect at once; a different CA or installation identity takes effect at
// the next start. Every API session ends (the tokens are not restored), and
// the installation identity stays this broker's unless the query says
// installation=restore.
//
// The archive is read from the body as it arrives, into a temporary file
// (store.StageRestore), without any lock held: a slow upload does not hold
// up the API. Only the swap itself (Apply) is serialised with the
// configuration changes.
func (s *Server) restore(w http.ResponseWriter, r *http.Request, c *caller) {
	pass := r.Header.Get("X-Backup-Passphrase")
	if pass == "" {
		writeError(w, http.StatusBadRequest, "the X-Backup-Passphrase header is required")
		return
	}
	if r.ContentLength > store.MaxBackupSize {
		// Announced too large: refused before reading a byte.
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%v: %d bytes, the limit is %d MiB", store.ErrBackupTooLarge, r.ContentLength, store.MaxBackupSize>>20))
		return
	}
	var bring bool
	switch installation := r.URL.Query().Get("installation"); installation {
	case "", "keep":
	case "restore":
		bring = true
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("installation=%q: want keep (the default) or restore", installation))
		return
	}
	res, err := s.m.Restore(r.Context(), c.name, r.Body, pass, bring)
	switch {
	case errors.Is(err, store.ErrBackupTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	case errors.Is(err, store.ErrBadBackup), errors.Is(err, store.ErrSchema):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.As(err, new(*http.MaxBytesError)):
		writeBodyError(w, err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, restoreResponse{RestartRequired: res.RestartRequired, Installation: res.Installation, SessionsEnded: true,
		Message: res.Message + ": log in again"})
}
