package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	snap, devices, err := cfg.compile()
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
			_, _, err = cfg.compile()
		}
		if err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func timeNow() time.Time { return time.Now() }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
