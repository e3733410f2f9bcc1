package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/policy"
)

// sampleConfig fills c with one entry of every kind, and networks.
func sampleConfig(c *Config) {
	c.Model = policy.Model{
		Roles: []policy.Role{{Name: "ops", Rights: policy.RightManageDevices | policy.RightViewEvents}},
		Users: []policy.User{
			{Name: "alice", Roles: []string{"ops"}, Groups: []string{"engineers"}},
			{Name: "bob", Roles: []string{policy.RoleVPNUser}, Groups: []string{"engineers"}, Disabled: true},
		},
		Devices: []policy.Device{{
			Name: "plant-7", Groups: []string{"plants"},
			Subnets: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("10.1.0.0/16")},
		}},
		Groups: []policy.Group{{Name: "engineers"}, {Name: "plants", Subgroups: nil, Intra: true}},
		Relations: []policy.Relation{{
			Name: "eng-to-plants", From: "engineers", To: "plants", Direction: policy.OneWay,
			Services:  []policy.Service{{Proto: policy.ProtoTCP, Ports: []policy.PortRange{{Low: 502, High: 502}}}},
			NotBefore: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		}},
	}
	c.Networks = map[string][]Network{"plant-7": {
		{LAN: netip.MustParsePrefix("192.168.0.0/24"), Alias: netip.MustParsePrefix("10.200.7.0/24")},
		{LAN: netip.MustParsePrefix("10.1.0.0/16")},
	}}
}

func TestConfigEmpty(t *testing.T) {
	s, _ := openTest(t)
	c, err := s.Config(bg)
	must(t, err)
	if c.Revision != 0 || c.Networks == nil || len(c.Networks) != 0 || !reflect.DeepEqual(c.Model, policy.Model{}) {
		t.Fatalf("empty store: %+v", c)
	}
}

func TestConfigRoundTrip(t *testing.T) {
	s, path := openTest(t)
	var want Config
	sampleConfig(&want)
	got, err := s.Update(bg, func(c *Config) error {
		if c.Revision != 0 {
			t.Errorf("fn sees revision %d, want 0", c.Revision)
		}
		sampleConfig(c)
		c.Revision = 99 // ignored
		return nil
	})
	must(t, err)
	want.Revision = 1
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("Update returned\n%+v\nwant\n%+v", got, &want)
	}
	read, err := s.Config(bg)
	must(t, err)
	if !reflect.DeepEqual(read, &want) {
		t.Fatalf("Config returned\n%+v\nwant\n%+v", read, &want)
	}
	// A change that leaves the entries alone still counts as a revision.
	got, err = s.Update(bg, func(*Config) error { return nil })
	must(t, err)
	if got.Revision != 2 {
		t.Fatalf("revision %d, want 2", got.Revision)
	}

	// It survives reopening.
	must(t, s.Close())
	s2, err := Open(path)
	must(t, err)
	defer s2.Close()
	read, err = s2.Config(bg)
	must(t, err)
	want.Revision = 2
	if !reflect.DeepEqual(read, &want) {
		t.Fatalf("after reopening:\n%+v\nwant\n%+v", read, &want)
	}
}

func TestUpdateErrorChangesNothing(t *testing.T) {
	s, _ := openTest(t)
	before, err := s.Update(bg, func(c *Config) error { sampleConfig(c); return nil })
	must(t, err)
	writes := s.docWrites.Load()
	boom := errors.New("boom")
	got, err := s.Update(bg, func(c *Config) error {
		c.Model.Users = nil
		c.Model.Groups = append(c.Model.Groups, policy.Group{Name: "new"})
		delete(c.Networks, "plant-7")
		return boom
	})
	if !errors.Is(err, boom) || got != nil {
		t.Fatalf("Update = %v, %v; want nil, boom", got, err)
	}
	if n := s.docWrites.Load() - writes; n != 0 {
		t.Errorf("%d rows written for a failed update", n)
	}
	after, err := s.Config(bg)
	must(t, err)
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("failed Update changed the configuration:\n%+v\nwas\n%+v", after, before)
	}
}

func TestUpdateRejectsInvalid(t *testing.T) {
	s, _ := openTest(t)
	before, err := s.Update(bg, func(c *Config) error { sampleConfig(c); return nil })
	must(t, err)
	for name, fn := range map[string]func(*Config){
		"duplicate user": func(c *Config) {
			c.Model.Users = append(c.Model.Users, policy.User{Name: "alice"})
		},
		"duplicate relation after a valid change": func(c *Config) {
			c.Model.Groups = nil
			c.Model.Relations = append(c.Model.Relations, c.Model.Relations[0])
		},
		"networks of an unknown device": func(c *Config) {
			c.Networks["nope"] = []Network{{LAN: netip.MustParsePrefix("10.0.0.0/8")}}
		},
		"invalid LAN": func(c *Config) {
			c.Networks["plant-7"] = []Network{{}}
		},
	} {
		_, err := s.Update(bg, func(c *Config) error { fn(c); return nil })
		if err == nil {
			t.Errorf("%s: Update succeeded", name)
		}
		after, err := s.Config(bg)
		must(t, err)
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("%s: rejected Update changed the configuration", name)
		}
	}
}

func names[T any](items []T, name func(T) string) []string {
	var out []string
	for _, it := range items {
		out = append(out, name(it))
	}
	return out
}

func userNames(c *Config) []string {
	return names(c.Model.Users, func(u policy.User) string { return u.Name })
}

func TestUpdateDiffAndOrder(t *testing.T) {
	s, _ := openTest(t)
	step := func(wantWrites int64, fn func(*Config)) *Config {
		t.Helper()
		w := s.docWrites.Load()
		c, err := s.Update(bg, func(c *Config) error { fn(c); return nil })
		must(t, err)
		if n := s.docWrites.Load() - w; n != wantWrites {
			t.Errorf("%d rows written, want %d", n, wantWrites)
		}
		return c
	}
	c := step(3, func(c *Config) {
		for _, n := range []string{"carol", "alice", "bob"} {
			c.Model.Users = append(c.Model.Users, policy.User{Name: n})
		}
	})
	if got := userNames(c); !reflect.DeepEqual(got, []string{"carol", "alice", "bob"}) {
		t.Fatalf("users %v", got)
	}
	// Nothing changed: nothing written, revision still increments.
	c = step(0, func(*Config) {})
	if c.Revision != 2 {
		t.Fatalf("revision %d, want 2", c.Revision)
	}
	// Reordering alone writes nothing and keeps the creation order.
	c = step(0, func(c *Config) {
		u := c.Model.Users
		u[0], u[2] = u[2], u[0]
	})
	if got := userNames(c); !reflect.DeepEqual(got, []string{"carol", "alice", "bob"}) {
		t.Fatalf("users after reordering %v", got)
	}
	// One change, one row.
	c = step(1, func(c *Config) { c.Model.Users[1].Disabled = true })
	if !c.Model.Users[1].Disabled || c.Model.Users[0].Disabled || c.Model.Users[2].Disabled {
		t.Fatalf("users %+v", c.Model.Users)
	}
	// A deletion and an insertion (placed first by fn, stored last).
	c = step(2, func(c *Config) {
		c.Model.Users = append([]policy.User{{Name: "dave"}}, c.Model.Users[0], c.Model.Users[2])
	})
	if got := userNames(c); !reflect.DeepEqual(got, []string{"carol", "bob", "dave"}) {
		t.Fatalf("users %v", got)
	}
	// A network change rewrites its device only.
	step(2, func(c *Config) {
		c.Model.Devices = []policy.Device{{Name: "d1"}, {Name: "d2"}}
	})
	c = step(1, func(c *Config) {
		c.Networks["d2"] = []Network{{LAN: netip.MustParsePrefix("192.168.1.0/24")}}
	})
	if len(c.Networks) != 1 || c.Networks["d2"][0].LAN.String() != "192.168.1.0/24" {
		t.Fatalf("networks %v", c.Networks)
	}
	if c.Revision != 7 {
		t.Fatalf("revision %d, want 7", c.Revision)
	}
	// A name deleted and created again goes to the end.
	step(1, func(c *Config) { c.Model.Users = c.Model.Users[1:] })
	c = step(1, func(c *Config) { c.Model.Users = append(c.Model.Users, policy.User{Name: "carol"}) })
	if got := userNames(c); !reflect.DeepEqual(got, []string{"bob", "dave", "carol"}) {
		t.Fatalf("users %v", got)
	}
}

func TestReplace(t *testing.T) {
	s, _ := openTest(t)
	c, err := s.Config(bg)
	must(t, err)
	sampleConfig(c)
	got, err := s.Replace(bg, c)
	must(t, err)
	if got.Revision != 1 || len(got.Model.Users) != 2 {
		t.Fatalf("Replace returned %+v", got)
	}
	// c still says revision 0: stale.
	c.Model.Users = nil
	if _, err := s.Replace(bg, c); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Replace: %v, want ErrConflict", err)
	}
	now, err := s.Config(bg)
	must(t, err)
	if !reflect.DeepEqual(now, got) {
		t.Fatal("conflicting Replace changed the configuration")
	}
	got.Model.Users = nil
	got, err = s.Replace(bg, got)
	must(t, err)
	if got.Revision != 2 || len(got.Model.Users) != 0 {
		t.Fatalf("Replace returned %+v", got)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	s, _ := openTest(t)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := s.Update(bg, func(c *Config) error {
					c.Model.Users = append(c.Model.Users, policy.User{Name: fmt.Sprintf("u-%d-%d", w, i)})
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		}()
		// Readers at the same time see consistent snapshots.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				c, err := s.Config(bg)
				if err != nil {
					errs <- err
					return
				}
				if int64(len(c.Model.Users)) != c.Revision {
					errs <- fmt.Errorf("snapshot with %d users at revision %d", len(c.Model.Users), c.Revision)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c, err := s.Config(bg)
	must(t, err)
	if c.Revision != workers*each || len(c.Model.Users) != workers*each {
		t.Fatalf("revision %d with %d users, want %d", c.Revision, len(c.Model.Users), workers*each)
	}
}

func TestConcurrentStores(t *testing.T) {
	// Two Stores on one file (as two processes would be) serialize their
	// writes through SQLite's lock.
	s1, path := openTest(t)
	s2, err := Open(path)
	must(t, err)
	defer s2.Close()
	const each = 15
	var wg sync.WaitGroup
	for i, s := range []*Store{s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if _, err := s.Update(bg, func(c *Config) error {
					c.Model.Groups = append(c.Model.Groups, policy.Group{Name: fmt.Sprintf("g-%d-%d", i, j)})
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	c, err := s1.Config(bg)
	must(t, err)
	if c.Revision != 2*each || len(c.Model.Groups) != 2*each {
		t.Fatalf("revision %d with %d groups, want %d", c.Revision, len(c.Model.Groups), 2*each)
	}
}

func TestUpdatePanicReleasesLock(t *testing.T) {
	s, _ := openTest(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		s.Update(bg, func(c *Config) error {
			c.Model.Users = []policy.User{{Name: "ghost"}}
			panic("fn panics")
		})
	}()
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	c, err := s.Update(ctx, func(*Config) error { return nil })
	must(t, err)
	if c.Revision != 1 || len(c.Model.Users) != 0 {
		t.Fatalf("after a panicking update: %+v", c)
	}
}

// A change that disables a user deletes its tokens, one that removes a user
// deletes its account too, in the change's transaction; users the change
// keeps enabled, and accounts without a user (the bootstrap account), keep
// theirs.
func TestUpdateEndsTheSessionsOfUsersWhoLoseAccess(t *testing.T) {
	s, _ := openTest(t)
	expires := time.Now().Add(time.Hour)
	if _, err := s.Update(bg, func(c *Config) error {
		c.Model.Users = []policy.User{{Name: "alice"}, {Name: "bob"}, {Name: "carol"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "bob", "carol", "admin"} {
		must(t, s.PutAccount(bg, Account{Name: name, PasswordHash: "hash of " + name}))
		must(t, s.PutToken(bg, Token{Hash: hashOf(name), Account: name, Expires: expires}))
	}
	if _, err := s.Update(bg, func(c *Config) error {
		c.Model.Users = []policy.User{{Name: "alice", Disabled: true}, {Name: "carol"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name           string
		account, token bool
	}{
		{"alice", true, false}, // disabled
		{"bob", false, false},  // removed
		{"carol", true, true},
		{"admin", true, true},
	} {
		_, errA := s.Account(bg, c.name)
		_, errT := s.Token(bg, hashOf(c.name))
		if (errA == nil) != c.account || (errT == nil) != c.token {
			t.Errorf("%s: account %v, token %v; want account %v, token %v", c.name, errA, errT, c.account, c.token)
		}
	}
}

// The broker's settings are stored with the configuration: kept across a
// reopen, carried by Replace, left alone by an Update that does not touch
// them, removed when set to zero, and carried by a backup.
func TestSettings(t *testing.T) {
	s, path := openTest(t)
	c, err := s.Config(bg)
	must(t, err)
	if !c.Settings.IsZero() {
		t.Fatalf("a new store has settings %+v", c.Settings)
	}
	want := Settings{
		Listen: "10.0.0.1", Port: 1195, PublicAddress: "vpn.example",
		Pool: netip.MustParsePrefix("10.9.0.0/24"), UserRoutes: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16")},
		IPsecPort: -1, IKEPort: 501,
		Proposals: IPsecProposals{IKE: "aes256gcm16-prfsha384-ecp384", ESP: "aes256gcm16", Participants: map[string]string{"alice": "aes128gcm16-ecp256"}},
	}
	_, err = s.Update(bg, func(c *Config) error { c.Settings = want; return nil })
	must(t, err)
	_, err = s.Update(bg, func(c *Config) error {
		c.Model.Users = append(c.Model.Users, policy.User{Name: "alice"})
		return nil
	})
	must(t, err)
	s.Close()
	s, err = OpenWith(path, Options{SecretKey: testKey})
	must(t, err)
	defer s.Close()
	c, err = s.Config(bg)
	must(t, err)
	if !reflect.DeepEqual(c.Settings, want) {
		t.Fatalf("settings after a reopen: %+v; want %+v", c.Settings, want)
	}

	var backup bytes.Buffer
	must(t, s.Backup(bg, &backup, []byte("a backup passphrase")))

	c.Settings.PublicAddress = "other.example"
	c, err = s.Replace(bg, c)
	must(t, err)
	if c.Settings.PublicAddress != "other.example" {
		t.Fatalf("Replace did not store the settings: %+v", c.Settings)
	}
	c, err = s.Update(bg, func(c *Config) error { c.Settings = Settings{}; return nil })
	must(t, err)
	if !c.Settings.IsZero() {
		t.Fatalf("settings set to zero: %+v", c.Settings)
	}

	must(t, s.Restore(bg, &backup, []byte("a backup passphrase")))
	c, err = s.Config(bg)
	must(t, err)
	if !reflect.DeepEqual(c.Settings, want) {
		t.Fatalf("settings after a restore: %+v; want %+v", c.Settings, want)
	}
}
