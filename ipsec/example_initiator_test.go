package ipsec_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/tunnel"
)

// A road warrior: dial the responder, put the virtual address it assigns
// on a TUN, route what the tunnel reaches into it, and bridge the two
// until the tunnel ends.
func ExampleDial() {
	var (
		leaf  *x509.Certificate // ours, issued for device.example.com
		key   crypto.Signer     // its key
		roots *x509.CertPool    // the CA of the responder's certificate
	)
	cfg := &ipsec.DialConfig{
		RemoteID:    ipsec.FQDN("vpn.example.com"),
		Certificate: []*x509.Certificate{leaf},
		PrivateKey:  key,
		VerifyPeer: func(_ ipsec.ID, chain []*x509.Certificate) error {
			_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
		RequestAddress: true,
		RemoteTS:       []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := ipsec.Dial(ctx, conn, netip.MustParseAddrPort("203.0.113.7:4500"), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // deletes the IKE SA
	tun, err := tunnel.OpenTUN(tunnel.TUNConfig{MTU: c.MTU(), Addresses: c.Addresses(), Routes: c.RemoteTS()})
	if err != nil {
		log.Fatal(err)
	}
	defer tun.Close()
	go copyPackets(tun, c)
	go copyPackets(c, tun)
	<-c.Done()
	log.Printf("tunnel ended: %v", c.Err())
}

// copyPackets moves packets from one tunnel.Device to another, with the
// headroom that sealing ESP in place needs.
func copyPackets(from, to tunnel.Device) {
	bufs := make([][]byte, from.BatchSize())
	sizes := make([]int, len(bufs))
	for i := range bufs {
		// Tailroom stays free for the padding and ICV.
		bufs[i] = make([]byte, tunnel.BufferSize-tunnel.Tailroom, tunnel.BufferSize)
	}
	for {
		n, err := from.Read(bufs, sizes, tunnel.Headroom)
		if err != nil {
			return
		}
		pkts := make([][]byte, n)
		for i := range n {
			pkts[i] = bufs[i][:tunnel.Headroom+sizes[i]]
		}
		if _, err := to.Write(pkts, tunnel.Headroom); errors.Is(err, tunnel.ErrClosed) {
			return
		}
	}
}
