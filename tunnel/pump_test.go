package tunnel_test

import (
	"bytes"
	"errors"
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
		if !errors.Is(err, tunnel.ErrClosed) {
			t.Fatalf("Pump ended with %v, want tunnel.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pump did not end after its reader was closed")
	}
}

// Pump ends with tunnel.ErrClosed when its writer is closed, too: a closed
// client tunnel stops the pump that feeds it from a TUN.
func TestPumpEndsWhenWriterClosed(t *testing.T) {
	in, from := tunneltest.Pipe(8)
	to, _ := tunneltest.Pipe(8)
	done := make(chan error, 1)
	go func() { done <- tunnel.Pump(from, to) }()
	to.Close()
	buf := make([]byte, tunnel.Headroom+20)
	buf[tunnel.Headroom] = 0x45
	select {
	case err := <-done:
		t.Fatalf("Pump ended with %v before it had anything to write", err)
	default:
	}
	if _, err := in.Write([][]byte{buf}, tunnel.Headroom); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, tunnel.ErrClosed) {
			t.Fatalf("Pump ended with %v, want tunnel.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pump did not end after its writer was closed")
	}
}

// Both ends of a closed Pipe say tunnel.ErrClosed on Read and Write.
func TestPipeClosed(t *testing.T) {
	a, b := tunneltest.Pipe(1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*tunneltest.PipeDevice{a, b} {
		if _, err := d.Read(make([][]byte, 1), make([]int, 1), 0); !errors.Is(err, tunnel.ErrClosed) {
			t.Errorf("Read after Close: %v", err)
		}
		if _, err := d.Write([][]byte{make([]byte, 20)}, 0); !errors.Is(err, tunnel.ErrClosed) {
			t.Errorf("Write after Close: %v", err)
		}
	}
}
