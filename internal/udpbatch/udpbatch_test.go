package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

func listen(t testing.TB, network, addr string) *Conn {
	t.Helper()
	uc, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("cannot listen on %s %s here: %v", network, addr, err)
	}
	c := New(uc)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func payload(i int) []byte {
	// Distinct lengths and contents, so a mix-up of buffers or sizes shows.
	return []byte(fmt.Sprintf("datagram %d %s", i, string(make([]byte, i*37))))
}

// readAll reads exactly want datagrams (possibly over several calls).
func readAll(t testing.TB, c *Conn, uc *net.UDPConn, want int) []Message {
	t.Helper()
	in := make([]Message, want)
	for i := range in {
		in[i].Buf = make([]byte, 1500)
	}
	if err := uc.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < want {
		n, err := c.ReadBatch(in[got:])
		if err != nil {
			t.Fatalf("ReadBatch after %d of %d: %v", got, want, err)
		}
		if n <= 0 || n > want-got {
			t.Fatalf("ReadBatch returned %d", n)
		}
		got += n
	}
	return in
}

func TestBatchLoopback(t *testing.T) {
	for _, tc := range []struct{ name, network, a, b string }{
		{"v4", "udp4", "127.0.0.1:0", "127.0.0.1:0"},
		{"v6", "udp6", "[::1]:0", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := listen(t, tc.network, tc.a), listen(t, tc.network, tc.b)
			if !a.LocalAddr().IsValid() || a.LocalAddr().Port() == 0 {
				t.Fatalf("LocalAddr %v", a.LocalAddr())
			}
			const count = 20
			out := make([]Message, count)
			for i := range out {
				p := payload(i)
				// Buf longer than N: only Buf[:N] may go out.
				out[i] = Message{Buf: append(p, "TRAILING"...), N: len(p), Addr: b.LocalAddr()}
			}
			if n, err := a.WriteBatch(out); err != nil || n != count {
				t.Fatalf("WriteBatch %d %v", n, err)
			}
			in := readAll(t, b, b.uc, count)
			for i, m := range in {
				if string(m.Buf[:m.N]) != string(payload(i)) {
					t.Fatalf("message %d: %d bytes %q", i, m.N, m.Buf[:min(m.N, 20)])
				}
				if m.Addr != a.LocalAddr() {
					t.Fatalf("message %d from %v, want %v", i, m.Addr, a.LocalAddr())
				}
			}
			// And back, to the address ReadBatch reported.
			reply := []Message{{Buf: []byte("pong"), N: 4, Addr: in[0].Addr}}
			if n, err := b.WriteBatch(reply); err != nil || n != 1 {
				t.Fatalf("reply %d %v", n, err)
			}
			back := readAll(t, a, a.uc, 1)
			if string(back[0].Buf[:back[0].N]) != "pong" || back[0].Addr != b.LocalAddr() {
				t.Fatalf("reply %q from %v", back[0].Buf[:back[0].N], back[0].Addr)
			}
		})
	}
}

// TestDualStack covers the usual server socket, net.ListenUDP("udp", ":port"),
// talking to an IPv4 peer: addresses come out unmapped and go back in that
// form.
func TestDualStack(t *testing.T) {
	uc, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		t.Skipf("no dual-stack socket here: %v", err)
	}
	srv := New(uc)
	defer srv.Close()
	if srv.LocalAddr().Addr().Is4() {
		t.Skipf("socket is IPv4-only here (%v)", srv.LocalAddr())
	}
	cli := listen(t, "udp4", "127.0.0.1:0")
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), srv.LocalAddr().Port())
	if _, err := cli.WriteBatch([]Message{{Buf: []byte("hi"), N: 2, Addr: to}}); err != nil {
		t.Fatal(err)
	}
	in := readAll(t, srv, uc, 1)
	if in[0].Addr != cli.LocalAddr() || !in[0].Addr.Addr().Is4() {
		t.Fatalf("from %v, want %v", in[0].Addr, cli.LocalAddr())
	}
	if _, err := srv.WriteBatch([]Message{{Buf: []byte("ho"), N: 2, Addr: in[0].Addr}}); err != nil {
		t.Fatalf("reply to IPv4 peer on dual-stack socket: %v", err)
	}
	back := readAll(t, cli, cli.uc, 1)
	if string(back[0].Buf[:back[0].N]) != "ho" || back[0].Addr.Port() != srv.LocalAddr().Port() {
		t.Fatalf("reply %q from %v", back[0].Buf[:back[0].N], back[0].Addr)
	}
}

func TestPartialBatchAndTimeout(t *testing.T) {
	a, b := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
	if _, err := a.WriteBatch([]Message{{Buf: []byte("one"), N: 3, Addr: b.LocalAddr()}}); err != nil {
		t.Fatal(err)
	}
	in := make([]Message, 8)
	for i := range in {
		in[i].Buf = make([]byte, 64)
	}
	_ = b.uc.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := b.ReadBatch(in)
	if err != nil || n != 1 || string(in[0].Buf[:in[0].N]) != "one" {
		t.Fatalf("partial batch: %d %v", n, err)
	}
	_ = b.uc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = b.ReadBatch(in)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("deadline: %v, want a timeout net.Error", err)
	}
	if n, err := b.ReadBatch(nil); n != 0 || err != nil {
		t.Fatalf("empty ReadBatch: %d %v", n, err)
	}
	_ = b.Close()
	if _, err := b.ReadBatch(in); err == nil {
		t.Fatal("ReadBatch on a closed socket succeeded")
	}
}

func TestWriteBatchInvalid(t *testing.T) {
	a, b := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
	good := Message{Buf: []byte("x"), N: 1, Addr: b.LocalAddr()}
	for _, bad := range []Message{
		{Buf: []byte("x"), N: 2, Addr: b.LocalAddr()},
		{Buf: []byte("x"), N: -1, Addr: b.LocalAddr()},
		{Buf: []byte("x"), N: 1},
	} {
		if n, err := a.WriteBatch([]Message{good, bad}); n != 0 || !errors.Is(err, ErrMessage) {
			t.Fatalf("%+v: %d %v", bad, n, err)
		}
	}
	if n, err := a.WriteBatch(nil); n != 0 || err != nil {
		t.Fatalf("empty WriteBatch: %d %v", n, err)
	}
	// Nothing from the rejected batches arrived.
	_ = b.uc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := b.ReadBatch([]Message{{Buf: make([]byte, 8)}}); err == nil {
		t.Fatal("a rejected batch was sent")
	}
}

func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	a, b := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
	const count = 8
	out := make([]Message, count)
	in := make([]Message, count)
	for i := range out {
		out[i] = Message{Buf: make([]byte, 100), N: 100, Addr: b.LocalAddr()}
		in[i].Buf = make([]byte, 1500)
	}
	_ = b.uc.SetReadDeadline(time.Now().Add(10 * time.Second))
	roundTrip := func() int {
		if n, err := a.WriteBatch(out); err != nil || n != count {
			t.Fatalf("write %d %v", n, err)
		}
		got := 0
		for got < count {
			n, err := b.ReadBatch(in[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		return got
	}
	roundTrip()
	if allocs := testing.AllocsPerRun(20, func() {
		if _, err := a.WriteBatch(out); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("WriteBatch allocates %v per batch", allocs)
	}
	// Drain what that sent.
	for i := 0; i < 21; i++ {
		got := 0
		for got < count {
			n, err := b.ReadBatch(in[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	// The documented cost of x/net's address parsing: 2 per datagram.
	if allocs := testing.AllocsPerRun(20, func() { roundTrip() }); allocs > 2*count {
		t.Errorf("write+read of %d datagrams allocates %v", count, allocs)
	}
}

func BenchmarkWriteReadBatch(b *testing.B) {
	for _, size := range []int{16, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			w, r := listen(b, "udp4", "127.0.0.1:0"), listen(b, "udp4", "127.0.0.1:0")
			_ = r.uc.SetReadBuffer(4 << 20)
			out := make([]Message, size)
			in := make([]Message, size)
			for i := range out {
				out[i] = Message{Buf: make([]byte, 1400), N: 1400, Addr: r.LocalAddr()}
				in[i].Buf = make([]byte, 1500)
			}
			b.SetBytes(int64(size) * 1400)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := w.WriteBatch(out); err != nil {
					b.Fatal(err)
				}
				got := 0
				for got < size {
					n, err := r.ReadBatch(in[got:])
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
		})
	}
}
