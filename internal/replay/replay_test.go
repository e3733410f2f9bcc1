package replay

import "testing"

func TestWindow(t *testing.T) {
	var w Window
	steps := []struct {
		id   uint64
		want bool
	}{
		{0, false}, {1, true}, {1, false}, {3, true}, {2, true}, {2, false},
		{3000, true}, {3000 - Size, true}, {3000 - Size - 1, false}, {2999, true},
		{5, false}, {100000, true}, {2999, false}, {99999, true},
	}
	for i, s := range steps {
		if got := w.Check(s.id); got != s.want {
			t.Fatalf("step %d: Check(%d) = %v, want %v", i, s.id, got, s.want)
		}
	}
}

func TestWindowAgainstMap(t *testing.T) {
	var w Window
	seen := map[uint64]bool{}
	var highest uint64
	x := uint64(12345)
	for i := 0; i < 200000; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		var id uint64
		switch (x >> 60) % 4 {
		case 0:
			id = highest + 1 + (x>>40)%100
		default:
			d := (x >> 33) % 2500
			if d > highest {
				d = highest
			}
			id = highest - d
		}
		want := id != 0 && !seen[id] && (id > highest || highest-id <= Size)
		if got := w.Check(id); got != want {
			t.Fatalf("iteration %d: Check(%d) with highest %d = %v, want %v", i, id, highest, got, want)
		}
		if want {
			seen[id] = true
			if id > highest {
				highest = id
			}
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	b.ReportAllocs()
	var w Window
	for i := 0; i < b.N; i++ {
		w.Check(uint64(i + 1))
	}
}
