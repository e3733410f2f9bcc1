package conffile

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The reference configs of the protocol notes (section 7.1), as a user
// would write them next to their key files.
const refClient = `client
dev tun
proto udp            # or tcp
remote vpn.example.net 1194
nobind
remote-cert-tls server
ca ca.crt
cert client.crt
key client.key
tls-crypt tc.key
data-ciphers AES-256-GCM
verb 3
`

const refServer = `dev tun
proto udp
port 1194
topology subnet
server 10.8.0.0 255.255.255.0
ca ca.crt
cert server.crt
key server.key
dh none
tls-crypt tc.key
data-ciphers AES-256-GCM
keepalive 10 120
`

func writeKeyFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"ca.crt", "client.crt", "client.key", "server.crt", "server.key", "tc.key", "ta.key"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("contents of "+n+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReferenceClientFromFiles(t *testing.T) {
	dir := writeKeyFiles(t)
	path := filepath.Join(dir, "client.ovpn")
	if err := os.WriteFile(path, []byte(refClient), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Client || f.Dev != "tun" || f.Proto != "udp" || !f.Nobind || f.RemoteCertTLS != "server" || f.Verb != 3 ||
		!reflect.DeepEqual(f.Remotes, []Remote{{Host: "vpn.example.net", Port: 1194}}) ||
		!reflect.DeepEqual(f.DataCiphers, []string{"AES-256-GCM"}) {
		t.Fatalf("%+v", f)
	}
	if string(f.CA) != "contents of ca.crt\n" || string(f.Cert) != "contents of client.crt\n" ||
		string(f.Key) != "contents of client.key\n" || string(f.TLSCrypt) != "contents of tc.key\n" {
		t.Fatalf("files not read relative to the config: %q %q %q %q", f.CA, f.Cert, f.Key, f.TLSCrypt)
	}
	if f.KeyDirection != -1 || f.RenegSec != -1 {
		t.Errorf("absent values: key-direction %d reneg-sec %d", f.KeyDirection, f.RenegSec)
	}
}

func TestReferenceServerFromFiles(t *testing.T) {
	dir := writeKeyFiles(t)
	f, err := Parse(strings.NewReader(refServer), dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Mode != "server" || f.Client || f.Port != 1194 || f.Topology != "subnet" || f.DH != "none" ||
		f.Server != netip.MustParsePrefix("10.8.0.0/24") || f.Keepalive != [2]int{10, 120} ||
		string(f.Cert) != "contents of server.crt\n" {
		t.Fatalf("%+v", f)
	}
	// tls-auth with a direction instead of tls-crypt.
	conf := strings.Replace(refServer, "tls-crypt tc.key", "tls-auth ta.key 0", 1)
	if f, err = Parse(strings.NewReader(conf), dir); err != nil || f.KeyDirection != 0 || string(f.TLSAuth) != "contents of ta.key\n" {
		t.Fatalf("tls-auth: %v %+v", err, f)
	}
}

func TestSyntax(t *testing.T) {
	conf := "--dev tun\n; a comment\n   # another\nproto udp6\nremote 'my host' 1195 tcp-client\n" +
		"push \"route 10.1.0.0 255.255.0.0\"\npush \"dhcp-option DNS 10.8.0.1\"\nauth-user-pass /etc/x\\ y/pass.txt\n\n"
	f, err := Parse(strings.NewReader(conf), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	if f.Dev != "tun" || f.Proto != "udp" || f.Family != "6" || f.AuthUserPassFile != "/etc/x y/pass.txt" ||
		!reflect.DeepEqual(f.Remotes, []Remote{{Host: "my host", Port: 1195, Proto: "tcp"}}) ||
		!reflect.DeepEqual(f.Push, []string{"route 10.1.0.0 255.255.0.0", "dhcp-option DNS 10.8.0.1"}) {
		t.Fatalf("%+v", f)
	}
}

func TestIgnoredRecorded(t *testing.T) {
	f, err := Parse(strings.NewReader("dev tun\npersist-key\npersist-tun\nstatus /tmp/s.log 10\nuser nobody\n"), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	want := []Directive{{2, "persist-key", nil}, {3, "persist-tun", nil}, {4, "status", []string{"/tmp/s.log", "10"}}, {5, "user", []string{"nobody"}}}
	if len(f.Ignored) != len(want) {
		t.Fatalf("%+v", f.Ignored)
	}
	for i, d := range f.Ignored {
		if d.Line != want[i].Line || d.Name != want[i].Name || strings.Join(d.Args, " ") != strings.Join(want[i].Args, " ") {
			t.Errorf("ignored %d: %+v want %+v", i, d, want[i])
		}
	}
}

func TestUnsupportedSayWhy(t *testing.T) {
	for _, conf := range []string{
		"dev-type tap\n", "secret static.key\n", "plugin /usr/lib/x.so\n", "up /etc/openvpn/up.sh\n",
		"management 127.0.0.1 7505\n", "client-connect /bin/true\n", "auth-user-pass-verify /bin/true via-env\n",
		"allow-compression yes\n",
	} {
		_, err := Parse(strings.NewReader("dev tun\n"+conf), "/nonexistent")
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 2 || !errors.Is(err, ErrUnsupported) {
			t.Errorf("%q: %v", conf, err)
			continue
		}
		name := strings.Fields(conf)[0]
		if pe.Directive != name || !strings.Contains(err.Error(), "line 2: "+name) {
			t.Errorf("%q: %q does not name the line and directive", conf, err)
		}
	}
}
