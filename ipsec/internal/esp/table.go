package esp

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"
)

// Table maps inbound SPIs to SAs (or whatever the caller keeps per SA). The
// receive path looks SPIs up for every packet, SA setup, rekey and delete
// change the table a few times an hour per SA: so Lookup reads an immutable
// map through an atomic pointer, without a lock, and every change copies
// the map under a mutex and publishes the copy. A change costs O(Len).
//
// The zero Table is empty and ready to use. It must not be copied after
// first use.
type Table[T any] struct {
	mu sync.Mutex // serializes writers
	m  atomic.Pointer[map[uint32]T]
}

// reserveTries bounds Reserve's search. With a random 32-bit SPI a collision
// is astronomically unlikely unless the table or the random source is broken,
// and then looping forever would be worse than failing.
const reserveTries = 64

// minSPI: SPIs 1..255 are reserved by IANA and 0 is never sent on the wire
// (RFC 4303 §2.1).
const minSPI = 256

// Lookup returns the value stored for spi. It takes no lock and does not
// allocate; it may run concurrently with everything.
func (t *Table[T]) Lookup(spi uint32) (T, bool) {
	if p := t.m.Load(); p != nil {
		v, ok := (*p)[spi]
		return v, ok
	}
	var zero T
	return zero, false
}

// Len is the number of entries.
func (t *Table[T]) Len() int {
	if p := t.m.Load(); p != nil {
		return len(*p)
	}
	return 0
}

// Add stores v for spi. It fails with ErrSPIInUse if spi is present.
func (t *Table[T]) Add(spi uint32, v T) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.Lookup(spi); ok {
		return fmt.Errorf("%w: %#08x", ErrSPIInUse, spi)
	}
	t.insertLocked(spi, v)
	return nil
}

// Remove deletes spi; removing an absent SPI does nothing.
func (t *Table[T]) Remove(spi uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.m.Load()
	if p == nil {
		return
	}
	if _, ok := (*p)[spi]; !ok {
		return
	}
	m := maps.Clone(*p)
	delete(m, spi)
	t.m.Store(&m)
}

// Reserve picks a random SPI that is not reserved (>= 256) and not in the
// table, stores v for it, and returns it: the inbound SPI to offer in an IKE
// proposal. Picking and storing happen under the writers' lock, so two
// Reserves never return the same SPI. rand nil means crypto/rand. Random SPIs
// make it harder to guess an SA's SPI off-path, and a reused SPI shortly
// after a delete would let late packets of the old SA hit the new one.
func (t *Table[T]) Reserve(r io.Reader, v T) (uint32, error) {
	if r == nil {
		r = rand.Reader
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var b [4]byte
	for range reserveTries {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("esp: reading a random SPI: %w", err)
		}
		spi := binary.BigEndian.Uint32(b[:])
		if spi < minSPI {
			continue
		}
		if _, ok := t.Lookup(spi); ok {
			continue
		}
		t.insertLocked(spi, v)
		return spi, nil
	}
	return 0, ErrNoSPI
}

func (t *Table[T]) insertLocked(spi uint32, v T) {
	var m map[uint32]T
	if p := t.m.Load(); p != nil {
		m = make(map[uint32]T, len(*p)+1)
		maps.Copy(m, *p)
	} else {
		m = make(map[uint32]T, 1)
	}
	m[spi] = v
	t.m.Store(&m)
}
