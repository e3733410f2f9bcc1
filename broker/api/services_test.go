package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/policy"
)

// A relation created without services lets every service through, as
// openapi.json says of the Relation schema's services.
func TestOmittedServicesMeanEveryService(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Description string `json:"description"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	if d := doc.Components.Schemas["Relation"].Properties["services"].Description; !strings.Contains(d, "Omitted or empty: every service") {
		t.Fatalf("openapi.json does not say what an omitted services means: %q", d)
	}

	e := newEnv(t)
	root := e.mustLogin("root")
	for _, g := range []string{"engineers", "plant1"} {
		e.expect(http.StatusCreated, "POST", "/api/v1/groups", root, map[string]any{"name": g})
	}
	e.expect(http.StatusCreated, "POST", "/api/v1/users", root, map[string]any{"name": "u1", "roles": []string{"vpn_user"}, "groups": []string{"engineers"}})
	e.expect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{"name": "plant1-gw", "groups": []string{"plant1"}})
	out := string(e.expect(http.StatusCreated, "POST", "/api/v1/relations", root, map[string]any{
		"name": "eng-plant1", "from": "engineers", "to": "plant1", "direction": "one-way"}))
	if strings.Contains(out, "services") {
		t.Fatalf("the relation answered with services: %s", out)
	}
	snap := e.srv.m.Snapshot()
	u1, _ := snap.Lookup("u1")
	gw, _ := snap.Lookup("plant1-gw")
	for _, f := range []policy.Flow{
		{Proto: policy.ProtoTCP, DstPort: 102},
		{Proto: policy.ProtoUDP, DstPort: 9999},
		{Proto: policy.ProtoICMP, ICMPType: 8},
		{Proto: 47},
	} {
		f.From, f.To = u1, gw
		if d := snap.Allowed(&f, e.clock.now()); !d.Allowed {
			t.Errorf("proto %d port %d: %s; want allowed by the relation without services", f.Proto, f.DstPort, snap.Explain(&f, d))
		}
	}
	back := policy.Flow{From: gw, To: u1, Proto: policy.ProtoTCP, DstPort: 22}
	if d := snap.Allowed(&back, e.clock.now()); d.Allowed {
		t.Error("the one-way relation without services lets the device open flows too")
	}
}
