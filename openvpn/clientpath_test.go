package openvpn

import (
	"crypto/rand"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/remotegate/remotegate/openvpn/internal/datachannel"
	"github.com/remotegate/remotegate/openvpn/internal/wire"
	"github.com/remotegate/remotegate/tunnel"
)

// keyedClient returns a Client with a data key installed and its receive
// loop running on a connected UDP socket, the socket standing for the
// server, and the server's matching key: the client's data path without a
// handshake, so that it can be measured alone.
func keyedClient(tb testing.TB, c datachannel.Cipher) (*Client, *net.UDPConn, *datachannel.Key) {
	tb.Helper()
	kb := new(datachannel.KeyBlock)
	if _, err := rand.Read(kb[:]); err != nil {
		tb.Fatal(err)
	}
	sk, err := datachannel.NewKey(datachannel.KeyConfig{Cipher: c, Block: kb, Server: true})
	if err != nil {
		tb.Fatal(err)
	}
	ck, err := datachannel.NewKey(datachannel.KeyConfig{Cipher: c, Block: kb})
	if err != nil {
		tb.Fatal(err)
	}
	srvConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	cliConn, err := net.DialUDP("udp", nil, srvConn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		tb.Fatal(err)
	}
	if err := srvConn.SetReadBuffer(4 << 20); err != nil {
		tb.Fatal(err)
	}
	s := newSession(wire.RoleClient, nil, wire.SessionID{2}, &connLink{conn: cliConn, rw: rawOrConn(cliConn)},
		Timers{}.withDefaults(false), slog.New(slog.DiscardHandler), time.Now, rand.Reader)
	dk := &dataKeys{send: ck, retire: time.Now().Add(time.Hour)}
	dk.byID[0] = ck
	s.data.Store(dk)
	cl := &Client{
		s:       s,
		conn:    cliConn,
		ready:   make(chan struct{}),
		rx:      make(chan *rxBuf, clientQueue),
		readerD: make(chan struct{}),
	}
	s.onClose = cl.onClose
	go cl.readLoop()
	tb.Cleanup(func() {
		cl.shutdown()
		srvConn.Close()
	})
	return cl, srvConn, sk
}

// sealedFromServer is a data packet the server would send: a 1400-byte
// payload under key sk.
func sealedFromServer(tb testing.TB, sk *datachannel.Key) []byte {
	buf := make([]byte, tunnel.BufferSize)
	buf[tunnel.Headroom] = 0x45
	pkt, err := sk.Seal(buf, tunnel.Headroom, 1400, datachannel.NoPeerID)
	if err != nil {
		tb.Fatal(err)
	}
	return pkt
}

// TestClientDataPathAllocs: once warm, the client's receive path (socket,
// decrypt, queue, Read) and send path (seal, socket) allocate nothing per
// packet.
func TestClientDataPathAllocs(t *testing.T) {
	c, srv, sk := keyedClient(t, datachannel.AES256GCM)
	to := c.conn.LocalAddr().(*net.UDPAddr)
	bufs := [][]byte{make([]byte, tunnel.BufferSize)}
	sizes := make([]int, 1)
	pkts := make([][]byte, 300)
	for i := range pkts {
		pkts[i] = sealedFromServer(t, sk)
	}
	i := 0
	recv := func() {
		if _, err := srv.WriteToUDP(pkts[i], to); err != nil {
			t.Fatal(err)
		}
		i++
		if _, err := c.Read(bufs, sizes, tunnel.Headroom); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		recv()
	}
	if a := testing.AllocsPerRun(200, recv); a != 0 {
		t.Errorf("receive path allocates %v per packet", a)
	}
	out := make([]byte, tunnel.BufferSize)
	send := func() {
		if _, err := c.Write([][]byte{out[:tunnel.Headroom+1400]}, tunnel.Headroom); err != nil {
			t.Fatal(err)
		}
	}
	send()
	if a := testing.AllocsPerRun(200, send); a != 0 {
		t.Errorf("send path allocates %v per packet", a)
	}
}

// BenchmarkClientReceive measures the client's per-packet receive work:
// the socket read, decryption, the queue to Read and the copy out.
func BenchmarkClientReceive(b *testing.B) {
	c, srv, sk := keyedClient(b, datachannel.AES256GCM)
	to := c.conn.LocalAddr().(*net.UDPAddr)
	bufs := [][]byte{make([]byte, tunnel.BufferSize)}
	sizes := make([]int, 1)
	b.SetBytes(1400)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		pkt := sealedFromServer(b, sk)
		b.StartTimer()
		if _, err := srv.WriteToUDP(pkt, to); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(bufs, sizes, tunnel.Headroom); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientSend measures the client's per-packet send work: seal
// and socket write.
func BenchmarkClientSend(b *testing.B) {
	c, srv, _ := keyedClient(b, datachannel.AES256GCM)
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := srv.Read(buf); err != nil {
				return
			}
		}
	}()
	out := make([]byte, tunnel.BufferSize)
	bufs := [][]byte{out[:tunnel.Headroom+1400]}
	b.SetBytes(1400)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(bufs, tunnel.Headroom); err != nil {
			b.Fatal(err)
		}
	}
}
