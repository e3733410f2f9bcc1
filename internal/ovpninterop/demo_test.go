package ovpninterop

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// TestOVPNServerDemo follows examples/ovpn-server's doc: `ovpn-server -demo
// DIR` writes a server config and a client profile (rendered by
// broker/profile) and serves; stock openvpn connects with the profile as
// written, gets its tunnel address and agrees on a data channel cipher
// with the server.
// (Both run in one namespace, as the demo listens on 127.0.0.1 only: a
// ping to the server's tunnel address would stay local, so none is sent.)
func TestOVPNServerDemo(t *testing.T) {
	netns.Require(t, "openvpn", "ping")
	binaries(t)
	ns := netns.New(t, "rgdemo")
	dir := filepath.Join(t.TempDir(), "demo")
	s := ns.Start(t, serverBin, "-demo", dir)
	s.WaitLog(t, "listening", 10*time.Second)
	c := ns.Start(t, "openvpn", "--config", filepath.Join(dir, "client.ovpn"))
	c.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	// The profile writes no verb line: the client logs no cipher, the
	// server does.
	s.WaitLog(t, "session up.*name=demo-client.*cipher=AES-256-GCM", 5*time.Second)
	if a := tunnelAddr(t, c.Log()); !netip.MustParsePrefix("10.8.0.0/24").Contains(a) || a == netip.MustParseAddr("10.8.0.1") {
		t.Errorf("tunnel address %v, want one of the demo's clients in 10.8.0.0/24\nserver:\n%s", a, s.Log())
	}
}
