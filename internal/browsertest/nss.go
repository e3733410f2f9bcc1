package browsertest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// setupNSS creates the NSS database Chromium on Linux reads certificates
// from, $HOME/.pki/nssdb, and imports ca as trusted for TLS servers and cert
// with its key as the user's certificate. Chromium creates an empty database
// itself when neither is given.
func setupNSS(home string, ca *x509.Certificate, cert *tls.Certificate) error {
	if ca == nil && cert == nil {
		return nil
	}
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	dbArg := "sql:" + db
	if err := run("certutil", "-N", "-d", dbArg, "--empty-password"); err != nil {
		return err
	}
	if ca != nil {
		file := filepath.Join(home, "trust-ca.pem")
		if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
			return fmt.Errorf("%w: %w", ErrSetup, err)
		}
		// "C,,": a CA trusted to issue TLS server certificates, and for
		// nothing else (not e-mail, not code signing).
		if err := run("certutil", "-A", "-d", dbArg, "-n", "browsertest CA "+ca.Subject.CommonName, "-t", "C,,", "-a", "-i", file); err != nil {
			return err
		}
	}
	if cert != nil {
		// The password protects the file only for the moment pk12util
		// reads it; it is neither logged nor kept.
		password := newPassword()
		p12, err := encodePKCS12(cert, password)
		if err != nil {
			return err
		}
		file := filepath.Join(home, "client.p12")
		if err := os.WriteFile(file, p12, 0o600); err != nil {
			return fmt.Errorf("%w: %w", ErrSetup, err)
		}
		err = run("pk12util", "-i", file, "-d", dbArg, "-W", password)
		// The key is in the database now; the file is not needed.
		if rmErr := os.Remove(file); err == nil && rmErr != nil {
			err = fmt.Errorf("%w: %w", ErrSetup, rmErr)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// encodePKCS12 packs the leaf, its key and any intermediates of cert.
func encodePKCS12(cert *tls.Certificate, password string) ([]byte, error) {
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, fmt.Errorf("%w: ClientCert needs a certificate and its private key", ErrSetup)
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: ClientCert: %w", ErrSetup, err)
		}
	}
	var chain []*x509.Certificate
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: ClientCert chain: %w", ErrSetup, err)
		}
		chain = append(chain, c)
	}
	// Modern: AES-256 and PBKDF2, which NSS reads (3.87 in Debian 12).
	p12, err := pkcs12.Modern.Encode(cert.PrivateKey, leaf, chain, password)
	if err != nil {
		return nil, fmt.Errorf("%w: ClientCert: %w", ErrSetup, err)
	}
	return p12, nil
}

// ClientCertFromPKCS12 decodes a PKCS#12 file (a profile a test downloaded
// from the console, say) into the form Options.ClientCert takes.
func ClientCertFromPKCS12(data []byte, password string) (*tls.Certificate, error) {
	key, leaf, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, fmt.Errorf("browsertest: PKCS#12: %w", err)
	}
	c := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, ca := range chain {
		// A bundle may carry the root it chains to; the browser sends
		// intermediates only, as a server would.
		if ca.IsCA && isSelfSigned(ca) {
			continue
		}
		c.Certificate = append(c.Certificate, ca.Raw)
	}
	return c, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

// writeAutoSelect makes the profile choose its client certificate without
// the selection dialog, which a headless browser cannot answer (the page
// then never loads).
//
// This is the content setting the AutoSelectCertificateForUrls policy sets,
// written as a user preference of this profile alone: no file under
// /etc/chromium/policies, which every Chromium on the machine would read.
// The pattern matches every site and the empty filter every certificate,
// because the profile's NSS database holds exactly one: Options.ClientCert.
func writeAutoSelect(dataDir string) error {
	prefs := map[string]any{
		"profile": map[string]any{
			"content_settings": map[string]any{
				"exceptions": map[string]any{
					"auto_select_certificate": map[string]any{
						"*,*": map[string]any{
							"last_modified": "0",
							"setting":       map[string]any{"filters": []any{map[string]any{}}},
						},
					},
				},
			},
		},
	}
	data, err := json.Marshal(prefs)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	dir := filepath.Join(dataDir, "Default")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Preferences"), data, 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	return nil
}

// run runs an NSS tool, bounded, and reports its output on failure. The
// arguments hold no secret worth hiding (a one-time password of a file that
// is removed at once), but they are left out of the error all the same.
func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w: %s", ErrSetup, name, args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newPassword is a random one-time password.
func newPassword() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
