package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/openvpn"
)

// writeDemo writes a throw-away CA, a server and a client certificate, a
// tls-crypt key, server.conf and a matching client.ovpn (all inline) into
// dir, and returns the path of server.conf. The server listens on
// 127.0.0.1:1194 (UDP) with the tunnel network 10.8.0.0/24.
func writeDemo(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	caKey, caCert, caPEM, err := newCA()
	if err != nil {
		return "", err
	}
	srvCert, srvKey, err := issue(caCert, caKey, "demo-server", x509.ExtKeyUsageServerAuth, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement)
	if err != nil {
		return "", err
	}
	cliCert, cliKey, err := issue(caCert, caKey, "demo-client", x509.ExtKeyUsageClientAuth, x509.KeyUsageDigitalSignature)
	if err != nil {
		return "", err
	}
	tc, err := openvpn.GenerateStaticKey()
	if err != nil {
		return "", err
	}
	tcText := tc.Marshal()
	server := fmt.Sprintf(`# remotegate demo server (throw-away keys)
local 127.0.0.1
port 1194
proto udp
dev tun
topology subnet
server 10.8.0.0 255.255.255.0
keepalive 10 120
data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305
client-to-client
<ca>
%s</ca>
<cert>
%s</cert>
<key>
%s</key>
<tls-crypt>
%s</tls-crypt>
`, caPEM, srvCert, srvKey, tcText)
	client, err := profile.OpenVPN{
		Comment: []string{"remotegate demo client profile: openvpn --config client.ovpn"},
		Remotes: []profile.Remote{{Host: "127.0.0.1", Port: 1194}},
		CA:      caPEM, Cert: cliCert, Key: cliKey, TLSCrypt: tcText,
	}.Marshal()
	if err != nil {
		return "", err
	}
	sp := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(sp, []byte(server), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "client.ovpn"), client, 0o600); err != nil {
		return "", err
	}
	return sp, nil
}

func newCA() (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "remotegate demo CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, eku x509.ExtKeyUsage, ku x509.KeyUsage) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: ku, ExtKeyUsage: []x509.ExtKeyUsage{eku},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}
