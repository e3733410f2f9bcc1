package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/tunnel"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, ms(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, ms(50)}, {90, ms(90)}, {99, ms(99)}, {100, ms(100)}, {0.5, ms(1)}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("p%v of 1..100 ms = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
	// Nearest rank: with 3 values p50 is the middle one, p99 the largest.
	three := []time.Duration{ms(10), ms(20), ms(30)}
	if percentile(three, 50) != ms(20) || percentile(three, 99) != ms(30) || percentile(three, 1) != ms(10) {
		t.Errorf("percentiles of 10,20,30 ms: %v %v %v", percentile(three, 1), percentile(three, 50), percentile(three, 99))
	}
}

func TestRecorderSummary(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRecorder(start)
	for _, d := range []int{40, 10, 30, 20} {
		r.success(ms(d))
	}
	r.failure("timeout")
	r.failure("timeout")
	r.failure("openvpn: authentication failed")
	if up, failed := r.counts(); up != 4 || failed != 3 {
		t.Fatalf("counts = %d up, %d failed", up, failed)
	}
	r.finish(start.Add(2 * time.Second))
	s := r.summary("openvpn udp", 7, start.Add(time.Hour))
	if s.Up != 4 || s.Failed != 3 || s.Attempted != 7 || s.Seconds != 2 || s.PerSecond != 2 {
		t.Errorf("summary %+v", s)
	}
	if s.P50 != 20 || s.P90 != 40 || s.P99 != 40 || s.Max != 40 {
		t.Errorf("latency p50 %v p90 %v p99 %v max %v, want 20 40 40 40", s.P50, s.P90, s.P99, s.Max)
	}
	if s.Failures["timeout"] != 2 || s.Failures["openvpn: authentication failed"] != 1 {
		t.Errorf("failures %v", s.Failures)
	}
	out := s.String()
	if !strings.Contains(out, "4 of 7 up, 3 failed") || !strings.Contains(out, "2.0 handshakes/s") ||
		strings.Index(out, "timeout") > strings.Index(out, "authentication") {
		t.Errorf("report (causes most frequent first):\n%s", out)
	}
}

func TestCause(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("x: %w: bad cert", openvpn.ErrAuthFailed), "openvpn: authentication failed"},
		{fmt.Errorf("ipsec: %w", ipsec.ErrAuthentication), "ipsec: authentication failed"},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("recvfrom", syscall.ECONNREFUSED)}, "connection refused"},
		{errors.New("tls: bad record from 10.0.0.1:1194 after 23 ms"), "tls: bad record from #.#.#.#:# after # ms"},
	} {
		if got := cause(c.err); got != c.want {
			t.Errorf("cause(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	if got := cause(errors.New(strings.Repeat("x", 500))); len(got) > 130 {
		t.Errorf("a long error is not shortened: %d bytes", len(got))
	}
}

func TestFlagValidation(t *testing.T) {
	ok := []string{"-config", "c.ovpn", "-n", "10"}
	if _, err := parseFlags(ok, &bytes.Buffer{}); err != nil {
		t.Fatalf("%v: %v", ok, err)
	}
	o, err := parseFlags([]string{"-config", "c.ovpn", "-n", "2000", "-force", "-hold", "1s", "-pps", "5", "-target", "10.8.0.1:9"}, &bytes.Buffer{})
	if err != nil || o.n != 2000 || o.pps != 5 || o.target != netip.MustParseAddrPort("10.8.0.1:9") {
		t.Fatalf("forced run: %+v, %v", o, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to do"},
		{[]string{"-config", "c.ovpn", "-n", "1001"}, "exceed -max 1000"},
		{[]string{"-config", "c.ovpn", "-n", "600", "-ipsec", "600", "-ipsec-server", "h:4500", "-ca-cert", "a", "-ca-key", "b"}, "exceed -max"},
		{[]string{"-n", "1"}, "need -config"},
		{[]string{"-config", "c", "-n", "1", "-k", "0"}, "-k"},
		{[]string{"-config", "c", "-n", "1", "-proto", "sctp"}, "-proto"},
		{[]string{"-ipsec", "1", "-ca-cert", "a", "-ca-key", "b"}, "-ipsec-server"},
		{[]string{"-ipsec", "1", "-ipsec-server", "h:4500"}, "verify the responder"},
		{[]string{"-ipsec", "1", "-ipsec-server", "h:4500", "-ipsec-ca", "a"}, "client certificate"},
		{[]string{"-config", "c", "-n", "1", "-ca-cert", "a"}, "go together"},
		{[]string{"-config", "c", "-n", "1", "-cert", "a"}, "go together"},
		{[]string{"-config", "c", "-n", "1", "-cert", "a", "-key", "b", "-ca-cert", "c", "-ca-key", "d"}, "exclude"},
		{[]string{"-config", "c", "-n", "1", "-pps", "5", "-hold", "1s"}, "-target"},
		{[]string{"-config", "c", "-n", "1", "-pps", "5000", "-hold", "1s", "-target", "10.0.0.1:9"}, "-pps must be"},
		{[]string{"-config", "c", "-n", "1", "-pps", "5", "-target", "10.0.0.1:9"}, "give -hold"},
		{[]string{"-config", "c", "-n", "1", "-pps", "5", "-hold", "1s", "-target", "[::1]:9"}, "IPv4"},
		{[]string{"-config", "c", "-n", "1", "-target", "nonsense"}, "-target"},
		{[]string{"-config", "c", "-n", "1", "-timeout", "0s"}, "-timeout"},
		{[]string{"-config", "c", "-n", "1", "extra"}, "unexpected"},
	} {
		_, err := parseFlags(c.args, &bytes.Buffer{})
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a usage error about %q", c.args, err, c.want)
		}
	}
}

// caFiles writes a throw-away CA's certificate and key as the operator
// would pass them.
func caFiles(t *testing.T, ca *testpki.CA) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	kd, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := os.WriteFile(certFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestIssuer(t *testing.T) {
	ca := testpki.New(t, "loadgen test CA")
	cf, kf := caFiles(t, ca)
	// The test CA is valid around the real time, so the issuer's clock
	// is the real one, read once.
	now := time.Now()
	is, err := loadIssuer(cf, kf, "lg-", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	a, err := is.issue(7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := is.issue(8)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, c := range []tls.Certificate{a, b} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s does not verify as a client certificate: %v", c.Leaf.Subject.CommonName, err)
		}
	}
	if a.Leaf.Subject.CommonName != "lg-00007" || b.Leaf.Subject.CommonName != "lg-00008" {
		t.Errorf("names %q %q", a.Leaf.Subject.CommonName, b.Leaf.Subject.CommonName)
	}
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Error("two tunnels share a serial number")
	}
	if pa, ok := a.Leaf.PublicKey.(*ecdsa.PublicKey); !ok || pa.Equal(b.Leaf.PublicKey) {
		t.Errorf("two tunnels share a key, or it is not ECDSA: %T", a.Leaf.PublicKey)
	}
	if !a.Leaf.NotBefore.Before(now) || !a.Leaf.NotAfter.After(now.Add(time.Hour)) {
		t.Errorf("validity %v to %v around %v", a.Leaf.NotBefore, a.Leaf.NotAfter, now)
	}
	// A key that is not the CA's is refused before anything is issued.
	other := testpki.New(t, "another CA")
	_, otherKey := caFiles(t, other)
	if _, err := loadIssuer(cf, otherKey, "lg-", time.Now); err == nil {
		t.Error("a CA certificate with another CA's key was accepted")
	}
	// A leaf is not a CA.
	leaf := ca.Client(t, "leaf")
	lf := filepath.Join(t.TempDir(), "leaf.crt")
	if err := os.WriteFile(lf, leaf.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadIssuer(lf, kf, "lg-", time.Now); err == nil {
		t.Error("a leaf certificate was accepted as the CA")
	}
}

func TestUDPPacket(t *testing.T) {
	b := make([]byte, 64)
	n := udpPacket(b, netip.MustParseAddrPort("10.8.0.6:9"), netip.MustParseAddrPort("10.8.0.1:7"), 42)
	p := b[:n]
	if n != 32 || p[0] != 0x45 || p[9] != 17 || binary.BigEndian.Uint16(p[2:]) != 32 {
		t.Fatalf("header % x", p)
	}
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff {
		t.Errorf("IPv4 header checksum does not verify: %#x", sum)
	}
	if netip.AddrFrom4([4]byte(p[12:16])) != netip.MustParseAddr("10.8.0.6") || binary.BigEndian.Uint16(p[22:]) != 7 || binary.BigEndian.Uint32(p[28:]) != 42 {
		t.Errorf("packet % x", p)
	}
}

// echo is the in-process servers' Handler: it hands out addresses from
// 10.8.0.0/16 and sends every IPv4 packet back with the addresses
// swapped, so that loadgen's traffic comes back to it.
type echo struct {
	next   atomic.Uint32
	mu     sync.Mutex
	names  map[string]bool
	echoed atomic.Int64
	downs  atomic.Int64
}

func (h *echo) Admit(_ context.Context, id tunnel.Identity, _ netip.AddrPort) (tunnel.Assignment, error) {
	h.mu.Lock()
	if h.names == nil {
		h.names = map[string]bool{}
	}
	h.names[id.Name] = true
	h.mu.Unlock()
	n := h.next.Add(1) + 1
	a := netip.AddrFrom4([4]byte{10, 8, byte(n >> 8), byte(n)})
	return tunnel.Assignment{Addresses: []netip.Prefix{netip.PrefixFrom(a, 16)}}, nil
}

func (h *echo) Up(tunnel.Session)          {}
func (h *echo) Down(tunnel.Session, error) { h.downs.Add(1) }
func (h *echo) distinct() int              { h.mu.Lock(); defer h.mu.Unlock(); return len(h.names) }
func (h *echo) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	for i := range sizes {
		pkt := bufs[i][offset : offset+sizes[i]]
		if len(pkt) < 20 || pkt[0]>>4 != 4 {
			continue
		}
		var a [4]byte
		copy(a[:], pkt[12:16])
		copy(pkt[12:16], pkt[16:20])
		copy(pkt[16:20], a[:])
		h.echoed.Add(1)
		_, _ = from.Send([][]byte{bufs[i][:offset+sizes[i]]}, offset)
	}
}

// TestEndToEnd runs loadgen as a user would, against an in-process
// openvpn.Server (tls-crypt, UDP) and ipsec.Server on loopback: 20
// tunnels and 5 SAs, each with its own certificate, held with traffic
// that the servers echo, and checks the report and what the servers saw.
func TestEndToEnd(t *testing.T) {
	ca := testpki.New(t, "loadgen CA")
	cf, kf := caFiles(t, ca)
	srvLeaf := ca.Server(t, "server", "vpn.test")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	key, err := openvpn.GenerateStaticKey()
	if err != nil {
		t.Fatal(err)
	}
	osrv, err := openvpn.NewServer(&openvpn.ServerConfig{
		TLS:        &tls.Config{Certificates: []tls.Certificate{srvLeaf.TLS}, ClientCAs: roots},
		Protection: openvpn.Protection{Mode: openvpn.ProtectionTLSCrypt, Key: key},
	})
	if err != nil {
		t.Fatal(err)
	}
	ouc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	oh := &echo{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = osrv.ServeUDP(ctx, ouc, oh) }()

	isrv, err := ipsec.NewServer(&ipsec.Config{
		Certificate:            []*x509.Certificate{srvLeaf.Cert},
		PrivateKey:             srvLeaf.Key,
		CertificateAuthorities: []*x509.Certificate{ca.Cert},
		VerifyPeer: func(_ ipsec.ID, chain []*x509.Certificate) (tunnel.Identity, error) {
			if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return tunnel.Identity{}, err
			}
			return tunnel.Identity{Name: chain[0].Subject.CommonName}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	iuc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ih := &echo{}
	go func() { defer wg.Done(); _ = isrv.Serve(ctx, ih, iuc) }()
	defer wg.Wait()
	defer cancel()

	dir := t.TempDir()
	profile := fmt.Sprintf("client\ndev tun\nproto udp\nremote 127.0.0.1 %d\nremote-cert-tls server\ndata-ciphers AES-256-GCM\n<ca>\n%s</ca>\n<tls-crypt>\n%s</tls-crypt>\n",
		ouc.LocalAddr().(*net.UDPAddr).Port, ca.CertPEM, key.Marshal())
	pf := filepath.Join(dir, "client.ovpn")
	if err := os.WriteFile(pf, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	var stdout, stderr bytes.Buffer
	args := []string{"-config", pf, "-n", "20", "-ipsec", "5", "-ipsec-server", iuc.LocalAddr().String(), "-ipsec-id", "vpn.test",
		"-ca-cert", cf, "-ca-key", kf, "-k", "8", "-timeout", "10s", "-progress", "100ms",
		"-hold", "1s", "-pps", "10", "-target", "10.8.0.1:7", "-json", report}
	code := mainErr(args, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if code != 0 {
		t.Fatalf("exit status %d", code)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Phases) != 2 {
		t.Fatalf("phases %+v", r.Phases)
	}
	o, i := r.Phases[0], r.Phases[1]
	if o.Kind != "openvpn udp" || o.Up != 20 || o.Failed != 0 || i.Kind != "ipsec" || i.Up != 5 || i.Failed != 0 {
		t.Errorf("phases: %+v / %+v", o, i)
	}
	if o.P50 <= 0 || o.P50 > o.P99 || o.P99 > o.Max || o.PerSecond <= 0 {
		t.Errorf("openvpn latency/rate: %+v", o)
	}
	if r.Memory.Tunnels != 25 || r.Memory.RSSBytes <= 0 {
		t.Errorf("memory %+v", r.Memory)
	}
	if r.Hold == nil || r.Hold.Tunnels != 25 || r.Hold.StillUp != 25 || len(r.Hold.Dropped) != 0 {
		t.Fatalf("hold %+v", r.Hold)
	}
	// Each tunnel sent inside itself and the servers echoed it back.
	if r.Hold.PacketsSent < 25 || r.Hold.PacketsReceived == 0 || int64(r.Hold.PacketsReceived) > oh.echoed.Load()+ih.echoed.Load() {
		t.Errorf("traffic: sent %d, received %d, servers echoed %d + %d", r.Hold.PacketsSent, r.Hold.PacketsReceived, oh.echoed.Load(), ih.echoed.Load())
	}
	// Every tunnel had its own certificate.
	if oh.distinct() != 20 || ih.distinct() != 5 {
		t.Errorf("distinct client names: openvpn %d, ipsec %d", oh.distinct(), ih.distinct())
	}
	if !strings.Contains(stderr.String(), "openvpn udp: ") || !strings.Contains(stdout.String(), "handshakes done") ||
		!strings.Contains(stdout.String(), "hold end: 25 of 25 still up") {
		t.Error("progress or report lines missing")
	}
	// At the end every tunnel said goodbye: the servers saw them go.
	waitFor(t, 10*time.Second, "the servers to see every tunnel end", func() bool { return oh.downs.Load() == 20 && ih.downs.Load() == 5 })
}

// TestFailuresByCause: handshakes to a port where no server listens fail,
// are counted by cause, and the exit status says so.
func TestFailuresByCause(t *testing.T) {
	ca := testpki.New(t, "loadgen CA")
	cf, kf := caFiles(t, ca)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close() // nothing listens there now: the kernel answers port unreachable
	dir := t.TempDir()
	pf := filepath.Join(dir, "client.ovpn")
	if err := os.WriteFile(pf, fmt.Appendf(nil, "client\ndev tun\nremote 127.0.0.1 %d udp\n<ca>\n%s</ca>\n", port, ca.CertPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := mainErr([]string{"-config", pf, "-n", "3", "-ca-cert", cf, "-ca-key", kf, "-timeout", "3s", "-json", "-"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit status %d, want 1; stdout:\n%s", code, stdout.String())
	}
	out := stdout.String()
	var r Report
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(r.Phases) != 1 || r.Phases[0].Up != 0 || r.Phases[0].Failed != 3 {
		t.Fatalf("phases %+v", r.Phases)
	}
	t.Logf("failures: %v", r.Phases[0].Failures)
	if len(r.Phases[0].Failures) != 1 {
		t.Errorf("3 alike failures in %d causes: %v", len(r.Phases[0].Failures), r.Phases[0].Failures)
	}
}

// TestBounded: above -max nothing is sent and the status is 2.
func TestBounded(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pf := filepath.Join(t.TempDir(), "client.ovpn")
	if err := os.WriteFile(pf, fmt.Appendf(nil, "client\nremote 127.0.0.1 %d udp\n", pc.LocalAddr().(*net.UDPAddr).Port), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := mainErr([]string{"-config", pf, "-n", "5", "-max", "4"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "exceed -max 4") {
		t.Fatalf("status %d, stderr %s", code, stderr.String())
	}
	_ = pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := pc.ReadFrom(make([]byte, 2048)); err == nil {
		t.Errorf("a refused run sent %d bytes", n)
	}
}

// lockedBuffer is a bytes.Buffer that a test reads while loadgen writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTCPInterrupt: tunnels over TCP (-proto and -remote overriding the
// profile) come up; SIGINT while holding ends the run at once, every
// tunnel says goodbye to the server, and the status says the run was
// cut short.
func TestTCPInterrupt(t *testing.T) {
	ca := testpki.New(t, "loadgen CA")
	cf, kf := caFiles(t, ca)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	srv, err := openvpn.NewServer(&openvpn.ServerConfig{
		TLS: &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "server").TLS}, ClientCAs: roots},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &echo{}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.ServeTCP(ctx, ln, h) }()
	defer func() { cancel(); <-served }()

	pf := filepath.Join(t.TempDir(), "client.ovpn")
	// The profile names a UDP server elsewhere; the flags redirect it.
	if err := os.WriteFile(pf, fmt.Appendf(nil, "client\ndev tun\nremote 192.0.2.1 1194 udp\n<ca>\n%s</ca>\n", ca.CertPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	status := make(chan int, 1)
	go func() {
		status <- mainErr([]string{"-config", pf, "-proto", "tcp", "-remote", ln.Addr().String(), "-n", "5",
			"-ca-cert", cf, "-ca-key", kf, "-hold", "10m"}, &stdout, &stderr)
	}()
	waitFor(t, 20*time.Second, "the tunnels to be held", func() bool { return strings.Contains(stdout.String(), "holding 5 tunnels") })
	if !strings.Contains(stdout.String(), "openvpn tcp: 5 of 5 up, 0 failed") {
		t.Errorf("report:\n%s", stdout.String())
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-status:
		if code != 1 || !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("status %d after SIGINT; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("SIGINT did not end the run")
	}
	if !strings.Contains(stdout.String(), "hold end: 5 of 5 still up") {
		t.Errorf("report:\n%s", stdout.String())
	}
	waitFor(t, 10*time.Second, "the server to see 5 sessions end", func() bool { return h.downs.Load() == 5 })
}
