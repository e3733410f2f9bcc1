package ipsec

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

// echoHandler admits everybody with one address, the route 10.98.0.0/24
// and the peer's networks, and sends every delivered IPv4 packet back
// with source and destination swapped, so that a test sees data in both
// directions through the tunnel.
type echoHandler struct {
	networks []netip.Prefix
	ups      chan tunnel.Session
	downs    chan error
	echoed   atomic.Int64
	admit    atomic.Pointer[func(tunnel.Identity) error]
}

func newEchoHandler() *echoHandler {
	return &echoHandler{ups: make(chan tunnel.Session, 64), downs: make(chan error, 64)}
}

var (
	testVIP   = netip.MustParseAddr("10.99.0.2")
	testRoute = netip.MustParsePrefix("10.98.0.0/24")
	testPeer  = netip.MustParseAddr("10.98.0.1")
)

func (h *echoHandler) Admit(_ context.Context, id tunnel.Identity, _ netip.AddrPort) (tunnel.Assignment, error) {
	if f := h.admit.Load(); f != nil {
		if err := (*f)(id); err != nil {
			return tunnel.Assignment{}, err
		}
	}
	return tunnel.Assignment{Addresses: []netip.Prefix{netip.PrefixFrom(testVIP, 24)}, Routes: []netip.Prefix{testRoute}, Networks: h.networks}, nil
}

func (h *echoHandler) Up(s tunnel.Session) {
	select {
	case h.ups <- s:
	default:
	}
}

func (h *echoHandler) Down(_ tunnel.Session, cause error) {
	select {
	case h.downs <- cause:
	default:
	}
}

func (h *echoHandler) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	for i := range sizes {
		pkt := bufs[i][offset : offset+sizes[i]]
		if len(pkt) < 20 || pkt[0]>>4 != 4 {
			continue
		}
		// Swapping the addresses keeps the header checksum valid.
		var a [4]byte
		copy(a[:], pkt[12:16])
		copy(pkt[12:16], pkt[16:20])
		copy(pkt[16:20], a[:])
		// Counted before the echo goes out: the peer may read the echo
		// before Send returns.
		h.echoed.Add(1)
		_, _ = from.Send([][]byte{bufs[i][:offset+sizes[i]]}, offset)
	}
}

// testServer runs a Server on a loopback port.
func testServer(t testing.TB, cfg Config, h tunnel.Handler) (*Server, netip.AddrPort) {
	t.Helper()
	srv, err := NewServer(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func loopbackConn(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const testPSK = "a pre-shared key for the loopback tests"

func pskServerConfig(t testing.TB) Config {
	return Config{
		LocalID: FQDN("responder.test"),
		PSK: func(id ID) ([]byte, string, bool) {
			if id.String() != "device.test" {
				return nil, "", false
			}
			return []byte(testPSK), "device", true
		},
		Logger: testLogger(t),
	}
}

func pskDialConfig(t testing.TB) *DialConfig {
	return &DialConfig{LocalID: FQDN("device.test"), RemoteID: FQDN("responder.test"), PSK: []byte(testPSK), RequestAddress: true, Logger: testLogger(t)}
}

// certPair makes a CA, a server certificate for responder.test and a
// client certificate (whose identity is its subject DN), and configures
// both sides with them.
func certPair(t testing.TB) (Config, *DialConfig) {
	ca := testpki.New(t, "ipsec test CA")
	srvLeaf := ca.Server(t, "responder.test", "responder.test")
	cliLeaf := ca.Client(t, "device")
	verify := func(chain []*x509.Certificate) error {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
	scfg := Config{
		Certificate:            []*x509.Certificate{srvLeaf.Cert},
		PrivateKey:             srvLeaf.Key,
		CertificateAuthorities: []*x509.Certificate{ca.Cert},
		VerifyPeer: func(id ID, chain []*x509.Certificate) (tunnel.Identity, error) {
			if err := verify(chain); err != nil {
				return tunnel.Identity{}, err
			}
			return tunnel.Identity{Name: chain[0].Subject.CommonName}, nil
		},
		Logger: testLogger(t),
	}
	dcfg := &DialConfig{
		RemoteID:               FQDN("responder.test"),
		Certificate:            []*x509.Certificate{cliLeaf.Cert},
		PrivateKey:             cliLeaf.Key,
		CertificateAuthorities: []*x509.Certificate{ca.Cert},
		VerifyPeer:             func(_ ID, chain []*x509.Certificate) error { return verify(chain) },
		RequestAddress:         true,
		Logger:                 testLogger(t),
	}
	return scfg, dcfg
}

// ipv4UDP is an IPv4/UDP packet at tunnel.Headroom in a full buffer.
func ipv4UDP(src, dst netip.Addr, payload []byte) []byte {
	buf := make([]byte, tunnel.BufferSize)
	pkt := buf[tunnel.Headroom:]
	total := 20 + 8 + len(payload)
	pkt[0], pkt[8], pkt[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(pkt[2:], uint16(total))
	s, d := src.As4(), dst.As4()
	copy(pkt[12:], s[:])
	copy(pkt[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pkt[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(pkt[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(pkt[20:], 5000)
	binary.BigEndian.PutUint16(pkt[22:], 5001)
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload)))
	copy(pkt[28:], payload)
	return buf[:tunnel.Headroom+total]
}

// roundTrip sends n packets through c to the echo handler and reads them
// back.
func roundTrip(t *testing.T, c *Client, src, dst netip.Addr, n int) {
	t.Helper()
	var bufs [][]byte
	for i := range n {
		bufs = append(bufs, ipv4UDP(src, dst, fmt.Appendf(nil, "packet %d", i)))
	}
	if sent, err := c.Write(bufs, tunnel.Headroom); err != nil || sent != n {
		t.Fatalf("Write: %d of %d, %v", sent, n, err)
	}
	got := map[string]bool{}
	rb := make([][]byte, c.BatchSize())
	sizes := make([]int, len(rb))
	for i := range rb {
		rb[i] = make([]byte, tunnel.BufferSize)
	}
	deadline := time.AfterFunc(5*time.Second, func() { c.Close() })
	defer deadline.Stop()
	for len(got) < n {
		k, err := c.Read(rb, sizes, tunnel.Headroom)
		if err != nil {
			t.Fatalf("Read after %d of %d packets: %v", len(got), n, err)
		}
		for i := range k {
			pkt := rb[i][tunnel.Headroom : tunnel.Headroom+sizes[i]]
			s, d, _ := addrs(pkt)
			if s != dst || d != src {
				t.Fatalf("echo from %v to %v", s, d)
			}
			got[string(pkt[28:])] = true
		}
	}
}

func TestDialServerPSK(t *testing.T) {
	h := newEchoHandler()
	srv, addr := testServer(t, pskServerConfig(t), h)
	c, err := Dial(context.Background(), loopbackConn(t), addr, pskDialConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sess tunnel.Session
	select {
	case sess = <-h.ups:
	case <-time.After(5 * time.Second):
		t.Fatal("no session came up")
	}
	if sess.Identity().Name != "device" {
		t.Errorf("session of %q", sess.Identity().Name)
	}
	vip := netip.PrefixFrom(testVIP, 32)
	if a := c.Addresses(); len(a) != 1 || a[0] != vip {
		t.Errorf("Addresses %v, want %v", a, vip)
	}
	if ts := c.LocalTS(); len(ts) != 1 || ts[0] != vip {
		t.Errorf("LocalTS %v, want %v", ts, vip)
	}
	if ts := c.RemoteTS(); len(ts) != 1 || ts[0] != testRoute {
		t.Errorf("RemoteTS %v, want %v", ts, testRoute)
	}
	if !c.RemoteID().Equal(FQDN("responder.test")) || c.PeerCertificates() != nil {
		t.Errorf("responder %v with %d certificates", c.RemoteID(), len(c.PeerCertificates()))
	}
	if p := c.IKEProposal(); p != DefaultIKEProposals[0] {
		t.Errorf("IKE proposal %v, want %v", p, DefaultIKEProposals[0])
	}
	if m := c.MTU(); m != 1400 {
		t.Errorf("MTU %d", m)
	}
	roundTrip(t, c, testVIP, testPeer, 50)
	// A packet from an address the tunnel does not carry is not echoed:
	// Write drops it, since no child SA covers it, and the server drops it
	// too (traffic selectors) when it is sealed on the child anyway.
	before := h.echoed.Load()
	spoofed := ipv4UDP(netip.MustParseAddr("10.99.0.3"), testPeer, []byte("spoofed"))
	if n, err := c.Write([][]byte{bytes.Clone(spoofed)}, tunnel.Headroom); err != nil || n != 0 || c.Unroutable() != 1 {
		t.Fatalf("Write of a packet no child covers: %d sent, %v, %d unroutable", n, err, c.Unroutable())
	}
	sealed, err := c.link.out.Load().out.Seal(spoofed, tunnel.Headroom, len(spoofed)-tunnel.Headroom)
	if err != nil {
		t.Fatal(err)
	}
	dropped := srv.Stats().ESPDropped
	if _, err := c.conn.WriteToUDPAddrPort(sealed, c.Remote()); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, testVIP, testPeer, 1)
	if h.echoed.Load() != before+1 {
		t.Errorf("the server echoed %d packets, want 1 (the spoofed one must be dropped)", h.echoed.Load()-before)
	}
	if d := srv.Stats().ESPDropped; d != dropped+1 {
		t.Errorf("the server dropped %d ESP packets, want 1 (the spoofed one)", d-dropped)
	}
	cnt := c.Counters()
	if cnt.PacketsOut < 51 || cnt.PacketsIn < 51 {
		t.Errorf("counters %+v", cnt)
	}
	// Close deletes the IKE SA: the server's Handler sees the session go
	// down because we deleted it.
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v", time.Since(start))
	select {
	case cause := <-h.downs:
		if !errors.Is(cause, ErrDeleted) {
			t.Errorf("Down with %v, want ErrDeleted", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's Handler saw no Down")
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err %v", c.Err())
	}
	if _, err := c.Write([][]byte{ipv4UDP(testVIP, testPeer, nil)}, tunnel.Headroom); !errors.Is(err, ErrClosed) || !errors.Is(err, tunnel.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if _, err := c.Read(make([][]byte, 1), make([]int, 1), 0); !errors.Is(err, tunnel.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}

func TestDialServerECDSA(t *testing.T) {
	scfg, dcfg := certPair(t)
	h := newEchoHandler()
	_, addr := testServer(t, scfg, h)
	for _, ike := range []Proposal{
		{Encryption: EncrAESGCM16, KeyBits: 256, PRF: PRFHMACSHA256, DHGroup: DHECP256},
		{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA256, PRF: PRFHMACSHA384, DHGroup: DHModp2048},
		{Encryption: EncrChaCha20Poly1305, PRF: PRFHMACSHA512, DHGroup: DHCurve25519},
	} {
		for _, esp := range []Proposal{
			{Encryption: EncrAESGCM16, KeyBits: 128},
			{Encryption: EncrAESCBC, KeyBits: 256, Integrity: IntegHMACSHA512},
			{Encryption: EncrChaCha20Poly1305},
		} {
			t.Run(ike.String()+"/"+esp.String(), func(t *testing.T) {
				d := *dcfg
				d.IKEProposals, d.ESPProposals = []Proposal{ike}, []Proposal{esp}
				c, err := Dial(context.Background(), loopbackConn(t), addr, &d)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if c.IKEProposal() != ike || c.ESPProposal() != esp {
					t.Errorf("negotiated %v / %v", c.IKEProposal(), c.ESPProposal())
				}
				if len(c.PeerCertificates()) != 1 || !c.RemoteID().Equal(FQDN("responder.test")) {
					t.Errorf("responder %v", c.RemoteID())
				}
				select {
				case s := <-h.ups:
					if s.Identity().Name != "device" {
						t.Errorf("session of %q", s.Identity().Name)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no session came up")
				}
				roundTrip(t, c, testVIP, testPeer, 20)
				c.Close()
				select {
				case cause := <-h.downs:
					if !errors.Is(cause, ErrDeleted) {
						t.Errorf("Down with %v", cause)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no Down")
				}
			})
		}
	}
}

// The server takes only ECP-256; our first KE is Curve25519: one
// INVALID_KE_PAYLOAD round. Above the cookie threshold, one COOKIE round
// more.
func TestDialInvalidKEAndCookie(t *testing.T) {
	cfg := pskServerConfig(t)
	cfg.IKEProposals = []Proposal{{Encryption: EncrAESGCM16, KeyBits: 256, PRF: PRFHMACSHA256, DHGroup: DHECP256}}
	cfg.CookieThreshold = 1
	h := newEchoHandler()
	srv, addr := testServer(t, cfg, h)
	c, err := Dial(context.Background(), loopbackConn(t), addr, pskDialConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.IKEProposal(); p.DHGroup != DHECP256 {
		t.Errorf("group %d", p.DHGroup)
	}
	c.Close()
	// A half-open SA of someone else puts the server above its threshold.
	conn := loopbackConn(t)
	defer conn.Close()
	dh, err := ikecrypto.NewDH(DHECP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDPAddrPort(initRequest(t, dh.Public(), nil), addr); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); srv.Stats().HalfOpen == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no half-open SA")
		}
	}
	before := srv.Stats().CookiesSent
	c, err = Dial(context.Background(), loopbackConn(t), addr, pskDialConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if srv.Stats().CookiesSent == before {
		t.Error("no cookie was asked for")
	}
	roundTrip(t, c, testVIP, testPeer, 3)
}

// Started on port 500, the initiator floats to 4500 after IKE_SA_INIT
// (RFC 7296 §2.23), where IKE_AUTH and ESP go.
func TestDialFloatsFrom500(t *testing.T) {
	ip := net.IPv4(127, 93, 41, 7) // a loopback address of its own, so that 500 and 4500 are free
	var conns []*net.UDPConn
	for _, port := range []int{500, 4500} {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			t.Skipf("cannot bind %v:%d (needs root): %v", ip, port, err)
		}
		conns = append(conns, c)
	}
	srv, err := NewServer(&Config{LocalID: FQDN("responder.test"), PSK: pskServerConfig(t).PSK})
	if err != nil {
		t.Fatal(err)
	}
	h := newEchoHandler()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, h, conns...) }()
	defer func() { cancel(); <-served }()
	c, err := Dial(context.Background(), loopbackConn(t), netip.MustParseAddrPort("127.93.41.7:500"), pskDialConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := c.Remote(); r.Port() != 4500 {
		t.Errorf("responder at %v after IKE_SA_INIT, want port 4500", r)
	}
	roundTrip(t, c, testVIP, testPeer, 3)
}

func TestDialSiteToSite(t *testing.T) {
	h := newEchoHandler()
	lan := netip.MustParsePrefix("10.240.0.0/24")
	h.networks = []netip.Prefix{lan}
	_, addr := testServer(t, pskServerConfig(t), h)
	d := pskDialConfig(t)
	d.RequestAddress = false
	d.LocalTS = []netip.Prefix{lan}
	d.RemoteTS = []netip.Prefix{netip.MustParsePrefix("10.98.0.0/16")}
	c, err := Dial(context.Background(), loopbackConn(t), addr, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ts := c.LocalTS(); len(ts) != 1 || ts[0] != lan {
		t.Errorf("LocalTS %v", ts)
	}
	if ts := c.RemoteTS(); len(ts) != 1 || ts[0] != testRoute {
		t.Errorf("RemoteTS %v, want the narrowed %v", ts, testRoute)
	}
	if len(c.Addresses()) != 0 {
		t.Errorf("addresses %v", c.Addresses())
	}
	roundTrip(t, c, netip.MustParseAddr("10.240.0.7"), testPeer, 5)
	// Closed first: the next IKE_AUTH's INITIAL_CONTACT would make the
	// server drop this SA silently, and our Delete would go unanswered.
	c.Close()

	// Selectors the server cannot narrow to anything: TS_UNACCEPTABLE.
	d.LocalTS = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}
	_, err = Dial(context.Background(), loopbackConn(t), addr, d)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "TS_UNACCEPTABLE") {
		t.Errorf("Dial with foreign selectors: %v", err)
	}
}

func TestDialAuthenticationFailures(t *testing.T) {
	scfg, dcfg := certPair(t)
	scfg.PSK = pskServerConfig(t).PSK
	h := newEchoHandler()
	_, addr := testServer(t, scfg, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	d := pskDialConfig(t)
	d.PSK = []byte("not the key")
	if _, err := Dial(ctx, loopbackConn(t), addr, d); !errors.Is(err, ErrAuthentication) {
		t.Errorf("wrong PSK: %v", err)
	}
	d = pskDialConfig(t)
	d.RemoteID = FQDN("other.test")
	if _, err := Dial(ctx, loopbackConn(t), addr, d); !errors.Is(err, ErrAuthentication) || !strings.Contains(err.Error(), "other.test") {
		t.Errorf("wrong responder identity: %v", err)
	}
	// The server's certificate from another CA.
	d2 := *dcfg
	other := testpki.New(t, "another CA")
	d2.VerifyPeer = func(_ ID, chain []*x509.Certificate) error {
		roots := x509.NewCertPool()
		roots.AddCert(other.Cert)
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
	if _, err := Dial(ctx, loopbackConn(t), addr, &d2); !errors.Is(err, ErrAuthentication) {
		t.Errorf("untrusted responder certificate: %v", err)
	}
	// The Handler refuses us.
	refuse := func(tunnel.Identity) error { return errors.New("not today") }
	h.admit.Store(&refuse)
	if _, err := Dial(ctx, loopbackConn(t), addr, dcfg); !errors.Is(err, ErrAuthentication) {
		t.Errorf("refused by the Handler: %v", err)
	}
	h.admit.Store(nil)
	// No proposal in common: SHA-1, which the defaults leave out.
	d = pskDialConfig(t)
	d.IKEProposals = []Proposal{{Encryption: EncrAESCBC, KeyBits: 192, Integrity: ikecrypto.IntegHMACSHA196, PRF: ikecrypto.PRFHMACSHA1, DHGroup: DHECP256}}
	if _, err := Dial(ctx, loopbackConn(t), addr, d); !errors.Is(err, ErrNoProposal) {
		t.Errorf("no common proposal: %v", err)
	}
	// Nobody answers: ctx ends the handshake.
	dead := loopbackConn(t)
	defer dead.Close()
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if _, err := Dial(short, loopbackConn(t), dead.LocalAddr().(*net.UDPAddr).AddrPort(), pskDialConfig(t)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial to nobody: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("Dial to nobody took %v despite a 300 ms context", time.Since(start))
	}
}

func TestDialConfigErrors(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:4500")
	for name, cfg := range map[string]*DialConfig{
		"nil":            nil,
		"no credentials": {LocalID: FQDN("a")},
		"no verifier":    {LocalID: FQDN("a"), Certificate: []*x509.Certificate{{}}, PrivateKey: nil},
		"no ID":          {PSK: []byte("k")},
		"bad IKE":        {LocalID: FQDN("a"), PSK: []byte("k"), IKEProposals: []Proposal{{Encryption: EncrAESGCM16, KeyBits: 256}}},
		"bad TS":         {LocalID: FQDN("a"), PSK: []byte("k"), LocalTS: []netip.Prefix{{}}},
	} {
		if _, err := Dial(context.Background(), loopbackConn(t), addr, cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The server deletes the session: the Client ends with ErrDeleted.
func TestClientDeletedByServer(t *testing.T) {
	h := newEchoHandler()
	_, addr := testServer(t, pskServerConfig(t), h)
	c, err := Dial(context.Background(), loopbackConn(t), addr, pskDialConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-h.ups
	s.Close(errors.New("kicked"))
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the Client did not end")
	}
	if !errors.Is(c.Err(), ErrDeleted) {
		t.Errorf("Err %v", c.Err())
	}
}

// fastClock runs a hundred times faster than the wall clock, so that
// retransmission and dead peer timers pass in a test.
func fastClock() func() time.Time {
	start := time.Now()
	return func() time.Time { return start.Add(time.Since(start) * 100) }
}

// relay forwards datagrams between one client and a server until drop
// is set: a path that can die.
func relay(t testing.TB, server netip.AddrPort) (netip.AddrPort, *atomic.Bool) {
	t.Helper()
	front, back := loopbackConn(t), loopbackConn(t)
	var drop atomic.Bool
	var client atomic.Pointer[netip.AddrPort]
	pipe := func(from *net.UDPConn, to *net.UDPConn, dst func() netip.AddrPort, learn bool) {
		buf := make([]byte, 65535)
		for {
			n, src, err := from.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if learn {
				client.Store(&src)
			}
			if d := dst(); !drop.Load() && d.IsValid() {
				_, _ = to.WriteToUDPAddrPort(buf[:n], d)
			}
		}
	}
	go pipe(front, back, func() netip.AddrPort { return server }, true)
	go pipe(back, front, func() netip.AddrPort {
		if p := client.Load(); p != nil {
			return *p
		}
		return netip.AddrPort{}
	}, false)
	t.Cleanup(func() { front.Close(); back.Close() })
	return front.LocalAddr().(*net.UDPAddr).AddrPort(), &drop
}

// Dead peer detection in both directions: the server checks that we are
// alive and we answer; then the path dies and we notice.
func TestClientDeadPeerDetection(t *testing.T) {
	cfg := pskServerConfig(t)
	cfg.DPDInterval = 100 * time.Millisecond
	h := newEchoHandler()
	_, addr := testServer(t, cfg, h)
	front, drop := relay(t, addr)

	d := pskDialConfig(t)
	d.DPDInterval = 2 * time.Second
	d.Now = fastClock()
	c, err := Dial(context.Background(), loopbackConn(t), front, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-h.ups
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.link.mu.Lock()
		answered := c.ike.peerMID
		c.link.mu.Unlock()
		if answered >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("we answered %d of the server's DPD requests", answered)
		}
		time.Sleep(50 * time.Millisecond)
	}
	roundTrip(t, c, testVIP, testPeer, 1)
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
	drop.Store(true)
	select {
	case <-c.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the Client did not notice the dead path")
	}
	if !errors.Is(c.Err(), ErrDeadPeer) {
		t.Errorf("Err %v", c.Err())
	}
}

func TestWireProposals(t *testing.T) {
	ike := wireProposals(DefaultIKEProposals, message.ProtoIKE, nil, DHECP256)
	esp := wireProposals(DefaultESPProposals, message.ProtoESP, []byte{1, 2, 3, 4}, 0)
	// AEAD and non-AEAD: two proposals each.
	if len(ike) != 2 || len(esp) != 2 {
		t.Errorf("%d IKE and %d ESP proposals, want 2 and 2", len(ike), len(esp))
	}
	// Every proposal of ours is selectable from what we send, and every
	// combination we send is one of ours.
	for _, p := range DefaultIKEProposals {
		if _, wrongKE, err := selectIKE([]Proposal{p}, &message.SA{Proposals: ike}, p.DHGroup); err != nil || wrongKE {
			t.Errorf("%v not offered", p)
		}
	}
	n := 0
	for _, mp := range ike {
		o := offerOf(&mp)
		if mp.Transforms[len(mp.Transforms)-1].Type != message.TransformDH || o.dh[0] != DHECP256 {
			t.Errorf("proposal %d does not lead with the KE group: %v", mp.Number, o.dh)
		}
		integ := max(1, len(o.integ))
		n += len(o.encr) * integ * len(o.prf) * len(o.dh)
	}
	if n != len(DefaultIKEProposals) {
		t.Errorf("the wire proposals allow %d combinations, ours are %d", n, len(DefaultIKEProposals))
	}
	// Not a product: every proposal on its own.
	odd := []Proposal{
		{Encryption: EncrAESGCM16, KeyBits: 256, PRF: PRFHMACSHA256, DHGroup: DHECP256},
		{Encryption: EncrAESGCM16, KeyBits: 128, PRF: PRFHMACSHA384, DHGroup: DHModp2048},
	}
	if got := wireProposals(odd, message.ProtoIKE, nil, 0); len(got) != 2 || got[1].Number != 2 {
		t.Errorf("%d proposals for two unrelated suites", len(got))
	}
}

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct {
		start, end string
		want       string
	}{
		{"10.0.0.0", "10.0.0.255", "[10.0.0.0/24]"},
		{"0.0.0.0", "255.255.255.255", "[0.0.0.0/0]"},
		{"10.0.0.1", "10.0.0.1", "[10.0.0.1/32]"},
		{"10.0.0.1", "10.0.0.6", "[10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32]"},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "[::/0]"},
		{"10.0.0.2", "10.0.0.1", "[]"},
	} {
		got := fmt.Sprint(rangePrefixes(netip.MustParseAddr(tc.start), netip.MustParseAddr(tc.end)))
		if got != tc.want {
			t.Errorf("%s-%s: %s, want %s", tc.start, tc.end, got, tc.want)
		}
	}
}

func TestParseID(t *testing.T) {
	ca := testpki.New(t, "id CA")
	leaf := ca.Client(t, "device")
	for _, tc := range []struct {
		in   string
		want ID
	}{
		{"gw.example.com", FQDN("gw.example.com")},
		{"fqdn:10.0.0.1", FQDN("10.0.0.1")},
		{"10.0.0.1", ID{Type: IDIPv4, Value: []byte{10, 0, 0, 1}}},
		{"a@b.example", ID{Type: IDEmail, Value: []byte("a@b.example")}},
		{"keyid:xyz", ID{Type: IDKeyID, Value: []byte("xyz")}},
		{"CN=device", ID{Type: IDDN, Value: leaf.Cert.RawSubject}},
	} {
		got, err := ParseID(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseID(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if id, _ := ParseID("C=CH, O=Example, CN=gw"); id.String() != "CN=gw,O=Example,C=CH" {
		t.Errorf("DN %s", id)
	}
	if !(ID{Type: IDDN, Value: leaf.Cert.RawSubject}).MatchesCertificate(leaf.Cert) {
		t.Error("DN does not match")
	}
	for _, bad := range []string{"", "XX=y", "CN=a, junk"} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) succeeded", bad)
		}
	}
}

// Garbage for an established Client is dropped without a panic.
func FuzzClientDatagram(f *testing.F) {
	h := newEchoHandler()
	cfg := pskServerConfig(f)
	cfg.Logger = nil
	_, addr := testServer(f, cfg, h)
	d := pskDialConfig(f)
	d.Logger = nil
	c, err := Dial(context.Background(), loopbackConn(f), addr, d)
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	c.link.mu.Lock()
	spii, spir := c.ike.spii, c.ike.spir
	c.link.mu.Unlock()
	hdr := message.Header{SPIi: spii, SPIr: spir, Exchange: message.Informational, NextPayload: message.PayloadSK, Length: 28 + 20}
	f.Add(append(append(make([]byte, 4), hdr.AppendTo(nil)...), make([]byte, 20)...))
	f.Add([]byte{0xff})
	out := c.link.out.Load()
	f.Add(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, out.inSPI), 1))
	p := &rxPacket{buf: make([]byte, tunnel.BufferSize)}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > tunnel.BufferSize-tunnel.Headroom {
			return
		}
		in := p.buf[tunnel.Headroom-16 : tunnel.Headroom-16+len(pkt)]
		copy(in, pkt)
		var authentic bool
		if c.handleDatagram(p, in, addr, &authentic) || authentic {
			t.Fatal("garbage was accepted")
		}
	})
}

// IKE_SA setups per second: Dial (IKE_SA_INIT and IKE_AUTH with the
// default proposals, Curve25519) and Close (Delete and its answer)
// against a Server on loopback, one after the other.
func BenchmarkDialClose(b *testing.B) {
	for _, auth := range []string{"psk", "ecdsa"} {
		b.Run(auth, func(b *testing.B) {
			var scfg Config
			var dcfg *DialConfig
			if auth == "psk" {
				scfg, dcfg = pskServerConfig(b), pskDialConfig(b)
			} else {
				scfg, dcfg = certPair(b)
			}
			scfg.Logger, dcfg.Logger = nil, nil
			h := newEchoHandler()
			_, addr := testServer(b, scfg, h)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					b.Fatal(err)
				}
				c, err := Dial(context.Background(), conn, addr, dcfg)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "setups/s")
		})
	}
}
