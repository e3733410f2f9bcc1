// Package wire is the OpenVPN control-channel packet format: opcodes,
// session ids, the reliable header (ACKs and message ids), and the three
// protections of control packets: tls-auth (HMAC), tls-crypt (AES-256-CTR
// with HMAC-SHA256) and tls-crypt-v2 (per-client tls-crypt keys wrapped by
// the server key). It also reads and writes the key files stock openvpn's
// --genkey produces.
//
// Everything here is pure: no I/O, no goroutines. Decode accepts arbitrary
// bytes and fails with an error, never a panic.
package wire
