package ikecrypto

import "errors"

// Sentinel errors. Functions wrap them with %w and a reason; compare with
// errors.Is.
var (
	// ErrUnsupportedGroup is a Diffie-Hellman group this package does not
	// implement.
	ErrUnsupportedGroup = errors.New("ikecrypto: unsupported Diffie-Hellman group")
	// ErrUnsupportedAlgorithm is a transform, key size, key type or
	// signature algorithm this package does not implement or refuses.
	ErrUnsupportedAlgorithm = errors.New("ikecrypto: unsupported algorithm")
	// ErrInvalidPublicKey is a peer's Diffie-Hellman value that is malformed
	// or unsafe (wrong length, out of range, not on the curve, low order).
	ErrInvalidPublicKey = errors.New("ikecrypto: invalid Diffie-Hellman public value")
	// ErrAuthentication is an integrity check (SK payload ICV, AEAD tag) or
	// an AUTH payload that does not verify.
	ErrAuthentication = errors.New("ikecrypto: authentication failed")
	// ErrShort is an input whose length is impossible: an SK body too
	// short for its IV, ICV and pad length, or not a whole number of cipher
	// blocks.
	ErrShort = errors.New("ikecrypto: input too short or of invalid length")
	// ErrInvalidPadding is an authentic SK payload whose pad length does not
	// fit its plaintext.
	ErrInvalidPadding = errors.New("ikecrypto: invalid padding")
	// ErrInvalidKeyLength is key material of the wrong size for its
	// algorithm.
	ErrInvalidKeyLength = errors.New("ikecrypto: invalid key length")
	// ErrInvalidNonce is a nonce outside the 16–256 bytes of RFC 7296 §3.9.
	ErrInvalidNonce = errors.New("ikecrypto: invalid nonce length")
)
