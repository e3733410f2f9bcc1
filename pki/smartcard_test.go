//go:build cgo && !nopkcs11

package pki

import (
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recordingSigner counts the signatures made through it and whether any
// was RSA-PSS, so the test can prove that the handshake really used the
// token key and, for RSA under TLS 1.3, PSS.
type recordingSigner struct {
	crypto.Signer
	signatures atomic.Int32
	pss        atomic.Bool
}

func (r *recordingSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	r.signatures.Add(1)
	if _, ok := opts.(*rsa.PSSOptions); ok {
		r.pss.Store(true)
	}
	return r.Signer.Sign(rand, digest, opts)
}

// testLogWriter forwards a log.Logger to t.Log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// adminUsers maps the common names of administrators' smartcard
// certificates to user names, as the broker's login does.
var adminUsers = map[string]string{
	"smartcard-alice": "alice",
	"smartcard-bob":   "bob",
}

// loginHandler answers 200 with the user name of a verified client
// certificate it knows, and 403 otherwise.
func loginHandler(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		http.Error(w, "no verified client certificate", http.StatusForbidden)
		return
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	user, ok := adminUsers[cn]
	if !ok {
		http.Error(w, "unknown certificate "+cn, http.StatusForbidden)
		return
	}
	fmt.Fprint(w, user)
}

// loginServer is an mTLS server that requires and verifies client
// certificates issued by ca, restricted to one TLS version.
type loginServer struct {
	*httptest.Server
	ca      *x509.Certificate
	caKey   crypto.Signer
	version uint16
}

func newLoginServer(t *testing.T, version uint16) *loginServer {
	t.Helper()
	caKey, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca := selfSignedCA(t, caKey, 0)
	serverKey, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	serverCert := issueLeaf(t, ca, caKey, serverKey.Public(), "localhost", x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(loginHandler))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   version,
		MaxVersion:   version,
	}
	// Refused handshakes are expected in this test; send the server's
	// complaints to the test log instead of stderr.
	srv.Config.ErrorLog = log.New(testLogWriter{t}, "login server: ", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &loginServer{Server: srv, ca: ca, caKey: caKey, version: version}
}

// login connects with the given client certificate and key and returns the
// HTTP status, body and negotiated TLS version.
func (s *loginServer) login(t *testing.T, certDER []byte, key crypto.Signer) (int, string, uint16, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(s.ca)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:      pool,
			Certificates: []tls.Certificate{{Certificate: [][]byte{certDER}, PrivateKey: key}},
			MinVersion:   s.version,
			MaxVersion:   s.version,
		}},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(s.URL + "/login")
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", 0, err
	}
	return resp.StatusCode, strings.TrimSpace(string(body)), resp.TLS.Version, nil
}

// TestSmartcardLogin logs administrators in over mutual TLS with keys that
// never leave the token, for ECDSA and RSA keys and TLS 1.2 and 1.3.
func TestSmartcardLogin(t *testing.T) {
	h := newTestHSM(t)
	tok := h.open(t)
	algs := []KeyAlgorithm{ECDSAP256, RSA3072}
	keys := map[KeyAlgorithm]crypto.Signer{}
	for _, alg := range algs {
		k, err := tok.GenerateKey("login-"+alg.String(), nil, alg)
		if err != nil {
			t.Fatalf("GenerateKey(%v): %v", alg, err)
		}
		keys[alg] = k
	}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		vname := tls.VersionName(version)
		srv := newLoginServer(t, version)
		for _, alg := range algs {
			key := keys[alg]
			t.Run(vname+"/"+alg.String(), func(t *testing.T) {
				cert := issueLeaf(t, srv.ca, srv.caKey, key.Public(), "smartcard-alice", x509.ExtKeyUsageClientAuth)
				rec := &recordingSigner{Signer: key}
				status, body, got, err := srv.login(t, cert.Raw, rec)
				if err != nil {
					t.Fatalf("login: %v", err)
				}
				if status != http.StatusOK || body != "alice" {
					t.Errorf("login answered %d %q, want 200 \"alice\"", status, body)
				}
				if got != version {
					t.Errorf("negotiated TLS version 0x%x, want 0x%x", got, version)
				}
				if rec.signatures.Load() == 0 {
					t.Error("the handshake did not sign with the token key")
				}
				if alg == RSA3072 && version == tls.VersionTLS13 && !rec.pss.Load() {
					t.Error("TLS 1.3 with an RSA key must sign with PSS")
				}
			})
		}

		t.Run(vname+"/unknown-certificate", func(t *testing.T) {
			// Valid certificate from the right CA, but no user maps to it.
			cert := issueLeaf(t, srv.ca, srv.caKey, keys[ECDSAP256].Public(), "smartcard-mallory", x509.ExtKeyUsageClientAuth)
			status, body, _, err := srv.login(t, cert.Raw, keys[ECDSAP256])
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if status != http.StatusForbidden || body != "unknown certificate smartcard-mallory" {
				t.Errorf("unknown certificate answered %d %q, want 403", status, body)
			}
		})

		t.Run(vname+"/untrusted-certificate", func(t *testing.T) {
			// A self-made certificate with a mapped name must not get in.
			otherCA := selfSignedCA(t, keys[ECDSAP256], 0)
			cert := issueLeaf(t, otherCA, keys[ECDSAP256], keys[ECDSAP256].Public(), "smartcard-alice", x509.ExtKeyUsageClientAuth)
			status, body, _, err := srv.login(t, cert.Raw, keys[ECDSAP256])
			if err == nil {
				t.Fatalf("a certificate from an untrusted CA logged in: %d %q", status, body)
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("login with an untrusted certificate failed for another reason: %v", err)
			}
			t.Logf("refused as expected: %v", err)
		})
	}

	t.Run("wrong-PIN", func(t *testing.T) {
		cfg := h.config()
		cfg.PIN = "4321"
		tok, err := OpenToken(cfg)
		if err == nil {
			tok.Close()
			t.Fatal("a client with the wrong PIN opened the token")
		}
		if !errors.Is(err, ErrWrongPIN) {
			t.Errorf("wrong PIN: got %v, want ErrWrongPIN", err)
		}
		if !strings.Contains(err.Error(), "wrong PIN") {
			t.Errorf("error %q does not say the PIN is wrong", err)
		}
	})
}
