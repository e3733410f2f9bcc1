package tunneltest

import (
	"sync"

	"github.com/remotegate/remotegate/tunnel"
)

// Pipe returns two connected in-memory Devices: packets written to one are read
// from the other. Each direction buffers up to queue packets; a Write to a full
// queue drops the packet, like a real interface under load. The MTU is 1500
// and the batch size is 64.
func Pipe(queue int) (a, b *PipeDevice) {
	ab := make(chan []byte, queue)
	ba := make(chan []byte, queue)
	done := make(chan struct{})
	var once sync.Once
	closeFn := func() { once.Do(func() { close(done) }) }
	a = &PipeDevice{in: ba, out: ab, done: done, close: closeFn}
	b = &PipeDevice{in: ab, out: ba, done: done, close: closeFn}
	return a, b
}

// PipeDevice is one end of a Pipe. Closing either end closes both.
type PipeDevice struct {
	in, out chan []byte
	done    chan struct{}
	close   func()
	// Dropped counts packets dropped because the peer's queue was full.
	mu      sync.Mutex
	dropped int
}

// Read blocks until at least one packet is available, then returns as many as
// are queued, up to len(bufs).
func (p *PipeDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	select {
	case pkt := <-p.in:
		sizes[0] = copy(bufs[0][offset:], pkt)
		n = 1
	case <-p.done:
		return 0, tunnel.ErrClosed
	}
	for n < len(bufs) {
		select {
		case pkt := <-p.in:
			sizes[n] = copy(bufs[n][offset:], pkt)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// Write queues a copy of each bufs[i][offset:] for the other end.
func (p *PipeDevice) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		select {
		case <-p.done:
			return i, tunnel.ErrClosed
		default:
		}
		pkt := append([]byte(nil), b[offset:]...)
		select {
		case p.out <- pkt:
		default:
			p.mu.Lock()
			p.dropped++
			p.mu.Unlock()
		}
	}
	return len(bufs), nil
}

// Dropped is the number of packets this end dropped because the other end's
// queue was full.
func (p *PipeDevice) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// BatchSize is 64.
func (p *PipeDevice) BatchSize() int { return 64 }

// MTU is 1500.
func (p *PipeDevice) MTU() int { return 1500 }

// Close closes both ends.
func (p *PipeDevice) Close() error { p.close(); return nil }

var _ tunnel.Device = (*PipeDevice)(nil)
