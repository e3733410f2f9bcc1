package ipsecinterop

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/tunnel"
)

// goResponder is the project's responder serving in the lab's namespace R.
type goResponder struct {
	srv *ipsec.Server
	hub *hub
	tun *tunnel.TUN
}

// startGoResponder runs an ipsec.Server in R on 10.231.0.2 ports 500 and
// 4500, with a TUN that carries the pool (and the initiator's network in
// site-to-site mode) to R's kernel, which owns the protected network.
// Each tweak may change the server's Config before it starts.
func startGoResponder(t *testing.T, l *swaninterop.Lab, psk string, tweaks ...func(*ipsec.Config)) *goResponder {
	t.Helper()
	var conns []*net.UDPConn
	var tun *tunnel.TUN
	routes := []netip.Prefix{swaninterop.PoolNet}
	if l.Mode == swaninterop.SiteToSite {
		routes = append(routes, swaninterop.InitiatorNet.Masked())
	}
	err := l.R.Do(func() error {
		for _, port := range []int{4500, 500} {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: swaninterop.ResponderAddr.Addr().AsSlice(), Port: port})
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		var err error
		tun, err = tunnel.OpenTUN(tunnel.TUNConfig{Name: "rgipsec", MTU: 1400, Routes: routes})
		return err
	})
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		t.Fatalf("responder sockets and TUN in %s: %v", l.R.Name, err)
	}
	h := newHub(tun, swaninterop.PoolNet, []netip.Prefix{swaninterop.ResponderNet.Masked()})
	if l.Mode == swaninterop.SiteToSite {
		h.networks[swaninterop.InitiatorID] = []netip.Prefix{swaninterop.InitiatorNet.Masked()}
	}
	cfg := &ipsec.Config{
		LocalID:                ipsec.FQDN(swaninterop.ResponderID),
		Certificate:            []*x509.Certificate{l.ResponderLeaf.Cert},
		PrivateKey:             l.ResponderLeaf.Key,
		CertificateAuthorities: []*x509.Certificate{l.CA.Cert},
		VerifyPeer: func(id ipsec.ID, chain []*x509.Certificate) (tunnel.Identity, error) {
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			if _, err := chain[0].Verify(x509.VerifyOptions{Roots: l.CA.Pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return tunnel.Identity{}, err
			}
			return tunnel.Identity{Name: id.String()}, nil
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if psk != "" {
		cfg.PSK = func(id ipsec.ID) ([]byte, string, bool) {
			if id.String() != swaninterop.InitiatorID {
				return nil, "", false
			}
			return []byte(psk), id.String(), true
		}
	}
	for _, tweak := range tweaks {
		tweak(cfg)
	}
	srv, err := ipsec.NewServer(cfg)
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
	return &goResponder{srv: srv, hub: h, tun: tun}
}

// testWriter sends the server's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// initiate starts strongSwan in I with conn and establishes the child.
func initiate(t *testing.T, l *swaninterop.Lab, conn swaninterop.Conn) *swaninterop.Charon {
	t.Helper()
	c := swaninterop.Start(t, l.I, swaninterop.Options{})
	c.InstallCA(t, l.CA)
	c.InstallLeaf(t, "ini", l.InitiatorLeaf)
	c.Load(t, conn.String())
	if err := c.Initiate(t, swaninterop.ChildName); err != nil {
		t.Fatalf("strongSwan could not connect to the Go responder: %v\ncharon log:\n%s", err, c.Log())
	}
	return c
}

// Acceptance 1: strongSwan as initiator connects to the Go responder with
// each proposal, certificates (ECDSA, RSA) and PSK; ping and iperf3 pass.
func TestStrongSwanInitiatorToGoResponder(t *testing.T) {
	swaninterop.Require(t, "iperf3", "ping")
	type tc struct {
		name     string
		ike, esp string
		key      swaninterop.KeyType
		psk      string
		iperf    time.Duration
	}
	var cases []tc
	for _, p := range []struct{ ike, esp string }{
		{"aes256gcm16-prfsha256-ecp256", "aes256gcm16"},
		{"aes128gcm16-prfsha256-x25519", "aes128gcm16"},
		{"aes256-sha256-modp2048", "aes256-sha256"},
		{"chacha20poly1305-prfsha256-x25519", "chacha20poly1305"},
		{"default", "default"},
	} {
		cases = append(cases, tc{name: p.ike + "/ecdsa", ike: p.ike, esp: p.esp, key: swaninterop.ECDSAP256, iperf: 10 * time.Second})
	}
	cases = append(cases,
		tc{name: "default/rsa", ike: "default", esp: "default", key: swaninterop.RSA2048, iperf: 10 * time.Second},
		tc{name: "default/psk", ike: "default", esp: "default", key: swaninterop.ECDSAP256, psk: "a pre-shared key of the lab", iperf: 10 * time.Second},
	)
	if testing.Short() {
		cases = cases[4:5]
		cases[0].iperf = 2 * time.Second
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: c.key, PSK: c.psk})
			r := startGoResponder(t, l, c.psk)
			conn := l.InitiatorConn()
			conn.Proposals, conn.ESPProposals = []string{c.ike}, []string{c.esp}
			ini := initiate(t, l, conn)
			select {
			case s := <-r.hub.ups:
				if s.Identity().Name != swaninterop.InitiatorID {
					t.Fatalf("session of %q", s.Identity().Name)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no session came up")
			}
			if got := l.I.Ping(t, l.Target(), 3); got != 3 {
				t.Fatalf("%d of 3 pings through the tunnel answered\n%s", got, ini.ListSAs(t))
			}
			sas := ini.ListSAs(t)
			if !strings.Contains(sas, "TUNNEL-in-UDP") || !strings.Contains(sas, swaninterop.FirstVIP.String()) {
				t.Fatalf("strongSwan's SAs:\n%s", sas)
			}
			res := l.Throughput(t, c.iperf, map[string]swaninterop.CPUMeter{"charon": ini, "go": swaninterop.SelfCPU})
			if res.Mbps() < 10 {
				t.Fatalf("iperf3 through the tunnel: %.1f Mbit/s", res.Mbps())
			}
		})
	}
}
