package swaninterop

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/remotegate/remotegate/internal/netns"
)

// Require skips the test, saying why, unless it can run strongSwan in
// namespaces: root, ip, /dev/net/tun (kernel-libipsec's ipsec0), swanctl,
// unshare, mount, CharonPath and the named extra tools (e.g. "ping",
// "iperf3", "tcpdump"). With the CI environment variable set it fails the
// test instead, like netns.Require.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	netns.Require(t, append([]string{netns.TUN, "swanctl", "unshare", "mount", "env", "sh"}, tools...)...)
	if err := checkCharon(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (CI is set, so this fails instead of skipping)", err)
		}
		t.Skipf("SKIPPING strongSwan interop test: %v", err)
	}
}

func checkCharon() error {
	fi, err := os.Stat(CharonPath)
	if err != nil {
		return fmt.Errorf("%w: %w (install strongswan-charon, strongswan-swanctl, libcharon-extra-plugins: make deps)", netns.ErrUnavailable, err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%w: %s is not an executable file", netns.ErrUnavailable, CharonPath)
	}
	for _, p := range []string{"libstrongswan-kernel-libipsec.so", "libstrongswan-vici.so"} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(CharonPath), "plugins", p)); err != nil {
			return fmt.Errorf("%w: strongSwan plugin %s missing: %w (install libcharon-extra-plugins)", netns.ErrUnavailable, p, err)
		}
	}
	return nil
}
