package pki

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Enrollment errors.
var (
	// ErrEnrollmentTokenInvalid: the enrollment token is unknown.
	ErrEnrollmentTokenInvalid = errors.New("pki: enrollment token invalid")
	// ErrEnrollmentTokenUsed: the token enrolled a device already; it works once.
	ErrEnrollmentTokenUsed = errors.New("pki: enrollment token already used")
	// ErrEnrollmentTokenExpired: the token's lifetime is over.
	ErrEnrollmentTokenExpired = errors.New("pki: enrollment token expired")
	// ErrBadCSR: the certificate signing request is malformed or its
	// signature does not match its key.
	ErrBadCSR = errors.New("pki: bad certificate signing request")
	// ErrEnrollmentRefused: the product refused the identity a token or
	// current certificate would get (EnrollmentOptions.Allow); a token
	// stays unused.
	ErrEnrollmentRefused = errors.New("pki: enrollment refused")
)

// TokenRequest is what an administrator decides when a device is
// registered: the identity the device will get, whatever its CSR says.
type TokenRequest struct {
	Profile     Profile
	CommonName  string
	DNSNames    []string
	IPAddresses []net.IP
	// TTL of the token; zero means 24 hours.
	TTL time.Duration
	// Validity of the certificate; zero: the profile's default.
	Validity time.Duration
}

type enrollToken struct {
	req     TokenRequest
	expires time.Time
	used    bool
}

// NewEnrollmentToken returns a one-time token for a device to enroll with
// (256 random bits, base64url). Only its SHA-256 is kept, so a memory dump
// of the broker does not reveal usable tokens.
func (ca *CA) NewEnrollmentToken(req TokenRequest) (string, error) {
	// Refused now rather than when the device enrolls with the token.
	if err := CheckCommonName(req.CommonName); err != nil {
		return "", err
	}
	var raw [32]byte
	if _, err := io.ReadFull(ca.rand, raw[:]); err != nil {
		return "", fmt.Errorf("pki: enrollment token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	ttl := req.TTL
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	ca.mu.Lock()
	ca.tokens[tokenKey(token)] = &enrollToken{req: req, expires: ca.now().Add(ttl)}
	ca.mu.Unlock()
	return token, nil
}

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return string(sum[:])
}

// Enroll issues the certificate a token was made for, to the key in the
// CSR (DER). The CSR proves possession of the key by its signature; its
// subject and names are ignored, the token decides them. The token is used
// up only when a certificate is issued, so a malformed CSR can be retried.
func (ca *CA) Enroll(token string, csrDER []byte) (*x509.Certificate, error) {
	return ca.enroll(token, csrDER, EnrollmentOptions{})
}

// enroll is Enroll, asking opts.Allow under opts.Lock before it issues.
func (ca *CA) enroll(token string, csrDER []byte, opts EnrollmentOptions) (*x509.Certificate, error) {
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	if err := checkKeyStrength(csr.PublicKey); err != nil {
		return nil, err
	}
	ca.mu.Lock()
	t, ok := ca.tokens[tokenKey(token)]
	switch {
	case !ok:
		ca.mu.Unlock()
		return nil, ErrEnrollmentTokenInvalid
	case t.used:
		ca.mu.Unlock()
		return nil, ErrEnrollmentTokenUsed
	case ca.now().After(t.expires):
		ca.mu.Unlock()
		return nil, fmt.Errorf("%w: it expired at %s", ErrEnrollmentTokenExpired, t.expires.UTC().Format(time.RFC3339))
	}
	t.used = true // claimed under the lock: a concurrent Enroll with the same token fails
	ca.mu.Unlock()
	cert, err := opts.guard(t.req, func() (*x509.Certificate, error) {
		return ca.Issue(Request{Profile: t.req.Profile, CommonName: t.req.CommonName, DNSNames: t.req.DNSNames,
			IPAddresses: t.req.IPAddresses, PublicKey: csr.PublicKey, Validity: t.req.Validity})
	})
	if err != nil {
		ca.mu.Lock()
		t.used = false
		ca.mu.Unlock()
		return nil, err
	}
	return cert, nil
}

// Reenroll renews a certificate before it expires, for the key in the
// CSR: current (which the caller has verified, e.g. as the TLS client
// certificate) must be one this CA issued, unexpired and not revoked, and
// the CSR must name the same common name.
func (ca *CA) Reenroll(current *x509.Certificate, csrDER []byte) (*x509.Certificate, error) {
	return ca.reenroll(current, csrDER, EnrollmentOptions{})
}

// reenroll is Reenroll, asking opts.Allow under opts.Lock before it issues.
func (ca *CA) reenroll(current *x509.Certificate, csrDER []byte, opts EnrollmentOptions) (*x509.Certificate, error) {
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	if err := checkKeyStrength(csr.PublicKey); err != nil {
		return nil, err
	}
	if now := ca.now(); now.After(current.NotAfter) {
		return nil, fmt.Errorf("%w: the current certificate expired at %s; enroll with a new token", ErrInvalidRequest, current.NotAfter.UTC().Format(time.RFC3339))
	}
	if subtle.ConstantTimeCompare([]byte(csr.Subject.CommonName), []byte(current.Subject.CommonName)) != 1 {
		return nil, fmt.Errorf("%w: the CSR names %q, the current certificate %q", ErrInvalidRequest, csr.Subject.CommonName, current.Subject.CommonName)
	}
	rec, ok := ca.Lookup(current.SerialNumber)
	if !ok {
		return nil, fmt.Errorf("%w: serial %s", ErrNotIssued, SerialString(current.SerialNumber))
	}
	req := TokenRequest{Profile: rec.Profile, CommonName: current.Subject.CommonName, DNSNames: current.DNSNames, IPAddresses: current.IPAddresses}
	return opts.guard(req, func() (*x509.Certificate, error) { return ca.Renew(current, csr.PublicKey) })
}

// EnrollmentOptions fit EnrollmentHandlerWith to a product. The zero value
// is EnrollmentHandler's behaviour.
type EnrollmentOptions struct {
	// Allow is asked before a certificate is issued, with the identity it
	// will carry: the token's TokenRequest for simpleenroll, the current
	// certificate's profile and names for simplereenroll. An error
	// refuses the enrollment (ErrEnrollmentRefused, 403 with the error's
	// message) and leaves a token unused. A product checks here that the
	// identity still names a participant it knows: the token was made
	// earlier, and the participant may be gone. Nil allows everything.
	Allow func(TokenRequest) error
	// Lock, if set, is held from Allow until the certificate is issued
	// (the CA's OnIssue included), so that a change of the product's
	// participants cannot slip between the check and the issue. It is not
	// held while a request is read or a token is looked up, so an
	// unauthenticated client cannot hold it.
	Lock sync.Locker
	// Issued is told of each certificate the handler issued, after the
	// CA's OnIssue stored it (renewal: by simplereenroll), e.g. to write
	// an event. It runs without Lock.
	Issued func(r *http.Request, cert *x509.Certificate, renewal bool)
}

// guard runs issue under o.Lock after o.Allow agreed to req.
func (o EnrollmentOptions) guard(req TokenRequest, issue func() (*x509.Certificate, error)) (*x509.Certificate, error) {
	if o.Lock != nil {
		o.Lock.Lock()
		defer o.Lock.Unlock()
	}
	if o.Allow != nil {
		if err := o.Allow(req); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEnrollmentRefused, err)
		}
	}
	return issue()
}

func parseCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: its signature does not match its key: %w", ErrBadCSR, err)
	}
	return csr, nil
}

// maxEnrollRequest bounds an enrollment request body.
const maxEnrollRequest = 64 << 10

// ParseEnrollmentBody extracts the DER CSR from an enrollment request
// body: base64 DER as EST sends it (RFC 7030 section 4.2.1, whitespace
// allowed), a PEM "CERTIFICATE REQUEST", or raw DER.
func ParseEnrollmentBody(body []byte) ([]byte, error) {
	if len(body) > maxEnrollRequest {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrBadCSR, len(body))
	}
	trimmed := strings.TrimSpace(string(body))
	if strings.HasPrefix(trimmed, "-----BEGIN") {
		b, _ := pem.Decode([]byte(trimmed))
		if b == nil || (b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST") {
			return nil, fmt.Errorf("%w: PEM block is not a CERTIFICATE REQUEST", ErrBadCSR)
		}
		return b.Bytes, nil
	}
	if len(body) > 0 && body[0] == 0x30 { // DER SEQUENCE
		return body, nil
	}
	compact := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, trimmed)
	der, err := base64.StdEncoding.DecodeString(compact)
	if err != nil {
		return nil, fmt.Errorf("%w: body is neither base64, PEM nor DER: %w", ErrBadCSR, err)
	}
	return der, nil
}

// EnrollmentHandler serves enrollment over HTTPS, modelled on EST (RFC
// 7030) with these paths under the handler's mount point:
//
//	GET  .../cacerts         the CA certificate (PEM)
//	POST .../simpleenroll    Authorization: Bearer <token>; body: the CSR
//	POST .../simplereenroll  TLS client certificate = the current one; body: the CSR
//
// The CSR body is base64 DER (as EST), PEM or DER. Responses carry the new
// certificate and the CA certificate as application/pem-certificate-chain
// instead of EST's PKCS#7 certs-only. Errors are 400 (bad CSR or weak
// key), 401 (token unknown, used or expired; no client certificate) or 403
// (revoked or foreign client certificate), with a one-line reason. For
// simplereenroll the server's tls.Config must request client certificates
// (VerifyClientCertIfGiven with the CA in ClientCAs); the handler checks
// the certificate against this CA again.
func (ca *CA) EnrollmentHandler() http.Handler {
	return ca.EnrollmentHandlerWith(EnrollmentOptions{})
}

// EnrollmentHandlerWith is EnrollmentHandler fitted to a product by opts:
// a check of the identity before each issue (403 when it refuses), the
// product's lock around it, and a hook for each certificate issued.
func (ca *CA) EnrollmentHandlerWith(opts EnrollmentOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/cacerts") && r.Method == http.MethodGet:
			w.Header().Set("Content-Type", "application/pem-certificate-chain")
			_, _ = w.Write(EncodeCertificatesPEM(ca.cert))
			return
		case strings.HasSuffix(r.URL.Path, "/simpleenroll") && r.Method == http.MethodPost:
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || token == "" {
				http.Error(w, "enrollment needs Authorization: Bearer <token>", http.StatusUnauthorized)
				return
			}
			csr, err := readEnrollBody(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			cert, err := ca.enroll(strings.TrimSpace(token), csr, opts)
			if err == nil && opts.Issued != nil {
				opts.Issued(r, cert, false)
			}
			ca.answerEnroll(w, cert, err)
		case strings.HasSuffix(r.URL.Path, "/simplereenroll") && r.Method == http.MethodPost:
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				http.Error(w, "re-enrollment needs the current certificate as TLS client certificate", http.StatusUnauthorized)
				return
			}
			current := r.TLS.PeerCertificates[0]
			if err := ca.CheckCertificate(current); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			csr, err := readEnrollBody(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			cert, err := ca.reenroll(current, csr, opts)
			if err == nil && opts.Issued != nil {
				opts.Issued(r, cert, true)
			}
			ca.answerEnroll(w, cert, err)
		default:
			http.NotFound(w, r)
		}
	})
}

func readEnrollBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEnrollRequest+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	return ParseEnrollmentBody(body)
}

func (ca *CA) answerEnroll(w http.ResponseWriter, cert *x509.Certificate, err error) {
	switch {
	case err == nil:
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		_, _ = w.Write(EncodeCertificatesPEM(cert, ca.cert))
	case errors.Is(err, ErrEnrollmentTokenInvalid), errors.Is(err, ErrEnrollmentTokenUsed), errors.Is(err, ErrEnrollmentTokenExpired):
		http.Error(w, err.Error(), http.StatusUnauthorized)
	case errors.Is(err, ErrRevoked), errors.Is(err, ErrNotIssued), errors.Is(err, ErrEnrollmentRefused):
		http.Error(w, err.Error(), http.StatusForbidden)
	default:
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}
