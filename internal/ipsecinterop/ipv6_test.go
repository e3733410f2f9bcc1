package ipsecinterop

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/tunnel"
)

// The IPv6 side of the lab: outer addresses on the veth beside the IPv4
// ones, a second address of R in each family (for the wildcard server),
// the protected IPv6 network on R's lo and the IPv6 virtual-IP pool.
var (
	initiatorAddr6 = netip.MustParsePrefix("fd00:231::1/64")
	responderAddr6 = netip.MustParsePrefix("fd00:231::2/64")
	// R's second addresses: the wildcard server must answer from them.
	responderAddrB  = netip.MustParsePrefix("10.231.0.3/24")
	responderAddrB6 = netip.MustParsePrefix("fd00:231::3/64")
	responderNet6   = netip.MustParsePrefix("fd00:232::1/64")
	poolNet6        = netip.MustParsePrefix("fd00:233::/64")
	firstVIP6       = netip.MustParseAddr("fd00:233::1")
	lanDNS6         = netip.MustParseAddr("fd00:232::53")
)

// addIPv6 gives the lab its IPv6 addresses and R its second addresses.
func addIPv6(t *testing.T, l *swaninterop.Lab) {
	t.Helper()
	l.I.AddAddress(t, initiatorAddr6, l.IIf)
	for _, a := range []netip.Prefix{responderAddr6, responderAddrB, responderAddrB6} {
		l.R.AddAddress(t, a, l.RIf)
	}
	l.R.AddAddress(t, responderNet6, "lo")
}

// startWildcardResponder runs an ipsec.Server in R on the dual-stack
// wildcard sockets [::]:500 and [::]:4500, whose hub hands out an IPv4 and
// an IPv6 address to each peer.
func startWildcardResponder(t *testing.T, l *swaninterop.Lab) *hub {
	t.Helper()
	var conns []*net.UDPConn
	var tun *tunnel.TUN
	err := l.R.Do(func() error {
		for _, port := range []int{4500, 500} {
			c, err := net.ListenUDP("udp", &net.UDPAddr{Port: port})
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		var err error
		tun, err = tunnel.OpenTUN(tunnel.TUNConfig{Name: "rgipsec", MTU: 1400, Routes: []netip.Prefix{swaninterop.PoolNet, poolNet6}})
		return err
	})
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		t.Fatalf("responder sockets and TUN in %s: %v", l.R.Name, err)
	}
	h := newHub(tun, swaninterop.PoolNet, []netip.Prefix{swaninterop.ResponderNet.Masked(), responderNet6.Masked()})
	h.pool6 = poolNet6
	srv, err := ipsec.NewServer(&ipsec.Config{
		LocalID:                ipsec.FQDN(swaninterop.ResponderID),
		Certificate:            []*x509.Certificate{l.ResponderLeaf.Cert},
		PrivateKey:             l.ResponderLeaf.Key,
		CertificateAuthorities: []*x509.Certificate{l.CA.Cert},
		VerifyPeer: func(id ipsec.ID, chain []*x509.Certificate) (tunnel.Identity, error) {
			if _, err := chain[0].Verify(x509.VerifyOptions{Roots: l.CA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return tunnel.Identity{}, err
			}
			return tunnel.Identity{Name: id.String()}, nil
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h, conns...) }()
	go h.pump()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10 s of the cancel")
		}
		tun.Close()
	})
	return h
}

// Item 4 and multihome: strongSwan initiates to the Go responder bound to
// the wildcard address, at R's second address (so every answer must come
// from that address, not R's first), over IPv4 and over IPv6, asking for
// virtual addresses of both families or IPv6 alone; pings of the asked
// families reach R's protected networks through the tunnel.
func TestStrongSwanInitiatorIPv6ToGoResponder(t *testing.T) {
	swaninterop.Require(t, "ping")
	for _, tc := range []struct {
		name          string
		local, remote netip.Addr
		vips          []string
		remoteTS      string
		targets       []netip.Addr
	}{
		{"outer-ipv4-second-address/vips-both", swaninterop.InitiatorAddr.Addr(), responderAddrB.Addr(), []string{"0.0.0.0", "::"},
			"10.232.0.0/24, fd00:232::/64", []netip.Addr{swaninterop.ResponderNet.Addr(), responderNet6.Addr()}},
		{"outer-ipv6-second-address/vips-ipv6", initiatorAddr6.Addr(), responderAddrB6.Addr(), []string{"::"},
			"fd00:232::/64", []netip.Addr{responderNet6.Addr()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
			addIPv6(t, l)
			h := startWildcardResponder(t, l)
			conn := l.InitiatorConn()
			conn.LocalAddr, conn.RemoteAddr = tc.local.String(), tc.remote.String()
			conn.VIPs, conn.RemoteTS = tc.vips, tc.remoteTS
			ini := initiate(t, l, conn)
			var sess tunnel.Session
			select {
			case sess = <-h.ups:
			case <-time.After(5 * time.Second):
				t.Fatal("no session came up")
			}
			if got := sess.Remote().Addr(); got != tc.local {
				t.Errorf("session from %v, want %v", got, tc.local)
			}
			sas := ini.ListSAs(t)
			if !strings.Contains(sas, firstVIP6.String()) || !strings.Contains(sas, tc.remote.String()) {
				t.Errorf("strongSwan's SAs lack the IPv6 virtual address %v or the server address %v:\n%s", firstVIP6, tc.remote, sas)
			}
			for _, target := range tc.targets {
				if got := l.I.Ping(t, target, 3); got != 3 {
					t.Fatalf("%d of 3 pings to %v through the tunnel answered\n%s", got, target, sas)
				}
			}
		})
	}
}

// Item 4, initiator: the Go initiator dials a strongSwan responder at its
// IPv6 address, asks for virtual addresses of both families and gets them
// from strongSwan's two pools (with the IPv6 DNS server); pings of both
// families reach R's protected networks through the tunnel.
func TestGoInitiatorIPv6ToStrongSwanResponder(t *testing.T) {
	swaninterop.Require(t, "ping")
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	addIPv6(t, l)
	resp := swaninterop.Start(t, l.R, swaninterop.Options{})
	resp.InstallCA(t, l.CA)
	resp.InstallLeaf(t, "resp", l.ResponderLeaf)
	rc := l.ResponderConn()
	rc.LocalAddr = responderAddr6.Addr().String()
	rc.LocalTS = "10.232.0.0/24, fd00:232::/64"
	rc.Pools = append(rc.Pools, swaninterop.Pool{Name: "rw6", Addrs: "fd00:233::/120", DNS: []string{lanDNS6.String()}})
	resp.Load(t, rc.String())

	cfg := initiatorConfig(t, l)
	cfg.RequestAddress6 = true
	cfg.RemoteTS = []netip.Prefix{swaninterop.ResponderNet.Masked(), responderNet6.Masked()}
	var conn *net.UDPConn
	var tun *tunnel.TUN
	err := l.I.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(initiatorAddr6.Addr(), 4500)))
		if err != nil {
			return err
		}
		tun, err = tunnel.OpenTUN(tunnel.TUNConfig{Name: "rgini", MTU: 1400})
		return err
	})
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		t.Fatalf("initiator socket and TUN in %s: %v", l.I.Name, err)
	}
	t.Cleanup(func() { tun.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := ipsec.Dial(ctx, conn, netip.AddrPortFrom(responderAddr6.Addr(), 4500), cfg)
	if err != nil {
		t.Fatalf("the Go initiator could not connect to strongSwan over IPv6: %v\ncharon log:\n%s", err, resp.Log())
	}
	done := make(chan struct{}, 2)
	t.Cleanup(func() {
		c.Close()
		tun.Close()
		<-done
		<-done
	})
	want := []netip.Prefix{netip.PrefixFrom(swaninterop.FirstVIP, 32), netip.PrefixFrom(firstVIP6, 128)}
	got := c.Addresses()
	slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if !slices.Equal(got, want) {
		t.Fatalf("Addresses %v, want %v", got, want)
	}
	if !slices.Contains(c.DNS(), lanDNS6) {
		t.Errorf("DNS %v lacks %v", c.DNS(), lanDNS6)
	}
	if !slices.Equal(c.LocalTS(), c.Addresses()) || len(c.RemoteTS()) != 2 {
		t.Errorf("traffic selectors %v === %v", c.LocalTS(), c.RemoteTS())
	}
	for _, a := range got {
		l.I.AddAddress(t, a, tun.Name())
	}
	for _, p := range c.RemoteTS() {
		src := got[0].Addr()
		if p.Addr().Is6() {
			src = got[1].Addr()
		}
		l.I.Run(t, 5*time.Second, "ip", "route", "replace", p.String(), "dev", tun.Name(), "src", src.String())
	}
	go func() { _ = tunnel.Pump(tun, c); done <- struct{}{} }()
	go func() { _ = tunnel.Pump(c, tun); done <- struct{}{} }()
	for _, target := range []netip.Addr{responderNet6.Addr(), swaninterop.ResponderNet.Addr()} {
		if n := l.I.Ping(t, target, 3); n != 3 {
			t.Fatalf("%d of 3 pings to %v through the tunnel answered\n%s", n, target, resp.ListSAs(t))
		}
	}
	if sas := resp.ListSAs(t); !strings.Contains(sas, firstVIP6.String()) || !strings.Contains(sas, responderAddr6.Addr().String()) {
		t.Errorf("strongSwan's SAs:\n%s", sas)
	}
}
