package ikecrypto

import (
	"fmt"
)

// IKEKeys are the keys of an IKE SA (RFC 7296 §2.14). Ai/Ar are empty
// with AEAD ciphers; Ei/Er end with the 4-byte salt for AES-GCM and
// ChaCha20-Poly1305. "i" keys protect and authenticate what the original
// initiator sends.
type IKEKeys struct {
	D, Ai, Ar, Ei, Er, Pi, Pr []byte
}

// checkNonce enforces RFC 7296 §3.9 (16 to 256 bytes). The nonces are the
// only fresh input of a derivation without DH (a first CHILD SA) and the
// key of SKEYSEED, so a short one is refused rather than used.
func checkNonce(name string, n []byte) error {
	if len(n) < 16 || len(n) > 256 {
		return fmt.Errorf("%w: %s is %d bytes", ErrInvalidNonce, name, len(n))
	}
	return nil
}

func checkNonces(ni, nr []byte) error {
	if err := checkNonce("Ni", ni); err != nil {
		return err
	}
	return checkNonce("Nr", nr)
}

// DeriveIKEKeys computes the keys of a new IKE SA (RFC 7296 §2.14):
//
//	SKEYSEED = prf(Ni | Nr, g^ir)
//	{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
//
// ni and nr are the Nonce payload bodies, sharedSecret the fixed-width
// value of DH.SharedSecret, spii/spir the SPIs as on the wire.
func DeriveIKEKeys(s Suite, ni, nr, sharedSecret []byte, spii, spir [8]byte) (IKEKeys, error) {
	if err := s.Validate(); err != nil {
		return IKEKeys{}, err
	}
	if err := checkNonces(ni, nr); err != nil {
		return IKEKeys{}, err
	}
	if len(sharedSecret) == 0 {
		return IKEKeys{}, fmt.Errorf("%w: empty shared secret", ErrInvalidKeyLength)
	}
	prf, _ := NewPRF(s.PRF) // validated above
	// For HMAC PRFs the key is the full Ni | Nr (§2.14; the 8-byte rule
	// is only for fixed-key PRFs such as AES-XCBC).
	skeyseed := prf.Sum(concat(ni, nr), sharedSecret)
	return expandIKEKeys(prf, s, skeyseed, ni, nr, spii, spir)
}

// DeriveRekeyedIKEKeys computes the keys of an IKE SA created by rekeying
// (RFC 7296 §2.18):
//
//	SKEYSEED = prf_old(SK_d (old), g^ir (new) | Ni | Nr)
//
// with the PRF of the old SA, then KEYMAT as in DeriveIKEKeys with the new
// suite's PRF and the new SPIs.
func DeriveRekeyedIKEKeys(oldPRF PRF, oldSKd []byte, s Suite, sharedSecret, ni, nr []byte, spii, spir [8]byte) (IKEKeys, error) {
	if !oldPRF.valid() {
		return IKEKeys{}, fmt.Errorf("%w: zero PRF for the old SA", ErrUnsupportedAlgorithm)
	}
	if len(oldSKd) == 0 {
		return IKEKeys{}, fmt.Errorf("%w: empty SK_d of the old SA", ErrInvalidKeyLength)
	}
	if err := s.Validate(); err != nil {
		return IKEKeys{}, err
	}
	if err := checkNonces(ni, nr); err != nil {
		return IKEKeys{}, err
	}
	if len(sharedSecret) == 0 {
		return IKEKeys{}, fmt.Errorf("%w: empty shared secret", ErrInvalidKeyLength)
	}
	prf, _ := NewPRF(s.PRF)
	skeyseed := oldPRF.Sum(oldSKd, sharedSecret, ni, nr)
	return expandIKEKeys(prf, s, skeyseed, ni, nr, spii, spir)
}

func expandIKEKeys(prf PRF, s Suite, skeyseed, ni, nr []byte, spii, spir [8]byte) (IKEKeys, error) {
	encr, _ := EncrKeyLen(s.Encr, s.EncrKeyBits) // validated by the callers
	integ, _ := IntegKeyLen(s.Integ)
	n := prf.Size()
	keymat, err := prf.Plus(skeyseed, concat(ni, nr, spii[:], spir[:]), 3*n+2*integ+2*encr)
	if err != nil {
		return IKEKeys{}, err
	}
	var k IKEKeys
	split(keymat, []*[]byte{&k.D, &k.Ai, &k.Ar, &k.Ei, &k.Er, &k.Pi, &k.Pr}, []int{n, integ, integ, encr, encr, n, n})
	return k, nil
}

// ChildKeys are the keys of a CHILD SA (RFC 7296 §2.17). I is the
// initiator of the exchange that created the SA (which for a rekey may be
// the IKE SA's responder). EncrX ends with the 4-byte salt for AES-GCM and
// ChaCha20-Poly1305; IntegX is empty with them.
type ChildKeys struct {
	EncrI, IntegI, EncrR, IntegR []byte
}

// DeriveChildKeys computes the keys of a CHILD SA (RFC 7296 §2.17):
//
//	KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr)
//
// sharedSecret is nil without PFS (the first CHILD SA of IKE_AUTH, or a
// CREATE_CHILD_SA without KE payloads); ni and nr are the nonces of the
// exchange that creates the SA. The keys are taken in the order encr I→R,
// integ I→R, encr R→I, integ R→I.
func DeriveChildKeys(prf PRF, skd []byte, cs ChildSuite, sharedSecret, ni, nr []byte) (ChildKeys, error) {
	if !prf.valid() {
		return ChildKeys{}, fmt.Errorf("%w: zero PRF", ErrUnsupportedAlgorithm)
	}
	if len(skd) == 0 {
		return ChildKeys{}, fmt.Errorf("%w: empty SK_d", ErrInvalidKeyLength)
	}
	if err := cs.Validate(); err != nil {
		return ChildKeys{}, err
	}
	if err := checkNonces(ni, nr); err != nil {
		return ChildKeys{}, err
	}
	encr, _ := EncrKeyLen(cs.Encr, cs.EncrKeyBits)
	integ, _ := IntegKeyLen(cs.Integ)
	keymat, err := prf.Plus(skd, concat(sharedSecret, ni, nr), 2*encr+2*integ)
	if err != nil {
		return ChildKeys{}, err
	}
	var k ChildKeys
	split(keymat, []*[]byte{&k.EncrI, &k.IntegI, &k.EncrR, &k.IntegR}, []int{encr, integ, encr, integ})
	return k, nil
}

// split cuts keymat into consecutive keys. Each key gets its own capacity
// limit, so that appending to one can never overwrite the next.
func split(keymat []byte, dst []*[]byte, lens []int) {
	off := 0
	for i, d := range dst {
		*d = keymat[off : off+lens[i] : off+lens[i]]
		off += lens[i]
	}
}

func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
