package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// fuzzProtections loads the client and server protections of every capture.
func fuzzProtections(f *testing.F) (cps, sps []*Protection) {
	for _, cc := range captureCases {
		dir := filepath.Join("testdata", "capture", cc.name)
		cps = append(cps, cc.cli(f, dir))
		sps = append(sps, cc.srv(f, dir))
	}
	return cps, sps
}

// FuzzDecode feeds arbitrary bytes to codecs of every protection (the five
// capture setups plus none), as client and as server. Invariants: no panic;
// a failed Decode leaves the bytes alone unless it got past authentication;
// an accepted packet re-encodes, with the same replay id, to the input.
func FuzzDecode(f *testing.F) {
	cps, sps := fuzzProtections(f)
	cps, sps = append(cps, &Protection{}), append(sps, &Protection{})
	for i, cc := range captureCases {
		for _, c := range readPcap(f, filepath.Join("testdata", "capture", cc.name+".pcap"), cc.port) {
			f.Add(uint8(i), !c.fromClient, c.data)
		}
	}
	f.Add(uint8(len(captureCases)), false, unhex(f, "38e11defd0770ab6ba0000000000"))
	f.Add(uint8(len(captureCases)), false, unhex(f, "28e11defd0770ab6ba01000000020102030405060708"))
	f.Fuzz(func(t *testing.T, which uint8, toClient bool, data []byte) {
		i := int(which) % len(cps)
		decRole, encRole, decProt, encProt := RoleServer, RoleClient, sps[i], cps[i]
		if toClient {
			decRole, encRole, decProt, encProt = RoleClient, RoleServer, cps[i], sps[i]
		}
		dec, err := NewCodec(decProt, decRole, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		in := append([]byte(nil), data...)
		p, err := dec.Decode(in)
		if err != nil {
			if errors.Is(err, ErrAuth) && !bytes.Equal(in, data) {
				t.Fatal("Decode failing authentication changed its input")
			}
			return
		}
		if len(p.Acks) > MaxAcks || p.KeyID > 7 || !p.Opcode.IsControl() {
			t.Fatalf("accepted %+v", p)
		}
		op, kid, sid, err := PeekHeader(data)
		if err != nil || op != p.Opcode || kid != p.KeyID || sid != p.SessionID {
			t.Fatalf("PeekHeader disagrees: %v %d %x %v", op, kid, sid, err)
		}
		enc, err := NewCodec(encProt, encRole, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if encProt.Mode == ModeTLSCryptV2 && encRole == RoleServer {
			if err := enc.setCryptKey(&decProt.ClientKey.Key); err != nil {
				t.Fatal(err)
			}
		}
		pid, ts := dec.LastReplayID()
		enc.SetTime(pid, ts)
		if decProt.Mode == ModeTLSCryptV2 && decRole == RoleServer && p.WKc != nil &&
			!bytes.Equal(p.WKc, encProt.ClientKey.WKc) {
			t.Fatalf("server accepted a WKc that is not the client's")
		}
		p.WKc = nil
		out, err := enc.Encode(nil, &p)
		if err != nil {
			t.Fatalf("accepted packet does not encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("accepted packet re-encodes differently\n %x\nwant\n %x", out, data)
		}
	})
}

// FuzzRoundTrip encodes an arbitrary packet in every mode, decodes it on the
// other side, and wants the same packet back.
func FuzzRoundTrip(f *testing.F) {
	cps, sps := fuzzProtections(f)
	cps, sps = append(cps, &Protection{}), append(sps, &Protection{})
	f.Add(uint8(0), false, uint8(OpControlHardResetClientV2), uint8(0), []byte{}, uint64(1), uint64(0), uint32(0), []byte{})
	f.Add(uint8(4), false, uint8(OpControlHardResetClientV3), uint8(0), []byte{}, uint64(1), uint64(0), uint32(0), []byte{})
	f.Add(uint8(1), true, uint8(OpControlV1), uint8(3), []byte{0, 0, 0, 1, 0, 0, 0, 2}, uint64(7), uint64(9), uint32(5), []byte("hello"))
	f.Add(uint8(2), false, uint8(OpAckV1), uint8(0), []byte{0, 0, 0, 1}, uint64(7), uint64(9), uint32(0), []byte{})
	f.Add(uint8(4), false, uint8(OpControlWKCV1), uint8(0), []byte{}, uint64(7), uint64(9), uint32(1), []byte{0x16, 3, 1})
	f.Fuzz(func(t *testing.T, which uint8, toClient bool, op, kid uint8, acks []byte, sid, rsid uint64, msgID uint32, payload []byte) {
		i := int(which) % len(cps)
		encRole, decRole, encProt, decProt := RoleClient, RoleServer, cps[i], sps[i]
		if toClient {
			encRole, decRole, encProt, decProt = RoleServer, RoleClient, sps[i], cps[i]
		}
		p := Packet{Opcode: Opcode(op % 16), KeyID: kid % 8, MessageID: msgID, Payload: payload}
		binary.BigEndian.PutUint64(p.SessionID[:], sid)
		for len(acks) >= 4 && len(p.Acks) < MaxAcks {
			p.Acks = append(p.Acks, binary.BigEndian.Uint32(acks))
			acks = acks[4:]
		}
		if len(p.Acks) > 0 {
			binary.BigEndian.PutUint64(p.RemoteSessionID[:], rsid)
		}
		if p.Opcode == OpAckV1 {
			p.MessageID, p.Payload = 0, nil
		}
		enc, _ := NewCodec(encProt, encRole, time.Now())
		dec, _ := NewCodec(decProt, decRole, time.Now())
		if encProt.Mode == ModeTLSCryptV2 {
			// Let the server learn Kc the way it does on the wire.
			srv, cli := enc, dec
			if !toClient {
				srv, cli = dec, enc
			}
			hello, err := cli.Encode(nil, &Packet{Opcode: OpControlHardResetClientV3, SessionID: SessionID{1}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Decode(hello); err != nil {
				t.Fatal(err)
			}
		}
		b, err := enc.Encode(nil, &p)
		if !p.Opcode.IsControl() {
			if err == nil {
				t.Fatalf("encoded non-control opcode %v", p.Opcode)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.Decode(append([]byte(nil), b...))
		if err != nil {
			t.Fatalf("%v: decode: %v", p.Opcode, err)
		}
		if decRole == RoleServer && decProt.Mode == ModeTLSCryptV2 &&
			(p.Opcode == OpControlHardResetClientV3 || p.Opcode == OpControlWKCV1) {
			if !bytes.Equal(got.WKc, encProt.ClientKey.WKc) {
				t.Fatal("WKc lost")
			}
		}
		got.WKc = nil
		if len(got.Payload) == 0 && len(p.Payload) == 0 {
			got.Payload, p.Payload = nil, nil
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, p)
		}
		if _, err := dec.Decode(b); encProt.Mode != ModeNone && !errors.Is(err, ErrReplay) {
			t.Fatalf("second decode: %v", err)
		}
	})
}

// FuzzParseV2Keys checks the PEM key parsers: no panic, and what parses
// marshals and parses back to the same key.
func FuzzParseV2Keys(f *testing.F) {
	dir := filepath.Join("testdata", "capture", "tls-crypt-v2")
	f.Add(readFile(f, filepath.Join(dir, "server.key")))
	f.Add(readFile(f, filepath.Join(dir, "client.key")))
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := ParseV2ServerKey(data); err == nil {
			if k2, err := ParseV2ServerKey(k.Marshal()); err != nil || *k2 != *k {
				t.Fatalf("server key round trip: %v", err)
			}
		}
		if k, err := ParseV2ClientKey(data); err == nil {
			if k2, err := ParseV2ClientKey(k.Marshal()); err != nil || k2.Key != k.Key || !bytes.Equal(k2.WKc, k.WKc) {
				t.Fatalf("client key round trip: %v", err)
			}
		}
	})
}

func BenchmarkTLSCryptEncode(b *testing.B) {
	cli, _ := codecs(b, ModeTLSCrypt)
	p := &Packet{Opcode: OpControlV1, SessionID: SessionID{1}, Acks: []uint32{1}, RemoteSessionID: SessionID{2}, Payload: make([]byte, 1000)}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(p.Payload)))
	for b.Loop() {
		if _, err := cli.Encode(buf[:0], p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTLSCryptDecode(b *testing.B) {
	cli, srv := codecs(b, ModeTLSCrypt)
	p := &Packet{Opcode: OpControlV1, SessionID: SessionID{1}, Acks: []uint32{1}, RemoteSessionID: SessionID{2}, Payload: make([]byte, 1000)}
	wire, err := cli.Encode(nil, p)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, len(wire))
	b.ReportAllocs()
	b.SetBytes(int64(len(p.Payload)))
	for b.Loop() {
		copy(buf, wire)
		srv.window.Reset() // the same replay id every time
		if _, err := srv.Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNewCodecCheap bounds what a server spends on a codec for a packet it
// then drops.
func TestNewCodecCheap(t *testing.T) {
	key, _ := GenerateStaticKey(rand.Reader)
	bad := make([]byte, 100)
	bad[0] = JoinOpcode(OpControlHardResetClientV2, 0)
	for _, prot := range []*Protection{{Mode: ModeTLSCrypt, Key: key}, {Mode: ModeTLSAuth, Key: key, KeyDirection: 0}} {
		allocs := testing.AllocsPerRun(100, func() {
			c, err := NewCodec(prot, RoleServer, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Decode(bad); !errors.Is(err, ErrAuth) {
				t.Fatal(err)
			}
		})
		if allocs > 20 {
			t.Fatalf("mode %d: %v allocations for NewCodec+failed Decode", prot.Mode, allocs)
		}
	}
}
