package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
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
	cfg, err := s.cfg.Store.Config(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	addrs := s.cfg.Broker.Addresses()
	out := []participantView{}
	add := func(name, kind string) {
		v := participantView{Name: name, Kind: kind, Status: s.cfg.Broker.Status(name)}
		if a, ok := addrs[name]; ok {
			v.Address = &a
		}
		out = append(out, v)
	}
	for _, u := range cfg.Model.Users {
		add(u.Name, "user")
	}
	for _, d := range cfg.Model.Devices {
		add(d.Name, "device")
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listSessions(w http.ResponseWriter, _ *http.Request, _ *caller) {
	writeJSON(w, http.StatusOK, s.cfg.Broker.Sessions())
}

func (s *Server) terminateSession(w http.ResponseWriter, r *http.Request, c *caller) {
	name := r.PathValue("participant")
	if !s.cfg.Broker.Terminate(name, fmt.Errorf("terminated by %s", c.name)) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%q is not online", name))
		return
	}
	s.event(r, "disconnect", name, c.name, "session terminated by an administrator", nil)
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
	events, err := s.cfg.Store.Events(r.Context(), f)
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
const DefaultEventRetention = 400 * 24 * time.Hour

// Maintain removes what the store no longer needs, so that it does not grow
// without bound: the API session tokens that have expired, and the events
// older than Config.EventRetention, both judged on Config.Now's clock. The
// embedding product calls it periodically, e.g. once a minute with
// CheckLicenses. It tries both, and returns their errors.
func (s *Server) Maintain(ctx context.Context) error {
	now := s.now()
	tokens, terr := s.cfg.Store.PruneTokens(ctx, now)
	cutoff := now.Add(-s.cfg.EventRetention)
	events, eerr := s.cfg.Store.PruneEvents(ctx, cutoff)
	if tokens > 0 || events > 0 {
		s.log.Info("pruned the store", "expired_tokens", tokens, "events", events, "events_before", cutoff)
	}
	if err := errors.Join(terr, eerr); err != nil {
		return fmt.Errorf("api: maintain: %w", err)
	}
	return nil
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request, c *caller) {
	req, ok := decode[struct {
		Passphrase string `json:"passphrase"`
	}](w, r)
	if !ok {
		return
	}
	if len(req.Passphrase) < minPasswordLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("a backup passphrase needs at least %d characters", minPasswordLen))
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
	err := s.cfg.Store.Backup(r.Context(), out, []byte(req.Passphrase))
	switch {
	case err != nil && out.started:
		s.log.Error("backup cut short", "error", err)
		return
	case errors.Is(err, store.ErrBackupTooLarge):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.event(r, "backup", "", c.name, "configuration backed up", nil)
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
	SecretInstallationID  = "license/installation-id"
	SecretInstallationKey = "license/installation-key"
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
	var opts store.RestoreOptions
	installation := r.URL.Query().Get("installation")
	switch installation {
	case "", "keep":
		installation = "kept"
		opts.KeepSecrets = s.cfg.InstallationSecrets
	case "restore":
		installation = "restored"
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("installation=%q: want keep (the default) or restore", installation))
		return
	}
	before := s.secrets(r.Context(), s.cfg.InstallationSecrets)
	staged, err := s.cfg.Store.StageRestore(r.Context(), r.Body, []byte(pass))
	if err == nil {
		s.mu.Lock()
		err = staged.Apply(r.Context(), opts)
		s.mu.Unlock()
		staged.Close()
	}
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
	// The identity the program runs with was read at its start.
	restart := !maps.EqualFunc(before, s.secrets(r.Context(), s.cfg.InstallationSecrets), bytes.Equal)
	msg := "restored a backup; the installation identity of this broker was kept"
	if installation == "restored" {
		msg = "restored a backup with the installation identity of the backup (moved to new hardware)"
	}
	msg += "; every API session ended"
	if err := s.Load(r.Context()); err != nil {
		s.event(r, "config_change", "", c.name, msg+"; the configuration does not apply: "+err.Error(), map[string]string{"installation": installation})
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("restored, but the configuration does not apply: %v", err))
		return
	}
	if records, err := s.cfg.Store.Certificates(r.Context()); err == nil {
		if err := s.cfg.CA.Restore(records); err != nil {
			restart = true // certificates of another CA: the CA changes at the next start
		}
	}
	s.event(r, "config_change", "", c.name, msg, map[string]string{
		"installation": installation, "restart_required": strconv.FormatBool(restart), "sessions_ended": "true"})
	writeJSON(w, http.StatusOK, restoreResponse{RestartRequired: restart, Installation: installation, SessionsEnded: true,
		Message: msg + ": log in again"})
}

// secrets reads the named secrets; absent or unreadable ones are left out.
func (s *Server) secrets(ctx context.Context, names []string) map[string][]byte {
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		if v, err := s.cfg.Store.Secret(ctx, n); err == nil {
			out[n] = v
		}
	}
	return out
}
