package conffile

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/remotegate/remotegate/openvpn"
	"testing"
)

const stockServer = `# reference server config (stock openvpn 2.6)
dev tun
proto udp
port 1194
topology subnet
server 10.8.0.0 255.255.255.0
ca ca.crt
cert server.crt
key server.key
dh none
tls-crypt tc.key
data-ciphers AES-256-GCM:CHACHA20-POLY1305
keepalive 10 120
push "route 192.168.10.0 255.255.255.0"
push "dhcp-option DNS 10.8.0.1"
client-to-client
persist-key
persist-tun
status /var/log/openvpn-status.log
verb 3
explicit-exit-notify 1
`

const stockClient = `client
dev tun
proto tcp-client
remote vpn.example.com 443 tcp
remote 192.0.2.1
nobind
remote-cert-tls server
tls-auth [inline] 1
auth SHA256
<ca>
-----BEGIN CERTIFICATE-----
AAAA
-----END CERTIFICATE-----
</ca>
<tls-auth>
-----BEGIN OpenVPN Static key V1-----
00
-----END OpenVPN Static key V1-----
</tls-auth>
<auth-user-pass>
alice
s3cret "quoted"
</auth-user-pass>
auth-user-pass
reneg-sec 0
`

func TestStockServerConfig(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"ca.crt", "server.crt", "server.key", "tc.key"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("contents of "+n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Parse(strings.NewReader(stockServer), dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Server != netip.MustParsePrefix("10.8.0.0/24") || f.Mode != "server" || f.Proto != "udp" || f.Port != 1194 || f.Dev != "tun" ||
		string(f.CA) != "contents of ca.crt" || string(f.TLSCrypt) != "contents of tc.key" || f.Keepalive != [2]int{10, 120} ||
		!reflect.DeepEqual(f.DataCiphers, []string{"AES-256-GCM", "CHACHA20-POLY1305"}) || !f.ClientToClient ||
		!reflect.DeepEqual(f.Push, []string{"route 192.168.10.0 255.255.255.0", "dhcp-option DNS 10.8.0.1"}) ||
		f.ExplicitExitNotify != 1 || f.RenegSec != -1 || f.KeyDirection != -1 || f.DH != "none" {
		t.Fatalf("%+v", f)
	}
	if len(f.Ignored) != 3 {
		t.Fatalf("ignored %v", f.Ignored)
	}
}

// TestServerIPv6 reads the IPv6 lines of a stock dual-stack server: the
// pool, server-side and pushed IPv6 routes, and tun-ipv6 (a no-op since
// 2.4 that old configs still carry).
func TestServerIPv6(t *testing.T) {
	conf := "server 10.8.0.0 255.255.255.0\nserver-ipv6 fd00:8::/64\ntun-ipv6\nroute-ipv6 fd00:99::/64\n" +
		"push \"route-ipv6 fd00:99::/64\"\n"
	f, err := Parse(strings.NewReader(conf), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	if f.ServerIPv6 != netip.MustParsePrefix("fd00:8::/64") || !reflect.DeepEqual(f.RoutesIPv6, [][]string{{"fd00:99::/64"}}) ||
		!reflect.DeepEqual(f.Push, []string{"route-ipv6 fd00:99::/64"}) || len(f.Ignored) != 1 {
		t.Fatalf("%+v", f)
	}
	for _, bad := range []string{"server-ipv6 fd00:8::\n", "route-ipv6 fd00:99::\n", "ifconfig-ipv6 fd00::1/64 fd00::2\n"} {
		if _, err := Parse(strings.NewReader(bad), "/nonexistent"); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestStockClientConfigInline(t *testing.T) {
	f, err := Parse(strings.NewReader(stockClient), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	want := []Remote{{Host: "vpn.example.com", Port: 443, Proto: "tcp"}, {Host: "192.0.2.1"}}
	if !f.Client || !f.Pull || f.Proto != "tcp" || !reflect.DeepEqual(f.Remotes, want) || f.KeyDirection != 1 ||
		!strings.Contains(string(f.TLSAuth), "Static key") || !strings.Contains(string(f.CA), "BEGIN CERTIFICATE") ||
		f.Auth != "SHA256" || !f.AuthUserPass || f.Username != "alice" || f.Password != `s3cret "quoted"` || f.RenegSec != 0 {
		t.Fatalf("%+v", f)
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		conf string
		line int
		want error
	}{
		{"dev tun\nfrobnicate yes\n", 2, ErrUnknownDirective},
		{"dev tap0\n", 1, ErrUnsupported},
		{"client\n\nfragment 1300\n", 3, ErrUnsupported},
		{"comp-lzo maybe\n", 1, ErrBadArgument},
		{"compress zstd\n", 1, ErrBadArgument},
		{"server 10.8.0.0\n", 1, ErrBadArgument},
		{"server 10.8.0.0 255.0.255.0\n", 1, ErrBadArgument},
		{"port 70000\n", 1, ErrBadArgument},
		{"<ca>\nunterminated\n", 1, ErrBadArgument},
		{"push \"route 10.0.0.0\n", 1, ErrBadArgument},
		{"ca /nonexistent/ca.crt\n", 1, ErrBadArgument},
		{"tls-auth [inline] 1\n", 1, ErrBadArgument},
	}
	for _, c := range cases {
		_, err := Parse(strings.NewReader(c.conf), "/nonexistent")
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != c.line || !errors.Is(err, c.want) {
			t.Errorf("%q: error %v, want line %d and %v", c.conf, err, c.line, c.want)
		}
	}
}

func TestSplit(t *testing.T) {
	got, err := split(`push "route 10.0.0.0 255.0.0.0" 'single quoted' back\ slash # comment`)
	if err != nil || !reflect.DeepEqual(got, []string{"push", "route 10.0.0.0 255.0.0.0", "single quoted", "back slash"}) {
		t.Fatalf("%q %v", got, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(stockServer)
	f.Add(stockClient)
	f.Add("connect-freq-initial 5 10\nrcvbuf 4194304\nsndbuf 0\n")
	f.Fuzz(func(t *testing.T, conf string) {
		file, err := Parse(strings.NewReader(conf), "/nonexistent")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				if !strings.HasPrefix(err.Error(), "conffile:") {
					t.Fatalf("error without context: %v", err)
				}
			}
			return
		}
		_, _ = file.ServerConfig()
		_, _ = file.ClientConfig()
	})
}

func TestCompressionDirectives(t *testing.T) {
	for conf, want := range map[string]openvpn.Compression{
		"":                             openvpn.CompressionNone,
		"compress\n":                   openvpn.CompressionStub,
		"compress lz4\n":               openvpn.CompressionStub,
		"compress stub-v2\n":           openvpn.CompressionStubV2,
		"compress lz4-v2\n":            openvpn.CompressionStubV2,
		"comp-lzo\n":                   openvpn.CompressionLZO,
		"comp-lzo no\n":                openvpn.CompressionLZO,
		"compress stub\ncomp-lzo no\n": openvpn.CompressionLZO,
		"allow-compression asym\n":     openvpn.CompressionNone,
	} {
		f, err := Parse(strings.NewReader("dev tun\n"+conf), "/nonexistent")
		if err != nil {
			t.Errorf("%q: %v", conf, err)
			continue
		}
		if got := f.compression(); got != want {
			t.Errorf("%q: framing %v, want %v", conf, got, want)
		}
	}
}
