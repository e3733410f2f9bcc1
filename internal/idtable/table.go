package idtable

import "sync/atomic"

const (
	pageBits = 8
	pageSize = 1 << pageBits
)

type page[T any] [pageSize]atomic.Pointer[T]

// Table is an array of pointers indexed by an id, for lock-free lookups on
// a data path (a peer id in a packet). It is made of pages of 256 entries
// that are allocated when an id in them is first stored, under a directory
// that doubles when it grows: a Store costs O(1) amortised, a Load three
// atomic loads, and memory follows the highest id stored, not the id
// space. The zero value is an empty table.
type Table[T any] struct {
	dir atomic.Pointer[[]atomic.Pointer[page[T]]]
}

// Load returns the entry of id, nil if none. It is safe for concurrent use
// with Store and does not allocate.
func (t *Table[T]) Load(id uint32) *T {
	d := t.dir.Load()
	if d == nil {
		return nil
	}
	i := id >> pageBits
	if uint64(i) >= uint64(len(*d)) {
		return nil
	}
	p := (*d)[i].Load()
	if p == nil {
		return nil
	}
	return p[id&(pageSize-1)].Load()
}

// Store sets the entry of id (nil clears it). Calls to Store must be
// serialised by the caller.
func (t *Table[T]) Store(id uint32, v *T) {
	i := int(id >> pageBits)
	d := t.dir.Load()
	if d == nil || i >= len(*d) {
		if v == nil {
			return
		}
		n := 1
		if d != nil {
			n = len(*d)
		}
		for n <= i {
			n *= 2
		}
		// Doubling makes the copy O(1) amortised per page.
		nd := make([]atomic.Pointer[page[T]], n)
		if d != nil {
			for j := range *d {
				nd[j].Store((*d)[j].Load())
			}
		}
		t.dir.Store(&nd)
		d = &nd
	}
	p := (*d)[i].Load()
	if p == nil {
		if v == nil {
			return
		}
		p = new(page[T])
		(*d)[i].Store(p)
	}
	p[id&(pageSize-1)].Store(v)
}

// Range calls f for every entry set, in id order, until f returns false.
// It sees a Store made during the walk or not.
func (t *Table[T]) Range(f func(id uint32, v *T) bool) {
	d := t.dir.Load()
	if d == nil {
		return
	}
	for i := range *d {
		p := (*d)[i].Load()
		if p == nil {
			continue
		}
		for j := range p {
			if v := p[j].Load(); v != nil && !f(uint32(i<<pageBits|j), v) {
				return
			}
		}
	}
}
