// Package ikecrypto is the cryptography of IKEv2 (RFC 7296): Diffie-Hellman
// (MODP, RFC 3526; ECP, RFC 5903; Curve25519, RFC 8031), the PRFs and prf+,
// the IKE and CHILD SA key derivations (§2.13–2.18), protection of the
// Encrypted payload (SK, §3.14; AEAD per RFC 5282 and RFC 7634), the AUTH
// payload (PSK, RSA, ECDSA per RFC 4754 and Digital Signature per RFC 7427)
// and the NAT detection hashes (§2.23).
//
// It knows nothing of the wire codec: algorithms are the plain IANA
// transform numbers, and everything that depends on the message layout
// (the AAD of the SK payload, the signed octets) is passed in by the caller
// as the exact bytes sent or received.
//
// The package is written to interoperate with strongSwan. The places where
// implementations commonly go wrong are handled explicitly:
//
//   - Diffie-Hellman values and shared secrets are always fixed width
//     (MODP left-padded to the prime's length, ECP X‖Y without the 0x04
//     prefix, the shared secret of ECP the X coordinate only), and peer
//     values are validated before use.
//   - For AES-GCM and ChaCha20-Poly1305 the encryption key taken from KEYMAT
//     is key‖salt, so SK_e is 4 bytes longer than the cipher key.
//   - AES-CBC messages are authenticated (in constant time) before they are
//     decrypted, and the pad length is checked before it is used.
//   - ECDSA signatures are raw r‖s for AUTH methods 9–11 and DER for the
//     Digital Signature method 14.
//
// Only HMAC-based PRFs are implemented (no AES-XCBC/CMAC), which is what
// RFC 8247 recommends and what every strongSwan default proposal offers.
package ikecrypto
