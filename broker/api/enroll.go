package api

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/remotegate/remotegate/pki"
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
	DefaultEnrollmentTTL = 24 * time.Hour
	MaxEnrollmentTTL     = 7 * 24 * time.Hour
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
	// Checked and made under the lock of configuration changes, as a
	// certificate is issued (issueFor): the device the check saw is the
	// one the token is for.
	s.mu.Lock()
	err = s.enrollable(pki.TokenRequest{Profile: pki.ProfileDevice, CommonName: name})
	var token string
	var expires time.Time
	if err == nil {
		expires = s.now().Add(ttl).UTC()
		token, err = s.cfg.CA.NewEnrollmentToken(pki.TokenRequest{Profile: pki.ProfileDevice, CommonName: name, TTL: ttl})
	}
	s.mu.Unlock()
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// The token itself is a secret: the event says that one was made,
	// not what it is.
	s.event(r, "certificate", name, c.name, fmt.Sprintf("created an enrollment token for device %q, valid until %s", name, expires.Format(time.RFC3339)),
		map[string]string{"expires": expires.Format(time.RFC3339)})
	writeJSON(w, http.StatusCreated, enrollmentView{Device: name, Token: token, Expires: expires, Path: EnrollmentPath + "simpleenroll"})
}

// enrollable refuses (errNotFound) an enrollment for anything but a
// device of the model in force; s.mu is held. A token outlives the check
// made when it was created: the device may have been deleted since, and a
// certificate for a name nobody holds would wait for whoever is created
// under it (see checkSubject).
func (s *Server) enrollable(req pki.TokenRequest) error {
	p, ok := s.snap.Lookup(req.CommonName)
	if !ok || !s.snap.IsDevice(p) || req.Profile != pki.ProfileDevice {
		return fmt.Errorf("%w: no device %q (enrollment is for devices; users get their certificates from an administrator)", errNotFound, req.CommonName)
	}
	return nil
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
	h := s.cfg.CA.EnrollmentHandlerWith(pki.EnrollmentOptions{
		Lock:   &s.mu,
		Allow:  s.enrollable,
		Issued: s.enrolled,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// enrolled records a certificate the enrollment handler issued.
func (s *Server) enrolled(r *http.Request, cert *x509.Certificate, renewal bool) {
	name, serial := cert.Subject.CommonName, pki.SerialString(cert.SerialNumber)
	verb := "enrolled"
	if renewal {
		verb = "re-enrolled"
	}
	s.event(r, "certificate", name, "", fmt.Sprintf("%s device certificate %s for %q over EST", verb, serial, name),
		map[string]string{"serial": serial, "remote": clientIP(r), "method": "est"})
}
