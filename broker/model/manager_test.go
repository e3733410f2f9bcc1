package model_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// clock is the one clock of a lab: the store, the CA, the broker and the
// Manager all read it, so that nothing mixes its fixed date with the real
// clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lab is a Manager over a store in a temporary directory, a broker and a
// CA, with the users root (admin) and um (a user manager only).
type lab struct {
	t   *testing.T
	ctx context.Context
	clk *clock
	st  *store.Store
	b   *broker.Broker
	ca  *pki.CA
	m   *model.Manager
}

func newLab(t *testing.T, adjust func(*model.Config)) *lab {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	st, err := store.OpenWith(filepath.Join(t.TempDir(), "broker.db"), store.Options{Now: clk.now, SecretKey: bytes.Repeat([]byte{7}, store.SecretKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Update(ctx, func(c *store.Config) error {
		c.Model.Roles = []policy.Role{{Name: "usermgr", Rights: policy.RightManageUsers}}
		c.Model.Users = []policy.User{{Name: "root", Roles: []string{policy.RoleAdmin}}, {Name: "um", Roles: []string{"usermgr"}}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	empty, err := policy.Compile(&policy.Model{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Policy: empty, Pool: netip.MustParsePrefix("10.8.0.0/24"), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(pki.CAConfig{Now: clk.now, OnIssue: func(r pki.Record) error { return st.PutCertificate(ctx, r) }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{Store: st, Broker: b, CA: ca, Now: clk.now,
		HashPassword: func(_ context.Context, p string) (string, error) {
			return model.HashPassword(p, model.PasswordCost{Time: 1, MemoryKiB: 64, Threads: 1})
		}}
	if adjust != nil {
		adjust(&cfg)
	}
	m, err := model.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return &lab{t: t, ctx: ctx, clk: clk, st: st, b: b, ca: ca, m: m}
}

func (l *lab) config() *store.Config {
	l.t.Helper()
	c, err := l.st.Config(l.ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	return c
}

// lastEvent is the newest event of the log.
func (l *lab) lastEvent() store.Event {
	l.t.Helper()
	evs, err := l.st.Events(l.ctx, store.EventFilter{Newest: true, Limit: 1})
	if err != nil || len(evs) != 1 {
		l.t.Fatalf("events: %v %v", evs, err)
	}
	return evs[0]
}

func (l *lab) mustFail(err, kind error, contains string) {
	l.t.Helper()
	if !errors.Is(err, kind) || !strings.Contains(err.Error(), contains) {
		l.t.Fatalf("got %v; want %v containing %q", err, kind, contains)
	}
}

// A device with an aliased LAN: stored, in force, routed by the broker
// under its alias, and recorded with its actor. A change the broker
// refuses (a second device under the same alias) stores nothing.
func TestDevicesAndTheChangePipeline(t *testing.T) {
	l := newLab(t, nil)
	gw := model.Device{Name: "plant7-gw", Networks: []store.Network{{
		LAN: netip.MustParsePrefix("192.168.0.0/24"), Alias: netip.MustParsePrefix("10.200.7.0/24")}}}
	if err := l.m.CreateDevice(l.ctx, "root", gw); err != nil {
		t.Fatal(err)
	}
	if nets := l.config().Networks["plant7-gw"]; len(nets) != 1 || nets[0].Alias != gw.Networks[0].Alias {
		t.Fatalf("stored networks %v", nets)
	}
	if _, ok := l.m.Snapshot().Lookup("plant7-gw"); !ok {
		t.Fatal("the device is not in force")
	}
	if st := l.b.Status("plant7-gw"); st != broker.StatusOffline {
		t.Fatalf("the broker says the new device is %q", st)
	}
	if ev := l.lastEvent(); ev.Kind != "config_change" || ev.Actor != "root" || ev.Message != `created device "plant7-gw"` {
		t.Fatalf("event %+v", ev)
	}
	got, err := l.m.Devices(l.ctx)
	if err != nil || len(got) != 1 || got[0].Name != "plant7-gw" || got[0].Created.IsZero() {
		t.Fatalf("Devices = %+v, %v", got, err)
	}

	twin := model.Device{Name: "twin", Networks: gw.Networks}
	l.mustFail(l.m.CreateDevice(l.ctx, "root", twin), model.ErrInvalid, "10.200.7.0/24")
	if _, err := l.m.Device(l.ctx, "twin"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("the refused device: %v", err)
	}
	if st := l.b.Status("twin"); st != broker.StatusUnknown {
		t.Fatalf("the broker says the refused device is %q", st)
	}
	l.mustFail(l.m.CreateDevice(l.ctx, "root", gw), model.ErrConflict, "exists")
	l.mustFail(l.m.CreateDevice(l.ctx, "root", model.Device{Name: "bad name"}), model.ErrInvalid, "device")
	l.mustFail(l.m.SetNetworks(l.ctx, "root", "plant7-gw", []store.Network{{LAN: netip.MustParsePrefix("192.168.0.0/24"), Alias: netip.MustParsePrefix("10.9.0.0/16")}}),
		model.ErrInvalid, "differ in size")

	if err := l.m.DeleteDevice(l.ctx, "root", "plant7-gw"); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.config().Networks["plant7-gw"]; ok {
		t.Fatal("the deleted device's networks stay")
	}
	if st := l.b.Status("plant7-gw"); st != broker.StatusUnknown {
		t.Fatalf("the broker says the deleted device is %q", st)
	}
	l.mustFail(l.m.DeleteDevice(l.ctx, "root", "plant7-gw"), model.ErrNotFound, "plant7-gw")
}

// Roles, groups and relations through their steps; the product's own
// Change with an error of its own stores nothing.
func TestCollections(t *testing.T) {
	l := newLab(t, nil)
	for _, g := range []string{"eng", "plant"} {
		if err := l.m.CreateGroup(l.ctx, "root", policy.Group{Name: g}); err != nil {
			t.Fatal(err)
		}
	}
	l.mustFail(l.m.CreateGroup(l.ctx, "root", policy.Group{Name: "eng"}), model.ErrConflict, `group "eng" exists`)
	if err := l.m.CreateRelation(l.ctx, "root", policy.Relation{Name: "r", From: "eng", To: "plant"}); err != nil {
		t.Fatal(err)
	}
	l.mustFail(l.m.PutRelation(l.ctx, "root", policy.Relation{Name: "r", From: "eng", To: "nowhere"}), model.ErrInvalid, "nowhere")
	if err := l.m.PutRelation(l.ctx, "root", policy.Relation{Name: "r", From: "eng", To: "plant", Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if r, err := l.m.Relation(l.ctx, "r"); err != nil || !r.Disabled {
		t.Fatalf("Relation = %+v, %v", r, err)
	}
	l.mustFail(l.m.DeleteRole(l.ctx, "root", "ghost"), model.ErrNotFound, `no role "ghost"`)

	mine := errors.New("mine")
	err := l.m.Change(l.ctx, "root", "nothing", func(c *store.Config, _ *store.Tx) error {
		c.Model.Groups = nil
		return mine
	})
	if !errors.Is(err, mine) || len(l.config().Model.Groups) != 2 {
		t.Fatalf("a change whose step fails: %v, groups %v", err, l.config().Model.Groups)
	}
}

// No right grants more than itself, and the last administrator stays.
func TestGrants(t *testing.T) {
	l := newLab(t, nil)
	l.mustFail(l.m.CreateUser(l.ctx, "um", policy.User{Name: "boss", Roles: []string{policy.RoleAdmin}}, ""), model.ErrForbidden, "does not hold")
	l.mustFail(l.m.CreateUser(l.ctx, "", policy.User{Name: "boss", Roles: []string{"usermgr"}}, ""), model.ErrForbidden, "manage-users")
	l.mustFail(l.m.SetPassword(l.ctx, "um", "root", "a long enough password"), model.ErrForbidden, "set the password of")
	l.mustFail(l.m.CreateUser(l.ctx, "root", policy.User{Name: model.BootstrapAccount}, ""), model.ErrInvalid, "reserved")
	l.mustFail(l.m.CreateUser(l.ctx, "um", policy.User{Name: "eve"}, "short"), model.ErrInvalid, "at least 12")

	if err := l.m.CreateUser(l.ctx, "um", policy.User{Name: "eve"}, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	a, err := l.st.Account(l.ctx, "eve")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := model.CheckPassword(a.PasswordHash, "a long enough password"); !ok || err != nil {
		t.Fatalf("eve's stored password: %v %v", ok, err)
	}
	if err := l.m.SetPassword(l.ctx, "um", "eve", "another long password"); err != nil {
		t.Fatal(err)
	}
	a, _ = l.st.Account(l.ctx, "eve")
	if ok, _ := model.CheckPassword(a.PasswordHash, "another long password"); !ok {
		t.Fatal("SetPassword did not store the new password")
	}
	if ev := l.lastEvent(); ev.Actor != "um" || ev.Participant != "eve" {
		t.Fatalf("event %+v", ev)
	}

	err = l.m.PutUser(l.ctx, "root", policy.User{Name: "root", Disabled: true, Roles: []string{policy.RoleAdmin}})
	l.mustFail(err, model.ErrLastHolder, "no enabled user with the role admin")
	if !errors.Is(err, model.ErrConflict) {
		t.Fatal("ErrLastHolder is not an ErrConflict")
	}
	if u, _ := l.m.User(l.ctx, "root"); u.Disabled {
		t.Fatal("the refused change was stored")
	}
}

// Creating beyond the licensed capacity is refused; the administrator
// named at the bootstrap is not, and the event log says so.
func TestCapacityAndBootstrap(t *testing.T) {
	lic := license.NewState(&license.Verifier{Product: "remotegate"}, "inst", 0)
	l := newLab(t, func(c *model.Config) { c.Licenses = lic })
	for _, d := range []string{"d1", "d2"} {
		if err := l.m.CreateDevice(l.ctx, "root", model.Device{Name: d}); err != nil {
			t.Fatal(err)
		}
	}
	l.mustFail(l.m.CreateDevice(l.ctx, "root", model.Device{Name: "d3"}), model.ErrCapacity, "5 participants would exceed")

	password, state, err := l.m.Bootstrap(l.ctx)
	if err != nil || password == "" || state != "pending" {
		t.Fatalf("Bootstrap = %q, %q, %v", password, state, err)
	}
	if a, err := l.st.Account(l.ctx, model.BootstrapAccount); err != nil || !a.MustChange {
		t.Fatalf("the bootstrap account: %+v %v", a, err)
	}
	if err := l.m.FinishBootstrap(l.ctx, model.BootstrapAccount, "boss", "the boss's password"); err != nil {
		t.Fatal(err)
	}
	if u, err := l.m.User(l.ctx, "boss"); err != nil || !slices.Equal(u.Roles, []string{policy.RoleAdmin}) {
		t.Fatalf("boss = %+v, %v", u, err)
	}
	if ev := l.lastEvent(); ev.Kind != "license" || !strings.Contains(ev.Message, `"boss" is admitted beyond the licensed capacity`) {
		t.Fatalf("event %+v", ev)
	}
	if _, err := l.st.Account(l.ctx, model.BootstrapAccount); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the bootstrap account after the bootstrap: %v", err)
	}
	l.mustFail(l.m.FinishBootstrap(l.ctx, model.BootstrapAccount, "boss2", "the boss's password"), model.ErrBootstrapDone, "an administrator was named")
	if _, state, _ := l.m.Bootstrap(l.ctx); state != "done" {
		t.Fatalf("state %q after the bootstrap", state)
	}
}

// Certificates: issued only for participants and within the actor's
// rights; a revocation is stored, recorded and ends the user's API
// sessions; enrollment tokens are for devices.
func TestCertificates(t *testing.T) {
	l := newLab(t, nil)
	_, _, err := l.m.IssueCertificate(l.ctx, "root", "nobody-yet", pki.ProfileUser, nil)
	l.mustFail(err, model.ErrInvalid, "names no user or device")
	_, _, err = l.m.IssueCertificate(l.ctx, "um", "root", pki.ProfileUser, nil)
	l.mustFail(err, model.ErrForbidden, "a certificate of")

	cert, key, err := l.m.IssueCertificate(l.ctx, "root", "um", pki.ProfileUser, nil)
	if err != nil || key == nil || cert.Subject.CommonName != "um" {
		t.Fatalf("IssueCertificate = %v, %v, %v", cert, key, err)
	}
	serial := pki.SerialString(cert.SerialNumber)
	if ev := l.lastEvent(); ev.Attrs["serial"] != serial || ev.Actor != "root" {
		t.Fatalf("event %+v", ev)
	}
	if err := l.st.PutAccount(l.ctx, store.Account{Name: "um", Created: l.clk.now(), Updated: l.clk.now()}); err != nil {
		t.Fatal(err)
	}
	if err := l.st.PutToken(l.ctx, store.Token{Hash: bytes.Repeat([]byte{1}, 32), Account: "um", Created: l.clk.now(), Expires: l.clk.now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	rec, err := l.m.RevokeCertificate(l.ctx, "root", cert.SerialNumber, pki.ReasonKeyCompromise)
	if err != nil || rec.RevokedAt.IsZero() {
		t.Fatalf("RevokeCertificate = %+v, %v", rec, err)
	}
	stored, err := l.st.Certificates(l.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range stored {
		if r.Certificate.SerialNumber.Cmp(cert.SerialNumber) == 0 && r.RevokedAt.IsZero() {
			t.Fatal("the store does not have the revocation")
		}
	}
	if _, err := l.st.Token(l.ctx, bytes.Repeat([]byte{1}, 32)); err == nil {
		t.Fatal("um's API session outlived the revocation of its certificate")
	}
	if _, err := l.m.RenewCertificate(l.ctx, "root", cert.SerialNumber, nil); err == nil {
		t.Fatal("a revoked certificate was renewed")
	}

	if err := l.m.CreateDevice(l.ctx, "root", model.Device{Name: "gw"}); err != nil {
		t.Fatal(err)
	}
	dcert, dkey, err := l.m.ExportCertificate(l.ctx, "root", "gw", "ovpn")
	if err != nil || dkey == nil || dcert.Subject.CommonName != "gw" {
		t.Fatalf("ExportCertificate = %v, %v", dcert, err)
	}
	if ev := l.lastEvent(); !strings.Contains(ev.Message, "exported a ovpn profile with certificate "+pki.SerialString(dcert.SerialNumber)) {
		t.Fatalf("event %+v", ev)
	}
	_, _, err = l.m.ExportCertificate(l.ctx, "root", "ghost", "ovpn")
	l.mustFail(err, model.ErrNotFound, `no participant "ghost"`)

	_, _, err = l.m.EnrollmentToken(l.ctx, "root", "um", 0)
	l.mustFail(err, model.ErrNotFound, `no device "um"`)
	token, expires, err := l.m.EnrollmentToken(l.ctx, "root", "gw", 0)
	if err != nil || token == "" || !expires.Equal(l.clk.now().Add(model.DefaultEnrollmentTTL)) {
		t.Fatalf("EnrollmentToken = %q, %v, %v", token, expires, err)
	}
	if ev := l.lastEvent(); strings.Contains(ev.Message, token) {
		t.Fatal("the event log holds the enrollment token")
	}
}

// Sessions, events and retention.
func TestOperations(t *testing.T) {
	l := newLab(t, func(c *model.Config) { c.EventRetention = 24 * time.Hour })
	l.mustFail(l.m.Terminate(l.ctx, "root", "um"), model.ErrNotFound, "not online")
	l.m.Record(l.ctx, "test", "", "root", "old", nil)
	l.clk.add(25 * time.Hour)
	l.m.Record(l.ctx, "test", "", "root", "new", nil)
	if err := l.m.Maintain(l.ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := l.m.Events(l.ctx, store.EventFilter{Kind: "test"})
	if err != nil || len(evs) != 1 || evs[0].Message != "new" {
		t.Fatalf("events after Maintain: %+v, %v", evs, err)
	}
	ps, err := l.m.ParticipantStates(l.ctx)
	if err != nil || len(ps) != 2 || ps[0].Name != "root" || ps[0].Kind != "user" || ps[0].Address.IsValid() {
		t.Fatalf("ParticipantStates = %+v, %v", ps, err)
	}
}

// Licenses: added, counted by the broker, released with a statement.
func TestLicenses(t *testing.T) {
	pub, vendor, err := license.GenerateVendorKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ikey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	lic := license.NewState(&license.Verifier{Product: "remotegate", Keys: []ed25519.PublicKey{pub}}, "inst-1", 7*24*time.Hour)
	l := newLab(t, func(c *model.Config) { c.Licenses, c.InstallationKey = lic, ikey })
	file, err := license.Issue(vendor, license.License{Number: "RG-1", Product: "remotegate", Edition: "standard", Participants: 64,
		Issued: l.clk.now().AddDate(0, 0, -1)})
	if err != nil {
		t.Fatal(err)
	}
	e, capacity, err := l.m.AddLicense(l.ctx, "root", file)
	if err != nil || e.License.Number != "RG-1" || capacity.Participants != 68 {
		t.Fatalf("AddLicense = %+v, %v, %v", e, capacity, err)
	}
	if stored, _ := l.st.Licenses(l.ctx); len(stored) != 1 || stored[0].Number != "RG-1" {
		t.Fatalf("stored licenses %+v", stored)
	}
	_, _, err = l.m.AddLicense(l.ctx, "root", file)
	l.mustFail(err, model.ErrConflict, "RG-1")
	_, _, err = l.m.AddLicense(l.ctx, "root", []byte("not a license"))
	l.mustFail(err, model.ErrInvalid, "")

	_, err = l.m.ReleaseLicense(l.ctx, "root", "RG-9")
	l.mustFail(err, model.ErrNotFound, "RG-9")
	stmt, err := l.m.ReleaseLicense(l.ctx, "root", "RG-1")
	if err != nil || len(stmt) == 0 {
		t.Fatalf("ReleaseLicense = %q, %v", stmt, err)
	}
	if stored, _ := l.st.Licenses(l.ctx); stored[0].Released.IsZero() {
		t.Fatal("the store does not have the release")
	}
	if c := lic.Capacity(l.clk.now()); c.Participants != 4 {
		t.Fatalf("capacity after the release: %v", c)
	}
}

// A backup restores what it held, and the configuration is in force at
// once.
func TestBackupRestore(t *testing.T) {
	l := newLab(t, nil)
	if err := l.m.CreateGroup(l.ctx, "root", policy.Group{Name: "kept"}); err != nil {
		t.Fatal(err)
	}
	l.mustFail(l.m.Backup(l.ctx, "root", new(bytes.Buffer), "short"), model.ErrInvalid, "passphrase")
	var archive bytes.Buffer
	if err := l.m.Backup(l.ctx, "root", &archive, "a long passphrase"); err != nil {
		t.Fatal(err)
	}
	if err := l.m.CreateGroup(l.ctx, "root", policy.Group{Name: "later"}); err != nil {
		t.Fatal(err)
	}
	res, err := l.m.Restore(l.ctx, "root", bytes.NewReader(archive.Bytes()), "a long passphrase", false)
	if err != nil || res.Installation != "kept" || res.RestartRequired {
		t.Fatalf("Restore = %+v, %v", res, err)
	}
	if gs, _ := l.m.Groups(l.ctx); len(gs) != 1 || gs[0].Name != "kept" {
		t.Fatalf("groups after the restore: %+v", gs)
	}
	if _, ok := l.m.Snapshot().Lookup("later"); ok {
		t.Fatal("the model in force still has what the backup did not")
	}
	if ev := l.lastEvent(); ev.Actor != "root" || !strings.Contains(ev.Message, "restored a backup") {
		t.Fatalf("event %+v", ev)
	}
}

// A step that judges on the model in force refuses, rather than fails
// hard, before Load.
func TestBeforeLoad(t *testing.T) {
	l := newLab(t, nil)
	m, err := model.New(model.Config{Store: l.st, Broker: l.b, CA: l.ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.IssueCertificate(l.ctx, "root", "um", pki.ProfileUser, nil); !errors.Is(err, model.ErrConfig) {
		t.Fatalf("IssueCertificate before Load: %v", err)
	}
	if _, _, err := m.EnrollmentToken(l.ctx, "root", "gw", 0); !errors.Is(err, model.ErrConfig) {
		t.Fatalf("EnrollmentToken before Load: %v", err)
	}
	if err := m.SetPassword(l.ctx, "root", "um", "a long enough password"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("SetPassword before Load: %v", err)
	}
	if _, err := model.New(model.Config{Store: l.st}); !errors.Is(err, model.ErrConfig) {
		t.Fatalf("New without a broker: %v", err)
	}
}
