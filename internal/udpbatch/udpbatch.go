// Package udpbatch reads and writes batches of UDP datagrams with one system
// call each (recvmmsg/sendmmsg on Linux, through golang.org/x/net), with
// addresses as netip.AddrPort.
package udpbatch

import (
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Message is one datagram: Buf is read into (or written from Buf[:N]).
type Message struct {
	Buf  []byte
	N    int
	Addr netip.AddrPort
}

type batchConn interface {
	ReadBatch([]ipv4.Message, int) (int, error)
	WriteBatch([]ipv4.Message, int) (int, error)
}

// Conn wraps a UDP socket. ReadBatch may be called by one goroutine at a
// time; WriteBatch is safe for concurrent use.
type Conn struct {
	uc    *net.UDPConn
	bc    batchConn
	local netip.AddrPort

	rmsgs []ipv4.Message
	wmu   sync.Mutex
	wmsgs []ipv4.Message
	waddr []net.UDPAddr
}

// New wraps c; IPv4 or IPv6 is taken from its local address.
func New(c *net.UDPConn) *Conn {
	conn := &Conn{uc: c}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		conn.local = a.AddrPort()
	}
	if conn.local.Addr().Is4() || conn.local.Addr().Is4In6() {
		conn.bc = ipv4.NewPacketConn(c)
	} else {
		conn.bc = ipv6.NewPacketConn(c)
	}
	return conn
}

// ReadBatch blocks until at least one datagram arrives and fills msgs[i].N
// and msgs[i].Addr for the returned count.
func (c *Conn) ReadBatch(msgs []Message) (int, error) {
	if cap(c.rmsgs) < len(msgs) {
		c.rmsgs = make([]ipv4.Message, len(msgs))
		for i := range c.rmsgs {
			c.rmsgs[i].Buffers = make([][]byte, 1)
		}
	}
	rm := c.rmsgs[:len(msgs)]
	for i := range msgs {
		rm[i].Buffers[0] = msgs[i].Buf
		rm[i].N = 0
	}
	n, err := c.bc.ReadBatch(rm, 0)
	if err != nil {
		return 0, err
	}
	for i := 0; i < n; i++ {
		msgs[i].N = rm[i].N
		if ua, ok := rm[i].Addr.(*net.UDPAddr); ok {
			ap := ua.AddrPort()
			msgs[i].Addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	return n, nil
}

// WriteBatch sends msgs[i].Buf[:msgs[i].N] to msgs[i].Addr and returns how
// many were sent.
func (c *Conn) WriteBatch(msgs []Message) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if cap(c.wmsgs) < len(msgs) {
		c.wmsgs = make([]ipv4.Message, len(msgs))
		c.waddr = make([]net.UDPAddr, len(msgs))
		for i := range c.wmsgs {
			c.wmsgs[i].Buffers = make([][]byte, 1)
			c.wmsgs[i].Addr = &c.waddr[i]
		}
	}
	wm := c.wmsgs[:len(msgs)]
	for i, m := range msgs {
		wm[i].Buffers[0] = m.Buf[:m.N]
		a := &c.waddr[i]
		ip := m.Addr.Addr()
		if a.IP == nil || len(a.IP) != 16 {
			a.IP = make(net.IP, 16)
		}
		b := ip.As16()
		copy(a.IP, b[:])
		a.Port = int(m.Addr.Port())
		a.Zone = ip.Zone()
	}
	sent := 0
	for sent < len(wm) {
		n, err := c.bc.WriteBatch(wm[sent:], 0)
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// LocalAddr is the socket's address.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Close closes the socket.
func (c *Conn) Close() error { return c.uc.Close() }
