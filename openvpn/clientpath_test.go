package openvpn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"io"
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

// chunkReader returns its chunks one per Read, as a socket returns what
// has arrived.
type chunkReader struct{ chunks [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// TestBurstReader: frames come out whole and in order whatever the reads
// deliver, the large buffer is taken when the stream delivers more than
// the small one holds and given back when it trickles.
func TestBurstReader(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i, size := range []int{40, 1400, 1400, 1400, 1400, 1400, 1400, 1400, 60, 65535, 30} {
		p := bytes.Repeat([]byte{byte(i)}, size)
		want = append(want, p)
		stream = binary.BigEndian.AppendUint16(stream, uint16(size))
		stream = append(stream, p...)
	}
	// A trickle (the first frame), a burst (the next ones, far more than
	// 2 KiB at once), and a trickle again (the last one alone).
	first, last := 2+40, 2+30
	cr := &chunkReader{chunks: [][]byte{stream[:first], stream[first : len(stream)-last], stream[len(stream)-last:]}}
	br := newBurstReader(cr)
	buf := make([]byte, 65535)
	sawBig := false
	for i, w := range want {
		n, err := readFrame(br, buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], w) {
			t.Fatalf("frame %d: %d bytes, want %d of %d", i, n, len(w), w[0])
		}
		sawBig = sawBig || br.big != nil
	}
	if !sawBig {
		t.Error("the burst was read without the large buffer")
	}
	if br.big != nil {
		t.Error("the large buffer is kept after the burst")
	}
	if _, err := readFrame(br, buf); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

// tcpFrameSource returns a connection on which full-size frames (1400
// bytes of payload) arrive as fast as loopback carries them.
func tcpFrameSource(b *testing.B) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var chunk []byte
	for range 40 {
		chunk = binary.BigEndian.AppendUint16(chunk, 1400)
		chunk = append(chunk, make([]byte, 1400)...)
	}
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

// BenchmarkTCPFrameRead compares the client's TCP stream reader with the
// 64 KiB bufio.Reader it replaced, on a stream that is always full.
func BenchmarkTCPFrameRead(b *testing.B) {
	for _, kind := range []string{"bufio64k", "burst"} {
		b.Run(kind, func(b *testing.B) {
			rw := rawOrConn(tcpFrameSource(b))
			var r io.Reader = newBurstReader(rw)
			if kind == "bufio64k" {
				r = bufio.NewReaderSize(rw, 64<<10)
			}
			buf := make([]byte, 2048)
			b.SetBytes(1400)
			b.ReportAllocs()
			for b.Loop() {
				if n, err := readFrame(r, buf); err != nil || n != 1400 {
					b.Fatalf("readFrame: %d, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkTCPFrameWrite compares sends to a TCP stream framed in a pooled
// buffer (streamLink) with the 64 KiB bufio.Writer per connection they
// replaced, for batches of 32 full-size packets.
func BenchmarkTCPFrameWrite(b *testing.B) {
	for _, kind := range []string{"bufio64k", "pooled"} {
		b.Run(kind, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				c, err := ln.Accept()
				ln.Close()
				if err == nil {
					_, _ = io.Copy(io.Discard, c)
					c.Close()
				}
			}()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			rw := rawOrConn(conn)
			pkts := make([][]byte, 32)
			for i := range pkts {
				pkts[i] = make([]byte, 1400)
			}
			l := &streamLink{conn: conn, w: rw}
			bw := bufio.NewWriterSize(rw, 64<<10)
			send := l.sendData
			if kind == "bufio64k" {
				send = func(pkts [][]byte) error {
					for _, p := range pkts {
						var hdr [2]byte
						binary.BigEndian.PutUint16(hdr[:], uint16(len(p)))
						if _, err := bw.Write(hdr[:]); err != nil {
							return err
						}
						if _, err := bw.Write(p); err != nil {
							return err
						}
					}
					return bw.Flush()
				}
			}
			b.SetBytes(32 * 1400)
			b.ReportAllocs()
			for b.Loop() {
				if err := send(pkts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// repeatReader returns the same bytes forever.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// TestTCPFramingAllocs: once warm, framing sends to a TCP stream and
// reading frames from it allocate nothing per packet.
func TestTCPFramingAllocs(t *testing.T) {
	pkts := make([][]byte, 32)
	for i := range pkts {
		pkts[i] = make([]byte, 1400)
	}
	l := &streamLink{w: io.Discard}
	if a := testing.AllocsPerRun(100, func() {
		if err := l.sendData(pkts); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("sending a batch allocates %v", a)
	}
	var frame []byte
	frame = binary.BigEndian.AppendUint16(frame, 1400)
	frame = append(frame, make([]byte, 1400)...)
	br := newBurstReader(&repeatReader{data: frame})
	buf := make([]byte, 2048)
	if a := testing.AllocsPerRun(1000, func() {
		if n, err := readFrame(br, buf); err != nil || n != 1400 {
			t.Fatalf("readFrame: %d, %v", n, err)
		}
	}); a != 0 {
		t.Errorf("reading a frame allocates %v", a)
	}
}
