package tunnel

import "errors"

// Pump copies packets from one Device to another until either is closed:
// a TUN into a client tunnel and back, for example. Packets are read at
// Headroom in buffers of BufferSize, so that the writing side can seal
// them in place. A packet the writer refuses on its own (not IP, say) is
// skipped; a read error, or ErrClosed from the writer, ends the pump and is
// returned.
func Pump(from, to Device) error {
	n := from.BatchSize()
	bufs := make([][]byte, n)
	out := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, BufferSize)
	}
	for {
		for i := range bufs {
			bufs[i] = bufs[i][:BufferSize-Tailroom]
		}
		k, err := from.Read(bufs, sizes, Headroom)
		if err != nil {
			return err
		}
		for i := 0; i < k; i++ {
			out[i] = bufs[i][:Headroom+sizes[i]]
		}
		if _, err := to.Write(out[:k], Headroom); err != nil && errors.Is(err, ErrClosed) {
			return err
		}
	}
}
