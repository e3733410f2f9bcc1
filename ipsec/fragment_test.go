package ipsec

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
)

var (
	fragGCM = Proposal{Encryption: EncrAESGCM16, KeyBits: 256, PRF: PRFHMACSHA256, DHGroup: DHCurve25519}
	fragCBC = Proposal{Encryption: EncrAESCBC, KeyBits: 128, Integrity: IntegHMACSHA512, PRF: PRFHMACSHA256, DHGroup: DHCurve25519}
)

// skPair returns a sealing and an opening SK cipher with the same keys.
func skPair(t testing.TB, p Proposal) (seal, open *ikecrypto.SKCipher) {
	t.Helper()
	s := chosen{Proposal: p}.ikeSuite()
	n := bytes.Repeat([]byte{7}, 32)
	keys, err := ikecrypto.DeriveIKEKeys(s, n, n, bytes.Repeat([]byte{9}, 32), [8]byte{1}, [8]byte{2})
	if err != nil {
		t.Fatal(err)
	}
	if seal, err = ikecrypto.NewSKCipher(s, keys.Ei, keys.Ai, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if open, err = ikecrypto.NewSKCipher(s, keys.Ei, keys.Ai, rand.Reader); err != nil {
		t.Fatal(err)
	}
	return seal, open
}

// bigPayloads is an inner payload chain of about n bytes.
func bigPayloads(n int) []message.Payload {
	var ps []message.Payload
	ps = append(ps, &message.Notify{NotifyType: message.NotifyInitialContact})
	for n > 0 {
		k := min(n, 60000)
		data := make([]byte, k)
		for i := range data {
			data[i] = byte(i * 7)
		}
		ps = append(ps, &message.Cert{Encoding: message.CertX509Signature, Data: data})
		n -= k
	}
	return ps
}

func chainBytes(t testing.TB, ps []message.Payload) []byte {
	t.Helper()
	b, _, err := message.AppendPayloads(nil, ps)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fragHeader(mid uint32) message.Header {
	return message.Header{SPIi: [8]byte{1}, SPIr: [8]byte{2}, Version: message.Version2, Exchange: message.IKEAuth, Flags: message.FlagInitiator, MessageID: mid}
}

// Fragments fit the limit, carry the first payload type in fragment 1
// only, and reassemble to the chain, for AEAD and CBC.
func TestFragmentSealOpen(t *testing.T) {
	for _, p := range []Proposal{fragGCM, fragCBC} {
		t.Run(p.String(), func(t *testing.T) {
			seal, open := skPair(t, p)
			ps := bigPayloads(3000)
			for _, limit := range []int{0, 200, 300, 1252, 5000} {
				frags, err := sealMessage(seal, fragHeader(1), ps, limit)
				if err != nil {
					t.Fatal(err)
				}
				if limit > 0 && limit < 3000 && len(frags) < 2 {
					t.Fatalf("limit %d: %d fragments", limit, len(frags))
				}
				var r reassembly
				for i, f := range frags {
					if limit > 0 && len(f) > limit {
						t.Fatalf("limit %d: fragment of %d bytes", limit, len(f))
					}
					if len(frags) > 1 {
						_, outer, err := message.Parse(f)
						if err != nil {
							t.Fatal(err)
						}
						skf := outer[len(outer)-1].(*message.Fragment)
						if int(skf.Number) != i+1 || int(skf.Total) != len(frags) || (i == 0) != (skf.NextPayload != message.NoNext) {
							t.Fatalf("fragment %d: %d/%d next %v", i+1, skf.Number, skf.Total, skf.NextPayload)
						}
					}
					got, done, err := openMessage(open, f, &r)
					if err != nil {
						t.Fatalf("limit %d, fragment %d: %v", limit, i+1, err)
					}
					if done != (i == len(frags)-1) {
						t.Fatalf("limit %d, fragment %d: done %v", limit, i+1, done)
					}
					if done && !bytes.Equal(chainBytes(t, got), chainBytes(t, ps)) {
						t.Fatalf("limit %d: reassembled chain differs", limit)
					}
				}
				if r.active {
					t.Fatal("reassembly still active after completion")
				}
			}
		})
	}
}

func TestReassemblyEdgeCases(t *testing.T) {
	seal, open := skPair(t, fragGCM)
	ps := bigPayloads(2000)
	want := chainBytes(t, ps)
	frags, err := sealMessage(seal, fragHeader(1), ps, 300)
	if err != nil {
		t.Fatal(err)
	}
	n := len(frags)
	feed := func(r *reassembly, f []byte) ([]message.Payload, bool, error) {
		return openMessage(open, f, r)
	}

	t.Run("reversed with duplicates", func(t *testing.T) {
		var r reassembly
		for i := n - 1; i >= 0; i-- {
			for dup := range 2 {
				got, done, err := feed(&r, frags[i])
				if err != nil {
					t.Fatal(err)
				}
				if done != (i == 0 && dup == 0) {
					t.Fatalf("fragment %d copy %d: done %v", i+1, dup, done)
				}
				if done && !bytes.Equal(chainBytes(t, got), want) {
					t.Fatal("reassembled chain differs")
				}
			}
		}
	})

	t.Run("forged fragment", func(t *testing.T) {
		var r reassembly
		if _, _, err := feed(&r, frags[0]); err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(frags[1])
		bad[len(bad)-1] ^= 1
		if _, _, err := feed(&r, bad); !errors.Is(err, ikecrypto.ErrAuthentication) {
			t.Fatalf("forged fragment: %v", err)
		}
		// The forgery neither counted nor spoiled the reassembly.
		for _, f := range frags[1:] {
			if _, _, err := feed(&r, f); err != nil {
				t.Fatal(err)
			}
		}
		if r.active {
			t.Fatal("not completed after a forged fragment")
		}
	})

	t.Run("missing fragment then retransmission", func(t *testing.T) {
		var r reassembly
		for i, f := range frags {
			if i == 1 {
				continue
			}
			if _, done, err := feed(&r, f); err != nil || done {
				t.Fatalf("fragment %d: done %v, %v", i+1, done, err)
			}
		}
		// The sender retransmits all fragments, newly sealed.
		again, err := sealMessage(seal, fragHeader(1), ps, 300)
		if err != nil {
			t.Fatal(err)
		}
		_, done, err := feed(&r, again[0])
		if err != nil || done {
			t.Fatalf("retransmitted fragment 1: done %v, %v", done, err)
		}
		got, done, err := feed(&r, again[1])
		if err != nil || !done || !bytes.Equal(chainBytes(t, got), want) {
			t.Fatalf("retransmitted fragment 2: done %v, %v", done, err)
		}
	})

	t.Run("new message ID discards the old", func(t *testing.T) {
		var r reassembly
		if _, _, err := feed(&r, frags[0]); err != nil {
			t.Fatal(err)
		}
		other, err := sealMessage(seal, fragHeader(2), bigPayloads(500), 300)
		if err != nil {
			t.Fatal(err)
		}
		var done bool
		for _, f := range other {
			if _, done, err = feed(&r, f); err != nil {
				t.Fatal(err)
			}
		}
		if !done {
			t.Fatal("message 2 incomplete")
		}
		if _, done, _ := feed(&r, frags[1]); done || r.have != 1 || r.mid != 1 {
			t.Fatalf("message 1 was kept: done %v, have %d", done, r.have)
		}
	})

	t.Run("more fragments restart, fewer are stale", func(t *testing.T) {
		var r reassembly
		if _, _, err := feed(&r, frags[0]); err != nil {
			t.Fatal(err)
		}
		finer, err := sealMessage(seal, fragHeader(1), ps, 256)
		if err != nil {
			t.Fatal(err)
		}
		if len(finer) <= n {
			t.Fatalf("%d fragments at 256, %d at 300", len(finer), n)
		}
		if _, _, err := feed(&r, finer[0]); err != nil || r.have != 1 || int(r.total) != len(finer) {
			t.Fatalf("finer fragment 1: %d of %d, %v", r.have, r.total, err)
		}
		if _, _, err := feed(&r, frags[1]); err != nil || r.have != 1 || int(r.total) != len(finer) {
			t.Fatalf("stale fragment 2: %d of %d, %v", r.have, r.total, err)
		}
		var done bool
		for _, f := range finer[1:] {
			if _, done, err = feed(&r, f); err != nil {
				t.Fatal(err)
			}
		}
		if !done {
			t.Fatal("not completed")
		}
	})

	t.Run("too many fragments", func(t *testing.T) {
		many, err := sealMessage(seal, fragHeader(3), bigPayloads(30000), 300)
		if err != nil {
			t.Fatal(err)
		}
		if len(many) <= maxFragments {
			t.Fatalf("only %d fragments", len(many))
		}
		var r reassembly
		for _, f := range many {
			if _, done, err := feed(&r, f); !errors.Is(err, errFragment) || done {
				t.Fatalf("done %v, %v", done, err)
			}
		}
	})

	t.Run("oversize", func(t *testing.T) {
		big, err := sealMessage(seal, fragHeader(4), bigPayloads(maxReassembled+1000), 2000)
		if err != nil {
			t.Fatal(err)
		}
		if len(big) > maxFragments {
			t.Fatalf("%d fragments", len(big))
		}
		var r reassembly
		var refused bool
		for _, f := range big {
			_, done, err := feed(&r, f)
			if done {
				t.Fatal("oversize message accepted")
			}
			if errors.Is(err, errFragment) {
				refused = true
			}
			if r.size > maxReassembled {
				t.Fatalf("holding %d bytes", r.size)
			}
		}
		if !refused {
			t.Fatal("oversize message not refused")
		}
	})

	t.Run("not negotiated", func(t *testing.T) {
		if _, _, err := openMessage(open, frags[0], nil); !errors.Is(err, errFragment) {
			t.Fatalf("fragment without negotiation: %v", err)
		}
	})
}

// fragProxy relays datagrams between a client and a server, recording the
// IKE fragments and letting a test drop, duplicate or reorder datagrams.
type fragProxy struct {
	mu sync.Mutex
	// hook returns what to forward instead of pkt; nil forwards pkt.
	hook     func(toServer bool, pkt []byte) [][]byte
	skf      [2]int // SKF datagrams, to the server and to the client
	maxIKE   [2]int // largest IKE datagram (UDP payload)
	maxSKF   [2]int // largest SKF datagram (UDP payload)
	authFrag [2]int // SKF datagrams of IKE_AUTH
}

// fragInfo parses the SKF payload of an IKE datagram with the non-ESP
// marker.
func fragInfo(pkt []byte) (message.Header, *message.Fragment, bool) {
	if len(pkt) < 4 || binary.BigEndian.Uint32(pkt) != 0 {
		return message.Header{}, nil, false
	}
	h, outer, err := message.Parse(pkt[4:])
	if err != nil || len(outer) == 0 {
		return h, nil, false
	}
	f, ok := outer[len(outer)-1].(*message.Fragment)
	return h, f, ok
}

func (p *fragProxy) start(t *testing.T, server netip.AddrPort) netip.AddrPort {
	t.Helper()
	front, back := loopbackConn(t), loopbackConn(t)
	var client netip.AddrPort
	pipe := func(from, to *net.UDPConn, toServer bool) {
		dir := 1
		if toServer {
			dir = 0
		}
		buf := make([]byte, 65535)
		for {
			n, src, err := from.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pkt := bytes.Clone(buf[:n])
			p.mu.Lock()
			if toServer {
				client = src
			}
			dst := client
			if toServer {
				dst = server
			}
			if len(pkt) >= 4 && binary.BigEndian.Uint32(pkt) == 0 {
				p.maxIKE[dir] = max(p.maxIKE[dir], len(pkt))
			}
			if h, _, ok := fragInfo(pkt); ok {
				p.skf[dir]++
				p.maxSKF[dir] = max(p.maxSKF[dir], len(pkt))
				if h.Exchange == message.IKEAuth {
					p.authFrag[dir]++
				}
			}
			out := [][]byte{pkt}
			if p.hook != nil {
				out = p.hook(toServer, pkt)
			}
			p.mu.Unlock()
			for _, o := range out {
				_, _ = to.WriteToUDPAddrPort(o, dst)
			}
		}
	}
	go pipe(front, back, true)
	go pipe(back, front, false)
	t.Cleanup(func() { front.Close(); back.Close() })
	return front.LocalAddr().(*net.UDPAddr).AddrPort()
}

// IKE_AUTH with certificates is fragmented both ways with a small
// FragmentSize, and the tunnel works.
func TestDialServerFragmented(t *testing.T) {
	scfg, dcfg := certPair(t)
	scfg.FragmentSize, dcfg.FragmentSize = 300, 300
	h := newEchoHandler()
	_, addr := testServer(t, scfg, h)
	var p fragProxy
	via := p.start(t, addr)
	c, err := Dial(context.Background(), loopbackConn(t), via, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.mu.Lock()
	skf, authFrag, maxSKF := p.skf, p.authFrag, p.maxSKF
	p.mu.Unlock()
	t.Logf("SKF datagrams %v (IKE_AUTH %v), largest %v bytes of UDP payload", skf, authFrag, maxSKF)
	if authFrag[0] < 2 || authFrag[1] < 2 {
		t.Fatalf("IKE_AUTH fragments: %d to the server, %d to the client", authFrag[0], authFrag[1])
	}
	// A fragment and the IPv4 and UDP headers fit FragmentSize.
	if maxSKF[0] > 300-28 || maxSKF[1] > 300-28 {
		t.Fatalf("fragments of %v bytes exceed FragmentSize 300", maxSKF)
	}
	roundTrip(t, c, c.Addresses()[0].Addr(), netip.MustParseAddr("10.98.0.1"), 4)
}

// Reordered and duplicated request fragments are reassembled; a lost
// response fragment makes the client retransmit its fragmented request,
// which the server answers from its cache, in fragments again.
func TestDialServerFragmentLossAndReorder(t *testing.T) {
	scfg, dcfg := certPair(t)
	scfg.FragmentSize, dcfg.FragmentSize = 300, 300
	h := newEchoHandler()
	_, addr := testServer(t, scfg, h)
	var p fragProxy
	var held [][]byte
	dropped := false
	var total [2]int // fragments of the IKE_AUTH request and response
	p.hook = func(toServer bool, pkt []byte) [][]byte {
		hd, f, ok := fragInfo(pkt)
		if !ok || hd.Exchange != message.IKEAuth {
			return [][]byte{pkt}
		}
		if toServer {
			total[0] = int(f.Total)
		} else {
			total[1] = int(f.Total)
		}
		if !toServer {
			if f.Number == 2 && !dropped {
				dropped = true
				return nil
			}
			return [][]byte{pkt}
		}
		held = append(held, pkt)
		if len(held) < int(f.Total) {
			return nil
		}
		// Reversed, and all but the first fragment twice: a duplicate of
		// the first would count as a retransmission and fetch the cached
		// response, so that the client's own retransmission were not
		// needed.
		var out [][]byte
		for i := len(held) - 1; i >= 0; i-- {
			out = append(out, held[i])
			if i > 0 {
				out = append(out, held[i])
			}
		}
		held = nil
		return out
	}
	via := p.start(t, addr)
	c, err := Dial(context.Background(), loopbackConn(t), via, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Dial returns once the client has every response fragment, which
	// can be before the relay has passed on the last fragments of the
	// retransmitted response (the client needed only the one that was
	// lost): wait until the counts settle on whole transmissions.
	var authFrag [2]int
	for deadline := time.Now().Add(5 * time.Second); ; {
		p.mu.Lock() // the hook runs under it too
		authFrag = p.authFrag
		settled := authFrag[0] >= 2*total[0] && authFrag[1] >= 2*total[1]
		p.mu.Unlock()
		if settled || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("IKE_AUTH fragments %v", authFrag)
	if !dropped {
		t.Fatal("no response fragment was dropped")
	}
	// The client sent its request twice, the server its response.
	if authFrag[0] < 4 || authFrag[0]%2 != 0 || authFrag[1] < 4 || authFrag[1]%2 != 0 {
		t.Fatalf("IKE_AUTH fragments %v: no retransmission of both", authFrag)
	}
	roundTrip(t, c, c.Addresses()[0].Addr(), netip.MustParseAddr("10.98.0.1"), 4)
}

// Either side with fragmentation disabled: large messages go out whole.
func TestDialFragmentationDisabled(t *testing.T) {
	for _, side := range []string{"server", "client"} {
		t.Run(side, func(t *testing.T) {
			scfg, dcfg := certPair(t)
			scfg.FragmentSize, dcfg.FragmentSize = 300, 300
			if side == "server" {
				scfg.Fragmentation = FragmentationDisabled
			} else {
				dcfg.Fragmentation = FragmentationDisabled
			}
			_, addr := testServer(t, scfg, newEchoHandler())
			var p fragProxy
			via := p.start(t, addr)
			c, err := Dial(context.Background(), loopbackConn(t), via, dcfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.skf != [2]int{} || p.maxIKE[0] <= 300 || p.maxIKE[1] <= 300 {
				t.Fatalf("SKF %v, largest %v", p.skf, p.maxIKE)
			}
		})
	}
}

func TestFragmentSizeConfig(t *testing.T) {
	cfg := pskServerConfig(t)
	cfg.FragmentSize = 100
	if _, err := NewServer(&cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("NewServer: %v", err)
	}
	d := pskDialConfig(t)
	d.FragmentSize = 70000
	if _, err := Dial(context.Background(), loopbackConn(t), netip.MustParseAddrPort("127.0.0.1:4500"), d); !errors.Is(err, ErrConfig) {
		t.Fatalf("Dial: %v", err)
	}
	if got := fragmentLimit(0, netip.MustParseAddrPort("[2001:db8::1]:4500")); got != 1280-40-8-4 {
		t.Fatalf("IPv6 limit %d", got)
	}
}

// Garbage and mangled fragments never panic, and reassembly stays within
// its bounds. The input is a sequence of datagrams, each prefixed by its
// 16-bit length, fed to one reassembly.
func FuzzFragments(f *testing.F) {
	seal, open := skPair(f, fragGCM)
	frags, err := sealMessage(seal, fragHeader(1), bigPayloads(1500), 300)
	if err != nil {
		f.Fatal(err)
	}
	var all []byte
	for i := len(frags) - 1; i >= 0; i-- {
		all = binary.BigEndian.AppendUint16(all, uint16(len(frags[i])))
		all = append(all, frags[i]...)
	}
	f.Add(all)
	f.Add(binary.BigEndian.AppendUint16(nil, uint16(len(frags[0]))))
	mangled := bytes.Clone(frags[0])
	mangled[message.HeaderLen+4] = 0xff // fragment number
	f.Add(append(binary.BigEndian.AppendUint16(nil, uint16(len(mangled))), mangled...))
	f.Fuzz(func(t *testing.T, in []byte) {
		var r reassembly
		for len(in) >= 2 {
			n := min(int(binary.BigEndian.Uint16(in)), len(in)-2)
			msg := in[2 : 2+n]
			in = in[2+n:]
			_, _, _ = openMessage(open, msg, &r)
			_ = firstFragment(msg)
			if r.active && (int(r.total) > maxFragments || r.size > maxReassembled || r.have > int(r.total)) {
				t.Fatalf("reassembly out of bounds: %d of %d fragments, %d bytes", r.have, r.total, r.size)
			}
		}
	})
}
