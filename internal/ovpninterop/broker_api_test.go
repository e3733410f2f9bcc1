package ovpninterop

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/license"
)

// plantLab is the product as its users see it: examples/broker in its
// namespace with the management API on its loopback address, two plant
// gateways (stock openvpn clients) with the same LAN 192.168.0.0/24 and a
// host at .10 behind each, and two engineers (stock openvpn clients).
type plantLab struct {
	t    *testing.T
	brk  *netns.NS
	ns   map[string]*netns.NS // u1, u2, dev1, dev2, and lan1, lan2
	data string
	yaml string
	// vendorKey is the vendor public key file the broker verifies
	// licenses with.
	vendorKey string
	broker    *netns.Process
	clients   map[string]*netns.Process
	api       *http.Client
	token     string
	// wrap, if set, is the command the broker runs under (e.g. prlimit
	// with its options); it must exec the broker, so that the process is
	// the broker itself.
	wrap []string
}

const plantYAML = `
public_address: 10.99.1.1
pool: 10.8.0.0/24
user_routes: [10.200.0.0/16]
groups:
  - name: engineers
  - name: plant1
  - name: plant2
users:
  - name: u1
    roles: [vpn_user]
    groups: [engineers]
  - name: u2
    roles: [vpn_user]
devices:
  - name: dev1
    groups: [plant1]
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
# Four participants here and the administrator: one more than the base
# license allows.
licenses:
  - file: rg-64.lic
`

var (
	alias1 = netip.MustParseAddr("10.200.1.10")
	alias2 = netip.MustParseAddr("10.200.2.10")
)

func newPlantLab(t *testing.T) *plantLab {
	netns.Require(t, "openvpn", "ping", "sysctl", "iperf3")
	binaries(t)
	l := &plantLab{t: t, brk: netns.New(t, "rgbrk"), ns: map[string]*netns.NS{}, clients: map[string]*netns.Process{}}
	for i, n := range []string{"u1", "u2", "dev1", "dev2"} {
		ns := netns.New(t, "rg"+n)
		netns.Link(t, l.brk, netip.MustParsePrefix(fmt.Sprintf("10.99.%d.1/24", i+1)), ns, netip.MustParsePrefix(fmt.Sprintf("10.99.%d.2/24", i+1)))
		l.ns[n] = ns
	}
	for i, d := range []string{"dev1", "dev2"} {
		host := netns.New(t, "rglan")
		netns.Link(t, l.ns[d], netip.MustParsePrefix("192.168.0.0/24"), host, netip.MustParsePrefix("192.168.0.10/24"))
		l.ns[d].Run(t, 5*time.Second, "ip", "addr", "flush", "dev", "veth1")
		l.ns[d].Run(t, 5*time.Second, "ip", "addr", "add", "192.168.0.1/24", "dev", "veth1")
		l.ns[d].Run(t, 5*time.Second, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		host.Run(t, 5*time.Second, "ip", "route", "add", "default", "via", "192.168.0.1")
		l.ns[fmt.Sprintf("lan%d", i+1)] = host
	}
	dir := t.TempDir()
	l.data = filepath.Join(dir, "data")
	l.yaml = WriteFile(t, dir, "broker.yaml", plantYAML)
	// The vendor's key pair and a +64 license, as licensetool makes them.
	pub, priv, err := license.GenerateVendorKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	l.vendorKey = WriteFile(t, dir, "vendor.pub", string(license.MarshalVendorPublicKey(pub)))
	lic, err := license.Issue(priv, license.License{Number: "RG-TEST-64", Product: "remotegate", Edition: "standard", Participants: 64, Issued: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, dir, "rg-64.lic", string(lic))
	l.api = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext:     l.brk.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the broker's own CA; the test checks the API, not the PKI
	}}
	return l
}

// start runs the broker and waits until it serves.
func (l *plantLab) start() {
	l.t.Helper()
	cmd := append(append([]string(nil), l.wrap...), brokerBin, "-data", l.data, "-config", l.yaml, "-vendor-key", l.vendorKey)
	l.broker = l.brk.Start(l.t, cmd[0], cmd[1:]...)
	l.broker.WaitLog(l.t, "remotegate broker is running", 30*time.Second)
}

// call makes an API request as the logged-in administrator and decodes a
// JSON answer into out (if not nil); it returns the status.
func (l *plantLab) call(method, path string, body, out any) int {
	l.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://127.0.0.1:8443"+path, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	if l.token != "" {
		req.Header.Set("Authorization", "Bearer "+l.token)
	}
	resp, err := l.api.Do(req)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if s, ok := out.(*string); ok {
			*s = string(data)
		} else if err := json.Unmarshal(data, out); err != nil && resp.StatusCode < 300 {
			l.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func (l *plantLab) must(want int, method, path string, body, out any) {
	l.t.Helper()
	var raw string
	if out == nil {
		out = &raw
	}
	if got := l.call(method, path, body, out); got != want {
		l.t.Fatalf("%s %s: %d %v; want %d", method, path, got, out, want)
	}
}

// bootstrap logs in with the one-time password the broker printed, names
// the administrator root, and logs in as root.
func (l *plantLab) bootstrap() {
	l.t.Helper()
	m := regexp.MustCompile(`one-time password (\S+)`).FindStringSubmatch(l.broker.Log())
	if m == nil {
		l.t.Fatalf("the broker printed no bootstrap password:\n%s", l.broker.Log())
	}
	var tok struct {
		Token      string `json:"token"`
		MustChange bool   `json:"must_change"`
	}
	l.must(http.StatusOK, "POST", "/api/v1/login", map[string]string{"name": "admin", "password": m[1]}, &tok)
	if !tok.MustChange {
		l.t.Fatal("the bootstrap login does not ask for a named administrator")
	}
	l.token = tok.Token
	l.must(http.StatusForbidden, "GET", "/api/v1/users", nil, nil)
	l.must(http.StatusCreated, "POST", "/api/v1/bootstrap", map[string]string{"name": "root", "password": "root's long password"}, nil)
	l.token = ""
	if got := l.call("POST", "/api/v1/login", map[string]string{"name": "admin", "password": m[1]}, nil); got != http.StatusUnauthorized {
		l.t.Fatalf("the bootstrap password worked twice: %d", got)
	}
	l.login()
}

func (l *plantLab) login() {
	l.t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	l.token = ""
	l.must(http.StatusOK, "POST", "/api/v1/login", map[string]string{"name": "root", "password": "root's long password"}, &tok)
	l.token = tok.Token
}

// connect exports the participant's profile through the API, points it at
// the broker's address on the participant's link, and starts a stock
// client with it.
func (l *plantLab) connect(name string) *netns.Process {
	l.t.Helper()
	var profile string
	l.must(http.StatusOK, "POST", "/api/v1/participants/"+name+"/profile", map[string]string{"format": "ovpn"}, &profile)
	i := map[string]int{"u1": 1, "u2": 2, "dev1": 3, "dev2": 4}[name]
	profile = strings.Replace(profile, "remote 10.99.1.1 1194", fmt.Sprintf("remote 10.99.%d.1 1194", i), 1)
	if !strings.Contains(profile, fmt.Sprintf("remote 10.99.%d.1 1194", i)) {
		l.t.Fatalf("profile of %s:\n%s", name, profile)
	}
	p := l.ns[name].Start(l.t, "openvpn", "--config", WriteFile(l.t, l.t.TempDir(), name+".ovpn", profile))
	l.clients[name] = p
	return p
}

// pingWithin pings every 100 ms until a reply comes or d has passed, and
// returns how long the first reply took (or a negative duration).
func pingWithin(ns *netns.NS, addr netip.Addr, d time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < d {
		if out, err := ns.RunErr(2*time.Second, "ping", "-n", "-c", "1", "-W", "0.3", addr.String()); err == nil && strings.Contains(out, "1 received") {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1
}

// TestBrokerThroughTheAPI: the broker's first screen, as an administrator
// sees it. Issue 5, acceptance 1 (through examples/broker, with profiles it
// exports), 2 (changes through the API take effect on live tunnels), 3
// (restart and SIGKILL keep every acknowledged write) and 4 (the bootstrap
// administrator works once).
func TestBrokerThroughTheAPI(t *testing.T) {
	l := newPlantLab(t)
	l.start()
	l.bootstrap()
	for _, n := range []string{"dev1", "dev2", "u1", "u2"} {
		l.connect(n)
	}
	for n, p := range l.clients {
		p.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
		t.Logf("%s connected as %v", n, tunnelAddr(t, p.Log()))
	}
	u1, u2 := l.ns["u1"], l.ns["u2"]
	if got := u1.Ping(t, alias1, 3); got != 3 {
		t.Fatalf("u1 -> host behind plant 1: %d of 3", got)
	}
	if got := u1.Ping(t, alias2, 2); got != 0 {
		t.Fatalf("u1 reached plant 2")
	}
	if got := u2.Ping(t, alias2, 2); got != 0 {
		t.Fatalf("u2 reached plant 2 before it had a relation")
	}
	if got := u2.Ping(t, alias1, 2); got != 0 {
		t.Fatalf("u2 reached plant 1")
	}
	// A TCP connection from u1 to the host behind plant 1.
	srv := l.ns["lan1"].Start(t, "iperf3", "-s", "-1", "--forceflush")
	srv.WaitLog(t, "Server listening", 5*time.Second)
	if out, err := u1.RunErr(20*time.Second, "iperf3", "-c", alias1.String(), "-t", "1"); err != nil {
		t.Fatalf("u1 TCP to the host behind plant 1: %v\n%s", err, out)
	}
	// The relation is one-way: the host behind plant 1 cannot open a flow
	// to u1 (its replies to u1 passed above).
	if got := l.ns["lan1"].Ping(t, tunnelAddr(t, l.clients["u1"].Log()), 2); got != 0 {
		t.Fatalf("the host behind plant 1 reached u1 (%d pings answered)", got)
	}

	// Acceptance 2: a relation for u2, without reconnecting.
	l.must(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "u2s"}, nil)
	l.must(http.StatusOK, "PUT", "/api/v1/users/u2", map[string]any{"name": "u2", "roles": []string{"vpn_user"}, "groups": []string{"u2s"}}, nil)
	l.must(http.StatusCreated, "POST", "/api/v1/relations", map[string]any{"name": "u2-plant2", "from": "u2s", "to": "plant2", "direction": "one-way", "services": []string{"icmp"}}, nil)
	if d := pingWithin(u2, alias2, time.Second); d < 0 {
		t.Fatal("u2 did not reach plant 2 within a second of the new relation")
	} else {
		t.Logf("u2 reached plant 2 %v after the relation was added", d.Round(time.Millisecond))
	}

	// Disable u1: its tunnel closes within a second.
	l.must(http.StatusOK, "PUT", "/api/v1/users/u1", map[string]any{"name": "u1", "roles": []string{"vpn_user"}, "groups": []string{"engineers"}, "disabled": true}, nil)
	start := time.Now()
	for !strings.Contains(l.clients["u1"].Log(), "Connection reset command was pushed by server") {
		if time.Since(start) > time.Second {
			t.Fatalf("u1's client was not told within a second:\n%s", l.clients["u1"].Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var sessions []struct {
		Participant string `json:"participant"`
	}
	l.must(http.StatusOK, "GET", "/api/v1/sessions", nil, &sessions)
	for _, s := range sessions {
		if s.Participant == "u1" {
			t.Fatal("u1 is still listed among the sessions")
		}
	}

	// Revoke u1's certificate and enable u1 again: its client keeps
	// reconnecting with the revoked certificate and is refused.
	var certs []struct {
		Serial     string `json:"serial"`
		CommonName string `json:"common_name"`
	}
	l.must(http.StatusOK, "GET", "/api/v1/certificates", nil, &certs)
	revoked := 0
	for _, c := range certs {
		if c.CommonName == "u1" {
			l.must(http.StatusOK, "POST", "/api/v1/certificates/"+c.Serial+"/revoke", map[string]any{"reason": 1}, nil)
			revoked++
		}
	}
	if revoked != 1 {
		t.Fatalf("found %d certificates of u1", revoked)
	}
	l.must(http.StatusOK, "PUT", "/api/v1/users/u1", map[string]any{"name": "u1", "roles": []string{"vpn_user"}, "groups": []string{"engineers"}}, nil)
	time.Sleep(5 * time.Second) // the stock client retries every few seconds
	l.must(http.StatusOK, "GET", "/api/v1/sessions", nil, &sessions)
	for _, s := range sessions {
		if s.Participant == "u1" {
			t.Fatalf("u1 reconnected with a revoked certificate\nbroker log:\n%s", l.broker.Log())
		}
	}
	if !strings.Contains(l.broker.Log(), "revoked") {
		t.Errorf("the broker log does not say why u1 was refused:\n%s", l.broker.Log())
	}
	var refusals []struct {
		Participant string `json:"participant"`
		Message     string `json:"message"`
	}
	l.must(http.StatusOK, "GET", "/api/v1/events?kind=auth_failure&participant=u1", nil, &refusals)
	if len(refusals) == 0 || refusals[0].Message != "VPN handshake refused" {
		t.Errorf("the event log has no refusal of u1: %+v", refusals)
	}
	var disconnects []struct{}
	l.must(http.StatusOK, "GET", "/api/v1/events?kind=disconnect&participant=u1", nil, &disconnects)
	if len(disconnects) == 0 {
		t.Error("the event log has no disconnect of u1")
	}
	_ = l.clients["u1"].Stop()
	// A new profile (a new certificate) connects: the refusal was the
	// revocation, nothing else.
	l.connect("u1").WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)

	// Acceptance 3: restart; the configuration persists, the clients come
	// back with the same addresses.
	before := map[string]netip.Addr{}
	for n, p := range l.clients {
		before[n] = tunnelAddr(t, p.Log())
	}
	_ = l.broker.Stop()
	l.start()
	if strings.Contains(l.broker.Log(), "one-time password") {
		t.Fatal("the bootstrap password was printed again after a restart")
	}
	l.login()
	l.must(http.StatusOK, "GET", "/api/v1/relations/u2-plant2", nil, nil)
	for n, p := range l.clients {
		deadline := time.Now().Add(openvpnTimeout)
		for strings.Count(p.Log(), "Initialization Sequence Completed") < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not reconnect after the restart:\n%s", n, p.Log())
			}
			time.Sleep(100 * time.Millisecond)
		}
		addrs := regexp.MustCompile(`net_addr_v4_add: ([0-9.]+)/`).FindAllStringSubmatch(p.Log(), -1)
		if got := netip.MustParseAddr(addrs[len(addrs)-1][1]); got != before[n] {
			t.Errorf("%s came back as %v, was %v", n, got, before[n])
		}
	}
	if d := pingWithin(u2, alias2, 5*time.Second); d < 0 {
		t.Fatal("after the restart u2 does not reach plant 2")
	}

	// SIGKILL during a burst of API writes: every write the API
	// acknowledged is there after the restart.
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("burst-%d", i)
			b, _ := json.Marshal(map[string]string{"name": name})
			req, _ := http.NewRequestWithContext(context.Background(), "POST", "https://127.0.0.1:8443/api/v1/groups", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+l.token)
			resp, err := l.api.Do(req)
			if err != nil {
				return // the broker is gone
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			}
		}
	}()
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 20 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.broker.Kill()
	close(stop)
	<-done
	l.start()
	l.login()
	var groups []struct {
		Name string `json:"name"`
	}
	l.must(http.StatusOK, "GET", "/api/v1/groups", nil, &groups)
	have := map[string]bool{}
	for _, g := range groups {
		have[g.Name] = true
	}
	mu.Lock()
	defer mu.Unlock()
	for _, name := range acked {
		if !have[name] {
			t.Errorf("acknowledged group %s is gone after SIGKILL", name)
		}
	}
	t.Logf("%d writes acknowledged before SIGKILL, all present after the restart", len(acked))
	// Five participants (four from the file and the administrator) on the
	// base license and the file's +64.
	if out, err := l.brk.RunErr(10*time.Second, brokerBin, "-data", l.data, "-vendor-key", l.vendorKey, "status"); err != nil ||
		!strings.Contains(out, "bootstrap administrator: done") || !strings.Contains(out, "participants: 5 of 68 participants: base 4 + RG-TEST-64 (+64)") {
		t.Errorf("status after the crash: %v\n%s", err, out)
	}
}
