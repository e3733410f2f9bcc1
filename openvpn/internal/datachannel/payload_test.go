package datachannel

import (
	"bytes"
	"errors"
	"testing"
)

var allCompressions = []Compression{CompressionNone, CompressionStub, CompressionLZO, CompressionStubV2}

func TestCompressionFramingWire(t *testing.T) {
	ip6 := unhex(t, vecPlain) // starts 60 00 00 00 00 08 3a ff
	for _, tc := range []struct {
		c    Compression
		want []byte
	}{
		{CompressionNone, ip6},
		// Observed from stock openvpn with "compress": fb000000 00083aff ... 60.
		{CompressionStub, append(append([]byte{0xFB}, ip6[1:]...), 0x60)},
		{CompressionLZO, append([]byte{0xFA}, ip6...)},
		{CompressionStubV2, ip6},
	} {
		buf := make([]byte, FrameHeadroom+len(ip6)+FrameTailroom)
		copy(buf[FrameHeadroom:], ip6)
		off, n := tc.c.Frame(buf, FrameHeadroom, len(ip6))
		if n < 0 || !bytes.Equal(buf[off:off+n], tc.want) {
			t.Fatalf("%d: framed %x", tc.c, buf[off:off+n])
		}
		got, err := tc.c.Unframe(buf[off : off+n])
		if err != nil || !bytes.Equal(got, ip6) {
			t.Fatalf("%d: unframed %x %v", tc.c, got, err)
		}
	}
	buf := []byte{0, 0, 0x50, 1}
	if off, n := CompressionStubV2.Frame(buf, 2, 2); off != 0 || n != 4 || !bytes.Equal(buf, []byte{0x50, 0, 0x50, 1}) {
		t.Fatalf("stub-v2 escape: %d %d %x", off, n, buf)
	}
}

func TestCompressionRoundTrip(t *testing.T) {
	for _, c := range allCompressions {
		for _, p := range [][]byte{{}, {0x45}, {0x45, 1, 2, 3}, {0x50}, {0x50, 9}, {0x60}, {0xFB, 0xFA}, {0x66, 0x69}} {
			buf := make([]byte, 8+len(p)+8)
			copy(buf[8:], p)
			off, n := c.Frame(buf, 8, len(p))
			if n < 0 {
				t.Fatalf("%d %x: no room?", c, p)
			}
			got, err := c.Unframe(buf[off : off+n])
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("%d %x: %x %v", c, p, got, err)
			}
		}
	}
}

func TestFrameWithoutRoom(t *testing.T) {
	for _, tc := range []struct {
		c        Compression
		buf      []byte
		off, n   int
		wantFail bool
	}{
		{CompressionLZO, []byte{0x45, 1}, 0, 2, true},
		{CompressionStub, []byte{0x45, 1}, 0, 2, true},
		{CompressionStubV2, []byte{0, 0x50, 1}, 1, 2, true},
		{CompressionStubV2, []byte{0x45, 1}, 0, 2, false},
		{CompressionNone, []byte{0x45, 1}, 0, 2, false},
		{CompressionNone, []byte{0x45, 1}, 0, 3, true},
		{CompressionNone, []byte{0x45, 1}, -1, 1, true},
		{CompressionStub, []byte{0x45, 1}, 3, 0, true},
		{CompressionLZO, nil, 0, 0, true},
	} {
		before := append([]byte(nil), tc.buf...)
		_, n := tc.c.Frame(tc.buf, tc.off, tc.n)
		if (n < 0) != tc.wantFail {
			t.Fatalf("%+v: n = %d", tc, n)
		}
		if n < 0 && !bytes.Equal(before, tc.buf) {
			t.Fatalf("%+v: failed Frame changed the buffer", tc)
		}
	}
	// The failure flows into Seal as ErrBuffer.
	cli, _ := pair(t, AES256GCM, 0)
	buf := make([]byte, 100)
	off, n := CompressionStub.Frame(buf[:60:60], 40, 20)
	if _, err := cli.Seal(buf[:60:60], off, n, 0); !errors.Is(err, ErrBuffer) {
		t.Fatalf("Seal after failed Frame: %v", err)
	}
}

func TestUnframeErrors(t *testing.T) {
	for _, tc := range []struct {
		c    Compression
		p    []byte
		want error
	}{
		{CompressionLZO, []byte{0x66, 1}, ErrCompressed},
		{CompressionLZO, []byte{0x45, 1}, ErrFraming},
		{CompressionLZO, nil, ErrFraming},
		{CompressionStub, []byte{0x69, 1}, ErrCompressed},
		{CompressionStub, []byte{0x66, 1}, ErrCompressed},
		{CompressionStub, []byte{0x45, 1}, ErrFraming},
		{CompressionStub, nil, ErrFraming},
		{CompressionStubV2, []byte{0x50, 1, 2}, ErrCompressed},
	} {
		if _, err := tc.c.Unframe(tc.p); !errors.Is(err, tc.want) {
			t.Fatalf("%d %x: %v, want %v", tc.c, tc.p, err, tc.want)
		}
	}
	if got, err := CompressionStub.Unframe([]byte{0xFA, 0x45}); err != nil || !bytes.Equal(got, []byte{0x45}) {
		t.Fatalf("stub with comp-lzo byte: %x %v", got, err)
	}
}

func TestMagic(t *testing.T) {
	if hex := "2a187bf3641eb4cb07ed2d0a981fc748"; !bytes.Equal(PingMagic[:], unhex(t, hex)) {
		t.Fatal("ping magic")
	}
	if hex := "287f346bd4ef7a812d56b8d3afc5459c"; !bytes.Equal(OCCMagic[:], unhex(t, hex)) {
		t.Fatal("OCC magic")
	}
	if !IsPing(PingMagic[:]) || IsPing(OCCMagic[:]) || IsPing(append(PingMagic[:], 0)) || IsPing(PingMagic[:15]) {
		t.Fatal("IsPing")
	}
	if !IsOCCExit(append(OCCMagic[:], 6)) || !IsOCCExit(append(OCCMagic[:], 6, 1)) || IsOCCExit(append(OCCMagic[:], 5)) || IsOCCExit(OCCMagic[:]) || IsOCCExit(append(PingMagic[:], 6)) {
		t.Fatal("IsOCCExit")
	}
}

// TestFramedDataPath runs a payload through the whole send and receive path
// with the documented room: Frame, Seal, Open, Unframe.
func TestFramedDataPath(t *testing.T) {
	for _, v := range variants {
		for _, c := range allCompressions {
			cli, srv := pairAuth(t, v.c, v.auth, 0)
			payload := append([]byte{0x50}, bytes.Repeat([]byte{0x45}, 99)...)
			head := FrameHeadroom + SealHeadroom
			buf := make([]byte, head+len(payload), head+len(payload)+FrameTailroom+SealTailroom)
			copy(buf[head:], payload)
			off, n := c.Frame(buf, head, len(payload))
			pkt, err := cli.Seal(buf, off, n, 0)
			if err != nil {
				t.Fatalf("%v %d: %v", v, c, err)
			}
			plain, err := srv.Open(pkt)
			if err != nil {
				t.Fatalf("%v %d: %v", v, c, err)
			}
			got, err := c.Unframe(plain)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("%v %d: %x %v", v, c, got, err)
			}
		}
	}
}
