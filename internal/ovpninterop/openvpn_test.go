package ovpninterop

import (
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/testpki"
)

var (
	buildOnce      sync.Once
	buildDir       string
	serverBin      string
	clientBin      string
	brokerBin      string
	serverAddr     = netip.MustParseAddr("10.99.0.1")
	tunnelGateway  = netip.MustParseAddr("10.8.0.1")
	protections    = []string{"none", "tls-auth", "tls-crypt", "tls-crypt-v2"}
	ciphers        = []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}
	protos         = []string{"udp", "tcp"}
	openvpnTimeout = 30 * time.Second
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func binaries(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPING interop test in -short mode (the race pass); it runs in the main pass of make test")
	}
	buildOnce.Do(func() {
		var err error
		if buildDir, err = os.MkdirTemp("", "remotegate-interop-"); err != nil {
			t.Fatal(err)
		}
		serverBin = Build(t, buildDir, "./examples/ovpn-server")
		clientBin = Build(t, buildDir, "./examples/ovpn-client")
		brokerBin = Build(t, buildDir, "./examples/broker")
	})
	if serverBin == "" || clientBin == "" || brokerBin == "" {
		t.Fatal("example binaries were not built")
	}
}

// lab is the key material of one test: a CA, server and client
// certificates, and every kind of control-channel key, made by stock openvpn.
func lab(t *testing.T) Files {
	dir := t.TempDir()
	ca := testpki.New(t, "interop CA")
	files := Files(ca.WriteFiles(t, dir, map[string]*testpki.Leaf{
		"server":  ca.Server(t, "server"),
		"client1": ca.Client(t, "client1"),
		"client2": ca.Client(t, "client2"),
	}))
	files["ta.key"] = GenKey(t, dir, "secret", "ta.key")
	files["tc.key"] = GenKey(t, dir, "tls-crypt", "tc.key")
	files["v2s.key"] = GenKey(t, dir, "tls-crypt-v2-server", "v2s.key")
	files["v2c.key"] = GenKey(t, dir, "tls-crypt-v2-client", "v2c.key", files["v2s.key"])
	files["dir"] = dir
	return files
}

// topology makes a server and a client namespace joined by a veth link.
func topology(t *testing.T) (srv, cli *netns.NS) {
	srv = netns.New(t, "rgs")
	cli = netns.New(t, "rgc")
	netns.Link(t, srv, netip.PrefixFrom(serverAddr, 24), cli, netip.MustParsePrefix("10.99.0.2/24"))
	return srv, cli
}

// iperfSeconds keeps the matrix within the suite's time budget: every
// protection and transport gets a full 10 s run with AES-256-GCM, the other
// ciphers a short one.
func iperfSeconds(cipher string) time.Duration {
	if cipher == "AES-256-GCM" {
		return 10 * time.Second
	}
	return 2 * time.Second
}

func checkTunnel(t *testing.T, srv, cli *netns.NS, cipher string) {
	t.Helper()
	if got := ping(t, cli, tunnelGateway, 3); got != 3 {
		t.Fatalf("%d of 3 pings through the tunnel answered", got)
	}
	res := iperf3(t, cli, srv, tunnelGateway, iperfSeconds(cipher))
	if res.BitsPerSecond <= 0 {
		t.Fatalf("iperf3 moved no data: %+v", res)
	}
	t.Logf("iperf3 %.0f Mbit/s", res.BitsPerSecond/1e6)
}

// peer is how one side of a matrix run is started: the program and
// arguments before the config path, and the log line that says it is up.
type peer struct {
	args  []string
	ready string
}

var (
	stockServer = peer{[]string{"openvpn", "--config"}, "Initialization Sequence Completed"}
	stockClient = peer{[]string{"openvpn", "--config"}, "Initialization Sequence Completed"}
)

// matrix runs a server and a client over every transport, control-channel
// protection and data cipher, and checks the tunnel each time.
func matrix(t *testing.T, server, client peer) {
	files := lab(t)
	for _, proto := range protos {
		for _, prot := range protections {
			for _, cipher := range ciphers {
				t.Run(proto+"/"+prot+"/"+cipher, func(t *testing.T) {
					o := Options{Proto: proto, Protection: prot, Cipher: cipher, ServerAddr: serverAddr.String(), Port: 1194}
					srv, cli := topology(t)
					sconf := WriteFile(t, t.TempDir(), "server.conf", ServerConfig(o, files))
					cconf := WriteFile(t, t.TempDir(), "client.ovpn", ClientConfig(t, o, files, "client1"))
					s := srv.Start(t, server.args[0], append(server.args[1:], sconf)...)
					s.WaitLog(t, server.ready, openvpnTimeout)
					c := cli.Start(t, client.args[0], append(client.args[1:], cconf)...)
					c.WaitLog(t, client.ready, openvpnTimeout)
					checkTunnel(t, srv, cli, cipher)
				})
			}
		}
	}
}

// TestStockClientsToOurServer: stock openvpn 2.6 clients connect to
// examples/ovpn-server over the whole matrix of transports, control-channel
// protections and data ciphers.
func TestStockClientsToOurServer(t *testing.T) {
	netns.Require(t, "openvpn", "iperf3", "ping")
	binaries(t)
	matrix(t, peer{[]string{serverBin, "-config"}, "listening"}, stockClient)
}

// TestOurClientToStockServer: examples/ovpn-client connects to a stock
// openvpn 2.6 server over the same matrix.
func TestOurClientToStockServer(t *testing.T) {
	netns.Require(t, "openvpn", "iperf3", "ping")
	binaries(t)
	matrix(t, stockServer, peer{[]string{clientBin, "-config"}, "tunnel up"})
}
