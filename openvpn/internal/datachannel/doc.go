// Package datachannel is the OpenVPN 2.6 data channel: the 256-byte key block
// and its two derivations (TLS exporter, legacy TLS 1.0 PRF), per-key-id
// sealing and opening of P_DATA_V1/P_DATA_V2 packets in place (AES-GCM,
// ChaCha20-Poly1305, and legacy AES-256-CBC with HMAC), replay protection,
// and the keepalive, OCC and compression-framing payloads.
//
// Seal and Open are the per-packet hot path: they work in place on the
// caller's buffer and do not allocate. A payload read into
// buf[FrameHeadroom+SealHeadroom:] of a buffer with FrameTailroom+SealTailroom
// spare capacity can be framed (Compression.Frame) and sealed without
// copying. Open uses the received packet's spare capacity, when there is at
// least 16 bytes of it, to avoid moving the ciphertext; the plaintext of a
// P_DATA_V2 AEAD packet then starts 24 bytes into the packet.
//
// The send counter never wraps: Seal fails with ErrKeyExhausted after packet
// id 0xFF000000, so an AEAD nonce cannot repeat even if the caller fails to
// renegotiate in time.
package datachannel
