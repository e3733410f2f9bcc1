package ovpninterop

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/swaninterop"
)

// ipsecRelayYAML is relayYAML for IPsec peers: the broker listens on
// ipsecHub, an address on the server namespace's loopback that the user and
// the device reach over their own links (as in
// TestOpenVPNUserReachesIPsecDevice), so that its answers leave from the
// address the peers sent to, whichever link they came in on.
const ipsecRelayYAML = `
listen: 10.99.0.1
public_address: 10.99.0.1
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

// ipsecHub is the hub's (broker's or strongSwan's) public address.
var ipsecHub = netip.MustParseAddr("10.99.0.1")

// The proposals of the broker's swanctl profiles (broker/app/ipsec.go),
// used by the strongSwan hub and its peers too, so that both setups run the
// same crypto (the broker's peers choose aes256gcm16 first).
var (
	ipsecRelayIKE = []string{"aes256gcm16-prfsha256-x25519-ecp256"}
	ipsecRelayESP = []string{"aes256gcm16"}
)

// noMOBIKE keeps the strongSwan hub's SAs on the path they were made on,
// as with the broker (which does not offer MOBIKE): with MOBIKE the hub
// announces its other addresses, the peers move the SAs to the hub's
// address on their link a second after they came up, and kernel-libipsec
// rekeys the CHILD_SA for the move.
var noMOBIKE = []string{"mobike = no"}

// ipsecTopology is relayTopology with the hub's address on the server's
// loopback, routed to by the user and the device.
func ipsecTopology(t *testing.T) relayNet {
	t.Helper()
	n := relayTopology(t)
	n.srv.Run(t, 5*time.Second, "ip", "addr", "add", netip.PrefixFrom(ipsecHub, 32).String(), "dev", "lo")
	n.user.Run(t, 5*time.Second, "ip", "route", "add", ipsecHub.String()+"/32", "via", "10.99.1.1")
	n.dev.Run(t, 5*time.Second, "ip", "route", "add", ipsecHub.String()+"/32", "via", "10.99.2.1")
	return n
}

// loadSwanctlProfile exports name's strongSwan profile from the broker
// (a tar for /etc/swanctl), puts its files into c and loads its
// swanctl.conf, which starts the connection (start_action = start).
func loadSwanctlProfile(t *testing.T, srv *netns.NS, c *swaninterop.Charon, data, yaml, name string) string {
	t.Helper()
	archive, err := exec.Command("ip", "netns", "exec", srv.Name, brokerBin, "-data", data, "-config", yaml, "swanctl-profile", name).Output()
	if err != nil {
		t.Fatalf("swanctl-profile %s: %v", name, err)
	}
	var conf string
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("profile archive of %s: %v", name, err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("profile archive of %s: %v", name, err)
		}
		if h.Name == "swanctl.conf" {
			conf = string(body)
			continue
		}
		c.AddFile(t, h.Name, body)
	}
	for _, want := range []string{`remote_addrs = "` + ipsecHub.String() + `"`, "proposals = " + ipsecRelayIKE[0], "esp_proposals = " + ipsecRelayESP[0]} {
		if !strings.Contains(conf, want) {
			t.Fatalf("swanctl.conf of %s has no %q (the strongSwan hub copies the profile's proposals):\n%s", name, want, conf)
		}
	}
	c.Load(t, conf)
	return conf
}

// brokerMetrics scrapes the broker's /metrics inside ns.
func brokerMetrics(t *testing.T, ns *netns.NS) map[string]float64 {
	t.Helper()
	out := ns.Run(t, 10*time.Second, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9155 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3")
	m := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// ipsecHubSetup is one round's hub and peers.
type ipsecHubSetup struct {
	hub       *netns.Process // the broker process or the hub's charon
	user, dev *swaninterop.Charon
	// The CHILD_SA names on the user and on the device.
	userChild, devChild string
	hubCharon           *swaninterop.Charon // strongSwan only
	stop                func()
}

// hubSample is what a round reads before and after a run.
type hubSample struct {
	hub       procTimes
	user, dev time.Duration // the peers' charons
	softirq   time.Duration // the ksoftirqd threads
	idle      float64
	// Per thread CPU time and the context switches (voluntary,
	// involuntary) of the hub and of the peers' charons.
	threads  [3]map[string]time.Duration
	switches [3][2]uint64
	devSA    swaninterop.Counters
	// The broker's metrics, or the strongSwan hub's CHILD_SAs.
	metrics        map[string]float64
	users, devices swaninterop.Counters
}

func (s ipsecHubSetup) sample(t *testing.T, n relayNet) hubSample {
	t.Helper()
	var h hubSample
	h.hub, h.user, h.dev, h.idle = userSys(t, s.hub), cpuTime(t, s.user.Process), cpuTime(t, s.dev.Process), machineIdle(t)
	h.softirq = ksoftirqdTime(t)
	for i, p := range []*netns.Process{s.hub, s.user.Process, s.dev.Process} {
		h.threads[i], h.switches[i] = threadTimes(p), switches(p)
	}
	h.devSA = s.dev.Counters(t, s.devChild)
	if s.hubCharon == nil {
		h.metrics = brokerMetrics(t, n.srv)
	} else {
		sas := s.hubCharon.ListSAs(t)
		var err1, err2 error
		h.users, err1 = swaninterop.ParseCounters(sas, "users")
		h.devices, err2 = swaninterop.ParseCounters(sas, "devices")
		if err1 != nil || err2 != nil {
			t.Fatalf("the strongSwan hub's SAs: %v, %v\n%s", err1, err2, sas)
		}
	}
	return h
}

// verify checks that the carried bytes went through the hub as claimed:
// through the device's SA with the hub, and through the broker's switch
// (its metrics) or through both of the strongSwan hub's CHILD_SAs (their
// counters), in the data's direction. It returns a summary for the log.
func (s ipsecHubSetup) verify(t *testing.T, before, after hubSample, carried float64, reverse bool) string {
	t.Helper()
	want := 0.95 * carried                              // the ESP counters include the inner headers; iperf3 counts payload
	devIn := after.devSA.BytesIn - before.devSA.BytesIn // towards the LAN
	if reverse {
		devIn = after.devSA.BytesOut - before.devSA.BytesOut
	}
	if float64(devIn) < want {
		t.Fatalf("the device's SA carried %d bytes in the data's direction, iperf3 %.0f\nbefore %+v\nafter %+v\ndevice SAs:\n%s", devIn, carried, before.devSA, after.devSA, s.dev.ListSAs(t))
	}
	summary := fmt.Sprintf("device's SA %.0f MB", float64(devIn)/1e6)
	if s.hubCharon == nil {
		delta := func(k string) float64 { return after.metrics[k] - before.metrics[k] }
		fwd := delta("remotegate_switch_forwarded_packets_total")
		in, out := delta(`remotegate_tunnel_bytes_total{direction="in"}`), delta(`remotegate_tunnel_bytes_total{direction="out"}`)
		if after.metrics["remotegate_sessions"] != 2 || in < want || out < want || fwd < carried/1500 {
			t.Fatalf("broker metrics: %v sessions, %.0f bytes in, %.0f out, %.0f packets forwarded; iperf3 carried %.0f bytes",
				after.metrics["remotegate_sessions"], in, out, fwd, carried)
		}
		return summary + fmt.Sprintf(", broker's switch %.0f packets, sessions %.0f MB in, %.0f MB out", fwd, in/1e6, out/1e6)
	}
	from, to := after.users.BytesIn-before.users.BytesIn, after.devices.BytesOut-before.devices.BytesOut
	if reverse {
		from, to = after.devices.BytesIn-before.devices.BytesIn, after.users.BytesOut-before.users.BytesOut
	}
	if float64(from) < want || float64(to) < want {
		t.Fatalf("the strongSwan hub's SAs carried %d bytes in from the sender and %d out to the receiver; iperf3 %.0f\nhub SAs:\n%s",
			from, to, carried, s.hubCharon.ListSAs(t))
	}
	return summary + fmt.Sprintf(", hub's SAs %.0f MB in from the sender, %.0f MB out to the receiver", float64(from)/1e6, float64(to)/1e6)
}

// ksoftirqdTime is the CPU time of the kernel's softirq threads: network
// receive work that did not run in the context of the process that sent
// the packet (or of whatever process was interrupted).
func ksoftirqdTime(t *testing.T) time.Duration {
	t.Helper()
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	var sum time.Duration
	for _, c := range comms {
		b, err := os.ReadFile(c)
		if err != nil || !strings.HasPrefix(string(b), "ksoftirqd/") {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(filepath.Dir(c), "stat"))
		if err != nil {
			continue
		}
		if d, err := parseStatTimes(stat); err == nil {
			sum += d.user + d.sys
		}
	}
	return sum
}

// threadTimes is the CPU time of each thread of p, by thread ID.
func threadTimes(p *netns.Process) map[string]time.Duration {
	m := map[string]time.Duration{}
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", p.Cmd.Process.Pid))
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if v, err := parseStatTimes(b); err == nil {
			m[filepath.Base(filepath.Dir(f))] = v.user + v.sys
		}
	}
	return m
}

// busiestThread is the largest CPU time one thread used between two
// readings of threadTimes.
func busiestThread(before, after map[string]time.Duration) time.Duration {
	var most time.Duration
	for tid, a := range after {
		most = max(most, a-before[tid])
	}
	return most
}

// procTimes are a process's user and system CPU time.
type procTimes struct{ user, sys time.Duration }

// userSys reads utime and stime of p (all threads) from /proc/PID/stat.
func userSys(t *testing.T, p *netns.Process) procTimes {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	v, err := parseStatTimes(b)
	if err != nil {
		t.Fatalf("/proc/%d/stat: %v", p.Cmd.Process.Pid, err)
	}
	return v
}

// parseStatTimes reads utime and stime (fields 14 and 15) of a /proc
// stat line, counting after the command name in parentheses.
func parseStatTimes(stat []byte) (procTimes, error) {
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return procTimes{}, fmt.Errorf("short stat line %q", stat)
	}
	var v [2]time.Duration
	for i := range v {
		ticks, err := strconv.ParseInt(f[11+i], 10, 64)
		if err != nil {
			return procTimes{}, err
		}
		v[i] = time.Duration(ticks) * time.Second / 100 // USER_HZ
	}
	return procTimes{v[0], v[1]}, nil
}

// startBrokerHub runs examples/broker as the hub, with strongSwan on the
// user and on the device configured by the profiles the broker exports.
// The API is off; the metrics are on, on the namespace's loopback, to show
// that the broker's sessions carried the traffic (two scrapes per run).
func startBrokerHub(t *testing.T, n relayNet) ipsecHubSetup {
	t.Helper()
	dir := t.TempDir()
	data, yaml := filepath.Join(dir, "data"), WriteFile(t, dir, "broker.yaml", ipsecRelayYAML)
	b := n.srv.Start(t, brokerBin, "-data", data, "-config", yaml, "-api", "", "-metrics", "127.0.0.1:9155")
	b.WaitLog(t, "remotegate broker is running", 30*time.Second)
	if !strings.Contains(b.Log(), "IPsec listening") {
		t.Fatalf("the broker does not serve IPsec:\n%s", b.Log())
	}
	dev := swaninterop.Start(t, n.dev, swaninterop.Options{})
	user := swaninterop.Start(t, n.user, swaninterop.Options{})
	loadSwanctlProfile(t, n.srv, dev, data, yaml, "dev1")
	dev.WaitLog(t, `CHILD_SA remotegate\{\d+\} established`, 20*time.Second)
	loadSwanctlProfile(t, n.srv, user, data, yaml, "user1")
	user.WaitLog(t, `CHILD_SA remotegate\{\d+\} established`, 20*time.Second)
	return ipsecHubSetup{hub: b, user: user, dev: dev, userChild: "remotegate", devChild: "remotegate",
		stop: func() { _ = user.Stop(); _ = dev.Stop(); _ = b.Stop() }}
}

// startStrongSwanHub runs strongSwan as the hub: a responder with one
// connection for users (a virtual IP from the pool, the device's LAN as
// local_ts) and one for the device (its LAN as remote_ts, the pool as
// local_ts). kernel-libipsec decrypts into the hub's ipsec0 and the kernel
// forwards from one child to the other through it. The user and the device
// are strongSwan initiators with the same proposals as the broker's
// profiles.
func startStrongSwanHub(t *testing.T, n relayNet, ca *swaninterop.CA, leaves map[string]*swaninterop.Leaf) ipsecHubSetup {
	t.Helper()
	n.srv.Run(t, 5*time.Second, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	const pool, lan = "10.8.0.0/24", "192.168.0.0/24"
	// kernel-libipsec installs the route into ipsec0 for a CHILD_SA's
	// outbound policy with a source address of the hub inside the local
	// selector, and fails the CHILD_SA when there is none ("no local
	// address found in traffic selector"): the hub gets the pool's first
	// address (the broker's own address in the pool too) and an otherwise
	// unused address of the LAN, both on its loopback.
	n.srv.Run(t, 5*time.Second, "ip", "addr", "add", "10.8.0.1/32", "dev", "lo")
	n.srv.Run(t, 5*time.Second, "ip", "addr", "add", "192.168.0.254/32", "dev", "lo")
	hub := swaninterop.Start(t, n.srv, swaninterop.Options{})
	hub.InstallCA(t, ca)
	hubCert := hub.InstallLeaf(t, "hub", leaves["hub"])
	common := swaninterop.Conn{LocalAddr: ipsecHub.String(), LocalID: leaves["hub"].ID, CertFile: hubCert,
		Proposals: ipsecRelayIKE, ESPProposals: ipsecRelayESP, LocalPort: 4500, Encap: true, Extra: noMOBIKE}
	users, devices := common, common
	users.Name, users.Child, users.RemoteID = "users", "users", leaves["user"].ID
	users.Pools = []swaninterop.Pool{{Name: "rw", Addrs: "10.8.0.2-10.8.0.254"}}
	users.LocalTS = lan
	devices.Name, devices.Child, devices.RemoteID = "devices", "devices", leaves["dev"].ID
	devices.LocalTS, devices.RemoteTS = pool, lan
	hub.Load(t, swaninterop.Render(users, devices))

	peer := func(ns *netns.NS, name string, c swaninterop.Conn) *swaninterop.Charon {
		ch := swaninterop.Start(t, ns, swaninterop.Options{})
		ch.InstallCA(t, ca)
		c.Name, c.Child = "hub", "hub"
		c.CertFile = ch.InstallLeaf(t, name, leaves[name])
		c.LocalID, c.RemoteID = leaves[name].ID, leaves["hub"].ID
		c.RemoteAddr, c.LocalPort, c.RemotePort, c.Encap = ipsecHub.String(), 4500, 4500, true
		c.Proposals, c.ESPProposals, c.StartAction, c.Extra = ipsecRelayIKE, ipsecRelayESP, "start", noMOBIKE
		ch.Load(t, c.String())
		ch.WaitLog(t, `CHILD_SA hub\{\d+\} established`, 20*time.Second)
		return ch
	}
	dev := peer(n.dev, "dev", swaninterop.Conn{LocalTS: lan, RemoteTS: pool})
	user := peer(n.user, "user", swaninterop.Conn{VIPs: []string{"0.0.0.0"}, RemoteTS: lan})
	return ipsecHubSetup{hub: hub.Process, hubCharon: hub, user: user, dev: dev, userChild: "hub", devChild: "hub",
		stop: func() { _ = user.Stop(); _ = dev.Stop(); _ = hub.Stop() }}
}

// TestIPsecRelayVsStrongSwan measures, side by side in one run, the TCP
// throughput from a user to a host on a device's LAN through the broker's
// IPsec relay (examples/broker) and through a strongSwan hub, with
// strongSwan (kernel-libipsec: ESP in userspace, UDP-encapsulated) on the
// user and on the device in both setups, the same namespaces, the same
// proposals (AES-256-GCM for ESP); the hubs alternate per round, fresh
// namespaces each time. The broker relays between the two IPsec sessions
// inside its process; the strongSwan hub decrypts into its TUN ipsec0, the
// kernel forwards the packet back into ipsec0, and charon encrypts it for
// the other peer. It reports the hub's CPU per gigabyte (the broker
// process, the hub's charon) and does not assert a ratio (results in
// docs/PERFORMANCE.md). Each run checks that the data went through the
// hub: through the device's SA with it, and through the broker's switch
// (its metrics) or both of the strongSwan hub's CHILD_SAs (their counters).
//
// All processes share both cores, as in TestRelayVsStock: the path crosses
// five processes (iperf3, the user's charon, the hub, the device's charon,
// iperf3), and no split of two cores stands for three machines, so
// RG_PERF_PIN does not apply.
//
// RG_PERF=quick: two rounds of 5 s, user to LAN only. RG_PERF_REVERSE=0
// leaves out the LAN-to-user direction (iperf3 -R) of the normal run.
func TestIPsecRelayVsStrongSwan(t *testing.T) {
	if os.Getenv("RG_PERF") == "" {
		t.Skip("SKIPPING IPsec relay throughput comparison: set RG_PERF=1 (RG_PERF=1 go test -run TestIPsecRelayVsStrongSwan -v ./internal/ovpninterop)")
	}
	netns.Require(t, "iperf3", "ping", "sysctl", "bash")
	swaninterop.Require(t)
	binaries(t)
	rounds, d := 3, 10*time.Second
	dirs := []struct{ name, label string }{{"", "user → LAN"}, {"-R", "LAN → user"}}
	if os.Getenv("RG_PERF") == "quick" {
		rounds, d, dirs = 2, 5*time.Second, dirs[:1]
	}
	if os.Getenv("RG_PERF_REVERSE") == "0" {
		dirs = dirs[:1]
	}
	ca := swaninterop.NewCA(t, "remotegate relay perf CA", swaninterop.ECDSAP256)
	leaves := map[string]*swaninterop.Leaf{}
	for _, name := range []string{"hub", "user", "dev"} {
		leaves[name] = ca.Issue(t, name+".test", swaninterop.ECDSAP256)
	}
	type series struct{ ours, stock, oursCPU, stockCPU []float64 }
	results := make([]series, len(dirs))
	for r := 0; r < rounds; r++ {
		for _, impl := range []string{"broker", "strongswan"} {
			n := ipsecTopology(t)
			var s ipsecHubSetup
			if impl == "broker" {
				s = startBrokerHub(t, n)
			} else {
				s = startStrongSwanHub(t, n, ca, leaves)
			}
			// The selectors as the peers see them: the user reaches the LAN
			// (the broker narrowed the profile's 0.0.0.0/0 to it), the
			// device the pool; the same ESP suite on both setups.
			uc, dc := s.user.Counters(t, s.userChild), s.dev.Counters(t, s.devChild)
			if uc.RemoteTS != "192.168.0.0/24" || dc.RemoteTS != "10.8.0.0/24" {
				t.Fatalf("%s round %d: selectors: user %+v, device %+v\nuser:\n%s\ndevice:\n%s", impl, r, uc, dc, s.user.ListSAs(t), s.dev.ListSAs(t))
			}
			for name, c := range map[string]*swaninterop.Charon{"user": s.user, "device": s.dev} {
				if sas := c.ListSAs(t); !strings.Contains(sas, "ESP:AES_GCM_16-256") || !strings.Contains(sas, "TUNNEL-in-UDP") {
					t.Fatalf("%s round %d: the %s did not negotiate AES_GCM_16-256 in UDP:\n%s", impl, r, name, sas)
				}
			}
			if got := pingWithin(n.user, lanHost, 10*time.Second); got < 0 {
				t.Fatalf("%s round %d: the user gets no answer from %v behind the device\nuser SAs:\n%s\ndevice SAs:\n%s\nuser routes:\n%s",
					impl, r, lanHost, s.user.ListSAs(t), s.dev.ListSAs(t), n.user.Run(t, 5*time.Second, "ip", "route", "show", "table", "all"))
			}
			for i, dir := range dirs {
				var extra []string
				if dir.name != "" {
					extra = []string{dir.name}
				}
				before := s.sample(t, n)
				res := iperf3(t, n.user, n.lan, lanHost, d, extra...)
				after := s.sample(t, n)
				carried := res.BitsPerSecond * d.Seconds() / 8
				via := s.verify(t, before, after, carried, dir.name == "-R")
				pct := func(a, b time.Duration) float64 { return 100 * (b - a).Seconds() / d.Seconds() }
				hubCPU := after.hub.user + after.hub.sys - before.hub.user - before.hub.sys
				cpuPerGB := hubCPU.Seconds() / (carried / 1e9)
				busy := float64(runtime.NumCPU())*d.Seconds() - (after.idle-before.idle)*float64(runtime.NumCPU())
				rest := busy - (hubCPU + after.user - before.user + after.dev - before.dev + after.softirq - before.softirq).Seconds()
				t.Logf("%s %s round %d: %.0f Mbit/s; hub CPU %.0f%% (user %.0f%%, system %.0f%%; %.2f s/GB), user's charon %.0f%%, device's charon %.0f%%, "+
					"ksoftirqd %.0f%%, everything else (iperf3, other jobs) %.0f%%, machine idle %.0f%%; %s",
					impl, dir.label, r, res.BitsPerSecond/1e6, pct(0, hubCPU), pct(before.hub.user, after.hub.user), pct(before.hub.sys, after.hub.sys), cpuPerGB,
					pct(before.user, after.user), pct(before.dev, after.dev), pct(before.softirq, after.softirq), 100*rest/d.Seconds(), 100*(after.idle-before.idle)/d.Seconds(), via)
				// Where the time goes: the busiest thread of each process
				// (a pipeline stage at 100 % sets the pace), its context
				// switches and the device's ESP packets per megabyte.
				mb := carried / 1e6
				var detail []string
				for k, name := range []string{"hub", "user's charon", "device's charon"} {
					detail = append(detail, fmt.Sprintf("%s: busiest thread %.0f%%, %.0f+%.0f context switches/MB", name,
						pct(0, busiestThread(before.threads[k], after.threads[k])),
						float64(after.switches[k][0]-before.switches[k][0])/mb, float64(after.switches[k][1]-before.switches[k][1])/mb))
				}
				t.Logf("%s %s round %d: %s; device's SA %.0f packets/MB in, %.0f out", impl, dir.label, r, strings.Join(detail, "; "),
					float64(after.devSA.PacketsIn-before.devSA.PacketsIn)/mb, float64(after.devSA.PacketsOut-before.devSA.PacketsOut)/mb)
				sr := &results[i]
				if impl == "broker" {
					sr.ours, sr.oursCPU = append(sr.ours, res.BitsPerSecond/1e6), append(sr.oursCPU, cpuPerGB)
				} else {
					sr.stock, sr.stockCPU = append(sr.stock, res.BitsPerSecond/1e6), append(sr.stockCPU, cpuPerGB)
				}
			}
			s.stop()
		}
	}
	var report strings.Builder
	for i, dir := range dirs {
		line := tableLine("ESP-in-UDP, "+dir.label, "aes256gcm16", results[i].ours, results[i].stock, results[i].oursCPU, results[i].stockCPU)
		report.WriteString(line)
	}
	t.Logf("broker = remotegate, strongSwan hub = stock\n%s%s", tableHeader, report.String())
}
