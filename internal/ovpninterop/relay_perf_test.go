package ovpninterop

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// relayYAML is the broker's side of TestRelayVsStock: one user and one
// device whose LAN is routed under its real prefix (no alias, no NAT), as
// stock openvpn routes it with iroute.
const relayYAML = `
public_address: 10.99.1.1
pool: 10.8.0.0/24
groups:
  - name: engineers
  - name: plant
users:
  - name: user1
    roles: [vpn_user]
    groups: [engineers]
devices:
  - name: dev1
    groups: [plant]
    networks:
      - lan: 192.168.0.0/24
relations:
  - name: engineers-plant
    from: engineers
    to: plant
    direction: one-way
    services: [any]
`

// lanHost is the iperf3 server behind the device.
var lanHost = netip.MustParseAddr("192.168.0.10")

// relayNet is one round's namespaces: the server (broker or stock openvpn)
// linked to the user (10.99.1.0/24) and to the device (10.99.2.0/24), and
// a host at 192.168.0.10 on the device's LAN.
type relayNet struct {
	srv, user, dev, lan *netns.NS
}

func relayTopology(t *testing.T) relayNet {
	t.Helper()
	n := relayNet{srv: netns.New(t, "rgrs"), user: netns.New(t, "rgru"), dev: netns.New(t, "rgrd"), lan: netns.New(t, "rgrl")}
	netns.Link(t, n.srv, netip.MustParsePrefix("10.99.1.1/24"), n.user, netip.MustParsePrefix("10.99.1.2/24"))
	netns.Link(t, n.srv, netip.MustParsePrefix("10.99.2.1/24"), n.dev, netip.MustParsePrefix("10.99.2.2/24"))
	netns.Link(t, n.dev, netip.MustParsePrefix("192.168.0.1/24"), n.lan, netip.PrefixFrom(lanHost, 24))
	n.dev.Run(t, 5*time.Second, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	n.lan.Run(t, 5*time.Second, "ip", "route", "add", "default", "via", "192.168.0.1")
	return n
}

// brokerProfile exports a participant's profile from the broker and points
// it at the broker's address on the participant's link, with the one
// cipher and the transport of the run.
func brokerProfile(t *testing.T, n relayNet, data, yaml, name, remote, proto, cipher string) string {
	t.Helper()
	profile := n.srv.Run(t, 30*time.Second, brokerBin, "-data", data, "-config", yaml, "profile", name)
	transport := "udp"
	if proto == "tcp" {
		transport = "tcp-client"
	}
	for _, r := range []struct{ old, new string }{
		{"remote 10.99.1.1 1194", "remote " + remote + " 1194"},
		{"data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305", "data-ciphers " + cipher},
		{"proto udp\n", "proto " + transport + "\n"},
	} {
		if !strings.Contains(profile, r.old) {
			t.Fatalf("profile of %s has no %q:\n%s", name, r.old, profile)
		}
		profile = strings.Replace(profile, r.old, r.new, 1)
	}
	return profile
}

// TestRelayVsStock measures, side by side in one run, the TCP throughput
// from a user to a host on a device's LAN through the broker's userspace
// relay (examples/broker) and through stock `openvpn --server` with
// client-to-client and iroute, which also relays between its clients
// without a round trip through the server's TUN. Both clients are stock
// openvpn in both cases; the same namespaces, cipher and transport; the
// implementations alternate per round. Like TestThroughputVsStock it
// reports and does not assert a ratio (results in docs/PERFORMANCE.md).
//
// RG_PERF=quick: two rounds of 5 s, UDP only. RG_PERF_PROTO=udp or tcp
// restricts the run to one transport.
func TestRelayVsStock(t *testing.T) {
	if os.Getenv("RG_PERF") == "" {
		t.Skip("SKIPPING relay throughput comparison: set RG_PERF=1 (RG_PERF=1 go test -run TestRelayVsStock -v ./internal/ovpninterop)")
	}
	netns.Require(t, "openvpn", "iperf3", "ping", "sysctl")
	binaries(t)
	files := lab(t)
	rounds, d := 3, 10*time.Second
	protos := []string{"udp", "tcp"}
	if os.Getenv("RG_PERF") == "quick" {
		rounds, d, protos = 2, 5*time.Second, protos[:1]
	}
	if p := os.Getenv("RG_PERF_PROTO"); p != "" {
		protos = []string{p}
	}
	const cipher = "AES-256-GCM"
	// The device's certificate is client2: its common name names the
	// client-config-dir file with the iroute.
	ccd := t.TempDir()
	WriteFile(t, ccd, "client2", "iroute 192.168.0.0 255.255.255.0\n")
	var report strings.Builder
	for _, proto := range protos {
		var ours, stock, oursCPU, stockCPU []float64
		for r := 0; r < rounds; r++ {
			for _, impl := range []string{"remotegate", "stock"} {
				n := relayTopology(t)
				var s, user, dev *netns.Process
				if impl == "stock" {
					o := Options{Proto: proto, Protection: "tls-crypt", Cipher: cipher, Port: 1194, Extra: []string{
						"client-to-client", "client-config-dir " + ccd,
						"route 192.168.0.0 255.255.255.0", `push "route 192.168.0.0 255.255.255.0"`,
					}}
					s = n.srv.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "server.conf", ServerConfig(o, files)))
					s.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
					dc, uc := o, o
					dc.ServerAddr, uc.ServerAddr = "10.99.2.1", "10.99.1.1"
					// The LAN route is pushed to every client; the device
					// has the LAN on its own link and keeps it there (the
					// broker pushes devices only the pool).
					dc.Extra, uc.Extra = []string{`pull-filter ignore "route 192.168.0.0 "`}, nil
					dev = n.dev.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "dev.ovpn", ClientConfig(t, dc, files, "client2")))
					user = n.user.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "user.ovpn", ClientConfig(t, uc, files, "client1")))
				} else {
					dir := t.TempDir()
					data, yaml := filepath.Join(dir, "data"), WriteFile(t, dir, "broker.yaml", relayYAML)
					s = n.srv.Start(t, brokerBin, "-data", data, "-config", yaml, "-api", "", "-metrics", "")
					s.WaitLog(t, "remotegate broker is running", 30*time.Second)
					dp := brokerProfile(t, n, data, yaml, "dev1", "10.99.2.1", proto, cipher)
					up := brokerProfile(t, n, data, yaml, "user1", "10.99.1.1", proto, cipher)
					dev = n.dev.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "dev1.ovpn", dp))
					user = n.user.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "user1.ovpn", up))
				}
				dev.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
				user.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
				for name, c := range map[string]*netns.Process{"device": dev, "user": user} {
					if !regexp.MustCompile(`Data Channel: cipher '` + cipher + `'`).MatchString(c.Log()) {
						t.Fatalf("%s: the %s's client did not negotiate %s:\n%s", impl, name, cipher, c.Log())
					}
					if strings.Contains(c.Log(), "Initialization Sequence Completed With Errors") {
						t.Fatalf("%s: the %s's client could not apply what was pushed:\n%s", impl, name, c.Log())
					}
				}
				if got := pingWithin(n.user, lanHost, 10*time.Second); got < 0 {
					t.Fatalf("%s %s round %d: the user gets no answer from %v behind the device\nserver log:\n%s\nuser log:\n%s\ndevice log:\n%s",
						impl, proto, r, lanHost, s.Log(), user.Log(), dev.Log())
				}
				before := sample(t, s, user, n.srv)
				devBefore := cpuTime(t, dev)
				res := iperf3(t, n.user, n.lan, lanHost, d)
				after := sample(t, s, user, n.srv)
				devAfter := cpuTime(t, dev)
				mb := res.BitsPerSecond * d.Seconds() / 8 / 1e6
				per := func(a, b uint64) float64 { return float64(b-a) / mb }
				pct := func(a, b time.Duration) float64 { return 100 * (b - a).Seconds() / d.Seconds() }
				t.Logf("%s %s %s round %d: %.0f Mbit/s; server CPU %.0f%%, user client CPU %.0f%%, device client CPU %.0f%%, machine idle %.0f%%; "+
					"server per MB: link %.0f packets in, %.0f out; TUN %.0f written, %.0f read; context switches %.0f voluntary, %.0f involuntary",
					impl, proto, cipher, r, res.BitsPerSecond/1e6,
					pct(before.serverCPU, after.serverCPU), pct(before.clientCPU, after.clientCPU), pct(devBefore, devAfter),
					100*(after.idle-before.idle)/d.Seconds(),
					per(before.linkRx, after.linkRx), per(before.linkTx, after.linkTx), per(before.tunRx, after.tunRx), per(before.tunTx, after.tunTx),
					per(before.switches[0], after.switches[0]), per(before.switches[1], after.switches[1]))
				gb := res.BitsPerSecond * d.Seconds() / 8 / 1e9
				cpuPerGB := (after.serverCPU - before.serverCPU).Seconds() / gb
				if impl == "stock" {
					stock, stockCPU = append(stock, res.BitsPerSecond/1e6), append(stockCPU, cpuPerGB)
				} else {
					ours, oursCPU = append(ours, res.BitsPerSecond/1e6), append(oursCPU, cpuPerGB)
				}
				_ = user.Stop()
				_ = dev.Stop()
				_ = s.Stop()
			}
		}
		line := tableLine(proto, cipher, ours, stock, oursCPU, stockCPU)
		report.WriteString(line)
		t.Log(strings.TrimSpace(line))
	}
	t.Logf("\n%s%s", tableHeader, report.String())
}
