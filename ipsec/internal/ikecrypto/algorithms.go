package ikecrypto

import "fmt"

// Encryption transform IDs (IKEv2 transform type 1, IANA).
const (
	EncrAESCBC           uint16 = 12 // RFC 3602; key 128, 192 or 256 bits
	EncrAESGCM16         uint16 = 20 // RFC 5282; 16-byte ICV; key + 4-byte salt
	EncrChaCha20Poly1305 uint16 = 28 // RFC 7634; 256-bit key + 4-byte salt
)

// Pseudorandom function transform IDs (type 2).
const (
	PRFHMACSHA1   uint16 = 2 // RFC 2104
	PRFHMACSHA256 uint16 = 5 // RFC 4868
	PRFHMACSHA384 uint16 = 6
	PRFHMACSHA512 uint16 = 7
)

// Integrity transform IDs (type 3).
const (
	IntegNone          uint16 = 0  // with AEAD ciphers
	IntegHMACSHA196    uint16 = 2  // RFC 2404; key 20, ICV 12
	IntegHMACSHA256128 uint16 = 12 // RFC 4868; key 32, ICV 16
	IntegHMACSHA384192 uint16 = 13 // key 48, ICV 24
	IntegHMACSHA512256 uint16 = 14 // key 64, ICV 32
)

// Diffie-Hellman group IDs (type 4).
const (
	DHMODP2048   uint16 = 14 // RFC 3526
	DHMODP3072   uint16 = 15 // RFC 3526
	DHECP256     uint16 = 19 // RFC 5903
	DHECP384     uint16 = 20 // RFC 5903
	DHECP521     uint16 = 21 // RFC 5903
	DHCurve25519 uint16 = 31 // RFC 8031
)

// AUTH payload methods (RFC 7296 §3.8, RFC 4754, RFC 7427).
const (
	AuthRSA              uint8 = 1  // RSASSA-PKCS1-v1_5 with SHA-1
	AuthPSK              uint8 = 2  // Shared Key Message Integrity Code
	AuthECDSA256         uint8 = 9  // P-256 with SHA-256, raw r‖s
	AuthECDSA384         uint8 = 10 // P-384 with SHA-384, raw r‖s
	AuthECDSA521         uint8 = 11 // P-521 with SHA-512, raw r‖s
	AuthDigitalSignature uint8 = 14 // RFC 7427
)

// Hash algorithm identifiers of the SIGNATURE_HASH_ALGORITHMS notify
// (RFC 7427 §4, RFC 8420).
const (
	HashSHA1     uint16 = 1
	HashSHA256   uint16 = 2
	HashSHA384   uint16 = 3
	HashSHA512   uint16 = 4
	HashIdentity uint16 = 5
)

// SupportedHashes is what we advertise in SIGNATURE_HASH_ALGORITHMS: the
// hashes Verify accepts in the Digital Signature method. SHA-1 is left out
// on purpose (RFC 8247 §3.2), so peers pick SHA-2 or Ed25519.
var SupportedHashes = []uint16{HashSHA256, HashSHA384, HashSHA512, HashIdentity}

// Suite is the negotiated transform set of an IKE SA.
type Suite struct {
	Encr uint16
	// EncrKeyBits is the Key Length attribute: 128, 192 or 256 for AES;
	// 256 or 0 for ChaCha20-Poly1305, whose key size is fixed.
	EncrKeyBits int
	// Integ is IntegNone for the AEAD ciphers.
	Integ uint16
	PRF   uint16
	// DH is the group of the IKE SA. No derivation depends on it, so 0 is
	// accepted; a non-zero group must be one NewDH implements.
	DH uint16
}

// Validate reports whether the suite is one this package implements and is
// internally consistent: AEAD ciphers without an integrity transform, CBC
// with one, and valid key sizes.
func (s Suite) Validate() error {
	if err := validateProtection(s.Encr, s.EncrKeyBits, s.Integ); err != nil {
		return err
	}
	if _, err := NewPRF(s.PRF); err != nil {
		return err
	}
	if s.DH != 0 && DHPublicLen(s.DH) == 0 {
		return fmt.Errorf("%w: %d", ErrUnsupportedGroup, s.DH)
	}
	return nil
}

// ChildSuite is the negotiated transform set of a CHILD SA (ESP).
type ChildSuite struct {
	Encr        uint16
	EncrKeyBits int
	Integ       uint16
	// ESN and DH do not change the key material; they are carried so that
	// one value describes the SA. The PFS shared secret is passed to
	// DeriveChildKeys separately.
	ESN bool
	DH  uint16
}

// Validate reports whether the suite is one this package can derive keys
// for.
func (cs ChildSuite) Validate() error {
	return validateProtection(cs.Encr, cs.EncrKeyBits, cs.Integ)
}

func isAEAD(encr uint16) bool {
	return encr == EncrAESGCM16 || encr == EncrChaCha20Poly1305
}

// validateProtection checks an encryption/integrity pair: an AEAD cipher
// authenticates by itself and RFC 5282 §8 forbids a separate integrity
// transform with it, while CBC alone would be malleable.
func validateProtection(encr uint16, keyBits int, integ uint16) error {
	if _, err := EncrKeyLen(encr, keyBits); err != nil {
		return err
	}
	if isAEAD(encr) {
		if integ != IntegNone {
			return fmt.Errorf("%w: integrity transform %d with AEAD cipher %d", ErrUnsupportedAlgorithm, integ, encr)
		}
		return nil
	}
	if integ == IntegNone {
		return fmt.Errorf("%w: cipher %d needs an integrity transform", ErrUnsupportedAlgorithm, encr)
	}
	_, err := IntegKeyLen(integ)
	return err
}

// EncrKeyLen is the number of KEYMAT bytes an encryption key takes,
// including the 4-byte salt that AES-GCM (RFC 5282 §7.1) and
// ChaCha20-Poly1305 (RFC 7634 §4) take from the end of it.
func EncrKeyLen(encr uint16, keyBits int) (int, error) {
	switch encr {
	case EncrAESCBC, EncrAESGCM16:
		if keyBits != 128 && keyBits != 192 && keyBits != 256 {
			return 0, fmt.Errorf("%w: %d-bit key for cipher %d", ErrUnsupportedAlgorithm, keyBits, encr)
		}
		n := keyBits / 8
		if encr == EncrAESGCM16 {
			n += saltLen
		}
		return n, nil
	case EncrChaCha20Poly1305:
		if keyBits != 0 && keyBits != 256 {
			return 0, fmt.Errorf("%w: %d-bit key for ChaCha20-Poly1305", ErrUnsupportedAlgorithm, keyBits)
		}
		return 32 + saltLen, nil
	}
	return 0, fmt.Errorf("%w: encryption transform %d", ErrUnsupportedAlgorithm, encr)
}

// IntegKeyLen is the key size of an integrity transform: the HMAC key is as
// long as the hash output (RFC 4868 §2.1.1, RFC 2404). IntegNone has an
// empty key.
func IntegKeyLen(integ uint16) (int, error) {
	switch integ {
	case IntegNone:
		return 0, nil
	case IntegHMACSHA196:
		return 20, nil
	case IntegHMACSHA256128:
		return 32, nil
	case IntegHMACSHA384192:
		return 48, nil
	case IntegHMACSHA512256:
		return 64, nil
	}
	return 0, fmt.Errorf("%w: integrity transform %d", ErrUnsupportedAlgorithm, integ)
}

// ICVLen is the truncated HMAC length of an integrity transform; 0 for
// IntegNone and unknown transforms.
func ICVLen(integ uint16) int {
	switch integ {
	case IntegHMACSHA196:
		return 12
	case IntegHMACSHA256128:
		return 16
	case IntegHMACSHA384192:
		return 24
	case IntegHMACSHA512256:
		return 32
	}
	return 0
}
