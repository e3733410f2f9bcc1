package datachannel

import (
	"bytes"
	"crypto"
	"errors"
	"testing"
	"unsafe"
)

// within reports whether sub lies inside p[:len(p)].
func within(sub, p []byte) bool {
	if len(sub) == 0 {
		return true
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return s >= base && s+uintptr(len(sub)) <= base+uintptr(len(p))
}

// fuzzVariants are opened with client-side keys from vectorBlock; the seeds
// include valid packets sealed by the matching server-side keys, so the
// fuzzer starts from inputs that reach decryption and success.
var fuzzVariants = []variant{{AES128GCM, 0}, {AES256GCM, 0}, {ChaCha20Poly1305, 0}, {AES256CBC, 0}, {AES256CBC, crypto.SHA256}}

func FuzzOpen(f *testing.F) {
	f.Add(unhex(f, vecPacket))
	f.Add([]byte{0x30, 0, 0, 0, 1})
	f.Add([]byte{0x48})
	f.Add([]byte{})
	for _, v := range fuzzVariants {
		srv, err := NewKey(KeyConfig{Cipher: v.c, Auth: v.auth, Block: vectorBlock(f), Server: true})
		if err != nil {
			f.Fatal(err)
		}
		for _, peerID := range []uint32{0, NoPeerID} {
			for _, size := range []int{0, 5, 40} {
				pkt := seal(f, srv, bytes.Repeat([]byte{0x60}, size), peerID)
				// The seed must reach the success path of the target.
				cli, err := NewKey(KeyConfig{Cipher: v.c, Auth: v.auth, Block: vectorBlock(f)})
				if err != nil {
					f.Fatal(err)
				}
				if _, err := cli.Open(append([]byte(nil), pkt...)); err != nil {
					f.Fatalf("%v: seed does not open: %v", v, err)
				}
				f.Add(pkt)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range fuzzVariants {
			k, err := NewKey(KeyConfig{Cipher: v.c, Auth: v.auth, Block: vectorBlock(t)})
			if err != nil {
				t.Fatal(err)
			}
			for _, spare := range []int{0, 16} {
				pkt := make([]byte, len(data), len(data)+spare)
				copy(pkt, data)
				plain, err := k.Open(pkt)
				if err != nil {
					for _, known := range []error{ErrShort, ErrAuth, ErrReplay, ErrKeyID, ErrOpcode} {
						if errors.Is(err, known) {
							err = nil
						}
					}
					if err != nil {
						t.Fatalf("%v: unexpected error %v", v, err)
					}
					continue
				}
				if !within(plain, pkt) {
					t.Fatalf("%v: plaintext outside the packet", v)
				}
				// The same bytes are now a replay.
				again := append([]byte(nil), data...)
				if _, err := k.Open(again); !errors.Is(err, ErrReplay) {
					t.Fatalf("%v: second Open: %v", v, err)
				}
				// A fresh key opens again: packet ids are only state.
				k, _ = NewKey(KeyConfig{Cipher: v.c, Auth: v.auth, Block: vectorBlock(t)})
			}
		}
	})
}

func FuzzUnframe(f *testing.F) {
	for _, s := range [][]byte{{0xFB, 1, 2, 0x45}, {0xFB}, {0x50, 0}, {0x50, 1, 2}, {0xFA, 0x45}, {0x66, 1}, {0x69}, {0x45, 0, 0, 20}, {}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range append(allCompressions, Compression(9)) {
			p := append([]byte(nil), data...)
			got, err := c.Unframe(p)
			if err == nil {
				if !within(got, p) || len(got) > len(p) {
					t.Fatalf("%d: result outside the input", c)
				}
			} else if !errors.Is(err, ErrCompressed) && !errors.Is(err, ErrFraming) {
				t.Fatalf("%d: unexpected error %v", c, err)
			}
			// Round trip: any payload framed and unframed comes back.
			buf := make([]byte, FrameHeadroom+len(data)+FrameTailroom)
			copy(buf[FrameHeadroom:], data)
			off, n := c.Frame(buf, FrameHeadroom, len(data))
			if n < 0 {
				t.Fatalf("%d: Frame with documented room failed", c)
			}
			back, err := c.Unframe(buf[off : off+n])
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("%d: round trip %x -> %x -> %x, %v", c, data, buf[off:off+n], back, err)
			}
		}
	})
}
