package rawio

import (
	"errors"
	"io"
	"sync"
	"syscall"
	"unsafe"
)

// ErrNoRawConn is returned by New when the value offers no raw connection.
var ErrNoRawConn = errors.New("rawio: no syscall.RawConn")

// Conn reads and writes one non-blocking descriptor. Its methods are
// safe for concurrent use (reads are serialised, and so are writes) and do
// not allocate.
type Conn struct {
	rc syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(uintptr) bool // c.doRead, bound once so that Read does not allocate

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(uintptr) bool
}

// New returns a Conn for c, which must implement syscall.Conn (as *net.TCPConn,
// *net.UDPConn and *os.File do).
func New(c any) (*Conn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, ErrNoRawConn
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	conn := &Conn{rc: rc}
	conn.readFn, conn.writeFn = conn.doRead, conn.doWrite
	return conn, nil
}

// Read reads into p, waiting in the poller while nothing is there. It
// returns io.EOF when the peer closed the stream.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	n, rerr := c.rn, c.rerr
	c.rbuf = nil
	if err != nil {
		return 0, err // closed or past the deadline
	}
	return n, rerr
}

func (c *Conn) doRead(fd uintptr) bool {
	p := c.rbuf
	for {
		m, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch errno {
		case 0:
			if m == 0 {
				c.rerr = io.EOF
			}
			c.rn = int(m)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = errno
		}
		return true
	}
}

// Write writes all of p, waiting in the poller while the descriptor cannot
// take more.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n, werr := c.wn, c.werr
	c.wbuf = nil
	if err != nil {
		return n, err
	}
	return n, werr
}

func (c *Conn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		q := c.wbuf[c.wn:]
		m, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(q))), uintptr(len(q)))
		switch errno {
		case 0:
			c.wn += int(m)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = errno
			return true
		}
	}
	return true
}
