// Package datachannel is the OpenVPN data channel: the key block and its two
// derivations (TLS exporter and the legacy PRF), per-key-id sealing and
// opening of P_DATA_V1/P_DATA_V2 packets in place (AES-GCM,
// ChaCha20-Poly1305, and legacy AES-256-CBC with HMAC), replay protection,
// and the keepalive, OCC and compression-framing payloads.
//
// Seal and Open work in place on the caller's buffer and do not allocate for
// the AEAD ciphers; this is the per-packet hot path.
package datachannel
