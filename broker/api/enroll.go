package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/remotegate/remotegate/broker/model"
	"io"
	"net/http"
	"time"

	"github.com/remotegate/remotegate/policy"
)

// EnrollmentPath is where a product mounts EnrollmentHandler: the EST
// well-known prefix (RFC 7030 section 3.2.2).
const EnrollmentPath = "/.well-known/est/"

// Enrollment token lifetimes: what POST /api/v1/devices/{name}/enrollment
// gives without ttl_seconds, and the longest it gives. A token is worth a
// certificate in the device's name to whoever holds it, so it lives no
// longer than the way from the administrator to the gateway needs.
const (
	DefaultEnrollmentTTL = model.DefaultEnrollmentTTL
	MaxEnrollmentTTL     = model.MaxEnrollmentTTL
)

// enrollmentView is the answer of createEnrollment: the token, shown once.
type enrollmentView struct {
	Device  string    `json:"device"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	// Path is where the device posts its CSR with the token.
	Path string `json:"path"`
}

// createEnrollment makes a one-time enrollment token for a device. It
// needs the right to manage certificates, not devices: the token is worth
// a certificate in the device's name, as an issued certificate or an
// exported profile is, and managing the participants does not include
// handing out their credentials.
func (s *Server) createEnrollment(w http.ResponseWriter, r *http.Request, c *caller) {
	name := r.PathValue("name")
	if err := policy.ValidName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req struct {
		TTLSeconds int64 `json:"ttl_seconds,omitempty"`
	}
	// The body is optional: none means the default lifetime.
	body, err := io.ReadAll(r.Body) // bounded by wrap
	if err != nil {
		writeBodyError(w, fmt.Errorf("request body: %w", err))
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || dec.More() {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("request body: want {\"ttl_seconds\": N} or nothing: %v", err))
			return
		}
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	switch {
	case req.TTLSeconds == 0:
		ttl = DefaultEnrollmentTTL
	case req.TTLSeconds < 60 || ttl > MaxEnrollmentTTL:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl_seconds: want 60 to %d", int64(MaxEnrollmentTTL/time.Second)))
		return
	}
	token, expires, err := s.m.EnrollmentToken(r.Context(), c.name, name, ttl)
	if err != nil {
		writeModelError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, enrollmentView{Device: name, Token: token, Expires: expires, Path: EnrollmentPath + "simpleenroll"})
}

// EnrollmentHandler serves device enrollment (docs/ENROLLMENT.md), for the
// product to mount at EnrollmentPath on the API's HTTPS listener:
//
//	mux.Handle(api.EnrollmentPath, apiServer.EnrollmentHandler())
//
// It is pki.CA.EnrollmentHandler (cacerts, simpleenroll with a token from
// POST /api/v1/devices/{name}/enrollment, simplereenroll with the current
// certificate, which needs the listener's tls.Config to ask for client
// certificates: VerifyClientCertIfGiven with the CA in ClientCAs, as for
// certificate login) with the broker's checks: a certificate is issued
// only for a device of the model in force, under the lock configuration
// changes take, and each is recorded in the event log with its serial. It
// needs no login (the token or the certificate is the credential) and
// reads at most 64 KiB of a request.
func (s *Server) EnrollmentHandler() http.Handler {
	h := s.cfg.CA.EnrollmentHandlerWith(s.m.EnrollmentOptions())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}
