package swaninterop

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// CharonPath is strongSwan's IKE daemon (Debian's strongswan-charon); it
// runs in the foreground.
var CharonPath = "/usr/lib/ipsec/charon"

// DefaultPlugins is the explicit plugin list of notes §8.2:
// kernel-libipsec comes before kernel-netlink (userspace ESP through the
// TUN ipsec0; this kernel has no XFRM ciphers), and resolve is absent (it
// rewrites the host's /etc/resolv.conf, which namespaces share).
var DefaultPlugins = []string{
	"random", "nonce", "openssl", "pem", "pkcs1", "pkcs8", "x509", "revocation",
	"constraints", "pubkey", "sha1", "sha2", "hmac", "aes", "gcm", "curve25519",
	"gmp", "kdf", "kernel-libipsec", "kernel-netlink", "socket-default", "vici",
	"updown", "attr",
}

// DefaultLogLevels are the filelog levels of notes §8.2. enc 3 dumps
// decrypted payloads; ike/chd 4 dump the derived keys.
var DefaultLogLevels = map[string]int{"default": 1, "ike": 2, "cfg": 2, "chd": 2, "knl": 2, "enc": 1}

const (
	// startTimeout bounds the wait for the VICI socket after starting charon.
	startTimeout = 10 * time.Second
	// swanctlTimeout bounds administrative swanctl calls.
	swanctlTimeout = 15 * time.Second
	// initiateTimeout is what swanctl --initiate waits for the CHILD_SA
	// (charon keeps trying in the background after swanctl detaches).
	initiateTimeout = 15 * time.Second
	// logTail bounds the charon.log printed on failure.
	logTail = 64 << 10
)

// swanctlDirs are the credential directories swanctl --load-all reads next
// to swanctl.conf; all exist so that it does not complain about missing ones.
var swanctlDirs = []string{"x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey", "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12"}

// loadFailure matches swanctl's messages for sections or files that did
// not load (it exits 0 for some of them).
var loadFailure = regexp.MustCompile(`(?m)^.*\bfailed\b.*$`)

// Options configure one charon.
type Options struct {
	// Plugins are loaded in addition to DefaultPlugins. "resolve" is refused.
	Plugins []string
	// LogLevels override or extend DefaultLogLevels for charon.log
	// (subsystem name, "default" included, to level -1..4).
	LogLevels map[string]int
	// Settings are extra lines inside `charon { }` of strongswan.conf, e.g.
	// "keep_alive = 5s" or "retransmit_timeout = 1.0".
	Settings string
}

// Charon is one strongSwan IKE daemon running in a network namespace with
// its own strongswan.conf, VICI socket, log file and private /run.
type Charon struct {
	NS *netns.NS
	// Process is the daemon itself (for CPUTime, Exited, Kill).
	Process *netns.Process

	dir  string // short directory under /tmp (unix socket paths are limited to 108 bytes)
	conf string // strongswan.conf
	uri  string // unix://.../charon.vici
}

var (
	liveMu sync.Mutex
	live   = map[*Charon]struct{}{} // started and not yet stopped, for Leaked
)

// Start writes a strongswan.conf and the swanctl directory tree
// (swanctl/{x509,x509ca,private,...}) into a fresh short directory under /tmp,
// starts charon in ns inside `unshare -m --propagation private` with a tmpfs
// on /run (so the pid files of several instances cannot clash), and waits
// up to 10 s until its VICI socket answers `swanctl --stats`. At cleanup
// charon gets SIGTERM (it sends DELETE for its SAs), then SIGKILL after 3 s;
// charon.log is printed when the test failed, and the directory is removed.
func Start(t testing.TB, ns *netns.NS, opt Options) *Charon {
	t.Helper()
	if slices.Contains(opt.Plugins, "resolve") {
		t.Fatal("swaninterop: the resolve plugin rewrites the host's /etc/resolv.conf; it is never loaded")
	}
	dir, err := os.MkdirTemp("", "sw")
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the directory goes after the log was
	// printed, the log is printed after charon stopped (registered by
	// ns.Start below), so it includes the shutdown.
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &Charon{NS: ns, dir: dir, conf: filepath.Join(dir, "strongswan.conf"), uri: "unix://" + filepath.Join(dir, "charon.vici")}
	for _, sub := range swanctlDirs {
		if err := os.MkdirAll(filepath.Join(dir, "swanctl", sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(c.conf, []byte(c.strongswanConf(opt)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		liveMu.Lock()
		if c.Process == nil || c.Process.Exited() {
			delete(live, c)
		}
		liveMu.Unlock()
		if t.Failed() {
			t.Logf("charon.log of %s (%s):\n%s", ns.Name, c.dir, tail(c.Log(), logTail))
		}
	})
	// The mount is done by a shell between unshare and charon; the config
	// path travels as $1 so it needs no quoting. `exec` keeps charon the
	// process that netns.Start signals.
	script := `mount -t tmpfs -o mode=0755 tmpfs /run && export STRONGSWAN_CONF="$1" && exec "$2"`
	c.Process = ns.Start(t, "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", c.conf, CharonPath)
	liveMu.Lock()
	live[c] = struct{}{}
	liveMu.Unlock()
	c.waitReady(t)
	return c
}

func (c *Charon) strongswanConf(opt Options) string {
	plugins := append(slices.Clone(DefaultPlugins), opt.Plugins...)
	levels := maps.Clone(DefaultLogLevels)
	maps.Copy(levels, opt.LogLevels)
	var b strings.Builder
	b.WriteString("# written by internal/swaninterop (see notes/ikev2.md §8.2)\n")
	b.WriteString("charon {\n")
	b.WriteString("  load_modular = no\n")
	b.WriteString("  load = " + strings.Join(plugins, " ") + "\n")
	b.WriteString("  install_routes = yes\n") // libipsec steers traffic into ipsec0 with routes in table 220
	b.WriteString("  port = 500\n")
	b.WriteString("  port_nat_t = 4500\n")
	b.WriteString("  plugins {\n")
	b.WriteString("    vici {\n      socket = " + c.uri + "\n    }\n")
	b.WriteString("  }\n")
	b.WriteString("  filelog {\n    lab {\n")
	b.WriteString("      path = " + filepath.Join(c.dir, "charon.log") + "\n")
	b.WriteString("      append = no\n      flush_line = yes\n      time_format = %T\n")
	for _, k := range slices.Sorted(maps.Keys(levels)) {
		fmt.Fprintf(&b, "      %s = %d\n", k, levels[k])
	}
	b.WriteString("    }\n  }\n")
	b.WriteString("  syslog {\n    daemon {\n      default = -1\n    }\n  }\n")
	if s := strings.TrimSpace(opt.Settings); s != "" {
		for _, l := range strings.Split(s, "\n") {
			b.WriteString("  " + strings.TrimSpace(l) + "\n")
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func (c *Charon) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	var out string
	var err error
	for {
		if c.Process.Exited() {
			t.Fatalf("swaninterop: charon in %s exited during startup:\n%s\ncharon.log:\n%s", c.NS.Name, c.Process.Log(), tail(c.Log(), logTail))
		}
		out, err = c.Swanctl(2*time.Second, "--stats")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("swaninterop: charon in %s: VICI socket did not answer within %v: %v\n%s\ncharon.log:\n%s", c.NS.Name, startTimeout, err, out, tail(c.Log(), logTail))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Dir is the instance's directory: strongswan.conf, charon.log,
// charon.vici and swanctl/.
func (c *Charon) Dir() string { return c.dir }

// URI is the VICI socket's URI (unix://<Dir>/charon.vici).
func (c *Charon) URI() string { return c.uri }

// ConfPath is the strongswan.conf the instance reads (STRONGSWAN_CONF).
func (c *Charon) ConfPath() string { return c.conf }

// AddFile writes data to rel below the swanctl directory, e.g.
// "x509ca/ca.pem", "x509/me.pem" or "private/me.pem". Load picks it up.
func (c *Charon) AddFile(t testing.TB, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(c.dir, "swanctl", filepath.Clean("/" + rel)[1:])
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// InstallCA adds the CA certificate as x509ca/<CN>.pem (a trust anchor) and
// returns the file name.
func (c *Charon) InstallCA(t testing.TB, ca *CA) string {
	t.Helper()
	name := fileName(ca.Name) + ".pem"
	c.AddFile(t, "x509ca/"+name, ca.CertPEM)
	return name
}

// InstallLeaf adds the certificate as x509/<name>.pem and its key as
// private/<name>.pem, and returns "<name>.pem", the value for Conn.CertFile.
func (c *Charon) InstallLeaf(t testing.TB, name string, leaf *Leaf) string {
	t.Helper()
	file := fileName(name) + ".pem"
	c.AddFile(t, "x509/"+file, leaf.CertPEM)
	c.AddFile(t, "private/"+file, leaf.KeyPEM)
	return file
}

// Load writes swanctl/swanctl.conf and loads it with everything next to it
// (`swanctl --load-all --clear --noprompt --file ...`), replacing what was
// loaded before. It fails the test, with swanctl's output, on error.
func (c *Charon) Load(t testing.TB, swanctlConf string) {
	t.Helper()
	file := filepath.Join(c.dir, "swanctl", "swanctl.conf")
	if err := os.WriteFile(file, []byte(swanctlConf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := c.Swanctl(swanctlTimeout, "--load-all", "--clear", "--noprompt", "--file", file)
	if err != nil {
		t.Fatalf("swaninterop: loading swanctl.conf into charon in %s: %v\nswanctl.conf:\n%s", c.NS.Name, err, swanctlConf)
	}
	// swanctl exits 0 even when single sections fail to load.
	if loadFailure.MatchString(out) {
		t.Fatalf("swaninterop: loading swanctl.conf into charon in %s:\n%s\nswanctl.conf:\n%s", c.NS.Name, out, swanctlConf)
	}
}

// Swanctl runs swanctl in the namespace with the instance's
// STRONGSWAN_CONF and --uri appended, and returns its combined output. The
// error wraps netns.ErrCommand and includes the output.
func (c *Charon) Swanctl(timeout time.Duration, args ...string) (string, error) {
	full := append([]string{"STRONGSWAN_CONF=" + c.conf, "swanctl"}, args...)
	full = append(full, "--uri", c.uri)
	return c.NS.RunErr(timeout, "env", full...)
}

// ErrInitiate reports that swanctl --initiate did not establish the child.
var ErrInitiate = errors.New("swaninterop: initiate failed")

// Initiate runs `swanctl --initiate --child child` and waits up to 15 s for
// "initiate completed successfully". The error (wrapping ErrInitiate)
// carries swanctl's output, which is the IKE log of the attempt; tests may
// expect it.
func (c *Charon) Initiate(t testing.TB, child string) error {
	t.Helper()
	secs := strconv.Itoa(int(initiateTimeout / time.Second))
	out, err := c.Swanctl(initiateTimeout+5*time.Second, "--initiate", "--child", child, "--timeout", secs)
	if err != nil || !strings.Contains(out, "initiate completed successfully") {
		return fmt.Errorf("%w: child %s from %s: %v\n%s", ErrInitiate, child, c.NS.Name, err, out)
	}
	return nil
}

// ListSAs returns `swanctl --list-sas`; it fails the test when swanctl does.
func (c *Charon) ListSAs(t testing.TB) string {
	t.Helper()
	out, err := c.Swanctl(swanctlTimeout, "--list-sas")
	if err != nil {
		t.Fatalf("swaninterop: %v", err)
	}
	return out
}

// Counters returns the byte and packet counters of the installed CHILD_SA
// named child, from --list-sas (the first one when there are several).
func (c *Charon) Counters(t testing.TB, child string) Counters {
	t.Helper()
	out := c.ListSAs(t)
	cnt, err := ParseCounters(out, child)
	if err != nil {
		t.Fatalf("swaninterop: %v\n%s", err, out)
	}
	return cnt
}

// CPUTime is the processor time charon has used so far.
func (c *Charon) CPUTime() (time.Duration, error) { return c.Process.CPUTime() }

// Log returns the content of charon.log.
func (c *Charon) Log() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "charon.log"))
	if err != nil {
		return fmt.Sprintf("<reading charon.log: %v>", err)
	}
	return string(b)
}

// WaitLog waits until charon.log matches the regular expression re; it
// fails the test, with the log's tail, after timeout or when charon exits.
func (c *Charon) WaitLog(t testing.TB, re string, timeout time.Duration) {
	t.Helper()
	rx, err := regexp.Compile(re)
	if err != nil {
		t.Fatalf("swaninterop: WaitLog pattern: %v", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		log := c.Log()
		if rx.MatchString(log) {
			return
		}
		if c.Process.Exited() {
			t.Fatalf("swaninterop: charon in %s exited before charon.log matched %q:\n%s", c.NS.Name, re, tail(log, logTail))
		}
		if time.Now().After(deadline) {
			t.Fatalf("swaninterop: charon.log in %s did not match %q within %v:\n%s", c.NS.Name, re, timeout, tail(log, logTail))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops charon now (SIGTERM: it sends DELETE for its SAs; SIGKILL
// after 3 s) instead of at cleanup.
func (c *Charon) Stop() error {
	err := c.Process.Stop()
	liveMu.Lock()
	delete(live, c)
	liveMu.Unlock()
	return err
}

// Leaked returns the charon processes started by Start in this test binary
// that still run; a TestMain can fail the run when it is not empty.
func Leaked() []int {
	liveMu.Lock()
	defer liveMu.Unlock()
	var pids []int
	for c := range live {
		if !c.Process.Exited() && c.Process.Cmd.Process != nil {
			pids = append(pids, c.Process.Cmd.Process.Pid)
		}
	}
	slices.Sort(pids)
	return pids
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}
