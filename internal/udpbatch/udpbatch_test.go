package udpbatch

import (
	"fmt"
	"net"
	"testing"
	"time"
)

func TestBatchLoopback(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			ip := net.IPv4(127, 0, 0, 1)
			if network == "udp6" {
				ip = net.IPv6loopback
			}
			a, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
			if err != nil {
				t.Skipf("no %s loopback here: %v", network, err)
			}
			b, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
			if err != nil {
				t.Fatal(err)
			}
			ca, cb := New(a), New(b)
			defer ca.Close()
			defer cb.Close()
			out := make([]Message, 8)
			for i := range out {
				p := []byte(fmt.Sprintf("datagram %d", i))
				out[i] = Message{Buf: p, N: len(p), Addr: cb.LocalAddr()}
			}
			if n, err := ca.WriteBatch(out); err != nil || n != 8 {
				t.Fatalf("WriteBatch %d %v", n, err)
			}
			in := make([]Message, 8)
			for i := range in {
				in[i].Buf = make([]byte, 1500)
			}
			_ = b.SetReadDeadline(time.Now().Add(2 * time.Second))
			got := 0
			for got < 8 {
				n, err := cb.ReadBatch(in[got:])
				if err != nil {
					t.Fatal(err)
				}
				for i := got; i < got+n; i++ {
					if string(in[i].Buf[:in[i].N]) != fmt.Sprintf("datagram %d", i) || in[i].Addr != ca.LocalAddr() {
						t.Fatalf("message %d: %q from %v (want from %v)", i, in[i].Buf[:in[i].N], in[i].Addr, ca.LocalAddr())
					}
				}
				got += n
			}
		})
	}
}

func BenchmarkWriteReadBatch(b *testing.B) {
	a, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	r, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	ca, cr := New(a), New(r)
	defer ca.Close()
	defer cr.Close()
	out := make([]Message, 16)
	in := make([]Message, 16)
	for i := range out {
		out[i] = Message{Buf: make([]byte, 1400), N: 1400, Addr: cr.LocalAddr()}
		in[i].Buf = make([]byte, 1500)
	}
	b.SetBytes(16 * 1400)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ca.WriteBatch(out); err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < 16 {
			n, err := cr.ReadBatch(in[got:])
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}
