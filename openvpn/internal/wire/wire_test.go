package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
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

// Lab vectors from stock openvpn 2.6.14 (see the protocol notes, 9.2/9.3).
func tlsCryptLabKey(t testing.TB) *StaticKey {
	k := new(StaticKey)
	copy(k[128:], unhex(t, "834f820dd99fea8be06874123acccbc4607630dc8f2506ebe928db6c14f7a7df")) // c2s Ke
	copy(k[192:], unhex(t, "f4b371e545f514d728e5a2a0867dcce71768925166545a6384b68797f6734a68")) // c2s Ka
	copy(k[0:], unhex(t, "998e8d57a1eeb951ef5ff2cb5fee27b5a3787b7e381ef99aa0ed8cfb2b997def"))   // s2c Ke
	copy(k[64:], unhex(t, "255811105567f4fc982ea447a189f7346c5c3afbdba70c20bcfc83e6739ec687"))  // s2c Ka
	return k
}

const (
	labClientReset = "383a078d1817e7ca6e000000016b03886ca4f609caf6419830207bde23c12f3330f9edefe672a3b95155d31a33346eccfa559befdb70"
	labServerReset = "405b0e5dc2c4a2f101000000016b03886c0497c0436f826361a4a20ed6376b63989796a0815903423fd9fe05bb473cd3ccba46be90cc44ba02dad3773f97aabacfac"
)

func TestTLSCryptLabVectors(t *testing.T) {
	key := tlsCryptLabKey(t)
	prot := &Protection{Mode: ModeTLSCrypt, Key: key}
	srv, _ := NewCodec(prot, RoleServer, time.Now())
	cli, _ := NewCodec(prot, RoleClient, time.Now())

	p, err := srv.Decode(unhex(t, labClientReset))
	if err != nil {
		t.Fatalf("server decoding the stock client reset: %v", err)
	}
	clientSID := SessionID(unhex(t, "3a078d1817e7ca6e"))
	if p.Opcode != OpControlHardResetClientV2 || p.SessionID != clientSID || len(p.Acks) != 0 || p.MessageID != 0 || len(p.Payload) != 0 {
		t.Fatalf("client reset decoded as %+v", p)
	}
	q, err := cli.Decode(unhex(t, labServerReset))
	if err != nil {
		t.Fatalf("client decoding the stock server reset: %v", err)
	}
	if q.Opcode != OpControlHardResetServerV2 || !reflect.DeepEqual(q.Acks, []uint32{0}) || q.RemoteSessionID != clientSID || q.MessageID != 0 {
		t.Fatalf("server reset decoded as %+v", q)
	}
	// Re-encode with the same replay id and time: identical bytes.
	enc, _ := NewCodec(prot, RoleClient, time.Now())
	enc.SetTime(1, 0x6b03886c)
	b, err := enc.Encode(nil, &p)
	if err != nil || hex.EncodeToString(b) != labClientReset {
		t.Fatalf("client reset re-encoded\n %x\nwant\n %s", b, labClientReset)
	}
	enc2, _ := NewCodec(prot, RoleServer, time.Now())
	enc2.SetTime(1, 0x6b03886c)
	b, err = enc2.Encode(nil, &q)
	if err != nil || hex.EncodeToString(b) != labServerReset {
		t.Fatalf("server reset re-encoded\n %x\nwant\n %s", b, labServerReset)
	}
	// Replay of the same packet, and a wrong key.
	if _, err := srv.Decode(unhex(t, labClientReset)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	other, _ := GenerateStaticKey(rand.Reader)
	wrong, _ := NewCodec(&Protection{Mode: ModeTLSCrypt, Key: other}, RoleServer, time.Now())
	if _, err := wrong.Decode(unhex(t, labClientReset)); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestTLSAuthLabVector(t *testing.T) {
	key := new(StaticKey)
	copy(key.hmacKey(1), unhex(t, "f4b371e545f514d728e5a2a0867dcce717689251"))
	want := "38e11defd0770ab6ba0826cb692ffc4ef587d785cd82e96b1382c993df000000016b0387040000000000"
	cli, _ := NewCodec(&Protection{Mode: ModeTLSAuth, Key: key, KeyDirection: 1}, RoleClient, time.Now())
	cli.SetTime(1, 0x6b038704)
	b, err := cli.Encode(nil, &Packet{Opcode: OpControlHardResetClientV2, SessionID: SessionID(unhex(t, "e11defd0770ab6ba"))})
	if err != nil || hex.EncodeToString(b) != want {
		t.Fatalf("tls-auth reset\n %x\nwant\n %s", b, want)
	}
	srv, _ := NewCodec(&Protection{Mode: ModeTLSAuth, Key: key, KeyDirection: 0}, RoleServer, time.Now())
	if _, err := srv.Decode(b); err != nil {
		t.Fatalf("server decode: %v", err)
	}
	nodir, _ := NewCodec(&Protection{Mode: ModeTLSAuth, Key: key, KeyDirection: -1}, RoleServer, time.Now())
	if _, err := nodir.Decode(unhex(t, want)); !errors.Is(err, ErrAuth) {
		t.Fatalf("without key direction the keys[0] half is used: %v", err)
	}
}

func TestStockKeyFiles(t *testing.T) {
	tc, err := os.ReadFile("testdata/tc.key")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseStaticKey(tc)
	if err != nil {
		t.Fatal(err)
	}
	if k2, err := ParseStaticKey(k.Marshal()); err != nil || *k2 != *k {
		t.Fatalf("Marshal round trip: %v", err)
	}
	sb, _ := os.ReadFile("testdata/v2server.key")
	cb, _ := os.ReadFile("testdata/v2client.key")
	sk, err := ParseV2ServerKey(sb)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := ParseV2ClientKey(cb)
	if err != nil {
		t.Fatal(err)
	}
	kc, md, err := sk.UnwrapClientKey(ck.WKc)
	if err != nil {
		t.Fatalf("unwrapping a key made by stock openvpn: %v", err)
	}
	if *kc != ck.Key || len(md) != 9 || md[0] != 1 {
		t.Fatalf("unwrapped key differs or metadata %x", md)
	}
	if !bytes.Equal(sk.Marshal(), sb) {
		t.Fatalf("server key Marshal\n%s\nwant\n%s", sk.Marshal(), sb)
	}
	if !bytes.Equal(ck.Marshal(), cb) {
		t.Fatalf("client key Marshal differs from stock output")
	}
	ours, err := GenerateV2ClientKey(sk, nil, time.Unix(1700000000, 0), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, md, err := sk.UnwrapClientKey(ours.WKc); err != nil || !bytes.Equal(md, unhex(t, "01000000006553f100")) {
		t.Fatalf("our wrap: %v %x", err, md)
	}
	bad := append([]byte(nil), ours.WKc...)
	bad[40] ^= 1
	if _, _, err := sk.UnwrapClientKey(bad); !errors.Is(err, ErrAuth) {
		t.Fatalf("tampered WKc: %v", err)
	}
}

func codecs(t testing.TB, mode Mode) (cli, srv *Codec) {
	key, _ := GenerateStaticKey(rand.Reader)
	sk, _ := GenerateV2ServerKey(rand.Reader)
	ck, _ := GenerateV2ClientKey(sk, nil, time.Now(), rand.Reader)
	cp := &Protection{Mode: mode, Key: key, KeyDirection: 1, ClientKey: ck}
	sp := &Protection{Mode: mode, Key: key, KeyDirection: 0, ServerKey: sk}
	var err error
	if cli, err = NewCodec(cp, RoleClient, time.Now()); err != nil {
		t.Fatal(err)
	}
	if srv, err = NewCodec(sp, RoleServer, time.Now()); err != nil {
		t.Fatal(err)
	}
	return cli, srv
}

func TestRoundTripAllModes(t *testing.T) {
	for _, mode := range []Mode{ModeNone, ModeTLSAuth, ModeTLSCrypt, ModeTLSCryptV2} {
		cli, srv := codecs(t, mode)
		first := OpControlHardResetClientV2
		if mode == ModeTLSCryptV2 {
			first = OpControlHardResetClientV3
		}
		pkts := []Packet{
			{Opcode: first, SessionID: SessionID{1, 2, 3, 4, 5, 6, 7, 8}},
			{Opcode: OpControlV1, KeyID: 0, SessionID: SessionID{1}, Acks: []uint32{0}, RemoteSessionID: SessionID{9}, MessageID: 1, Payload: []byte("client hello")},
			{Opcode: OpAckV1, KeyID: 2, SessionID: SessionID{1}, Acks: []uint32{4, 3, 2, 1, 0, 7, 8, 9}, RemoteSessionID: SessionID{9}},
			{Opcode: OpControlSoftResetV1, KeyID: 7, SessionID: SessionID{1}, MessageID: 0},
		}
		for i := range pkts {
			b, err := cli.Encode(nil, &pkts[i])
			if err != nil {
				t.Fatalf("mode %d packet %d: %v", mode, i, err)
			}
			got, err := srv.Decode(b)
			if err != nil {
				t.Fatalf("mode %d packet %d: decode %v", mode, i, err)
			}
			got.WKc = nil
			if len(got.Payload) == 0 {
				got.Payload = nil
			}
			if !reflect.DeepEqual(got, pkts[i]) {
				t.Fatalf("mode %d packet %d:\n got %+v\nwant %+v", mode, i, got, pkts[i])
			}
		}
		// server to client
		b, _ := srv.Encode(nil, &Packet{Opcode: OpControlHardResetServerV2, SessionID: SessionID{5}, Acks: []uint32{0}, RemoteSessionID: SessionID{1}})
		if _, err := cli.Decode(b); err != nil {
			t.Fatalf("mode %d: client decode: %v", mode, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	_, srv := codecs(t, ModeNone)
	for _, b := range [][]byte{nil, {0x38}, {0x48, 1, 2, 3, 4, 5, 6, 7, 8, 0}, append([]byte{0x38, 1, 2, 3, 4, 5, 6, 7, 8, 9}, make([]byte, 40)...)} {
		if _, err := srv.Decode(b); err == nil {
			t.Fatalf("Decode(%x) accepted", b)
		}
	}
	cli, _ := codecs(t, ModeNone)
	if _, err := cli.Encode(nil, &Packet{Opcode: OpControlV1, Acks: make([]uint32, 9)}); err == nil {
		t.Fatal("9 ACKs encoded")
	}
}

func FuzzParseStaticKey(f *testing.F) {
	k, _ := GenerateStaticKey(rand.Reader)
	f.Add(k.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseStaticKey(data)
		if err != nil {
			return
		}
		if k2, err := ParseStaticKey(k.Marshal()); err != nil || *k2 != *k {
			t.Fatal("round trip")
		}
	})
}

func FuzzUnwrapClientKey(f *testing.F) {
	sk := new(V2ServerKey)
	ck, _ := GenerateV2ClientKey(sk, nil, time.Now(), rand.Reader)
	f.Add(ck.WKc)
	f.Fuzz(func(t *testing.T, data []byte) {
		kc, md, err := sk.UnwrapClientKey(data)
		if err != nil {
			return
		}
		w, err := sk.WrapClientKey(kc, md, nil)
		if err != nil || !bytes.Equal(w, data) {
			t.Fatal("unwrapped key does not wrap back to the input")
		}
	})
}

func BenchmarkTLSCryptEncodeDecode(b *testing.B) {
	cli, srv := codecs(b, ModeTLSCrypt)
	p := &Packet{Opcode: OpControlV1, SessionID: SessionID{1}, Acks: []uint32{1}, RemoteSessionID: SessionID{2}, Payload: make([]byte, 1000)}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out, err := cli.Encode(buf[:0], p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := srv.Decode(out); err != nil {
			b.Fatal(err)
		}
	}
}
