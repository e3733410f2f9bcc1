package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// TestReadmeConfigLoads keeps the README's broker.yaml example working:
// it must load, compile, and mean what its comments say.
func TestReadmeConfigLoads(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```yaml\n")
	if !ok {
		t.Fatal("no yaml block in the README")
	}
	block, _, _ := strings.Cut(rest, "```")
	path := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	snap, devices, err := compileFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := snap.Lookup("alice")
	gw1, _ := snap.Lookup("plant1-gw")
	gw2, _ := snap.Lookup("plant2-gw")
	if !snap.Allowed(&policy.Flow{From: alice, To: gw1, Proto: policy.ProtoTCP, DstPort: 102}, timeNow()).Allowed ||
		snap.Allowed(&policy.Flow{From: alice, To: gw1, Proto: policy.ProtoTCP, DstPort: 80}, timeNow()).Allowed ||
		snap.Allowed(&policy.Flow{From: alice, To: gw2, Proto: policy.ProtoTCP, DstPort: 102}, timeNow()).Allowed {
		t.Fatal("the README's relation does not mean what it says")
	}
	if real, ok := devices["plant1-gw"].NAT.RealOf(mustAddr("10.200.1.10")); !ok || real.String() != "192.168.0.10" {
		t.Fatalf("plant1 alias maps to %v", real)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, bad := range []string{
		"colour: red\n",
		"devices:\n  - name: d\n    networks:\n      - lan: 192.168.0.0/33\n",
		"relations:\n  - name: r\n    from: a\n    to: b\n    direction: sideways\n",
		"relations:\n  - name: r\n    services: [tcp/99999]\n",
	} {
		path := filepath.Join(t.TempDir(), "broker.yaml")
		_ = os.WriteFile(path, []byte(bad), 0o600)
		cfg, err := loadConfig(path)
		if err == nil {
			_, _, err = compileFile(cfg)
		}
		if err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func timeNow() time.Time { return time.Now() }

// compileFile is what the broker would run with the file alone.
func compileFile(c *fileConfig) (*policy.Snapshot, map[string]broker.DeviceNetworks, error) {
	sc := &store.Config{}
	if err := c.apply(sc); err != nil {
		return nil, nil, err
	}
	snap, devices, err := model.Compile(sc)
	if err != nil {
		return nil, nil, err
	}
	if err := broker.CheckNetworks6(c.pool, c.pool6, devices); err != nil {
		return nil, nil, err
	}
	return snap, devices, nil
}

// TestPool6 reads pool6 into the stored settings and lets devices have
// IPv6 networks under IPv6 aliases; without pool6 they are refused, as is
// a pool6 that is not an IPv6 network.
func TestPool6(t *testing.T) {
	const devices = "devices:\n  - name: d\n    networks:\n      - lan: 192.168.0.0/24\n        alias: 10.200.1.0/24\n" +
		"      - lan: fd10::/64\n        alias: fd20:1::/64\n"
	load := func(text string) (*fileConfig, error) {
		path := filepath.Join(t.TempDir(), "broker.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return loadConfig(path)
	}
	c, err := load("pool6: fd00:8::/64\n" + devices)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.settings().Pool6; got != netip.MustParsePrefix("fd00:8::/64") {
		t.Fatalf("stored pool6 %v", got)
	}
	_, nets, err := compileFile(c)
	if err != nil {
		t.Fatal(err)
	}
	if lans := nets["d"].LANs; len(lans) != 2 || lans[1] != netip.MustParsePrefix("fd10::/64") {
		t.Fatalf("LANs %v", lans)
	}
	c, err = load(devices)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := compileFile(c); !errors.Is(err, broker.ErrBadNetwork) || !strings.Contains(err.Error(), "pool6") {
		t.Fatalf("IPv6 networks without pool6: %v", err)
	}
	for _, bad := range []string{"pool6: fd00:8::\n", "pool6: 10.9.0.0/16\n" + devices} {
		c, err := load(bad)
		if err == nil {
			_, _, err = compileFile(c)
		}
		if err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// testBroker is a broker on st with the licenses lic, as far as applying
// a configuration needs one.
func testBroker(st *store.Store, lic *licensing) *Broker {
	return &Broker{st: st, lic: lic, log: slog.New(slog.DiscardHandler), now: time.Now}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// A broker.yaml with networks the broker cannot route is refused before
// anything is stored, with the file, the network and the conflict named.
func TestConfigRefusesRiskyNetworks(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ yaml, want string }{
		{"devices:\n  - name: gw\n    networks:\n      - lan: 192.168.0.0/24\n        alias: 10.8.0.0/24\n",
			`device "gw": alias 10.8.0.0/24 overlaps the tunnel pool 10.8.0.0/24`},
		{"pool: 10.9.0.0/24\ndevices:\n  - name: gw\n    networks:\n      - lan: 10.9.0.64/26\n",
			`device "gw": lan 10.9.0.64/26 overlaps the tunnel pool 10.9.0.0/24`},
		{"devices:\n  - name: gw\n    networks:\n      - lan: 192.168.0.0/24\n        alias: 127.1.0.0/24\n",
			`device "gw": alias 127.1.0.0/24 overlaps loopback 127.0.0.0/8`},
		{"devices:\n  - name: gw\n    networks:\n      - lan: 239.0.0.0/24\n",
			`device "gw": lan 239.0.0.0/24 overlaps multicast 224.0.0.0/4`},
		{"devices:\n  - name: gw\n    networks:\n      - lan: 192.168.3.0/24\n      - lan: 192.168.3.0/24\n",
			`device "gw": lan 192.168.3.0/24 is listed twice`},
		{"devices:\n  - name: gw\n    networks:\n      - lan: fd00:3::/64\n",
			`device "gw": lan fd00:3::/64 is IPv6; IPv6 networks need an IPv6 tunnel pool (pool6)`},
		{"pool: fd00:8::/64\n", "tunnel pool fd00:8::/64 is IPv6"},
		{"pool: 127.0.0.0/24\n", "tunnel pool 127.0.0.0/24 overlaps loopback"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "broker.yaml")
		if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path)
		if err != nil {
			t.Fatalf("%s: %v", c.yaml, err)
		}
		st, _, err := openStore(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		lic, err := openLicensing(ctx, st, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = testBroker(st, lic).applyConfig(ctx, cfg)
		if err == nil || !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error naming %s and saying %q", c.yaml, err, path, c.want)
		}
		if sc, err := st.Config(ctx); err != nil || sc.Revision != 0 {
			t.Errorf("%s: stored revision %d (%v); want nothing stored", c.yaml, sc.Revision, err)
		}
	}
}

// The file's settings, with the defaults for what it leaves out, are what
// is stored.
func TestConfigSettings(t *testing.T) {
	cfg, err := loadConfig(writeYAML(t, t.TempDir(), "listen: 10.0.0.1\npublic_address: vpn.example\nuser_routes: [10.200.0.0/16]\nipsec: {port: -1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.settings()
	want := store.Settings{Listen: "10.0.0.1", Port: 1194, PublicAddress: "vpn.example", Pool: netip.MustParsePrefix("10.8.0.0/24"),
		UserRoutes: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16")}, IPsecPort: -1, IKEPort: 500}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("settings %+v; want %+v", got, want)
	}
	if d := withDefaults(store.Settings{}); !reflect.DeepEqual(d, withDefaults(mustLoad(t, "").settings())) {
		t.Errorf("the defaults of the store %+v differ from the built-in file's", d)
	}
	for _, bad := range []string{"pool: 10.8.0.0\n", "user_routes: [everything]\n", "port: many\n"} {
		if _, err := loadConfig(writeYAML(t, t.TempDir(), bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func mustLoad(t *testing.T, path string) *fileConfig {
	t.Helper()
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// broker.yaml is applied when its content changes: the entries it names
// replace those of the same name, the others (made through the API) stay;
// a restart with the same file keeps what was changed since.
func TestConfigAppliedWhenItChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	path := writeYAML(t, dir, "users:\n  - name: alice\n    roles: [vpn_user]\n")
	b := open(t, Config{DataDir: data, ConfigFile: path})
	// A change through the API: bob added, alice disabled.
	if _, err := b.st.Update(ctx, func(c *store.Config) error {
		c.Model.Users = append(c.Model.Users, policy.User{Name: "bob"})
		c.Model.Users[0].Disabled = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	users := func(b *Broker) string {
		t.Helper()
		sc, err := b.st.Config(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, u := range sc.Model.Users {
			s = append(s, fmt.Sprintf("%s:%v:%v", u.Name, u.Roles, u.Disabled))
		}
		return strings.Join(s, " ")
	}
	b = open(t, Config{DataDir: data, ConfigFile: path})
	if got := users(b); got != "alice:[vpn_user]:true bob:[]:false" {
		t.Errorf("after a restart with the same file: %s; want the API's changes kept", got)
	}
	b.Close()
	writeYAML(t, dir, "users:\n  - name: alice\n    roles: [admin]\n")
	b = open(t, Config{DataDir: data, ConfigFile: path})
	if got := users(b); got != "alice:[admin]:false bob:[]:false" {
		t.Errorf("after a changed file: %s; want alice replaced and bob kept", got)
	}
}

// TestConfigIPsecProposals: broker.yaml's proposals become the stored
// ones; a participant's own stay with its entry, those of participants the
// file does not name (made through the API) stay too; a proposal that does
// not parse is refused with the file's error naming it.
func TestConfigIPsecProposals(t *testing.T) {
	const file = "ipsec:\n  ike_proposals: aes256gcm16-prfsha384-ecp384\n  esp_proposals: aes128gcm16\n" +
		"users:\n  - name: u\n    esp_proposals: aes256gcm16\n" +
		"devices:\n  - name: d\n"
	path := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := &store.Config{Settings: store.Settings{Proposals: store.IPsecProposals{
		IKE: "aes128gcm16-prfsha256-curve25519", Participants: map[string]string{"api-made": "chacha20poly1305", "u": "aes128gcm16"},
	}}}
	sc.Model.Users = append(sc.Model.Users, policy.User{Name: "api-made"})
	if err := cfg.apply(sc); err != nil {
		t.Fatal(err)
	}
	want := store.IPsecProposals{IKE: "aes256gcm16-prfsha384-ecp384", ESP: "aes128gcm16",
		Participants: map[string]string{"api-made": "chacha20poly1305", "u": "aes256gcm16"}}
	if !reflect.DeepEqual(sc.Settings.Proposals, want) {
		t.Fatalf("stored proposals %+v, want %+v", sc.Settings.Proposals, want)
	}
	if _, _, err := model.Compile(sc); err != nil {
		t.Fatalf("the file's proposals do not compile: %v", err)
	}

	for _, bad := range []string{
		"ipsec:\n  ike_proposals: aes256gcm16-prfsha384-ecp999\n",
		"ipsec:\n  esp_proposals: des\n",
		"users:\n  - name: u\n    esp_proposals: aes256gcm16-prfsha384\n",
	} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path)
		if err == nil {
			_, _, err = compileFile(cfg)
		}
		if err == nil || !strings.Contains(err.Error(), "proposal") {
			t.Errorf("%q: %v, want an error about the proposals", bad, err)
		}
	}
}
