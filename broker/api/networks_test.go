package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Networks the broker cannot route are refused with 400 and a message
// naming the network and the conflict; nothing is stored. The test env's
// tunnel pool is 10.8.0.0/24.
func TestRiskyNetworksAreRefused(t *testing.T) {
	e := newEnv(t)
	root := e.mustLogin("root")
	gw1Nets := []map[string]string{{"lan": "192.168.0.0/24", "alias": "10.200.1.0/24"}}
	e.expect(http.StatusCreated, "POST", "/api/v1/devices", root, map[string]any{"name": "gw1", "networks": gw1Nets})
	before, err := e.store.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		nets []map[string]string
		want string
	}{
		{[]map[string]string{{"lan": "192.168.0.0/24", "alias": "10.8.0.0/24"}}, "alias 10.8.0.0/24 overlaps the tunnel pool 10.8.0.0/24"},
		{[]map[string]string{{"lan": "10.8.0.0/25"}}, "lan 10.8.0.0/25 overlaps the tunnel pool 10.8.0.0/24"},
		{[]map[string]string{{"lan": "192.168.0.0/24", "alias": "127.0.5.0/24"}}, "alias 127.0.5.0/24 overlaps loopback 127.0.0.0/8"},
		{[]map[string]string{{"lan": "224.0.1.0/24", "alias": "10.200.2.0/24"}}, "lan 224.0.1.0/24 overlaps multicast 224.0.0.0/4"},
		{[]map[string]string{{"lan": "169.254.0.0/16"}}, "lan 169.254.0.0/16 overlaps link-local 169.254.0.0/16 (expose it under an alias)"},
		{[]map[string]string{{"lan": "192.168.7.0/24"}, {"lan": "192.168.7.0/24"}}, "lan 192.168.7.0/24 is listed twice"},
		{[]map[string]string{{"lan": "192.168.0.0/16"}, {"lan": "192.168.7.0/24"}}, "lan 192.168.7.0/24 overlaps its lan 192.168.0.0/16"},
		{[]map[string]string{{"lan": "fd00:7::/64"}}, "lan fd00:7::/64 is IPv6; IPv6 networks need an IPv6 tunnel pool (pool6)"},
		{[]map[string]string{{"lan": "192.168.0.0/24", "alias": "fd00:7::/120"}}, "alias fd00:7::/120 and lan 192.168.0.0/24 differ in size"},
	} {
		for _, req := range []struct {
			method, path string
			body         any
		}{
			{"PUT", "/api/v1/devices/gw1/networks", c.nets},
			{"PUT", "/api/v1/devices/gw1", map[string]any{"name": "gw1", "networks": c.nets}},
			{"POST", "/api/v1/devices", map[string]any{"name": "gw2", "networks": c.nets}},
		} {
			code, body := e.call(req.method, req.path, root, req.body)
			var msg struct{ Error string }
			_ = json.Unmarshal(body, &msg)
			if code != http.StatusBadRequest || !strings.Contains(msg.Error, c.want) {
				t.Errorf("%s %s with %v: %d %s; want 400 saying %q", req.method, req.path, c.nets, code, body, c.want)
			}
		}
	}
	e.expect(http.StatusNotFound, "GET", "/api/v1/devices/gw2", root, nil)
	var nets []map[string]string
	if err := json.Unmarshal(e.expect(http.StatusOK, "GET", "/api/v1/devices/gw1/networks", root, nil), &nets); err != nil ||
		len(nets) != 1 || nets[0]["lan"] != "192.168.0.0/24" || nets[0]["alias"] != "10.200.1.0/24" {
		t.Fatalf("gw1's networks after the refusals: %v, %v", nets, err)
	}
	after, err := e.store.Config(context.Background())
	if err != nil || after.Revision != before.Revision {
		t.Fatalf("the store went from revision %d to %d (%v); want nothing stored", before.Revision, after.Revision, err)
	}
}
