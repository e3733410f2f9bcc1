package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// bootstrapAs logs in as the bootstrap administrator of a fresh
// installation and names name, answering the bootstrap's status and body.
func (e *env) bootstrapAs(name string) (int, []byte) {
	e.t.Helper()
	password, state, err := e.srv.Bootstrap(context.Background())
	if err != nil || password == "" || state != "pending" {
		e.t.Fatalf("Bootstrap() = %q, %q, %v", password, state, err)
	}
	tok := e.mustLoginWith(BootstrapAccount, password)
	return e.call("POST", "/api/v1/bootstrap", tok, map[string]string{"name": name, "password": name + "'s long password"})
}

// The issue this answers: with four participants on the base license,
// naming the first administrator was refused for capacity, and the
// installation could never be administered. The bootstrap is never
// refused for capacity; the administrator it names counts, so the
// installation is then over its capacity: creating participants is
// refused until there is room, and the broker refuses the newest
// participant, the administrator, at connect meanwhile.
func TestBootstrapIsNeverRefusedForCapacity(t *testing.T) {
	l := newLicenseLab(t)
	// newEnv made the users root and nobody: two of the base four.
	for _, d := range []string{"plant-1", "plant-2"} {
		l.clock.add(time.Minute)
		l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": d})
	}
	if v := l.licenses(); v.InUse != 4 || v.Capacity != 4 {
		t.Fatalf("before the bootstrap: %d participants of %d, want 4 of the base 4", v.InUse, v.Capacity)
	}
	l.clock.add(time.Minute)
	if code, body := l.bootstrapAs("boss"); code != http.StatusCreated {
		t.Fatalf("bootstrap with the base license full: %d %s; want 201", code, body)
	}
	boss := l.mustLoginWith("boss", "boss's long password")
	var v licensesView
	if err := json.Unmarshal(l.expect(http.StatusOK, "GET", "/api/v1/licenses", boss, nil), &v); err != nil {
		t.Fatal(err)
	}
	if v.InUse != 5 || v.Capacity != 4 {
		t.Fatalf("after the bootstrap: %d participants of %d, want 5 of 4 (the administrator counts)", v.InUse, v.Capacity)
	}
	var events []eventView
	if err := json.Unmarshal(l.expect(http.StatusOK, "GET", "/api/v1/events?kind=license&participant=boss", boss, nil), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || !strings.Contains(events[0].Message, `"boss" is admitted beyond the licensed capacity of 4 participants: base 4: 5 participants`) {
		t.Fatalf("the event log does not say the administrator is beyond the capacity: %+v", events)
	}

	// The administrator administers, as any other.
	l.expect(http.StatusOK, "GET", "/api/v1/users", boss, nil)
	l.expect(http.StatusCreated, "POST", "/api/v1/groups", boss, map[string]any{"name": "plants"})

	// No room: creating a participant is refused, users and devices alike.
	for _, create := range []struct{ path, name string }{{"/api/v1/devices", "plant-3"}, {"/api/v1/users", "carol"}} {
		out := string(l.expect(http.StatusConflict, "POST", create.path, boss, map[string]any{"name": create.name}))
		if !strings.Contains(out, "6 participants would exceed the licensed capacity of 4 participants: base 4") {
			t.Fatalf("creating %s over the capacity: %s", create.name, out)
		}
	}
	// The broker admits the four oldest; the administrator is the newest.
	if err := l.admit("plant-2"); err != nil {
		t.Fatalf("plant-2, among the four oldest, refused: %v", err)
	}
	if err := l.admit("boss"); !errors.Is(err, broker.ErrBeyondCapacity) {
		t.Fatalf("boss, the fifth of a capacity of 4, admitted at connect: %v", err)
	}

	// One deleted leaves 4 of 4: still no room for a fifth.
	l.expect(http.StatusNoContent, "DELETE", "/api/v1/devices/plant-2", boss, nil)
	l.expect(http.StatusConflict, "POST", "/api/v1/devices", boss, map[string]any{"name": "plant-3"})
	if err := l.admit("boss"); err != nil {
		t.Fatalf("boss, now among the 4 participants of a capacity of 4, refused: %v", err)
	}
	// Two deleted: room for one.
	l.expect(http.StatusNoContent, "DELETE", "/api/v1/users/nobody", boss, nil)
	l.clock.add(time.Minute)
	l.expect(http.StatusCreated, "POST", "/api/v1/devices", boss, map[string]any{"name": "plant-3"})
	l.expect(http.StatusConflict, "POST", "/api/v1/users", boss, map[string]any{"name": "carol"})
}

// The bootstrap admits its administrator beyond the capacity, and nothing
// else: another participant made in the same change would count. (The
// bootstrap makes no other; this holds the rule of checkNewParticipants.)
func TestOnlyTheBootstrapsAdministratorIsAdmittedBeyondCapacity(t *testing.T) {
	l := newLicenseLab(t)
	l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": "plant-1"})
	l.expect(http.StatusCreated, "POST", "/api/v1/devices", l.root, map[string]any{"name": "plant-2"})
	cfg, err := l.store.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	before := model.Participants(cfg)
	cfg.Model.Users = append(cfg.Model.Users, policy.User{Name: "boss", Roles: []string{policy.RoleAdmin}}, policy.User{Name: "stowaway"})
	now := l.clock.now()
	if err := model.CheckNewParticipantsAdmitting(before, cfg, l.state, now, "boss"); !errors.Is(err, ErrCapacity) {
		t.Fatalf("a second new participant beside the admitted one: %v, want ErrCapacity", err)
	}
	cfg.Model.Users = cfg.Model.Users[:len(cfg.Model.Users)-1]
	if err := model.CheckNewParticipantsAdmitting(before, cfg, l.state, now, "boss"); err != nil {
		t.Fatalf("the admitted administrator alone: %v", err)
	}
	if err := model.CheckNewParticipants(before, cfg, l.state, now); !errors.Is(err, ErrCapacity) {
		t.Fatalf("the same change through CheckNewParticipants: %v, want ErrCapacity", err)
	}
}

// readmeExample is the broker.yaml example of the README, as far as
// licenses care: its users and devices.
type readmeExample struct {
	Users []struct {
		Name  string   `yaml:"name"`
		Roles []string `yaml:"roles"`
	} `yaml:"users"`
	Devices []struct {
		Name string `yaml:"name"`
	} `yaml:"devices"`
}

// The README's own broker.yaml fits the base license together with the
// administrator the bootstrap names: a new user who follows it does not
// start over the capacity.
func TestReadmeExampleFitsTheBaseLicense(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```yaml\n")
	if !ok {
		t.Fatal("no yaml block in the README")
	}
	block, _, _ := strings.Cut(rest, "```")
	var ex readmeExample
	if err := yaml.Unmarshal([]byte(block), &ex); err != nil {
		t.Fatalf("the README's broker.yaml: %v", err)
	}
	if len(ex.Users) == 0 || len(ex.Devices) == 0 {
		t.Fatalf("the README's broker.yaml has %d users and %d devices; is this the example?", len(ex.Users), len(ex.Devices))
	}

	l := newLicenseLab(t)
	ctx := context.Background()
	// The installation as the example leaves it, with nobody else.
	if _, err := l.store.Update(ctx, func(c *store.Config) error {
		c.Model.Users, c.Model.Devices = nil, nil
		for _, u := range ex.Users {
			c.Model.Users = append(c.Model.Users, policy.User{Name: u.Name, Roles: u.Roles})
		}
		for _, d := range ex.Devices {
			c.Model.Devices = append(c.Model.Devices, policy.Device{Name: d.Name})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.srv.Load(ctx); err != nil {
		t.Fatal(err)
	}
	l.clock.add(time.Minute)
	if code, body := l.bootstrapAs("boss"); code != http.StatusCreated {
		t.Fatalf("bootstrap: %d %s", code, body)
	}
	boss := l.mustLoginWith("boss", "boss's long password")
	var v licensesView
	if err := json.Unmarshal(l.expect(http.StatusOK, "GET", "/api/v1/licenses", boss, nil), &v); err != nil {
		t.Fatal(err)
	}
	if v.Capacity != 4 || v.InUse > v.Capacity {
		t.Fatalf("the README's example with the named administrator: %d participants of %d; want within the base license", v.InUse, v.Capacity)
	}
	for _, d := range ex.Devices {
		if err := l.admit(d.Name); err != nil {
			t.Errorf("device %s refused: %v", d.Name, err)
		}
	}
	if err := l.admit("boss"); err != nil {
		t.Errorf("the named administrator refused at connect: %v", err)
	}
}
