// Package message is the wire codec for IKEv2 messages: the fixed header
// (RFC 7296 §3.1), the chain of generic payloads (§3.2) and the bodies of
// every payload an IKEv2 responder or initiator exchanges with strongSwan
// (SA, KE, IDi/IDr, CERT, CERTREQ, AUTH, Nonce, Notify, Delete, Vendor ID,
// TSi/TSr, SK, CP, EAP, §3.3–3.16; SKF from RFC 7383; the RFC 7427
// SIGNATURE_HASH_ALGORITHMS notify type).
//
// Scope: bytes in, structs out, and back. There is no cryptography here
// (the SK and SKF bodies — IV, ciphertext, ICV — are opaque; decrypt them
// elsewhere and feed the plaintext chain to ParsePayloads with the SK's
// NextPayload), no state (message IDs, SPIs, retransmissions) and no policy
// (which proposal to choose, which notifies to answer). The non-ESP marker
// of UDP port 4500 is not handled either: strip it before Parse, add it
// after Marshal.
//
// # Parsing
//
// The parser is strict because its input comes from anyone who can send a
// UDP datagram: every length is checked before it is used, nothing panics,
// and every failure wraps one of the sentinel errors (ErrShort, ErrVersion,
// ErrLength, ErrSyntax, ErrUnsupportedCritical) and names the payload and
// field that is wrong, so a caller can pick the right error notify
// (INVALID_SYNTAX, UNSUPPORTED_CRITICAL_PAYLOAD, or silence) with errors.Is.
// Structural redundancy must agree: proposal and transform "last" markers,
// transform and selector counts, nested lengths, SPI sizes.
//
// Two things are deliberately accepted, because RFC 7296 says so: the
// critical bit on payload types this package knows (§2.5: it only matters
// for unknown types), and reserved fields that are not zero ("MUST be
// ignored on receipt"). The encoder writes those as zero, so re-encoding a
// parsed message gives the received bytes with exactly those bits cleared —
// except for the reserved octets of an ID payload, which are kept, because
// the AUTH computation covers the ID payload body as it was sent (see
// ID.Body). Unknown payload types without the critical bit are kept as
// *Unknown, so that they survive a re-encode.
//
// Parsed byte fields (Data, SPI, Body, Value, ...) are sub-slices of the
// input, not copies: they are only valid as long as the caller keeps the
// input buffer unchanged, and callers that keep them beyond that (a nonce,
// a peer's SPI, a certificate) must copy them. The sub-slices have their
// capacity clipped to their length, so appending to one never overwrites
// the bytes that follow it. Empty fields are nil.
//
// # Encoding
//
// Marshal builds a whole message, AppendPayloads just a payload chain (the
// plaintext of an SK payload, for instance). Both fill in every Next Payload
// and length field; the Next Payload of the last payload is zero except for
// an SK or SKF payload, whose NextPayload field names the first payload
// inside the ciphertext. Encoding validates what the types cannot express
// (counts and lengths that fit their fields, address families of a
// selector, SPI sizes) and fails instead of producing something the parser
// would reject.
package message
