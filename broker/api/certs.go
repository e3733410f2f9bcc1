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

// record answers 400 for a serial that is not hexadecimal, and the
// model's error (404) for one the CA does not know.
func (s *Server) record(w http.ResponseWriter, r *http.Request) (pki.Record, bool) {
	serial, ok := parseSerial(r.PathValue("serial"))
	if !ok {
		writeError(w, http.StatusBadRequest, "serial: want hexadecimal digits")
		return pki.Record{}, false
	}
	rec, err := s.m.Certificate(serial)
	if err != nil {
		writeModelError(w, err)
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
	var pub crypto.PublicKey // nil: the model makes a key
	if req.CSR != "" {
		if pub, err = publicKeyOf(req.CSR); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	cert, key, err := s.m.IssueCertificate(r.Context(), c.name, req.CommonName, profile, pub)
	if err != nil {
		writeModelError(w, err)
		return
	}
	writeIssued(w, cert, profile, key)
}

func writeIssued(w http.ResponseWriter, cert *x509.Certificate, profile pki.Profile, key crypto.Signer) {
	out := issued{Certificate: viewCert(pki.Record{Certificate: cert, Profile: profile}), CertificatePEM: string(pki.EncodeCertificatesPEM(cert))}
	if key != nil {
		keyPEM, err := pki.MarshalPrivateKeyPEM(key, nil)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		out.KeyPEM = string(keyPEM)
	}
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
	cert, err := s.m.RenewCertificate(r.Context(), c.name, rec.Certificate.SerialNumber, pub)
	if err != nil {
		writeModelError(w, err)
		return
	}
	writeIssued(w, cert, rec.Profile, nil)
}

// revokeCertificate revokes (see model.Manager.RevokeCertificate: the
// participant's tunnel and, for a user, its API sessions end).
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
	rec, err := s.m.RevokeCertificate(r.Context(), c.name, rec.Certificate.SerialNumber, req.Reason)
	if err != nil {
		writeModelError(w, err)
		return
	}
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
	kind, err := s.m.ParticipantKind(r.Context(), name)
	if err != nil {
		writeModelError(w, err)
		return
	}
	switch req.Format {
	case string(profile.FormatApple), string(profile.FormatWindows), string(profile.FormatAndroid):
		switch {
		case s.cfg.NativeProfile == nil:
			writeError(w, http.StatusBadRequest, "this broker exports no profiles for native IKEv2 clients")
			return
		case kind != pki.ProfileUser:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: profiles for native IKEv2 clients are for users", req.Format))
			return
		case req.Password == "":
			writeError(w, http.StatusBadRequest, fmt.Sprintf("a %s profile needs a password for its PKCS#12 file", req.Format))
			return
		}
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
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: want ovpn, swanctl, pkcs12, mobileconfig, powershell or sswan", req.Format))
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
	cert, key, err := s.m.ExportCertificate(r.Context(), c.name, name, req.Format)
	if err != nil {
		giveBack()
		writeModelError(w, err)
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
	} else if format.Native() {
		if err := s.cfg.NativeProfile(&body, format, name, cert, key, req.Password); err != nil {
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
	w.Header().Set("Content-Type", format.ContentType())
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fileName))
	_, _ = w.Write(body.Bytes())
}
