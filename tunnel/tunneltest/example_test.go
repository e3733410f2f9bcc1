package tunneltest_test

import (
	"fmt"

	"github.com/remotegate/remotegate/tunnel"
	"github.com/remotegate/remotegate/tunnel/tunneltest"
)

// A pipe stands in for a TUN device in tests: what one end writes, the other
// reads, with the headroom convention of real devices.
func ExamplePipe() {
	a, b := tunneltest.Pipe(16)
	defer a.Close()
	buf := make([]byte, tunnel.Headroom+4)
	copy(buf[tunnel.Headroom:], []byte{0x45, 0, 0, 4})
	if _, err := a.Write([][]byte{buf}, tunnel.Headroom); err != nil {
		fmt.Println(err)
		return
	}
	in := [][]byte{make([]byte, tunnel.BufferSize)}
	sizes := make([]int, 1)
	n, _ := b.Read(in, sizes, tunnel.Headroom)
	fmt.Printf("%d packet: % x\n", n, in[0][tunnel.Headroom:tunnel.Headroom+sizes[0]])
	// Output: 1 packet: 45 00 00 04
}
