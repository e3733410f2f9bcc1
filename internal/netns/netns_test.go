package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if leaked := Leaked(); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "netns: namespaces leaked by the tests: %v\n", leaked)
		code = 1
	}
	os.Exit(code)
}

// recorder stands in for a testing.TB to observe Fatal/Skip calls that
// would otherwise end the calling test.
type recorder struct {
	testing.TB
	fatal, skip []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatal(args ...any)         { r.fatal = append(r.fatal, fmt.Sprint(args...)) }
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = append(r.fatal, fmt.Sprintf(f, a...)) }
func (r *recorder) Skip(args ...any)          { r.skip = append(r.skip, fmt.Sprint(args...)) }
func (r *recorder) Skipf(f string, a ...any)  { r.skip = append(r.skip, fmt.Sprintf(f, a...)) }

func TestRequireRefusesWithoutRoot(t *testing.T) {
	old := isRoot
	isRoot = func() bool { return false }
	defer func() { isRoot = old }()

	err := check(nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "root") {
		t.Fatalf("check without root = %v, want ErrUnavailable mentioning root", err)
	}
	r := &recorder{TB: t}
	refuse(r, false, err)
	if len(r.skip) != 1 || len(r.fatal) != 0 || !strings.Contains(r.skip[0], "not running as root") {
		t.Fatalf("outside CI: skip=%q fatal=%q, want one skip with the reason", r.skip, r.fatal)
	}
	r = &recorder{TB: t}
	refuse(r, true, err)
	if len(r.fatal) != 1 || len(r.skip) != 0 || !strings.Contains(r.fatal[0], "CI") {
		t.Fatalf("in CI: skip=%q fatal=%q, want one fatal", r.skip, r.fatal)
	}
}

func TestRequireMissingTool(t *testing.T) {
	if !isRoot() {
		t.Skip("the tool check comes after the root check")
	}
	err := check([]string{"no-such-tool-remotegate"})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `"no-such-tool-remotegate"`) {
		t.Fatalf("check = %v, want ErrUnavailable naming the tool", err)
	}
}

func TestNewName(t *testing.T) {
	for _, prefix := range []string{"", "srv", "a-very-long-prefix", "bad/€ chars"} {
		name, err := newName(prefix)
		if err != nil {
			t.Fatal(err)
		}
		if len(name) > maxPrefix+6 || len(name) < 7 || strings.ContainsAny(name, "/ €") {
			t.Errorf("newName(%q) = %q", prefix, name)
		}
	}
	a, _ := newName("x")
	b, _ := newName("x")
	if a == b {
		t.Errorf("two names are equal: %q", a)
	}
}

func TestParsePing(t *testing.T) {
	out := "PING 10.99.0.2 (10.99.0.2) 56(84) bytes of data.\n\n--- 10.99.0.2 ping statistics ---\n" +
		"5 packets transmitted, 4 received, 20% packet loss, time 812ms\n"
	if n, err := parsePing(out); err != nil || n != 4 {
		t.Fatalf("parsePing = %d, %v; want 4", n, err)
	}
	if _, err := parsePing("ping: connect: Network is unreachable\n"); !errors.Is(err, ErrParse) {
		t.Fatalf("parsePing(garbage) err = %v, want ErrParse", err)
	}
}

func TestParseIperf(t *testing.T) {
	out := `{"start":{},"intervals":[{"sum":{"bits_per_second":1.5e9}},{"sum":{"bits_per_second":0}}],
		"end":{"sum_sent":{"retransmits":7,"bits_per_second":1e9},"sum_received":{"bits_per_second":9.5e8}}}`
	res, err := parseIperf([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if res.BitsPerSecond != 9.5e8 || res.Retransmits != 7 || !slices.Equal(res.Intervals, []float64{1.5e9, 0}) {
		t.Fatalf("parseIperf = %+v", res)
	}
	if _, err := parseIperf([]byte(`{"error":"unable to connect to server: Connection refused"}`)); !errors.Is(err, ErrCommand) {
		t.Fatalf("iperf3 error JSON: err = %v, want ErrCommand", err)
	}
	if _, err := parseIperf([]byte("iperf3: error")); !errors.Is(err, ErrParse) {
		t.Fatalf("non-JSON: err = %v, want ErrParse", err)
	}
}

func TestLinkPingAndCleanup(t *testing.T) {
	Require(t, "ping")
	var names []string
	var sleeper *Process
	straggler := make(chan struct{})
	t.Run("inner", func(t *testing.T) {
		a, b := New(t, "pinga"), New(t, "pingb")
		names = []string{a.Name, b.Name}
		aIf, bIf := Link(t, a, netip.MustParsePrefix("10.99.0.1/24"), b, netip.MustParsePrefix("10.99.0.2/24"))
		if aIf != "veth0" || bIf != "veth0" {
			t.Errorf("interface names %q %q", aIf, bIf)
		}
		// A second link between the same namespaces gets new names.
		aIf2, bIf2 := Link(t, a, netip.MustParsePrefix("fd99::1/64"), b, netip.MustParsePrefix("fd99::2/64"))
		if aIf2 != "veth1" || bIf2 != "veth1" {
			t.Errorf("second link names %q %q", aIf2, bIf2)
		}
		if got := a.Ping(t, netip.MustParseAddr("10.99.0.2"), 3); got != 3 {
			t.Errorf("ping over veth: %d/3 replies", got)
		}
		if got := b.Ping(t, netip.MustParseAddr("fd99::1"), 2); got != 2 {
			t.Errorf("ping6 over veth: %d/2 replies", got)
		}
		if got := a.Ping(t, netip.MustParseAddr("10.99.0.3"), 1); got != 0 {
			t.Errorf("ping to an absent host: %d replies", got)
		}
		// The host's namespace must not see the addresses.
		if out := a.Run(t, 5*time.Second, "ip", "-br", "addr"); !strings.Contains(out, "10.99.0.1/24") {
			t.Errorf("address missing in namespace:\n%s", out)
		}
		if _, err := a.RunErr(5*time.Second, "false"); !errors.Is(err, ErrCommand) {
			t.Errorf("RunErr(false) = %v, want ErrCommand", err)
		}
		if _, err := a.RunErr(200*time.Millisecond, "sleep", "5"); err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("RunErr timeout = %v", err)
		}
		// Started outside Start's bookkeeping to check that namespace
		// cleanup kills stragglers too.
		cmd := a.Command(context.Background(), "sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait(); close(straggler) }()
		sleeper = a.Start(t, "sleep", "60")
	})
	select {
	case <-straggler:
	case <-time.After(2 * time.Second):
		t.Error("a process started with Command survived the namespace cleanup")
	}
	existing := List()
	for _, n := range names {
		if slices.Contains(existing, n) {
			t.Errorf("namespace %s still exists after cleanup", n)
		}
	}
	if sleeper == nil || !sleeper.Exited() {
		t.Error("process started in the namespace survived cleanup")
	}
}

// A namespace's addresses are final once Link returns: none is left
// tentative (duplicate address detection), so nothing in the namespace sees
// them change a second later.
func TestLinkAddressesSettled(t *testing.T) {
	Require(t)
	a, b := New(t, "dada"), New(t, "dadb")
	Link(t, a, netip.MustParsePrefix("10.99.0.1/24"), b, netip.MustParsePrefix("10.99.0.2/24"))
	for _, n := range []*NS{a, b} {
		all := n.Run(t, 5*time.Second, "ip", "-6", "addr", "show", "dev", "veth0")
		if !strings.Contains(all, "fe80::") {
			if strings.Contains(n.Run(t, 5*time.Second, "cat", "/proc/sys/net/ipv6/conf/veth0/disable_ipv6"), "1") {
				t.Skip("IPv6 is disabled on this machine; no link-local addresses to check")
			}
			t.Fatalf("%s: veth0 has no link-local address yet:\n%s", n.Name, all)
		}
		if out := n.Run(t, 5*time.Second, "ip", "-6", "addr", "show", "tentative"); strings.TrimSpace(out) != "" {
			t.Errorf("%s: addresses still tentative right after Link:\n%s", n.Name, out)
		}
	}
}

func TestStartWaitLogStop(t *testing.T) {
	Require(t, "sh")
	ns := New(t, "proc")
	p := ns.Start(t, "sh", "-c", "echo starting; sleep 0.2; echo ready now; exec sleep 30")
	p.WaitLog(t, `ready \w+`, 5*time.Second)
	if p.Exited() {
		t.Fatal("exited early")
	}
	start := time.Now()
	if err := p.Stop(); err == nil {
		t.Error("Stop of a killed process returned nil")
	}
	if time.Since(start) > time.Second {
		t.Errorf("SIGTERM took %v", time.Since(start))
	}
	if !strings.Contains(p.Log(), "starting\nready now\n") {
		t.Errorf("log = %q", p.Log())
	}

	// A process that ignores SIGTERM gets SIGKILL after the grace period.
	stubborn := ns.Start(t, "sh", "-c", `trap "" TERM; echo up; while :; do sleep 0.1; done`)
	stubborn.WaitLog(t, "up", 5*time.Second)
	start = time.Now()
	_ = stubborn.Stop()
	if d := time.Since(start); d < stopGrace-100*time.Millisecond || d > stopGrace+2*time.Second {
		t.Errorf("stop of a TERM-ignoring process took %v, want about %v", d, stopGrace)
	}

	// WaitLog reports a timeout and an early exit instead of hanging.
	r := &recorder{TB: t}
	quiet := ns.Start(t, "sleep", "30")
	quiet.WaitLog(r, "never", 200*time.Millisecond)
	if len(r.fatal) != 1 || !strings.Contains(r.fatal[0], "did not match") {
		t.Errorf("WaitLog timeout: fatal = %q", r.fatal)
	}
	r = &recorder{TB: t}
	short := ns.Start(t, "sh", "-c", "echo bye; exit 3")
	short.WaitLog(r, "never", 5*time.Second)
	if len(r.fatal) != 1 || !strings.Contains(r.fatal[0], "exited") || !strings.Contains(r.fatal[0], "bye") {
		t.Errorf("WaitLog after exit: fatal = %q", r.fatal)
	}
}

func TestIperf3(t *testing.T) {
	Require(t, "iperf3")
	a, b := New(t, "ipa"), New(t, "ipb")
	Link(t, a, netip.MustParsePrefix("10.99.1.1/24"), b, netip.MustParsePrefix("10.99.1.2/24"))
	start := time.Now()
	res := Iperf3(t, a, b, netip.MustParseAddr("10.99.1.2"), 2*time.Second)
	if res.BitsPerSecond <= 0 {
		t.Errorf("throughput %v", res.BitsPerSecond)
	}
	if len(res.Intervals) < 3 {
		t.Errorf("intervals %v, want about 4 of 0.5 s", res.Intervals)
	}
	if d := time.Since(start); d > 12*time.Second {
		t.Errorf("iperf3 run took %v", d)
	}
	t.Logf("veth: %.2f Gbit/s, %d retransmits, intervals %v", res.BitsPerSecond/1e9, res.Retransmits, res.Intervals)
}

func TestParseCPUTime(t *testing.T) {
	// A real line, with a command name containing a space and a parenthesis.
	line := "4242 (ovpn (x) srv) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 125 0 0 20 0 5 0 100 0 0"
	got, err := parseCPUTime(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3750 * time.Millisecond; got != want {
		t.Fatalf("parseCPUTime = %v, want %v (250+125 ticks)", got, want)
	}
	if _, err := parseCPUTime("4242 (x) S 1 2"); err == nil {
		t.Fatal("short line accepted")
	}
}

func TestParseRSS(t *testing.T) {
	status := "Name:\tbroker\nVmPeak:\t  900000 kB\nVmRSS:\t   45312 kB\nRssAnon:\t   30000 kB\n"
	got, err := parseRSS(status)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(45312 * 1024); got != want {
		t.Fatalf("parseRSS = %d, want %d", got, want)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tmany kB\n"} {
		if _, err := parseRSS(bad); err == nil {
			t.Errorf("parseRSS(%q) accepted", bad)
		}
	}
}
