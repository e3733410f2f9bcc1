package datachannel

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Known answer from a capture of stock openvpn 2.6.14: an AES-256-GCM
// P_DATA_V2 packet, server to client, peer id 0, packet id 1.
const (
	vecKey    = "4c6dafba31b92873d363f811931facc4ded518c27ace4b715406c3a0439f7413"
	vecIV     = "43cd01603b8b4f5e"
	vecPacket = "4800000000000001cc36fd4db777c41ba56976ce2c43a35104366c57102544ce2f6296973eb38b2d1409cd7881d87bd1f2a4abac7464c1624c7c4dda11dbb0b4b2bf5f4206fa4461"
	vecPlain  = "6000000000083afffe80000000000000c64af9028b197048ff0200000000000000000000000000028500c28700000000"
)

func vectorBlock(t testing.TB) *KeyBlock {
	kb := new(KeyBlock)
	copy(kb[128:], unhex(t, vecKey))
	copy(kb[192:], unhex(t, vecIV))
	return kb
}

func TestKnownAnswerOpen(t *testing.T) {
	k, err := NewKey(KeyConfig{Cipher: AES256GCM, Block: vectorBlock(t), Server: false})
	if err != nil {
		t.Fatal(err)
	}
	pkt := unhex(t, vecPacket)
	plain, err := k.Open(pkt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(plain, unhex(t, vecPlain)) {
		t.Fatalf("plaintext %x", plain)
	}
	if _, err := k.Open(unhex(t, vecPacket)); !errors.Is(err, ErrReplay) {
		t.Fatalf("second Open: %v, want ErrReplay", err)
	}
}

func TestKnownAnswerSeal(t *testing.T) {
	k, err := NewKey(KeyConfig{Cipher: AES256GCM, Block: vectorBlock(t), Server: true})
	if err != nil {
		t.Fatal(err)
	}
	plain := unhex(t, vecPlain)
	buf := make([]byte, 100+len(plain)+SealTailroom)
	copy(buf[100:], plain)
	pkt, err := k.Seal(buf, 100, len(plain), 0)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(pkt) != vecPacket {
		t.Fatalf("sealed\n %x\nwant\n %s", pkt, vecPacket)
	}
}

func pair(t testing.TB, c Cipher, keyID uint8) (client, server *Key) {
	t.Helper()
	kb := new(KeyBlock)
	if _, err := rand.Read(kb[:]); err != nil {
		t.Fatal(err)
	}
	var err error
	if client, err = NewKey(KeyConfig{Cipher: c, Block: kb, KeyID: keyID}); err != nil {
		t.Fatal(err)
	}
	if server, err = NewKey(KeyConfig{Cipher: c, Block: kb, Server: true, KeyID: keyID}); err != nil {
		t.Fatal(err)
	}
	return client, server
}

func seal(t testing.TB, k *Key, payload []byte, peerID uint32) []byte {
	t.Helper()
	buf := make([]byte, SealHeadroom+len(payload)+SealTailroom)
	copy(buf[SealHeadroom:], payload)
	pkt, err := k.Seal(buf, SealHeadroom, len(payload), peerID)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []Cipher{AES128GCM, AES256GCM, ChaCha20Poly1305, AES256CBC} {
		for _, peerID := range []uint32{7, NoPeerID} {
			cli, srv := pair(t, c, 3)
			for i, size := range []int{0, 1, 15, 16, 100, 1400} {
				payload := bytes.Repeat([]byte{byte(i + 1)}, size)
				pkt := seal(t, cli, payload, peerID)
				if pkt[0]&7 != 3 || (peerID != NoPeerID) != (pkt[0]>>3 == 9) {
					t.Fatalf("%v: header %x", c, pkt[:4])
				}
				// tamper: every byte position must be authenticated
				for _, pos := range []int{len(pkt) - 1, len(pkt) / 2} {
					bad := append([]byte(nil), pkt...)
					bad[pos] ^= 1
					if _, err := srv.Open(bad); err == nil {
						t.Fatalf("%v: tampered byte %d accepted", c, pos)
					}
				}
				got, err := srv.Open(append([]byte(nil), pkt...))
				if err != nil || !bytes.Equal(got, payload) {
					t.Fatalf("%v peer %d size %d: %v %x", c, peerID, size, err, got)
				}
				if _, err := srv.Open(append([]byte(nil), pkt...)); !errors.Is(err, ErrReplay) {
					t.Fatalf("%v: replay: %v", c, err)
				}
				// server to client
				back := seal(t, srv, payload, peerID)
				if got, err := cli.Open(back); err != nil || !bytes.Equal(got, payload) {
					t.Fatalf("%v: s2c %v", c, err)
				}
			}
			other, _ := pair(t, c, 4)
			if _, err := other.Open(seal(t, cli, []byte("x"), peerID)); !errors.Is(err, ErrKeyID) {
				t.Fatalf("%v: wrong key id: %v", c, err)
			}
		}
	}
}

func TestOpenGarbage(t *testing.T) {
	_, srv := pair(t, AES256GCM, 0)
	for _, p := range [][]byte{nil, {0x48}, {0x48, 0, 0, 0, 0, 0, 0, 1}, bytes.Repeat([]byte{0x48}, 24), {0x20, 1, 2}} {
		if _, err := srv.Open(p); err == nil {
			t.Fatalf("Open(%x) succeeded", p)
		}
	}
}

func TestPRFKnownAnswer(t *testing.T) {
	pm := make([]byte, 48)
	for i := range pm {
		pm[i] = byte(i)
	}
	r := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	kb, err := PRFKeyBlock(pm, r(1), r(2), r(3), r(4), [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, [8]byte{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8})
	if err != nil {
		t.Fatal(err)
	}
	// Computed independently with Python's hmac/hashlib from RFC 2246 section 5.
	want := "57ef2d71f6036be8277bebf8268e68800ba0ffd4f642ecfb68371c0f630cb854cd9d38b336d61e6f52a72dbc7be6db6a861e52ad50ab9e5cf371737cd8fef5fe49befa7307b5c5243904d8d9eab2a866571cda1a7ecc4117fd0f1ba7e6c5d3f1a85da797e53eaecaf4a373118575f0e7d319d652785ce4796d88a135d71f852ba5c98c50fe220e97d67668e9cf6f2058e80155f4dba0d94fbaf9841b36dd5aa08d8e85225972220771052aa93fa939a672e2e75df8eca70bdba85bd721a6b48d9ee81a24116d2600db578b981a6d1508fe6fe82f3949b7256ed4e76287377e9cc96a9aac186c0fa756bb158989cc57c6b4e9271565139f8f4a9d876bb1bf9743"
	if hex.EncodeToString(kb[:]) != want {
		t.Fatalf("PRF block\n%x", kb[:])
	}
}

func TestExportKeyBlockOverTLS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "s"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		a, b := net.Pipe()
		srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: v})
		cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true, MaxVersion: v})
		errc := make(chan error, 1)
		go func() { errc <- srv.HandshakeContext(context.Background()) }()
		if err := cli.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		cs, ss := cli.ConnectionState(), srv.ConnectionState()
		kc, err := ExportKeyBlock(cs.ExportKeyingMaterial)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := ExportKeyBlock(ss.ExportKeyingMaterial)
		if err != nil || *kc != *ks {
			t.Fatalf("TLS %x: blocks differ or %v", v, err)
		}
		ck, _ := NewKey(KeyConfig{Cipher: AES256GCM, Block: kc})
		sk, _ := NewKey(KeyConfig{Cipher: AES256GCM, Block: ks, Server: true})
		if got, err := sk.Open(seal(t, ck, []byte("hello"), 0)); err != nil || string(got) != "hello" {
			t.Fatalf("open %v", err)
		}
		a.Close()
		b.Close()
	}
}

func TestCompressionFraming(t *testing.T) {
	for _, c := range []Compression{CompressionNone, CompressionStub, CompressionLZO, CompressionStubV2} {
		for _, p := range [][]byte{{0x45, 1, 2, 3}, {0x50, 9}, {0x60}} {
			buf := make([]byte, 8+len(p)+8)
			copy(buf[8:], p)
			off, n := c.Frame(buf, 8, len(p))
			got, err := c.Unframe(buf[off : off+n])
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("%d %x: %x %v", c, p, got, err)
			}
		}
	}
	if _, err := CompressionLZO.Unframe([]byte{0x66, 1}); !errors.Is(err, ErrCompressed) {
		t.Fatal(err)
	}
	if !IsPing(PingMagic[:]) || IsPing(OCCMagic[:]) || !IsOCCExit(append(OCCMagic[:], 6)) {
		t.Fatal("magic classification")
	}
}

func TestSealOpenAllocs(t *testing.T) {
	for _, c := range []Cipher{AES128GCM, AES256GCM, ChaCha20Poly1305} {
		cli, srv := pair(t, c, 0)
		buf := make([]byte, 2048)
		if a := testing.AllocsPerRun(100, func() {
			if _, err := cli.Seal(buf, SealHeadroom, 1400, 5); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%v: Seal allocates %v per packet", c, a)
		}
		pkts := make([][]byte, 202)
		for i := range pkts {
			b := make([]byte, 2048)
			p, _ := cli.Seal(b, SealHeadroom, 1400, 5)
			pkts[i] = p
		}
		i := 0
		if a := testing.AllocsPerRun(200, func() {
			if _, err := srv.Open(pkts[i]); err != nil {
				t.Fatal(err)
			}
			i++
		}); a != 0 {
			t.Errorf("%v: Open allocates %v per packet", c, a)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, c := range []Cipher{AES128GCM, AES256GCM, ChaCha20Poly1305} {
		b.Run(c.String(), func(b *testing.B) {
			cli, _ := pair(b, c, 0)
			buf := make([]byte, 2048)
			b.SetBytes(1400)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := cli.Seal(buf, SealHeadroom, 1400, 5); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, c := range []Cipher{AES128GCM, AES256GCM, ChaCha20Poly1305} {
		b.Run(c.String(), func(b *testing.B) {
			cli, srv := pair(b, c, 0)
			buf := make([]byte, 2048)
			work := make([]byte, 2048)
			b.SetBytes(1400)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				pkt, _ := cli.Seal(buf, SealHeadroom, 1400, 5)
				w := work[:len(pkt)]
				copy(w, pkt)
				b.StartTimer()
				if _, err := srv.Open(w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(unhex(f, vecPacket))
	f.Add([]byte{0x30, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []Cipher{AES256GCM, ChaCha20Poly1305, AES256CBC} {
			k, err := NewKey(KeyConfig{Cipher: c, Block: vectorBlock(t)})
			if err != nil {
				t.Fatal(err)
			}
			pkt := append([]byte(nil), data...)
			plain, err := k.Open(pkt)
			if err == nil && len(plain) > len(pkt) {
				t.Fatalf("plaintext longer than packet")
			}
		}
	})
}

func FuzzUnframe(f *testing.F) {
	f.Add([]byte{0xFB, 1, 2, 0x45})
	f.Add([]byte{0x50, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []Compression{CompressionNone, CompressionStub, CompressionLZO, CompressionStubV2} {
			_, _ = c.Unframe(append([]byte(nil), data...))
		}
	})
}
