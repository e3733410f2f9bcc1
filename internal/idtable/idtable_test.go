package idtable

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

func TestTableStoreLoad(t *testing.T) {
	var tab Table[int]
	if tab.Load(0) != nil || tab.Load(1<<24-1) != nil {
		t.Fatal("empty table has entries")
	}
	vals := map[uint32]*int{}
	for _, id := range []uint32{0, 1, 255, 256, 1000, 70000, 1<<24 - 1} {
		v := new(int)
		*v = int(id)
		tab.Store(id, v)
		vals[id] = v
	}
	for id, v := range vals {
		if got := tab.Load(id); got != v {
			t.Fatalf("Load(%d) = %v, want %v", id, got, v)
		}
	}
	if tab.Store(1<<24, new(int)) || tab.Load(1<<24) != nil || tab.Load(^uint32(0)) != nil {
		t.Fatal("an id beyond 24 bits was stored")
	}
	if tab.Load(2) != nil || tab.Load(70001) != nil {
		t.Fatal("unset ids have entries")
	}
	tab.Store(256, nil)
	if tab.Load(256) != nil {
		t.Fatal("cleared entry still there")
	}
	var seen []uint32
	tab.Range(func(id uint32, v *int) bool {
		if *v != int(id) {
			t.Fatalf("Range gave %d for id %d", *v, id)
		}
		seen = append(seen, id)
		return true
	})
	if fmt.Sprint(seen) != "[0 1 255 1000 70000 16777215]" {
		t.Fatalf("Range saw %v", seen)
	}
}

func TestTableLoadAllocs(t *testing.T) {
	var tab Table[int]
	for id := range uint32(2000) {
		tab.Store(id, new(int))
	}
	var sink *int
	if n := testing.AllocsPerRun(1000, func() { sink = tab.Load(1234) }); n != 0 || sink == nil {
		t.Fatalf("Load: %v allocations", n)
	}
}

// TestTableConcurrent reads while a writer stores and clears entries: a
// reader must see either nil or the value stored for that id (run with
// -race).
func TestTableConcurrent(t *testing.T) {
	var tab Table[uint32]
	const n = 5000
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(1, 2))
			for !stop.Load() {
				id := r.Uint32N(n)
				if v := tab.Load(id); v != nil && *v != id {
					t.Errorf("Load(%d) = %d", id, *v)
					return
				}
			}
		})
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		id := r.Uint32N(n)
		if r.IntN(2) == 0 {
			v := id
			tab.Store(id, &v)
		} else {
			tab.Store(id, nil)
		}
	}
	stop.Store(true)
	wg.Wait()
}

func TestAllocLowestFree(t *testing.T) {
	a := NewAlloc(5)
	for want := range uint32(5) {
		if id, ok := a.Get(); !ok || id != want {
			t.Fatalf("Get = %d, %v; want %d", id, ok, want)
		}
	}
	if _, ok := a.Get(); ok {
		t.Fatal("Get beyond the limit")
	}
	a.Put(3)
	a.Put(1)
	a.Put(1) // double free: ignored
	a.Put(4)
	for _, want := range []uint32{1, 3, 4} {
		if id, ok := a.Get(); !ok || id != want {
			t.Fatalf("Get = %d, %v; want %d", id, ok, want)
		}
	}
	if _, ok := a.Get(); ok {
		t.Fatal("Get beyond the limit after frees")
	}
}

// TestAllocMatchesScan checks the allocator against the linear scan it
// replaces, through random gets, puts and takes.
func TestAllocMatchesScan(t *testing.T) {
	const limit = 300
	a := NewAlloc(limit)
	var used [limit]bool
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 20000 {
		switch op := r.IntN(10); {
		case op < 5:
			want, wantOK := uint32(0), false
			for j := range used {
				if !used[j] {
					want, wantOK = uint32(j), true
					break
				}
			}
			id, ok := a.Get()
			if ok != wantOK || id != want {
				t.Fatalf("step %d: Get = %d, %v; the scan says %d, %v", i, id, ok, want, wantOK)
			}
			if ok {
				used[id] = true
			}
		case op < 9:
			id := r.Uint32N(limit)
			a.Put(id)
			used[id] = false
		default:
			id := r.Uint32N(limit + 5)
			want := id < limit && !used[id]
			if got := a.Take(id); got != want {
				t.Fatalf("step %d: Take(%d) = %v, want %v", i, id, got, want)
			}
			if want {
				used[id] = true
			}
		}
		for j := range uint32(limit) {
			if a.InUse(j) != used[j] {
				t.Fatalf("step %d: InUse(%d) = %v", i, j, a.InUse(j))
			}
		}
	}
}

func TestMap(t *testing.T) {
	m := NewMap[uint64, int](HashUint64)
	for i := range 1000 {
		m.Store(uint64(i)*7, i)
	}
	m.Store(7, -1) // replace
	if m.Len() != 1000 {
		t.Fatalf("Len = %d", m.Len())
	}
	for i := range 1000 {
		want := i
		if i == 1 {
			want = -1
		}
		if v, ok := m.Load(uint64(i) * 7); !ok || v != want {
			t.Fatalf("Load(%d) = %d, %v", i*7, v, ok)
		}
	}
	for i := 0; i < 1000; i += 2 {
		if !m.Delete(uint64(i) * 7) {
			t.Fatalf("Delete(%d) found nothing", i*7)
		}
	}
	if m.Delete(0) || m.Len() != 500 {
		t.Fatalf("after deletes: Len = %d", m.Len())
	}
	n := 0
	m.Range(func(k uint64, v int) bool {
		if k%14 == 0 {
			t.Fatalf("deleted key %d still there", k)
		}
		n++
		return true
	})
	if n != 500 {
		t.Fatalf("Range saw %d entries", n)
	}
	if _, ok := m.Load(1); ok {
		t.Fatal("Load of a missing key found it")
	}
}

func TestMapAddr(t *testing.T) {
	m := NewMap[netip.Addr, int](HashAddr)
	a4 := netip.MustParseAddr("10.8.0.2")
	a6 := netip.MustParseAddr("fd00::2")
	m.Store(a4, 4)
	m.Store(a6, 6)
	if v, _ := m.Load(a4); v != 4 {
		t.Fatal("IPv4 key")
	}
	if v, _ := m.Load(a6); v != 6 {
		t.Fatal("IPv6 key")
	}
	if _, ok := m.Load(netip.AddrFrom16(a4.As16())); ok {
		t.Fatal("an IPv4-mapped IPv6 address matched the IPv4 one")
	}
}

func TestMapLoadAllocs(t *testing.T) {
	m := NewMap[uint64, *int](HashUint64)
	for i := range uint64(5000) {
		m.Store(i<<20, new(int))
	}
	a := NewMap[netip.Addr, *int](HashAddr)
	addr := netip.MustParseAddr("fd00::1234")
	a.Store(addr, new(int))
	var ok1, ok2 bool
	if n := testing.AllocsPerRun(1000, func() {
		_, ok1 = m.Load(1234 << 20)
		_, ok2 = a.Load(addr)
	}); n != 0 || !ok1 || !ok2 {
		t.Fatalf("Load: %v allocations", n)
	}
}

// TestMapConcurrent reads while a writer stores, replaces, deletes and
// grows the map: a reader finds either nothing or the key's own value
// (run with -race).
func TestMapConcurrent(t *testing.T) {
	m := NewMap[uint64, uint64](HashUint64)
	const n = 5000
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(7, 8))
			for !stop.Load() {
				k := r.Uint64N(n)
				if v, ok := m.Load(k); ok && v != k*3 {
					t.Errorf("Load(%d) = %d", k, v)
					return
				}
			}
		})
	}
	r := rand.New(rand.NewPCG(9, 10))
	for range 50000 {
		k := r.Uint64N(n)
		if r.IntN(3) == 0 {
			m.Delete(k)
		} else {
			m.Store(k, k*3)
		}
	}
	stop.Store(true)
	wg.Wait()
}

func BenchmarkTableLoad(b *testing.B) {
	var tab Table[int]
	for id := range uint32(10000) {
		tab.Store(id, new(int))
	}
	b.ReportAllocs()
	var id uint32
	for b.Loop() {
		_ = tab.Load(id % 10000)
		id += 7919
	}
}

func BenchmarkMapLoad(b *testing.B) {
	m := NewMap[uint64, int](HashUint64)
	for i := range uint64(10000) {
		m.Store(i, int(i))
	}
	b.ReportAllocs()
	var k uint64
	for b.Loop() {
		_, _ = m.Load(k % 10000)
		k += 7919
	}
}
