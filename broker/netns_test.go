package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/openvpn"
)

// brokerChildEnv holds the key directory when this test binary runs as the
// broker inside the broker's namespace.
const brokerChildEnv = "RG_BROKER_CHILD_DIR"

// TestPlantAccessThroughStockClients: the broker with two plants whose
// gateways (stock openvpn clients) have the same LAN, 192.168.0.0/24,
// exposed as 10.200.1.0/24 and 10.200.2.0/24, and two users (stock
// openvpn clients): u1 may reach plant 1 (TCP and ICMP, one-way), u2
// nothing. u1 pings and opens TCP connections to the host behind plant 1
// under its alias; nothing else gets through, and the host cannot open a
// flow to u1 although its replies pass.
func TestPlantAccessThroughStockClients(t *testing.T) {
	if dir := os.Getenv(brokerChildEnv); dir != "" {
		runBrokerChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("namespace test; skipped in -short")
	}
	netns.Require(t, "openvpn", "ping", "iperf3", "sysctl")
	dir := t.TempDir()
	ca := testpki.New(t, "plant access CA")
	leaves := map[string]*testpki.Leaf{"server": ca.Server(t, "broker")}
	for _, n := range []string{"u1", "u2", "dev1", "dev2"} {
		leaves[n] = ca.Client(t, n)
	}
	files := ca.WriteFiles(t, dir, leaves)

	brk := netns.New(t, "rgbrk")
	clients := map[string]*netns.NS{}
	for i, n := range []string{"u1", "u2", "dev1", "dev2"} {
		ns := netns.New(t, "rg"+n)
		netns.Link(t, brk, netip.MustParsePrefix(fmt.Sprintf("10.99.%d.1/24", i+1)), ns, netip.MustParsePrefix(fmt.Sprintf("10.99.%d.2/24", i+1)))
		clients[n] = ns
	}
	lans := map[string]*netns.NS{}
	for _, d := range []string{"dev1", "dev2"} {
		host := netns.New(t, "rglan")
		netns.Link(t, clients[d], lan.Masked(), host, netip.PrefixFrom(plc, 24))
		// Link assigned the network address to the gateway side; use .1.
		clients[d].Run(t, 5*time.Second, "ip", "addr", "flush", "dev", "veth1")
		clients[d].Run(t, 5*time.Second, "ip", "addr", "add", "192.168.0.1/24", "dev", "veth1")
		clients[d].Run(t, 5*time.Second, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		host.Run(t, 5*time.Second, "ip", "route", "add", "default", "via", "192.168.0.1")
		lans[d] = host
	}

	t.Setenv(brokerChildEnv, dir)
	b := brk.Start(t, os.Args[0], "-test.run=^TestPlantAccessThroughStockClients$", "-test.v", "-test.count=1")
	b.WaitLog(t, "broker listening", 30*time.Second)

	procs := map[string]*netns.Process{}
	for i, n := range []string{"u1", "u2", "dev1", "dev2"} {
		conf := strings.Join([]string{"client", "dev tun", "proto udp", fmt.Sprintf("remote 10.99.%d.1 1194", i+1), "nobind",
			"remote-cert-tls server", "ca " + files["ca.crt"], "cert " + files[n+".crt"], "key " + files[n+".key"],
			"data-ciphers AES-256-GCM", "verb 3"}, "\n") + "\n"
		p := filepath.Join(dir, n+".ovpn")
		if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		procs[n] = clients[n].Start(t, "openvpn", "--config", p)
	}
	for _, p := range procs {
		p.WaitLog(t, "Initialization Sequence Completed", 30*time.Second)
	}
	alias1, alias2 := netip.MustParseAddr("10.200.1.10"), netip.MustParseAddr("10.200.2.10")
	u1 := clients["u1"]
	if got := u1.Ping(t, alias1, 3); got != 3 {
		t.Fatalf("u1 -> host behind plant 1: %d of 3 pings answered\nbroker log:\n%s", got, b.Log())
	}
	// A TCP connection to the host behind plant 1.
	srv := lans["dev1"].Start(t, "iperf3", "-s", "-1", "--forceflush")
	srv.WaitLog(t, "Server listening", 5*time.Second)
	if out, err := u1.RunErr(20*time.Second, "iperf3", "-c", alias1.String(), "-t", "1"); err != nil {
		t.Fatalf("u1 TCP to the host behind plant 1: %v\n%s", err, out)
	}
	// A user who routes every alias into the tunnel by hand still reaches
	// only what the relations allow: the broker drops the rest.
	for _, n := range []string{"u1", "u2"} {
		clients[n].Run(t, 5*time.Second, "ip", "route", "replace", "10.200.0.0/16", "dev", "tun0")
	}
	for _, c := range []struct {
		from string
		to   netip.Addr
	}{{"u1", alias2}, {"u2", alias1}, {"u2", alias2}} {
		if got := clients[c.from].Ping(t, c.to, 2); got != 0 {
			t.Errorf("%s reached %v (%d pings answered)", c.from, c.to, got)
		}
	}
	// The host behind plant 1 may not open a flow to u1.
	u1Tunnel := tunnelAddress(t, procs["u1"].Log())
	if got := lans["dev1"].Ping(t, u1Tunnel, 2); got != 0 {
		t.Errorf("the host behind plant 1 reached u1 (%d pings answered)", got)
	}
	// Those packets were dropped by the policy, not lost on the way.
	_ = b.Stop()
	m := regexp.MustCompile(`switch: forwarded (\d+), dropped \[(.*)\]`).FindStringSubmatch(b.Log())
	if m == nil {
		t.Fatalf("no switch statistics in the broker log:\n%s", b.Log())
	}
	drops := strings.Fields(m[2])
	var policyDrops int
	fmt.Sscan(drops[DropPolicy], &policyDrops)
	if policyDrops < 8 {
		t.Errorf("the switch counted %d policy drops, want at least 8 (2 pings each for 4 refused paths)", policyDrops)
	}
	t.Logf("switch: forwarded %s, dropped %v", m[1], drops)
}

func tunnelAddress(t *testing.T, log string) netip.Addr {
	t.Helper()
	m := regexp.MustCompile(`net_addr_v4_add: ([0-9.]+)/`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no tunnel address in the client log:\n%s", log)
	}
	return netip.MustParseAddr(m[1])
}

// runBrokerChild is the broker of TestPlantAccessThroughStockClients,
// running in its namespace until the parent stops it.
func runBrokerChild(t *testing.T, dir string) {
	b := newTestBroker(t)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	srv, err := openvpn.NewServer(&openvpn.ServerConfig{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{Port: 1194})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fmt.Println("broker listening")
	if err := srv.ServeUDP(ctx, conn, b); err != nil {
		t.Fatal(err)
	}
	st := b.Switch().Stats()
	fmt.Printf("switch: forwarded %d, dropped %v\n", st.Forwarded, st.Dropped)
}
