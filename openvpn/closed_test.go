package openvpn

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/remotegate/remotegate/tunnel"
)

// upRecorder is an echoHandler that also hands out its sessions.
type upRecorder struct {
	echoHandler
	ups chan tunnel.Session
}

func (h *upRecorder) Up(s tunnel.Session) {
	h.echoHandler.Up(s)
	h.ups <- s
}

// isClosed reports whether err is the closed error both as this package and
// any tunnel.Device or tunnel.Session user sees it.
func isClosed(err error) bool {
	return errors.Is(err, ErrClosed) && errors.Is(err, tunnel.ErrClosed)
}

// TestClosedIsTunnelErrClosed: whichever way an OpenVPN tunnel ends, its
// Read, Write and Send say tunnel.ErrClosed, so that tunnel.Pump and the
// broker's switch stop on it without knowing the protocol.
func TestClosedIsTunnelErrClosed(t *testing.T) {
	e := newTestEnv(t)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			h := &upRecorder{ups: make(chan tunnel.Session, 4)}
			_, addr := startServer(t, network, &ServerConfig{TLS: e.serverTLS}, h)
			dial := func() (*Client, tunnel.Session) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, err := Dial(ctx, network, addr, &ClientConfig{TLS: e.cliTLS})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				select {
				case s := <-h.ups:
					return c, s
				case <-time.After(10 * time.Second):
					t.Fatal("no session came up")
				}
				return nil, nil
			}
			pkt := func(c *Client) [][]byte {
				return [][]byte{testPacket(c.Pushed().Address.Addr(), netip.MustParseAddr("192.168.50.7"), []byte("after close"))}
			}

			// The client closes: its own Read, Write and Err, and the
			// server's session once it learnt of the exit.
			c, ss := dial()
			roundTrip(t, c, 1)
			c.Close()
			if !isClosed(c.Err()) {
				t.Errorf("client Err after Close: %v", c.Err())
			}
			if _, err := c.Write(pkt(c), tunnel.Headroom); !isClosed(err) {
				t.Errorf("client Write after Close: %v", err)
			}
			if _, err := c.Read(make([][]byte, 1), make([]int, 1), tunnel.Headroom); !isClosed(err) {
				t.Errorf("client Read after Close: %v", err)
			}
			waitFor(t, func() bool { return h.down.Load() == 1 })
			if _, err := ss.Send(pkt(c), tunnel.Headroom); !isClosed(err) {
				t.Errorf("server session Send after the client left: %v", err)
			}

			// The server closes a session: its Send, and the client's
			// Read and Write once it is told.
			c, ss = dial()
			roundTrip(t, c, 1)
			if err := ss.Close(nil); err != nil {
				t.Fatal(err)
			}
			if _, err := ss.Send(pkt(c), tunnel.Headroom); !isClosed(err) {
				t.Errorf("server session Send after Close: %v", err)
			}
			if network == "tcp" {
				// Over TCP the client is told (RESTART) or sees the
				// connection end; over UDP it would wait for its ping
				// timeout.
				select {
				case <-c.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("client still up after the server closed its session")
				}
				if _, err := c.Write(pkt(c), tunnel.Headroom); !errors.Is(err, tunnel.ErrClosed) {
					t.Errorf("client Write after the server closed: %v", err)
				}
				if _, err := c.Read(make([][]byte, 1), make([]int, 1), tunnel.Headroom); !errors.Is(err, tunnel.ErrClosed) {
					t.Errorf("client Read after the server closed: %v", err)
				}
			}
		})
	}
}
