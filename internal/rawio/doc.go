// Package rawio reads and writes non-blocking descriptors without telling
// the Go scheduler that the goroutine is in a system call.
//
// A read or write on a non-blocking socket or TUN device never waits, but
// it can run a large part of the kernel's network stack before it returns:
// a write into a veth or TUN runs the receiving side's softirq processing
// inline, and a socket read may send an ACK the same way. When such a call
// takes longer than about 20 µs, the runtime's monitor thread (sysmon)
// assumes the goroutine is blocked and hands its processor to another
// thread; the caller then has to take a processor back when the call
// returns, and the monitor, having found work, keeps polling every 20 µs.
// At tens of thousands of packets a second this costs more CPU than the
// system calls do (measured in docs/PERFORMANCE.md: the monitor thread alone
// used a quarter of the server's CPU in the TCP transport comparison).
//
// The runtime's rule is that RawSyscall is only for calls that do not block;
// every function here is given a non-blocking descriptor by its caller
// (net.Conn sockets and files opened with O_NONBLOCK are), and when the
// kernel answers EAGAIN the function waits in the runtime's poller like the
// standard library does.
package rawio
