package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/internal/netns"
)

// ErrGenKey reports that `openvpn --genkey` failed.
var ErrGenKey = errors.New("interop: openvpn --genkey failed")

// genKeyTimeout bounds one `openvpn --genkey` run.
const genKeyTimeout = 15 * time.Second

// OpenVPNGenKey runs `openvpn --genkey <kind> <file>` in dir and returns the
// file's path. Kinds are those of openvpn: "secret" (tls-auth), "tls-crypt",
// "tls-crypt-v2-server", and "tls-crypt-v2-client", which needs the server
// key's path as extra[0] (it runs
// `openvpn --tls-crypt-v2 <server.key> --genkey tls-crypt-v2-client <file>`).
// Further extra arguments go to openvpn before --genkey. The file is named
// <kind>.key, or <kind>-N.key when that exists already.
func OpenVPNGenKey(t testing.TB, dir, kind string, extra ...string) string {
	t.Helper()
	path := freeName(dir, kind)
	var args []string
	if kind == "tls-crypt-v2-client" {
		if len(extra) == 0 {
			t.Fatal("interop: OpenVPNGenKey tls-crypt-v2-client needs the server key path")
			return ""
		}
		args = append(args, "--tls-crypt-v2", extra[0])
		extra = extra[1:]
	}
	args = append(args, extra...)
	args = append(args, "--genkey", kind, path)
	ctx, cancel := context.WithTimeout(context.Background(), genKeyTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "openvpn", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: openvpn %s: %v\n%s", ErrGenKey, strings.Join(args, " "), err, out)
		return ""
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("%v: openvpn %s wrote no key (%v)\n%s", ErrGenKey, strings.Join(args, " "), err, out)
		return ""
	}
	return path
}

func freeName(dir, kind string) string {
	base := strings.ReplaceAll(kind, string(filepath.Separator), "_")
	path := filepath.Join(dir, base+".key")
	for i := 2; ; i++ {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			return path
		}
		path = filepath.Join(dir, base+"-"+strconv.Itoa(i)+".key")
	}
}

// StockOptions selects the variant of the reference configs.
type StockOptions struct {
	// Proto is "udp" (default) or "tcp".
	Proto string
	// Protection is "none" (default), "tls-auth", "tls-crypt" or
	// "tls-crypt-v2"; KeyFile is the matching key: for tls-crypt-v2 the
	// server key in the server config and a client key in the client config.
	Protection string
	KeyFile    string
	// Cipher goes to data-ciphers; empty keeps openvpn's default list.
	Cipher string
	// ServerAddr is where the server listens (`local`) and the client
	// connects (`remote`); the zero value lets the server listen everywhere
	// (the client then needs it).
	ServerAddr netip.Addr
	// Port defaults to 1194.
	Port int
	// Network is the IPv4 tunnel network (`server`); the server takes its
	// first address. Defaults to 10.8.0.0/24.
	Network netip.Prefix
	// ClientToClient adds client-to-client (server only).
	ClientToClient bool
	// RenegSec, when non-zero, sets reneg-sec on the peer whose config is
	// rendered.
	RenegSec int
	// Extra lines are appended verbatim.
	Extra []string
}

// DefaultNetwork is the tunnel network used when StockOptions.Network is
// zero (the notes' reference server).
var DefaultNetwork = netip.MustParsePrefix("10.8.0.0/24")

// ServerTunnelAddr returns the address the stock server gives itself on the
// tunnel (the first host of the network).
func (o StockOptions) ServerTunnelAddr() netip.Addr {
	return o.network().Masked().Addr().Next()
}

func (o StockOptions) network() netip.Prefix {
	if o.Network.IsValid() {
		return o.Network
	}
	return DefaultNetwork
}

func (o StockOptions) port() int {
	if o.Port != 0 {
		return o.Port
	}
	return 1194
}

func (o StockOptions) proto() string {
	if o.Proto != "" {
		return o.Proto
	}
	return "udp"
}

// StockServerConfig renders the notes' reference server (section 7.1) with
// the options. files must hold the paths of "ca.crt", "server.crt" and
// "server.key" (as testpki's WriteFiles returns them for a leaf named
// "server").
func StockServerConfig(o StockOptions, files map[string]string) string {
	var b strings.Builder
	line := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	line("dev tun")
	line("proto %s", o.proto())
	if o.ServerAddr.IsValid() {
		line("local %s", o.ServerAddr)
	}
	line("port %d", o.port())
	line("topology subnet")
	n := o.network().Masked()
	line("server %s %s", n.Addr(), net.IP(net.CIDRMask(n.Bits(), n.Addr().BitLen())).String())
	line("ca %s", files["ca.crt"])
	line("cert %s", files["server.crt"])
	line("key %s", files["server.key"])
	line("dh none")
	protection(&b, o, "0")
	if o.Cipher != "" {
		line("data-ciphers %s", o.Cipher)
	}
	line("keepalive 10 120")
	if o.ClientToClient {
		line("client-to-client")
	}
	common(&b, o)
	return b.String()
}

// StockClientConfig renders the notes' reference client (section 7.1) with
// the options, through broker/profile (the renderer of the broker's
// profiles): the CA, the client's certificate and key and the
// control-channel key (StockOptions.KeyFile) are read from their files and
// written inline. files must hold the paths of "ca.crt", "client.crt" and
// "client.key". A file that cannot be read, or a profile the renderer
// refuses, fails the test.
func StockClientConfig(t testing.TB, o StockOptions, files map[string]string) string {
	t.Helper()
	read := func(path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("interop: client config: %v", err)
		}
		return b
	}
	p := profile.OpenVPN{
		Remotes: []profile.Remote{{Host: o.ServerAddr.String(), Port: o.port(), Proto: o.proto()}},
		Verb:    3,
		CA:      read(files["ca.crt"]), Cert: read(files["client.crt"]), Key: read(files["client.key"]),
		// Retry quickly: a test's client may race its server's first second.
		Extra: []string{"connect-retry 1 1"},
	}
	if o.Cipher != "" {
		p.DataCiphers = strings.Split(o.Cipher, ":")
	}
	switch o.Protection {
	case "tls-auth":
		p.TLSAuth = read(o.KeyFile)
	case "tls-crypt":
		p.TLSCrypt = read(o.KeyFile)
	case "tls-crypt-v2":
		p.TLSCryptV2 = read(o.KeyFile)
	}
	if o.RenegSec != 0 {
		p.Extra = append(p.Extra, fmt.Sprintf("reneg-sec %d", o.RenegSec))
	}
	p.Extra = append(p.Extra, o.Extra...)
	b, err := p.Marshal()
	if err != nil {
		t.Fatalf("interop: client config: %v", err)
	}
	return string(b)
}

func protection(b *strings.Builder, o StockOptions, direction string) {
	switch o.Protection {
	case "tls-auth":
		fmt.Fprintf(b, "tls-auth %s %s\n", o.KeyFile, direction)
	case "tls-crypt", "tls-crypt-v2":
		fmt.Fprintf(b, "%s %s\n", o.Protection, o.KeyFile)
	}
}

func common(b *strings.Builder, o StockOptions) {
	if o.RenegSec != 0 {
		fmt.Fprintf(b, "reneg-sec %d\n", o.RenegSec)
	}
	b.WriteString("verb 3\n")
	for _, l := range o.Extra {
		b.WriteString(l + "\n")
	}
}

// InitDone is the line stock openvpn logs once its tunnel is up.
const InitDone = "Initialization Sequence Completed"

// StartStock starts `openvpn --config <configPath>` in ns and waits until it
// logs "Initialization Sequence Completed"; after the timeout (or if openvpn
// exits) it fails the test with the log. openvpn is stopped at cleanup.
func StartStock(t testing.TB, ns *netns.NS, configPath string, timeout time.Duration) *netns.Process {
	t.Helper()
	p := ns.Start(t, "openvpn", "--config", configPath)
	p.WaitLog(t, InitDone, timeout)
	return p
}

// WriteConfig writes a rendered config into dir under name and returns the
// path.
func WriteConfig(t testing.TB, dir, name, config string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
