// Package udpbatch reads and writes batches of UDP datagrams with one system
// call each where the platform allows (recvmmsg/sendmmsg on Linux, through
// golang.org/x/net/ipv4 and ipv6), with addresses as netip.AddrPort. It is the
// server's socket layer: one ReadBatch fills many packet buffers, one
// WriteBatch sends many sealed packets.
package udpbatch
