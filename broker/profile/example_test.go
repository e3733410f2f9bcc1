package profile_test

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"time"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/pki"
	"software.sslmate.com/src/go-pkcs12"
)

// Short stand-ins for the PEM a CA and openvpn --genkey write.
var (
	caPEM   = []byte("-----BEGIN CERTIFICATE-----\nMAE=\n-----END CERTIFICATE-----\n")
	certPEM = []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")
	keyPEM  = []byte("-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n")
	tcKey   = []byte("-----BEGIN OpenVPN Static key V1-----\n00112233445566778899aabbccddeeff\n-----END OpenVPN Static key V1-----\n")
)

// A user's profile for two brokers, tried in random order.
func ExampleOpenVPN() {
	p := profile.OpenVPN{
		Name:         "jane",
		Remotes:      []profile.Remote{{Host: "vpn1.example.com"}, {Host: "vpn2.example.com", Port: 443, Proto: "udp"}},
		RemoteRandom: true,
		DataCiphers:  []string{"AES-256-GCM", "CHACHA20-POLY1305"},
		Verb:         3,
		CA:           caPEM, Cert: certPEM, Key: keyPEM,
		TLSCrypt: tcKey,
	}
	if _, err := p.WriteTo(os.Stdout); err != nil {
		log.Fatal(err)
	}
	// A name that would add a line is refused, and nothing is written.
	p.Name = "jane\nup /bin/sh"
	_, err := p.WriteTo(os.Stdout)
	fmt.Println(err != nil)
	// Output:
	// # remotegate profile for "jane": openvpn --config jane.ovpn
	// client
	// dev tun
	// proto udp
	// remote vpn1.example.com 1194
	// remote vpn2.example.com 443
	// remote-random
	// nobind
	// remote-cert-tls server
	// data-ciphers AES-256-GCM:CHACHA20-POLY1305
	// verb 3
	// <ca>
	// -----BEGIN CERTIFICATE-----
	// MAE=
	// -----END CERTIFICATE-----
	// </ca>
	// <cert>
	// -----BEGIN CERTIFICATE-----
	// MA==
	// -----END CERTIFICATE-----
	// </cert>
	// <key>
	// -----BEGIN PRIVATE KEY-----
	// MA==
	// -----END PRIVATE KEY-----
	// </key>
	// <tls-crypt>
	// -----BEGIN OpenVPN Static key V1-----
	// 00112233445566778899aabbccddeeff
	// -----END OpenVPN Static key V1-----
	// </tls-crypt>
	// true
}

// A device's strongSwan profile: a tar archive for /etc/swanctl.
func ExampleSwanctl() {
	p := profile.Swanctl{
		Name:        "gw1",
		RemoteAddrs: []string{"vpn.example.com"},
		ServerID:    "vpn.example.com",
		Device:      true,
		LANs:        []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")},
		Pool:        netip.MustParsePrefix("10.8.0.0/16"),
		Cert:        certPEM, Key: keyPEM, CA: caPEM,
		Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	var archive bytes.Buffer
	if _, err := p.WriteTo(&archive); err != nil {
		log.Fatal(err)
	}
	tr := tar.NewReader(&archive)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %o\n", h.Name, h.Mode)
	}
	// Output:
	// swanctl.conf 644
	// x509/gw1.pem 644
	// private/gw1.pem 600
	// x509ca/remotegate-ca.pem 644
}

// A user's identity for Windows or macOS, from the broker's CA.
func ExamplePKCS12() {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "example CA"})
	if err != nil {
		log.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		log.Fatal(err)
	}
	cert, err := ca.Issue(pki.Request{Profile: pki.ProfileUser, CommonName: "jane", PublicKey: key.Public()})
	if err != nil {
		log.Fatal(err)
	}
	p12, err := profile.PKCS12{Key: key, Cert: cert, Chain: []*x509.Certificate{ca.Certificate()}, Password: "correct horse"}.Marshal()
	if err != nil {
		log.Fatal(err)
	}
	_, got, chain, err := pkcs12.DecodeChain(p12, "correct horse")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Subject.CommonName, chain[0].Subject.CommonName)
	// Output: jane example CA
}
