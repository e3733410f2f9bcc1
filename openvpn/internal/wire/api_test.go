package wire

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestOpcodes(t *testing.T) {
	control := map[Opcode]bool{3: true, 4: true, 5: true, 7: true, 8: true, 10: true, 11: true}
	for o := Opcode(0); o < 32; o++ {
		if o.IsControl() != control[o] {
			t.Errorf("%v.IsControl() = %v", o, o.IsControl())
		}
		if o.IsData() != (o == 6 || o == 9) {
			t.Errorf("%v.IsData() = %v", o, o.IsData())
		}
		for kid := uint8(0); kid < 8; kid++ {
			if g, k := SplitOpcode(JoinOpcode(o, kid)); g != o || k != kid {
				t.Fatalf("Split(Join(%d, %d)) = %d, %d", o, kid, g, k)
			}
		}
	}
	if JoinOpcode(OpControlHardResetClientV2, 0) != 0x38 || JoinOpcode(OpDataV2, 1) != 0x49 || JoinOpcode(OpControlHardResetClientV3, 0) != 0x50 {
		t.Fatal("JoinOpcode bytes")
	}
	if OpControlWKCV1.String() != "P_CONTROL_WKC_V1" || Opcode(31).String() != "Opcode(31)" {
		t.Fatal("String")
	}
}

func TestNewSessionID(t *testing.T) {
	// Eight zero bytes first: NewSessionID must draw again.
	r := io.MultiReader(bytes.NewReader(make([]byte, 8)), bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0, 9}))
	s, err := NewSessionID(r)
	if err != nil || s != (SessionID{7: 9}) || s.IsZero() {
		t.Fatalf("%x %v", s, err)
	}
	if _, err := NewSessionID(bytes.NewReader(nil)); err == nil {
		t.Fatal("empty reader gave a session id")
	}
	if !(SessionID{}).IsZero() {
		t.Fatal("IsZero")
	}
}

func TestParseStaticKeyFormats(t *testing.T) {
	k, _ := GenerateStaticKey(rand.Reader)
	text := string(k.Marshal())
	// CRLF, a comment before, 64-digit lines.
	var b strings.Builder
	b.WriteString("# lab key\r\n# more\r\n-----BEGIN OpenVPN Static key V1-----\r\n")
	hexes := strings.ReplaceAll(strings.Split(strings.Split(text, "-----\n")[1], "-----END")[0], "\n", "")
	for i := 0; i < len(hexes); i += 64 {
		b.WriteString(strings.ToUpper(hexes[i:i+64]) + "\r\n")
	}
	b.WriteString("-----END OpenVPN Static key V1-----\r\n")
	k2, err := ParseStaticKey([]byte(b.String()))
	if err != nil || *k2 != *k {
		t.Fatalf("CRLF/long lines: %v", err)
	}
	for _, bad := range []string{
		"", "-----BEGIN OpenVPN Static key V1-----\nabcd\n-----END OpenVPN Static key V1-----\n",
		strings.Replace(text, "-----END", "zz\n-----END", 1),
		strings.Replace(text, "-----END", "00\n-----END", 1),
		strings.Replace(text, "-----END OpenVPN Static key V1-----", "", 1),
	} {
		if _, err := ParseStaticKey([]byte(bad)); !errors.Is(err, ErrKey) {
			t.Errorf("accepted %q: %v", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	key := new(StaticKey)
	for _, c := range []struct {
		p    Protection
		role Role
		ok   bool
	}{
		{Protection{}, RoleClient, true},
		{Protection{Mode: ModeTLSAuth}, RoleClient, false},
		{Protection{Mode: ModeTLSAuth, Key: key, KeyDirection: 2}, RoleClient, false},
		{Protection{Mode: ModeTLSAuth, Key: key, Digest: crypto.MD5}, RoleClient, false},
		{Protection{Mode: ModeTLSAuth, Key: key, Digest: crypto.SHA512, KeyDirection: -1}, RoleServer, true},
		{Protection{Mode: ModeTLSCrypt}, RoleServer, false},
		{Protection{Mode: ModeTLSCrypt, Key: key}, RoleServer, true},
		{Protection{Mode: ModeTLSCryptV2, ServerKey: new(V2ServerKey)}, RoleClient, false},
		{Protection{Mode: ModeTLSCryptV2, ServerKey: new(V2ServerKey)}, RoleServer, true},
		{Protection{Mode: ModeTLSCryptV2, ClientKey: new(V2ClientKey)}, RoleServer, false},
		{Protection{Mode: ModeTLSCryptV2, ClientKey: new(V2ClientKey)}, RoleClient, false}, // no WKc
		{Protection{Mode: ModeTLSCryptV2, ClientKey: &V2ClientKey{WKc: make([]byte, 299)}}, RoleClient, true},
		{Protection{Mode: 9}, RoleServer, false},
	} {
		if err := c.p.Validate(c.role); (err == nil) != c.ok {
			t.Errorf("Validate(%+v, %d) = %v", c.p, c.role, err)
		}
		if _, err := NewCodec(&c.p, c.role, time.Now()); (err == nil) != c.ok {
			t.Errorf("NewCodec(%+v, %d) = %v", c.p, c.role, err)
		}
	}
}

func TestOverhead(t *testing.T) {
	key, _ := GenerateStaticKey(rand.Reader)
	p := &Packet{Opcode: OpControlV1, Acks: []uint32{1, 2}, Payload: []byte("xyz")}
	plain, _ := NewCodec(&Protection{}, RoleClient, time.Now())
	base, _ := plain.Encode(nil, p)
	for _, c := range []struct {
		prot Protection
		want int
	}{
		{Protection{}, 0},
		{Protection{Mode: ModeTLSAuth, Key: key}, 28},
		{Protection{Mode: ModeTLSAuth, Key: key, Digest: crypto.SHA256}, 40},
		{Protection{Mode: ModeTLSAuth, Key: key, Digest: crypto.SHA384}, 56},
		{Protection{Mode: ModeTLSAuth, Key: key, Digest: crypto.SHA512}, 72},
		{Protection{Mode: ModeTLSCrypt, Key: key}, 40},
	} {
		cdc, err := NewCodec(&c.prot, RoleClient, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		b, err := cdc.Encode(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		if cdc.Overhead() != c.want || len(b)-len(base) != c.want {
			t.Errorf("mode %d digest %v: Overhead %d, packet grew by %d, want %d", c.prot.Mode, c.prot.Digest, cdc.Overhead(), len(b)-len(base), c.want)
		}
	}
}

func TestEncodeErrorsKeepDst(t *testing.T) {
	cli, _ := codecs(t, ModeTLSCrypt)
	dst := []byte("prefix")
	for _, p := range []Packet{
		{Opcode: OpDataV2},
		{Opcode: OpControlV1, KeyID: 8},
		{Opcode: OpControlV1, Acks: make([]uint32, MaxAcks+1)},
		{Opcode: OpAckV1, Acks: []uint32{1}, Payload: []byte{1}},
	} {
		out, err := cli.Encode(dst, &p)
		if !errors.Is(err, ErrMalformed) || string(out) != "prefix" {
			t.Errorf("Encode(%+v) = %q, %v", p, out, err)
		}
	}
	// The failed calls consumed no replay ids: the next packet has id 1.
	b, err := cli.Encode(nil, &Packet{Opcode: OpControlV1})
	if err != nil || !bytes.Equal(b[9:13], []byte{0, 0, 0, 1}) {
		t.Fatalf("first replay id %x, %v", b[9:13], err)
	}
	// A tls-crypt-v2 server has nothing to send with before Kc.
	sk, _ := GenerateV2ServerKey(rand.Reader)
	srv, _ := NewCodec(&Protection{Mode: ModeTLSCryptV2, ServerKey: sk}, RoleServer, time.Now())
	if _, err := srv.Encode(nil, &Packet{Opcode: OpControlHardResetServerV2}); !errors.Is(err, ErrKey) {
		t.Fatalf("v2 server before Kc: %v", err)
	}
}

func TestDecodeReliableEdges(t *testing.T) {
	_, srv := codecs(t, ModeNone)
	sid := "0102030405060708"
	for _, c := range []struct {
		hex string
		err error
	}{
		{"20" + sid + "09", ErrMalformed},                      // 9 ACKs
		{"28" + sid + "01000000", ErrShort},                    // ACK list cut
		{"28" + sid + "0100000001", ErrShort},                  // remote sid missing
		{"28" + sid + "00" + "000000", ErrMalformed},           // P_ACK_V1 has no message id
		{"20" + sid + "00" + "000000", ErrShort},               // message id cut
		{"20" + sid + "00", ErrShort},                          // message id missing
		{"30" + sid + "00000000", ErrMalformed},                // P_DATA_V1 is not control
		{"48" + sid + "00000000", ErrMalformed},                // P_DATA_V2 is not control
		{"28" + sid + "00", nil},                               // P_ACK_V1 with no ACKs: legal, useless
		{"28" + sid + "0100000007" + sid + "ff", ErrMalformed}, // payload after an ACK
	} {
		_, err := srv.Decode(unhex(t, c.hex))
		if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
			t.Errorf("Decode(%s) = %v, want %v", c.hex, err, c.err)
		}
	}
	p, err := srv.Decode(unhex(t, "20"+sid+"02000000070000000811223344556677880000002a"+"abcd"))
	if err != nil || p.Opcode != OpControlV1 || len(p.Acks) != 2 || p.Acks[1] != 8 || p.RemoteSessionID != (SessionID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}) || p.MessageID != 42 || !bytes.Equal(p.Payload, []byte{0xab, 0xcd}) {
		t.Fatalf("%+v %v", p, err)
	}
}

// TestV2ReplayedWKc: a genuine WKc glued to a forged packet must not make the
// server codec adopt the client key.
func TestV2ReplayedWKc(t *testing.T) {
	cli, srv := codecs(t, ModeTLSCryptV2)
	b, _ := cli.Encode(nil, &Packet{Opcode: OpControlHardResetClientV3, SessionID: SessionID{1}})
	forged := append([]byte(nil), b...)
	forged[20] ^= 1 // inside the tag
	if _, err := srv.Decode(forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged: %v", err)
	}
	if srv.ClientMetadata() != nil {
		t.Fatal("metadata adopted from a failed packet")
	}
	if _, err := srv.Encode(nil, &Packet{Opcode: OpControlHardResetServerV2}); !errors.Is(err, ErrKey) {
		t.Fatalf("server can send after a forged packet: %v", err)
	}
	if _, err := srv.Decode(b); err != nil {
		t.Fatalf("genuine packet after the forged one: %v", err)
	}
	if md := srv.ClientMetadata(); len(md) != 9 || md[0] != 1 {
		t.Fatalf("metadata %x", md)
	}
	// Later WKC_V1 packets carry the WKc again; it is stripped and ignored.
	w, _ := cli.Encode(nil, &Packet{Opcode: OpControlWKCV1, SessionID: SessionID{1}, MessageID: 1, Payload: []byte("hello")})
	p, err := srv.Decode(w)
	if err != nil || string(p.Payload) != "hello" || len(p.WKc) == 0 {
		t.Fatalf("WKC_V1: %+v %v", p, err)
	}
}

func TestEarlyNegotiationID(t *testing.T) {
	cli, srv := codecs(t, ModeTLSCryptV2)
	cli.SetTime(EarlyNegotiationPacketID, 0x6b000000)
	b, _ := cli.Encode(nil, &Packet{Opcode: OpControlHardResetClientV3, SessionID: SessionID{1}})
	if _, err := srv.Decode(b); err != nil {
		t.Fatal(err)
	}
	if pid, ts := srv.LastReplayID(); pid != 0x0f000001 || ts != 0x6b000000 {
		t.Fatalf("LastReplayID %#x %#x", pid, ts)
	}
	b, _ = cli.Encode(nil, &Packet{Opcode: OpControlV1, SessionID: SessionID{1}, MessageID: 1})
	if _, err := srv.Decode(b); err != nil {
		t.Fatal(err)
	}
	if pid, _ := srv.LastReplayID(); pid != 0x0f000002 {
		t.Fatalf("second id %#x", pid)
	}
}

func TestReplayTimestamp(t *testing.T) {
	cli, srv := codecs(t, ModeTLSAuth)
	send := func(pid, ts uint32) error {
		cli.SetTime(pid, ts)
		b, err := cli.Encode(nil, &Packet{Opcode: OpControlV1, SessionID: SessionID{1}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = srv.Decode(b)
		return err
	}
	for i, c := range []struct {
		pid, ts uint32
		ok      bool
	}{
		{5, 100, true}, {5, 100, false}, {3, 100, true}, {6, 99, false}, {1, 101, true}, {5, 100, false}, {2, 101, true},
	} {
		if err := send(c.pid, c.ts); (err == nil) != c.ok || err != nil && !errors.Is(err, ErrReplay) {
			t.Fatalf("step %d (pid %d ts %d): %v", i, c.pid, c.ts, err)
		}
	}
}
