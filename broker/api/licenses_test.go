package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
	"github.com/remotegate/remotegate/policy"
)

// licenseLab is an API with participant licenses: a vendor key the
// product trusts and an installation with its own ID and key.
type licenseLab struct {
	*env
	vendor          ed25519.PrivateKey
	installation    string
	installationKey ed25519.PrivateKey
	state           *license.State
	root            string
}

func newLicenseLab(t *testing.T) *licenseLab { t.Helper(); return newLicenseLabAt(t, 0) }

// newLicenseLabAt is newLicenseLab on a clock skew away from the real one.
func newLicenseLabAt(t *testing.T, skew time.Duration) *licenseLab {
	t.Helper()
	pub, priv, err := license.GenerateVendorKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	installation, err := license.NewInstallationID(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ikey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	state := license.NewState(&license.Verifier{Product: "remotegate", Keys: []ed25519.PublicKey{pub}}, installation, 7*24*time.Hour)
	e := newEnvAt(t, skew, func(c *Config) { c.Licenses, c.InstallationKey = state, ikey })
	return &licenseLab{env: e, vendor: priv, installation: installation, installationKey: ikey, state: state, root: e.mustLogin("root")}
}

// issue makes a license file of the vendor.
func (l *licenseLab) issue(number string, participants int, installation string, expires time.Time) []byte {
	l.t.Helper()
	file, err := license.Issue(l.vendor, license.License{
		Number: number, Product: "remotegate", Edition: "standard", Participants: participants,
		Issued: l.start.AddDate(0, 0, -22), Expires: expires, Installation: installation,
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return file
}

func (l *licenseLab) licenses() licensesView {
	l.t.Helper()
	var v licensesView
	if err := json.Unmarshal(l.expect(http.StatusOK, "GET", "/api/v1/licenses", l.root, nil), &v); err != nil {
		l.t.Fatal(err)
	}
	return v
}

// admit asks the broker, as a transport would at connect.
func (l *licenseLab) admit(name string) error {
	_, err := l.b.Admit(context.Background(), identity(name), netip.AddrPort{})
	return err
}

// Acceptance: with only the base license the fifth participant is refused
// with the capacity in the answer; after adding a +64 license it is
// created.
func TestFifthParticipantNeedsALicense(t *testing.T) { testFifthParticipantNeedsALicense(t, 0) }

func testFifthParticipantNeedsALicense(t *testing.T, skew time.Duration) {
	l := newLicenseLabAt(t, skew)
	// newEnv made the users root and nobody: two of the base four.
	l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": "plant-1"})
	l.clock.add(time.Minute)
	l.expect(http.StatusCreated, "POST", "/api/v1/users", l.root, map[string]any{"name": "alice", "roles": []string{policy.RoleVPNUser}})
	l.clock.add(time.Minute)

	for _, create := range []struct{ path, name string }{{"/api/v1/devices", "plant-2"}, {"/api/v1/users", "bob"}} {
		out := string(l.expect(http.StatusConflict, "POST", create.path, l.root, map[string]any{"name": create.name}))
		if !strings.Contains(out, "5 participants would exceed the licensed capacity of 4 participants: base 4") {
			t.Fatalf("refusal of %s does not give the reason: %s", create.name, out)
		}
	}
	if v := l.licenses(); v.Capacity != 4 || v.InUse != 4 || len(v.Licenses) != 0 || v.Installation != l.installation {
		t.Fatalf("licenses before: %+v", v)
	}

	// Files that are not a license for this installation are refused, and
	// change nothing.
	other := l.issue("RG-OTHER", 64, strings.Repeat("0", 32), time.Time{})
	if out := string(l.expect(http.StatusBadRequest, "POST", "/api/v1/licenses", l.root, other)); !strings.Contains(out, "installation") {
		t.Fatalf("license of another installation: %s", out)
	}
	good := l.issue("RG-2026-000064", 64, l.installation, time.Time{})
	tampered := bytes.Replace(good, []byte("participants: 64"), []byte("participants: 65"), 1)
	if out := string(l.expect(http.StatusBadRequest, "POST", "/api/v1/licenses", l.root, tampered)); !strings.Contains(out, "signature") {
		t.Fatalf("tampered license: %s", out)
	}
	l.expect(http.StatusConflict, "POST", "/api/v1/devices", l.root, map[string]any{"name": "plant-2"})

	// The +64 license.
	var added licenseView
	if err := json.Unmarshal(l.expect(http.StatusCreated, "POST", "/api/v1/licenses", l.root, good), &added); err != nil {
		t.Fatal(err)
	}
	if added.Number != "RG-2026-000064" || added.Participants != 64 || added.State != "counting" {
		t.Fatalf("added license: %+v", added)
	}
	l.expect(http.StatusConflict, "POST", "/api/v1/licenses", l.root, good)
	l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": "plant-2"})
	if v := l.licenses(); v.Capacity != 68 || v.InUse != 5 || v.Description != "68 participants: base 4 + RG-2026-000064 (+64)" {
		t.Fatalf("licenses after: %+v", v)
	}
	if err := l.admit("plant-2"); err != nil {
		t.Fatalf("the 5th participant, licensed, cannot connect: %v", err)
	}

	// Both the activation and the refusals are in the event log.
	events, err := l.store.Events(context.Background(), store.EventFilter{Kind: "license"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Actor != "root" || !strings.Contains(events[0].Message, "activated license RG-2026-000064 (+64); capacity 68") {
		t.Fatalf("license events: %+v", events)
	}

	// Creation times order the participants; they are kept by a PUT that
	// tries to change them.
	var dev struct {
		Created time.Time `json:"created"`
	}
	if err := json.Unmarshal(l.expect(http.StatusOK, "GET", "/api/v1/devices/plant-1", l.root, nil), &dev); err != nil {
		t.Fatal(err)
	}
	if want := l.start; !dev.Created.Equal(want) {
		t.Fatalf("plant-1 created %v; want %v", dev.Created, want)
	}
	l.expect(http.StatusOK, "PUT", "/api/v1/devices/plant-1", l.root, map[string]any{"name": "plant-1", "created": l.start.AddDate(3, 0, 0)})
	if err := json.Unmarshal(l.expect(http.StatusOK, "GET", "/api/v1/devices/plant-1", l.root, nil), &dev); err != nil {
		t.Fatal(err)
	}
	if !dev.Created.Equal(l.start) {
		t.Fatalf("a PUT changed plant-1's creation time to %v", dev.Created)
	}

	// Releasing the license answers with a statement the vendor can check;
	// the newest participant is then beyond capacity and refused at
	// connect, the oldest keep working, and nothing can be added.
	stmt := l.expect(http.StatusOK, "POST", "/api/v1/licenses/RG-2026-000064/release", l.root, nil)
	rel, err := license.VerifyRelease(stmt)
	if err != nil {
		t.Fatalf("release statement: %v\n%s", err, stmt)
	}
	if rel.Number != "RG-2026-000064" || rel.Installation != l.installation || !rel.InstallationKey.Equal(l.installationKey.Public()) {
		t.Fatalf("release statement for %+v", rel)
	}
	if err := l.admit("plant-2"); !errors.Is(err, broker.ErrBeyondCapacity) || !strings.Contains(err.Error(), "4 participants: base 4") {
		t.Fatalf("plant-2 after the release: %v", err)
	}
	for _, name := range []string{"plant-1", "alice"} {
		if err := l.admit(name); err != nil {
			t.Fatalf("%s, among the four oldest, refused: %v", name, err)
		}
	}
	l.expect(http.StatusConflict, "POST", "/api/v1/users", l.root, map[string]any{"name": "carol"})
	l.expect(http.StatusConflict, "POST", "/api/v1/licenses", l.root, good) // released: not again
	l.expect(http.StatusConflict, "POST", "/api/v1/licenses/RG-2026-000064/release", l.root, nil)
	l.expect(http.StatusNotFound, "POST", "/api/v1/licenses/RG-NONE/release", l.root, nil)
	// Deleting is a change that adds no participant: allowed over capacity.
	l.expect(http.StatusNoContent, "DELETE", "/api/v1/devices/plant-2", l.root, nil)
	if v := l.licenses(); v.Capacity != 4 || v.InUse != 4 || len(v.Licenses) != 1 || v.Licenses[0].State != "released" {
		t.Fatalf("licenses after the release: %+v", v)
	}
}

// A license that expires stops counting after the grace period: the
// event log says so, and the newest participants are refused at connect.
func TestExpiredLicenseStopsCountingAfterGrace(t *testing.T) {
	testExpiredLicenseStopsCountingAfterGrace(t, 0)
}

func testExpiredLicenseStopsCountingAfterGrace(t *testing.T, skew time.Duration) {
	l := newLicenseLabAt(t, skew)
	expires := l.start.AddDate(0, 0, 8).Truncate(24 * time.Hour)
	l.expect(http.StatusCreated, "POST", "/api/v1/licenses", l.root, l.issue("RG-TERM", 64, "", expires))
	for _, name := range []string{"d1", "d2", "d3"} {
		l.clock.add(time.Minute)
		l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": name})
	}
	l.srv.CheckLicenses(context.Background())
	if err := l.admit("d3"); err != nil {
		t.Fatalf("d3 before the expiry: %v", err)
	}

	l.clock.add(expires.Sub(l.clock.now()) + time.Hour) // expired, in grace
	l.srv.CheckLicenses(context.Background())
	if err := l.admit("d3"); err != nil {
		t.Fatalf("d3 in the grace period: %v", err)
	}
	l.clock.add(7 * 24 * time.Hour) // grace over
	l.srv.CheckLicenses(context.Background())
	if err := l.admit("d3"); !errors.Is(err, broker.ErrBeyondCapacity) {
		t.Fatalf("d3 after the grace period: %v", err)
	}
	if err := l.admit("d2"); err != nil {
		t.Fatalf("d2, the 4th oldest, refused: %v", err)
	}
	events, err := l.store.Events(context.Background(), store.EventFilter{Kind: "license"})
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, e := range events {
		changes = append(changes, e.Attrs["change"])
	}
	if strings.Join(changes, ",") != "activated,expired-grace,lapsed" {
		t.Fatalf("license events %q", changes)
	}
	l.root = l.mustLogin("root") // a week later: the old token expired
	if v := l.licenses(); v.Capacity != 4 || v.Licenses[0].State != "lapsed" {
		t.Fatalf("licenses after the expiry: %+v", v)
	}
}

// Licenses survive a restart: a new Server on the same store restores
// them, and the broker gets their capacity.
func TestLicensesAreRestoredAtStart(t *testing.T) {
	l := newLicenseLab(t)
	l.expect(http.StatusCreated, "POST", "/api/v1/licenses", l.root, l.issue("RG-KEEP", 256, l.installation, time.Time{}))
	fresh := license.NewState(&license.Verifier{Product: "remotegate", Keys: []ed25519.PublicKey{l.vendor.Public().(ed25519.PublicKey)}}, l.installation, 0)
	cfg := l.srv.cfg
	cfg.Licenses = fresh
	if _, err := New(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if c := fresh.Capacity(l.clock.now()); c.Participants != 260 {
		t.Fatalf("restored capacity %s", c)
	}
}
