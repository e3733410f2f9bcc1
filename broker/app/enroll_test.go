package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/remotegate/remotegate/pki"
)

// TestDeviceEnrollsThroughTheRunningBroker: docs/ENROLLMENT.md as a plant
// gateway's integrator follows it against the broker itself: an
// administrator creates a token through the API, the gateway posts its
// CSR with it to /.well-known/est/simpleenroll on the same HTTPS port and
// gets a device certificate of the broker's CA for the key it holds.
func TestDeviceEnrollsThroughTheRunningBroker(t *testing.T) {
	dir := t.TempDir()
	yaml := writeYAML(t, dir, fmt.Sprintf("listen: 127.0.0.1\nport: %d\nipsec: {port: -1}\n", freePort(t)))
	readies := make(chan Ready, 1)
	b := open(t, Config{DataDir: filepath.Join(dir, "data"), ConfigFile: yaml, APIAddr: "127.0.0.1:0", MetricsAddr: Off, OnReady: func(r Ready) { readies <- r }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var r Ready
	select {
	case r = <-readies:
	case err := <-done:
		t.Fatalf("Run returned before it was ready: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(b.keys.ca.Certificate())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer client.CloseIdleConnections()
	call := func(want int, method, path, token, contentType string, body []byte) []byte {
		t.Helper()
		req, err := http.NewRequest(method, "https://"+r.API+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s; want %d", method, path, resp.StatusCode, out, want)
		}
		return out
	}
	login := func(name, password string) string {
		t.Helper()
		var tok struct{ Token string }
		body, _ := json.Marshal(map[string]string{"name": name, "password": password})
		if err := json.Unmarshal(call(http.StatusOK, "POST", "/api/v1/login", "", "application/json", body), &tok); err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	admin := login(BootstrapAccount, r.BootstrapPassword)
	call(http.StatusCreated, "POST", "/api/v1/bootstrap", admin, "application/json", []byte(`{"name":"root","password":"root's long password"}`))
	root := login("root", "root's long password")
	call(http.StatusCreated, "POST", "/api/v1/devices", root, "application/json", []byte(`{"name":"plant7-gw"}`))
	var tok struct{ Token, Path string }
	if err := json.Unmarshal(call(http.StatusCreated, "POST", "/api/v1/devices/plant7-gw/enrollment", root, "application/json", nil), &tok); err != nil {
		t.Fatal(err)
	}

	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "whatever"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := []byte(base64.StdEncoding.EncodeToString(der) + "\n")
	call(http.StatusUnauthorized, "POST", tok.Path, "not-the-token", "application/pkcs10", csr)
	answer := call(http.StatusOK, "POST", tok.Path, tok.Token, "application/pkcs10", csr)
	block, _ := pem.Decode(answer)
	if block == nil {
		t.Fatalf("simpleenroll answered no certificate: %s", answer)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if name, err := (&pki.Verifier{CA: b.keys.ca}).Verify([]*x509.Certificate{cert}); err != nil || name != "plant7-gw" {
		t.Fatalf("the enrolled certificate: %q, %v; want one of the broker's CA for plant7-gw", name, err)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		t.Fatal("the certificate is not for the gateway's key")
	}
	call(http.StatusUnauthorized, "POST", tok.Path, tok.Token, "application/pkcs10", csr) // once only
}
