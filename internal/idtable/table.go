package idtable

import "sync/atomic"

const (
	// IDBits is the width of the ids a Table holds: the peer id of an
	// OpenVPN P_DATA_V2 header.
	IDBits   = 24
	pageBits = 12
	pageSize = 1 << pageBits
	dirSize  = 1 << (IDBits - pageBits)
)

type page[T any] [pageSize]atomic.Pointer[T]

// Table is an array of pointers indexed by an id below 2²⁴, for lock-free
// lookups on a data path (a peer id in a packet). It is a fixed directory
// of 4096 pages of 4096 entries, a page allocated when an id in it is first
// stored: a Store costs O(1), a Load two atomic loads and no bounds check,
// and memory is 32 KiB plus 32 KiB per 4096 ids up to the highest stored,
// not the id space. The zero value is an empty table.
type Table[T any] struct {
	dir [dirSize]atomic.Pointer[page[T]]
}

// Load returns the entry of id, nil if none (ids of 2²⁴ and more have
// none). It is safe for concurrent use with Store and does not allocate.
func (t *Table[T]) Load(id uint32) *T {
	if id>>IDBits != 0 {
		return nil
	}
	p := t.dir[(id>>pageBits)&(dirSize-1)].Load()
	if p == nil {
		return nil
	}
	return p[id&(pageSize-1)].Load()
}

// Store sets the entry of id (nil clears it) and reports false if id is
// 2²⁴ or more. Calls to Store must be serialised by the caller.
func (t *Table[T]) Store(id uint32, v *T) bool {
	if id>>IDBits != 0 {
		return false
	}
	d := &t.dir[(id>>pageBits)&(dirSize-1)]
	p := d.Load()
	if p == nil {
		if v == nil {
			return true
		}
		p = new(page[T])
		d.Store(p)
	}
	p[id&(pageSize-1)].Store(v)
	return true
}

// Range calls f for every entry set, in id order, until f returns false.
// It sees a Store made during the walk or not.
func (t *Table[T]) Range(f func(id uint32, v *T) bool) {
	for i := range t.dir {
		p := t.dir[i].Load()
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
