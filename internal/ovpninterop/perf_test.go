package ovpninterop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// TestThroughputVsStock measures, side by side in one run, the TCP
// throughput a stock client gets through examples/ovpn-server and through
// stock `openvpn --server`, on the same namespaces, keys and cipher,
// alternating the servers so that drift on a noisy machine affects both.
// It reports; it does not assert a ratio, because absolute timings on shared
// machines are noise (run it with `make perf`; the results are recorded in
// docs/PERFORMANCE.md).
//
// RG_PERF=quick measures AES-256-GCM only, two rounds. RG_PERF_PIN=0
// lets all processes share both CPUs instead of splitting the machine. RG_PERF_PROTO=udp or
// tcp restricts the run to one transport; RG_PERF_CPUPROFILE=DIR makes our
// server write a CPU profile per run into DIR; RG_PERF_STRACE=DIR runs both
// servers under strace -c (slower, but the system call counts per packet
// compare).
func TestThroughputVsStock(t *testing.T) {
	if os.Getenv("RG_PERF") == "" {
		t.Skip("SKIPPING throughput comparison: set RG_PERF=1 (make perf)")
	}
	netns.Require(t, "openvpn", "iperf3")
	binaries(t)
	files := lab(t)
	rounds := 3
	const d = 10 * time.Second
	ciphers := []string{"AES-256-GCM", "CHACHA20-POLY1305"}
	if os.Getenv("RG_PERF") == "quick" {
		rounds, ciphers = 2, ciphers[:1]
	}
	// By default the machine is split as if it were two: the client side
	// (stock client, iperf3 client) on CPU 0, the server side (the server
	// under test, iperf3 server) on CPU 1, each namespace's packets
	// received on its own CPU. Without that, the kernel work of each
	// segment the client sends to the server runs in the client's
	// context, and the client, not the server, sets the pace (see
	// docs/PERFORMANCE.md). RG_PERF_PIN=0 shares both CPUs among all.
	pinned := os.Getenv("RG_PERF_PIN") != "0" && runtime.NumCPU() >= 2
	t.Logf("pinned as two machines: %v", pinned)
	var report strings.Builder
	protos := []string{"udp", "tcp"}
	if p := os.Getenv("RG_PERF_PROTO"); p != "" {
		protos = []string{p}
	}
	for _, proto := range protos {
		for _, cipher := range ciphers {
			o := Options{Proto: proto, Protection: "tls-crypt", Cipher: cipher, ServerAddr: serverAddr.String(), Port: 1194}
			var ours, stock, oursCPU, stockCPU []float64
			for r := 0; r < rounds; r++ {
				for _, impl := range []string{"remotegate", "stock"} {
					srv, cli := topology(t)
					sconf := WriteFile(t, t.TempDir(), "server.conf", ServerConfig(o, files))
					var s *netns.Process
					if wrap := os.Getenv("RG_PERF_STRACE"); wrap != "" {
						// Count the servers' system calls (strace -c) into DIR.
						out := fmt.Sprintf("%s/%s-%s-%s-%d.strace", wrap, impl, proto, cipher, r)
						bin, args := serverBin, []string{"-config", sconf}
						if impl == "stock" {
							bin, args = "openvpn", []string{"--config", sconf}
						}
						s = srv.Start(t, "strace", append([]string{"-c", "-f", "-o", out, bin}, args...)...)
						if impl == "stock" {
							s.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
						} else {
							s.WaitLog(t, "listening", 10*time.Second)
						}
					} else if impl == "stock" {
						s = srv.Start(t, "openvpn", "--config", sconf)
						s.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
					} else {
						args := []string{"-config", sconf}
						if dir := os.Getenv("RG_PERF_CPUPROFILE"); dir != "" {
							args = append(args, "-cpuprofile", fmt.Sprintf("%s/%s-%s-%d.pprof", dir, proto, cipher, r))
						}
						s = srv.Start(t, serverBin, args...)
						s.WaitLog(t, "listening", 10*time.Second)
					}
					c := cli.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "client.ovpn", ClientConfig(t, o, files, "client1")))
					c.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
					if pinned {
						pinAsTwoMachines(t, srv, cli, s, c)
					}
					// Besides throughput: what each server costs the machine
					// (its CPU, its threads' context switches, the machine's
					// idle share) and what it sends where, per megabyte
					// carried, so that two runs can be compared beyond the
					// one number.
					before := sample(t, s, c, srv)
					var pinIperf []string
					if pinned {
						pinIperf = []string{"-A", "0,1"} // client on CPU 0, server on CPU 1
					}
					res := iperf3(t, cli, srv, tunnelGateway, d, pinIperf...)
					after := sample(t, s, c, srv)
					mb := res.BitsPerSecond * d.Seconds() / 8 / 1e6
					per := func(a, b uint64) float64 { return float64(b-a) / mb }
					t.Logf("%s %s %s round %d: %.0f Mbit/s; client CPU %.0f%%, server CPU %.0f%%, machine idle %.0f%%; "+
						"server per MB: link %.0f packets in, %.0f out; TUN %.0f written, %.0f read; context switches %.0f voluntary, %.0f involuntary",
						impl, proto, cipher, r, res.BitsPerSecond/1e6,
						100*(after.clientCPU-before.clientCPU).Seconds()/d.Seconds(), 100*(after.serverCPU-before.serverCPU).Seconds()/d.Seconds(),
						100*(after.idle-before.idle)/d.Seconds(),
						per(before.linkRx, after.linkRx), per(before.linkTx, after.linkTx), per(before.tunRx, after.tunRx), per(before.tunTx, after.tunTx),
						per(before.switches[0], after.switches[0]), per(before.switches[1], after.switches[1]))
					// Server CPU seconds per gigabyte carried: how much of
					// the machine the server needs for the traffic, which
					// the throughput alone does not show when the single-
					// threaded stock client is the bottleneck.
					gb := res.BitsPerSecond * d.Seconds() / 8 / 1e9
					cpuPerGB := (after.serverCPU - before.serverCPU).Seconds() / gb
					if impl == "stock" {
						stock, stockCPU = append(stock, res.BitsPerSecond/1e6), append(stockCPU, cpuPerGB)
					} else {
						ours, oursCPU = append(ours, res.BitsPerSecond/1e6), append(oursCPU, cpuPerGB)
					}
					_ = c.Stop()
					_ = s.Stop()
					if impl != "stock" {
						if m := regexp.MustCompile(`TUN closed.*`).FindString(s.Log()); m != "" {
							t.Logf("%s %s round %d: %s", proto, cipher, r, m)
						}
					}
				}
			}
			line := tableLine(proto, cipher, ours, stock, oursCPU, stockCPU)
			report.WriteString(line)
			t.Log(strings.TrimSpace(line))
		}
	}
	t.Logf("\n%s%s", tableHeader, report.String())
}

func cpuTime(t *testing.T, p *netns.Process) time.Duration {
	t.Helper()
	d, err := p.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pinAsTwoMachines makes the one machine behave more like a server and a
// client machine: the server on CPU 1, the client on CPU 0, and each
// namespace's received packets processed on its own CPU (RPS), so that
// the kernel work of one side's traffic is not done in the other's
// context.
func pinAsTwoMachines(t *testing.T, srv, cli *netns.NS, server, client *netns.Process) {
	t.Helper()
	for _, pin := range []struct {
		ns   *netns.NS
		p    *netns.Process
		cpu  string
		mask string
	}{{srv, server, "1", "2"}, {cli, client, "0", "1"}} {
		if out, err := exec.Command("taskset", "-a", "-p", "-c", pin.cpu, strconv.Itoa(pin.p.Cmd.Process.Pid)).CombinedOutput(); err != nil {
			t.Fatalf("taskset: %v\n%s", err, out)
		}
		for _, line := range strings.Split(pin.ns.Run(t, 5*time.Second, "ip", "-o", "link", "show"), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if name == "lo" || strings.HasPrefix(name, "tun") {
				continue
			}
			pin.ns.Run(t, 5*time.Second, "sh", "-c", fmt.Sprintf("echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus", pin.mask, name))
		}
	}
}

// counters is what TestThroughputVsStock reads before and after a run.
type counters struct {
	serverCPU, clientCPU time.Duration
	idle                 float64
	switches             [2]uint64
	linkRx, linkTx       uint64
	tunRx, tunTx         uint64
}

func sample(t *testing.T, server, client *netns.Process, ns *netns.NS) counters {
	var c counters
	c.serverCPU, c.clientCPU, c.idle = cpuTime(t, server), cpuTime(t, client), machineIdle(t)
	c.switches = switches(server)
	c.linkRx, c.linkTx = linkPackets(t, ns, false)
	c.tunRx, c.tunTx = linkPackets(t, ns, true)
	return c
}

// linkPackets returns the packets received and sent by the kernel on the
// outer links of ns (everything but loopback and tunnels), or with tun on
// its TUN interfaces (received there: written by the server). The kernel
// counts a GSO super-packet once, so fewer packets per megabyte mean larger
// aggregates and less per-packet work on both ends.
func linkPackets(t *testing.T, ns *netns.NS, tun bool) (rx, tx uint64) {
	t.Helper()
	for _, line := range strings.Split(ns.Run(t, 5*time.Second, "cat", "/proc/net/dev"), "\n") {
		name, counters, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" || strings.HasPrefix(name, "tun") != tun {
			continue
		}
		f := strings.Fields(counters)
		if len(f) < 10 {
			continue
		}
		var r, x uint64
		if _, err := fmt.Sscan(f[1], &r); err != nil {
			continue
		}
		if _, err := fmt.Sscan(f[9], &x); err != nil {
			continue
		}
		rx, tx = rx+r, tx+x
	}
	return rx, tx
}

// switches sums the voluntary and involuntary context switches of all
// threads of p.
func switches(p *netns.Process) (n [2]uint64) {
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", p.Cmd.Process.Pid))
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			var v uint64
			if _, err := fmt.Sscanf(line, "voluntary_ctxt_switches: %d", &v); err == nil {
				n[0] += v
			}
			if _, err := fmt.Sscanf(line, "nonvoluntary_ctxt_switches: %d", &v); err == nil {
				n[1] += v
			}
		}
	}
	return n
}

// machineIdle returns the seconds all CPUs together were idle since boot,
// divided by the number of CPUs: the difference of two readings over a run,
// divided by its duration, is the share of the machine that was idle.
func machineIdle(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.SplitN(string(b), "\n", 2)[0]
	var idle float64
	for i, f := range strings.Fields(line)[1:] {
		var v float64
		if _, err := fmt.Sscan(f, &v); err != nil {
			t.Fatalf("/proc/stat: %v", err)
		}
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return idle / 100 / float64(runtime.NumCPU()) // USER_HZ is 100 on Linux
}

// tableHeader and tableLine make the markdown table of docs/PERFORMANCE.md:
// the rounds of each implementation, and the ratios of the medians.
const tableHeader = "| transport | cipher | remotegate Mbit/s | stock Mbit/s | throughput ratio | remotegate server CPU s/GB | stock server CPU s/GB | CPU ratio |\n|---|---|---|---|---|---|---|---|\n"

func tableLine(proto, cipher string, ours, stock, oursCPU, stockCPU []float64) string {
	return fmt.Sprintf("| %s | %s | %s | %s | %.2f | %s | %s | %.2f |\n", proto, cipher,
		mbits(ours), mbits(stock), median(ours)/median(stock),
		seconds(oursCPU), seconds(stockCPU), median(oursCPU)/median(stockCPU))
}

func seconds(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, ", ")
}

func mbits(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(s, ", ")
}

func median(v []float64) float64 {
	c := append([]float64(nil), v...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	if len(c) == 0 {
		return 0
	}
	return c[len(c)/2]
}
