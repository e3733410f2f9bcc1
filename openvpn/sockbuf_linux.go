package openvpn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func socketBuffers(conn *net.UDPConn) (grantedBuffers, error) {
	g := grantedBuffers{factor: 2}
	rc, err := conn.SyscallConn()
	if err != nil {
		return g, fmt.Errorf("openvpn: socket: %w", err)
	}
	var rerr, serr error
	if err := rc.Control(func(fd uintptr) {
		g.rcv, rerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		g.snd, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); err != nil {
		return g, fmt.Errorf("openvpn: socket: %w", err)
	}
	if rerr != nil || serr != nil {
		return g, fmt.Errorf("openvpn: reading socket buffer sizes: %w", errors.Join(rerr, serr))
	}
	g.rmemMax = sysctlInt("/proc/sys/net/core/rmem_max")
	g.wmemMax = sysctlInt("/proc/sys/net/core/wmem_max")
	return g, nil
}

// sysctlInt reads a numeric sysctl; 0 when it cannot (a container without
// /proc/sys).
func sysctlInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}
