package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/remotegate/remotegate/pki"
)

// issuer makes one client certificate per tunnel, in memory, from a CA
// the operator trusts the servers to accept (the broker's, a test PKI's):
// a server that keys sessions by common name then sees N distinct
// clients, as in production, rather than one certificate connected N
// times (which stock openvpn refuses without duplicate-cn).
type issuer struct {
	ca     *x509.Certificate
	key    crypto.Signer
	prefix string
	now    func() time.Time
}

// loadIssuer reads a CA certificate and its key (PKCS#8, SEC 1 EC or
// PKCS#1 RSA, PEM).
func loadIssuer(certFile, keyFile, prefix string, now func() time.Time) (*issuer, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("loadgen: CA certificate: %w", err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("loadgen: CA key: %w", err)
	}
	return newIssuer(cb, kb, prefix, now)
}

func newIssuer(certPEM, keyPEM []byte, prefix string, now func() time.Time) (*issuer, error) {
	ca, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("loadgen: CA certificate: %w", err)
	}
	if !ca.IsCA {
		return nil, errors.New("loadgen: the -ca-cert certificate is not a CA")
	}
	key, err := pki.ParsePrivateKeyPEM(keyPEM, nil)
	if err != nil {
		return nil, fmt.Errorf("loadgen: CA key: %w", err)
	}
	if !publicKeysEqual(key.Public(), ca.PublicKey) {
		return nil, errors.New("loadgen: the CA key does not belong to the CA certificate")
	}
	return &issuer{ca: ca, key: key, prefix: prefix, now: now}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// issue makes the certificate of tunnel i: an ECDSA P-256 key (cheap to
// make by the thousand), common name prefix+i, clientAuth, valid from an
// hour ago (clock skew between load generator and server) for a day.
func (is *issuer) issue(i int) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loadgen: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loadgen: serial: %w", err)
	}
	now := is.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: fmt.Sprintf("%s%05d", is.prefix, i)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.ca, key.Public(), is.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loadgen: certificate %d: %w", i, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loadgen: certificate %d: %w", i, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// certSource gives each tunnel its certificate: issued, or the shared one.
type certSource struct {
	is     *issuer
	shared *tls.Certificate
}

func (cs certSource) get(i int) (tls.Certificate, error) {
	if cs.is != nil {
		return cs.is.issue(i)
	}
	if cs.shared != nil {
		return *cs.shared, nil
	}
	return tls.Certificate{}, errors.New("loadgen: no client certificate")
}

// loadPair reads a shared certificate and key and parses its leaf.
func loadPair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loadgen: certificate: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("loadgen: certificate: %w", err)
		}
	}
	return &c, nil
}

// readPool reads PEM certificates into a pool.
func readPool(file string) (*x509.CertPool, []*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("loadgen: %w", err)
	}
	certs, err := pki.ParseCertificatesPEM(b)
	if err != nil {
		return nil, nil, fmt.Errorf("loadgen: %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}
