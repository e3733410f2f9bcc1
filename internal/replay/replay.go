package replay

// Size is the number of ids below the highest accepted id that may still
// arrive out of order. It is larger than OpenVPN's default of 64 because
// batched, multi-queue receive paths reorder more; accepting more reordering
// than the peer expects is harmless, since each id is still accepted once.
const Size = blockBits*(blocks-1) - 1

const (
	blockBits = 64
	blocks    = 32 // 2048 bits of ring; power of two
	ringMask  = blocks - 1
)

// Window is the replay state for one key and direction.
type Window struct {
	highest uint64
	ring    [blocks]uint64
}

// Check reports whether id is new and marks it seen. Call it only after the
// packet has been authenticated, so that forged ids cannot move the window.
func (w *Window) Check(id uint64) bool {
	if id == 0 {
		return false
	}
	if id > w.highest {
		cur := w.highest / blockBits
		next := id / blockBits
		diff := next - cur
		if diff > blocks {
			diff = blocks
		}
		for i := uint64(1); i <= diff; i++ {
			w.ring[(cur+i)&ringMask] = 0
		}
		w.highest = id
	} else if w.highest-id > Size {
		return false
	}
	idx := (id / blockBits) & ringMask
	bit := uint64(1) << (id % blockBits)
	if w.ring[idx]&bit != 0 {
		return false
	}
	w.ring[idx] |= bit
	return true
}

// Highest is the highest id accepted so far (0 before the first).
func (w *Window) Highest() uint64 { return w.highest }

// Reset forgets all ids.
func (w *Window) Reset() { *w = Window{} }
