package pki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"
)

// CRL returns the current certificate revocation list, DER-encoded and
// signed by the CA, listing every revoked certificate that has not
// expired. It is valid for CAConfig.CRLValidity; the same CRL is returned
// until a revocation or until half of that has passed, so that clients
// fetching it often do not make the CA sign (possibly on a slow token)
// every time.
func (ca *CA) CRL() ([]byte, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	now := ca.now()
	if ca.crlCache != nil && now.Before(ca.crlUntil) {
		return ca.crlCache, nil
	}
	var entries []x509.RevocationListEntry
	for _, r := range ca.issued {
		if r.RevokedAt.IsZero() || now.After(r.Certificate.NotAfter) {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber: r.Certificate.SerialNumber, RevocationTime: r.RevokedAt, ReasonCode: int(r.Reason),
		})
	}
	slices.SortFunc(entries, func(a, b x509.RevocationListEntry) int { return a.SerialNumber.Cmp(b.SerialNumber) })
	ca.crlNumber++
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(ca.crlNumber),
		ThisUpdate:                now.Add(-time.Minute),
		NextUpdate:                now.Add(ca.crlValidity),
	}
	der, err := x509.CreateRevocationList(ca.rand, tmpl, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CRL: %w", err)
	}
	ca.crlCache, ca.crlUntil = der, now.Add(ca.crlValidity/2)
	return der, nil
}

// CRLPEM returns the CRL in PEM, as an OpenVPN server's crl-verify file
// (or an inline <crl-verify> block) takes it.
func (ca *CA) CRLPEM() ([]byte, error) {
	der, err := ca.CRL()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// CRLHandler serves the CRL over HTTP: DER as application/pkix-crl (RFC
// 5280 section 4.2.1.13 distribution points), or PEM when the path ends
// in ".pem" or the client asks for it with ?format=pem.
func (ca *CA) CRLHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		der, err := ca.CRL()
		if err != nil {
			http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
			return
		}
		body, ctype := der, "application/pkix-crl"
		if strings.HasSuffix(r.URL.Path, ".pem") || r.URL.Query().Get("format") == "pem" {
			body, ctype = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), "application/x-pem-file"
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(body)
	})
}
