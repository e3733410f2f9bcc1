package datachannel

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Known answer from a capture of stock openvpn 2.6.14 (notes 9.4): an
// AES-256-GCM P_DATA_V2 packet, server to client, peer id 0, packet id 1.
const (
	vecKey    = "4c6dafba31b92873d363f811931facc4ded518c27ace4b715406c3a0439f7413"
	vecIV     = "43cd01603b8b4f5e"
	vecPacket = "4800000000000001cc36fd4db777c41ba56976ce2c43a35104366c57102544ce2f6296973eb38b2d1409cd7881d87bd1f2a4abac7464c1624c7c4dda11dbb0b4b2bf5f4206fa4461"
	vecPlain  = "6000000000083afffe80000000000000c64af9028b197048ff0200000000000000000000000000028500c28700000000"
)

// vectorBlock holds the vector's key and implicit IV in the s2c slots
// (bytes 128.. and 192..), everything else zero.
func vectorBlock(t testing.TB) *KeyBlock {
	kb := new(KeyBlock)
	copy(kb[128:], unhex(t, vecKey))
	copy(kb[192:], unhex(t, vecIV))
	return kb
}

var allCiphers = []Cipher{AES128GCM, AES256GCM, ChaCha20Poly1305, AES256CBC}

func TestKnownAnswerOpen(t *testing.T) {
	for _, spare := range []bool{true, false} {
		t.Run(fmt.Sprintf("spare=%v", spare), func(t *testing.T) {
			k, err := NewKey(KeyConfig{Cipher: AES256GCM, Block: vectorBlock(t), Server: false})
			if err != nil {
				t.Fatal(err)
			}
			wire := unhex(t, vecPacket)
			if len(wire) != 72 {
				t.Fatalf("vector is %d bytes", len(wire))
			}
			buf := make([]byte, len(wire), len(wire)+32)
			copy(buf, wire)
			pkt := buf
			wantOff := 24 // tag moved into the spare capacity: no copy
			if !spare {
				pkt = buf[:len(wire):len(wire)]
				wantOff = 8 // ciphertext moved over the tag
			}
			plain, err := k.Open(pkt)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(plain, unhex(t, vecPlain)) || len(plain) != 48 {
				t.Fatalf("plaintext %x", plain)
			}
			if off := cap(pkt) - cap(plain); off != wantOff {
				t.Fatalf("plaintext at offset %d, want %d", off, wantOff)
			}
			if _, err := k.Open(unhex(t, vecPacket)); !errors.Is(err, ErrReplay) {
				t.Fatalf("second Open: %v, want ErrReplay", err)
			}
		})
	}
}

func TestKnownAnswerSeal(t *testing.T) {
	k, err := NewKey(KeyConfig{Cipher: AES256GCM, Block: vectorBlock(t), Server: true})
	if err != nil {
		t.Fatal(err)
	}
	plain := unhex(t, vecPlain)
	buf := make([]byte, SealHeadroom+len(plain)+SealTailroom)
	copy(buf[SealHeadroom:], plain)
	// A fresh key's first packet id is 1, as in the capture.
	pkt, err := k.Seal(buf, SealHeadroom, len(plain), 0)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(pkt) != vecPacket {
		t.Fatalf("sealed\n %x\nwant\n %s", pkt, vecPacket)
	}
	if k.SendCounter() != 1 {
		t.Fatalf("SendCounter %d", k.SendCounter())
	}
}

func TestCipherNames(t *testing.T) {
	for _, c := range allCiphers {
		for _, name := range []string{c.String(), bytes.NewBufferString(c.String()).String()} {
			got, err := ParseCipher(name)
			if err != nil || got != c {
				t.Fatalf("ParseCipher(%q) = %v, %v", name, got, err)
			}
		}
		lower := []byte(c.String())
		for i := range lower {
			if lower[i] >= 'A' && lower[i] <= 'Z' {
				lower[i] += 'a' - 'A'
			}
		}
		if got, err := ParseCipher(string(lower)); err != nil || got != c {
			t.Fatalf("ParseCipher(%q) = %v, %v", lower, got, err)
		}
		if c.AEAD() != (c != AES256CBC) {
			t.Fatalf("%v.AEAD() = %v", c, c.AEAD())
		}
	}
	want := map[Cipher]string{AES128GCM: "AES-128-GCM", AES256GCM: "AES-256-GCM", ChaCha20Poly1305: "CHACHA20-POLY1305", AES256CBC: "AES-256-CBC"}
	for c, s := range want {
		if c.String() != s {
			t.Fatalf("%d.String() = %q", c, c.String())
		}
	}
	for _, bad := range []string{"", "BF-CBC", "AES-192-GCM", "none"} {
		if _, err := ParseCipher(bad); !errors.Is(err, ErrUnknownCipher) {
			t.Fatalf("ParseCipher(%q): %v", bad, err)
		}
	}
	if Cipher(0).AEAD() || Cipher(9).AEAD() || Cipher(9).String() != "Cipher(9)" {
		t.Fatal("invalid cipher values")
	}
}

func TestNewKeyErrors(t *testing.T) {
	kb := new(KeyBlock)
	for _, cfg := range []KeyConfig{
		{Cipher: AES256GCM},
		{Cipher: AES256GCM, Block: kb, KeyID: 8},
		{Cipher: AES256CBC, Block: kb, Auth: crypto.MD5},
	} {
		if _, err := NewKey(cfg); !errors.Is(err, ErrKeyConfig) {
			t.Fatalf("NewKey(%+v): %v, want ErrKeyConfig", cfg, err)
		}
	}
	for _, c := range []Cipher{0, 5, 255} {
		if _, err := NewKey(KeyConfig{Cipher: c, Block: kb}); !errors.Is(err, ErrUnknownCipher) {
			t.Fatalf("NewKey(cipher %d): %v", c, err)
		}
	}
}

func pairAuth(t testing.TB, c Cipher, auth crypto.Hash, keyID uint8) (client, server *Key) {
	t.Helper()
	kb := new(KeyBlock)
	if _, err := rand.Read(kb[:]); err != nil {
		t.Fatal(err)
	}
	var err error
	if client, err = NewKey(KeyConfig{Cipher: c, Auth: auth, Block: kb, KeyID: keyID}); err != nil {
		t.Fatal(err)
	}
	if server, err = NewKey(KeyConfig{Cipher: c, Auth: auth, Block: kb, Server: true, KeyID: keyID}); err != nil {
		t.Fatal(err)
	}
	return client, server
}

func pair(t testing.TB, c Cipher, keyID uint8) (client, server *Key) {
	t.Helper()
	return pairAuth(t, c, 0, keyID)
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

type variant struct {
	c    Cipher
	auth crypto.Hash
}

var variants = []variant{{AES128GCM, 0}, {AES256GCM, 0}, {ChaCha20Poly1305, 0}, {AES256CBC, 0}, {AES256CBC, crypto.SHA256}, {AES256CBC, crypto.SHA512}}

func (v variant) String() string {
	if v.auth != 0 {
		return v.c.String() + "/" + v.auth.String()
	}
	return v.c.String()
}

func TestRoundTrip(t *testing.T) {
	for _, v := range variants {
		for _, peerID := range []uint32{0, 7, 0xABCDEF, NoPeerID} {
			t.Run(fmt.Sprintf("%v/peer=%x", v, peerID), func(t *testing.T) {
				cli, srv := pairAuth(t, v.c, v.auth, 3)
				for i, size := range []int{0, 1, 11, 12, 15, 16, 17, 100, 1400} {
					payload := bytes.Repeat([]byte{byte(i + 1)}, size)
					pkt := seal(t, cli, payload, peerID)
					if peerID != NoPeerID {
						if pkt[0] != 0x48|3 || pkt[1] != byte(peerID>>16) || pkt[2] != byte(peerID>>8) || pkt[3] != byte(peerID) {
							t.Fatalf("V2 header %x", pkt[:4])
						}
					} else if pkt[0] != 0x30|3 {
						t.Fatalf("V1 header %x", pkt[:1])
					}
					if v.c.AEAD() {
						hdr := 8
						if peerID == NoPeerID {
							hdr = 5
						}
						if len(pkt) != hdr+16+size || binary.BigEndian.Uint32(pkt[hdr-4:hdr]) != cli.SendCounter() {
							t.Fatalf("AEAD packet %d bytes, pid %x", len(pkt), pkt[hdr-4:hdr])
						}
					}
					got, err := srv.Open(append([]byte(nil), pkt...))
					if err != nil || !bytes.Equal(got, payload) {
						t.Fatalf("size %d: %v %x", size, err, got)
					}
					if _, err := srv.Open(append([]byte(nil), pkt...)); !errors.Is(err, ErrReplay) {
						t.Fatalf("replay: %v", err)
					}
					back := seal(t, srv, payload, peerID)
					if got, err := cli.Open(back); err != nil || !bytes.Equal(got, payload) {
						t.Fatalf("s2c: %v", err)
					}
					// A key never opens its own direction.
					if _, err := cli.Open(seal(t, cli, payload, peerID)); !errors.Is(err, ErrAuth) {
						t.Fatalf("own direction: %v", err)
					}
				}
				other, _ := pairAuth(t, v.c, v.auth, 4)
				if _, err := other.Open(seal(t, cli, []byte("x"), peerID)); !errors.Is(err, ErrKeyID) {
					t.Fatalf("wrong key id: %v", err)
				}
			})
		}
	}
}

// TestTamperEveryByte flips one bit at every position of a packet. Every
// byte after the opcode is authenticated, except the peer id of the legacy
// CBC format, which OpenVPN does not authenticate either.
func TestTamperEveryByte(t *testing.T) {
	for _, v := range variants {
		for _, peerID := range []uint32{5, NoPeerID} {
			cli, srv := pairAuth(t, v.c, v.auth, 2)
			pkt := seal(t, cli, bytes.Repeat([]byte{0x45}, 40), peerID)
			for pos := range pkt {
				for _, bit := range []byte{0x01, 0x80} {
					bad := append([]byte(nil), pkt...)
					bad[pos] ^= bit
					_, err := srv.Open(bad)
					var want error = ErrAuth
					switch {
					case pos == 0 && bit == 0x01:
						want = ErrKeyID
					case pos == 0:
						want = ErrOpcode
					case !v.c.AEAD() && peerID != NoPeerID && pos < 4:
						want = nil
					}
					if !errors.Is(err, want) {
						t.Fatalf("%v peer %x: byte %d ^%02x: %v, want %v", v, peerID, pos, bit, err, want)
					}
					if want == nil {
						// Re-key the receiver: the accepted packet used the id.
						cli, srv = pairAuth(t, v.c, v.auth, 2)
						pkt = seal(t, cli, bytes.Repeat([]byte{0x45}, 40), peerID)
					}
				}
			}
			// The untouched packet still opens: failed attempts did not move
			// the replay window.
			if _, err := srv.Open(pkt); err != nil {
				t.Fatalf("%v: original after tampering: %v", v, err)
			}
		}
	}
}

func TestOpenShortAndGarbage(t *testing.T) {
	for _, v := range variants {
		cli, srv := pairAuth(t, v.c, v.auth, 0)
		for _, peerID := range []uint32{1, NoPeerID} {
			pkt := seal(t, cli, []byte("payload of some length"), peerID)
			for n := 0; n < len(pkt); n++ {
				p := append([]byte(nil), pkt[:n]...)
				if _, err := srv.Open(p); err == nil {
					t.Fatalf("%v: %d-byte prefix opened", v, n)
				}
				if _, err := srv.Open(p[:n:n]); err == nil {
					t.Fatalf("%v: %d-byte prefix opened", v, n)
				}
			}
		}
		for _, p := range [][]byte{nil, {}, {0x48}, {0x30}, {0x48, 0, 0, 0, 0, 0, 0, 1}, bytes.Repeat([]byte{0x48}, 24), bytes.Repeat([]byte{0x30}, 200), {0x20, 1, 2}, {0x38, 1}} {
			if _, err := srv.Open(append([]byte(nil), p...)); err == nil {
				t.Fatalf("%v: Open(%x) succeeded", v, p)
			}
		}
		if _, err := srv.Open(nil); !errors.Is(err, ErrShort) {
			t.Fatalf("Open(nil): %v", err)
		}
		if _, err := srv.Open([]byte{0x48, 0, 0, 0, 0, 0, 0, 1}); !errors.Is(err, ErrShort) {
			t.Fatalf("Open(header only): %v", err)
		}
		if _, err := srv.Open([]byte{0x38, 1, 2, 3}); !errors.Is(err, ErrOpcode) {
			t.Fatalf("Open(control packet): %v", err)
		}
	}
}

func TestSealBufferChecks(t *testing.T) {
	for _, v := range variants {
		cli, _ := pairAuth(t, v.c, v.auth, 0)
		buf := make([]byte, 200)
		for _, tc := range []struct{ off, n int }{{-1, 10}, {SealHeadroom, -1}, {SealHeadroom, 200}, {SealHeadroom, 200 - SealHeadroom - SealTailroom + 1}, {3, 10}, {300, 0}} {
			if _, err := cli.Seal(buf, tc.off, tc.n, 0); !errors.Is(err, ErrBuffer) {
				t.Fatalf("%v: Seal(off %d, n %d): %v", v, tc.off, tc.n, err)
			}
		}
		if cli.SendCounter() != 0 {
			t.Fatalf("%v: failed Seals consumed ids: %d", v, cli.SendCounter())
		}
		// Exactly enough room is enough.
		if _, err := cli.Seal(buf, SealHeadroom, 200-SealHeadroom-SealTailroom, NoPeerID); err != nil {
			t.Fatalf("%v: %v", v, err)
		}
	}
	// AEAD only needs its own header in front.
	cli, srv := pair(t, AES256GCM, 1)
	buf := make([]byte, 24+5+SealTailroom)
	copy(buf[24:], "hello")
	pkt, err := cli.Seal(buf, 24, 5, 9)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := srv.Open(pkt); err != nil || string(got) != "hello" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := cli.Seal(buf, 23, 5, 9); !errors.Is(err, ErrBuffer) {
		t.Fatalf("23 bytes of headroom: %v", err)
	}
}

func TestKeyExhausted(t *testing.T) {
	for _, c := range allCiphers {
		cli, srv := pair(t, c, 0)
		cli.counter.Store(exhausted - 1)
		pkt := seal(t, cli, []byte("last"), 0)
		if got, err := srv.Open(pkt); err != nil || string(got) != "last" {
			t.Fatalf("%v: last packet: %q %v", c, got, err)
		}
		if c.AEAD() && !bytes.Equal(pkt[4:8], []byte{0xFF, 0, 0, 0}) {
			t.Fatalf("%v: last pid %x", c, pkt[4:8])
		}
		buf := make([]byte, 200)
		for i := 0; i < 3; i++ {
			if _, err := cli.Seal(buf, SealHeadroom, 10, 0); !errors.Is(err, ErrKeyExhausted) {
				t.Fatalf("%v: after the last id: %v", c, err)
			}
		}
		if cli.SendCounter() != exhausted {
			t.Fatalf("%v: counter moved past the limit: %x", c, cli.SendCounter())
		}
	}
}

func TestWipe(t *testing.T) {
	for _, c := range allCiphers {
		cli, srv := pair(t, c, 0)
		pkt := seal(t, cli, []byte("x"), 0)
		cli.Wipe()
		srv.Wipe()
		srv.Wipe()
		buf := make([]byte, 200)
		if _, err := cli.Seal(buf, SealHeadroom, 10, 0); !errors.Is(err, ErrWiped) {
			t.Fatalf("%v: Seal after Wipe: %v", c, err)
		}
		if _, err := srv.Open(pkt); !errors.Is(err, ErrWiped) {
			t.Fatalf("%v: Open after Wipe: %v", c, err)
		}
	}
	kb := vectorBlock(t)
	kb.Wipe()
	if *kb != (KeyBlock{}) {
		t.Fatal("KeyBlock.Wipe left material")
	}
}

// TestConcurrentSeal checks, under -race, that concurrent Seals get distinct
// packet ids and all open, and that Wipe may race with them.
func TestConcurrentSeal(t *testing.T) {
	for _, c := range allCiphers {
		cli, srv := pair(t, c, 0)
		const workers, each = 4, 200
		pkts := make([][]byte, workers*each)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					buf := make([]byte, SealHeadroom+64+SealTailroom)
					p, err := cli.Seal(buf, SealHeadroom, 64, 1)
					if err != nil {
						t.Error(err)
						return
					}
					pkts[w*each+i] = p
				}
			}()
		}
		wg.Wait()
		for i, p := range pkts {
			if _, err := srv.Open(p); err != nil {
				t.Fatalf("%v: packet %d: %v", c, i, err)
			}
		}
		if cli.SendCounter() != workers*each {
			t.Fatalf("%v: counter %d", c, cli.SendCounter())
		}
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, SealHeadroom+64+SealTailroom)
				for i := 0; i < each; i++ {
					if _, err := cli.Seal(buf, SealHeadroom, 64, 1); err != nil && !errors.Is(err, ErrWiped) {
						t.Error(err)
					}
				}
			}()
		}
		cli.Wipe()
		wg.Wait()
	}
}

func TestSealOpenAllocs(t *testing.T) {
	for _, v := range variants {
		cli, srv := pairAuth(t, v.c, v.auth, 0)
		buf := make([]byte, 2048)
		if a := testing.AllocsPerRun(100, func() {
			if _, err := cli.Seal(buf, SealHeadroom, 1400, 5); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%v: Seal allocates %v per packet", v, a)
		}
		// Open needs a fresh packet id per run: seal them all first.
		pkts := make([][]byte, 202)
		for i := range pkts {
			b := make([]byte, 2048)
			p, err := cli.Seal(b, SealHeadroom, 1400, 5)
			if err != nil {
				t.Fatal(err)
			}
			pkts[i] = p
		}
		i := 0
		if a := testing.AllocsPerRun(200, func() {
			if _, err := srv.Open(pkts[i]); err != nil {
				t.Fatal(err)
			}
			i++
		}); a != 0 {
			t.Errorf("%v: Open allocates %v per packet", v, a)
		}
	}
}
