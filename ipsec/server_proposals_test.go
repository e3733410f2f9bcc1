package ipsec

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/tunnel"
)

func mustParseESP(t *testing.T, s string) []Proposal {
	t.Helper()
	p, err := ParseESPProposals(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustParseIKE(t *testing.T, s string) []Proposal {
	t.Helper()
	p, err := ParseIKEProposals(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A peer's own ESP proposals (Config.ChildProposals) decide its children:
// the server chooses from them, not from ESPProposals, whatever the peer
// prefers, and a peer that offers none of them gets no child.
func TestChildProposalsPerPeer(t *testing.T) {
	scfg := pskServerConfig(t)
	// The server's own list prefers AES-128-GCM.
	scfg.ESPProposals = mustParseESP(t, "aes128gcm16,aes256gcm16")
	only256 := mustParseESP(t, "aes256gcm16")
	var mu sync.Mutex
	var asked []string
	scfg.ChildProposals = func(peer tunnel.Identity) []Proposal {
		mu.Lock()
		asked = append(asked, peer.Name)
		mu.Unlock()
		if peer.Name == "device" {
			return only256
		}
		return nil
	}
	h := newEchoHandler()
	_, addr := testServer(t, scfg, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The peer prefers AES-128-GCM too; its own list on the server has
	// only AES-256-GCM.
	d := pskDialConfig(t)
	d.ESPProposals = mustParseESP(t, "aes128gcm16,aes256gcm16")
	c, err := Dial(ctx, loopbackConn(t), addr, d)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ESPProposal(); got != only256[0] {
		t.Errorf("child proposal %v, want %v (the peer's own list)", got, only256[0])
	}
	roundTrip(t, c, testVIP, testPeer, 3)
	c.Close()
	mu.Lock()
	first := slices.Clone(asked)
	mu.Unlock()
	if len(first) == 0 || first[0] != "device" {
		t.Errorf("ChildProposals asked for %q, want the admitted identity \"device\"", first)
	}

	// A peer that offers only what its list leaves out gets no tunnel.
	d = pskDialConfig(t)
	d.ESPProposals = mustParseESP(t, "aes128gcm16")
	if c, err := Dial(ctx, loopbackConn(t), addr, d); !errors.Is(err, ErrNoProposal) {
		if err == nil {
			c.Close()
		}
		t.Errorf("a child offer outside the peer's own proposals: %v, want ErrNoProposal", err)
	}
}

// SetProposals changes what new IKE SAs accept, at once, and refuses a
// list that could accept nobody.
func TestSetProposals(t *testing.T) {
	srv, addr := testServer(t, pskServerConfig(t), newEchoHandler())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	x25519 := mustParseIKE(t, "aes128gcm16-prfsha256-curve25519")

	d := pskDialConfig(t)
	d.IKEProposals = x25519
	c, err := Dial(ctx, loopbackConn(t), addr, d)
	if err != nil {
		t.Fatalf("with the defaults: %v", err)
	}
	c.Close()

	if err := srv.SetProposals(mustParseIKE(t, "aes256gcm16-prfsha384-ecp384"), mustParseESP(t, "aes256gcm16")); err != nil {
		t.Fatal(err)
	}
	if c, err := Dial(ctx, loopbackConn(t), addr, d); !errors.Is(err, ErrNoProposal) {
		if err == nil {
			c.Close()
		}
		t.Errorf("an IKE proposal SetProposals left out: %v, want ErrNoProposal", err)
	}
	d = pskDialConfig(t)
	d.ESPProposals = mustParseESP(t, "aes128gcm16")
	if c, err := Dial(ctx, loopbackConn(t), addr, d); !errors.Is(err, ErrNoProposal) {
		if err == nil {
			c.Close()
		}
		t.Errorf("an ESP proposal SetProposals left out: %v, want ErrNoProposal", err)
	}
	d = pskDialConfig(t)
	c, err = Dial(ctx, loopbackConn(t), addr, d)
	if err != nil {
		t.Fatalf("a peer offering the defaults after SetProposals: %v", err)
	}
	if got, want := c.IKEProposal().String(), "aes256gcm16-prfsha384-ecp384"; got != want {
		t.Errorf("IKE proposal %s, want %s", got, want)
	}
	if got, want := c.ESPProposal().String(), "aes256gcm16"; got != want {
		t.Errorf("ESP proposal %s, want %s", got, want)
	}
	c.Close()

	if err := srv.SetProposals([]Proposal{}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("SetProposals with an empty list: %v, want ErrConfig", err)
	}
	if err := srv.SetProposals([]Proposal{{Encryption: EncrAESGCM16, KeyBits: 256}}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("SetProposals with an IKE proposal without PRF and group: %v, want ErrConfig", err)
	}
	// nil is the defaults again.
	if err := srv.SetProposals(nil, nil); err != nil {
		t.Fatal(err)
	}
	d.IKEProposals = x25519
	if c, err = Dial(ctx, loopbackConn(t), addr, d); err != nil {
		t.Fatalf("back to the defaults: %v", err)
	}
	c.Close()
}
