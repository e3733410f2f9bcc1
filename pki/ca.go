package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"sync"
	"time"
)

// Sentinel errors of the CA; returned errors wrap them with details.
var (
	// ErrInvalidRequest reports a certificate request the CA refuses.
	ErrInvalidRequest = errors.New("pki: invalid certificate request")
	// ErrWeakKey reports a public key below the CA's minimum strength.
	ErrWeakKey = errors.New("pki: key too weak")
	// ErrNotIssued reports a serial number this CA did not issue.
	ErrNotIssued = errors.New("pki: certificate not issued by this CA")
	// ErrRevoked reports a revoked certificate.
	ErrRevoked = errors.New("pki: certificate revoked")
	// ErrNotCA reports a CA certificate or key that cannot sign.
	ErrNotCA = errors.New("pki: not a usable CA")
)

// Profile selects the key usages of an issued certificate.
type Profile int

const (
	// ProfileServer: a broker or VPN server. serverAuth, and the IKE
	// intermediate usage Windows IKEv2 clients insist on.
	ProfileServer Profile = iota
	// ProfileDevice: a plant gateway, an OpenVPN client or IKEv2
	// initiator. clientAuth and the IKE intermediate usage.
	ProfileDevice
	// ProfileUser: a service engineer's VPN or smartcard certificate.
	// clientAuth and the IKE intermediate usage.
	ProfileUser
)

func (p Profile) String() string {
	switch p {
	case ProfileServer:
		return "server"
	case ProfileDevice:
		return "device"
	case ProfileUser:
		return "user"
	}
	return fmt.Sprintf("Profile(%d)", int(p))
}

// oidIKEIntermediate is id-kp-ipsecIKE's predecessor that Windows and
// many IKEv2 peers look for (1.3.6.1.5.5.8.2.2, RFC 4945 section 5.1.3.12).
var oidIKEIntermediate = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 8, 2, 2}

// Request describes a certificate to issue.
type Request struct {
	Profile Profile
	// CommonName names the participant; the verifier maps it to the
	// account by default.
	CommonName string
	// Organization, optional.
	Organization []string
	// Subject alternative names.
	DNSNames       []string
	IPAddresses    []net.IP
	EmailAddresses []string
	URIs           []*url.URL
	// PublicKey is the participant's key (it keeps the private key).
	PublicKey crypto.PublicKey
	// Validity; zero means one year for users and devices, two for
	// servers.
	Validity time.Duration
}

// CAConfig configures NewCA.
type CAConfig struct {
	// CommonName of the root; empty means "remotegate CA".
	CommonName   string
	Organization []string
	// Key signs for the CA: a software key, a key file, or a key on a
	// PKCS#11 token. Nil generates a software key with Algorithm.
	Key crypto.Signer
	// Algorithm for a generated key; the zero value is ECDSA P-256.
	Algorithm KeyAlgorithm
	// Validity of the root; zero means ten years.
	Validity time.Duration
	// CRLValidity is how long a published CRL is valid (its next
	// update); zero means 24 hours.
	CRLValidity time.Duration
	// Rand for serial numbers and software signatures; nil: crypto/rand.
	Rand io.Reader
	// Now; nil: time.Now.
	Now func() time.Time
	// OnRevoke, if set, is called after each revocation (outside the CA's
	// lock), so that the broker can end the live sessions of the revoked
	// participant at once instead of at their next handshake.
	OnRevoke func(Record)
	// OnIssue, if set, is called after each certificate the CA signs
	// (Issue, Renew, Enroll, Reenroll; outside the CA's lock), so that the
	// broker can store the record before the certificate is handed out. An
	// error from it fails the issuing call.
	OnIssue func(Record) error
}

// CA issues, renews and revokes certificates. Its methods are safe for
// concurrent use. It keeps the records of what it issued in memory;
// Records and Restore move them to and from the broker's store.
type CA struct {
	cert        *x509.Certificate
	key         crypto.Signer
	rand        io.Reader
	now         func() time.Time
	crlValidity time.Duration
	onRevoke    func(Record)
	onIssue     func(Record) error

	mu        sync.Mutex
	issued    map[string]*Record // by SerialString
	crlNumber int64
	crlCache  []byte
	crlUntil  time.Time
	tokens    map[string]*enrollToken
}

// Record is what the CA remembers of a certificate it issued.
type Record struct {
	Certificate *x509.Certificate
	Profile     Profile
	RevokedAt   time.Time // zero: not revoked
	Reason      RevocationReason
}

// RevocationReason is the CRL reason code (RFC 5280 section 5.3.1).
type RevocationReason int

// Revocation reasons.
const (
	ReasonUnspecified          RevocationReason = 0
	ReasonKeyCompromise        RevocationReason = 1
	ReasonCACompromise         RevocationReason = 2
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonCertificateHold      RevocationReason = 6
	ReasonPrivilegeWithdrawn   RevocationReason = 9
)

// NewCA creates a self-signed root CA.
func NewCA(cfg CAConfig) (*CA, error) {
	ca := newCA(cfg)
	key := cfg.Key
	if key == nil {
		var err error
		if key, err = GenerateKey(cfg.Algorithm); err != nil {
			return nil, err
		}
	}
	name := cfg.CommonName
	if name == "" {
		name = "remotegate CA"
	}
	validity := cfg.Validity
	if validity == 0 {
		validity = 10 * 365 * 24 * time.Hour
	}
	serial, err := ca.serial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: cfg.Organization},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(ca.rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	ca.cert, ca.key = cert, key
	return ca, nil
}

// ImportCA uses an existing CA certificate and its key (a customer's own
// PKI; the key may be on a token). The certificate must be a CA allowed to
// sign certificates and CRLs, and the key must match it.
func ImportCA(cert *x509.Certificate, key crypto.Signer, cfg CAConfig) (*CA, error) {
	if cert == nil || key == nil {
		return nil, fmt.Errorf("%w: certificate and key are required", ErrNotCA)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("%w: %q is not a CA certificate (basic constraints)", ErrNotCA, cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		return nil, fmt.Errorf("%w: %q may not sign certificates and CRLs (key usage)", ErrNotCA, cert.Subject.CommonName)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%w: the key does not belong to %q", ErrNotCA, cert.Subject.CommonName)
	}
	ca := newCA(cfg)
	ca.cert, ca.key = cert, key
	return ca, nil
}

func newCA(cfg CAConfig) *CA {
	ca := &CA{rand: cfg.Rand, now: cfg.Now, crlValidity: cfg.CRLValidity, onRevoke: cfg.OnRevoke, onIssue: cfg.OnIssue,
		issued: map[string]*Record{}, tokens: map[string]*enrollToken{}}
	if ca.rand == nil {
		ca.rand = rand.Reader
	}
	if ca.now == nil {
		ca.now = time.Now
	}
	if ca.crlValidity == 0 {
		ca.crlValidity = 24 * time.Hour
	}
	return ca
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Key returns the CA's signer, e.g. to store a software key (a key on a
// token cannot be exported and needs no storing).
func (ca *CA) Key() crypto.Signer { return ca.key }

// Issue signs a certificate for req. A common name that CheckCommonName
// refuses is refused (ErrInvalidRequest).
func (ca *CA) Issue(req Request) (*x509.Certificate, error) {
	if err := CheckCommonName(req.CommonName); err != nil {
		return nil, err
	}
	if err := checkKeyStrength(req.PublicKey); err != nil {
		return nil, err
	}
	tmpl, err := ca.template(req)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(ca.rand, tmpl, ca.cert, req.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate for %q: %w", req.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse issued certificate: %w", err)
	}
	rec := Record{Certificate: cert, Profile: req.Profile}
	if ca.onIssue != nil {
		// Stored first: a certificate that is out in the world but not in
		// the store could not be revoked after a restart.
		if err := ca.onIssue(rec); err != nil {
			return nil, fmt.Errorf("pki: record certificate for %q: %w", req.CommonName, err)
		}
	}
	ca.mu.Lock()
	ca.issued[SerialString(cert.SerialNumber)] = &rec
	ca.mu.Unlock()
	return cert, nil
}

func (ca *CA) template(req Request) (*x509.Certificate, error) {
	serial, err := ca.serial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(req.PublicKey)
	if err != nil {
		return nil, err
	}
	validity := req.Validity
	if validity == 0 {
		validity = 365 * 24 * time.Hour
		if req.Profile == ProfileServer {
			validity *= 2
		}
	}
	now := ca.now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter // never outlive the CA
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName, Organization: req.Organization},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		EmailAddresses:        req.EmailAddresses,
		URIs:                  req.URIs,
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{oidIKEIntermediate},
	}
	// Stock openvpn's remote-cert-tls checks digitalSignature plus
	// keyEncipherment (RSA) or keyAgreement (EC) for servers.
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	switch req.PublicKey.(type) {
	case *rsa.PublicKey:
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	case *ecdsa.PublicKey:
		tmpl.KeyUsage |= x509.KeyUsageKeyAgreement
	}
	switch req.Profile {
	case ProfileServer:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case ProfileDevice, ProfileUser:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return nil, fmt.Errorf("%w: unknown profile %v", ErrInvalidRequest, req.Profile)
	}
	return tmpl, nil
}

// Renew issues a new certificate (new serial, new validity) with the same
// identity, profile and names as cert, for pub, or for cert's key when pub
// is nil. The old certificate stays valid until it expires or is revoked.
func (ca *CA) Renew(cert *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	ca.mu.Lock()
	rec, ok := ca.issued[SerialString(cert.SerialNumber)]
	ca.mu.Unlock()
	if !ok || !rec.Certificate.Equal(cert) {
		return nil, fmt.Errorf("%w: serial %s", ErrNotIssued, SerialString(cert.SerialNumber))
	}
	if !rec.RevokedAt.IsZero() {
		return nil, fmt.Errorf("%w: serial %s cannot be renewed", ErrRevoked, SerialString(cert.SerialNumber))
	}
	if pub == nil {
		pub = cert.PublicKey
	}
	return ca.Issue(Request{
		Profile: rec.Profile, CommonName: cert.Subject.CommonName, Organization: cert.Subject.Organization,
		DNSNames: cert.DNSNames, IPAddresses: cert.IPAddresses, EmailAddresses: cert.EmailAddresses, URIs: cert.URIs,
		PublicKey: pub, Validity: cert.NotAfter.Sub(cert.NotBefore) - 5*time.Minute,
	})
}

// Revoke marks the certificate with this serial revoked from now on. The
// next CRL lists it and OCSP answers revoked at once. Revoking twice keeps
// the first time and reason.
func (ca *CA) Revoke(serial *big.Int, reason RevocationReason) error {
	ca.mu.Lock()
	rec, ok := ca.issued[SerialString(serial)]
	if !ok {
		ca.mu.Unlock()
		return fmt.Errorf("%w: serial %s", ErrNotIssued, SerialString(serial))
	}
	fresh := rec.RevokedAt.IsZero()
	if fresh {
		rec.RevokedAt = ca.now().UTC().Truncate(time.Second)
		rec.Reason = reason
		ca.crlCache = nil
	}
	copied := *rec
	ca.mu.Unlock()
	if fresh && ca.onRevoke != nil {
		ca.onRevoke(copied)
	}
	return nil
}

// Lookup returns the record of a serial this CA issued.
func (ca *CA) Lookup(serial *big.Int) (Record, bool) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	rec, ok := ca.issued[SerialString(serial)]
	if !ok {
		return Record{}, false
	}
	return *rec, true
}

// Records returns copies of all records, for the broker's store.
func (ca *CA) Records() []Record {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	out := make([]Record, 0, len(ca.issued))
	for _, r := range ca.issued {
		out = append(out, *r)
	}
	return out
}

// Restore adds records saved with Records (certificates this CA signed).
func (ca *CA) Restore(records []Record) error {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	for _, r := range records {
		if r.Certificate == nil || r.Certificate.CheckSignatureFrom(ca.cert) != nil {
			return fmt.Errorf("%w: a restored record is not signed by this CA", ErrNotIssued)
		}
		rc := r
		ca.issued[SerialString(r.Certificate.SerialNumber)] = &rc
	}
	ca.crlCache = nil
	return nil
}

// serial returns a random positive 127-bit serial number (RFC 5280 allows
// 20 octets; randomness keeps serials unpredictable).
func (ca *CA) serial() (*big.Int, error) {
	n, err := rand.Int(ca.rand, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// checkKeyStrength refuses keys an attacker could break or that peers
// refuse: RSA below 2048 bits, curves other than P-256/P-384/P-521.
func checkKeyStrength(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA %d bits (at least 2048)", ErrWeakKey, k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256, 384, 521:
		default:
			return fmt.Errorf("%w: ECDSA curve %s", ErrWeakKey, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case nil:
		return fmt.Errorf("%w: no public key", ErrInvalidRequest)
	default:
		return fmt.Errorf("%w: unsupported public key type %T", ErrInvalidRequest, pub)
	}
	return nil
}

// subjectKeyID is the SHA-1 of the subject public key (RFC 5280 4.2.1.2
// method 1), as most CAs compute it.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	bits, err := publicKeyBits(der)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(bits)
	return sum[:], nil
}

// publicKeyBits returns the subjectPublicKey BIT STRING contents of a
// SubjectPublicKeyInfo (what key identifiers and OCSP key hashes cover).
func publicKeyBits(spkiDER []byte) ([]byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spkiDER, &spki); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return spki.PublicKey.Bytes, nil
}

func subjectPublicKeyBits(cert *x509.Certificate) ([]byte, error) {
	return publicKeyBits(cert.RawSubjectPublicKeyInfo)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}
