package ovpninterop

import (
	"bytes"
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// TestConnectFreqInitialStockClient: examples/ovpn-server reads
// `connect-freq-initial 5 10` from its config; a stock 2.6 client connects,
// then 20 hard resets arrive from 20 other addresses at once. At most 5
// are answered (the client's own reset took one of the window's five),
// and the client's tunnel carries pings throughout.
func TestConnectFreqInitialStockClient(t *testing.T) {
	netns.Require(t, "openvpn", "ping")
	binaries(t)
	files := lab(t)
	o := Options{Proto: "udp", Protection: "none", Cipher: "AES-256-GCM", ServerAddr: serverAddr.String(), Port: 1194}
	srvNS, cli := netns.New(t, "rgs"), netns.New(t, "rgc")
	_, cliIf := netns.Link(t, srvNS, netip.PrefixFrom(serverAddr, 24), cli, netip.MustParsePrefix("10.99.0.2/24"))
	const spoofers = 20
	for i := range spoofers {
		cli.AddAddress(t, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, 0, byte(100 + i)}), 24), cliIf)
	}
	so := o
	so.Extra = []string{"connect-freq-initial 5 10"}
	sconf := WriteFile(t, t.TempDir(), "server.conf", ServerConfig(so, files))
	cconf := WriteFile(t, t.TempDir(), "client.ovpn", ClientConfig(t, o, files, "client1"))
	srv := srvNS.Start(t, serverBin, "-config", sconf)
	srv.WaitLog(t, "listening", openvpnTimeout)
	c := cli.Start(t, "openvpn", "--config", cconf)
	c.WaitLog(t, "Initialization Sequence Completed", openvpnTimeout)
	if got := ping(t, cli, tunnelGateway, 2); got != 2 {
		t.Fatalf("%d of 2 pings answered before the flood", got)
	}

	// The spoofers' sockets live in the client's namespace, each on its
	// own address.
	conns := make([]*net.UDPConn, spoofers)
	if err := cli.Do(func() error {
		for i := range conns {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 99, 0, byte(100 + i)}), 0)
			var err error
			conns[i], err = net.DialUDP("udp", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(netip.AddrPortFrom(serverAddr, 1194)))
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	sids := make([][8]byte, spoofers)
	for i, conn := range conns {
		if _, err := rand.Read(sids[i][:]); err != nil {
			t.Fatal(err)
		}
		// P_CONTROL_HARD_RESET_CLIENT_V2, key id 0: own session id, no
		// ACKs, message id 0 (no control-channel protection).
		reset := append(append([]byte{7 << 3}, sids[i][:]...), 0, 0, 0, 0, 0)
		if _, err := conn.Write(reset); err != nil {
			t.Fatal(err)
		}
	}
	// The pings' packets reach the server's socket after the resets and
	// are handled after them, by the same loop: once they are answered,
	// every answer to a reset has been sent.
	if got := ping(t, cli, tunnelGateway, 5); got != 5 {
		t.Errorf("%d of 5 pings through the tunnel answered during the flood", got)
	}
	var mu sync.Mutex
	answered := 0
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			// P_CONTROL_HARD_RESET_SERVER_V2 acknowledging message 0 of
			// this spoofer's session.
			if n >= 26 && buf[0] == 8<<3 && buf[9] == 1 && bytes.Equal(buf[10:14], []byte{0, 0, 0, 0}) && bytes.Equal(buf[14:22], sids[i][:]) {
				mu.Lock()
				answered++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d of %d resets answered", answered, spoofers)
	if answered > 5 || answered == 0 {
		t.Fatalf("%d of %d resets answered, want 1 to 5 (connect-freq-initial 5 10, one used by the client)", answered, spoofers)
	}
	if got := ping(t, cli, tunnelGateway, 2); got != 2 {
		t.Fatalf("%d of 2 pings answered after the flood", got)
	}
}
