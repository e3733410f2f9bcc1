package ovpninterop

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/testpki"
)

// TestScaleVsStock fills examples/ovpn-server and stock `openvpn --server`
// (the same server.conf, in a namespace each time) with tunnels from
// examples/loadgen, one client certificate per tunnel, and measures side
// by side what each server costs: resident memory per tunnel, CPU per
// handshake, CPU while the tunnels idle with keepalives, and failures. It
// reports the table of docs/PERFORMANCE.md; it asserts only that the runs
// took place (absolute numbers on a shared machine are noise).
//
// RG_SCALE=1 runs 1,000, 5,000 and 10,000 tunnels (make scale);
// RG_SCALE=1000,2000 runs those sizes. RG_SCALE_K is the handshakes at a
// time (8: our server's cap on pending handshakes per source address,
// and loadgen has one), RG_SCALE_HOLD the idle period (30s),
// RG_SCALE_PROTO udp (default) or tcp.
func TestScaleVsStock(t *testing.T) {
	spec := os.Getenv("RG_SCALE")
	if spec == "" {
		t.Skip("SKIPPING scale comparison: set RG_SCALE=1 (make scale) or RG_SCALE=1000,5000")
	}
	netns.Require(t, "openvpn")
	binaries(t)
	sizes := []int{1000, 5000, 10000}
	if spec != "1" {
		sizes = nil
		for _, f := range strings.Split(spec, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("RG_SCALE=%q: want 1 or a list of tunnel counts", spec)
			}
			sizes = append(sizes, n)
		}
	}
	k := envInt(t, "RG_SCALE_K", 8)
	hold := 30 * time.Second
	if v := os.Getenv("RG_SCALE_HOLD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RG_SCALE_HOLD: %v", err)
		}
		hold = d
	}
	proto := "udp"
	if p := os.Getenv("RG_SCALE_PROTO"); p != "" {
		proto = p
	}
	loadgen := Build(t, t.TempDir(), "./examples/loadgen")
	files := scaleLab(t)
	t.Logf("machine at start: load average %s", loadavg())
	var rows []scaleResult
	for _, n := range sizes {
		for _, impl := range []string{"remotegate", "stock"} {
			r := scaleRun(t, impl, proto, n, k, hold, loadgen, files)
			t.Logf("%s", r.row())
			rows = append(rows, r)
		}
	}
	var b strings.Builder
	b.WriteString(scaleHeader)
	for i := 0; i+1 < len(rows); i += 2 {
		b.WriteString(rows[i].row())
		b.WriteString(rows[i+1].row())
		b.WriteString(ratioRow(rows[i], rows[i+1]))
	}
	t.Logf("machine at end: load average %s\n\n%s", loadavg(), b.String())
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// scaleLab is a CA whose key loadgen issues client certificates from, a
// server certificate and a tls-crypt key.
func scaleLab(t *testing.T) Files {
	dir := t.TempDir()
	ca := testpki.New(t, "scale CA")
	files := Files(ca.WriteFiles(t, dir, map[string]*testpki.Leaf{"server": ca.Server(t, "server")}))
	kd, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	files["ca.key"] = WriteFile(t, dir, "ca.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})))
	files["tc.key"] = GenKey(t, dir, "tls-crypt", "tc.key")
	return files
}

// scaleServerConfig is the config both servers read: a /16 tunnel network,
// max-clients above the largest run, and connect-freq-initial raised (the
// default of both answers 100 new clients per 10 s).
func scaleServerConfig(proto string, f Files) string {
	p := "udp"
	if proto == "tcp" {
		p = "tcp-server"
	}
	lines := []string{
		"dev tun", "proto " + p, "port 1194", "local " + serverAddr.String(),
		"topology subnet", "server 10.8.0.0 255.255.0.0",
		"ca " + f["ca.crt"], "cert " + f["server.crt"], "key " + f["server.key"], "dh none",
		"tls-crypt " + f["tc.key"], "data-ciphers AES-256-GCM", "keepalive 10 120",
		"max-clients 20000", "verb 1", "connect-freq-initial 1000000 10",
	}
	return strings.Join(lines, "\n") + "\n"
}

// scaleResult is one server at one size.
type scaleResult struct {
	impl, proto        string
	n                  int
	up, failed         int
	rate, p50, p99     float64
	rssPerTunnel       float64 // bytes
	cpuPerHandshake    time.Duration
	idleCPU            float64 // share of one core while holding
	failures           map[string]int
	clientRSSPerTunnel float64 // loadgen's own, bytes
}

func scaleRun(t *testing.T, impl, proto string, n, k int, hold time.Duration, loadgen string, files Files) scaleResult {
	srv, cli := topology(t)
	dir := t.TempDir()
	conf := WriteFile(t, dir, "server.conf", scaleServerConfig(proto, files))
	var s *netns.Process
	if impl == "stock" {
		s = srv.Start(t, "openvpn", "--config", conf)
		s.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	} else {
		s = srv.Start(t, serverBin, "-config", conf)
		s.WaitLog(t, "listening", 10*time.Second)
	}
	profile := WriteFile(t, dir, "client.ovpn", fmt.Sprintf("client\ndev tun\nremote %s 1194 %s\nremote-cert-tls server\ndata-ciphers AES-256-GCM\nca %s\ntls-crypt %s\n",
		serverAddr, proto, files["ca.crt"], files["tc.key"]))
	rss0, cpu0 := rss(t, s), cpuTime(t, s)
	report := filepath.Join(dir, "report.json")
	lg := cli.Start(t, loadgen, "-config", profile, "-ca-cert", files["ca.crt"], "-ca-key", files["ca.key"],
		"-n", strconv.Itoa(n), "-max", strconv.Itoa(n), "-k", strconv.Itoa(k), "-timeout", "60s",
		"-hold", hold.String(), "-progress", "5s", "-json", report)
	lg.WaitLog(t, "(?m)^handshakes done$", time.Duration(n)*100*time.Millisecond+2*time.Minute)
	cpu1 := cpuTime(t, s)
	lg.WaitLog(t, "(?m)^holding ", time.Minute)
	rss1, h0, t0 := rss(t, s), cpuTime(t, s), time.Now()
	lg.WaitLog(t, "(?m)^hold end", hold+time.Minute)
	h1, t1 := cpuTime(t, s), time.Now()
	lg.WaitLog(t, "(?m)^done$", 2*time.Minute)
	_ = lg.Stop()
	_ = s.Stop()
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("loadgen report: %v\n%s", err, lg.Log())
	}
	var rep struct {
		Phases []struct {
			Up, Failed int
			PerSecond  float64 `json:"per_second"`
			P50        float64 `json:"p50_ms"`
			P99        float64 `json:"p99_ms"`
			Failures   map[string]int
		}
		Memory struct {
			PerTunnelRSS float64 `json:"per_tunnel_rss_bytes"`
		}
	}
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Phases) != 1 {
		t.Fatalf("loadgen report %s: %v", b, err)
	}
	ph := rep.Phases[0]
	r := scaleResult{impl: impl, proto: proto, n: n, up: ph.Up, failed: ph.Failed, rate: ph.PerSecond, p50: ph.P50, p99: ph.P99,
		failures: ph.Failures, clientRSSPerTunnel: rep.Memory.PerTunnelRSS}
	if ph.Up > 0 {
		r.rssPerTunnel = float64(rss1-rss0) / float64(ph.Up)
		r.cpuPerHandshake = (cpu1 - cpu0) / time.Duration(ph.Up)
	}
	r.idleCPU = (h1 - h0).Seconds() / t1.Sub(t0).Seconds()
	if len(r.failures) > 0 {
		t.Logf("%s %d: failures by cause: %v", impl, n, r.failures)
	}
	return r
}

func rss(t *testing.T, p *netns.Process) int64 {
	t.Helper()
	v, err := p.RSS()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

const scaleHeader = "| tunnels | server | up | failed | handshakes/s | p50 / p99 ms | server RSS per tunnel | server CPU per handshake | idle CPU (hold) | loadgen RSS per tunnel |\n|---|---|---|---|---|---|---|---|---|---|\n"

func (r scaleResult) row() string {
	return fmt.Sprintf("| %d %s | %s | %d | %d | %.0f | %.0f / %.0f | %.1f KiB | %.2f ms | %.1f %% | %.0f KiB |\n",
		r.n, r.proto, r.impl, r.up, r.failed, r.rate, r.p50, r.p99, r.rssPerTunnel/1024,
		float64(r.cpuPerHandshake)/float64(time.Millisecond), 100*r.idleCPU, r.clientRSSPerTunnel/1024)
}

func ratioRow(ours, stock scaleResult) string {
	div := func(a, b float64) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	return fmt.Sprintf("| %d %s | ours ÷ stock | | | %s | | **%s** | **%s** | **%s** | |\n", ours.n, ours.proto,
		div(ours.rate, stock.rate), div(ours.rssPerTunnel, stock.rssPerTunnel),
		div(float64(ours.cpuPerHandshake), float64(stock.cpuPerHandshake)), div(ours.idleCPU, stock.idleCPU))
}
