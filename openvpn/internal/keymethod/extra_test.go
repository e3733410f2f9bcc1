package keymethod

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// Options strings of stock 2.6.14 (notes 3.3).
const (
	stockClientOptions = "V4,dev-type null,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-client"
	stockServerOptions = "V4,dev-type tun,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-server"
)

func TestStockServerMessageRoundTrip(t *testing.T) {
	m := &Message{Options: stockServerOptions}
	for i := range m.Random1 {
		m.Random1[i] = byte(3 * i)
	}
	b, err := m.MarshalServer()
	if err != nil {
		t.Fatal(err)
	}
	// The last six bytes are the three absent strings of a 2.6 server.
	if tail := b[len(b)-6:]; string(tail) != "\x00\x00\x00\x00\x00\x00" {
		t.Fatalf("tail %x", tail)
	}
	got, err := ParseServer(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("%v\n got %+v\nwant %+v", err, got, m)
	}
}

func TestServerMarshalDropsClientFields(t *testing.T) {
	m := &Message{Options: "V4", HasAuth: true, Username: "u", Password: "p", PeerInfo: "IV_VER=1\n"}
	b, err := m.MarshalServer()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseServer(b)
	if err != nil || got.HasAuth || got.Username != "" || got.PeerInfo != "" {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestClientWithoutAuth(t *testing.T) {
	m := clientMessage()
	m.HasAuth, m.Username, m.Password = false, "", ""
	b, err := m.MarshalClient()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseClient(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("%v %+v", err, got)
	}
	// A client that stops after the options (pre-2.2 style) still parses.
	short := b[:117+2+len(m.Options)+1]
	got, err = ParseClient(short)
	if err != nil || got.Options != m.Options || got.HasAuth || got.PeerInfo != "" {
		t.Fatalf("%v %+v", err, got)
	}
}

func TestStringLimits(t *testing.T) {
	m := clientMessage()
	m.Password = strings.Repeat("p", 4095) // 4095 + NUL = 4096: accepted
	b, err := m.MarshalClient()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseClient(b); err != nil || got.Password != m.Password {
		t.Fatalf("4095-byte password: %v", err)
	}
	m.Password = strings.Repeat("q", 4096)
	_, err = m.MarshalClient()
	if !errors.Is(err, ErrTooLong) || strings.Contains(err.Error(), "qqqq") {
		t.Fatalf("4096-byte password: %v", err)
	}
	// A length that overruns the record.
	m.Password = "secret-pw"
	b, _ = m.MarshalClient()
	off := 117 + 2 + len(m.Options) + 1 + 2 + len(m.Username) + 1
	b[off], b[off+1] = 0x0F, 0xFF
	if _, err := ParseClient(b); !errors.Is(err, ErrShort) || strings.Contains(err.Error(), "secret-pw") {
		t.Fatalf("overrun: %v", err)
	}
	b[off], b[off+1] = 0x20, 0x00 // 8192 > 4096
	if _, err := ParseClient(b); !errors.Is(err, ErrTooLong) {
		t.Fatalf("too long: %v", err)
	}
	// Missing NUL.
	b, _ = m.MarshalClient()
	b[off+2+len(m.Password)] = 'x'
	if _, err := ParseClient(b); !errors.Is(err, ErrMalformed) || strings.Contains(err.Error(), "secret-pw") {
		t.Fatalf("no NUL: %v", err)
	}
	if _, err := (&Message{PreMaster: make([]byte, 47)}).MarshalClient(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short pre-master: %v", err)
	}
}

func TestParseLeadingWord(t *testing.T) {
	b, _ := (&Message{Options: "V4"}).MarshalServer()
	b[0] = 1
	if _, err := ParseServer(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%v", err)
	}
	for n := 0; n < 71; n++ {
		if _, err := ParseServer(b[:n]); err == nil {
			t.Fatalf("%d bytes parsed", n)
		}
	}
}

func TestPeerInfoTolerant(t *testing.T) {
	p := ParsePeerInfo("garbage\nIV_PROTO=x\nIV_VER=2.5.0\r\n=novalue\nUV_NAME=bob\nIV_NCP=2\n")
	if p.Version != "2.5.0" || p.NCP != 2 || p.Raw["UV_NAME"] != "bob" || p.Proto != 0 {
		t.Fatalf("%+v", p)
	}
	if _, ok := p.Raw["garbage"]; ok {
		t.Fatal("line without = kept")
	}
}

func TestPeerInfoMarshalOurClient(t *testing.T) {
	p := PeerInfo{Version: "remotegate", Platform: "linux", Proto: ProtoDataV2 | ProtoRequestPush | ProtoTLSKeyExport | ProtoCCExitNotify,
		Ciphers: []string{"AES-256-GCM", "CHACHA20-POLY1305"}, MTU: 1600, TCPNL: true}
	s := p.Marshal()
	for _, line := range []string{"IV_VER=remotegate", "IV_PLAT=linux", "IV_PROTO=142", "IV_NCP=2", "IV_CIPHERS=AES-256-GCM:CHACHA20-POLY1305", "IV_MTU=1600", "IV_TCPNL=1"} {
		if !strings.Contains(s, line+"\n") {
			t.Errorf("missing %q in %q", line, s)
		}
	}
	if strings.Contains(s, "=\n") {
		t.Errorf("empty value in %q", s)
	}
}

func TestNegotiateCipherNotes(t *testing.T) {
	cases := []struct {
		server  []string
		pi      string
		options string
		want    string
	}{
		// Server order wins over client order.
		{[]string{"CHACHA20-POLY1305", "AES-256-GCM"}, stockPeerInfo, "", "CHACHA20-POLY1305"},
		// IV_NCP=2 without IV_CIPHERS (2.4 client): AES-256-GCM:AES-128-GCM.
		{[]string{"CHACHA20-POLY1305", "AES-128-GCM"}, "IV_NCP=2\n", "", "AES-128-GCM"},
		{[]string{"CHACHA20-POLY1305"}, "IV_NCP=2\n", "", ""},
		// Pre-2.4 client: the OCC cipher.
		{[]string{"AES-256-GCM", "AES-256-CBC"}, "IV_VER=2.3.18\n", "V4,dev-type tun,cipher AES-256-CBC,auth SHA1", "AES-256-CBC"},
		// 2.6 default OCC string has no cipher item.
		{[]string{"AES-256-GCM"}, "", stockClientOptions, ""},
		// Case-insensitive, server spelling returned.
		{[]string{"aes-128-gcm"}, "IV_CIPHERS=AES-128-GCM\n", "", "aes-128-gcm"},
		{nil, stockPeerInfo, "", ""},
	}
	for i, c := range cases {
		got, err := NegotiateCipher(c.server, ParsePeerInfo(c.pi), c.options)
		if got != c.want || (c.want == "") != errors.Is(err, ErrNoSharedCipher) {
			t.Errorf("case %d: %q, %v; want %q", i, got, err, c.want)
		}
	}
}

func TestPushReplyFull(t *testing.T) {
	msg := "PUSH_REPLY,redirect-gateway def1 bypass-dhcp,dhcp-option DNS 10.8.0.1,route 192.168.10.0 255.255.255.0 10.8.0.1 5," +
		"route-ipv6 fd01::/64,route 10.0.0.0 255.0.0.0 net_gateway,ifconfig-ipv6 fd00::2/64 fd00::1,route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 60," +
		"ifconfig 10.8.0.2 255.255.255.0,peer-id 7,cipher CHACHA20-POLY1305,key-derivation tls-ekm,tun-mtu 1400"
	p, more, err := ParsePushReply(msg)
	if err != nil || more {
		t.Fatal(err, more)
	}
	wantRoutes := []Route{
		{Prefix: netip.MustParsePrefix("192.168.10.0/24"), Gateway: netip.MustParseAddr("10.8.0.1"), Metric: 5},
		{Prefix: netip.MustParsePrefix("fd01::/64")},
	}
	if !reflect.DeepEqual(p.Routes, wantRoutes) {
		t.Errorf("routes %+v", p.Routes)
	}
	if p.IfconfigIPv6 != netip.MustParsePrefix("fd00::2/64") || p.IfconfigIPv6Gateway != netip.MustParseAddr("fd00::1") || p.PeerID != 7 || p.Cipher != "CHACHA20-POLY1305" ||
		!p.TLSEKM() || p.KeyDerivation != "tls-ekm" || p.TunMTU != 1400 || p.PingRestart != 60 ||
		!reflect.DeepEqual(p.RedirectGateway, []string{"def1", "bypass-dhcp"}) {
		t.Errorf("%+v", p)
	}
	if !reflect.DeepEqual(p.Other, []string{"dhcp-option DNS 10.8.0.1", "route 10.0.0.0 255.0.0.0 net_gateway"}) {
		t.Errorf("other %q", p.Other)
	}
	// What we marshal parses back to the same reply.
	var merged *PushReply
	for _, m := range p.Marshal(1000) {
		part, _, err := ParsePushReply(m)
		if err != nil {
			t.Fatalf("%q: %v", m, err)
		}
		if merged == nil {
			merged = part
		} else {
			merged.Merge(part)
		}
	}
	if !reflect.DeepEqual(merged, p) {
		t.Errorf("round trip\n got %+v\nwant %+v", merged, p)
	}
}

func TestPushReplyEdges(t *testing.T) {
	p, more, err := ParsePushReply("PUSH_REPLY")
	if err != nil || more || p.PeerID != -1 || p.Ifconfig.IsValid() {
		t.Fatalf("bare PUSH_REPLY: %+v %v %v", p, more, err)
	}
	for _, bad := range []string{"AUTH_FAILED", "PUSH_REPLY,ifconfig 10.8.0.2", "PUSH_REPLY,ifconfig 10.8.0.2 255.0.255.0", "PUSH_REPLY,peer-id x"} {
		if _, _, err := ParsePushReply(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, more, err := ParsePushReply("PUSH_REPLY,ping 5,push-continuation 2"); err != nil || !more {
		t.Errorf("continuation 2: %v %v", more, err)
	}
}

func TestCommandsTable(t *testing.T) {
	cases := []struct {
		in   string
		want Command
	}{
		{"AUTH_FAILED", Command{Name: "AUTH_FAILED"}},
		{"AUTH_FAILED,Data channel cipher negotiation failed (no shared cipher)", Command{"AUTH_FAILED", "Data channel cipher negotiation failed (no shared cipher)"}},
		{"RESTART,[!]", Command{"RESTART", "[!]"}},
		{"PUSH_REPLY,ping 10,ping-restart 60", Command{"PUSH_REPLY", "ping 10,ping-restart 60"}},
		{"INFO_PRE,WEB_AUTH::https://x", Command{"INFO_PRE", "WEB_AUTH::https://x"}},
	}
	for _, c := range cases {
		if got := ParseCommand(c.in); got != c.want {
			t.Errorf("%q: %+v", c.in, got)
		}
	}
	if got := SplitCommands(nil); len(got) != 0 {
		t.Errorf("nil record: %q", got)
	}
	if got := SplitCommands([]byte("EXIT\r\n")); !reflect.DeepEqual(got, []string{"EXIT"}) {
		t.Errorf("%q", got)
	}
}

func TestParseCommandAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = ParseCommand("AUTH_FAILED,reason") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkParseClient(b *testing.B) {
	msg, _ := clientMessage().MarshalClient()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for i := 0; i < b.N; i++ {
		if _, err := ParseClient(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePushReply(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, err := ParsePushReply(stockPushReply); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCommand(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = ParseCommand("AUTH_FAILED,reason")
	}
}
