//go:build !linux

package udpbatch

import (
	"net"
	"net/netip"
)

// oobSize is zero where destination addresses are not reported: datagrams
// carry no Local, and WriteBatch leaves the source to the kernel.
const oobSize = 0

func enablePktinfo(*net.UDPConn, bool) bool { return false }

func parsePktinfo([]byte) netip.Addr { return netip.Addr{} }

func putPktinfo([]byte, netip.Addr, bool) int { return 0 }
