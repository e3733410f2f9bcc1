package app

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
)

const fiveParticipants = `
users:
  - name: a
  - name: b
  - name: c
devices:
  - name: d1
  - name: d2
`

// broker.yaml activates and releases licenses, files in and files out;
// without enough of them its participants are refused.
func TestLicensesFromTheYAML(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := license.GenerateVendorKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "vendor.pub")
	if err := os.WriteFile(pubFile, license.MarshalVendorPublicKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := license.Issue(priv, license.License{Number: "RG-1", Product: "remotegate", Edition: "standard", Participants: 64, Issued: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rg-1.lic"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	st, _, err := openStore(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	open := func() *licensing {
		t.Helper()
		keys, err := readVendorKeys([]string{pubFile})
		if err != nil {
			t.Fatal(err)
		}
		l, err := openLicensing(ctx, st, keys, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.restore(ctx, st, log); err != nil {
			t.Fatal(err)
		}
		return l
	}
	apply := func(l *licensing, yaml string) error {
		t.Helper()
		path := filepath.Join(dir, "broker.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		return testBroker(st, l).applyConfig(ctx, cfg)
	}
	status := func(l *licensing) string {
		var out bytes.Buffer
		printLicenses(&out, l, 5, time.Now())
		return out.String()
	}

	l := open()
	err = apply(l, fiveParticipants)
	if err == nil || !strings.Contains(err.Error(), "5 participants would exceed the licensed capacity of 4 participants: base 4") {
		t.Fatalf("five participants on the base license: %v", err)
	}
	if sc, _ := st.Config(ctx); len(sc.Model.Users) != 0 {
		t.Fatalf("the refused file was stored: %+v", sc.Model)
	}

	if err := apply(l, fiveParticipants+"licenses:\n  - file: rg-1.lic\n"); err != nil {
		t.Fatal(err)
	}
	if s := status(l); !strings.Contains(s, "participants: 5 of 68 participants: base 4 + RG-1 (+64)") {
		t.Fatalf("status:\n%s", s)
	}

	// A restart keeps the installation and its licenses.
	id := l.state.Installation()
	l = open()
	if l.state.Installation() != id || l.state.Capacity(time.Now()).Participants != 68 {
		t.Fatalf("after a restart: installation %s (was %s), %s", l.state.Installation(), id, l.state.Capacity(time.Now()))
	}

	// Released: the statement is written for the vendor, the license
	// stops counting, and the participants stay (nothing is added).
	if err := apply(l, fiveParticipants+"licenses:\n  - file: rg-1.lic\n    release_to: rg-1.release\n"); err != nil {
		t.Fatal(err)
	}
	stmt, err := os.ReadFile(filepath.Join(dir, "rg-1.release"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := license.VerifyRelease(stmt)
	if err != nil || rel.Number != "RG-1" || rel.Installation != id {
		t.Fatalf("release statement %+v: %v", rel, err)
	}
	if s := status(l); !strings.Contains(s, "participants: 5 of 4 participants: base 4") || !strings.Contains(s, "released") {
		t.Fatalf("status after the release:\n%s", s)
	}
	events, err := st.Events(ctx, store.EventFilter{Kind: "license"})
	if err != nil || len(events) != 2 {
		t.Fatalf("license events %+v: %v", events, err)
	}

	// Without a vendor key a listed license cannot be checked.
	nokey, err := openLicensing(ctx, st, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(nokey, fiveParticipants+"licenses:\n  - file: rg-1.lic\n#2\n"); err == nil || !strings.Contains(err.Error(), "-vendor-key") {
		t.Fatalf("license without vendor key: %v", err)
	}
}
