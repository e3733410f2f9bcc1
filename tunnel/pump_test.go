package tunnel_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/remotegate/remotegate/tunnel"
	"github.com/remotegate/remotegate/tunnel/tunneltest"
)

// Pump carries packets unchanged, with the headroom and tailroom a sealing
// writer needs, and ends when its reader is closed.
func TestPumpCarriesPacketsUntilClosed(t *testing.T) {
	in, from := tunneltest.Pipe(8)
	to, out := tunneltest.Pipe(8)
	done := make(chan error, 1)
	go func() { done <- tunnel.Pump(from, to) }()

	pkt := []byte{0x45, 0, 0, 20, 1, 2, 3, 4, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	buf := make([]byte, tunnel.Headroom+len(pkt))
	copy(buf[tunnel.Headroom:], pkt)
	if _, err := in.Write([][]byte{buf}, tunnel.Headroom); err != nil {
		t.Fatal(err)
	}
	got := [][]byte{make([]byte, tunnel.BufferSize)}
	sizes := []int{0}
	if _, err := out.Read(got, sizes, tunnel.Headroom); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0][tunnel.Headroom:tunnel.Headroom+sizes[0]], pkt) {
		t.Fatalf("carried % x, want % x", got[0][tunnel.Headroom:tunnel.Headroom+sizes[0]], pkt)
	}

	from.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Pump ended without an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pump did not end after its reader was closed")
	}
}
