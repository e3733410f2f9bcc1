package pki

import (
	"crypto"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"
)

// maxOCSPRequest bounds a request body; real requests are ~100 bytes.
const maxOCSPRequest = 8 << 10

// OCSPHandler answers OCSP requests (RFC 6960) for certificates this CA
// issued: POST with an application/ocsp-request body, or GET with the
// base64 request in the path (appendix A.1). Responses are signed by the
// CA itself (no delegated responder) and valid for an hour.
func (ca *CA) OCSPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var raw []byte
		var err error
		switch r.Method {
		case http.MethodPost:
			raw, err = io.ReadAll(io.LimitReader(r.Body, maxOCSPRequest+1))
			if err == nil && len(raw) > maxOCSPRequest {
				err = fmt.Errorf("request too large")
			}
		case http.MethodGet:
			var p string
			if p, err = url.PathUnescape(r.URL.Path); err == nil {
				p = p[strings.LastIndexByte(p, '/')+1:]
				raw, err = base64.StdEncoding.DecodeString(p)
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var resp []byte
		if err == nil {
			resp, err = ca.OCSPResponse(raw)
		}
		if err != nil {
			resp = ocsp.MalformedRequestErrorResponse
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(resp)
	})
}

// OCSPResponse answers one DER-encoded OCSP request: good, revoked (with
// time and reason) or unknown (a serial this CA did not issue, or a
// request about another issuer).
func (ca *CA) OCSPResponse(request []byte) ([]byte, error) {
	req, err := ocsp.ParseRequest(request)
	if err != nil {
		return nil, fmt.Errorf("%w: OCSP request: %w", ErrInvalidRequest, err)
	}
	now := ca.now()
	tmpl := ocsp.Response{
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now.Add(-time.Minute),
		NextUpdate:   now.Add(time.Hour),
		Status:       ocsp.Unknown,
		IssuerHash:   req.HashAlgorithm,
	}
	if ca.isIssuer(req) {
		if rec, ok := ca.Lookup(req.SerialNumber); ok {
			tmpl.Status = ocsp.Good
			if !rec.RevokedAt.IsZero() {
				tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, rec.RevokedAt, int(rec.Reason)
			}
		}
	}
	if tmpl.IssuerHash == 0 || !tmpl.IssuerHash.Available() {
		tmpl.IssuerHash = crypto.SHA1
	}
	der, err := ocsp.CreateResponse(ca.cert, ca.cert, tmpl, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign OCSP response: %w", err)
	}
	return der, nil
}

// isIssuer reports whether the request's issuer hashes name this CA.
func (ca *CA) isIssuer(req *ocsp.Request) bool {
	if !req.HashAlgorithm.Available() {
		return false
	}
	h := req.HashAlgorithm.New()
	h.Write(ca.cert.RawSubject)
	nameHash := h.Sum(nil)
	keyID, err := subjectPublicKeyBits(ca.cert)
	if err != nil {
		return false
	}
	h = req.HashAlgorithm.New()
	h.Write(keyID)
	keyHash := h.Sum(nil)
	return string(nameHash) == string(req.IssuerNameHash) && string(keyHash) == string(req.IssuerKeyHash)
}
