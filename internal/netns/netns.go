package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrCommand reports that a command run in a namespace failed; the wrapped
// error carries the exit status and the message its output.
var ErrCommand = errors.New("netns: command failed")

// maxPrefix bounds the caller's prefix so that names stay short: the
// namespace name shows up in interface names and logs, and Linux interface
// names are limited to 15 bytes.
const maxPrefix = 8

// ipTimeout bounds every administrative `ip` invocation.
const ipTimeout = 10 * time.Second

// NS is a network namespace created by New.
type NS struct {
	Name string

	mu    sync.Mutex
	links int // veth ends created in this namespace, for unique names
}

// created tracks the namespaces made by this process that have not been
// deleted yet, so Leaked can report what a cleanup missed.
var created sync.Map // name -> struct{}

// New creates a namespace with a unique name (prefix + random suffix, at most
// 14 bytes), brings lo up, and registers cleanup that kills every process
// left in it and deletes it.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	name, err := newName(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := ip("netns", "add", name); err != nil {
		t.Fatalf("netns: create %s: %v\n%s", name, err, out)
	}
	created.Store(name, struct{}{})
	n := &NS{Name: name}
	// Registered before anything else touches the namespace: cleanups run in
	// reverse order, so processes started later are stopped first (with
	// their logs) and the namespace goes last.
	t.Cleanup(func() {
		if err := n.destroy(); err != nil {
			t.Errorf("netns: cleanup of %s: %v", name, err)
		}
	})
	if out, err := ip("-n", name, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("netns: lo up in %s: %v\n%s", name, err, out)
	}
	// No duplicate address detection in a namespace of our own: every
	// address is ours. With it, each link-local address a veth gets when it
	// comes up turns from tentative to preferred a second or two later, and
	// a program watching the addresses (a browser aborts its page loads with
	// ERR_NETWORK_CHANGED) sees the network change after the test set it up.
	// A kernel without IPv6 has no such files; nothing to switch off then.
	for _, conf := range []string{"all", "default"} {
		_, _ = ip("netns", "exec", name, "sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/"+conf+"/accept_dad")
	}
	return n
}

func newName(prefix string) (string, error) {
	prefix = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, prefix)
	if prefix == "" {
		prefix = "rg"
	}
	if len(prefix) > maxPrefix {
		prefix = prefix[:maxPrefix]
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("netns: random name: %w", err)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// destroy kills what still runs in the namespace and deletes it. Killing
// first matters: a namespace with live processes only disappears from
// `ip netns list`, it keeps existing (and holding its tun devices and
// ports) until they exit.
func (n *NS) destroy() error {
	var errs []error
	for attempt := 0; attempt < 5; attempt++ {
		pids := n.pids()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if n, err := strconv.Atoi(pid); err == nil && n > 1 {
				_ = syscall.Kill(n, syscall.SIGKILL) // it may have exited meanwhile
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pids := n.pids(); len(pids) > 0 {
		errs = append(errs, fmt.Errorf("processes survive SIGKILL: %v", pids))
	}
	var out string
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if out, err = ip("netns", "del", n.Name); err == nil || !n.exists() {
			err = nil
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("ip netns del: %w: %s", err, out))
	} else {
		created.Delete(n.Name)
	}
	return errors.Join(errs...)
}

func (n *NS) pids() []string {
	out, err := ip("netns", "pids", n.Name)
	if err != nil {
		return nil
	}
	return strings.Fields(out)
}

func (n *NS) exists() bool {
	return slices.Contains(List(), n.Name)
}

// List returns the names of all named network namespaces on the host
// (`ip netns list`).
func List() []string {
	out, err := ip("netns", "list")
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		// Lines look like "name (id: 3)" or just "name".
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// Leaked returns the namespaces created by New in this process that still
// exist. A TestMain can fail the run when it is not empty after m.Run.
func Leaked() []string {
	existing := List()
	var leaked []string
	created.Range(func(k, _ any) bool {
		if name := k.(string); slices.Contains(existing, name) {
			leaked = append(leaked, name)
		}
		return true
	})
	slices.Sort(leaked)
	return leaked
}

// Link connects two namespaces with a veth pair, assigns the addresses (with
// their prefix lengths) and brings both ends up. The ends are created
// directly inside their namespaces, so the names ("veth0", "veth1", ... per
// namespace) never collide with the host's or another test's interfaces.
func Link(t testing.TB, a *NS, aAddr netip.Prefix, b *NS, bAddr netip.Prefix) (aIf, bIf string) {
	t.Helper()
	if a == b {
		t.Fatal("netns: Link needs two different namespaces")
	}
	aIf, bIf = a.nextIf(), b.nextIf()
	if out, err := ip("link", "add", "name", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name); err != nil {
		t.Fatalf("netns: veth %s/%s <-> %s/%s: %v\n%s", a.Name, aIf, b.Name, bIf, err, out)
	}
	for _, end := range []struct {
		ns   *NS
		ifc  string
		addr netip.Prefix
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if end.addr.IsValid() {
			args := []string{"-n", end.ns.Name, "addr", "add", end.addr.String(), "dev", end.ifc}
			if end.addr.Addr().Is6() {
				// Without nodad the address stays "tentative" for a second
				// or two and binding to it fails.
				args = append(args, "nodad")
			}
			if out, err := ip(args...); err != nil {
				t.Fatalf("netns: address %s on %s/%s: %v\n%s", end.addr, end.ns.Name, end.ifc, err, out)
			}
		}
		if out, err := ip("-n", end.ns.Name, "link", "set", end.ifc, "up"); err != nil {
			t.Fatalf("netns: %s/%s up: %v\n%s", end.ns.Name, end.ifc, err, out)
		}
	}
	return aIf, bIf
}

// AddAddress puts the address p (with its prefix length) on the interface
// dev of the namespace. An IPv6 address is usable at once (nodad): without
// it, it is tentative until the kernel's address worker has run, which on
// a loaded machine comes after the test binds to it, even on lo.
func (n *NS) AddAddress(t testing.TB, p netip.Prefix, dev string) {
	t.Helper()
	args := []string{"-n", n.Name, "addr", "add", p.String(), "dev", dev}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	if out, err := ip(args...); err != nil {
		t.Fatalf("netns: address %s on %s/%s: %v\n%s", p, n.Name, dev, err, out)
	}
}

func (n *NS) nextIf() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	name := fmt.Sprintf("veth%d", n.links)
	n.links++
	return name
}

// Command returns `ip netns exec <ns> name args...`. ip execs the program
// after joining the namespace, so the returned command's process is the
// program itself and signals reach it directly.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	// A child that keeps the output pipe open must not make Wait hang after
	// the context ends.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Run runs a command in the namespace to completion within timeout and
// returns its combined output; it fails the test on any error.
func (n *NS) Run(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := n.RunErr(timeout, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RunErr is Run returning the error (wrapping ErrCommand, with the output)
// instead of failing the test.
func (n *NS) RunErr(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v: %w", timeout, err)
		}
		return string(out), fmt.Errorf("%w: %s %s in %s: %w\n%s", ErrCommand, name, strings.Join(args, " "), n.Name, err, out)
	}
	return string(out), nil
}

// ip runs an administrative iproute2 command in the host namespace.
func ip(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w: ip %s: %w", ErrCommand, strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// isRoot is a variable so tests can exercise Require's refusal paths.
var isRoot = func() bool { return os.Geteuid() == 0 }
