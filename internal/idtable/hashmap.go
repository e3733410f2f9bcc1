package idtable

import (
	"hash/maphash"
	"net/netip"
	"sync/atomic"
)

// Map is a hash map whose lookups take no lock and do not allocate, for a
// data path that finds a peer by a key (a session id, a tunnel address)
// while connects and disconnects change the map. Each bucket is an
// immutable chain that a writer replaces: an insert prepends a node, a
// delete copies the nodes before the one it drops, and the bucket array
// doubles when there are more entries than buckets, so that every update
// costs O(1) amortised. The zero value is not usable: use NewMap.
type Map[K comparable, V any] struct {
	hash func(K) uint64
	tab  atomic.Pointer[buckets[K, V]]
	n    int
}

type buckets[K comparable, V any] struct {
	mask uint64
	b    []atomic.Pointer[node[K, V]]
}

type node[K comparable, V any] struct {
	key  K
	val  V
	next *node[K, V]
}

// NewMap returns an empty map that hashes keys with hash, which should
// spread them over all 64 bits (HashUint64, HashAddr).
func NewMap[K comparable, V any](hash func(K) uint64) *Map[K, V] {
	m := &Map[K, V]{hash: hash}
	m.tab.Store(&buckets[K, V]{mask: 7, b: make([]atomic.Pointer[node[K, V]], 8)})
	return m
}

// Load returns the value of key. It is safe for concurrent use with the
// writers and does not allocate.
func (m *Map[K, V]) Load(key K) (V, bool) {
	t := m.tab.Load()
	for n := t.b[m.hash(key)&t.mask].Load(); n != nil; n = n.next {
		if n.key == key {
			return n.val, true
		}
	}
	var zero V
	return zero, false
}

// Len is the number of entries; for writers (it is not synchronised).
func (m *Map[K, V]) Len() int { return m.n }

// Store sets the value of key. Writers (Store, Delete) must be serialised
// by the caller.
func (m *Map[K, V]) Store(key K, val V) {
	t := m.tab.Load()
	head := &t.b[m.hash(key)&t.mask]
	first := head.Load()
	if rest, ok := without(first, key); ok {
		head.Store(&node[K, V]{key: key, val: val, next: rest})
		return
	}
	head.Store(&node[K, V]{key: key, val: val, next: first})
	m.n++
	if uint64(m.n) > t.mask+1 {
		m.grow(t)
	}
}

// Delete removes key and reports whether it was there.
func (m *Map[K, V]) Delete(key K) bool {
	t := m.tab.Load()
	head := &t.b[m.hash(key)&t.mask]
	rest, ok := without(head.Load(), key)
	if ok {
		head.Store(rest)
		m.n--
	}
	return ok
}

// Range calls f for each entry until f returns false; it sees an update
// made during the walk or not.
func (m *Map[K, V]) Range(f func(K, V) bool) {
	t := m.tab.Load()
	for i := range t.b {
		for n := t.b[i].Load(); n != nil; n = n.next {
			if !f(n.key, n.val) {
				return
			}
		}
	}
}

// without returns the chain from first with key's node left out, sharing
// the nodes after it, and whether key was there.
func without[K comparable, V any](first *node[K, V], key K) (*node[K, V], bool) {
	var prefix []*node[K, V]
	for n := first; n != nil; n = n.next {
		if n.key != key {
			prefix = append(prefix, n)
			continue
		}
		rest := n.next
		for i := len(prefix) - 1; i >= 0; i-- {
			rest = &node[K, V]{key: prefix[i].key, val: prefix[i].val, next: rest}
		}
		return rest, true
	}
	return first, false
}

// grow doubles the buckets: the chains are rebuilt into a new array that
// replaces the old one at once, so readers see one or the other.
func (m *Map[K, V]) grow(t *buckets[K, V]) {
	nt := &buckets[K, V]{mask: 2*t.mask + 1, b: make([]atomic.Pointer[node[K, V]], 2*(t.mask+1))}
	for i := range t.b {
		for n := t.b[i].Load(); n != nil; n = n.next {
			h := &nt.b[m.hash(n.key)&nt.mask]
			h.Store(&node[K, V]{key: n.key, val: n.val, next: h.Load()})
		}
	}
	m.tab.Store(nt)
}

// seed varies the hashes between processes, so that a chain's length does
// not depend on keys alone.
var seed = new(maphash.Hash).Sum64()

// HashUint64 mixes a 64-bit key (the finaliser of SplitMix64).
func HashUint64(x uint64) uint64 {
	x ^= seed
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// HashAddr hashes an IP address (its zone is left out: keys that differ
// only by zone share a chain).
func HashAddr(a netip.Addr) uint64 {
	b := a.As16()
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
		uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	return HashUint64(HashUint64(hi) ^ lo)
}
