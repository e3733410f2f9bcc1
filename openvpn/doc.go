// Package openvpn is an OpenVPN 2.6 wire-compatible server and client in pure
// Go.
//
// It speaks the protocol of stock openvpn 2.6 so that deployed OpenVPN clients
// connect unchanged: UDP and TCP transports, the control channel (hard and
// soft resets, the reliability layer, TLS 1.2/1.3 over it with crypto/tls, key
// method 2, peer info, cipher negotiation, PUSH_REPLY), control-channel
// protection (tls-auth, tls-crypt, tls-crypt-v2), data-channel keys from the TLS
// exporter (RFC 5705), and the AEAD data channel (AES-128-GCM, AES-256-GCM,
// CHACHA20-POLY1305) with P_DATA_V2 and peer ids, keepalive and renegotiation.
//
// A Server authenticates clients and hands their tunnels to a tunnel.Handler:
// Admit assigns the tunnel address and pushed routes, Deliver receives the
// decrypted packets in batches, and Session.Send encrypts packets to a client.
// An IPv6 address in the assignment is pushed as ifconfig-ipv6 (with
// Assignment.Gateway6, or the IPv6 network's first address, as the server's
// end), and IPv6 routes as route-ipv6, as a stock server with server-ipv6
// does; a Client reports them in Pushed.
// A Client (Dial) is a tunnel.Device: Read returns packets from the server,
// Write sends packets to it.
//
// Peers configured with compress or comp-lzo get the matching framing
// (ServerConfig.Compression, ClientConfig.Compression, or a pushed option),
// but nothing is ever compressed, and compressed packets are dropped.
//
// Not implemented, and therefore never announced or pushed: dynamic tls-crypt,
// compression itself, the static-key (non-TLS) mode, TAP devices, and the
// OpenVPN 2.7 epoch data format.
package openvpn
