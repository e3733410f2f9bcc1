package profile

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/openvpn/conffile"
	"github.com/remotegate/remotegate/policy"
)

// Stand-ins for PEM: the renderer checks the armour, not the contents.
var (
	caPEM   = []byte("-----BEGIN CERTIFICATE-----\nMAE=\n-----END CERTIFICATE-----\n")
	certPEM = []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")
	keyPEM  = []byte("-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n")
	tcKey   = []byte("#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n00112233445566778899aabbccddeeff\n-----END OpenVPN Static key V1-----\n")
	v2Key   = []byte("-----BEGIN OpenVPN tls-crypt-v2 client key-----\nAAAA\n-----END OpenVPN tls-crypt-v2 client key-----\n")
)

// hostileNames reach the renderers only if everything before them failed:
// they must refuse them, write nothing, and never quote them into a file.
var hostileNames = []string{
	"../../../../tmp/x", "a/b", "..", "../x", "/etc/passwd",
	"x\n  remote_addrs = evil", "x\"\nconnections { evil {} }", "a\x00b", "a\rb",
	"x #comment", "x}", "\xed\xa0\x80", "-x", "a b", strings.Repeat("a", 65), strings.Repeat("a", 1<<20),
	"x\nup /bin/sh", "x</ca>",
}

// hostileHosts cannot open a directive of their own.
var hostileHosts = []string{
	"vpn.example\n  remote_addrs = evil", "vpn.example\nremote evil 1", `vpn"example`, "vpn example", "",
	"fe80::1%eth0\nup /bin/sh", "fe80::1%eth0", "vpn.example,evil.example", "-vpn.example", "<ca>",
	strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "a",
}

// brokerProfile is what the broker writes for a participant.
func brokerProfile(name string) OpenVPN {
	return OpenVPN{
		Name:        name,
		Remotes:     []Remote{{Host: "vpn.example.com", Port: 1194}},
		DataCiphers: []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"},
		Verb:        3,
		CA:          caPEM, Cert: certPEM, Key: keyPEM, TLSCrypt: tcKey,
	}
}

// TestOpenVPNBrokerProfile: the exact text, line for line, that the broker
// has always written (the tests that edit exported profiles rely on its
// "proto udp", "remote HOST PORT" and "data-ciphers" lines).
func TestOpenVPNBrokerProfile(t *testing.T) {
	want := `# remotegate profile for "jane.doe@example.com": openvpn --config jane.doe@example.com.ovpn
client
dev tun
proto udp
remote vpn.example.com 1194
nobind
remote-cert-tls server
data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305
verb 3
<ca>
` + string(caPEM) + `</ca>
<cert>
` + string(certPEM) + `</cert>
<key>
` + string(keyPEM) + `</key>
<tls-crypt>
` + string(tcKey) + `</tls-crypt>
`
	var b bytes.Buffer
	n, err := brokerProfile("jane.doe@example.com").WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != want || n != int64(len(want)) {
		t.Errorf("profile (%d bytes):\n%s\nwant:\n%s", n, b.String(), want)
	}
}

// TestOpenVPNRemotes: several brokers, remote-random, the default port,
// TCP, and a proto per remote when they differ.
func TestOpenVPNRemotes(t *testing.T) {
	p := OpenVPN{
		Comment:      []string{"two brokers", "any of them"},
		Remotes:      []Remote{{Host: "192.0.2.1"}, {Host: "2001:db8::1", Port: 443}},
		RemoteRandom: true,
		CA:           caPEM,
	}
	got, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "# two brokers\n# any of them\nclient\ndev tun\nproto udp\nremote 192.0.2.1 1194\nremote 2001:db8::1 443\nremote-random\nnobind\nremote-cert-tls server\n<ca>\n" + string(caPEM) + "</ca>\n"
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	p.Remotes = []Remote{{Host: "a.example", Proto: "tcp"}, {Host: "b.example", Proto: "tcp", Port: 443}}
	p.RemoteRandom = false
	got, err = p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "\nproto tcp-client\nremote a.example 1194\nremote b.example 443\nnobind\n") {
		t.Errorf("TCP remotes:\n%s", got)
	}

	p.Remotes = []Remote{{Host: "a.example", Proto: "udp"}, {Host: "a.example", Port: 443, Proto: "tcp"}}
	got, err = p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "\ndev tun\nremote a.example 1194 udp\nremote a.example 443 tcp-client\nnobind\n") || strings.Contains(string(got), "proto ") {
		t.Errorf("mixed remotes:\n%s", got)
	}
}

// TestOpenVPNControlChannelKeys: tls-auth comes with the client's key
// direction, tls-crypt-v2 in its own block, no key at all is allowed.
func TestOpenVPNControlChannelKeys(t *testing.T) {
	base := OpenVPN{Remotes: []Remote{{Host: "vpn.example"}}, CA: caPEM, Cert: certPEM, Key: keyPEM}
	for _, c := range []struct {
		name string
		set  func(*OpenVPN)
		want string
	}{
		{"tls-auth", func(p *OpenVPN) { p.TLSAuth = tcKey }, "</key>\nkey-direction 1\n<tls-auth>\n" + string(tcKey) + "</tls-auth>\n"},
		{"tls-crypt", func(p *OpenVPN) { p.TLSCrypt = tcKey }, "</key>\n<tls-crypt>\n" + string(tcKey) + "</tls-crypt>\n"},
		{"tls-crypt-v2", func(p *OpenVPN) { p.TLSCryptV2 = v2Key }, "</key>\n<tls-crypt-v2>\n" + string(v2Key) + "</tls-crypt-v2>\n"},
		{"none", func(p *OpenVPN) {}, "</key>\n"},
	} {
		p := base
		c.set(&p)
		got, err := p.Marshal()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !strings.HasSuffix(string(got), c.want) {
			t.Errorf("%s: profile ends:\n%s\nwant the end:\n%s", c.name, got, c.want)
		}
	}
}

// TestOpenVPNExtraLines are written in order after verb; a key without a
// final line break gets one, so the closing tag stays on its own line.
func TestOpenVPNExtraLines(t *testing.T) {
	p := OpenVPN{
		Remotes: []Remote{{Host: "vpn.example"}}, Verb: 4, CA: bytes.TrimSuffix(caPEM, []byte("\n")),
		Extra: []string{"connect-retry 1 1", `pull-filter ignore "route 192.168.0.0 "`, "auth-user-pass /tmp/pass"},
	}
	got, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "verb 4\nconnect-retry 1 1\npull-filter ignore \"route 192.168.0.0 \"\nauth-user-pass /tmp/pass\n<ca>\n" + string(caPEM) + "</ca>\n"
	if !strings.HasSuffix(string(got), want) {
		t.Errorf("got:\n%s\nwant the end:\n%s", got, want)
	}
}

// TestOpenVPNRefuses: every value that could add a directive, close an
// inline block early or make openvpn cut a line is refused, with
// ErrInvalid and nothing written.
func TestOpenVPNRefuses(t *testing.T) {
	inject := []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n</ca>\nup /bin/sh\n<ca>\n")
	cases := map[string]func(*OpenVPN){
		"no remote":        func(p *OpenVPN) { p.Remotes = nil },
		"port":             func(p *OpenVPN) { p.Remotes[0].Port = 65536 },
		"negative port":    func(p *OpenVPN) { p.Remotes[0].Port = -1 },
		"proto":            func(p *OpenVPN) { p.Remotes[0].Proto = "udp\nup /bin/sh" },
		"proto sctp":       func(p *OpenVPN) { p.Remotes[0].Proto = "sctp" },
		"cipher newline":   func(p *OpenVPN) { p.DataCiphers = []string{"AES-256-GCM\nup /bin/sh"} },
		"cipher colon":     func(p *OpenVPN) { p.DataCiphers = []string{"AES-256-GCM:BF-CBC"} },
		"cipher empty":     func(p *OpenVPN) { p.DataCiphers = []string{""} },
		"verb":             func(p *OpenVPN) { p.Verb = 12 },
		"negative verb":    func(p *OpenVPN) { p.Verb = -1 },
		"comment newline":  func(p *OpenVPN) { p.Comment = []string{"hello\nup /bin/sh"} },
		"comment CR":       func(p *OpenVPN) { p.Comment = []string{"hello\rup /bin/sh"} },
		"comment U+2028":   func(p *OpenVPN) { p.Comment = []string{"hello\u2028up"} },
		"comment too long": func(p *OpenVPN) { p.Comment = []string{strings.Repeat("x", 250) + " up /bin/sh"} },
		"extra newline":    func(p *OpenVPN) { p.Extra = []string{"verb 3\nup /bin/sh"} },
		"extra block":      func(p *OpenVPN) { p.Extra = []string{"<ca>"} },
		"extra block sp":   func(p *OpenVPN) { p.Extra = []string{"  </ca>"} },
		"extra empty":      func(p *OpenVPN) { p.Extra = []string{" "} },
		"extra too long":   func(p *OpenVPN) { p.Extra = []string{"setenv X " + strings.Repeat("x", 250)} },
		"extra invalid":    func(p *OpenVPN) { p.Extra = []string{"setenv X \xff"} },
		"no CA":            func(p *OpenVPN) { p.CA = nil },
		"cert without key": func(p *OpenVPN) { p.Key = nil },
		"key without cert": func(p *OpenVPN) { p.Cert = nil },
		"CA closes block":  func(p *OpenVPN) { p.CA = inject },
		"cert closes":      func(p *OpenVPN) { p.Cert = inject },
		"key closes":       func(p *OpenVPN) { p.Key = bytes.ReplaceAll(inject, []byte("CERTIFICATE"), []byte("PRIVATE KEY")) },
		"tls-crypt closes": func(p *OpenVPN) { p.TLSCrypt = append(tcKey[:len(tcKey):len(tcKey)], "</tls-crypt>\nup /bin/sh\n"...) },
		"CA long line": func(p *OpenVPN) {
			p.CA = []byte("-----BEGIN CERTIFICATE-----\n" + strings.Repeat("A", 252) + "</ca>\n-----END CERTIFICATE-----\n")
		},
		"CA NUL":          func(p *OpenVPN) { p.CA = append([]byte{0}, caPEM...) },
		"CA bare CR":      func(p *OpenVPN) { p.CA = bytes.Replace(caPEM, []byte("\n"), []byte("\r"), 1) },
		"CA not PEM":      func(p *OpenVPN) { p.CA = []byte("MAE=\n") },
		"CA unterminated": func(p *OpenVPN) { p.CA = []byte("-----BEGIN CERTIFICATE-----\nMAE=\n") },
		"CA is a key":     func(p *OpenVPN) { p.CA = keyPEM },
		"key is a cert":   func(p *OpenVPN) { p.Key = certPEM },
		"tls-crypt is v2": func(p *OpenVPN) { p.TLSCrypt = v2Key },
		"two keys":        func(p *OpenVPN) { p.TLSAuth = tcKey },
		"blank CA":        func(p *OpenVPN) { p.CA = []byte("\n\n") },
	}
	for _, n := range hostileNames {
		cases["name "+n] = func(p *OpenVPN) { p.Name = n }
	}
	for _, h := range hostileHosts {
		cases["host "+h] = func(p *OpenVPN) { p.Remotes[0].Host = h }
		cases["second host "+h] = func(p *OpenVPN) { p.Remotes = append(p.Remotes, Remote{Host: h}) }
	}
	for name, spoil := range cases {
		p := brokerProfile("gw1")
		p.Remotes = []Remote{{Host: "vpn.example", Port: 1194}}
		spoil(&p)
		var b bytes.Buffer
		n, err := p.WriteTo(&b)
		if !errors.Is(err, ErrInvalid) || b.Len() != 0 || n != 0 {
			t.Errorf("%.60q: %v, %d bytes written", name, err, b.Len())
		}
	}
	// A bad name is policy's verdict, and says so.
	p := brokerProfile("a/b")
	if _, err := p.Marshal(); !errors.Is(err, policy.ErrInvalidName) {
		t.Errorf("name a/b: %v, want policy.ErrInvalidName", err)
	}
}

// TestOpenVPNHostsAccepted: what a broker's public address may be.
func TestOpenVPNHostsAccepted(t *testing.T) {
	for _, h := range []string{"vpn.example", "127.0.0.1", "2001:db8::1", "a-b.example.", "localhost", strings.Repeat("a", 63) + ".example"} {
		if err := ValidHost(h); err != nil {
			t.Errorf("ValidHost(%q): %v", h, err)
		}
		p := brokerProfile("gw1")
		p.Remotes[0].Host = h
		got, err := p.Marshal()
		if err != nil || !strings.Contains(string(got), "\nremote "+h+" 1194\n") {
			t.Errorf("host %q: %v\n%s", h, err, got)
		}
	}
	for _, h := range hostileHosts {
		if err := ValidHost(h); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidHost(%.60q): %v", h, err)
		}
	}
}

// TestOpenVPNReadByConffile: the profile means what the fields say to a
// parser of openvpn's format, and real keys and certificates pass the
// checks: the openvpn package's client accepts it as a configuration.
func TestOpenVPNReadByConffile(t *testing.T) {
	ca := testpki.New(t, "profile CA")
	leaf := ca.Client(t, "gw1")
	tc, err := openvpn.GenerateStaticKey()
	if err != nil {
		t.Fatal(err)
	}
	p := OpenVPN{
		Name:        "gw1",
		Remotes:     []Remote{{Host: "192.0.2.1", Port: 1194}, {Host: "vpn.example", Port: 443}},
		DataCiphers: []string{"AES-256-GCM", "CHACHA20-POLY1305"},
		Verb:        3,
		CA:          ca.CertPEM, Cert: leaf.CertPEM, Key: leaf.KeyPEM, TLSCrypt: tc.Marshal(),
		Extra: []string{"reneg-sec 60"},
	}
	data, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f, err := conffile.Parse(bytes.NewReader(data), t.TempDir())
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	wantRemotes := []conffile.Remote{{Host: "192.0.2.1", Port: 1194}, {Host: "vpn.example", Port: 443}}
	if !f.Client || f.Dev != "tun" || f.Proto != "udp" || !reflect.DeepEqual(f.Remotes, wantRemotes) || !f.Nobind ||
		f.RemoteCertTLS != "server" || !reflect.DeepEqual(f.DataCiphers, p.DataCiphers) || f.Verb != 3 || f.RenegSec != 60 {
		t.Errorf("parsed %+v", f)
	}
	if !bytes.Equal(f.CA, ca.CertPEM) || !bytes.Equal(f.Cert, leaf.CertPEM) || !bytes.Equal(f.Key, leaf.KeyPEM) || !bytes.Equal(f.TLSCrypt, tc.Marshal()) {
		t.Errorf("inline blocks changed on the way:\nCA %q\ncert %q\ntls-crypt %q", f.CA, f.Cert, f.TLSCrypt)
	}
	if _, err := f.ClientConfig(); err != nil {
		t.Errorf("ClientConfig: %v", err)
	}

	p.TLSCrypt, p.TLSAuth = nil, tc.Marshal()
	data, err = p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if f, err = conffile.Parse(bytes.NewReader(data), t.TempDir()); err != nil || f.KeyDirection != 1 || !bytes.Equal(f.TLSAuth, tc.Marshal()) {
		t.Errorf("tls-auth profile: %v, key direction %d", err, f.KeyDirection)
	}
}

// TestOpenVPNStockKeys: the keys stock openvpn generates pass the checks
// as they are (comment lines and all).
func TestOpenVPNStockKeys(t *testing.T) {
	if _, err := exec.LookPath("openvpn"); err != nil {
		t.Skipf("SKIPPING: no openvpn to generate keys with: %v", err)
	}
	dir := t.TempDir()
	gen := func(args ...string) []byte {
		out, err := exec.Command("openvpn", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openvpn %v: %v\n%s", args, err, out)
		}
		b, err := os.ReadFile(args[len(args)-1])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tc := gen("--genkey", "tls-crypt", filepath.Join(dir, "tc.key"))
	gen("--genkey", "tls-crypt-v2-server", filepath.Join(dir, "v2s.key"))
	v2c := gen("--tls-crypt-v2", filepath.Join(dir, "v2s.key"), "--genkey", "tls-crypt-v2-client", filepath.Join(dir, "v2c.key"))
	for _, p := range []OpenVPN{
		{Remotes: []Remote{{Host: "vpn.example"}}, CA: caPEM, TLSCrypt: tc},
		{Remotes: []Remote{{Host: "vpn.example"}}, CA: caPEM, TLSAuth: tc},
		{Remotes: []Remote{{Host: "vpn.example"}}, CA: caPEM, TLSCryptV2: v2c},
	} {
		if _, err := p.Marshal(); err != nil {
			t.Error(err)
		}
	}
}

// FuzzOpenVPNName: whatever the name, the profile is either refused with
// nothing written or has the lines of a profile for a plain name.
func FuzzOpenVPNName(f *testing.F) {
	for _, n := range hostileNames {
		if len(n) < 1000 {
			f.Add(n, "vpn.example")
		}
	}
	for _, h := range hostileHosts {
		f.Add("gw1", h)
	}
	f.Add("jane.doe@example.com", "192.0.2.1")
	ref, err := brokerProfile("gw1").Marshal()
	if err != nil {
		f.Fatal(err)
	}
	refLines := bytes.Count(ref, []byte("\n"))
	f.Fuzz(func(t *testing.T, name, host string) {
		p := brokerProfile(name)
		p.Remotes[0].Host = host
		var b bytes.Buffer
		_, err := p.WriteTo(&b)
		// An empty name leaves out the header line.
		ok := (name == "" || policy.ValidName(name) == nil) && ValidHost(host) == nil
		if err != nil {
			if b.Len() != 0 || !errors.Is(err, ErrInvalid) || (ok && len(host) < 200) {
				t.Fatalf("refused %q, %q (%v) after writing %d bytes", name, host, err, b.Len())
			}
			return
		}
		if !ok {
			t.Fatalf("rendered a profile for %q, %q", name, host)
		}
		want := refLines
		if name == "" {
			want--
		}
		if n := bytes.Count(b.Bytes(), []byte("\n")); n != want {
			t.Fatalf("profile for %q, %q has %d lines, want %d", name, host, n, want)
		}
	})
}
