package model_test

import (
	"reflect"
	"testing"

	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/store"
)

// The IPsec proposals: stored as given, refused when they do not parse or
// name no participant, told to Config.Applied when in force, and a deleted
// participant's own are gone with it.
func TestIPsecProposals(t *testing.T) {
	var applied []store.IPsecProposals
	l := newLab(t, func(c *model.Config) {
		c.Applied = func(cfg *store.Config) { applied = append(applied, cfg.Settings.Proposals) }
	})
	if len(applied) != 1 || !applied[0].IsZero() {
		t.Fatalf("Applied at Load: %+v, want one call with no proposals", applied)
	}
	if err := l.m.CreateDevice(l.ctx, "root", model.Device{Name: "gw1"}); err != nil {
		t.Fatal(err)
	}
	want := store.IPsecProposals{IKE: "aes256gcm16-prfsha384-ecp384", ESP: "aes128gcm16", Participants: map[string]string{"gw1": "aes256gcm16-ecp384"}}
	if err := l.m.SetIPsecProposals(l.ctx, "root", want); err != nil {
		t.Fatal(err)
	}
	if got, err := l.m.IPsecProposals(l.ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("IPsecProposals = %+v, %v; want %+v", got, err, want)
	}
	if last := applied[len(applied)-1]; !reflect.DeepEqual(last, want) {
		t.Fatalf("Applied after the change: %+v, want %+v", last, want)
	}
	p, err := model.ParseIPsecProposals(l.config())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.ESPFor("gw1"); len(got) != 1 || got[0].String() != "aes256gcm16-ecp384" {
		t.Errorf("ESPFor(gw1) = %v", got)
	}
	if got := p.ESPFor("root"); len(got) != 1 || got[0].String() != "aes128gcm16" {
		t.Errorf("ESPFor(root) = %v, want the installation's", got)
	}
	if len(p.IKE) != 1 || p.IKE[0].String() != "aes256gcm16-prfsha384-ecp384" {
		t.Errorf("IKE = %v", p.IKE)
	}

	l.mustFail(l.m.SetIPsecProposals(l.ctx, "root", store.IPsecProposals{IKE: "aes999-sha256-ecp256"}), model.ErrInvalid, "aes999")
	l.mustFail(l.m.SetIPsecProposals(l.ctx, "root", store.IPsecProposals{ESP: "aes128gcm16-prfsha256"}), model.ErrInvalid, "ESP")
	l.mustFail(l.m.SetIPsecProposals(l.ctx, "root", store.IPsecProposals{Participants: map[string]string{"nobody": "aes128gcm16"}}), model.ErrInvalid, "nobody")
	if got, _ := l.m.IPsecProposals(l.ctx); !reflect.DeepEqual(got, want) {
		t.Fatalf("a refused change stored %+v", got)
	}
	if last := applied[len(applied)-1]; !reflect.DeepEqual(last, want) {
		t.Fatalf("Applied after refused changes: %+v, want %+v", last, want)
	}

	if err := l.m.DeleteDevice(l.ctx, "root", "gw1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.m.IPsecProposals(l.ctx); got.Participants != nil || got.ESP != "aes128gcm16" {
		t.Fatalf("after deleting gw1: %+v, want its own proposals gone and the installation's kept", got)
	}
	// Nil means the defaults, which the ipsec package has.
	if p, err := model.ParseIPsecProposals(&store.Config{}); err != nil || p.IKE != nil || p.ESPFor("x") != nil {
		t.Fatalf("no proposals: %+v, %v", p, err)
	}
}
