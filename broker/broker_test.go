package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/nat"
	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// brokerLab runs an OpenVPN server on loopback with a Broker as its
// handler, and dials participants with certificates named after them.
type brokerLab struct {
	b    *Broker
	addr string
	ca   *testpki.CA
	pool *x509.CertPool
}

func brokerModel() *policy.Model {
	m := plantModel()
	m.Users[0].Roles = []string{policy.RoleVPNUser}
	m.Users[1].Roles = []string{policy.RoleVPNUser}
	m.Users = append(m.Users, policy.User{Name: "viewer", Roles: []string{}}) // no connect-vpn right
	return m
}

// newTestBroker is the broker of the plant tests: brokerModel, the pool
// 10.8.0.0/24, and two devices with the same LAN under different aliases.
func newTestBroker(t *testing.T) *Broker {
	t.Helper()
	snap, err := policy.Compile(brokerModel())
	if err != nil {
		t.Fatal(err)
	}
	nat1, _ := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.1.0/24")})
	nat2, _ := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.2.0/24")})
	b, err := New(Config{Policy: snap, Pool: netip.MustParsePrefix("10.8.0.0/24"), Devices: map[string]DeviceNetworks{
		"dev1": {LANs: []netip.Prefix{lan}, NAT: nat1}, "dev2": {LANs: []netip.Prefix{lan}, NAT: nat2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newBrokerLab(t *testing.T) *brokerLab {
	t.Helper()
	b := newTestBroker(t)
	ca := testpki.New(t, "broker test CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv, err := openvpn.NewServer(&openvpn.ServerConfig{TLS: &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "broker").TLS}, ClientCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUDP(ctx, conn, b) }()
	t.Cleanup(func() { cancel(); <-done })
	return &brokerLab{b: b, addr: conn.LocalAddr().String(), ca: ca, pool: pool}
}

func (l *brokerLab) dial(t *testing.T, name string) (*openvpn.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := openvpn.Dial(ctx, "udp", l.addr, &openvpn.ClientConfig{TLS: &tls.Config{
		Certificates: []tls.Certificate{l.ca.Client(t, name).TLS}, RootCAs: l.pool}})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func (l *brokerLab) mustDial(t *testing.T, name string) *openvpn.Client {
	t.Helper()
	c, err := l.dial(t, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func send(t *testing.T, c *openvpn.Client, pkt []byte) {
	t.Helper()
	if _, err := c.Write([][]byte{pkt}, tunnel.Headroom); err != nil {
		t.Fatal(err)
	}
}

// receive reads one packet within d, or returns nil.
// readers holds one reading goroutine per client, so that a receive that
// timed out does not leave a Read behind that swallows the next packet.
var readers sync.Map // *openvpn.Client → chan []byte

func receive(c *openvpn.Client, d time.Duration) []byte {
	ch := make(chan []byte, 64)
	if old, loaded := readers.LoadOrStore(c, ch); loaded {
		ch = old.(chan []byte)
	} else {
		go func() {
			defer close(ch)
			for {
				buf := make([]byte, tunnel.BufferSize)
				sizes := []int{0}
				if _, err := c.Read([][]byte{buf}, sizes, tunnel.Headroom); err != nil {
					return
				}
				ch <- buf[tunnel.Headroom : tunnel.Headroom+sizes[0]]
			}
		}()
	}
	select {
	case p := <-ch:
		return p
	case <-time.After(d):
		return nil
	}
}

func addrs(t *testing.T, pkt []byte) (src, dst netip.Addr) {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil {
		t.Fatalf("not an IPv4 packet: %x", pkt)
	}
	s, _ := netip.AddrFromSlice(ip.SrcIP.To4())
	d, _ := netip.AddrFromSlice(ip.DstIP.To4())
	return s, d
}

func TestBrokerOverOpenVPN(t *testing.T) {
	l := newBrokerLab(t)
	u1 := l.mustDial(t, "u1")
	u2 := l.mustDial(t, "u2")
	dev1 := l.mustDial(t, "dev1")

	// Routes follow the relations: u1 gets plant 1's alias only.
	if r := u1.Pushed().Routes; !slices.Equal(r, []netip.Prefix{netip.MustParsePrefix("10.200.1.0/24")}) {
		t.Fatalf("u1 routes %v", r)
	}
	if r := u2.Pushed().Routes; len(r) != 0 {
		t.Fatalf("u2 routes %v", r)
	}
	if r := dev1.Pushed().Routes; !slices.Equal(r, []netip.Prefix{netip.MustParsePrefix("10.8.0.0/24")}) {
		t.Fatalf("dev1 routes %v", r)
	}
	u1Addr := u1.Pushed().Address.Addr()
	alias := netip.MustParseAddr("10.200.1.10")

	send(t, u1, tcpPacket(t, u1Addr, alias, 40000, 502, true))
	pkt := receive(dev1, 5*time.Second)
	if pkt == nil {
		t.Fatal("the device did not receive u1's packet")
	}
	if s, d := addrs(t, pkt); s != u1Addr || d != plc {
		t.Fatalf("device received %v -> %v, want %v -> %v", s, d, u1Addr, plc)
	}
	send(t, dev1, tcpPacket(t, plc, u1Addr, 502, 40000, false))
	pkt = receive(u1, 5*time.Second)
	if pkt == nil {
		t.Fatal("u1 did not receive the reply")
	}
	if s, d := addrs(t, pkt); s != alias || d != u1Addr {
		t.Fatalf("u1 received %v -> %v, want %v -> %v", s, d, alias, u1Addr)
	}
	// u2 reaches nothing.
	send(t, u2, tcpPacket(t, u2.Pushed().Address.Addr(), alias, 40001, 502, true))
	if pkt := receive(dev1, 500*time.Millisecond); pkt != nil {
		t.Fatal("u2 reached the device")
	}

	// The address is stable across reconnects.
	u1.Close()
	again := l.mustDial(t, "u1")
	if again.Pushed().Address.Addr() != u1Addr {
		t.Fatalf("u1 came back as %v, was %v", again.Pushed().Address.Addr(), u1Addr)
	}

	// Disabling u1 closes its tunnel at once and refuses the next one.
	m := brokerModel()
	m.Users[0].Disabled = true
	snap, err := policy.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.b.SetPolicy(snap); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		buf := make([]byte, tunnel.BufferSize)
		for {
			if _, err := again.Read([][]byte{buf}, []int{0}, tunnel.Headroom); err != nil {
				closed <- err
				return
			}
		}
	}()
	select {
	case err := <-closed:
		t.Logf("the disabled user's client: %v", err)
	case <-time.After(time.Second):
		t.Fatal("the disabled user's tunnel stayed open for a second")
	}
	if _, err := l.dial(t, "u1"); !errors.Is(err, openvpn.ErrAuthFailed) {
		t.Fatalf("a disabled user connected: %v", err)
	}
}

func TestBrokerRefusesUnknownAndUnentitled(t *testing.T) {
	l := newBrokerLab(t)
	for _, name := range []string{"mallory", "viewer"} {
		if _, err := l.dial(t, name); !errors.Is(err, openvpn.ErrAuthFailed) {
			t.Errorf("%s: %v, want AUTH_FAILED", name, err)
		}
	}
}

func TestMetrics(t *testing.T) {
	l := newBrokerLab(t)
	u2 := l.mustDial(t, "u2")
	l.mustDial(t, "dev1")
	send(t, u2, tcpPacket(t, u2.Pushed().Address.Addr(), netip.MustParseAddr("10.200.1.10"), 40000, 502, true)) // policy drop
	send(t, u2, tcpPacket(t, u2.Pushed().Address.Addr(), netip.MustParseAddr("10.200.2.10"), 40000, 502, true)) // device offline
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := httptest.NewRecorder()
		l.b.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		body := rec.Body.String()
		if strings.Contains(body, "remotegate_sessions 2\n") && strings.Contains(body, `remotegate_switch_dropped_packets_total{reason="policy"} 1`+"\n") &&
			strings.Contains(body, `remotegate_switch_dropped_packets_total{reason="offline"} 1`+"\n") &&
			strings.Contains(body, `remotegate_handshake_seconds_bucket{le="+Inf"} 2`+"\n") && strings.Contains(body, "remotegate_handshake_seconds_count 2\n") {
			// u2 sent two packets: at least two packets' bytes came in.
			var in int
			if _, err := fmt.Sscanf(body[strings.Index(body, `remotegate_tunnel_bytes_total{direction="in"}`):], `remotegate_tunnel_bytes_total{direction="in"} %d`, &in); err != nil || in < 2*60 {
				t.Fatalf("bytes in %d (%v):\n%s", in, err, body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
				t.Fatalf("content type %q", ct)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
