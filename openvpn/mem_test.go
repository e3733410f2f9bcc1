package openvpn

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/testpki"
)

// memServerEnv names the directory of the certificates and key that the
// server process of TestIdleHeap reads; set only in that process.
const memServerEnv = "REMOTEGATE_OPENVPN_MEM_SERVER"

// Bounds on what an idle tunnel holds, as measured by TestIdleHeap. The
// client's is the goal a vendor embedding Dial on a small device needs
// (it held 545 KiB with a preallocated receive queue); the server's is
// well below the 56 KiB a session held while its handshake buffers lived
// as long as the session, with room for what the TLS session and keys
// need (about 21 KiB measured).
// A TCP session of the server also has its connection's small read
// buffer (about 27 KiB measured; it held some 245 KiB with a 64 KiB read
// and a 64 KiB write buffer and 32 batch buffers for its life).
const (
	maxIdleClientHeap     = 64 << 10
	maxIdleSessionHeap    = 32 << 10
	maxIdleTCPSessionHeap = 40 << 10
)

// heapAfterGC returns the live heap after the garbage collector has run
// twice (the second run frees what sync.Pool kept through the first).
func heapAfterGC() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

// handshakeSettled reports whether the newest key state of s has had all
// of its control messages acknowledged and has let go of their buffers:
// the handshake is over and nothing of it is in flight.
func (s *session) handshakeSettled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.keys[s.current]
	return ks != nil && ks.active && ks.rel.Unacked() == 0 && ks.rel.Queued() == 0 && !ks.rel.HasPendingAcks() && !ks.rel.Buffered()
}

// TestIdleHeap opens clients against a server running in another process
// and measures the heap each side holds per idle tunnel (connected,
// keepalive running, no traffic): the clients' in this process, the
// server's in its own, each as the growth of the live heap over the same
// process before the tunnels, divided by their number.
func TestIdleHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 100 tunnels")
	}
	e := newTestEnv(t)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) { testIdleHeap(t, e, network) })
	}
}

func testIdleHeap(t *testing.T, e *testEnv, network string) {
	const n = 50
	dir := t.TempDir()
	e.ca.WriteFiles(t, dir, map[string]*testpki.Leaf{"server": e.server})
	if err := os.WriteFile(filepath.Join(dir, "ta.key"), e.tlsKey.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestMemServerProcess$")
	cmd.Env = append(os.Environ(), memServerEnv+"="+dir, memServerEnv+"_NETWORK="+network)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	out := bufio.NewScanner(stdout)
	// ask sends one command to the server process and returns its answer.
	ask := func(line string) []string {
		t.Helper()
		if _, err := fmt.Fprintln(stdin, line); err != nil {
			t.Fatal(err)
		}
		for out.Scan() {
			if f := strings.Fields(out.Text()); len(f) > 0 && f[0] == "mem:" {
				return f[1:]
			}
		}
		t.Fatalf("server process ended: %v", out.Err())
		return nil
	}
	addr := ask("addr")[0]
	serverBefore, _ := strconv.ParseUint(ask("heap 0")[0], 10, 64)

	_, cp := e.protections(ProtectionTLSCrypt)
	ccfg := &ClientConfig{TLS: e.cliTLS, Protection: cp}
	clientBefore, stackBefore := heapAfterGC()
	clients := make([]*Client, 0, n)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, network, addr, ccfg)
		cancel()
		if err != nil {
			t.Fatalf("Dial %d: %v", i, err)
		}
		clients = append(clients, c)
		roundTrip(t, c, 1)
	}
	waitFor(t, func() bool {
		for _, c := range clients {
			if !c.s.handshakeSettled() {
				return false
			}
		}
		return true
	})
	clientAfter, stackAfter := heapAfterGC()
	serverAfter, _ := strconv.ParseUint(ask(fmt.Sprintf("heap %d", n))[0], 10, 64)
	for i, c := range clients {
		select {
		case <-c.Done():
			t.Fatalf("client %d ended while idle: %v", i, c.Err())
		default:
		}
	}
	perClient := (int64(clientAfter) - int64(clientBefore)) / n
	perSession := (int64(serverAfter) - int64(serverBefore)) / n
	t.Logf("idle heap per client %d B (stacks %d B), per server session %d B",
		perClient, (int64(stackAfter)-int64(stackBefore))/n, perSession)
	if perClient > maxIdleClientHeap {
		t.Errorf("an idle client holds %d B of heap, want at most %d", perClient, maxIdleClientHeap)
	}
	maxSession := maxIdleSessionHeap
	if network == "tcp" {
		maxSession = maxIdleTCPSessionHeap
	}
	if perSession > int64(maxSession) {
		t.Errorf("an idle server session holds %d B of heap, want at most %d", perSession, maxSession)
	}
	// Still tunnels: each carries traffic after the measurement.
	for _, c := range clients {
		roundTrip(t, c, 1)
	}
}

// TestMemServerProcess is the server of TestIdleHeap, run in a process of
// its own so that its heap is measured apart from the clients'. It answers
// commands on stdin: "addr" (the address to dial, UDP or TCP as the
// environment says) and "heap N" (the
// live heap once N sessions are up with their handshakes settled).
func TestMemServerProcess(t *testing.T) {
	dir := os.Getenv(memServerEnv)
	if dir == "" {
		t.Skip("runs only as the server process of TestIdleHeap")
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cert, err := tls.X509KeyPair(read("server.crt"), read("server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(read("ca.crt"))
	key, err := ParseStaticKey(read("ta.key"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(&ServerConfig{
		TLS:        &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool},
		Protection: Protection{Mode: ProtectionTLSCrypt, Key: key},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var addr net.Addr
	if os.Getenv(memServerEnv+"_NETWORK") == "tcp" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr()
		go func() { _ = srv.ServeTCP(ctx, ln, &echoHandler{}) }()
	} else {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		addr = conn.LocalAddr()
		go func() { _ = srv.ServeUDP(ctx, conn, &echoHandler{}) }()
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 1 && f[0] == "addr":
			fmt.Println("mem:", addr)
		case len(f) == 2 && f[0] == "heap":
			want, _ := strconv.Atoi(f[1])
			waitFor(t, func() bool {
				srv.mu.Lock()
				defer srv.mu.Unlock()
				up := 0
				srv.peers.Range(func(_ uint32, ss *ServerSession) bool {
					if ss.up.Load() && ss.s.handshakeSettled() {
						up++
					}
					return true
				})
				return up == want
			})
			heap, _ := heapAfterGC()
			fmt.Println("mem:", heap)
		}
	}
}

// TestRenegotiationAfterRelease: both sides let go of the handshake's
// buffers once it settled, and a renegotiation (started by either side)
// still completes, carries traffic under the new key, and lets go again.
func TestRenegotiationAfterRelease(t *testing.T) {
	e := newTestEnv(t)
	for _, side := range []string{"server", "client"} {
		t.Run(side, func(t *testing.T) {
			sp, cp := e.protections(ProtectionTLSCrypt)
			scfg := &ServerConfig{TLS: e.serverTLS, Protection: sp}
			ccfg := &ClientConfig{TLS: e.cliTLS, Protection: cp}
			reneg := &ccfg.Timers.RenegotiateAfter
			if side == "server" {
				reneg = &scfg.Timers.RenegotiateAfter
			}
			*reneg = 2 * time.Second
			srv, addr := startServer(t, "udp", scfg, &echoHandler{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, "udp", addr, ccfg)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			serverSession := func() *session {
				srv.mu.Lock()
				defer srv.mu.Unlock()
				var found *session
				srv.peers.Range(func(_ uint32, ss *ServerSession) bool {
					found = ss.s
					return false
				})
				return found
			}
			settled := func(keyID uint8) func() bool {
				return func() bool {
					ss := serverSession()
					dk := c.s.data.Load()
					return ss != nil && dk.send.KeyID() == keyID && c.s.handshakeSettled() && ss.handshakeSettled()
				}
			}
			waitFor(t, settled(0))
			roundTrip(t, c, 3)
			// The renegotiation runs on fresh buffers; wait for it, with
			// traffic, until the client sends under key id 1.
			waitFor(t, func() bool {
				roundTrip(t, c, 1)
				return c.s.data.Load().send.KeyID() == 1
			})
			roundTrip(t, c, 5)
			waitFor(t, settled(1))
		})
	}
}
