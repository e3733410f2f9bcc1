package openvpn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"

	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/tunnel"
)

// plant is a tunnel.Handler: it gives every client 10.8.0.2/24, offers the
// route to the machine LAN, and answers each packet by sending it back.
type plant struct{}

func (plant) Admit(_ context.Context, id tunnel.Identity, _ netip.AddrPort) (tunnel.Assignment, error) {
	return tunnel.Assignment{
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.8.0.2/24")},
		Routes:    []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")},
	}, nil
}
func (plant) Up(tunnel.Session)          {}
func (plant) Down(tunnel.Session, error) {}
func (plant) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	for i, b := range bufs {
		_, _ = from.Send([][]byte{b[:offset+sizes[i]]}, offset)
	}
}

// A service engineer's client connects to the broker's OpenVPN server; the
// server asks its Handler where the client may go, and the client learns its
// tunnel address and routes from the PUSH_REPLY.
func Example() {
	serverTLS, clientTLS := exampleTLS()
	srv, err := openvpn.NewServer(&openvpn.ServerConfig{TLS: serverTLS})
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go srv.ServeUDP(ctx, conn, plant{})

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := openvpn.Dial(dctx, "udp", conn.LocalAddr().String(), &openvpn.ClientConfig{TLS: clientTLS})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	p := c.Pushed()
	fmt.Println("address", p.Address, "routes", p.Routes, "cipher", p.Cipher)

	// Packets are written with tunnel.Headroom free in front, so that the
	// client encrypts in place.
	msg := []byte("hello, plant")
	buf := make([]byte, tunnel.Headroom+len(msg), tunnel.BufferSize)
	copy(buf[tunnel.Headroom:], msg)
	if _, err := c.Write([][]byte{buf}, tunnel.Headroom); err != nil {
		fmt.Println(err)
		return
	}
	in := [][]byte{make([]byte, tunnel.BufferSize)}
	sizes := make([]int, 1)
	if _, err := c.Read(in, sizes, tunnel.Headroom); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("back through the tunnel: %s\n", in[0][tunnel.Headroom:tunnel.Headroom+sizes[0]])
	// Output:
	// address 10.8.0.2/24 routes [192.168.0.0/24] cipher AES-256-GCM
	// back through the tunnel: hello, plant
}

// exampleTLS makes a throw-away CA with a server and a client certificate.
func exampleTLS() (server, client *tls.Config) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, eku x509.ExtKeyUsage) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	server = &tls.Config{Certificates: []tls.Certificate{leaf(2, "broker", x509.ExtKeyUsageServerAuth)}, ClientCAs: pool}
	client = &tls.Config{Certificates: []tls.Certificate{leaf(3, "engineer", x509.ExtKeyUsageClientAuth)}, RootCAs: pool}
	return server, client
}
