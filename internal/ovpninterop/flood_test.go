package ovpninterop

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// floodFileLimit is the broker's open-file limit in the flood test: low,
// so that a flood of 1,600 connections per port exceeds it unless the
// broker bounds what unauthenticated connections hold.
const floodFileLimit = 1500

// floodConns is how many idle connections the flood opens to each port
// at once, before it keeps replacing its oldest.
const floodConns = 1600

// idleFlood holds idle TCP connections from one namespace address to one
// port: floodConns opened as fast as they go, then one more every 10 ms,
// each replacing the flood's own oldest, until its context ends.
type idleFlood struct {
	opened, failed atomic.Int64
	burst          chan struct{} // closed when the first floodConns were tried
	done           chan struct{}
	lastErr        atomic.Value
}

func startFlood(ctx context.Context, ns *netns.NS, src netip.Addr, dst string) *idleFlood {
	f := &idleFlood{burst: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		// Every socket is made on a thread inside the namespace; the
		// connections stay there after Do returns.
		_ = ns.Do(func() error {
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: 2 * time.Second}
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			var burstOnce sync.Once
			defer burstOnce.Do(func() { close(f.burst) }) // cut short
			for i := 0; ctx.Err() == nil; i++ {
				if i == floodConns {
					burstOnce.Do(func() { close(f.burst) })
				}
				if i >= floodConns {
					select {
					case <-ctx.Done():
						return nil
					case <-tick.C:
					}
				}
				c, err := d.DialContext(ctx, "tcp", dst)
				if err != nil {
					f.failed.Add(1)
					f.lastErr.Store(err.Error())
					continue
				}
				f.opened.Add(1)
				conns = append(conns, c)
				if len(conns) > floodConns {
					conns[0].Close()
					conns = conns[1:]
				}
			}
			return nil
		})
	}()
	return f
}

func (f *idleFlood) String() string {
	e, _ := f.lastErr.Load().(string)
	return fmt.Sprintf("%d opened, %d failed (last error: %s)", f.opened.Load(), f.failed.Load(), e)
}

// TestBrokerSurvivesConnectionFlood: an unauthenticated flood must not
// stop the broker. examples/broker runs with an open-file limit of 1,500;
// while a stock client's tunnel carries pings, 1,600 idle TCP connections
// from one attacker address go to its OpenVPN port and 1,600 to its
// management API (from another address), and keep coming. The broker stays
// up with its resident memory bounded, the pings keep being answered, a new
// stock client connects over TCP and reaches the plant, and the API
// answers an authenticated request.
func TestBrokerSurvivesConnectionFlood(t *testing.T) {
	netns.Require(t, "prlimit")
	l := newPlantLab(t)
	// u2 joins the engineers, so that the client that connects during the
	// flood may reach plant 1.
	yaml := strings.Replace(plantYAML, "  - name: u2\n    roles: [vpn_user]\n", "  - name: u2\n    roles: [vpn_user]\n    groups: [engineers]\n", 1)
	if yaml == plantYAML {
		t.Fatal("plantYAML changed: u2's entry not found")
	}
	WriteFile(t, filepath.Dir(l.yaml), filepath.Base(l.yaml), yaml)
	l.wrap = []string{"prlimit", fmt.Sprintf("--nofile=%d", floodFileLimit)}
	l.start()
	l.bootstrap()
	pid := l.broker.Cmd.Process.Pid
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(fmt.Sprintf(`Max open files\s+%d\s+%d`, floodFileLimit, floodFileLimit)).Match(limits) {
		t.Fatalf("the broker does not run with the open-file limit %d:\n%s", floodFileLimit, limits)
	}
	for _, n := range []string{"dev1", "u1"} {
		l.connect(n).WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	}
	u1 := l.ns["u1"]
	if got := u1.Ping(t, alias1, 3); got != 3 {
		t.Fatalf("u1 -> host behind plant 1 before the flood: %d of 3", got)
	}
	// u2's profile is exported before the flood and points at the TCP
	// port: the flood is TCP, so a TCP client is the one it could keep out.
	var profile string
	l.must(http.StatusOK, "POST", "/api/v1/participants/u2/profile", map[string]string{"format": "ovpn"}, &profile)
	profile = strings.Replace(profile, "remote 10.99.1.1 1194", "remote 10.99.2.1 1194", 1)
	profile = strings.Replace(profile, "proto udp", "proto tcp-client", 1)
	if !strings.Contains(profile, "remote 10.99.2.1 1194") || !strings.Contains(profile, "proto tcp-client") {
		t.Fatalf("u2's profile:\n%s", profile)
	}
	base, err := l.broker.RSS()
	if err != nil {
		t.Fatal(err)
	}

	// The attacker has its own namespace and address, linked to the
	// broker's; the API listens on the broker's loopback only, so its
	// flood comes from another loopback address there.
	atk := netns.New(t, "rgatk")
	netns.Link(t, l.brk, netip.MustParsePrefix("10.99.9.1/24"), atk, netip.MustParsePrefix("10.99.9.2/24"))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	// RSS and liveness, sampled throughout.
	var maxRSS atomic.Int64
	maxRSS.Store(base)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if rss, err := l.broker.RSS(); err == nil && rss > maxRSS.Load() {
				maxRSS.Store(rss)
			}
		}
	}()
	// Pings through u1's tunnel throughout, in runs of five.
	var sent, received atomic.Int64
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			received.Add(int64(ping(t, u1, alias1, 5)))
			sent.Add(5)
		}
	}()

	vpnFlood := startFlood(ctx, atk, netip.MustParseAddr("10.99.9.2"), "10.99.9.1:1194")
	apiFlood := startFlood(ctx, l.brk, netip.MustParseAddr("127.0.0.2"), "127.0.0.1:8443")
	for _, f := range []*idleFlood{vpnFlood, apiFlood} {
		select {
		case <-f.burst:
		case <-ctx.Done():
			t.Fatalf("the flood's first %d connections took too long: %v", floodConns, f)
		}
	}
	t.Logf("after the burst: OpenVPN port %v; API %v", vpnFlood, apiFlood)
	if l.broker.Exited() {
		t.Fatalf("the broker exited during the flood:\n%s", tail(l.broker.Log()))
	}

	// A new stock client connects over TCP while the flood goes on.
	u2 := l.ns["u2"].Start(t, "openvpn", "--config", WriteFile(t, t.TempDir(), "u2.ovpn", profile))
	u2.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	if got := l.ns["u2"].Ping(t, alias1, 3); got < 2 {
		t.Fatalf("u2, connected during the flood, reached plant 1 with %d of 3 pings", got)
	}
	// The operator still gets an answer from the API (a few tries allowed).
	var sessions string
	status, err := 0, error(nil)
	for try := 0; try < 5; try++ {
		if status, sessions, err = apiTry(l, "GET", "/api/v1/sessions"); err == nil && status == http.StatusOK {
			break
		}
	}
	if status != http.StatusOK || !strings.Contains(sessions, `"u1"`) || !strings.Contains(sessions, `"u2"`) {
		t.Fatalf("GET /api/v1/sessions during the flood: %d %v\n%s", status, err, sessions)
	}
	// Let the flood run a little longer with both clients up.
	if got := u1.Ping(t, alias1, 10); got < 9 {
		t.Errorf("u1 -> plant 1 late in the flood: %d of 10", got)
	}
	if l.broker.Exited() {
		t.Fatalf("the broker exited during the flood:\n%s", tail(l.broker.Log()))
	}
	cancel()
	wg.Wait()
	<-vpnFlood.done
	<-apiFlood.done
	t.Logf("flood: OpenVPN port %v; API %v", vpnFlood, apiFlood)
	for name, f := range map[string]*idleFlood{"OpenVPN port": vpnFlood, "API": apiFlood} {
		if f.opened.Load() < floodConns {
			t.Errorf("the flood of the %s opened only %v", name, f)
		}
	}
	if s, r := sent.Load(), received.Load(); s < 20 || r < s*9/10 {
		t.Errorf("pings through u1's tunnel during the flood: %d of %d answered", r, s)
	} else {
		t.Logf("pings through u1's tunnel during the flood: %d of %d answered", r, s)
	}
	// Without bounds every idle connection holds a goroutine and buffers
	// (about 70 KiB each before the first packet), 1,600 of them over
	// 100 MiB. With them at most MaxPendingPerSource (8) OpenVPN and a few
	// dozen API connections of one source are held at a time.
	rssBound := base + 48<<20
	t.Logf("broker RSS: %d MiB before the flood, at most %d MiB during it (bound %d MiB)", base>>20, maxRSS.Load()>>20, rssBound>>20)
	if maxRSS.Load() > rssBound {
		t.Errorf("broker RSS reached %d MiB during the flood; bound %d MiB", maxRSS.Load()>>20, rssBound>>20)
	}
	if log := l.broker.Log(); strings.Contains(log, "too many open files") {
		t.Errorf("the broker ran out of file descriptors during the flood:\n%s", tail(log))
	}
}

// apiTry is one API request as the logged-in administrator that returns
// transport errors instead of failing the test.
func apiTry(l *plantLab, method, path string) (int, string, error) {
	req, err := http.NewRequest(method, "https://127.0.0.1:8443"+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:     l.brk.DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the broker's own CA; the test checks the API, not the PKI
	}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func tail(s string) string {
	if len(s) > 8<<10 {
		return "...\n" + s[len(s)-8<<10:]
	}
	return s
}
