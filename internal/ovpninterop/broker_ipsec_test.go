package ovpninterop

import (
	"archive/tar"
	"bytes"
	"io"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/swaninterop"
)

const mixedYAML = `
listen: 10.98.0.1
public_address: 10.98.0.1
pool: 10.8.0.0/24
user_routes: [10.200.0.0/16]
groups:
  - name: engineers
  - name: plant1
users:
  - name: u1
    roles: [vpn_user]
    groups: [engineers]
  - name: u2
    roles: [vpn_user]
devices:
  - name: gw1
    groups: [plant1]
    networks:
      - lan: 192.168.0.0/24
        alias: 10.200.1.0/24
      - lan: 192.168.1.0/24
        alias: 10.200.2.0/24
relations:
  - name: engineers-plant1
    from: engineers
    to: plant1
    direction: one-way
    services: [tcp, icmp]
`

// Issue 6, acceptance 5: through examples/broker, an engineer on stock
// OpenVPN reaches the LAN host behind a plant gateway on strongSwan IPsec,
// under the gateway's NAT alias and only as the relations allow: the
// engineer without a relation does not get through, and the plant may not
// open flows to the engineer (one-way). Issue 16: the gateway has two
// LANs, one child SA each as its profile says, and the hosts on both are
// reached, each LAN's traffic on its own child.
func TestOpenVPNUserReachesIPsecDevice(t *testing.T) {
	netns.Require(t, "openvpn", "ping", "sysctl", "iperf3")
	swaninterop.Require(t)
	binaries(t)
	brk := netns.New(t, "rgbrk")
	brk.Run(t, 5*time.Second, "ip", "addr", "add", "10.98.0.1/32", "dev", "lo")
	peers := map[string]*netns.NS{}
	for i, name := range []string{"u1", "u2", "gw1"} {
		ns := netns.New(t, "rg"+name)
		netns.Link(t, brk, netip.MustParsePrefix("10.98."+itoa(i+1)+".1/24"), ns, netip.MustParsePrefix("10.98."+itoa(i+1)+".2/24"))
		ns.Run(t, 5*time.Second, "ip", "route", "add", "10.98.0.1/32", "via", "10.98."+itoa(i+1)+".1")
		peers[name] = ns
	}
	gw := peers["gw1"]
	lan := netns.New(t, "rglan")
	netns.Link(t, gw, netip.MustParsePrefix("192.168.0.1/24"), lan, netip.MustParsePrefix("192.168.0.10/24"))
	gw.Run(t, 5*time.Second, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	lan.Run(t, 5*time.Second, "ip", "route", "add", "default", "via", "192.168.0.1")
	lan2 := netns.New(t, "rglan2")
	netns.Link(t, gw, netip.MustParsePrefix("192.168.1.1/24"), lan2, netip.MustParsePrefix("192.168.1.10/24"))
	lan2.Run(t, 5*time.Second, "ip", "route", "add", "default", "via", "192.168.1.1")

	dir := t.TempDir()
	data := dir + "/data"
	yaml := WriteFile(t, dir, "broker.yaml", mixedYAML)
	b := brk.Start(t, brokerBin, "-data", data, "-config", yaml, "-api", "", "-metrics", "")
	b.WaitLog(t, "remotegate broker is running", 30*time.Second)
	if !strings.Contains(b.Log(), "IPsec listening") {
		t.Fatalf("the broker does not serve IPsec:\n%s", b.Log())
	}

	// The gateway: strongSwan with the profile the broker exports.
	cmd := exec.Command("ip", "netns", "exec", brk.Name, brokerBin, "-data", data, "-config", yaml, "swanctl-profile", "gw1")
	archive, err := cmd.Output()
	if err != nil {
		t.Fatalf("swanctl-profile: %v", err)
	}
	charon := swaninterop.Start(t, gw, swaninterop.Options{})
	var conf string
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("profile archive: %v", err)
		}
		body, _ := io.ReadAll(tr)
		if h.Name == "swanctl.conf" {
			conf = string(body)
			continue
		}
		charon.AddFile(t, h.Name, body)
	}
	if !strings.Contains(conf, "local_ts = dynamic,192.168.0.0/24\n") || !strings.Contains(conf, "local_ts = 192.168.1.0/24\n") || !strings.Contains(conf, `remote_addrs = "10.98.0.1"`) {
		t.Fatalf("swanctl.conf of gw1:\n%s", conf)
	}
	// The profile starts the connection when it is loaded (start_action):
	// one child per LAN on one IKE SA.
	charon.Load(t, conf)
	charon.WaitLog(t, `CHILD_SA remotegate\{\d+\} established`, 20*time.Second)
	charon.WaitLog(t, `CHILD_SA remotegate-2\{\d+\} established`, 20*time.Second)
	sas := charon.ListSAs(t)
	if !strings.Contains(sas, "TUNNEL-in-UDP") || strings.Count(sas, "INSTALLED") != 2 || strings.Count(sas, "ESTABLISHED") != 1 {
		t.Fatalf("the gateway's SAs, want one IKE SA with two children:\n%s", sas)
	}
	if c := charon.Counters(t, "remotegate-2"); c.LocalTS != "192.168.1.0/24" || !strings.Contains(sas, "192.168.0.0/24") {
		t.Fatalf("the gateway's second child covers %s, want 192.168.1.0/24; the first 192.168.0.0/24:\n%s", c.LocalTS, sas)
	}

	// The engineers: stock OpenVPN with the profiles the broker exports.
	for _, name := range []string{"u1", "u2"} {
		profile := brk.Run(t, 30*time.Second, brokerBin, "-data", data, "-config", yaml, "profile", name)
		p := peers[name].Start(t, "openvpn", "--config", WriteFile(t, dir, name+".ovpn", profile))
		p.WaitLog(t, "Initialization Sequence Completed", 30*time.Second)
	}
	alias := netip.MustParseAddr("10.200.1.10")
	if d := pingWithin(peers["u1"], alias, 5*time.Second); d < 0 {
		t.Fatalf("u1 cannot reach the LAN host behind the IPsec gateway\ngateway SAs:\n%s\nbroker:\n%s", charon.ListSAs(t), b.Log())
	}
	if got := peers["u1"].Ping(t, alias, 5); got != 5 {
		t.Fatalf("u1: %d of 5 pings to %s answered", got, alias)
	}
	// The host on the second LAN, through the second child: the pings
	// arrive on it and their answers leave on it, and none of them on the
	// first.
	before1, before2 := charon.Counters(t, "remotegate"), charon.Counters(t, "remotegate-2")
	alias2 := netip.MustParseAddr("10.200.2.10")
	if got := peers["u1"].Ping(t, alias2, 5); got != 5 {
		t.Fatalf("u1: %d of 5 pings to %s on the second LAN answered\ngateway SAs:\n%s", got, alias2, charon.ListSAs(t))
	}
	after1, after2 := charon.Counters(t, "remotegate"), charon.Counters(t, "remotegate-2")
	if in, out := after2.PacketsIn-before2.PacketsIn, after2.PacketsOut-before2.PacketsOut; in != 5 || out != 5 {
		t.Errorf("the second LAN's child carried %d pings in and %d answers out, want 5 each", in, out)
	}
	if after1.PacketsIn != before1.PacketsIn || after1.PacketsOut != before1.PacketsOut {
		t.Errorf("the first LAN's child carried second-LAN traffic: %+v, before %+v", after1, before1)
	}
	// TCP as well: iperf3 from u1 to the LAN host, under its alias.
	srv := lan.Start(t, "iperf3", "-s", "-1", "--forceflush", "-B", "192.168.0.10", "-p", "5201")
	srv.WaitLog(t, "Server listening", 5*time.Second)
	out, err := peers["u1"].RunErr(20*time.Second, "iperf3", "-c", alias.String(), "-p", "5201", "-t", "2")
	if err != nil || !strings.Contains(out, "receiver") {
		t.Fatalf("iperf3 u1 -> LAN host: %v\n%s", err, out)
	}
	t.Logf("TCP from the OpenVPN user to the LAN host behind the IPsec gateway:\n%s", out[strings.LastIndex(out, "- - -"):])

	// No relation for u2; no flows from the plant to the engineers.
	if got := peers["u2"].Ping(t, alias, 2); got != 0 {
		t.Fatalf("u2, without a relation, got %d ping replies from the plant", got)
	}
	status := brk.Run(t, 10*time.Second, brokerBin, "-data", data, "status")
	m := regexp.MustCompile(`u1\s+(10\.8\.0\.\d+)`).FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("no address of u1 in the status:\n%s", status)
	}
	if got := lan.Ping(t, netip.MustParseAddr(m[1]), 2); got != 0 {
		t.Fatalf("the LAN host opened a flow to u1 against the one-way relation (%d replies)", got)
	}
}

func itoa(i int) string { return string(rune('0' + i)) }
