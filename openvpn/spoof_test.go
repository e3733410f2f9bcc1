package openvpn

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/remotegate/remotegate/openvpn/internal/wire"
)

// TestSpoofedResetsKeepNoState sends 10,000 valid tls-crypt hard resets, as
// an attacker replaying or forging them from many addresses would, and checks
// that the server answers statelessly: no session, and no memory retained.
func TestSpoofedResetsKeepNoState(t *testing.T) {
	e := newTestEnv(t)
	sp, cp := e.protections(ProtectionTLSCrypt)
	// Unbounded answers: this test is about the state a reset leaves,
	// and every one of the 10,000 must be answered for that; the bound on
	// answers has its own tests (connfreq_test.go).
	cfg := &ServerConfig{TLS: e.serverTLS, Protection: sp, ConnectFreqInitial: ConnectFreq{Max: -1}}
	srv, addr := startServer(t, "udp", cfg, &echoHandler{})
	const n = 10000
	conns := make([]net.Conn, 20)
	for i := range conns {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	codec, err := wire.NewCodec(cp.wire(), wire.RoleClient, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	buf := make([]byte, 2048)
	answered := 0
	for i := 0; i < n; i++ {
		sid, err := wire.NewSessionID(e.rand())
		if err != nil {
			t.Fatal(err)
		}
		pkt, err := codec.Encode(nil, &wire.Packet{Opcode: wire.OpControlHardResetClientV2, SessionID: sid})
		if err != nil {
			t.Fatal(err)
		}
		c := conns[i%len(conns)]
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if i%len(conns) == len(conns)-1 {
			// Drain answers so that socket buffers do not drop them.
			for _, c := range conns {
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(buf); err == nil {
					answered++
				}
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := srv.Stats()
	if st.Sessions != 0 {
		t.Fatalf("%d sessions after %d spoofed resets, want 0", st.Sessions, n)
	}
	if st.StatelessResets < n*9/10 || answered < n*9/10 {
		t.Fatalf("stateless answers: server counted %d, client saw %d, want ~%d", st.StatelessResets, answered, n)
	}
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use grew by %d bytes over %d resets (%.1f bytes/reset)", growth, n, float64(growth)/n)
	if growth > 512*1024 {
		t.Fatalf("heap grew by %d bytes for %d resets: per-client state is being kept", growth, n)
	}
}
