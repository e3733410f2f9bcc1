// Package idtable holds the tables that servers keep per connected peer and
// change at every connect: a paged array indexed by a small integer id, an
// allocator of the lowest free id, and a hash map keyed by a uint64 or an
// address. Their common point is that an update costs O(1) or O(log N)
// (amortised) however many peers are connected, where copying a slice or a
// map per connect cost O(N) and O(N²) to fill a server, and that readers on
// a data path look entries up without a lock and without allocating.
//
// Writers must be serialised by the caller (they are called under the
// caller's mutex); readers may run concurrently with one writer.
package idtable
