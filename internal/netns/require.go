package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// ErrUnavailable reports that a prerequisite of namespace tests is missing.
var ErrUnavailable = errors.New("netns: prerequisite missing")

// TUN is a pseudo tool name for Require: it checks that /dev/net/tun exists
// rather than looking a program up in PATH. Requiring "openvpn" implies it.
const TUN = "tun"

const tunPath = "/dev/net/tun"

// Require skips the test, giving the precise reason, when it is not running
// as root, when `ip` or one of the named tools is not in PATH, when /dev/net/tun
// is missing (for TUN or "openvpn"), or when namespaces cannot be created.
// When the CI environment variable is set it calls t.Fatal instead of
// t.Skip: CI runs as root with the packages installed, and a skip there would
// hide a broken runner.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if err := check(tools); err != nil {
		refuse(t, os.Getenv("CI") != "", err)
	}
}

// Refuse skips t, giving err as the reason, or fails it when the CI
// environment variable is set. Harnesses with prerequisites of their own (a
// browser, say) call it so that every test that cannot run refuses the same
// way as Require.
func Refuse(t testing.TB, err error) {
	t.Helper()
	refuse(t, os.Getenv("CI") != "", err)
}

func refuse(t testing.TB, ci bool, err error) {
	t.Helper()
	if ci {
		t.Fatalf("%v (CI is set, so this fails instead of skipping)", err)
		return
	}
	t.Skipf("SKIPPING interop test: %v", err)
}

func check(tools []string) error {
	if !isRoot() {
		return fmt.Errorf("%w: not running as root (uid %d); network namespaces need root", ErrUnavailable, os.Geteuid())
	}
	needTUN := false
	for _, tool := range append([]string{"ip"}, tools...) {
		if tool == TUN {
			needTUN = true
			continue
		}
		if tool == "openvpn" {
			needTUN = true
		}
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %q not found in PATH (install it: make deps): %w", ErrUnavailable, tool, err)
		}
	}
	if needTUN {
		if fi, err := os.Stat(tunPath); err != nil {
			return fmt.Errorf("%w: %s: %w (create it with: mkdir -p /dev/net && mknod %s c 10 200)", ErrUnavailable, tunPath, err, tunPath)
		} else if fi.Mode()&os.ModeCharDevice == 0 {
			return fmt.Errorf("%w: %s is not a character device", ErrUnavailable, tunPath)
		}
	}
	return probe()
}

var (
	probeOnce sync.Once
	probeErr  error
)

// probe creates and deletes one namespace, once per process: being root is
// not enough inside some containers (no CAP_SYS_ADMIN, read-only /run).
func probe() error {
	probeOnce.Do(func() {
		name, err := newName("probe")
		if err != nil {
			probeErr = err
			return
		}
		if out, err := ip("netns", "add", name); err != nil {
			probeErr = fmt.Errorf("%w: cannot create a network namespace: %w: %s", ErrUnavailable, err, out)
			return
		}
		if out, err := ip("netns", "del", name); err != nil {
			probeErr = fmt.Errorf("%w: cannot delete network namespace %s: %w: %s", ErrUnavailable, name, err, out)
		}
	})
	return probeErr
}
