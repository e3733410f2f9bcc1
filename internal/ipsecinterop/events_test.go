package ipsecinterop

import (
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/tunnel"
)

// Helpers of the acceptance tests for traffic selectors, rekeying, dead
// peer detection and deletes.

// waitUp returns the next session the hub admitted.
func waitUp(t *testing.T, h *hub, d time.Duration) tunnel.Session {
	t.Helper()
	select {
	case s := <-h.ups:
		if s.Identity().Name != swaninterop.InitiatorID {
			t.Fatalf("session of %q, want %q", s.Identity().Name, swaninterop.InitiatorID)
		}
		return s
	case <-time.After(d):
		t.Fatalf("no session came up within %v", d)
		return nil
	}
}

// waitDown returns how long the next Down took to come, and its cause.
func waitDown(t *testing.T, h *hub, d time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	select {
	case err := <-h.downs:
		return time.Since(start), err
	case <-time.After(d):
		t.Fatalf("no session went down within %v", d)
		return 0, nil
	}
}

// noEvents fails the test if the hub saw a session come up or go down.
func noEvents(t *testing.T, h *hub, when string) {
	t.Helper()
	select {
	case s := <-h.ups:
		t.Errorf("%s: another session came up (%d)", when, s.ID())
	default:
	}
	select {
	case err := <-h.downs:
		t.Errorf("%s: the session went down: %v", when, err)
	default:
	}
}

// goLog keeps what the Go server logs, for assertions, and passes it on to
// the test's log.
type goLog struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (g *goLog) Write(p []byte) (int, error) {
	g.mu.Lock()
	g.b.Write(p)
	g.mu.Unlock()
	g.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (g *goLog) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.String()
}

// count is how many lines of the log match re.
func (g *goLog) count(re string) int {
	return len(regexp.MustCompile("(?m)"+re).FindAllStringIndex(g.String(), -1))
}

// captureLog returns a goLog and the Config tweak that makes the server
// log into it.
func captureLog(t *testing.T) (*goLog, func(*ipsec.Config)) {
	g := &goLog{t: t}
	return g, func(c *ipsec.Config) { c.Logger = slog.New(slog.NewTextHandler(g, nil)) }
}

// countLog is how many lines of a charon.log match re.
func countLog(log, re string) int {
	return len(regexp.MustCompile("(?m)"+re).FindAllStringIndex(log, -1))
}

// pingFrom pings dst from src in ns (ping -I src) and returns how many
// replies came back; the source address picks the traffic selector.
func pingFrom(t *testing.T, ns *netns.NS, src, dst netip.Addr, count int) int {
	t.Helper()
	return ns.PingFrom(t, src, dst, count)
}

// ikeSAs returns the IKE SA lines of swanctl --list-sas ("lab: #1,
// ESTABLISHED, IKEv2, ...").
func ikeSAs(listSAs string) []string {
	var out []string
	for _, ln := range strings.Split(listSAs, "\n") {
		if strings.HasPrefix(ln, swaninterop.ConnName+": #") {
			out = append(out, ln)
		}
	}
	return out
}

// withChild adds a second child section, rendered from child (only its
// children block is used), to the connection of conf.
func withChild(conf string, child swaninterop.Conn) string {
	const open = "    children {\n"
	c := child.String()
	i := strings.Index(c, open)
	j := -1
	if i >= 0 {
		j = strings.Index(c[i:], "\n    }\n")
	}
	if j < 0 {
		panic(fmt.Sprintf("withChild: no children section in\n%s", c))
	}
	block := c[i+len(open) : i+j+1]
	return strings.Replace(conf, open, open+block, 1)
}
