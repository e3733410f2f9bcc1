package keymethod

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// stockPeerInfo is what stock openvpn 2.6.14 sends by default.
const stockPeerInfo = "IV_VER=2.6.14\nIV_PLAT=linux\nIV_TCPNL=1\nIV_MTU=1600\nIV_NCP=2\nIV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\nIV_PROTO=990\nIV_LZO_STUB=1\nIV_COMP_STUB=1\nIV_COMP_STUBv2=1\n"

// stockPushReply is what a stock 2.6 server pushes (topology subnet).
const stockPushReply = "PUSH_REPLY,route-gateway 10.77.0.1,topology subnet,ping 10,ping-restart 120,ifconfig 10.77.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM,protocol-flags cc-exit tls-ekm dyn-tls-crypt,tun-mtu 1500"

func clientMessage() *Message {
	m := &Message{PreMaster: bytes.Repeat([]byte{0xAA}, 48), Options: "V4,dev-type null,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-client",
		HasAuth: true, Username: "alice", Password: "s3cret", PeerInfo: stockPeerInfo}
	for i := range m.Random1 {
		m.Random1[i] = byte(i)
		m.Random2[i] = byte(0x80 + i)
	}
	return m
}

func TestClientMessageLayout(t *testing.T) {
	m := clientMessage()
	b, err := m.MarshalClient()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:5], []byte{0, 0, 0, 0, 2}) || b[5] != 0xAA || b[53] != 0 || b[85] != 0x80 {
		t.Fatalf("header %x", b[:90])
	}
	// options length includes the NUL
	if got := int(b[117])<<8 | int(b[118]); got != len(m.Options)+1 {
		t.Fatalf("options length %d", got)
	}
	got, err := ParseClient(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, m)
	}
	if strings.Contains(got.String(), "s3cret") {
		t.Fatal("String shows the password")
	}
}

func TestServerMessage(t *testing.T) {
	m := &Message{Options: "V4,dev-type tun,tls-server"}
	b, err := m.MarshalServer()
	if err != nil {
		t.Fatal(err)
	}
	if want := 5 + 64 + 2 + len(m.Options) + 1 + 6; len(b) != want {
		t.Fatalf("server message %d bytes, want %d (three empty strings 00 00)", len(b), want)
	}
	got, err := ParseServer(append(b, 0xFF, 0xFF)) // trailing garbage ignored
	if err != nil || got.Options != m.Options || got.HasAuth {
		t.Fatalf("ParseServer %+v, %v", got, err)
	}
	if _, err := ParseServer(b[:60]); !errors.Is(err, ErrShort) {
		t.Fatalf("truncated: %v", err)
	}
	bad := append([]byte(nil), b...)
	bad[4] = 1
	if _, err := ParseServer(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("key method 1: %v", err)
	}
}

func TestPeerInfo(t *testing.T) {
	p := ParsePeerInfo(stockPeerInfo)
	if p.Version != "2.6.14" || p.Proto != 990 || p.NCP != 2 || p.MTU != 1600 || !p.TCPNL ||
		!reflect.DeepEqual(p.Ciphers, []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}) || p.Raw["IV_COMP_STUBv2"] != "1" {
		t.Fatalf("%+v", p)
	}
	if p.Proto&ProtoDynTLSCrypt == 0 || p.Proto&ProtoTLSKeyExport == 0 {
		t.Fatal("990 has bits 3 and 9")
	}
	q := ParsePeerInfo(p.Marshal())
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip\n%+v\n%+v", p, q)
	}
}

func TestNegotiateCipher(t *testing.T) {
	server := []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}
	cases := []struct {
		pi      PeerInfo
		options string
		want    string
	}{
		{ParsePeerInfo(stockPeerInfo), "", "AES-256-GCM"},
		{PeerInfo{Ciphers: []string{"chacha20-poly1305"}}, "", "CHACHA20-POLY1305"},
		{PeerInfo{NCP: 2}, "", "AES-256-GCM"},
		{PeerInfo{}, "V4,cipher AES-128-GCM,auth SHA1", "AES-128-GCM"},
		{PeerInfo{Ciphers: []string{"BF-CBC"}}, "", ""},
		{PeerInfo{}, "V4,cipher BF-CBC", ""},
	}
	for i, c := range cases {
		got, err := NegotiateCipher(server, c.pi, c.options)
		if got != c.want || (c.want == "") != errors.Is(err, ErrNoSharedCipher) {
			t.Errorf("case %d: %q, %v; want %q", i, got, err, c.want)
		}
	}
}

func TestPushReply(t *testing.T) {
	p, more, err := ParsePushReply(stockPushReply)
	if err != nil || more {
		t.Fatal(err, more)
	}
	if p.Ifconfig != netip.MustParsePrefix("10.77.0.2/24") || p.RouteGateway != netip.MustParseAddr("10.77.0.1") ||
		p.PeerID != 0 || p.Cipher != "AES-256-GCM" || !p.TLSEKM() || p.Ping != 10 || p.PingRestart != 120 || p.TunMTU != 1500 || p.Topology != "subnet" {
		t.Fatalf("%+v", p)
	}
	p.ProtocolFlags = []string{"cc-exit", "tls-ekm"}
	p.Routes = []Route{{Prefix: netip.MustParsePrefix("192.168.1.0/24")}}
	msgs := p.Marshal(1000)
	want := "PUSH_REPLY,route-gateway 10.77.0.1,topology subnet,ping 10,ping-restart 120,route 192.168.1.0 255.255.255.0,ifconfig 10.77.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM,protocol-flags cc-exit tls-ekm,tun-mtu 1500"
	if len(msgs) != 1 || msgs[0] != want {
		t.Fatalf("Marshal\n got %q\nwant %q", msgs, want)
	}
}

func TestPushContinuation(t *testing.T) {
	p := &PushReply{PeerID: -1}
	for i := 0; i < 100; i++ {
		p.Routes = append(p.Routes, Route{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)})
	}
	msgs := p.Marshal(1000)
	if len(msgs) < 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	var merged *PushReply
	for i, m := range msgs {
		if len(m) > 1000 {
			t.Fatalf("message %d is %d bytes", i, len(m))
		}
		part, more, err := ParsePushReply(m)
		if err != nil || more != (i < len(msgs)-1) {
			t.Fatalf("part %d: more %v err %v", i, more, err)
		}
		if merged == nil {
			merged = part
		} else {
			merged.Merge(part)
		}
	}
	if len(merged.Routes) != 100 {
		t.Fatalf("%d routes after merge", len(merged.Routes))
	}
}

func TestCommands(t *testing.T) {
	got := SplitCommands([]byte("PUSH_REQUEST\x00AUTH_FAILED,bad password\r\n\x00\x01junk\x00"))
	if !reflect.DeepEqual(got, []string{"PUSH_REQUEST", "AUTH_FAILED,bad password"}) {
		t.Fatalf("%q", got)
	}
	if c := ParseCommand(got[1]); c.Name != "AUTH_FAILED" || c.Arg != "bad password" {
		t.Fatalf("%+v", c)
	}
}

func FuzzParseClient(f *testing.F) {
	b, _ := clientMessage().MarshalClient()
	f.Add(b)
	f.Add(b[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseClient(data)
		if err != nil {
			return
		}
		out, err := m.MarshalClient()
		if err != nil {
			t.Fatalf("parsed message does not marshal: %v", err)
		}
		m2, err := ParseClient(out)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, m, m2)
		}
	})
}

func FuzzParseServer(f *testing.F) {
	b, _ := (&Message{Options: "V4,tls-server"}).MarshalServer()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseServer(data)
		if err != nil {
			return
		}
		m.HasAuth, m.Username, m.Password, m.PeerInfo = false, "", "", ""
		out, err := m.MarshalServer()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseServer(out)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParsePushReply(f *testing.F) {
	f.Add(stockPushReply)
	f.Add("PUSH_REPLY,route 10.0.0.0 255.0.0.0 vpn_gateway,dhcp-option DNS 10.0.0.1,push-continuation 2")
	f.Add("PUSH_REPLY,redirect-gateway,route-ipv6 fd01::/64 fd00::1 3,ifconfig-ipv6 fd00::2/64 fd00::1,key-derivation tls-ekm")
	f.Add("PUSH_REPLY")
	f.Fuzz(func(t *testing.T, s string) {
		p, _, err := ParsePushReply(s)
		if err != nil {
			return
		}
		// Marshal, re-parse and merge: the same reply.
		var merged *PushReply
		for _, m := range p.Marshal(1000) {
			part, _, err := ParsePushReply(m)
			if err != nil {
				t.Fatalf("re-marshalled %q does not parse: %v", m, err)
			}
			if merged == nil {
				merged = part
			} else {
				merged.Merge(part)
			}
		}
		if !reflect.DeepEqual(merged, p) {
			t.Fatalf("round trip\n got %+v\nwant %+v", merged, p)
		}
	})
}

func FuzzParsePeerInfo(f *testing.F) {
	f.Add(stockPeerInfo)
	f.Add("IV_VER=2.5.0\nIV_PROTO=2\nUV_USER=x=y\njunk\n")
	f.Fuzz(func(t *testing.T, s string) {
		p := ParsePeerInfo(s)
		q := ParsePeerInfo(p.Marshal())
		if q.Version != p.Version || q.Platform != p.Platform || q.Proto != p.Proto || q.MTU != p.MTU || q.TCPNL != p.TCPNL ||
			strings.Join(q.Ciphers, ":") != strings.Join(p.Ciphers, ":") {
			t.Fatalf("round trip\n got %+v\nwant %+v", q, p)
		}
	})
}

func TestHexVectorStrings(t *testing.T) {
	// An absent string is 00 00, a present one counts its NUL.
	b, _ := appendStr(nil, "ab")
	if hex.EncodeToString(b) != "0003616200" {
		t.Fatalf("%x", b)
	}
}
