package esp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTable(t *testing.T) {
	var tb Table[string]
	_, ok := tb.Lookup(1000)
	require.False(t, ok)
	require.Zero(t, tb.Len())
	tb.Remove(1000) // absent: nothing happens

	require.NoError(t, tb.Add(1000, "a"))
	require.NoError(t, tb.Add(2000, "b"))
	require.ErrorIs(t, tb.Add(1000, "c"), ErrSPIInUse)
	v, ok := tb.Lookup(1000)
	require.True(t, ok)
	require.Equal(t, "a", v)
	require.Equal(t, 2, tb.Len())

	tb.Remove(1000)
	_, ok = tb.Lookup(1000)
	require.False(t, ok)
	v, ok = tb.Lookup(2000)
	require.True(t, ok)
	require.Equal(t, "b", v)
	require.Equal(t, 1, tb.Len())
	tb.Remove(1000)
	require.Equal(t, 1, tb.Len())
}

// spiReader yields the given SPIs, big-endian, in order.
func spiReader(spis ...uint32) *bytes.Reader {
	var b []byte
	for _, s := range spis {
		b = binary.BigEndian.AppendUint32(b, s)
	}
	return bytes.NewReader(b)
}

func TestReserve(t *testing.T) {
	var tb Table[int]
	require.NoError(t, tb.Add(0xc0000001, 1))
	spi, err := tb.Reserve(spiReader(0, 1, 255, 0xc0000001, 256, 7), 2)
	require.NoError(t, err)
	require.Equal(t, uint32(256), spi, "reserved and used SPIs skipped")
	v, ok := tb.Lookup(256)
	require.True(t, ok)
	require.Equal(t, 2, v)

	// A source that only ever yields unusable SPIs gives up.
	bad := make([]uint32, reserveTries)
	for i := range bad {
		bad[i] = uint32(i % 256)
	}
	_, err = tb.Reserve(spiReader(bad...), 3)
	require.ErrorIs(t, err, ErrNoSPI)
	_, err = tb.Reserve(spiReader(), 3)
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrNoSPI))
	require.Equal(t, 2, tb.Len())

	// crypto/rand: never reserved, never a duplicate, also concurrently.
	var wg sync.WaitGroup
	spis := make([][]uint32, 4)
	for w := range spis {
		wg.Go(func() {
			for range 500 {
				s, err := tb.Reserve(nil, w)
				if err != nil {
					t.Error(err)
					return
				}
				spis[w] = append(spis[w], s)
			}
		})
	}
	wg.Wait()
	seen := map[uint32]bool{0xc0000001: true, 256: true}
	for w := range spis {
		for _, s := range spis[w] {
			require.GreaterOrEqual(t, s, uint32(256))
			require.False(t, seen[s], "SPI %#x handed out twice", s)
			seen[s] = true
			v, ok := tb.Lookup(s)
			require.True(t, ok)
			require.Equal(t, w, v)
		}
	}
	require.Equal(t, 2002, tb.Len())
}

// TestTableConcurrent runs lock-free lookups against writers; run with
// -race. Values are their own SPI, so a reader can tell a torn or mixed-up
// entry.
func TestTableConcurrent(t *testing.T) {
	var tb Table[uint32]
	for spi := uint32(1000); spi < 1100; spi++ {
		require.NoError(t, tb.Add(spi, spi))
	}
	stop := make(chan struct{})
	var readers, writers sync.WaitGroup
	for range 3 {
		readers.Go(func() {
			for i := uint32(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				spi := 1000 + i%300
				if v, ok := tb.Lookup(spi); ok && v != spi {
					t.Errorf("Lookup(%d) = %d", spi, v)
					return
				}
				// The permanent entries never disappear.
				if _, ok := tb.Lookup(1000 + i%100); !ok {
					t.Errorf("permanent SPI %d missing", 1000+i%100)
					return
				}
				_ = tb.Len()
			}
		})
	}
	for w := range 2 {
		writers.Go(func() {
			for i := range 2000 {
				spi := uint32(1100 + w*100 + i%100)
				if err := tb.Add(spi, spi); err != nil && !errors.Is(err, ErrSPIInUse) {
					t.Error(err)
				}
				tb.Remove(spi)
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	require.Equal(t, 100, tb.Len())
}

func TestTableLookupAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	var tb Table[*Inbound]
	for spi := uint32(256); spi < 356; spi++ {
		require.NoError(t, tb.Add(spi, new(Inbound)))
	}
	pkt := []byte{0, 0, 1, 0x20, 0, 0, 0, 1}
	if a := testing.AllocsPerRun(1000, func() {
		if Classify(pkt) != KindESP {
			t.Fatal("not ESP")
		}
		if _, ok := tb.Lookup(SPIOf(pkt)); !ok {
			t.Fatal("missing")
		}
		if _, ok := tb.Lookup(9999); ok {
			t.Fatal("present")
		}
	}); a != 0 {
		t.Errorf("Classify+Lookup allocates %v", a)
	}
}
