package ovpninterop

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// TestExampleBrokerAsReadmeSays follows the README's first screen in a
// namespace: start examples/broker with no arguments, export the
// engineer's profile with the command it prints, and connect a stock
// openvpn client with it. The client gets the tunnel and the route to the
// plant's alias network.
func TestExampleBrokerAsReadmeSays(t *testing.T) {
	netns.Require(t, "openvpn")
	binaries(t)
	ns := netns.New(t, "rgdemo")
	data := filepath.Join(t.TempDir(), "remotegate-data")
	b := ns.Start(t, brokerBin, "-data", data)
	b.WaitLog(t, "remotegate broker is running", 30*time.Second)
	if !strings.Contains(b.Log(), "profile engineer > engineer.ovpn") {
		t.Fatalf("the broker does not say how to export a profile:\n%s", b.Log())
	}
	profile := ns.Run(t, 30*time.Second, brokerBin, "-data", data, "profile", "engineer")
	if !strings.HasPrefix(profile, "# remotegate profile for \"engineer\"") || !strings.Contains(profile, "<tls-crypt>") {
		t.Fatalf("profile:\n%s", profile)
	}
	c := ns.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "engineer.ovpn", profile))
	c.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	if !strings.Contains(c.Log(), "net_route_v4_add: 10.200.1.0/24") {
		t.Errorf("the engineer got no route to plant 1's alias network:\n%s", c.Log())
	}
	if a := tunnelAddr(t, c.Log()); a.String() != "10.8.0.2" {
		t.Errorf("tunnel address %v, want 10.8.0.2", a)
	}
	// Metrics, on the loopback address only.
	if out := ns.Run(t, 10*time.Second, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9155 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"); !strings.Contains(out, "remotegate_sessions 1") {
		t.Errorf("metrics:\n%s", out)
	}
	// The address survives a broker restart.
	_ = c.Stop()
	_ = b.Stop()
	b2 := ns.Start(t, brokerBin, "-data", data)
	b2.WaitLog(t, "remotegate broker is running", 30*time.Second)
	if out := ns.Run(t, 30*time.Second, brokerBin, "-data", data, "status"); !strings.Contains(out, "engineer             10.8.0.2") {
		t.Errorf("status after restart:\n%s", out)
	}
}
