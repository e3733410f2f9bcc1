package interop

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/testpki"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if leaked := netns.Leaked(); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "interop: namespaces leaked by the tests: %v\n", leaked)
		code = 1
	}
	os.Exit(code)
}

// TestStockServerStockClient proves the harness: stock openvpn server and
// client in two namespaces must carry pings and TCP traffic.
func TestStockServerStockClient(t *testing.T) {
	netns.Require(t, "openvpn", "ping", "iperf3")
	ca := testpki.New(t, "interop CA")
	files := ca.WriteFiles(t, t.TempDir(), map[string]*testpki.Leaf{
		"server": ca.Server(t, "server"),
		"client": ca.Client(t, "client"),
	})
	cases := []struct {
		name, proto, protection, cipher string
	}{
		{"udp-tls-crypt", "udp", "tls-crypt", "AES-256-GCM"},
		{"tcp-tls-auth", "tcp", "tls-auth", "AES-256-GCM"},
		{"udp-tls-crypt-v2", "udp", "tls-crypt-v2", "CHACHA20-POLY1305"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each case has its own namespaces and addresses, so they can
			// overlap and keep the whole test well under a minute.
			t.Parallel()
			dir := t.TempDir()
			srvNS, cliNS := netns.New(t, "ovs"), netns.New(t, "ovc")
			srvAddr := netip.AddrFrom4([4]byte{10, 99, byte(i), 1})
			netns.Link(t, srvNS, netip.PrefixFrom(srvAddr, 24), cliNS, netip.PrefixFrom(srvAddr.Next(), 24))

			o := StockOptions{
				Proto:      c.proto,
				Protection: c.protection,
				Cipher:     c.cipher,
				ServerAddr: srvAddr,
				Port:       1194,
				Network:    netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(100 + i), 0}), 24),
			}
			co := o
			switch c.protection {
			case "tls-auth":
				o.KeyFile = OpenVPNGenKey(t, dir, "secret")
				co.KeyFile = o.KeyFile
			case "tls-crypt":
				o.KeyFile = OpenVPNGenKey(t, dir, "tls-crypt")
				co.KeyFile = o.KeyFile
			case "tls-crypt-v2":
				o.KeyFile = OpenVPNGenKey(t, dir, "tls-crypt-v2-server")
				co.KeyFile = OpenVPNGenKey(t, dir, "tls-crypt-v2-client", o.KeyFile)
			}
			srvConf := WriteConfig(t, dir, "server.conf", StockServerConfig(o, files))
			cliConf := WriteConfig(t, dir, "client.conf", StockClientConfig(t, co, files))

			srv := StartStock(t, srvNS, srvConf, 10*time.Second)
			cli := StartStock(t, cliNS, cliConf, 20*time.Second)

			// The tunnel network exists only on the tun devices, so these
			// pings cannot bypass openvpn.
			tunSrv := o.ServerTunnelAddr()
			if got := cliNS.Ping(t, tunSrv, 5); got != 5 {
				t.Fatalf("ping %s through the tunnel: %d/5 replies", tunSrv, got)
			}
			// The data channel must use the cipher the configs ask for.
			// Waited for rather than checked once: openvpn logs it only after
			// "Initialization Sequence Completed", the server up to a second
			// after it pushed the options.
			wantCipher := `Data Channel: cipher '` + regexp.QuoteMeta(c.cipher) + `'`
			srv.WaitLog(t, wantCipher, 5*time.Second)
			cli.WaitLog(t, wantCipher, 5*time.Second)
			res := netns.Iperf3(t, cliNS, srvNS, tunSrv, 3*time.Second)
			if res.BitsPerSecond <= 0 {
				t.Fatalf("iperf3 through the tunnel: %v bit/s", res.BitsPerSecond)
			}
			t.Logf("%s: %.1f Mbit/s, %d retransmits, intervals (Mbit/s) %s", c.name, res.BitsPerSecond/1e6, res.Retransmits, mbits(res.Intervals))
		})
	}
}

func mbits(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.0f", x/1e6)
	}
	return strings.Join(s, " ")
}
