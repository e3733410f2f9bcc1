package rawio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- nil
			return
		}
		done <- c.(*net.TCPConn)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s
}

func mustNew(t *testing.T, c any) *Conn {
	t.Helper()
	rc, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// Four megabytes through a loopback TCP connection, more than the socket
// buffers hold, so that both sides meet EAGAIN and wait in the poller.
func TestStreamArrivesIntact(t *testing.T) {
	a, b := tcpPair(t)
	w, r := mustNew(t, a), mustNew(t, b)
	want := make([]byte, 4<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	errc := make(chan error, 1)
	go func() {
		for off := 0; off < len(want); off += 100_000 {
			end := min(off+100_000, len(want))
			n, err := w.Write(want[off:end])
			if err != nil || n != end-off {
				errc <- errors.Join(err, io.ErrShortWrite)
				return
			}
		}
		errc <- a.CloseWrite()
	}()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d, or they differ", len(got), len(want))
	}
}

func TestReadReturnsEOFWhenPeerCloses(t *testing.T) {
	a, b := tcpPair(t)
	r := mustNew(t, b)
	a.Close()
	buf := make([]byte, 10)
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReadHonoursDeadline(t *testing.T) {
	_, b := tcpPair(t)
	r := mustNew(t, b)
	_ = b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := r.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v; want os.ErrDeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Read returned after %v", d)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	_, b := tcpPair(t)
	r := mustNew(t, b)
	errc := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	b.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Read on a closed connection returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

func TestWriteToResetConnectionFails(t *testing.T) {
	a, b := tcpPair(t)
	w := mustNew(t, a)
	_ = b.SetLinger(0)
	b.Close() // RST
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = w.Write(make([]byte, 1000))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
}

func TestDatagramsKeepTheirBoundaries(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := mustNew(t, c)
	for _, size := range []int{1, 1400, 17} {
		if n, err := w.Write(bytes.Repeat([]byte{byte(size)}, size)); n != size || err != nil {
			t.Fatalf("Write(%d) = %d, %v", size, n, err)
		}
	}
	r := mustNew(t, pc)
	for _, size := range []int{1, 1400, 17} {
		buf := make([]byte, 2000)
		n, err := r.Read(buf)
		if err != nil || n != size || buf[0] != byte(size) {
			t.Fatalf("Read = %d, %v; want a datagram of %d", n, err, size)
		}
	}
}

func TestNewNeedsADescriptor(t *testing.T) {
	a, _ := net.Pipe()
	defer a.Close()
	if _, err := New(a); !errors.Is(err, ErrNoRawConn) {
		t.Fatalf("New(net.Pipe) = %v; want ErrNoRawConn", err)
	}
}

func TestZeroLengthReadReturnsAtOnce(t *testing.T) {
	_, b := tcpPair(t)
	r := mustNew(t, b)
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
}

func udpPair(t testing.TB) (w, r *Conn) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// A lost datagram must fail a test, not hang it.
	_ = pc.SetReadDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { pc.Close() })
	c, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w, err = New(c)
	if err != nil {
		t.Fatal(err)
	}
	r, err = New(pc)
	if err != nil {
		t.Fatal(err)
	}
	return w, r
}

// The data path calls Read and Write for every packet: they must not
// allocate.
func TestReadWriteDoNotAllocate(t *testing.T) {
	w, r := udpPair(t)
	out, in := make([]byte, 1400), make([]byte, 2048)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := w.Write(out); err != nil {
			t.Fatal(err)
		}
		if n, err := r.Read(in); err != nil || n != len(out) {
			t.Fatalf("Read = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per datagram written and read, want 0", allocs)
	}
}

func BenchmarkWriteRead(b *testing.B) {
	w, r := udpPair(b)
	out, in := make([]byte, 1400), make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		if _, err := w.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Read(in); err != nil {
			b.Fatal(err)
		}
	}
}

// Concurrent writers do not mix their datagrams' bytes.
func TestConcurrentWriters(t *testing.T) {
	w, r := udpPair(t)
	const writers, each = 4, 10 // 40 KB: fits the receive buffer, nothing is dropped
	done := make(chan struct{})
	for i := range writers {
		go func() {
			defer func() { done <- struct{}{} }()
			p := bytes.Repeat([]byte{byte('a' + i)}, 1000)
			for range each {
				if _, err := w.Write(p); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	buf := make([]byte, 2000)
	for got := 0; got < writers*each; got++ {
		n, err := r.Read(buf)
		if err != nil || n != 1000 || !bytes.Equal(buf[:n], bytes.Repeat(buf[:1], 1000)) {
			t.Fatalf("datagram %d: %d bytes, %v, mixed: %q", got, n, err, buf[:8])
		}
	}
	for range writers {
		<-done
	}
}
