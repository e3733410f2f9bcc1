package ovpninterop

import (
	"fmt"
	"os"
	"regexp"
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
// RG_PERF=quick measures AES-256-GCM only, two rounds. RG_PERF_PROTO=udp or
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
					c := cli.Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "client.ovpn", ClientConfig(o, files, "client1")))
					c.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
					cpu0, ccpu0 := cpuTime(t, s), cpuTime(t, c)
					res := iperf3(t, cli, srv, tunnelGateway, d)
					t.Logf("%s %s %s round %d: client CPU %.0f%%", impl, proto, cipher, r, 100*(cpuTime(t, c)-ccpu0).Seconds()/d.Seconds())
					// Server CPU seconds per gigabyte carried: how much of
					// the machine the server needs for the traffic, which
					// the throughput alone does not show when the single-
					// threaded stock client is the bottleneck.
					gb := res.BitsPerSecond * d.Seconds() / 8 / 1e9
					cpuPerGB := (cpuTime(t, s) - cpu0).Seconds() / gb
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
			line := fmt.Sprintf("| %s | %s | %s | %s | %.2f | %s | %s | %.2f |\n", proto, cipher,
				mbits(ours), mbits(stock), median(ours)/median(stock),
				seconds(oursCPU), seconds(stockCPU), median(oursCPU)/median(stockCPU))
			report.WriteString(line)
			t.Log(strings.TrimSpace(line))
		}
	}
	t.Logf("\n| transport | cipher | remotegate Mbit/s | stock Mbit/s | throughput ratio | remotegate server CPU s/GB | stock server CPU s/GB | CPU ratio |\n|---|---|---|---|---|---|---|---|\n%s", report.String())
}

func cpuTime(t *testing.T, p *netns.Process) time.Duration {
	t.Helper()
	d, err := p.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	return d
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
