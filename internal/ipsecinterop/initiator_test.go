package ipsecinterop

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/tunnel"
)

// startSwanResponder runs strongSwan in R as the lab's responder
// (ResponderConn: a virtual-IP pool for road warriors, InitiatorNet for
// site to site) with the given proposals.
func startSwanResponder(t *testing.T, l *swaninterop.Lab, ike, esp string) *swaninterop.Charon {
	t.Helper()
	c := swaninterop.Start(t, l.R, swaninterop.Options{})
	c.InstallCA(t, l.CA)
	c.InstallLeaf(t, "resp", l.ResponderLeaf)
	conn := l.ResponderConn()
	conn.Proposals, conn.ESPProposals = []string{ike}, []string{esp}
	c.Load(t, conn.String())
	return c
}

// goInitiator is the project's initiator running in the lab's namespace
// I, bridged to a TUN there.
type goInitiator struct {
	c   *ipsec.Client
	tun *tunnel.TUN
	wg  sync.WaitGroup
}

// initiatorConfig is the DialConfig matching the lab's strongSwan
// responder.
func initiatorConfig(t *testing.T, l *swaninterop.Lab) *ipsec.DialConfig {
	cfg := &ipsec.DialConfig{
		LocalID:     ipsec.FQDN(swaninterop.InitiatorID),
		RemoteID:    ipsec.FQDN(swaninterop.ResponderID),
		Certificate: []*x509.Certificate{l.InitiatorLeaf.Cert},
		PrivateKey:  l.InitiatorLeaf.Key,
		VerifyPeer: func(_ ipsec.ID, chain []*x509.Certificate) error {
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			_, err := chain[0].Verify(x509.VerifyOptions{Roots: l.CA.Pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if l.PSK != "" {
		cfg.PSK = []byte(l.PSK)
	}
	if l.Mode == swaninterop.SiteToSite {
		cfg.LocalTS = []netip.Prefix{swaninterop.InitiatorNet.Masked()}
	} else {
		cfg.RequestAddress = true
	}
	return cfg
}

// dialFromI opens the socket (port local) and a TUN in I, dials the
// responder with cfg, gives the TUN the virtual address, routes the
// narrowed remote traffic selectors into it with our inner address as
// source, and bridges TUN and Client until cleanup, which closes the
// Client (sending the Delete).
func dialFromI(t *testing.T, l *swaninterop.Lab, cfg *ipsec.DialConfig, local uint16) *goInitiator {
	t.Helper()
	var conn *net.UDPConn
	var tun *tunnel.TUN
	err := l.I.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(swaninterop.InitiatorAddr.Addr(), local)))
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
	start := time.Now()
	c, err := ipsec.Dial(ctx, conn, netip.AddrPortFrom(swaninterop.ResponderAddr.Addr(), 4500), cfg)
	if err != nil {
		t.Fatalf("the Go initiator could not connect to strongSwan: %v", err)
	}
	t.Logf("connected in %v: %s, IKE %v, ESP %v, TS %v === %v", time.Since(start).Round(time.Millisecond), c, c.IKEProposal(), c.ESPProposal(), c.LocalTS(), c.RemoteTS())
	g := &goInitiator{c: c, tun: tun}
	t.Cleanup(func() {
		c.Close()
		tun.Close()
		g.wg.Wait()
	})
	src := swaninterop.InitiatorNet.Addr()
	for _, a := range c.Addresses() {
		l.I.AddAddress(t, a, tun.Name())
		src = a.Addr()
	}
	for _, p := range c.RemoteTS() {
		l.I.Run(t, 5*time.Second, "ip", "route", "replace", p.String(), "dev", tun.Name(), "src", src.String())
	}
	g.wg.Add(2)
	go func() { defer g.wg.Done(); _ = tunnel.Pump(tun, c) }()
	go func() { defer g.wg.Done(); _ = tunnel.Pump(c, tun) }()
	return g
}

// Acceptance 4: the Go initiator connects to a strongSwan responder with
// the matrix of acceptance 1 (each proposal with ECDSA certificates, RSA
// and PSK with the defaults), as a road warrior with a virtual IP from
// strongSwan's pool, and once site to site; ping and iperf3 pass through
// the tunnel, and Close deletes the IKE SA on strongSwan's side.
func TestGoInitiatorToStrongSwanResponder(t *testing.T) {
	swaninterop.Require(t, "iperf3", "ping")
	type tc struct {
		name     string
		ike, esp string
		// want is the IKE suite the Go side reports (strongSwan's choice).
		want  string
		key   swaninterop.KeyType
		psk   string
		mode  swaninterop.Mode
		iperf time.Duration
		// rekey has strongSwan rekey the child and the IKE SA.
		rekey bool
		// port is the initiator's local port: 4500 or ephemeral (0).
		port uint16
	}
	var cases []tc
	for _, p := range []struct{ ike, esp, want string }{
		{"aes256gcm16-prfsha256-ecp256", "aes256gcm16", "aes256gcm16-prfsha256-ecp256"},
		{"aes128gcm16-prfsha256-x25519", "aes128gcm16", "aes128gcm16-prfsha256-x25519"},
		{"aes256-sha256-modp2048", "aes256-sha256", "aes256-sha256-prfsha256-modp2048"},
		{"chacha20poly1305-prfsha256-x25519", "chacha20poly1305", "chacha20poly1305-prfsha256-x25519"},
		{"default", "default", ""},
	} {
		cases = append(cases, tc{name: p.ike + "/ecdsa", ike: p.ike, esp: p.esp, want: p.want, key: swaninterop.ECDSAP256, iperf: 10 * time.Second, port: 4500})
	}
	cases = append(cases,
		tc{name: "default/rsa", ike: "default", esp: "default", key: swaninterop.RSA2048, iperf: 10 * time.Second, port: 4500},
		tc{name: "default/psk", ike: "default", esp: "default", key: swaninterop.ECDSAP256, psk: "a pre-shared key of the lab", iperf: 10 * time.Second},
		tc{name: "site-to-site/ecdsa/rekeys", ike: "aes256gcm16-prfsha256-ecp256", esp: "aes256gcm16-ecp256", want: "aes256gcm16-prfsha256-ecp256",
			key: swaninterop.ECDSAP256, mode: swaninterop.SiteToSite, iperf: 3 * time.Second, rekey: true},
	)
	if testing.Short() {
		cases = cases[4:5]
		cases[0].iperf = 2 * time.Second
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: c.mode, KeyType: c.key, PSK: c.psk})
			resp := startSwanResponder(t, l, c.ike, c.esp)
			g := dialFromI(t, l, initiatorConfig(t, l), c.port)
			if c.want != "" && g.c.IKEProposal().String() != c.want {
				t.Errorf("IKE suite %v, want %s", g.c.IKEProposal(), c.want)
			}
			src := l.Source()
			if c.mode == swaninterop.RoadWarrior {
				if a := g.c.Addresses(); len(a) != 1 || a[0].Addr() != swaninterop.FirstVIP {
					t.Fatalf("virtual addresses %v, want %v from strongSwan's pool", a, swaninterop.FirstVIP)
				}
			}
			if ts := g.c.LocalTS(); len(ts) != 1 || !ts[0].Contains(src) {
				t.Errorf("local traffic selectors %v, want ours narrowed to %v", ts, src)
			}
			if ts := g.c.RemoteTS(); len(ts) != 1 || ts[0] != swaninterop.ResponderNet.Masked() {
				t.Errorf("remote traffic selectors %v, want 0.0.0.0/0 narrowed to %v", ts, swaninterop.ResponderNet.Masked())
			}
			ping := func(when string) {
				t.Helper()
				if got := l.I.Ping(t, l.Target(), 3); got != 3 {
					t.Fatalf("%s: %d of 3 pings through the tunnel answered\n%s", when, got, resp.ListSAs(t))
				}
			}
			ping("after IKE_AUTH")
			sas := resp.ListSAs(t)
			theirs := swaninterop.InitiatorNet.Masked().String()
			if c.mode == swaninterop.RoadWarrior {
				theirs = src.String() + "/32"
			}
			if !strings.Contains(sas, "TUNNEL-in-UDP") || !strings.Contains(sas, "remote "+theirs) {
				t.Fatalf("strongSwan's SAs:\n%s", sas)
			}
			if c.rekey {
				swanRekeys(t, resp, g, ping)
			}
			dropsI, dropsR := udpRcvbufErrors(t, l.I), udpRcvbufErrors(t, l.R)
			res := l.Throughput(t, c.iperf, map[string]swaninterop.CPUMeter{"charon": resp, "go": swaninterop.SelfCPU})
			// Where TCP's retransmits come from: datagrams dropped at a
			// full socket receive buffer (charon's in R, ours in I).
			t.Logf("UDP receive-buffer drops during iperf3: %d in I (Go), %d in R (charon)", udpRcvbufErrors(t, l.I)-dropsI, udpRcvbufErrors(t, l.R)-dropsR)
			if res.Mbps() < 10 {
				t.Fatalf("iperf3 through the tunnel: %.1f Mbit/s", res.Mbps())
			}
			if err := g.c.Err(); err != nil {
				t.Fatalf("the Client ended: %v", err)
			}
			g.c.Close()
			resp.WaitLog(t, `received DELETE for IKE_SA `+swaninterop.ConnName, 5*time.Second)
			if sas := resp.ListSAs(t); strings.Contains(sas, swaninterop.ConnName+":") {
				t.Errorf("strongSwan still has the IKE SA after our Delete:\n%s", sas)
			}
		})
	}
}

// udpRcvbufErrors is the namespace's count of UDP datagrams dropped
// because a socket's receive buffer was full (/proc/net/snmp).
func udpRcvbufErrors(t *testing.T, ns *netns.NS) int {
	t.Helper()
	var names []string
	for _, ln := range strings.Split(ns.Run(t, 5*time.Second, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(ln)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.Atoi(f[i])
				return v
			}
		}
	}
	return 0
}

// swanRekeys has strongSwan rekey the child SA (with PFS: the ESP proposal
// has a group) and then the IKE SA, pinging after each.
func swanRekeys(t *testing.T, resp *swaninterop.Charon, g *goInitiator, ping func(string)) {
	t.Helper()
	if out, err := resp.Swanctl(15*time.Second, "--rekey", "--child", swaninterop.ChildName); err != nil {
		t.Fatalf("swanctl --rekey --child: %v\n%s", err, out)
	}
	resp.WaitLog(t, `closing CHILD_SA `+swaninterop.ChildName+`\{1\}`, 10*time.Second)
	ping("after the child rekey")
	if out, err := resp.Swanctl(15*time.Second, "--rekey", "--ike", swaninterop.ConnName); err != nil {
		t.Fatalf("swanctl --rekey --ike: %v\n%s", err, out)
	}
	resp.WaitLog(t, `IKE_SA `+swaninterop.ConnName+`\[\d+\] rekeyed`, 10*time.Second)
	ping("after the IKE rekey")
	// The child SA of the rekeyed IKE SA rekeys once more.
	if out, err := resp.Swanctl(15*time.Second, "--rekey", "--child", swaninterop.ChildName); err != nil {
		t.Fatalf("swanctl --rekey --child: %v\n%s", err, out)
	}
	resp.WaitLog(t, `closing CHILD_SA `+swaninterop.ChildName+`\{2\}`, 10*time.Second)
	ping("after the second child rekey")
	if err := g.c.Err(); err != nil {
		t.Fatalf("the Client ended: %v", err)
	}
}
