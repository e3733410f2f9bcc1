package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ErrMessage is returned by WriteBatch for a message whose N does not fit its
// Buf, whose Addr is not a valid address, or whose Local is of another
// family than Addr or than the socket; nothing of the batch is sent.
var ErrMessage = errors.New("udpbatch: invalid message")

// Message is one datagram. For ReadBatch, Buf is the buffer to read into and
// N, Addr and Local are filled in; for WriteBatch, Buf[:N] is sent to Addr,
// from Local if it is valid.
type Message struct {
	Buf  []byte
	N    int
	Addr netip.AddrPort
	// Local is our side's address. ReadBatch sets it to the datagram's
	// destination address when the socket is bound to a wildcard address
	// (0.0.0.0 or ::), and leaves it zero when the socket is bound to one
	// address (that one) or the platform does not report it. WriteBatch
	// sends from it when it is valid (IP_PKTINFO, IPV6_PKTINFO): on a host
	// with several addresses a reply must come from the address the peer
	// sent to, or the peer, which matches replies by address, drops it;
	// without Local the kernel picks the route's preferred source address.
	Local netip.Addr
}

// batchConn is what ipv4.PacketConn and ipv6.PacketConn have in common
// (ipv6.Message is an alias of ipv4.Message).
type batchConn interface {
	ReadBatch([]ipv4.Message, int) (int, error)
	WriteBatch([]ipv4.Message, int) (int, error)
}

// Conn wraps a UDP socket. ReadBatch may be called by one goroutine at a
// time; WriteBatch is safe for concurrent use (calls are serialised), also
// concurrently with ReadBatch.
//
// Allocations: WriteBatch allocates nothing once it has seen a batch of a
// given size (the x/net messages, their one-element Buffers slices, the
// destination UDPAddr values and the control-message buffers for Local are
// kept in the Conn and reused). ReadBatch
// reuses its x/net messages too, but x/net parses each received source
// address into a new *net.UDPAddr and net.IP: two small allocations per
// datagram received, which only a hand-written recvmmsg could avoid.
type Conn struct {
	uc    *net.UDPConn
	bc    batchConn
	local netip.AddrPort
	v6    bool // an IPv6 socket, maybe dual-stack
	// pktinfo: the kernel reports each datagram's destination address.
	pktinfo bool

	rmsgs []ipv4.Message
	roob  []byte // len(rmsgs) control buffers of oobSize bytes

	wmu   sync.Mutex
	wmsgs []ipv4.Message
	waddr []net.UDPAddr
	woob  []byte // len(wmsgs) control buffers of oobSize bytes
}

// New wraps c. IPv4 or IPv6 handling is chosen from its local address: an
// IPv6 address, including the unspecified "::" of a dual-stack socket from
// net.ListenUDP("udp", ":port"), selects IPv6. On a dual-stack socket,
// IPv4 peers appear as plain IPv4 addresses (not v4-mapped) in ReadBatch and
// may be given the same way to WriteBatch.
//
// On a socket bound to a wildcard address, New asks the kernel for each
// datagram's destination address (Message.Local), so that a server with
// several addresses can answer each peer from the address it used.
func New(c *net.UDPConn) *Conn {
	conn := &Conn{uc: c}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		ap := a.AddrPort()
		conn.local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if conn.local.Addr().Is4() {
		conn.bc = ipv4.NewPacketConn(c)
	} else {
		conn.v6 = true
		conn.bc = ipv6.NewPacketConn(c)
	}
	if conn.local.Addr().IsUnspecified() {
		conn.pktinfo = enablePktinfo(c, conn.v6)
	}
	return conn
}

// ReadBatch blocks until at least one datagram arrives (or the socket's read
// deadline passes) and reads up to len(msgs) datagrams with one system call
// where the platform has one (recvmmsg on Linux). It fills msgs[i].N,
// msgs[i].Addr and msgs[i].Local for i < n. A datagram longer than its
// Buf is truncated to len(Buf) without notice; size the buffers for the
// largest datagram expected. Errors from the socket are wrapped and keep their net.Error
// behaviour (Timeout) for errors.As.
func (c *Conn) ReadBatch(msgs []Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if cap(c.rmsgs) < len(msgs) {
		c.rmsgs = make([]ipv4.Message, len(msgs))
		if c.pktinfo {
			c.roob = make([]byte, len(msgs)*oobSize)
		}
		for i := range c.rmsgs {
			c.rmsgs[i].Buffers = make([][]byte, 1)
			if c.pktinfo {
				c.rmsgs[i].OOB = c.roob[i*oobSize : (i+1)*oobSize : (i+1)*oobSize]
			}
		}
	}
	rm := c.rmsgs[:len(msgs)]
	for i := range msgs {
		rm[i].Buffers[0] = msgs[i].Buf
		rm[i].N = 0
		rm[i].NN = 0
		rm[i].Addr = nil
	}
	n, err := c.bc.ReadBatch(rm, 0)
	if err != nil {
		return 0, fmt.Errorf("udpbatch: read: %w", err)
	}
	for i := 0; i < n; i++ {
		msgs[i].N = rm[i].N
		msgs[i].Addr = netip.AddrPort{}
		msgs[i].Local = netip.Addr{}
		if c.pktinfo {
			msgs[i].Local = parsePktinfo(rm[i].OOB[:rm[i].NN])
		}
		if ua, ok := rm[i].Addr.(*net.UDPAddr); ok {
			ap := ua.AddrPort()
			msgs[i].Addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		// Drop the references to the caller's buffer and x/net's address
		// so that neither is kept alive by the Conn.
		rm[i].Buffers[0] = nil
		rm[i].Addr = nil
	}
	return n, nil
}

// WriteBatch sends msgs[i].Buf[:msgs[i].N] to msgs[i].Addr, with as few
// system calls as the platform allows (sendmmsg on Linux), and returns how
// many were sent. On an error, the first n messages were sent and the rest
// were not; the caller may retry from msgs[n:] or drop them.
func (c *Conn) WriteBatch(msgs []Message) (int, error) {
	for i, m := range msgs {
		if m.N < 0 || m.N > len(m.Buf) || !m.Addr.IsValid() {
			return 0, fmt.Errorf("%w: message %d (N %d, %d-byte buffer, address %v)", ErrMessage, i, m.N, len(m.Buf), m.Addr)
		}
		if l := m.Local.Unmap(); l.IsValid() && (l.Is4() != m.Addr.Addr().Unmap().Is4() || (l.Is6() && !c.v6)) {
			return 0, fmt.Errorf("%w: message %d from %v to %v", ErrMessage, i, m.Local, m.Addr)
		}
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if cap(c.wmsgs) < len(msgs) {
		c.wmsgs = make([]ipv4.Message, len(msgs))
		c.waddr = make([]net.UDPAddr, len(msgs))
		c.woob = make([]byte, len(msgs)*oobSize)
		for i := range c.wmsgs {
			c.wmsgs[i].Buffers = make([][]byte, 1)
			c.waddr[i].IP = make(net.IP, net.IPv6len)
			c.wmsgs[i].Addr = &c.waddr[i]
		}
	}
	wm := c.wmsgs[:len(msgs)]
	for i, m := range msgs {
		wm[i].Buffers[0] = m.Buf[:m.N]
		a := &c.waddr[i]
		ip := m.Addr.Addr()
		// A v4-mapped 16-byte form serves both families: x/net writes an
		// AF_INET sockaddr for it, which Linux also accepts on a
		// dual-stack IPv6 socket.
		b := ip.As16()
		copy(a.IP, b[:])
		a.Port = int(m.Addr.Port())
		a.Zone = ip.Zone()
		wm[i].OOB = nil
		if m.Local.IsValid() && oobSize > 0 {
			oob := c.woob[i*oobSize : (i+1)*oobSize]
			wm[i].OOB = oob[:putPktinfo(oob, m.Local.Unmap(), c.v6)]
		}
	}
	sent := 0
	var err error
	for sent < len(wm) {
		var n int
		n, err = c.bc.WriteBatch(wm[sent:], 0)
		if n > 0 {
			sent += n
		}
		if err != nil {
			err = fmt.Errorf("udpbatch: write: %w", err)
			break
		}
		if n == 0 {
			err = fmt.Errorf("udpbatch: write: %d of %d datagrams sent", sent, len(wm))
			break
		}
	}
	for i := range wm {
		wm[i].Buffers[0] = nil
	}
	return sent, err
}

// LocalAddr is the socket's local address (IPv4 addresses unmapped).
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Close closes the socket; a blocked ReadBatch returns an error.
func (c *Conn) Close() error { return c.uc.Close() }
