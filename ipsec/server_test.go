package ipsec

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

// nopHandler admits nobody; the tests here never get that far.
type nopHandler struct{}

func (nopHandler) Admit(context.Context, tunnel.Identity, netip.AddrPort) (tunnel.Assignment, error) {
	return tunnel.Assignment{}, ErrAuthentication
}
func (nopHandler) Up(tunnel.Session)                            {}
func (nopHandler) Down(tunnel.Session, error)                   {}
func (nopHandler) Deliver(tunnel.Session, [][]byte, []int, int) {}

// serve runs a PSK-only server on a loopback port and returns its address.
func serve(t *testing.T, cfg Config) (*Server, netip.AddrPort) {
	t.Helper()
	if cfg.PSK == nil {
		cfg.PSK = func(ID) ([]byte, string, bool) { return nil, "", false }
	}
	cfg.LocalID = FQDN("responder.test")
	srv, err := NewServer(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, nopHandler{}, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, addr
}

// initRequest is an IKE_SA_INIT request with AES-GCM, ECP-256 and a fresh
// SPI, the non-ESP marker in front (the server's port is not 500).
func initRequest(t testing.TB, pub []byte, cookie []byte) []byte {
	var spi [8]byte
	_, _ = rand.Read(spi[:])
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	return initRequestWith(t, spi, nonce, pub, cookie)
}

func initRequestWith(t testing.TB, spi [8]byte, nonce, pub, cookie []byte) []byte {
	var ps []message.Payload
	if cookie != nil {
		ps = append(ps, &message.Notify{NotifyType: message.NotifyCookie, Data: cookie})
	}
	ps = append(ps,
		&message.SA{Proposals: []message.Proposal{{Number: 1, Protocol: message.ProtoIKE, Transforms: []message.Transform{
			{Type: message.TransformEncr, ID: EncrAESGCM16, KeyLength: 256}, {Type: message.TransformPRF, ID: PRFHMACSHA256}, {Type: message.TransformDH, ID: DHECP256},
		}}}},
		&message.KE{Group: DHECP256, Data: pub},
		&message.Nonce{Data: nonce},
	)
	msg, err := message.Marshal(message.Header{SPIi: spi, Exchange: message.IKESAInit, Flags: message.FlagInitiator}, ps)
	if err != nil {
		t.Fatal(err)
	}
	return append(make([]byte, 4), msg...)
}

// Acceptance 6: 10,000 IKE_SA_INIT requests from addresses that never
// answer (as spoofed ones would) leave at most CookieThreshold half-open
// SAs; the rest are answered with a cookie and cost no state.
func TestSpoofedInitFloodGetsCookies(t *testing.T) {
	const threshold = 16
	srv, addr := serve(t, Config{CookieThreshold: threshold, MaxHalfOpen: 64})
	dh, err := ikecrypto.NewDH(DHECP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := dh.Public()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const flood = 10000
	cookies := 0
	replies := make(chan []byte, 256)
	go func() {
		buf := make([]byte, 2048)
		for {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				close(replies)
				return
			}
			replies <- append([]byte(nil), buf[:n]...)
		}
	}()
	for i := 0; i < flood; i++ {
		req := initRequest(t, pub, nil)
		if _, err := c.WriteToUDPAddrPort(req, addr); err != nil {
			t.Fatal(err)
		}
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // bounded by the socket buffers, not by us
		}
	}
	for r := range replies {
		h, ps, err := message.Parse(r[4:])
		if err != nil || h.Exchange != message.IKESAInit {
			t.Fatalf("reply does not parse: %v", err)
		}
		if n, ok := message.Find[*message.Notify](ps); ok && n.NotifyType == message.NotifyCookie {
			cookies++
		}
	}
	st := srv.Stats()
	t.Logf("%d requests: %d half-open, %d cookies received, stats %+v", flood, st.HalfOpen, cookies, st)
	if st.HalfOpen > threshold {
		t.Fatalf("%d half-open IKE SAs, bound %d", st.HalfOpen, threshold)
	}
	if st.CookiesSent < flood/2 || cookies == 0 {
		t.Fatalf("only %d cookies sent (%d received) for %d requests", st.CookiesSent, cookies, flood)
	}

	// A real initiator returns the cookie and gets its IKE SA.
	var spi [8]byte
	_, _ = rand.Read(spi[:])
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	exchange := func(req []byte) []message.Payload {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort(req, addr); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		_, ps, err := message.Parse(buf[4:n])
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	ps := exchange(initRequestWith(t, spi, nonce, pub, nil))
	n, ok := message.Find[*message.Notify](ps)
	if !ok || n.NotifyType != message.NotifyCookie {
		t.Fatalf("above the threshold, no cookie but %v", ps)
	}
	ps = exchange(initRequestWith(t, spi, nonce, pub, n.Data))
	if _, ok := message.Find[*message.SA](ps); !ok {
		t.Fatalf("the request with its cookie was not answered with an SA: %v", ps)
	}
	// A wrong cookie is not accepted.
	ps = exchange(initRequestWith(t, [8]byte{1}, nonce, pub, n.Data))
	if _, ok := message.Find[*message.SA](ps); ok {
		t.Fatal("another SPI's cookie was accepted")
	}
}

// Garbage of every shape on the server's port is counted and dropped: no
// panic, no state.
func FuzzServerDatagram(f *testing.F) {
	dh, err := ikecrypto.NewDH(DHECP256, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(initRequest(f, dh.Public(), nil))
	f.Add([]byte{0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Add(append([]byte{0, 0, 1, 0, 0, 0, 0, 1}, make([]byte, 40)...))
	srv, err := NewServer(&Config{LocalID: FQDN("r.test"), PSK: func(ID) ([]byte, string, bool) { return nil, "", false }})
	if err != nil {
		f.Fatal(err)
	}
	srv.h = nopHandler{}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	pc := &packetConn{uc: newUDPBatch(c)}
	pc.local = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 4500)
	from := netip.MustParseAddrPort("127.0.0.1:9") // discard
	buf := make([]byte, tunnel.BufferSize)
	d := deliverer{h: srv.h}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > tunnel.BufferSize-tunnel.Headroom {
			return
		}
		in := buf[tunnel.Headroom-16 : tunnel.Headroom-16+len(pkt)]
		copy(in, pkt)
		srv.handleDatagram(context.Background(), pc, in, from, buf, &d)
		// Half-open SAs from valid requests are bounded like any others.
		if st := srv.Stats(); st.HalfOpen > srv.cfg.MaxHalfOpen {
			t.Fatalf("%d half-open", st.HalfOpen)
		}
	})
}
