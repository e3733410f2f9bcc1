package idtable

// Alloc hands out the lowest free id of [0, Limit): ids freed are kept in
// a min-heap and the ids never handed out are the range from a counter,
// so that Get and Put cost O(log N) and the ids stay as compact as a
// linear scan for the first free one would keep them (the same ids, in
// the same order). The zero value hands out no id: use NewAlloc. Calls
// must be serialised by the caller.
type Alloc struct {
	limit uint64
	next  uint64   // ids >= next were never handed out
	freed []uint32 // min-heap of freed ids < next
	used  []uint64 // bitmap of the ids in use < next, to ignore double frees
}

// NewAlloc returns an allocator of the ids 0 to limit-1.
func NewAlloc(limit uint64) *Alloc { return &Alloc{limit: limit} }

// Get returns the lowest free id, or false when all limit ids are in use.
func (a *Alloc) Get() (uint32, bool) {
	var id uint32
	switch {
	case len(a.freed) > 0:
		id = a.freed[0]
		last := len(a.freed) - 1
		a.freed[0] = a.freed[last]
		a.freed = a.freed[:last]
		a.down(0)
	case a.next < a.limit:
		id = uint32(a.next)
		a.next++
		if int(id>>6) >= len(a.used) {
			a.used = append(a.used, 0)
		}
	default:
		return 0, false
	}
	a.used[id>>6] |= 1 << (id & 63)
	return id, true
}

// Take marks id as in use, whether or not Get would have returned it (an
// id restored from storage). It reports false if id is out of range or
// already in use. It costs O(k) where k is how far id lies beyond the ids
// handed out so far, or O(free) when id was freed before.
func (a *Alloc) Take(id uint32) bool {
	if uint64(id) >= a.limit || a.InUse(id) {
		return false
	}
	if uint64(id) >= a.next {
		for a.next <= uint64(id) {
			n := uint32(a.next)
			a.next++
			if int(n>>6) >= len(a.used) {
				a.used = append(a.used, 0)
			}
			if n != id {
				a.push(n)
			}
		}
	} else {
		for i, f := range a.freed {
			if f == id {
				last := len(a.freed) - 1
				a.freed[i] = a.freed[last]
				a.freed = a.freed[:last]
				if i < last {
					a.down(i)
					a.up(i)
				}
				break
			}
		}
	}
	a.used[id>>6] |= 1 << (id & 63)
	return true
}

// Put frees id; freeing an id not in use does nothing.
func (a *Alloc) Put(id uint32) {
	if !a.InUse(id) {
		return
	}
	a.used[id>>6] &^= 1 << (id & 63)
	a.push(id)
}

// InUse reports whether id was handed out and not freed.
func (a *Alloc) InUse(id uint32) bool {
	return uint64(id) < a.next && a.used[id>>6]&(1<<(id&63)) != 0
}

func (a *Alloc) push(id uint32) {
	a.freed = append(a.freed, id)
	a.up(len(a.freed) - 1)
}

func (a *Alloc) up(i int) {
	h := a.freed
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (a *Alloc) down(i int) {
	h := a.freed
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r] < h[l] {
			m = r
		}
		if h[i] <= h[m] {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
