package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrUnknownIdentity: the certificate is valid but names no participant.
var ErrUnknownIdentity = errors.New("pki: certificate maps to no participant")

// CheckCertificate verifies that cert was issued by this CA, chains to it,
// is within its validity and is not revoked.
func (ca *CA) CheckCertificate(cert *x509.Certificate) error {
	rec, ok := ca.Lookup(cert.SerialNumber)
	if !ok || !rec.Certificate.Equal(cert) {
		return fmt.Errorf("%w: serial %s (%q)", ErrNotIssued, SerialString(cert.SerialNumber), cert.Subject.CommonName)
	}
	if !rec.RevokedAt.IsZero() {
		return fmt.Errorf("%w: %q (serial %s) at %s", ErrRevoked, cert.Subject.CommonName, SerialString(cert.SerialNumber), rec.RevokedAt.Format(time.RFC3339))
	}
	now := ca.now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("pki: %q is valid from %s to %s", cert.Subject.CommonName, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
	}
	return cert.CheckSignatureFrom(ca.cert)
}

// Verifier checks peer certificates for the transports (OpenVPN and IPsec
// servers take its methods as callbacks) and for smartcard login: chain to
// the CA, validity, extended key usage, revocation status, and the
// participant the certificate names.
type Verifier struct {
	// CA whose certificates are accepted and whose records give the
	// revocation status at once (no CRL lag).
	CA *CA
	// Usage required of the peer: x509.ExtKeyUsageClientAuth for clients
	// (the zero value, ExtKeyUsageAny, is treated as ClientAuth).
	Usage x509.ExtKeyUsage
	// Identity maps a verified certificate to a participant name; nil
	// takes the subject common name.
	Identity func(*x509.Certificate) (string, error)
}

// Verify checks a peer's chain (leaf first, as TLS delivers it) and
// returns the participant it names.
func (v *Verifier) Verify(chain []*x509.Certificate) (string, error) {
	if v.CA == nil {
		return "", fmt.Errorf("%w: Verifier without CA", ErrNotCA)
	}
	if len(chain) == 0 {
		return "", fmt.Errorf("%w: no certificate", ErrInvalidRequest)
	}
	leaf := chain[0]
	roots := x509.NewCertPool()
	roots.AddCert(v.CA.cert)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	usage := v.Usage
	if usage == x509.ExtKeyUsageAny {
		usage = x509.ExtKeyUsageClientAuth
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: v.CA.now(),
		KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return "", fmt.Errorf("pki: %q: %w", leaf.Subject.CommonName, err)
	}
	if err := v.CA.CheckCertificate(leaf); err != nil {
		return "", err
	}
	id := leaf.Subject.CommonName
	if v.Identity != nil {
		var err error
		if id, err = v.Identity(leaf); err != nil {
			return "", err
		}
	}
	if id == "" {
		return "", fmt.Errorf("%w: %q", ErrUnknownIdentity, leaf.Subject.String())
	}
	return id, nil
}

// UserFromRequest is the server side of smartcard login: it maps the
// client certificate of an HTTPS request (the server's tls.Config must
// request one, e.g. VerifyClientCertIfGiven with the CA in ClientCAs) to
// the user it names, checking it again against the CA, including
// revocation.
func (v *Verifier) UserFromRequest(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", fmt.Errorf("%w: no client certificate", ErrUnknownIdentity)
	}
	return v.Verify(r.TLS.PeerCertificates)
}

// VerifyConnection is a tls.Config.VerifyConnection callback: the openvpn
// server takes it (ServerConfig.TLS), so a revoked certificate is refused
// at its next handshake.
func (v *Verifier) VerifyConnection(cs tls.ConnectionState) error {
	_, err := v.Verify(cs.PeerCertificates)
	return err
}
