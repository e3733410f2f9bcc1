// Package wire is the OpenVPN control-channel packet format: opcodes,
// session ids, the reliable header (ACKs and message ids), and the three
// protections of control packets: tls-auth (HMAC), tls-crypt (AES-256-CTR
// with HMAC-SHA256) and tls-crypt-v2 (per-client tls-crypt keys wrapped by
// the server key). It also reads and writes the key files stock openvpn's
// --genkey produces.
//
// Everything here is pure: no I/O, no goroutines. Decode accepts arbitrary
// bytes and fails with an error, never a panic.
//
// A Codec holds one session's protection state and is used for both
// directions: Encode with the role's sending key half, Decode with the other
// (tls-crypt: the server sends with keys[0], the client with keys[1];
// tls-auth: by key direction). Decoded Payload and WKc alias the input, which
// tls-crypt decrypts in place. A tls-crypt-v2 server codec has no key until
// it has decoded the client's opcode 10 or 11 packet, and forgets that key
// again if the packet carrying it fails. The captures in testdata were made
// by stock openvpn 2.6 with testdata/capture.sh.
package wire
