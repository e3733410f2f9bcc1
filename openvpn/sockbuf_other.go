//go:build !linux

package openvpn

import (
	"errors"
	"net"
)

func socketBuffers(*net.UDPConn) (grantedBuffers, error) {
	return grantedBuffers{}, errors.New("openvpn: socket buffer sizes are only read on Linux")
}
