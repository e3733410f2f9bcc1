package openvpn

import (
	"crypto/rand"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/remotegate/remotegate/openvpn/internal/datachannel"
	"github.com/remotegate/remotegate/openvpn/internal/wire"
	"github.com/remotegate/remotegate/tunnel"
)

// nullLink swallows what a session sends, so that benchmarks measure the
// protocol work and not the socket.
type nullLink struct{ pkts int }

func (l *nullLink) sendControl([]byte) error { return nil }
func (l *nullLink) sendData(p [][]byte) error {
	l.pkts += len(p)
	return nil
}
func (l *nullLink) remote() netip.AddrPort { return netip.AddrPort{} }
func (l *nullLink) close()                 {}

// keyedPair returns a server-side session with a data key installed and the
// matching client-side key.
func keyedPair(tb testing.TB, c datachannel.Cipher) (*session, *datachannel.Key, *nullLink) {
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
	l := &nullLink{}
	s := newSession(wire.RoleServer, nil, wire.SessionID{1}, l, Timers{}.withDefaults(true), slog.New(slog.DiscardHandler), time.Now, rand.Reader)
	s.sendPeerID.Store(3)
	dk := &dataKeys{send: sk, retire: time.Now().Add(time.Hour)}
	dk.byID[0] = sk
	s.data.Store(dk)
	return s, ck, l
}

// relayOne is the relay path of the server for one packet: open what client
// A sent, seal it in place for client B.
func relayOne(tb testing.TB, a, b *session, bufs [][]byte, sealed []byte) {
	plain, ok := a.openData(sealed)
	if !ok {
		tb.Fatal("open failed")
	}
	start := cap(bufs[0]) - cap(plain)
	bufs[0] = bufs[0][:start+len(plain)]
	if _, err := b.send(bufs[:1], start); err != nil {
		tb.Fatal(err)
	}
}

func relaySetup(tb testing.TB, c datachannel.Cipher) (a, b *session, ca *datachannel.Key, lb *nullLink) {
	a, ca, _ = keyedPair(tb, c)
	b, _, lb = keyedPair(tb, c)
	return a, b, ca, lb
}

// sealFrom makes the packet client A would send: a 1400-byte payload in a
// buffer laid out as the server's receive buffers are.
func sealFrom(tb testing.TB, ca *datachannel.Key, buf []byte) []byte {
	pkt, err := ca.Seal(buf[:cap(buf)], tunnel.Headroom, 1400, 3)
	if err != nil {
		tb.Fatal(err)
	}
	return pkt
}

func TestRelayAllocs(t *testing.T) {
	for _, c := range []datachannel.Cipher{datachannel.AES128GCM, datachannel.AES256GCM, datachannel.ChaCha20Poly1305} {
		a, b, ca, lb := relaySetup(t, c)
		buf := make([]byte, tunnel.BufferSize)
		bufs := [][]byte{buf}
		allocs := testing.AllocsPerRun(200, func() {
			pkt := sealFrom(t, ca, buf)
			relayOne(t, a, b, bufs, pkt)
		})
		if allocs != 0 {
			t.Errorf("%v: relay allocates %v per packet", c, allocs)
		}
		if lb.pkts < 200 {
			t.Fatalf("%v: %d packets relayed", c, lb.pkts)
		}
	}
}

// BenchmarkRelay measures the server's per-packet relay work between two
// clients: authenticate and decrypt from one, encrypt to the other.
func BenchmarkRelay(b *testing.B) {
	for _, c := range []datachannel.Cipher{datachannel.AES128GCM, datachannel.AES256GCM, datachannel.ChaCha20Poly1305} {
		b.Run(c.String(), func(b *testing.B) {
			sa, sb, ca, _ := relaySetup(b, c)
			buf := make([]byte, tunnel.BufferSize)
			in := make([]byte, tunnel.BufferSize)
			bufs := [][]byte{in}
			b.SetBytes(1400)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				pkt := sealFrom(b, ca, buf)
				start := cap(buf) - cap(pkt)
				copy(in[start:], pkt)
				p := in[start : start+len(pkt)]
				b.StartTimer()
				relayOne(b, sa, sb, bufs, p)
			}
		})
	}
}
