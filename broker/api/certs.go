package api

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// certView is a certificate record as the API shows it.
type certView struct {
	Serial     string                `json:"serial"`
	CommonName string                `json:"common_name"`
	Profile    string                `json:"profile"`
	NotBefore  time.Time             `json:"not_before"`
	NotAfter   time.Time             `json:"not_after"`
	RevokedAt  *time.Time            `json:"revoked_at,omitempty"`
	Reason     *pki.RevocationReason `json:"reason,omitempty"`
}

func viewCert(r pki.Record) certView {
	c := r.Certificate
	v := certView{Serial: serialText(c.SerialNumber), CommonName: c.Subject.CommonName, Profile: r.Profile.String(),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter}
	if !r.RevokedAt.IsZero() {
		at, reason := r.RevokedAt, r.Reason
		v.RevokedAt, v.Reason = &at, &reason
	}
	return v
}

// serialText is the serial number as the API, the store and the events
// write it: pki.SerialString.
func serialText(n *big.Int) string { return pki.SerialString(n) }

func parseSerial(s string) (*big.Int, bool) {
	n, ok := new(big.Int).SetString(s, 16)
	return n, ok && n.Sign() > 0
}

func parseProfile(s string) (pki.Profile, error) {
	for _, p := range []pki.Profile{pki.ProfileServer, pki.ProfileUser, pki.ProfileDevice} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("profile %q: want server, user or device", s)
}

func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request, _ *caller) {
	out := []certView{}
	for _, rec := range s.cfg.CA.Records() {
		out = append(out, viewCert(rec))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) record(w http.ResponseWriter, r *http.Request) (pki.Record, bool) {
	serial, ok := parseSerial(r.PathValue("serial"))
	if !ok {
		writeError(w, http.StatusBadRequest, "serial: want hexadecimal digits")
		return pki.Record{}, false
	}
	rec, ok := s.cfg.CA.Lookup(serial)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no certificate with serial %s", r.PathValue("serial")))
		return pki.Record{}, false
	}
	return rec, true
}

func (s *Server) getCertificate(w http.ResponseWriter, r *http.Request, _ *caller) {
	rec, ok := s.record(w, r)
	if !ok {
		return
	}
	if r.URL.Query().Get("format") == "pem" {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(pki.EncodeCertificatesPEM(rec.Certificate))
		return
	}
	writeJSON(w, http.StatusOK, viewCert(rec))
}

type issued struct {
	Certificate    certView `json:"certificate"`
	CertificatePEM string   `json:"certificate_pem"`
	KeyPEM         string   `json:"key_pem,omitempty"`
}

// publicKeyOf returns the key of a PEM certificate request, checking its
// signature (the requester holds the private key).
func publicKeyOf(csrPEM string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("csr: want a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return csr.PublicKey, nil
}

func (s *Server) issueCertificate(w http.ResponseWriter, r *http.Request, c *caller) {
	req, ok := decode[struct {
		CommonName string `json:"common_name"`
		Profile    string `json:"profile"`
		CSR        string `json:"csr,omitempty"`
	}](w, r)
	if !ok {
		return
	}
	profile, err := parseProfile(req.Profile)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A user's or device's certificate names a participant: its common
	// name follows the model's rule for names (the CA itself refuses only
	// what no certificate may carry).
	if profile != pki.ProfileServer {
		if err := policy.ValidName(req.CommonName); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("common_name: %v", err))
			return
		}
	}
	var key crypto.Signer
	var pub crypto.PublicKey
	if req.CSR != "" {
		if pub, err = publicKeyOf(req.CSR); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	} else {
		if key, err = pki.GenerateKey(pki.ECDSAP256); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		pub = key.Public()
	}
	cert, err := s.issueFor(c, "issue", pki.Request{Profile: profile, CommonName: req.CommonName, PublicKey: pub}, nil)
	if err != nil {
		writeCertError(w, err, http.StatusBadRequest)
		return
	}
	s.writeIssued(w, r, c, "issued", cert, profile, key)
}

// issueFor issues the certificate req describes (or, with issue set, the
// one issue makes) for c, if c may hold a certificate in its name (see
// mayCertify and checkSubject). The check and the issue are made under the
// lock that configuration changes take, so that the user the check saw is
// the user the certificate is issued for.
func (s *Server) issueFor(c *caller, verb string, req pki.Request, issue func() (*x509.Certificate, error)) (*x509.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := mayCertify(c, s.snap, verb, req.CommonName); err != nil {
		return nil, err
	}
	if err := checkSubject(s.snap, req.CommonName, req.Profile); err != nil {
		return nil, err
	}
	if issue == nil {
		issue = func() (*x509.Certificate, error) { return s.cfg.CA.Issue(req) }
	}
	return issue()
}

// writeCertError answers a refused certificate: 403 for one beyond the
// caller's rights, 400 for one that names no participant, otherwise (the
// CA's refusal) status.
func writeCertError(w http.ResponseWriter, err error, status int) {
	switch {
	case errors.Is(err, errForbidden):
		status = http.StatusForbidden
	case errors.Is(err, errInvalid):
		status = http.StatusBadRequest
	}
	writeError(w, status, err.Error())
}

func (s *Server) writeIssued(w http.ResponseWriter, r *http.Request, c *caller, verb string, cert *x509.Certificate, profile pki.Profile, key crypto.Signer) {
	out := issued{Certificate: viewCert(pki.Record{Certificate: cert, Profile: profile}), CertificatePEM: string(pki.EncodeCertificatesPEM(cert))}
	if key != nil {
		keyPEM, err := pki.MarshalPrivateKeyPEM(key, nil)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		out.KeyPEM = string(keyPEM)
	}
	s.event(r, "certificate", cert.Subject.CommonName, c.name, fmt.Sprintf("%s %s certificate %s for %q", verb, profile, out.Certificate.Serial, cert.Subject.CommonName),
		map[string]string{"serial": out.Certificate.Serial})
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) renewCertificate(w http.ResponseWriter, r *http.Request, c *caller) {
	req, ok := decode[struct {
		CSR string `json:"csr,omitempty"`
	}](w, r)
	if !ok {
		return
	}
	rec, ok := s.record(w, r)
	if !ok {
		return
	}
	var pub crypto.PublicKey
	if req.CSR != "" {
		var err error
		if pub, err = publicKeyOf(req.CSR); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	cert, err := s.issueFor(c, "renew", pki.Request{Profile: rec.Profile, CommonName: rec.Certificate.Subject.CommonName}, func() (*x509.Certificate, error) {
		return s.cfg.CA.Renew(rec.Certificate, pub)
	})
	if err != nil {
		writeCertError(w, err, http.StatusBadRequest)
		return
	}
	s.writeIssued(w, r, c, "renewed", cert, rec.Profile, nil)
}

// revokeCertificate revokes, stores the revocation, and ends the live
// session of the participant the certificate names (its next handshake is
// refused by the verifier, which asks the CA) and, for a user's
// certificate, that user's sessions of the management API.
func (s *Server) revokeCertificate(w http.ResponseWriter, r *http.Request, c *caller) {
	req, ok := decode[struct {
		Reason pki.RevocationReason `json:"reason,omitempty"`
	}](w, r)
	if !ok {
		return
	}
	rec, ok := s.record(w, r)
	if !ok {
		return
	}
	serial := rec.Certificate.SerialNumber
	// Revoking a user's certificate locks the user out of certificate
	// login: only a caller holding every right of the user may.
	s.mu.Lock()
	err := mayCertify(c, s.snap, "revoke", rec.Certificate.Subject.CommonName)
	s.mu.Unlock()
	if err != nil {
		writeCertError(w, err, http.StatusInternalServerError)
		return
	}
	if err := s.cfg.CA.Revoke(serial, req.Reason); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rec, ok = s.cfg.CA.Lookup(serial)
	if !ok {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("certificate %s revoked, but the CA no longer lists it", serialText(serial)))
		return
	}
	if err := s.cfg.Store.RevokeCertificate(r.Context(), serialText(serial), rec.RevokedAt, rec.Reason); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	name := rec.Certificate.Subject.CommonName
	s.cfg.Broker.Terminate(name, fmt.Errorf("certificate %s revoked", serialText(serial)))
	// A user's certificate also logs in to this API and the console (a
	// smartcard): the sessions it may have opened end with it. A token
	// does not record how it was made, so every session of the user ends,
	// the caller's too if it is that user; a password logs in again.
	if rec.Profile == pki.ProfileUser {
		if err := s.cfg.Store.DeleteTokensOf(r.Context(), name); err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("certificate %s revoked, but the sessions of %q did not end: %v", serialText(serial), name, err))
			return
		}
	}
	s.event(r, "certificate", name, c.name, fmt.Sprintf("revoked certificate %s of %q", serialText(serial), name),
		map[string]string{"serial": serialText(serial)})
	writeJSON(w, http.StatusOK, viewCert(rec))
}

// exportProfile issues a fresh certificate and key for a participant and
// returns them as an OpenVPN profile or a PKCS#12 file.
func (s *Server) exportProfile(w http.ResponseWriter, r *http.Request, c *caller) {
	s.export(w, r, c, r.PathValue("name"), false)
}

// export is exportProfile for name; self marks the caller's own profile,
// which counts against Config.ProfileLimit (see ProfileLimit).
func (s *Server) export(w http.ResponseWriter, r *http.Request, c *caller, name string, self bool) {
	req, ok := decode[struct {
		Format   string `json:"format"`
		Password string `json:"password,omitempty"`
	}](w, r)
	if !ok {
		return
	}
	// Every participant's name passes the rule (Compile checks it); this
	// keeps a name that does not out of the certificate, the renderers and
	// the Content-Disposition header all the same.
	if err := policy.ValidName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cfg, err := s.cfg.Store.Config(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	kind := pki.ProfileUser
	switch {
	case devices.find(cfg, name) >= 0:
		kind = pki.ProfileDevice
	case users.find(cfg, name) < 0:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no participant %q", name))
		return
	}
	switch req.Format {
	case "ovpn":
		if s.cfg.Profile == nil {
			writeError(w, http.StatusBadRequest, "this broker exports no .ovpn profiles")
			return
		}
	case "swanctl":
		if s.cfg.SwanctlProfile == nil {
			writeError(w, http.StatusBadRequest, "this broker exports no strongSwan profiles")
			return
		}
	case "pkcs12":
		if req.Password == "" {
			writeError(w, http.StatusBadRequest, "a PKCS#12 file needs a password")
			return
		}
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: want ovpn, swanctl or pkcs12", req.Format))
		return
	}
	// What counts is a certificate issued: a request refused before that
	// gives its count back.
	giveBack := func() {}
	if self {
		if giveBack = s.takeOwnProfile(w, name); giveBack == nil {
			return
		}
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		giveBack()
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	cert, err := s.issueFor(c, "export", pki.Request{Profile: kind, CommonName: name, PublicKey: key.Public()}, nil)
	if err != nil {
		giveBack()
		writeCertError(w, err, http.StatusInternalServerError)
		return
	}
	format, err := profile.ParseFormat(req.Format)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	fileName, err := format.FileName(name)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var body bytes.Buffer
	if format == profile.FormatOpenVPN || format == profile.FormatSwanctl {
		render := s.cfg.Profile
		if format == profile.FormatSwanctl {
			render = s.cfg.SwanctlProfile
		}
		keyPEM, err := pki.MarshalPrivateKeyPEM(key, nil)
		if err == nil {
			err = render(&body, name, pki.EncodeCertificatesPEM(cert), keyPEM)
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
	} else {
		p12 := profile.PKCS12{Key: key, Cert: cert, Chain: []*x509.Certificate{s.cfg.CA.Certificate()}, Password: req.Password}
		if _, err := p12.WriteTo(&body); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	s.event(r, "certificate", name, c.name, fmt.Sprintf("exported a %s profile with certificate %s for %q", req.Format, serialText(cert.SerialNumber), name),
		map[string]string{"serial": serialText(cert.SerialNumber)})
	w.Header().Set("Content-Type", format.ContentType())
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fileName))
	_, _ = w.Write(body.Bytes())
}
