package swaninterop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// KeyType selects the key algorithm of a CA or an end-entity certificate.
type KeyType int

const (
	// ECDSAP256 is an ECDSA key on NIST P-256 (the zero value).
	ECDSAP256 KeyType = iota
	// RSA2048 is a 2048-bit RSA key.
	RSA2048
)

func (k KeyType) String() string {
	switch k {
	case ECDSAP256:
		return "ECDSA-P256"
	case RSA2048:
		return "RSA-2048"
	}
	return fmt.Sprintf("KeyType(%d)", int(k))
}

func (k KeyType) generate() (crypto.Signer, error) {
	switch k {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("swaninterop: unknown key type %d", int(k))
}

// CA is a throw-away certificate authority whose certificates strongSwan
// accepts (notes §8.1, pitfall 14): basicConstraints CA:TRUE and keyUsage
// keyCertSign|cRLSign, both critical.
type CA struct {
	Name    string // the subject CN
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	serial  atomic.Int64
}

// Leaf is an end-entity certificate with its key. KeyPEM is PKCS#8
// ("PRIVATE KEY"), which strongSwan's pkcs8 plugin reads for both key types.
type Leaf struct {
	ID      string // the IKE identity the certificate was issued for
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// certValidity is generous on both ends so that clock skew between test
// steps never matters.
const certValidity = 48 * time.Hour

// NewCA makes a self-signed CA with the given subject CN and key type.
func NewCA(t testing.TB, cn string, keyType KeyType) *CA {
	t.Helper()
	key, err := keyType.generate()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"remotegate test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		IsCA:                  true,
		BasicConstraintsValid: true, // Go always marks basicConstraints critical
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Name: cn, Cert: cert, Key: key, CertPEM: pemCert(der)}
	ca.serial.Store(1)
	return ca
}

// Issue makes an end-entity certificate for the IKE identity id: the subject
// CN is id, and id is also the subjectAltName (an IP address SAN when id
// parses as one, an rfc822Name when it contains '@', a dNSName otherwise),
// because strongSwan matches non-DN identities against the SANs only. The
// certificate has keyUsage digitalSignature (critical), extendedKeyUsage
// serverAuth and clientAuth, and CA:FALSE.
func (ca *CA) Issue(t testing.TB, id string, keyType KeyType) *Leaf {
	t.Helper()
	key, err := keyType.generate()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(ca.serial.Add(1)),
		Subject:               pkix.Name{CommonName: id, Organization: []string{"remotegate test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if addr, err := netip.ParseAddr(id); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, addr.AsSlice())
	} else if strings.Contains(id, "@") {
		tmpl.EmailAddresses = []string{id}
	} else {
		tmpl.DNSNames = []string{id}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Leaf{
		ID:      id,
		Cert:    cert,
		Key:     key,
		CertPEM: pemCert(der),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
	}
}

// Pool returns a pool holding the CA certificate, for verifying leaves in
// Go (use x509.ExtKeyUsageAny: the leaves carry both TLS usages, but IKE is
// neither).
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// fileName turns a name into something safe as a single path element.
func fileName(name string) string {
	s := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name)
	s = strings.TrimLeft(s, ".")
	if s == "" {
		s = "cert"
	}
	return s
}
