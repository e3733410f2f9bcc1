package app

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// hostileNames reach the renderers only if everything before them failed:
// they must refuse them, write nothing, and never quote them into a file.
var hostileNames = []string{
	"../../../../tmp/x", "a/b", "..", "../x", "/etc/passwd", "",
	"x\n  remote_addrs = evil", "x\"\nconnections { evil {} }", "a\x00b", "a\rb",
	"x #comment", "x}", "\xed\xa0\x80", "-x", "a b", strings.Repeat("a", 65), strings.Repeat("a", 1<<20),
}

// testKeys are a broker's keys in a fresh store, and the settings of its
// built-in config.
func testKeys(t testing.TB) (*keys, store.Settings) {
	t.Helper()
	st, _, err := openStore(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, err := openKeys(context.Background(), st, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	return k, cfg.settings()
}

// untar returns the members of a tar archive by name, refusing anything
// but regular files.
func untar(t testing.TB, archive []byte) map[string]string {
	t.Helper()
	members := map[string]string{}
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
		members[h.Name] = string(data)
	}
}

var certPEM, keyPEM = []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n")

func TestProfilesRefuseHostileNames(t *testing.T) {
	k, cfg := testKeys(t)
	for _, name := range hostileNames {
		var b bytes.Buffer
		err := writeSwanctlProfile(&b, cfg, k, name, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}, certPEM, keyPEM, time.Now())
		if !errors.Is(err, profile.ErrInvalid) || !errors.Is(err, policy.ErrInvalidName) || b.Len() != 0 {
			t.Errorf("swanctl profile for %.40q: %v, %d bytes written", name, err, b.Len())
		}
		b.Reset()
		err = writeProfile(&b, cfg, k, name, certPEM, keyPEM)
		if !errors.Is(err, profile.ErrInvalid) || !errors.Is(err, policy.ErrInvalidName) || b.Len() != 0 {
			t.Errorf(".ovpn profile for %.40q: %v, %d bytes written", name, err, b.Len())
		}
	}
}

// A public address that is not an address (broker.yaml refuses it; the
// renderers do not rely on that) cannot open a directive of its own.
func TestProfilesRefuseHostileAddresses(t *testing.T) {
	k, cfg := testKeys(t)
	for _, addr := range []string{"vpn.example\n  remote_addrs = evil", "vpn.example\nremote evil 1", `vpn"example`, "vpn example", ""} {
		bad := cfg
		bad.PublicAddress = addr
		var b bytes.Buffer
		if err := writeSwanctlProfile(&b, bad, k, "gw1", nil, certPEM, keyPEM, time.Now()); !errors.Is(err, profile.ErrInvalid) || b.Len() != 0 {
			t.Errorf("swanctl profile with address %q: %v, %d bytes", addr, err, b.Len())
		}
		b.Reset()
		if err := writeProfile(&b, bad, k, "gw1", certPEM, keyPEM); !errors.Is(err, profile.ErrInvalid) || b.Len() != 0 {
			t.Errorf(".ovpn profile with address %q: %v, %d bytes", addr, err, b.Len())
		}
	}
}

// TestSwanctlProfileQuotesValues: the archive holds exactly the four files,
// under the name, and swanctl.conf quotes what came from outside.
func TestSwanctlProfileQuotesValues(t *testing.T) {
	k, cfg := testKeys(t)
	var b bytes.Buffer
	name := "jane.doe@example.com"
	if err := writeSwanctlProfile(&b, cfg, k, name, nil, certPEM, keyPEM, time.Now()); err != nil {
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
	conf := members["swanctl.conf"]
	for _, line := range []string{
		`    remote_addrs = "127.0.0.1"`,
		`      certs = "jane.doe@example.com.pem"`,
		`      id = "CN=remotegate broker"`,
	} {
		if !strings.Contains(conf, "\n"+line+"\n") {
			t.Errorf("swanctl.conf lacks the line %q:\n%s", line, conf)
		}
	}
	// The quoting itself is broker/profile's (TestSwanctlQuotesValues).
}

// FuzzProfileNames: whatever the name, a profile is either refused with
// nothing written, or has the shape of a profile for a plain name: the
// same lines, the same four archive members in their directories.
func FuzzProfileNames(f *testing.F) {
	for _, n := range hostileNames {
		if len(n) < 1000 {
			f.Add(n)
		}
	}
	f.Add("gw1")
	f.Add("jane.doe@example.com")
	k, cfg := testKeys(f)
	lines := func(s string) int { return strings.Count(s, "\n") }
	var ref bytes.Buffer
	if err := writeProfile(&ref, cfg, k, "gw1", certPEM, keyPEM); err != nil {
		f.Fatal(err)
	}
	refOVPN := lines(ref.String())
	ref.Reset()
	if err := writeSwanctlProfile(&ref, cfg, k, "gw1", nil, certPEM, keyPEM, time.Now()); err != nil {
		f.Fatal(err)
	}
	refConf := lines(untar(f, ref.Bytes())["swanctl.conf"])
	f.Fuzz(func(t *testing.T, name string) {
		var b bytes.Buffer
		err := writeSwanctlProfile(&b, cfg, k, name, nil, certPEM, keyPEM, time.Now())
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
		if len(members) != 4 || members["x509/"+name+".pem"] == "" || members["private/"+name+".pem"] == "" {
			t.Fatalf("members of %q: %d", name, len(members))
		}
		if n := lines(members["swanctl.conf"]); n != refConf {
			t.Fatalf("swanctl.conf for %q has %d lines, for gw1 %d", name, n, refConf)
		}
		b.Reset()
		if err := writeProfile(&b, cfg, k, name, certPEM, keyPEM); err != nil || lines(b.String()) != refOVPN {
			t.Fatalf(".ovpn for %q: %v, %d lines, for gw1 %d", name, err, lines(b.String()), refOVPN)
		}
	})
}

// TestConfigRefusesBadNames: broker.yaml with a bad name, of any kind,
// fails at start with an error that names the kind and shows the name.
func TestConfigRefusesBadNames(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"users:\n  - name: \"../../../../tmp/x\"\n", `user "../../../../tmp/x"`},
		{"users:\n  - name: \"alice\\nbob\"\n", `user "alice\nbob"`},
		{"devices:\n  - name: \"a/b\"\n", `device "a/b"`},
		{"groups:\n  - name: \"..\"\n", `group ".."`},
		{"groups:\n  - name: g\nrelations:\n  - name: \"-r\"\n    from: g\n    to: g\n", `relation "-r"`},
		{"users:\n  - name: \"\\xe9t\\u00e9\"\n", `user "été": policy: invalid name: it contains 'é' (U+00E9)`},
		{"users:\n  - name: \xed\xa0\x80\n", "invalid"}, // a lone surrogate: not even YAML
		{"public_address: \"vpn.example\\n  remote_addrs = evil\"\n", `"vpn.example\n  remote_addrs = evil" is not an IP address or a host name`},
		{"public_address: vpn example\n", `"vpn example" is not an IP address or a host name`},
	} {
		path := filepath.Join(t.TempDir(), "broker.yaml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path)
		if err == nil {
			_, _, err = compileFile(cfg)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error with %s", c.yaml, err, c.want)
		}
	}
	for _, addr := range []string{"vpn.example", "127.0.0.1", "2001:db8::1", "a-b.example.", "localhost"} {
		if err := profile.ValidHost(addr); err != nil {
			t.Errorf("profile.ValidHost(%q): %v", addr, err)
		}
	}
}

// TestAuthFailuresRecordClaimedNamesShort: a peer whose certificate fails
// verification claims any name; the event log records one that follows
// the rule as it is, any other quoted and cut short.
func TestAuthFailuresRecordClaimedNamesShort(t *testing.T) {
	st, _, err := openStore(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := newEventQueue(st, slog.New(slog.DiscardHandler), time.Now)
	claims := []string{"gw1", "", strings.Repeat("x", 60<<10), "evil\nline", "=cmd"}
	for _, name := range claims {
		q.authFailure(name, "VPN handshake refused", nil)
	}
	q.close()
	events, err := st.Events(context.Background(), store.EventFilter{Kind: "auth_failure"})
	if err != nil || len(events) != len(claims) {
		t.Fatalf("%d events, %v", len(events), err)
	}
	want := []string{"gw1", "", `"` + strings.Repeat("x", 64) + `"`, `"evil\nline"`, `"=cmd"`}
	for i, e := range events {
		if e.Participant != want[i] {
			t.Errorf("claimed %.40q, recorded %.100q; want %q", claims[i], e.Participant, want[i])
		}
	}
}
