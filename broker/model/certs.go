package model

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// Certificates: every one that names a user is within the actor's rights
// only if the actor holds every right of that user (it logs in as the
// user), and a client certificate names a participant that exists (see
// grants.go). The checks and the issue are made under the lock that
// configuration changes take, so that the participant a check saw is the
// one the certificate is for. Each issue, renewal, export and revocation is
// recorded in the event log with its serial (pki.SerialString).

func (m *Manager) ca() (*pki.CA, error) {
	if m.cfg.CA == nil {
		return nil, fmt.Errorf("%w: no CA", ErrConfig)
	}
	return m.cfg.CA, nil
}

// Certificate returns the CA's record of the certificate with serial.
func (m *Manager) Certificate(serial *big.Int) (pki.Record, error) {
	ca, err := m.ca()
	if err != nil {
		return pki.Record{}, err
	}
	rec, ok := ca.Lookup(serial)
	if !ok {
		return pki.Record{}, fmt.Errorf("%w: no certificate with serial %s", ErrNotFound, pki.SerialString(serial))
	}
	return rec, nil
}

// issueFor issues the certificate req describes (or, with issue set, the
// one issue makes) for a, if a may hold a certificate in its name.
func (m *Manager) issueFor(a actor, verb string, req pki.Request, issue func() (*x509.Certificate, error)) (*x509.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil {
		return nil, errNotLoaded
	}
	if err := mayCertify(a, m.snap, verb, req.CommonName); err != nil {
		return nil, err
	}
	if err := checkSubject(m.snap, req.CommonName, req.Profile); err != nil {
		return nil, err
	}
	if issue == nil {
		issue = func() (*x509.Certificate, error) { return m.cfg.CA.Issue(req) }
	}
	return issue()
}

// IssueCertificate issues a certificate of profile for the common name cn
// to the public key pub; with pub nil it makes a key (ECDSA P-256) and
// returns it too. A user's or device's certificate names a participant of
// the model; a CA's refusal is ErrInvalid.
func (m *Manager) IssueCertificate(ctx context.Context, actorName, cn string, profile pki.Profile, pub crypto.PublicKey) (*x509.Certificate, crypto.Signer, error) {
	ca, err := m.ca()
	if err != nil {
		return nil, nil, err
	}
	// A user's or device's certificate names a participant: its common
	// name follows the model's rule for names (the CA itself refuses only
	// what no certificate may carry).
	if profile != pki.ProfileServer {
		if err := policy.ValidName(cn); err != nil {
			return nil, nil, fmt.Errorf("%w: common_name: %w", ErrInvalid, err)
		}
	}
	var key crypto.Signer
	if pub == nil {
		if key, err = pki.GenerateKey(pki.ECDSAP256); err != nil {
			return nil, nil, fmt.Errorf("model: a key: %w", err)
		}
		pub = key.Public()
	}
	cert, err := m.issueFor(actorOf(actorName), "issue", pki.Request{Profile: profile, CommonName: cn, PublicKey: pub}, func() (*x509.Certificate, error) {
		c, err := ca.Issue(pki.Request{Profile: profile, CommonName: cn, PublicKey: pub})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return c, nil
	})
	if err != nil {
		return nil, nil, err
	}
	m.recordIssued(ctx, actorName, "issued", cert, profile)
	return cert, key, nil
}

func (m *Manager) recordIssued(ctx context.Context, actor, verb string, cert *x509.Certificate, profile pki.Profile) {
	serial := pki.SerialString(cert.SerialNumber)
	m.Record(ctx, "certificate", cert.Subject.CommonName, actor, fmt.Sprintf("%s %s certificate %s for %q", verb, profile, serial, cert.Subject.CommonName),
		map[string]string{"serial": serial})
}

// RenewCertificate issues a successor of the certificate with serial, for
// the same participant and profile, to pub (nil: the same key).
func (m *Manager) RenewCertificate(ctx context.Context, actorName string, serial *big.Int, pub crypto.PublicKey) (*x509.Certificate, error) {
	rec, err := m.Certificate(serial)
	if err != nil {
		return nil, err
	}
	cert, err := m.issueFor(actorOf(actorName), "renew", pki.Request{Profile: rec.Profile, CommonName: rec.Certificate.Subject.CommonName}, func() (*x509.Certificate, error) {
		c, err := m.cfg.CA.Renew(rec.Certificate, pub)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	m.recordIssued(ctx, actorName, "renewed", cert, rec.Profile)
	return cert, nil
}

// RevokeCertificate revokes the certificate with serial, stores the
// revocation, and ends the live tunnel of the participant it names (whose
// next handshake the verifier refuses, asking the CA) and, for a user's
// certificate, that user's sessions of the management API and console.
// It returns the record as revoked.
func (m *Manager) RevokeCertificate(ctx context.Context, actorName string, serial *big.Int, reason pki.RevocationReason) (pki.Record, error) {
	rec, err := m.Certificate(serial)
	if err != nil {
		return pki.Record{}, err
	}
	// Revoking a user's certificate locks the user out of certificate
	// login: only an actor holding every right of the user may.
	m.mu.Lock()
	if err = errNotLoaded; m.snap != nil {
		err = mayCertify(actorOf(actorName), m.snap, "revoke", rec.Certificate.Subject.CommonName)
	}
	m.mu.Unlock()
	if err != nil {
		return pki.Record{}, err
	}
	text := pki.SerialString(serial)
	if err := m.cfg.CA.Revoke(serial, reason); err != nil {
		return pki.Record{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	rec, ok := m.cfg.CA.Lookup(serial)
	if !ok {
		return pki.Record{}, fmt.Errorf("model: certificate %s revoked, but the CA no longer lists it", text)
	}
	if err := m.cfg.Store.RevokeCertificate(ctx, text, rec.RevokedAt, rec.Reason); err != nil {
		return pki.Record{}, err
	}
	name := rec.Certificate.Subject.CommonName
	m.cfg.Broker.Terminate(name, fmt.Errorf("certificate %s revoked", text))
	// A user's certificate also logs in to the API and the console (a
	// smartcard): the sessions it may have opened end with it. A token
	// does not record how it was made, so every session of the user ends;
	// a password logs in again.
	if rec.Profile == pki.ProfileUser {
		if err := m.cfg.Store.DeleteTokensOf(ctx, name); err != nil {
			return pki.Record{}, fmt.Errorf("model: certificate %s revoked, but the sessions of %q did not end: %w", text, name, err)
		}
	}
	m.Record(ctx, "certificate", name, actorName, fmt.Sprintf("revoked certificate %s of %q", text, name),
		map[string]string{"serial": text})
	return rec, nil
}

// ParticipantKind returns the certificate profile of the participant
// called name: ProfileDevice for a device, ProfileUser for a user,
// ErrNotFound for neither (ErrInvalid for a name outside the rule).
func (m *Manager) ParticipantKind(ctx context.Context, name string) (pki.Profile, error) {
	// Every participant's name passes the rule (Compile checks it); this
	// keeps a name that does not out of certificates and file names.
	if err := policy.ValidName(name); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	cfg, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return 0, err
	}
	switch {
	case devices.find(cfg, name) >= 0:
		return pki.ProfileDevice, nil
	case users.find(cfg, name) >= 0:
		return pki.ProfileUser, nil
	}
	return 0, fmt.Errorf("%w: no participant %q", ErrNotFound, name)
}

// ExportCertificate issues a fresh key and certificate for the participant
// called name, to be handed out in a profile of the kind what (".ovpn",
// "pkcs12", as the event log will say); rendering it is the caller's.
func (m *Manager) ExportCertificate(ctx context.Context, actorName, name, what string) (*x509.Certificate, crypto.Signer, error) {
	if _, err := m.ca(); err != nil {
		return nil, nil, err
	}
	kind, err := m.ParticipantKind(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return nil, nil, fmt.Errorf("model: a key: %w", err)
	}
	// The names Apple's IKEv2 client sends as its identity (profile.ClientNames).
	dns, email, err := profile.ClientNames(name)
	if err != nil {
		return nil, nil, err
	}
	cert, err := m.issueFor(actorOf(actorName), "export", pki.Request{Profile: kind, CommonName: name, DNSNames: dns, EmailAddresses: email, PublicKey: key.Public()}, nil)
	if err != nil {
		return nil, nil, err
	}
	serial := pki.SerialString(cert.SerialNumber)
	m.Record(ctx, "certificate", name, actorName, fmt.Sprintf("exported a %s profile with certificate %s for %q", what, serial, name),
		map[string]string{"serial": serial})
	return cert, key, nil
}

// Enrollment token lifetimes: the default, and the longest. A token is
// worth a certificate in the device's name to whoever holds it, so it
// lives no longer than the way from the administrator to the gateway
// needs.
const (
	DefaultEnrollmentTTL = 24 * time.Hour
	MaxEnrollmentTTL     = 7 * 24 * time.Hour
)

// EnrollmentToken makes a one-time token with which the device called
// name enrols over EST (pki.CA.EnrollmentHandler), valid for ttl (zero:
// DefaultEnrollmentTTL; at most MaxEnrollmentTTL). The token is a secret:
// the event log records that one was made, not what it is.
func (m *Manager) EnrollmentToken(ctx context.Context, actorName, name string, ttl time.Duration) (token string, expires time.Time, err error) {
	ca, err := m.ca()
	if err != nil {
		return "", time.Time{}, err
	}
	if err := policy.ValidName(name); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	switch {
	case ttl == 0:
		ttl = DefaultEnrollmentTTL
	case ttl < 0 || ttl > MaxEnrollmentTTL:
		return "", time.Time{}, fmt.Errorf("%w: an enrollment token lives up to %v", ErrInvalid, MaxEnrollmentTTL)
	}
	req := pki.TokenRequest{Profile: pki.ProfileDevice, CommonName: name, TTL: ttl}
	// Checked and made under the lock of configuration changes: the
	// device the check saw is the one the token is for.
	m.mu.Lock()
	err = m.enrollable(req)
	if err == nil {
		expires = m.now().Add(ttl).UTC()
		token, err = ca.NewEnrollmentToken(req)
	}
	m.mu.Unlock()
	if err != nil {
		return "", time.Time{}, err
	}
	m.Record(ctx, "certificate", name, actorName, fmt.Sprintf("created an enrollment token for device %q, valid until %s", name, expires.Format(time.RFC3339)),
		map[string]string{"expires": expires.Format(time.RFC3339)})
	return token, expires, nil
}

// enrollable refuses (ErrNotFound) an enrollment for anything but a
// device of the model in force; m.mu is held. A token outlives the check
// made when it was created: the device may have been deleted since, and a
// certificate for a name nobody holds would wait for whoever is created
// under it (see checkSubject).
func (m *Manager) enrollable(req pki.TokenRequest) error {
	if m.snap == nil {
		return errNotLoaded
	}
	p, ok := m.snap.Lookup(req.CommonName)
	if !ok || !m.snap.IsDevice(p) || req.Profile != pki.ProfileDevice {
		return fmt.Errorf("%w: no device %q (enrollment is for devices; users get their certificates from an administrator)", ErrNotFound, req.CommonName)
	}
	return nil
}

// EnrollmentOptions are the broker's checks for pki.CA.EnrollmentHandlerWith:
// a certificate is issued only for a device of the model in force, under
// the lock configuration changes take, and each is recorded in the event
// log with its serial and the client's address.
func (m *Manager) EnrollmentOptions() pki.EnrollmentOptions {
	return pki.EnrollmentOptions{Lock: &m.mu, Allow: m.enrollable, Issued: m.enrolled}
}

// enrolled records a certificate the enrollment handler issued.
func (m *Manager) enrolled(r *http.Request, cert *x509.Certificate, renewal bool) {
	name, serial := cert.Subject.CommonName, pki.SerialString(cert.SerialNumber)
	verb := "enrolled"
	if renewal {
		verb = "re-enrolled"
	}
	m.Record(r.Context(), "certificate", name, "", fmt.Sprintf("%s device certificate %s for %q over EST", verb, serial, name),
		map[string]string{"serial": serial, "remote": RemoteIP(r.RemoteAddr), "method": "est"})
}

// RemoteIP is the address of a request's RemoteAddr without the port, as
// the event log records a client.
func RemoteIP(remoteAddr string) string {
	host := remoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}
