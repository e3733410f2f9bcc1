package swaninterop

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
)

func critical(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e.Critical
		}
	}
	return false
}

// TestCertificatesForStrongSwan checks the properties strongSwan insists on
// (notes §8.1, pitfall 14) for both key types, in Go and with openssl.
func TestCertificatesForStrongSwan(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		t.Run(kt.String(), func(t *testing.T) {
			ca := NewCA(t, "test CA", kt)
			if !ca.Cert.IsCA || !ca.Cert.BasicConstraintsValid || !critical(ca.Cert, oidBasicConstraints) {
				t.Error("CA: basicConstraints CA:TRUE must be present and critical")
			}
			if ca.Cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || !critical(ca.Cert, oidKeyUsage) {
				t.Errorf("CA: keyUsage %v, want keyCertSign|cRLSign, critical", ca.Cert.KeyUsage)
			}
			for _, id := range []string{"resp.test", "10.231.0.2", "dev@plant.test"} {
				l := ca.Issue(t, id, kt)
				c := l.Cert
				switch id {
				case "resp.test":
					if !slices.Equal(c.DNSNames, []string{id}) {
						t.Errorf("%s: SAN dNSName %v", id, c.DNSNames)
					}
				case "10.231.0.2":
					if len(c.IPAddresses) != 1 || c.IPAddresses[0].String() != id {
						t.Errorf("%s: SAN IP %v", id, c.IPAddresses)
					}
				default:
					if !slices.Equal(c.EmailAddresses, []string{id}) {
						t.Errorf("%s: SAN email %v", id, c.EmailAddresses)
					}
				}
				if c.Subject.CommonName != id || l.ID != id {
					t.Errorf("%s: CN %q, ID %q", id, c.Subject.CommonName, l.ID)
				}
				if c.IsCA || !c.BasicConstraintsValid {
					t.Errorf("%s: want basicConstraints CA:FALSE", id)
				}
				if c.KeyUsage != x509.KeyUsageDigitalSignature {
					t.Errorf("%s: keyUsage %v, want digitalSignature", id, c.KeyUsage)
				}
				if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
					t.Errorf("%s: EKU %v", id, c.ExtKeyUsage)
				}
				if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Errorf("%s: does not verify against its CA: %v", id, err)
				}
				block, _ := pem.Decode(l.KeyPEM)
				if block == nil || block.Type != "PRIVATE KEY" {
					t.Fatalf("%s: key is not a PKCS#8 PEM block", id)
				}
				key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
				if err != nil {
					t.Fatalf("%s: PKCS#8: %v", id, err)
				}
				switch k := key.(type) {
				case *ecdsa.PrivateKey:
					if kt != ECDSAP256 || k.Curve.Params().BitSize != 256 {
						t.Errorf("%s: ECDSA key for %v", id, kt)
					}
				case *rsa.PrivateKey:
					if kt != RSA2048 || k.N.BitLen() != 2048 {
						t.Errorf("%s: RSA key of %d bits for %v", id, k.N.BitLen(), kt)
					}
				default:
					t.Errorf("%s: key type %T", id, key)
				}
			}
			if _, err := exec.LookPath("openssl"); err != nil {
				t.Skip("openssl not in PATH: skipping the cross-check")
			}
			dir := t.TempDir()
			leaf := ca.Issue(t, "ini.test", kt)
			for name, data := range map[string][]byte{"ca.pem": ca.CertPEM, "ee.pem": leaf.CertPEM, "key.pem": leaf.KeyPEM} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command("openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ee.pem")).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte(": OK")) {
				t.Errorf("openssl verify: %v\n%s", err, out)
			}
			// The key in the PEM file belongs to the certificate.
			pub1, err := exec.Command("openssl", "pkey", "-in", filepath.Join(dir, "key.pem"), "-pubout").CombinedOutput()
			if err != nil {
				t.Fatalf("openssl pkey: %v\n%s", err, pub1)
			}
			pub2, err := exec.Command("openssl", "x509", "-in", filepath.Join(dir, "ee.pem"), "-noout", "-pubkey").CombinedOutput()
			if err != nil || !bytes.Equal(pub1, pub2) {
				t.Errorf("key and certificate do not match: %v\n%s\n%s", err, pub1, pub2)
			}
		})
	}
}
