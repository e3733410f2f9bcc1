package rawio

import (
	"errors"
	"io"
	"syscall"
	"unsafe"
)

// ErrNoRawConn is returned by New when the value offers no raw connection.
var ErrNoRawConn = errors.New("rawio: no syscall.RawConn")

// Conn reads and writes one non-blocking descriptor.
type Conn struct {
	rc syscall.RawConn
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
	return &Conn{rc: rc}, nil
}

// Read reads into p, waiting in the poller while nothing is there. It
// returns io.EOF when the peer closed the stream.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			m, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
			switch errno {
			case 0:
				if m == 0 {
					rerr = io.EOF
				}
				n = int(m)
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			default:
				rerr = errno
			}
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// Write writes all of p, waiting in the poller while the descriptor cannot
// take more.
func (c *Conn) Write(p []byte) (int, error) {
	var n int
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			q := p[n:]
			m, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(q))), uintptr(len(q)))
			switch errno {
			case 0:
				n += int(m)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				werr = errno
				return true
			}
		}
		return true
	})
	if err != nil {
		return n, err
	}
	return n, werr
}
