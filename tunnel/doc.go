// Package tunnel is the packet-I/O vocabulary shared by every transport in
// remotegate.
//
// A Device is a batched packet port (a TUN interface, an in-memory pipe). A
// Session is one authenticated tunnel of any protocol; a Handler is what a
// protocol server calls to admit a peer, to report sessions going up and down,
// and to deliver decrypted packets. Protocol packages (openvpn, ipsec) produce
// Sessions and call a Handler; the broker implements Handler.
//
// Buffers passed through these interfaces carry Headroom bytes in front of the
// packet data, so that a transport can prepend its headers and encrypt in place
// without copying.
package tunnel
