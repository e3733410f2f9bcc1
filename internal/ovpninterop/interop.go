package ovpninterop

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/internal/netns"
)

// Build compiles the module's package pkg (e.g. "./examples/ovpn-server")
// into dir and returns the binary's path.
func Build(t testing.TB, dir, pkg string) string {
	t.Helper()
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// GenKey runs `openvpn --genkey kind file` (kinds: secret, tls-crypt,
// tls-crypt-v2-server); for kind tls-crypt-v2-client, extra[0] is the server
// key file.
func GenKey(t testing.TB, dir, kind, name string, extra ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	args := []string{"--genkey", kind, path}
	if kind == "tls-crypt-v2-client" {
		args = append([]string{"--tls-crypt-v2", extra[0]}, args...)
	}
	if out, err := exec.Command("openvpn", args...).CombinedOutput(); err != nil {
		t.Fatalf("openvpn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return path
}

// Options describes one interop configuration.
type Options struct {
	Proto      string // udp or tcp
	Protection string // none, tls-auth, tls-crypt, tls-crypt-v2
	Cipher     string
	ServerAddr string // the server's outer address
	Port       int
	RenegSec   int // 0: default
	Extra      []string
}

// Files are the paths of the keys and certificates a config refers to.
type Files map[string]string

func (o Options) protectionLine(f Files, server bool) string {
	switch o.Protection {
	case "tls-auth":
		if server {
			return "tls-auth " + f["ta.key"] + " 0"
		}
		return "tls-auth " + f["ta.key"] + " 1"
	case "tls-crypt":
		return "tls-crypt " + f["tc.key"]
	case "tls-crypt-v2":
		if server {
			return "tls-crypt-v2 " + f["v2s.key"]
		}
		return "tls-crypt-v2 " + f["v2c.key"]
	}
	return ""
}

// ServerConfig renders a server config that stock openvpn and
// examples/ovpn-server both read.
func ServerConfig(o Options, f Files) string {
	proto := "udp"
	if o.Proto == "tcp" {
		proto = "tcp-server"
	}
	lines := []string{
		"dev tun", "proto " + proto, fmt.Sprintf("port %d", o.Port),
		"topology subnet", "server 10.8.0.0 255.255.255.0",
		"ca " + f["ca.crt"], "cert " + f["server.crt"], "key " + f["server.key"], "dh none",
		o.protectionLine(f, true), "data-ciphers " + o.Cipher, "keepalive 10 120", "verb 3",
	}
	if o.ServerAddr != "" {
		lines = append(lines, "local "+o.ServerAddr)
	}
	if o.RenegSec > 0 {
		lines = append(lines, fmt.Sprintf("reneg-sec %d", o.RenegSec))
	}
	return strings.Join(append(lines, o.Extra...), "\n") + "\n"
}

// ClientConfig renders a client profile for client name ("client1", ...)
// through broker/profile, the renderer of the broker's profiles: the CA,
// the client's certificate and key and the control channel key are read
// from the files and written inline, so every interop test with a stock
// client also proves the profiles the broker hands out.
func ClientConfig(t testing.TB, o Options, f Files, name string) string {
	t.Helper()
	read := func(file string) []byte {
		t.Helper()
		path, ok := f[file]
		if !ok {
			t.Fatalf("ClientConfig: no file %q", file)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("ClientConfig: %v", err)
		}
		return b
	}
	p := profile.OpenVPN{
		Comment: []string{"interop client " + name},
		Remotes: []profile.Remote{{Host: o.ServerAddr, Port: o.Port, Proto: o.Proto}},
		Verb:    3,
		CA:      read("ca.crt"), Cert: read(name + ".crt"), Key: read(name + ".key"),
		Extra: o.Extra,
	}
	if o.Cipher != "" {
		p.DataCiphers = strings.Split(o.Cipher, ":")
	}
	switch o.Protection {
	case "tls-auth":
		p.TLSAuth = read("ta.key")
	case "tls-crypt":
		p.TLSCrypt = read("tc.key")
	case "tls-crypt-v2":
		p.TLSCryptV2 = read("v2c.key")
	}
	if o.RenegSec > 0 {
		p.Extra = append([]string{fmt.Sprintf("reneg-sec %d", o.RenegSec)}, o.Extra...)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	return string(b)
}

// WriteFile writes content to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ping sends count echo requests from ns to addr and returns how many were
// answered.
func ping(t testing.TB, ns *netns.NS, addr netip.Addr, count int) int {
	t.Helper()
	return ns.Ping(t, addr, count)
}

// iperfResult is what one iperf3 client run measured.
type iperfResult struct {
	BitsPerSecond float64
	Intervals     []float64 // bits/s per interval
	Seconds       []float64 // length of each interval
}

// iperf3 runs an iperf3 server in server (bound to addr) and a client in
// client for d: TCP, one stream, 0.1 s intervals.
func iperf3(t testing.TB, client, server *netns.NS, addr netip.Addr, d time.Duration, extra ...string) iperfResult {
	t.Helper()
	srv := server.Start(t, "iperf3", "-s", "-1", "--forceflush", "-B", addr.String())
	srv.WaitLog(t, "Server listening", 5*time.Second)
	args := append([]string{"-c", addr.String(), "-t", fmt.Sprint(int(d / time.Second)), "-i", "0.1", "-J"}, extra...)
	out, err := client.RunErr(d+20*time.Second, "iperf3", args...)
	if err != nil {
		t.Fatalf("iperf3 client: %v\n%s", err, out)
	}
	var r struct {
		Intervals []struct {
			Sum struct {
				BitsPerSecond float64 `json:"bits_per_second"`
				Seconds       float64 `json:"seconds"`
			} `json:"sum"`
		} `json:"intervals"`
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	res := iperfResult{BitsPerSecond: r.End.SumReceived.BitsPerSecond}
	for _, iv := range r.Intervals {
		res.Intervals = append(res.Intervals, iv.Sum.BitsPerSecond)
		res.Seconds = append(res.Seconds, iv.Sum.Seconds)
	}
	return res
}

// longestGap is the longest run of intervals without traffic.
func (r iperfResult) longestGap() time.Duration {
	var longest, run float64
	for i, bps := range r.Intervals {
		if bps == 0 {
			run += r.Seconds[i]
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return time.Duration(longest * float64(time.Second))
}

// duration is the total time the intervals cover.
func (r iperfResult) duration() time.Duration {
	var d float64
	for _, s := range r.Seconds {
		d += s
	}
	return time.Duration(d * float64(time.Second))
}
