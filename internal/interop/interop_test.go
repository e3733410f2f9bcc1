package interop

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/internal/netns"
)

var testFiles = map[string]string{
	"ca.crt": "/k/ca.crt", "server.crt": "/k/server.crt", "server.key": "/k/server.key",
	"client.crt": "/k/client.crt", "client.key": "/k/client.key",
}

func TestStockServerConfig(t *testing.T) {
	o := StockOptions{
		Proto: "tcp", Protection: "tls-auth", KeyFile: "/k/ta.key", Cipher: "AES-256-GCM",
		ServerAddr: netip.MustParseAddr("10.99.0.1"), Port: 1195,
		Network: netip.MustParsePrefix("10.99.100.0/23"), ClientToClient: true, RenegSec: 8,
		Extra: []string{"verb 4"},
	}
	want := `dev tun
proto tcp
local 10.99.0.1
port 1195
topology subnet
server 10.99.100.0 255.255.254.0
ca /k/ca.crt
cert /k/server.crt
key /k/server.key
dh none
tls-auth /k/ta.key 0
data-ciphers AES-256-GCM
keepalive 10 120
client-to-client
reneg-sec 8
verb 3
verb 4
`
	if got := StockServerConfig(o, testFiles); got != want {
		t.Errorf("server config:\n%s\nwant:\n%s", got, want)
	}
	if got := o.ServerTunnelAddr(); got != netip.MustParseAddr("10.99.100.1") {
		t.Errorf("ServerTunnelAddr = %v", got)
	}
}

// clientFiles writes stand-ins for the client's PEM files and the
// control-channel keys: the renderer checks their armour, not their
// contents.
func clientFiles(t *testing.T) map[string]string {
	dir := t.TempDir()
	files := map[string]string{}
	for name, content := range map[string]string{
		"ca.crt":     "-----BEGIN CERTIFICATE-----\nMAE=\n-----END CERTIFICATE-----\n",
		"client.crt": "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
		"client.key": "-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n",
		"ta.key":     "-----BEGIN OpenVPN Static key V1-----\n00112233445566778899aabbccddeeff\n-----END OpenVPN Static key V1-----\n",
		"v2c.key":    "-----BEGIN OpenVPN tls-crypt-v2 client key-----\nAAAA\n-----END OpenVPN tls-crypt-v2 client key-----\n",
	} {
		files[name] = WriteConfig(t, dir, name, content)
	}
	return files
}

func TestStockClientConfig(t *testing.T) {
	files := clientFiles(t)
	o := StockOptions{Protection: "tls-crypt-v2", KeyFile: files["v2c.key"], ServerAddr: netip.MustParseAddr("10.99.0.1"), RenegSec: 8, Extra: []string{"verb 4"}}
	want := `client
dev tun
proto udp
remote 10.99.0.1 1194
nobind
remote-cert-tls server
verb 3
connect-retry 1 1
reneg-sec 8
verb 4
<ca>
-----BEGIN CERTIFICATE-----
MAE=
-----END CERTIFICATE-----
</ca>
<cert>
-----BEGIN CERTIFICATE-----
MA==
-----END CERTIFICATE-----
</cert>
<key>
-----BEGIN PRIVATE KEY-----
MA==
-----END PRIVATE KEY-----
</key>
<tls-crypt-v2>
-----BEGIN OpenVPN tls-crypt-v2 client key-----
AAAA
-----END OpenVPN tls-crypt-v2 client key-----
</tls-crypt-v2>
`
	if got := StockClientConfig(t, o, files); got != want {
		t.Errorf("client config:\n%s\nwant:\n%s", got, want)
	}
}

func TestStockConfigDefaults(t *testing.T) {
	srv := StockServerConfig(StockOptions{}, testFiles)
	for _, line := range []string{"proto udp\n", "port 1194\n", "server 10.8.0.0 255.255.255.0\n"} {
		if !strings.Contains(srv, line) {
			t.Errorf("default server config lacks %q:\n%s", line, srv)
		}
	}
	for _, absent := range []string{"local ", "tls-", "data-ciphers", "reneg-sec", "client-to-client"} {
		if strings.Contains(srv, absent) {
			t.Errorf("default server config has %q:\n%s", absent, srv)
		}
	}
	if got := (StockOptions{}).ServerTunnelAddr(); got != netip.MustParseAddr("10.8.0.1") {
		t.Errorf("default ServerTunnelAddr = %v", got)
	}
	files := clientFiles(t)
	cli := StockClientConfig(t, StockOptions{Proto: "tcp", Protection: "tls-auth", KeyFile: files["ta.key"], ServerAddr: netip.MustParseAddr("10.99.0.1"), Cipher: "AES-256-GCM"}, files)
	if !strings.Contains(cli, "\nkey-direction 1\n<tls-auth>\n-----BEGIN OpenVPN Static key V1-----\n") {
		t.Errorf("client tls-auth must use key direction 1:\n%s", cli)
	}
	for _, line := range []string{"proto tcp-client\n", "remote 10.99.0.1 1194\n", "data-ciphers AES-256-GCM\n"} {
		if !strings.Contains(cli, "\n"+line) {
			t.Errorf("client config lacks %q:\n%s", line, cli)
		}
	}
}

func TestOpenVPNGenKey(t *testing.T) {
	netns.Require(t, "openvpn")
	dir := t.TempDir()
	for _, c := range []struct{ kind, header string }{
		{"secret", "-----BEGIN OpenVPN Static key V1-----"},
		{"tls-crypt", "-----BEGIN OpenVPN Static key V1-----"},
		{"tls-crypt-v2-server", "-----BEGIN OpenVPN tls-crypt-v2 server key-----"},
	} {
		p := OpenVPNGenKey(t, dir, c.kind)
		if p != filepath.Join(dir, c.kind+".key") {
			t.Errorf("%s: path %s", c.kind, p)
		}
		if b, _ := os.ReadFile(p); !strings.Contains(string(b), c.header) {
			t.Errorf("%s: key file lacks %q:\n%s", c.kind, c.header, b)
		}
	}
	server := filepath.Join(dir, "tls-crypt-v2-server.key")
	c1 := OpenVPNGenKey(t, dir, "tls-crypt-v2-client", server)
	c2 := OpenVPNGenKey(t, dir, "tls-crypt-v2-client", server)
	if c1 == c2 || c2 != filepath.Join(dir, "tls-crypt-v2-client-2.key") {
		t.Errorf("client key paths %s, %s", c1, c2)
	}
	b1, _ := os.ReadFile(c1)
	b2, _ := os.ReadFile(c2)
	if !strings.Contains(string(b1), "-----BEGIN OpenVPN tls-crypt-v2 client key-----") || string(b1) == string(b2) {
		t.Errorf("client keys:\n%s\n%s", b1, b2)
	}
}
