package openvpn

import (
	"bytes"
	"context"
	"crypto"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/tunnel"
)

// echoHandler admits every client with an address from 10.8.0.0/24 and sends
// every packet back to the session it came from, with source and destination
// swapped, like a host answering.
type echoHandler struct {
	mu       sync.Mutex
	next     byte
	admitErr error
	up, down atomic.Int32
	got      atomic.Int64
	ids      []tunnel.Identity
}

func (h *echoHandler) Admit(_ context.Context, id tunnel.Identity, _ netip.AddrPort) (tunnel.Assignment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.admitErr != nil {
		return tunnel.Assignment{}, h.admitErr
	}
	h.next++
	h.ids = append(h.ids, id)
	return tunnel.Assignment{
		Addresses: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.8.0.%d/24", h.next+1))},
		Routes:    []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24")},
	}, nil
}
func (h *echoHandler) identity(i int) tunnel.Identity {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ids[i]
}

func (h *echoHandler) Up(tunnel.Session)          { h.up.Add(1) }
func (h *echoHandler) Down(tunnel.Session, error) { h.down.Add(1) }
func (h *echoHandler) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	for i, b := range bufs {
		h.got.Add(1)
		pkt := b[offset : offset+sizes[i]]
		if len(pkt) >= 20 {
			var a [4]byte
			copy(a[:], pkt[12:16])
			copy(pkt[12:16], pkt[16:20])
			copy(pkt[16:20], a[:])
		}
		if _, err := from.Send([][]byte{b[:offset+sizes[i]]}, offset); err != nil {
			panic(err)
		}
	}
}

type testEnv struct {
	ca                *testpki.CA
	server, client    *testpki.Leaf
	tlsKey            *StaticKey
	v2Server          *TLSCryptV2ServerKey
	v2Client          *TLSCryptV2ClientKey
	serverTLS, cliTLS *tls.Config
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{ca: testpki.New(t, "test CA")}
	e.server = e.ca.Server(t, "server")
	e.client = e.ca.Client(t, "client1")
	var err error
	if e.tlsKey, err = GenerateStaticKey(); err != nil {
		t.Fatal(err)
	}
	if e.v2Server, err = GenerateTLSCryptV2ServerKey(); err != nil {
		t.Fatal(err)
	}
	if e.v2Client, err = GenerateTLSCryptV2ClientKey(e.v2Server, nil); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Cert)
	e.serverTLS = &tls.Config{Certificates: []tls.Certificate{e.server.TLS}, ClientCAs: pool}
	e.cliTLS = &tls.Config{Certificates: []tls.Certificate{e.client.TLS}, RootCAs: pool}
	return e
}

func (e *testEnv) protections(mode ProtectionMode) (srv, cli Protection) {
	switch mode {
	case ProtectionTLSAuth:
		return Protection{Mode: mode, Key: e.tlsKey, KeyDirection: 0}, Protection{Mode: mode, Key: e.tlsKey, KeyDirection: 1}
	case ProtectionTLSCrypt:
		return Protection{Mode: mode, Key: e.tlsKey}, Protection{Mode: mode, Key: e.tlsKey}
	case ProtectionTLSCryptV2:
		return Protection{Mode: mode, ServerKey: e.v2Server}, Protection{Mode: mode, ClientKey: e.v2Client}
	}
	return Protection{}, Protection{}
}

// startServer serves on 127.0.0.1 and returns the address to dial.
func startServer(t *testing.T, network string, cfg *ServerConfig, h tunnel.Handler) (*Server, string) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var addr string
	if network == "udp" {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addr = conn.LocalAddr().String()
		go func() { done <- srv.ServeUDP(ctx, conn, h) }()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		go func() { done <- srv.ServeTCP(ctx, ln, h) }()
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return srv, addr
}

// testPacket builds an IPv4-looking packet in a buffer with headroom.
func testPacket(src, dst netip.Addr, payload []byte) []byte {
	buf := make([]byte, tunnel.Headroom+20+len(payload), tunnel.Headroom+20+len(payload)+tunnel.Tailroom)
	p := buf[tunnel.Headroom:]
	p[0] = 0x45
	p[2], p[3] = byte((20+len(payload))>>8), byte(20+len(payload))
	p[9] = 17
	s4, d4 := src.As4(), dst.As4()
	copy(p[12:16], s4[:])
	copy(p[16:20], d4[:])
	copy(p[20:], payload)
	return buf
}

// roundTrip sends count packets through the client and waits for their echoes.
func roundTrip(t *testing.T, c *Client, count int) {
	t.Helper()
	src := c.Pushed().Address.Addr()
	dst := netip.MustParseAddr("192.168.50.7")
	bufs := make([][]byte, 1)
	sizes := make([]int, 1)
	rbuf := make([]byte, tunnel.BufferSize)
	for i := 0; i < count; i++ {
		payload := []byte(fmt.Sprintf("packet %d of the test", i))
		if _, err := c.Write([][]byte{testPacket(src, dst, payload)}, tunnel.Headroom); err != nil {
			t.Fatalf("Write: %v", err)
		}
		bufs[0] = rbuf
		readDone := make(chan error, 1)
		go func() {
			_, err := c.Read(bufs, sizes, tunnel.Headroom)
			readDone <- err
		}()
		select {
		case err := <-readDone:
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("packet %d: no echo within 5 s", i)
		}
		got := rbuf[tunnel.Headroom : tunnel.Headroom+sizes[0]]
		if !bytes.Equal(got[20:], payload) || netip.AddrFrom4([4]byte(got[16:20])) != src {
			t.Fatalf("packet %d: echo %x, want payload %q to %v", i, got, payload, src)
		}
	}
}

func TestClientServer(t *testing.T) {
	e := newTestEnv(t)
	modes := []struct {
		name string
		mode ProtectionMode
	}{{"none", ProtectionNone}, {"tls-auth", ProtectionTLSAuth}, {"tls-crypt", ProtectionTLSCrypt}, {"tls-crypt-v2", ProtectionTLSCryptV2}}
	for _, network := range []string{"udp", "tcp"} {
		for _, m := range modes {
			for _, cipher := range DefaultDataCiphers {
				t.Run(network+"/"+m.name+"/"+cipher, func(t *testing.T) {
					sp, cp := e.protections(m.mode)
					h := &echoHandler{}
					_, addr := startServer(t, network, &ServerConfig{TLS: e.serverTLS, Protection: sp, DataCiphers: []string{cipher}}, h)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					c, err := Dial(ctx, network, addr, &ClientConfig{TLS: e.cliTLS, Protection: cp})
					if err != nil {
						t.Fatalf("Dial: %v", err)
					}
					defer c.Close()
					p := c.Pushed()
					if p.Cipher != cipher || p.Address != netip.MustParsePrefix("10.8.0.2/24") || p.Gateway != netip.MustParseAddr("10.8.0.1") {
						t.Fatalf("pushed %+v", p)
					}
					if len(p.Routes) != 1 || p.Routes[0] != netip.MustParsePrefix("192.168.50.0/24") {
						t.Fatalf("pushed routes %v", p.Routes)
					}
					roundTrip(t, c, 20)
					if h.identity(0).Name != "client1" {
						t.Errorf("identity %+v, want client1", h.identity(0))
					}
				})
			}
		}
	}
}

func TestRenegotiation(t *testing.T) {
	e := newTestEnv(t)
	for _, side := range []string{"server", "client"} {
		t.Run(side, func(t *testing.T) {
			sp, cp := e.protections(ProtectionTLSCrypt)
			scfg := &ServerConfig{TLS: e.serverTLS, Protection: sp}
			ccfg := &ClientConfig{TLS: e.cliTLS, Protection: cp}
			if side == "server" {
				scfg.Timers.RenegotiateAfter = time.Second
			} else {
				ccfg.Timers.RenegotiateAfter = time.Second
			}
			h := &echoHandler{}
			_, addr := startServer(t, "udp", scfg, h)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, "udp", addr, ccfg)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			deadline := time.Now().Add(3500 * time.Millisecond)
			for time.Now().Before(deadline) {
				roundTrip(t, c, 5)
				time.Sleep(50 * time.Millisecond)
			}
			dk := c.s.data.Load()
			if dk.send.KeyID() < 2 {
				t.Fatalf("client sends with key id %d after 3.5 s with 1 s renegotiation, want >= 2", dk.send.KeyID())
			}
		})
	}
}

func TestAuthFailed(t *testing.T) {
	e := newTestEnv(t)
	t.Run("admit refused", func(t *testing.T) {
		h := &echoHandler{admitErr: errors.New("no license for this participant")}
		_, addr := startServer(t, "udp", &ServerConfig{TLS: e.serverTLS}, h)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS})
		if !errors.Is(err, ErrAuthFailed) || !strings.Contains(err.Error(), "no license") {
			t.Fatalf("Dial error %v, want AUTH_FAILED with the reason", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		h := &echoHandler{}
		cfg := &ServerConfig{TLS: e.serverTLS, VerifyUserPass: func(_ context.Context, u, p string) error {
			if u == "alice" && p == "secret" {
				return nil
			}
			return errors.New("bad credentials")
		}}
		_, addr := startServer(t, "tcp", cfg, h)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Dial(ctx, "tcp", addr, &ClientConfig{TLS: e.cliTLS, Username: "alice", Password: "wrong"})
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("Dial error %v, want ErrAuthFailed", err)
		}
		c, err := Dial(ctx, "tcp", addr, &ClientConfig{TLS: e.cliTLS, Username: "alice", Password: "secret"})
		if err != nil {
			t.Fatalf("Dial with the right password: %v", err)
		}
		defer c.Close()
		roundTrip(t, c, 3)
		if h.identity(0).Username != "alice" {
			t.Fatalf("identity %+v", h.identity(0))
		}
	})
	t.Run("certificate refused", func(t *testing.T) {
		h := &echoHandler{}
		stls := e.serverTLS.Clone()
		stls.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 && cs.PeerCertificates[0].Subject.CommonName == "client1" {
				return errors.New("certificate revoked")
			}
			return nil
		}
		failures := make(chan string, 1)
		onFailure := func(remote netip.AddrPort, name string, err error) {
			failures <- fmt.Sprintf("%s %v %v", name, remote.Addr().IsLoopback(), strings.Contains(err.Error(), "certificate revoked"))
		}
		srv, addr := startServer(t, "udp", &ServerConfig{TLS: stls, OnHandshakeFailure: onFailure}, h)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS})
		if err == nil {
			t.Fatal("Dial succeeded with a refused certificate")
		}
		if h.up.Load() != 0 {
			t.Fatal("a session came up")
		}
		waitFor(t, func() bool { return srv.Stats().Sessions == 0 })
		select {
		case got := <-failures:
			if got != "client1 true true" {
				t.Fatalf("OnHandshakeFailure got %q; want the name, the remote and the verifier's error", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OnHandshakeFailure was not called")
		}
	})
}

func TestWrongTLSCryptKeyGetsNoAnswer(t *testing.T) {
	e := newTestEnv(t)
	sp, _ := e.protections(ProtectionTLSCrypt)
	h := &echoHandler{}
	srv, addr := startServer(t, "udp", &ServerConfig{TLS: e.serverTLS, Protection: sp}, h)
	other, err := GenerateStaticKey()
	if err != nil {
		t.Fatal(err)
	}
	// Watch the wire: the server must not send a single byte.
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS, Protection: Protection{Mode: ProtectionTLSCrypt, Key: other}})
	if err == nil {
		t.Fatal("Dial succeeded with a wrong tls-crypt key")
	}
	st := srv.Stats()
	if st.Sessions != 0 || st.StatelessResets != 0 || st.DroppedBadPacket == 0 {
		t.Fatalf("stats %+v: want no session, no reset answered, bad packets counted", st)
	}
}

func (e *testEnv) rand() io.Reader { return crand.Reader }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRenegotiateBytes(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	scfg := &ServerConfig{TLS: e.serverTLS, Protection: sp}
	scfg.Timers.RenegotiateBytes = 20000
	_, addr := startServer(t, "udp", scfg, &echoHandler{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS, Protection: cp})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 40 && c.s.data.Load().send.KeyID() == 0; i++ {
		roundTrip(t, c, 10) // ~10 KB of traffic through the server each time
		time.Sleep(100 * time.Millisecond)
	}
	if id := c.s.data.Load().send.KeyID(); id == 0 {
		t.Fatalf("no renegotiation after far more than 20000 bytes")
	}
}

// TestExitNotification: a closing client tells the server (EXIT), and a
// server shutting down tells its clients (RESTART), so neither waits for the
// ping timeout.
func TestExitNotification(t *testing.T) {
	e := newTestEnv(t)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			h := &echoHandler{}
			srv, addr := startServer(t, network, &ServerConfig{TLS: e.serverTLS}, h)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, network, addr, &ClientConfig{TLS: e.cliTLS})
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, c, 1)
			c.Close()
			waitFor(t, func() bool { return h.down.Load() == 1 && srv.Stats().Sessions == 0 })
		})
	}
	t.Run("server shutdown", func(t *testing.T) {
		h := &echoHandler{}
		srv, err := NewServer(&ServerConfig{TLS: e.serverTLS})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.ServeUDP(sctx, conn, h) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, "udp", conn.LocalAddr().String(), &ClientConfig{TLS: e.cliTLS})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stop()
		<-done
		select {
		case <-c.Done():
			if !errors.Is(c.Err(), ErrPeerExit) {
				t.Fatalf("client ended with %v, want ErrPeerExit (RESTART)", c.Err())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("client still up 5 s after the server shut down")
		}
	})
}

func TestLegacyCBCOnlyWhenEnabled(t *testing.T) {
	e := newTestEnv(t)
	if _, err := NewServer(&ServerConfig{TLS: e.serverTLS, DataCiphers: []string{"AES-256-CBC"}}); !errors.Is(err, ErrConfig) {
		t.Fatalf("CBC without AllowLegacy: %v, want ErrConfig", err)
	}
	_, addr := startServer(t, "udp", &ServerConfig{TLS: e.serverTLS, AllowLegacy: true, Auth: crypto.SHA256, DataCiphers: []string{"AES-256-CBC"}}, &echoHandler{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS, Auth: crypto.SHA256, DataCiphers: []string{"AES-256-CBC"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Pushed().Cipher != "AES-256-CBC" {
		t.Fatalf("cipher %q", c.Pushed().Cipher)
	}
	roundTrip(t, c, 5)
	// A modern client does not get CBC pushed.
	c2, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS})
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("AEAD-only client against a CBC-only server: %v, want AUTH_FAILED (no shared cipher)", err)
	}
	_ = c2
}

func TestIPv6Outer(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	for _, network := range []string{"udp6", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			srv, err := NewServer(&ServerConfig{TLS: e.serverTLS, Protection: sp})
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			var addr string
			if network == "udp6" {
				conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
				if err != nil {
					t.Skipf("SKIPPING: no IPv6 loopback: %v", err)
				}
				addr = conn.LocalAddr().String()
				go srv.ServeUDP(ctx, conn, &echoHandler{})
			} else {
				ln, err := net.Listen("tcp6", "[::1]:0")
				if err != nil {
					t.Skipf("SKIPPING: no IPv6 loopback: %v", err)
				}
				addr = ln.Addr().String()
				go srv.ServeTCP(ctx, ln, &echoHandler{})
			}
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			c, err := Dial(dctx, network, addr, &ClientConfig{TLS: e.cliTLS, Protection: cp})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c, 5)
		})
	}
}

// TestGarbageDoesNotDisturb sends random datagrams, truncated packets and
// forged data packets for the live session's peer id at the server while a
// tunnel is up; the tunnel keeps working and no state is created.
func TestGarbageDoesNotDisturb(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	srv, addr := startServer(t, "udp", &ServerConfig{TLS: e.serverTLS, Protection: sp}, &echoHandler{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS, Protection: cp})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	buf := make([]byte, 1500)
	for i := 0; i < 3000; i++ {
		n := 1 + i%200
		_, _ = crand.Read(buf[:n])
		switch i % 4 {
		case 0: // forged P_DATA_V2 for peer id 0
			buf[0], buf[1], buf[2], buf[3] = 0x48, 0, 0, 0
		case 1: // control opcodes with junk
			buf[0] = byte(4+i%8) << 3
		}
		_, _ = g.Write(buf[:n])
		if i%100 == 99 {
			// Pace the garbage so that the socket buffers, not the
			// server, are not what is being tested.
			time.Sleep(5 * time.Millisecond)
		}
		if i%1000 == 999 {
			time.Sleep(50 * time.Millisecond)
			roundTrip(t, c, 2)
		}
	}
	roundTrip(t, c, 10)
	if st := srv.Stats(); st.Sessions != 1 {
		t.Fatalf("%d sessions after garbage, want 1", st.Sessions)
	}
}

func TestCompressionFraming(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		name           string
		server, client Compression
		push           []string
		works          bool
	}{
		{"stub", CompressionStub, CompressionStub, nil, true},
		{"stub-v2", CompressionStubV2, CompressionStubV2, nil, true},
		{"comp-lzo", CompressionLZO, CompressionLZO, nil, true},
		{"pushed comp-lzo", CompressionLZO, CompressionNone, []string{"comp-lzo no"}, true},
		{"pushed compress", CompressionStub, CompressionNone, []string{"compress"}, true},
		// Framing on one side only: the server takes the client's first
		// byte for a framing byte and drops every packet.
		{"mismatch", CompressionLZO, CompressionNone, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &echoHandler{}
			_, addr := startServer(t, "udp", &ServerConfig{TLS: e.serverTLS, Compression: tc.server, Push: tc.push}, h)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, "udp", addr, &ClientConfig{TLS: e.cliTLS, Compression: tc.client})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			if tc.works {
				roundTrip(t, c, 10)
				return
			}
			src := c.Pushed().Address.Addr()
			if _, err := c.Write([][]byte{testPacket(src, netip.MustParseAddr("192.168.50.7"), []byte("lost"))}, tunnel.Headroom); err != nil {
				t.Fatal(err)
			}
			got := make(chan struct{})
			go func() {
				_, _ = c.Read([][]byte{make([]byte, tunnel.BufferSize)}, []int{0}, tunnel.Headroom)
				close(got)
			}()
			select {
			case <-got:
				t.Fatal("a packet crossed although only the server frames")
			case <-time.After(time.Second):
			}
		})
	}
}

func TestParseCompression(t *testing.T) {
	for in, want := range map[string]Compression{
		"compress": CompressionStub, "compress lz4": CompressionStub, "compress stub-v2": CompressionStubV2,
		"comp-lzo": CompressionLZO, "comp-lzo adaptive": CompressionLZO,
	} {
		if got, err := ParseCompression(in); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "compress zstd", "comp-lzo maybe", "lz4", "compress stub extra"} {
		if _, err := ParseCompression(in); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseCompression(%q): %v, want ErrConfig", in, err)
		}
	}
	if _, err := NewServer(&ServerConfig{TLS: newTestEnv(t).serverTLS, Compression: 9}); !errors.Is(err, ErrConfig) {
		t.Errorf("NewServer with Compression(9): %v, want ErrConfig", err)
	}
}

// The control channel's TLS 1.2 takes AEAD suites only: a client that
// offers nothing but CBC suites is refused in the handshake, one that
// offers AES-GCM gets through.
func TestControlChannelRefusesCBCSuites(t *testing.T) {
	e := newTestEnv(t)
	failures := make(chan error, 1)
	onFailure := func(_ netip.AddrPort, _ string, err error) {
		select {
		case failures <- err:
		default:
		}
	}
	_, addr := startServer(t, "tcp", &ServerConfig{TLS: e.serverTLS, OnHandshakeFailure: onFailure}, &echoHandler{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cbc := e.cliTLS.Clone()
	cbc.MaxVersion = tls.VersionTLS12
	cbc.CipherSuites = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	}
	if c, err := Dial(ctx, "tcp", addr, &ClientConfig{TLS: cbc}); err == nil {
		c.Close()
		t.Fatal("a TLS 1.2 client offering only CBC suites got a session")
	}
	select {
	case err := <-failures:
		if !strings.Contains(err.Error(), "cipher suite") {
			t.Fatalf("handshake failure %v; want no shared cipher suite", err)
		}
	case <-ctx.Done():
		t.Fatal("OnHandshakeFailure was not called")
	}
	gcm := e.cliTLS.Clone()
	gcm.MaxVersion = tls.VersionTLS12
	gcm.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	c, err := Dial(ctx, "tcp", addr, &ClientConfig{TLS: gcm})
	if err != nil {
		t.Fatalf("TLS 1.2 with AES-GCM: %v", err)
	}
	defer c.Close()
	roundTrip(t, c, 1)
}
