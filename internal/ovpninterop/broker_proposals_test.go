package ovpninterop

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
)

// proposalsYAML is plantYAML with IPsec proposals of the installation and
// of dev1, and both devices on strongSwan.
const proposalsYAML = `
public_address: 10.99.1.1
pool: 10.8.0.0/24
user_routes: [10.200.0.0/16]
ipsec:
  ike_proposals: aes256gcm16-prfsha384-ecp384
  esp_proposals: aes128gcm16
groups:
  - name: engineers
  - name: plant1
  - name: plant2
users:
  - name: u1
    roles: [vpn_user]
    groups: [engineers]
devices:
  - name: dev1
    groups: [plant1]
    esp_proposals: aes256gcm16-ecp384
    networks:
      - lan: 192.168.0.0/24
        alias: 10.200.1.0/24
  - name: dev2
    groups: [plant2]
    networks:
      - lan: 192.168.0.0/24
        alias: 10.200.2.0/24
relations:
  - name: engineers-plant1
    from: engineers
    to: plant1
    direction: one-way
    services: [tcp, icmp]
licenses:
  - file: rg-64.lic
`

// swanctlProfile exports the swanctl profile of a participant with the
// broker's command, installs its certificate, key and CA in charon and
// returns its swanctl.conf.
func (l *plantLab) swanctlProfile(charon *swaninterop.Charon, name string) string {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.brk.Name, brokerBin, "-data", l.data, "-config", l.yaml, "-vendor-key", l.vendorKey, "swanctl-profile", name)
	archive, err := cmd.Output()
	if err != nil {
		l.t.Fatalf("swanctl-profile %s: %v", name, err)
	}
	var conf string
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return conf
		}
		if err != nil {
			l.t.Fatalf("profile archive of %s: %v", name, err)
		}
		body, _ := io.ReadAll(tr)
		if h.Name == "swanctl.conf" {
			conf = string(body)
			continue
		}
		charon.AddFile(l.t, h.Name, body)
	}
}

// Issue 16, item 6: the installation's IPsec proposals and a device's own,
// from broker.yaml and through the API, decide what strongSwan gateways
// negotiate: the exported profile offers them, a gateway that offers
// something else is refused with NO_PROPOSAL_CHOSEN, and a change through
// the API takes effect at the next connection while the tunnels that are
// up keep carrying traffic.
func TestBrokerIPsecProposals(t *testing.T) {
	swaninterop.Require(t)
	l := newPlantLab(t)
	WriteFile(t, filepath.Dir(l.yaml), "broker.yaml", proposalsYAML)
	l.start()
	l.bootstrap()

	// dev1: its own ESP proposal and the installation's IKE proposal, in
	// its profile and on the wire.
	gw1 := swaninterop.Start(t, l.ns["dev1"], swaninterop.Options{})
	conf := l.swanctlProfile(gw1, "dev1")
	for _, want := range []string{"proposals = aes256gcm16-prfsha384-ecp384\n", "esp_proposals = aes256gcm16-ecp384\n"} {
		if !strings.Contains(conf, want) {
			t.Fatalf("dev1's profile lacks %q:\n%s", want, conf)
		}
	}
	gw1.Load(t, strings.Replace(conf, `remote_addrs = "10.99.1.1"`, `remote_addrs = "10.99.3.1"`, 1))
	gw1.WaitLog(t, `CHILD_SA remotegate\{\d+\} established`, 20*time.Second)
	sas := gw1.ListSAs(t)
	for _, want := range []string{"AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384", "AES_GCM_16-256"} {
		if !strings.Contains(sas, want) {
			t.Fatalf("dev1's SAs lack %s:\n%s", want, sas)
		}
	}
	u1 := l.ns["u1"].Start(t, "openvpn", "--config", WriteFile(t, filepath.Dir(l.yaml), "u1.ovpn", l.brk.Run(t, 30*time.Second, brokerBin, "-data", l.data, "-config", l.yaml, "-vendor-key", l.vendorKey, "profile", "u1")))
	u1.WaitLog(t, "Initialization Sequence Completed", 30*time.Second)
	if d := pingWithin(l.ns["u1"], alias1, 10*time.Second); d < 0 {
		t.Fatalf("u1 cannot reach the LAN host behind dev1\ndev1's SAs:\n%s\nbroker:\n%s", gw1.ListSAs(t), l.broker.Log())
	}

	// dev2 has no own proposal: the installation's ESP (AES-128-GCM) is
	// in its profile; offering AES-256-GCM instead, it gets no child.
	gw2 := swaninterop.Start(t, l.ns["dev2"], swaninterop.Options{})
	conf2 := l.swanctlProfile(gw2, "dev2")
	if !strings.Contains(conf2, "esp_proposals = aes128gcm16\n") {
		t.Fatalf("dev2's profile does not offer the installation's ESP proposal:\n%s", conf2)
	}
	conf2 = strings.Replace(conf2, `remote_addrs = "10.99.1.1"`, `remote_addrs = "10.99.4.1"`, 1)
	conf2 = strings.Replace(conf2, "esp_proposals = aes128gcm16\n", "esp_proposals = aes256gcm16\n", 1)
	conf2 = strings.Replace(conf2, "start_action = start", "start_action = none", 1)
	gw2.Load(t, conf2)
	if err := gw2.Initiate(t, "remotegate"); err == nil {
		t.Fatalf("dev2 got a child SA with a proposal the broker does not accept:\n%s", gw2.ListSAs(t))
	}
	gw2.WaitLog(t, `NO_PROPOSAL_CHOSEN`, 10*time.Second)

	// Through the API: bad input is refused with a reason, and nothing
	// changes; then dev2 gets AES-256-GCM of its own.
	var got map[string]any
	if st := l.call("PUT", "/api/v1/ipsec/proposals", map[string]any{"ike": "aes256gcm16-prfsha384-ecp384", "esp": "aes999"}, &got); st != http.StatusBadRequest || !strings.Contains(got["error"].(string), "aes999") {
		t.Fatalf("an unknown algorithm: %d %v, want 400 naming it", st, got)
	}
	if st := l.call("PUT", "/api/v1/ipsec/proposals", map[string]any{"participants": map[string]string{"nobody": "aes256gcm16"}}, &got); st != http.StatusBadRequest || !strings.Contains(got["error"].(string), "nobody") {
		t.Fatalf("proposals of no participant: %d %v, want 400 naming it", st, got)
	}
	want := map[string]any{
		"ike": "aes256gcm16-prfsha384-ecp384", "esp": "aes128gcm16",
		"participants": map[string]any{"dev1": "aes256gcm16-ecp384", "dev2": "aes256gcm16"},
	}
	l.must(http.StatusOK, "PUT", "/api/v1/ipsec/proposals", want, &got)
	l.must(http.StatusOK, "GET", "/api/v1/ipsec/proposals", nil, &got)
	if b, _ := json.Marshal(got); !strings.Contains(string(b), `"dev2":"aes256gcm16"`) {
		t.Fatalf("GET /api/v1/ipsec/proposals = %v", got)
	}
	// A new connection: the IKE SA without a child that dev2 kept chose
	// its children's proposals when it was made.
	gw2.Swanctl(10*time.Second, "--terminate", "--ike", "remotegate")
	if err := gw2.Initiate(t, "remotegate"); err != nil {
		t.Fatalf("dev2 after its own proposal was set: %v\n%s", err, gw2.Log())
	}
	if sas := gw2.ListSAs(t); !strings.Contains(sas, "AES_GCM_16-256") {
		t.Fatalf("dev2's SAs:\n%s", sas)
	}

	// The installation's IKE proposal changes: a new IKE SA with the old
	// one is refused, while dev1's tunnel, up before, keeps carrying.
	want["ike"] = "aes128gcm16-prfsha256-curve25519"
	l.must(http.StatusOK, "PUT", "/api/v1/ipsec/proposals", want, nil)
	gw2.Swanctl(10*time.Second, "--terminate", "--ike", "remotegate")
	if err := gw2.Initiate(t, "remotegate"); err == nil {
		t.Fatalf("dev2 got an IKE SA with an IKE proposal the broker no longer accepts:\n%s", gw2.ListSAs(t))
	}
	if got := l.ns["u1"].Ping(t, alias1, 3); got != 3 {
		t.Fatalf("u1 -> dev1's LAN after the IKE proposals changed: %d of 3 answered", got)
	}
}
