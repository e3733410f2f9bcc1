package profile

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/policy"
)

var stamp = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// userSwanctl is the profile the broker writes for a user.
func userSwanctl(name string) Swanctl {
	return Swanctl{
		Name: name, RemoteAddrs: []string{"127.0.0.1"}, Port: 4500, ServerID: "CN=remotegate broker",
		Cert: certPEM, Key: keyPEM, CA: caPEM, Now: func() time.Time { return stamp },
	}
}

type member struct {
	data  string
	mode  int64
	mtime time.Time
}

// untar returns the members of a tar archive by name, refusing anything
// but regular files.
func untar(t testing.TB, archive []byte) map[string]member {
	t.Helper()
	members := map[string]member{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return members
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			t.Fatalf("member %q of type %c", h.Name, h.Typeflag)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		members[h.Name] = member{string(data), h.Mode, h.ModTime}
	}
}

// TestSwanctlQuotesValues: the archive holds exactly the four files, under
// the name, and swanctl.conf quotes what came from outside.
func TestSwanctlQuotesValues(t *testing.T) {
	var b bytes.Buffer
	name := "jane.doe@example.com"
	if _, err := userSwanctl(name).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	members := untar(t, b.Bytes())
	var got []string
	for m := range members {
		got = append(got, m)
	}
	slices.Sort(got)
	want := []string{"private/" + name + ".pem", "swanctl.conf", "x509/" + name + ".pem", "x509ca/remotegate-ca.pem"}
	if !slices.Equal(got, want) {
		t.Fatalf("members %q, want %q", got, want)
	}
	for m, w := range map[string]member{
		"x509/" + name + ".pem":    {string(certPEM), 0o644, stamp},
		"private/" + name + ".pem": {string(keyPEM), 0o600, stamp},
		"x509ca/remotegate-ca.pem": {string(caPEM), 0o644, stamp},
	} {
		if g := members[m]; g.data != w.data || g.mode != w.mode || !g.mtime.Equal(w.mtime) {
			t.Errorf("%s: %q mode %o time %v; want %q mode %o time %v", m, g.data, g.mode, g.mtime, w.data, w.mode, w.mtime)
		}
	}
	conf := members["swanctl.conf"].data
	for _, line := range []string{
		`    remote_addrs = "127.0.0.1"`,
		`      certs = "jane.doe@example.com.pem"`,
		`      id = "CN=remotegate broker"`,
		`        local_ts = dynamic`,
		`        remote_ts = 0.0.0.0/0`,
	} {
		if !strings.Contains(conf, "\n"+line+"\n") {
			t.Errorf("swanctl.conf lacks the line %q:\n%s", line, conf)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"CN=remotegate broker", `"CN=remotegate broker"`},
		{"a#b{c}", `"a#b{c}"`},
		{`a"b`, ""}, {`a\b`, ""}, {"a\nb", ""}, {"a\tb", ""}, {"a\u2028b", ""}, {"a\u200eb", ""}, {"\xff", ""},
	} {
		got, err := SwanctlValue(c.in)
		if got != c.want || (c.want == "") != errors.Is(err, ErrInvalid) {
			t.Errorf("SwanctlValue(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// TestSwanctlDevice: the whole swanctl.conf of a device with two LANs
// (one child SA each) behind two brokers, as strongSwan reads it.
func TestSwanctlDevice(t *testing.T) {
	p := Swanctl{
		Name: "gw1", RemoteAddrs: []string{"vpn1.example", "192.0.2.7"}, Port: 14500, ServerID: "broker.example",
		Device: true, LANs: []netip.Prefix{netip.MustParsePrefix("192.168.0.1/24"), netip.MustParsePrefix("10.1.0.0/16")},
		Pool: netip.MustParsePrefix("10.200.0.1/16"),
		Cert: certPEM, Key: keyPEM, CA: caPEM, Now: func() time.Time { return stamp },
	}
	data, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `# remotegate IPsec profile for "gw1".
# Unpack into /etc/swanctl (tar -C /etc/swanctl -xf gw1.tar), then:
#   swanctl --load-all && swanctl --initiate --child remotegate
connections {
  remotegate {
    version = 2
    remote_addrs = "vpn1.example,192.0.2.7"
    local_port = 4500
    remote_port = 14500
    encap = yes
    vips = 0.0.0.0
    proposals = aes256gcm16-prfsha256-x25519-ecp256, aes256-sha256-x25519-ecp256-modp2048
    dpd_delay = 30s
    local {
      auth = pubkey
      certs = "gw1.pem"
    }
    remote {
      auth = pubkey
      id = "broker.example"
    }
    children {
      remotegate {
        local_ts = dynamic,192.168.0.0/24
        remote_ts = 10.200.0.0/16
        esp_proposals = aes256gcm16, aes128gcm16, chacha20poly1305
        dpd_action = restart
        start_action = start
      }
      remotegate-2 {
        local_ts = 10.1.0.0/16
        remote_ts = 10.200.0.0/16
        esp_proposals = aes256gcm16, aes128gcm16, chacha20poly1305
        dpd_action = restart
        start_action = start
      }
    }
  }
}
`
	if got := untar(t, data)["swanctl.conf"].data; got != want {
		t.Errorf("swanctl.conf:\n%s\nwant:\n%s", got, want)
	}
	// A device without LANs still takes the pool, and the port defaults.
	p.LANs, p.Port = []netip.Prefix{}, 0
	data, err = p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	conf := untar(t, data)["swanctl.conf"].data
	if !strings.Contains(conf, "\n        local_ts = dynamic\n        remote_ts = 10.200.0.0/16\n") || !strings.Contains(conf, "\n    remote_port = 4500\n") {
		t.Errorf("device without LANs:\n%s", conf)
	}
}

// TestSwanctlRefuses: hostile names and addresses, and missing parts, are
// refused with nothing written.
func TestSwanctlRefuses(t *testing.T) {
	cases := map[string]func(*Swanctl){
		"no address":      func(p *Swanctl) { p.RemoteAddrs = nil },
		"port":            func(p *Swanctl) { p.Port = 70000 },
		"no server id":    func(p *Swanctl) { p.ServerID = "" },
		"server id quote": func(p *Swanctl) { p.ServerID = "CN=x\"\nconnections { evil {} }" },
		"device no pool":  func(p *Swanctl) { p.Device = true },
		"user with LANs":  func(p *Swanctl) { p.LANs = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")} },
		"invalid LAN": func(p *Swanctl) {
			p.Device, p.Pool, p.LANs = true, netip.MustParsePrefix("10.0.0.0/8"), []netip.Prefix{{}}
		},
		"no cert":             func(p *Swanctl) { p.Cert = nil },
		"no key":              func(p *Swanctl) { p.Key = nil },
		"no CA":               func(p *Swanctl) { p.CA = nil },
		"key is cert":         func(p *Swanctl) { p.Key = certPEM },
		"ike proposals line":  func(p *Swanctl) { p.IKEProposals = "aes256gcm16-prfsha384-ecp384\n    remote_addrs = evil" },
		"esp proposals brace": func(p *Swanctl) { p.ESPProposals = "aes256gcm16}" },
		"esp proposals blank": func(p *Swanctl) { p.ESPProposals = "   " },
	}
	for _, n := range hostileNames {
		cases["name "+n] = func(p *Swanctl) { p.Name = n }
	}
	cases["name empty"] = func(p *Swanctl) { p.Name = "" }
	for _, h := range hostileHosts {
		cases["address "+h] = func(p *Swanctl) { p.RemoteAddrs = []string{h} }
		cases["second address "+h] = func(p *Swanctl) { p.RemoteAddrs = []string{"127.0.0.1", h} }
	}
	for name, spoil := range cases {
		p := userSwanctl("gw1")
		spoil(&p)
		var b bytes.Buffer
		n, err := p.WriteTo(&b)
		if !errors.Is(err, ErrInvalid) || b.Len() != 0 || n != 0 {
			t.Errorf("%.60q: %v, %d bytes written", name, err, b.Len())
		}
		if strings.HasPrefix(name, "name ") && !errors.Is(err, policy.ErrInvalidName) {
			t.Errorf("%.60q: %v, want policy.ErrInvalidName", name, err)
		}
	}
}

// The broker's proposals, when it has its own, are the profile's.
func TestSwanctlProposals(t *testing.T) {
	p := userSwanctl("gw1")
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	conf := untar(t, b)["swanctl.conf"].data
	for _, want := range []string{"proposals = " + defaultSwanctlIKE + "\n", "esp_proposals = " + defaultSwanctlESP + "\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("the default profile lacks %q:\n%s", want, conf)
		}
	}
	p.IKEProposals, p.ESPProposals = "AES256GCM16-prfsha384-ecp384", "aes256gcm16-ecp384,aes128gcm16"
	if b, err = p.Marshal(); err != nil {
		t.Fatal(err)
	}
	conf = untar(t, b)["swanctl.conf"].data
	for _, want := range []string{"    proposals = aes256gcm16-prfsha384-ecp384\n", "        esp_proposals = aes256gcm16-ecp384,aes128gcm16\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("the profile lacks %q:\n%s", want, conf)
		}
	}
}

func TestIKEIdentity(t *testing.T) {
	for _, c := range []struct {
		leaf *x509.Certificate
		want string
	}{
		{&x509.Certificate{Subject: pkix.Name{CommonName: "remotegate broker"}}, "CN=remotegate broker"},
		{&x509.Certificate{Subject: pkix.Name{CommonName: "b"}, DNSNames: []string{"vpn.example", "b.example"}}, "vpn.example"},
		{nil, ""},
	} {
		if got := IKEIdentity(c.leaf); got != c.want {
			t.Errorf("IKEIdentity = %q, want %q", got, c.want)
		}
	}
}

// FuzzSwanctlName: whatever the name, a profile is either refused with
// nothing written, or has the shape of a profile for a plain name: the
// same lines, the same four archive members in their directories.
func FuzzSwanctlName(f *testing.F) {
	for _, n := range hostileNames {
		if len(n) < 1000 {
			f.Add(n)
		}
	}
	f.Add("gw1")
	f.Add("jane.doe@example.com")
	ref, err := userSwanctl("gw1").Marshal()
	if err != nil {
		f.Fatal(err)
	}
	refConf := strings.Count(untar(f, ref)["swanctl.conf"].data, "\n")
	f.Fuzz(func(t *testing.T, name string) {
		var b bytes.Buffer
		_, err := userSwanctl(name).WriteTo(&b)
		if err != nil {
			if b.Len() != 0 || policy.ValidName(name) == nil {
				t.Fatalf("refused %q (%v) after writing %d bytes", name, err, b.Len())
			}
			return
		}
		if policy.ValidName(name) != nil {
			t.Fatalf("rendered a profile for %q", name)
		}
		members := untar(t, b.Bytes())
		for m := range members {
			if !fs.ValidPath(m) || strings.Contains(m, "..") || strings.Count(m, "/") > 1 {
				t.Fatalf("member %q", m)
			}
		}
		if len(members) != 4 || members["x509/"+name+".pem"].data == "" || members["private/"+name+".pem"].data == "" {
			t.Fatalf("members of %q: %d", name, len(members))
		}
		if n := strings.Count(members["swanctl.conf"].data, "\n"); n != refConf {
			t.Fatalf("swanctl.conf for %q has %d lines, for gw1 %d", name, n, refConf)
		}
	})
}

// TestSwanctlPool6: with an IPv6 pool the profile asks for an IPv6
// virtual address too and sends the participant's IPv6 traffic into the
// tunnel: a user's all of it, a device's that of the IPv6 pool.
func TestSwanctlPool6(t *testing.T) {
	u := userSwanctl("u1")
	u.Pool6 = netip.MustParsePrefix("fd00:8::1/64")
	dev := u
	dev.Name, dev.Device, dev.LANs, dev.Pool = "gw1", true, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}, netip.MustParsePrefix("10.8.0.0/24")
	for _, tc := range []struct {
		p     Swanctl
		lines []string
	}{
		{u, []string{"vips = 0.0.0.0, ::", "remote_ts = 0.0.0.0/0,::/0"}},
		{dev, []string{"vips = 0.0.0.0, ::", "remote_ts = 10.8.0.0/24,fd00:8::/64", "local_ts = dynamic,192.168.0.0/24"}},
	} {
		data, err := tc.p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		conf := untar(t, data)["swanctl.conf"].data
		for _, l := range tc.lines {
			if !strings.Contains(conf, "\n"+strings.Repeat(" ", 4)+l+"\n") && !strings.Contains(conf, "        "+l+"\n") {
				t.Errorf("%s: swanctl.conf lacks %q:\n%s", tc.p.Name, l, conf)
			}
		}
	}
}
