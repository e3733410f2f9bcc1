package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialContext opens a connection from inside the namespace, so that a
// test's Go code (an HTTP client, say) can reach a server listening on the
// namespace's loopback address. The socket stays in the namespace after the
// call.
func (n *NS) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Do runs fn on an OS thread that has joined the namespace: sockets it
// opens, TUN devices it creates and programs it starts (they inherit the
// thread's namespace) belong to the namespace and stay there, so that a
// test's own Go code can serve inside it. fn must not start goroutines that
// expect to be in the namespace: only its own thread is.
func (n *NS) Do(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		// A thread whose namespace could not be restored must not run other
		// goroutines: it stays locked and exits with this goroutine.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- fmt.Errorf("netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + n.Name)
		if err != nil {
			done <- fmt.Errorf("netns: %w", err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("netns: enter %s: %w", n.Name, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}
