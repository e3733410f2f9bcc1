// Package esp is userspace ESP (RFC 4303) in tunnel mode, carried in UDP on
// port 4500 (RFC 3948), as negotiated by IKEv2 and as spoken by strongSwan's
// kernel-libipsec.
//
// An Outbound seals inner IP packets for one SA, an Inbound opens the packets
// of one SA. Both work in place on the caller's buffer and do not allocate
// per packet: an inner packet read into buf[off:off+n], with
// Outbound.HeaderLen bytes of headroom in front and Outbound.Tailroom bytes of
// spare capacity behind (tunnel.Headroom and tunnel.Tailroom are enough for
// every algorithm), is turned into the UDP payload without copying, and Open
// returns the inner packet as a sub-slice of the received datagram.
//
// Supported transforms (IANA IKEv2 numbers): AES-GCM with a 16-byte ICV
// (RFC 4106) and ChaCha20-Poly1305 (RFC 7634), and AES-CBC (RFC 3602) with
// HMAC-SHA2-256-128, -384-192 or -512-256 (RFC 4868); each with or without
// extended sequence numbers.
//
// Receive processing follows RFC 4303 §3.4: SPI, a replay pre-check that
// costs no cryptography, authentication, and only then the replay window is
// updated, so forged packets cannot move it. Failures are sentinel errors, so
// a receive loop can count drops by reason without allocating; none of them
// should be logged per packet, as anyone can send garbage to port 4500.
//
// Classify demultiplexes a datagram received on port 4500 into ESP, IKE
// (non-ESP marker), NAT keepalive or garbage, and Table maps inbound SPIs to
// SAs for the receive path without locking.
//
// What this package does not do: the inbound traffic-selector check (RFC
// 4301 §5.2, the caller's job after Open), lifetimes and rekeying (the
// caller watches Outbound.Sent and the Stats), and choosing the peer's
// address.
package esp
