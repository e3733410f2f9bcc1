package openvpn

import (
	"io"
	"net"
	"sync"
	"time"
)

// maxControlPayload is the most TLS bytes put in one control packet. Stock
// openvpn keeps whole datagrams under tls-mtu (1250 bytes); with IPv6 and
// UDP headers (48), the opcode and session id (9), the largest wrapper
// (tls-auth with SHA-512: 72), a full ACK block (25) and the message id (4)
// that leaves 1092; a round number below it leaves room for a WKc-free margin.
const maxControlPayload = 1000

// ctlConn is the net.Conn that crypto/tls runs over: Read returns the peer's
// in-order control payloads (TLS ciphertext), Write hands TLS ciphertext to
// the reliability layer of one key state. One ctlConn serves one key id.
type ctlConn struct {
	mu      sync.Mutex
	pending []byte
	notify  chan struct{}
	done    chan struct{}
	once    sync.Once
	// write queues one chunk of at most maxControlPayload bytes; it blocks
	// while the reliability layer's queue is full and fails once the key
	// state or session is gone.
	write func(p []byte) error
}

func newCtlConn(write func([]byte) error) *ctlConn {
	return &ctlConn{notify: make(chan struct{}, 1), done: make(chan struct{}), write: write}
}

// push appends in-order payload bytes from the peer.
func (c *ctlConn) push(p []byte) {
	c.mu.Lock()
	c.pending = append(c.pending, p...)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *ctlConn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		if len(c.pending) > 0 {
			n := copy(b, c.pending)
			c.pending = c.pending[n:]
			if len(c.pending) == 0 {
				c.pending = nil
			}
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
			return 0, io.EOF
		}
	}
}

func (c *ctlConn) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		select {
		case <-c.done:
			return written, net.ErrClosed
		default:
		}
		n := min(len(b), maxControlPayload)
		if err := c.write(b[:n]); err != nil {
			return written, err
		}
		written += n
		b = b[n:]
	}
	return written, nil
}

func (c *ctlConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func (c *ctlConn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

type ctlAddr struct{}

func (ctlAddr) Network() string { return "openvpn-control" }
func (ctlAddr) String() string  { return "openvpn-control" }

func (c *ctlConn) LocalAddr() net.Addr  { return ctlAddr{} }
func (c *ctlConn) RemoteAddr() net.Addr { return ctlAddr{} }

// Deadlines are not supported: the handshake is bounded by a context (which
// closes the conn), and crypto/tls only sets a write deadline when closing.
func (c *ctlConn) SetDeadline(time.Time) error      { return nil }
func (c *ctlConn) SetReadDeadline(time.Time) error  { return nil }
func (c *ctlConn) SetWriteDeadline(time.Time) error { return nil }
