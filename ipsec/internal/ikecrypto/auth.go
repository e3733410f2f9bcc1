package ikecrypto

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SignedOctets is what the AUTH payload signs or MACs (RFC 7296 §2.15):
//
//	RealMessage | Nonce of the peer | prf(SK_p, RestOfID)
//
// realMessage is our IKE_SA_INIT message exactly as sent (or the peer's as
// received, to verify theirs), without the non-ESP marker; peerNonce is
// the other side's Nonce payload body; skp is SK_pi for the initiator's
// AUTH and SK_pr for the responder's; idBody is the ID payload body
// without its 4-byte generic header (ID type, 3 reserved bytes, data).
func SignedOctets(realMessage, peerNonce []byte, prf PRF, skp []byte, idBody []byte) []byte {
	return concat(realMessage, peerNonce, prf.Sum(skp, idBody))
}

// pskPad is the key pad of RFC 7296 §2.15: the 17 ASCII bytes, no NUL.
var pskPad = []byte("Key Pad for IKEv2")

// PSKAuth is the Shared Key Message Integrity Code (AUTH method 2):
// prf(prf(psk, "Key Pad for IKEv2"), octets). To check a received value,
// prefer VerifyPSKAuth.
func PSKAuth(prf PRF, psk, octets []byte) []byte {
	if !prf.valid() {
		// A nil or empty result would equal an empty AUTH payload under
		// hmac.Equal; random bytes equal nothing.
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return b
	}
	return prf.Sum(prf.Sum(psk, pskPad), octets)
}

// VerifyPSKAuth checks a received method-2 Authentication Data in
// constant time. Empty data and an empty PSK are refused outright.
func VerifyPSKAuth(prf PRF, psk, octets, data []byte) error {
	if !prf.valid() {
		return fmt.Errorf("%w: %w: zero PRF", ErrAuthentication, ErrUnsupportedAlgorithm)
	}
	if len(psk) == 0 || len(data) == 0 {
		return fmt.Errorf("%w: empty pre-shared key or AUTH data", ErrAuthentication)
	}
	if !hmac.Equal(PSKAuth(prf, psk, octets), data) {
		return fmt.Errorf("%w: pre-shared key MIC does not match", ErrAuthentication)
	}
	return nil
}

// AlgorithmIdentifier DER encodings for the Digital Signature method (RFC
// 7427 Appendix A). ECDSA carries no parameters (RFC 5758 §3.2), RSA
// PKCS#1 v1.5 a NULL (RFC 4055 §5), Ed25519 none (RFC 8410 §3). For
// RSASSA-PSS (RFC 4055 §3.1) hash and MGF1 hash are the same SHA-2 with
// NULL parameters and the salt is as long as the hash, which is what
// openssl, Go's crypto/x509 and RFC 7427 A.4.3 produce.
var (
	algECDSASHA256 = unhex("300a06082a8648ce3d040302")
	algECDSASHA384 = unhex("300a06082a8648ce3d040303")
	algECDSASHA512 = unhex("300a06082a8648ce3d040304")
	algRSASHA256   = unhex("300d06092a864886f70d01010b0500")
	algRSASHA384   = unhex("300d06092a864886f70d01010c0500")
	algRSASHA512   = unhex("300d06092a864886f70d01010d0500")
	algEd25519     = unhex("300506032b6570")
	algPSSSHA256   = unhex("304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120")
	algPSSSHA384   = unhex("304106092a864886f70d01010a3034a00f300d06096086480165030402020500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130")
	algPSSSHA512   = unhex("304106092a864886f70d01010a3034a00f300d06096086480165030402030500a11c301a06092a864886f70d010108300d06096086480165030402030500a203020140")
)

// unhex decodes a constant; the tests parse every one back.
func unhex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

var (
	oidECDSASHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidRSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidRSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidRSASHA512   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPSS      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidEd25519     = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA1        = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

type keyType int

const (
	keyRSA keyType = iota + 1
	keyECDSA
	keyEd25519
)

func (k keyType) String() string {
	switch k {
	case keyRSA:
		return "RSA"
	case keyECDSA:
		return "ECDSA"
	case keyEd25519:
		return "Ed25519"
	}
	return "unknown"
}

// scheme is a signature algorithm of the Digital Signature method.
type scheme struct {
	key  keyType
	hash crypto.Hash // 0 for Ed25519, which signs the octets themselves
	pss  bool
	salt int // PSS salt length
}

// SignOptions tune Sign.
type SignOptions struct {
	// RSAPSS makes RSA keys sign with RSASSA-PSS (salt = hash length)
	// instead of PKCS#1 v1.5 when the Digital Signature method is used.
	// strongSwan verifies both; it signs with PSS only if configured to
	// (charon.rsa_pss).
	RSAPSS bool
}

// Sign makes our AUTH payload: it returns the method and the
// Authentication Data. If the peer sent SIGNATURE_HASH_ALGORITHMS
// (peerHashes non-empty), it uses the Digital Signature method (14) with
// the first of SHA-256, SHA-384, SHA-512 that the peer supports and that
// fits the key — like strongSwan, SHA-256 for RSA up to 3072 bits and
// ECDSA up to P-256, SHA-384 up to 7680 bits and P-384, SHA-512 above;
// Ed25519 needs the peer's "Identity". Otherwise, or if no hash fits, it
// uses the key's classic method: 1 for RSA, 9/10/11 for ECDSA P-256/384/521.
//
// signer may be a hardware key: Sign only calls signer.Sign, with a digest
// and the matching crypto.SignerOpts (the octets themselves for Ed25519).
func Sign(signer crypto.Signer, peerHashes []uint16, octets []byte) (method uint8, data []byte, err error) {
	return SignWith(signer, peerHashes, octets, SignOptions{})
}

// SignWith is Sign with options.
func SignWith(signer crypto.Signer, peerHashes []uint16, octets []byte, opts SignOptions) (method uint8, data []byte, err error) {
	if signer == nil {
		return 0, nil, fmt.Errorf("%w: no signer", ErrUnsupportedAlgorithm)
	}
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		if pub == nil || pub.N == nil {
			return 0, nil, fmt.Errorf("%w: empty RSA key", ErrUnsupportedAlgorithm)
		}
		if h, ok := pickHash(peerHashes, hashesForSize(pub.N.BitLen(), 3072, 7680)); ok {
			sc := scheme{key: keyRSA, hash: h, pss: opts.RSAPSS, salt: h.Size()}
			sig, err := signDigest(signer, sc, octets)
			if err != nil {
				return 0, nil, err
			}
			return AuthDigitalSignature, digitalSignature(algID(sc), sig), nil
		}
		sig, err := signDigest(signer, scheme{key: keyRSA, hash: crypto.SHA1}, octets)
		if err != nil {
			return 0, nil, err
		}
		return AuthRSA, sig, nil

	case *ecdsa.PublicKey:
		if pub == nil || pub.Curve == nil || pub.Curve.Params() == nil {
			return 0, nil, fmt.Errorf("%w: empty ECDSA key", ErrUnsupportedAlgorithm)
		}
		if h, ok := pickHash(peerHashes, hashesForSize(pub.Curve.Params().BitSize, 256, 384)); ok {
			sc := scheme{key: keyECDSA, hash: h}
			sig, err := signDigest(signer, sc, octets)
			if err != nil {
				return 0, nil, err
			}
			return AuthDigitalSignature, digitalSignature(algID(sc), sig), nil
		}
		m, h, size, ok := classicECDSA(pub.Curve)
		if !ok {
			return 0, nil, fmt.Errorf("%w: ECDSA curve %s without a common hash for the Digital Signature method", ErrUnsupportedAlgorithm, pub.Curve.Params().Name)
		}
		der, err := signDigest(signer, scheme{key: keyECDSA, hash: h}, octets)
		if err != nil {
			return 0, nil, err
		}
		raw, err := ecdsaDERToRaw(der, size)
		if err != nil {
			return 0, nil, err
		}
		return m, raw, nil

	case ed25519.PublicKey:
		if !slices.Contains(peerHashes, HashIdentity) {
			return 0, nil, fmt.Errorf("%w: Ed25519 needs the Digital Signature method, but the peer did not offer the Identity hash", ErrUnsupportedAlgorithm)
		}
		sig, err := signDigest(signer, scheme{key: keyEd25519}, octets)
		if err != nil {
			return 0, nil, err
		}
		return AuthDigitalSignature, digitalSignature(algEd25519, sig), nil
	}
	return 0, nil, fmt.Errorf("%w: key type %T", ErrUnsupportedAlgorithm, signer.Public())
}

// hashesForSize lists, in our order of preference, the hashes strongSwan
// pairs with a key of the given size: SHA-256 only up to small, SHA-384 up
// to medium, SHA-512 always.
func hashesForSize(bits, small, medium int) []crypto.Hash {
	var hs []crypto.Hash
	if bits <= small {
		hs = append(hs, crypto.SHA256)
	}
	if bits <= medium {
		hs = append(hs, crypto.SHA384)
	}
	return append(hs, crypto.SHA512)
}

func pickHash(peer []uint16, ours []crypto.Hash) (crypto.Hash, bool) {
	for _, h := range ours {
		if slices.Contains(peer, hashNumber(h)) {
			return h, true
		}
	}
	return 0, false
}

func hashNumber(h crypto.Hash) uint16 {
	switch h {
	case crypto.SHA256:
		return HashSHA256
	case crypto.SHA384:
		return HashSHA384
	case crypto.SHA512:
		return HashSHA512
	}
	return 0
}

// classicECDSA maps a curve to its RFC 4754 method, hash and coordinate
// size.
func classicECDSA(c elliptic.Curve) (method uint8, h crypto.Hash, size int, ok bool) {
	switch c {
	case elliptic.P256():
		return AuthECDSA256, crypto.SHA256, 32, true
	case elliptic.P384():
		return AuthECDSA384, crypto.SHA384, 48, true
	case elliptic.P521():
		return AuthECDSA521, crypto.SHA512, 66, true
	}
	return 0, 0, 0, false
}

func algID(sc scheme) []byte {
	switch {
	case sc.key == keyECDSA && sc.hash == crypto.SHA256:
		return algECDSASHA256
	case sc.key == keyECDSA && sc.hash == crypto.SHA384:
		return algECDSASHA384
	case sc.key == keyECDSA && sc.hash == crypto.SHA512:
		return algECDSASHA512
	case sc.key == keyRSA && sc.pss && sc.hash == crypto.SHA256:
		return algPSSSHA256
	case sc.key == keyRSA && sc.pss && sc.hash == crypto.SHA384:
		return algPSSSHA384
	case sc.key == keyRSA && sc.pss && sc.hash == crypto.SHA512:
		return algPSSSHA512
	case sc.key == keyRSA && sc.hash == crypto.SHA256:
		return algRSASHA256
	case sc.key == keyRSA && sc.hash == crypto.SHA384:
		return algRSASHA384
	case sc.key == keyRSA && sc.hash == crypto.SHA512:
		return algRSASHA512
	}
	return algEd25519
}

// digitalSignature builds the RFC 7427 §3 Authentication Data:
// ASN.1 length (1 byte) | AlgorithmIdentifier | signature.
func digitalSignature(alg, sig []byte) []byte {
	return concat([]byte{byte(len(alg))}, alg, sig)
}

func signDigest(signer crypto.Signer, sc scheme, octets []byte) ([]byte, error) {
	var (
		digest = octets
		opts   crypto.SignerOpts
	)
	if sc.key == keyEd25519 {
		opts = crypto.Hash(0) // pure Ed25519 signs the message itself
	} else {
		hh := sc.hash.New()
		hh.Write(octets)
		digest = hh.Sum(nil)
		opts = sc.hash
		if sc.pss {
			opts = &rsa.PSSOptions{SaltLength: sc.salt, Hash: sc.hash}
		}
	}
	sig, err := signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("ikecrypto: signing with %s: %w", sc.key, err)
	}
	return sig, nil
}

// ecdsaDERToRaw converts the DER signature every crypto.Signer returns for
// ECDSA into the fixed-width r‖s of RFC 4754 §7.
func ecdsaDERToRaw(der []byte, size int) ([]byte, error) {
	r, s, ok := parseECDSADER(der)
	if !ok || r.BitLen() > 8*size || s.BitLen() > 8*size {
		return nil, fmt.Errorf("%w: signer returned a malformed ECDSA signature", ErrUnsupportedAlgorithm)
	}
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out, nil
}

func parseECDSADER(der []byte) (r, s *big.Int, ok bool) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	r, s = new(big.Int), new(big.Int)
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(r) || !seq.ReadASN1Integer(s) || !seq.Empty() ||
		r.Sign() <= 0 || s.Sign() <= 0 {
		return nil, nil, false
	}
	return r, s, true
}

func ecdsaRawToDER(raw []byte) ([]byte, error) {
	half := len(raw) / 2
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[:half]))
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[half:]))
	})
	return b.Bytes()
}

// Verify checks the peer's AUTH payload (method and Authentication Data)
// over octets with pub, the public key of the peer's certificate. For the
// Digital Signature method it parses the AlgorithmIdentifier and refuses
// one for another key type, SHA-1 (which we do not advertise) and PSS
// parameters it cannot honour. Every failure wraps ErrAuthentication, and
// also ErrUnsupportedAlgorithm for an algorithm we do not implement.
func Verify(pub crypto.PublicKey, method uint8, data, octets []byte) error {
	kt, err := publicKeyType(pub)
	if err != nil {
		return err
	}
	switch method {
	case AuthRSA:
		if kt != keyRSA {
			return fmt.Errorf("%w: method 1 (RSA) with an %s key", ErrAuthentication, kt)
		}
		return verifyScheme(pub, scheme{key: keyRSA, hash: crypto.SHA1}, data, octets)

	case AuthECDSA256, AuthECDSA384, AuthECDSA521:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: method %d (ECDSA) with an %s key", ErrAuthentication, method, kt)
		}
		m, h, size, ok := classicECDSA(k.Curve)
		if !ok || m != method {
			return fmt.Errorf("%w: method %d does not match the key's curve", ErrAuthentication, method)
		}
		if len(data) != 2*size {
			return fmt.Errorf("%w: ECDSA signature of %d bytes, want %d", ErrAuthentication, len(data), 2*size)
		}
		der, err := ecdsaRawToDER(data)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrAuthentication, err)
		}
		return verifyScheme(pub, scheme{key: keyECDSA, hash: h}, der, octets)

	case AuthDigitalSignature:
		if len(data) < 1 || len(data) < 1+int(data[0]) {
			return fmt.Errorf("%w: truncated Digital Signature data", ErrAuthentication)
		}
		alg, sig := data[1:1+int(data[0])], data[1+int(data[0]):]
		sc, err := parseAlgorithmIdentifier(alg)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrAuthentication, err)
		}
		if sc.key != kt {
			return fmt.Errorf("%w: %s signature algorithm for an %s key", ErrAuthentication, sc.key, kt)
		}
		return verifyScheme(pub, sc, sig, octets)
	}
	return fmt.Errorf("%w: %w: AUTH method %d", ErrAuthentication, ErrUnsupportedAlgorithm, method)
}

func publicKeyType(pub crypto.PublicKey) (keyType, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k != nil && k.N != nil {
			return keyRSA, nil
		}
	case *ecdsa.PublicKey:
		if k != nil && k.Curve != nil {
			return keyECDSA, nil
		}
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return keyEd25519, nil
		}
	}
	return 0, fmt.Errorf("%w: %w: public key %T", ErrAuthentication, ErrUnsupportedAlgorithm, pub)
}

// verifyScheme verifies sig (DER for ECDSA) with pub, whose type the
// callers have matched with sc.key; the checked assertions keep a mismatch
// an error rather than a panic.
func verifyScheme(pub crypto.PublicKey, sc scheme, sig, octets []byte) error {
	mismatch := fmt.Errorf("%w: %s scheme for key %T", ErrAuthentication, sc.key, pub)
	if sc.key == keyEd25519 {
		k, ok := pub.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return mismatch
		}
		if !ed25519.Verify(k, octets, sig) {
			return fmt.Errorf("%w: Ed25519 signature does not verify", ErrAuthentication)
		}
		return nil
	}
	hh := sc.hash.New()
	hh.Write(octets)
	digest := hh.Sum(nil)
	switch sc.key {
	case keyECDSA:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return mismatch
		}
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return fmt.Errorf("%w: ECDSA signature does not verify", ErrAuthentication)
		}
	case keyRSA:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return mismatch
		}
		var err error
		if sc.pss {
			// A salt length of 0 means "any" to crypto/rsa, which still
			// verifies the signature, only less strictly.
			err = rsa.VerifyPSS(k, sc.hash, digest, sig, &rsa.PSSOptions{SaltLength: sc.salt, Hash: sc.hash})
		} else {
			err = rsa.VerifyPKCS1v15(k, sc.hash, digest, sig)
		}
		if err != nil {
			return fmt.Errorf("%w: RSA signature does not verify: %w", ErrAuthentication, err)
		}
	default:
		return mismatch
	}
	return nil
}

var errAlgID = errors.New("malformed AlgorithmIdentifier")

// parseAlgorithmIdentifier maps the AlgorithmIdentifier of RFC 7427 §3 to
// a scheme. Absent and NULL parameters are both accepted where RFC 4055
// §2.1 asks receivers to; the DER must be exact otherwise.
func parseAlgorithmIdentifier(der []byte) (scheme, error) {
	oid, params, hasParams, ok := readAlgID(cryptobyte.String(der), true)
	if !ok {
		return scheme{}, errAlgID
	}
	nullOK := !hasParams || (params.tag == cbasn1.NULL && len(params.body) == 0)
	unsupported := func() (scheme, error) {
		return scheme{}, fmt.Errorf("%w: signature algorithm %v", ErrUnsupportedAlgorithm, oid)
	}
	var sc scheme
	switch {
	case oid.Equal(oidECDSASHA256):
		sc = scheme{key: keyECDSA, hash: crypto.SHA256}
	case oid.Equal(oidECDSASHA384):
		sc = scheme{key: keyECDSA, hash: crypto.SHA384}
	case oid.Equal(oidECDSASHA512):
		sc = scheme{key: keyECDSA, hash: crypto.SHA512}
	case oid.Equal(oidRSASHA256):
		sc = scheme{key: keyRSA, hash: crypto.SHA256}
	case oid.Equal(oidRSASHA384):
		sc = scheme{key: keyRSA, hash: crypto.SHA384}
	case oid.Equal(oidRSASHA512):
		sc = scheme{key: keyRSA, hash: crypto.SHA512}
	case oid.Equal(oidEd25519):
		if hasParams {
			return scheme{}, errAlgID
		}
		return scheme{key: keyEd25519}, nil
	case oid.Equal(oidRSAPSS):
		if !hasParams || params.tag != cbasn1.SEQUENCE {
			// Absent parameters would mean SHA-1 defaults (RFC 4055 §3.1).
			return unsupported()
		}
		return parsePSSParams(params.body)
	default:
		return unsupported()
	}
	if !nullOK {
		return scheme{}, errAlgID
	}
	return sc, nil
}

type asn1Element struct {
	tag  cbasn1.Tag
	full cryptobyte.String // with tag and length
	body cryptobyte.String // contents only
}

// readAlgID reads SEQUENCE { OID, [parameters] }, requiring that nothing
// follows when whole is set.
func readAlgID(in cryptobyte.String, whole bool) (oid asn1.ObjectIdentifier, params asn1Element, hasParams, ok bool) {
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || (whole && !in.Empty()) ||
		!seq.ReadASN1ObjectIdentifier(&oid) {
		return nil, params, false, false
	}
	if !seq.Empty() {
		if !seq.ReadAnyASN1Element(&params.full, &params.tag) || !seq.Empty() {
			return nil, params, false, false
		}
		full := params.full
		if !full.ReadAnyASN1(&params.body, &params.tag) {
			return nil, params, false, false
		}
		hasParams = true
	}
	return oid, params, hasParams, true
}

// hashAlgID reads a hash AlgorithmIdentifier with absent or NULL
// parameters.
func hashAlgID(in cryptobyte.String) (crypto.Hash, bool) {
	oid, params, hasParams, ok := readAlgID(in, true)
	if !ok || (hasParams && (params.tag != cbasn1.NULL || len(params.body) != 0)) {
		return 0, false
	}
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1, true
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

var (
	tagPSSHash    = cbasn1.Tag(0).Constructed().ContextSpecific()
	tagPSSMGF     = cbasn1.Tag(1).Constructed().ContextSpecific()
	tagPSSSalt    = cbasn1.Tag(2).Constructed().ContextSpecific()
	tagPSSTrailer = cbasn1.Tag(3).Constructed().ContextSpecific()
)

// parsePSSParams reads RSASSA-PSS-params (RFC 4055 §3.1). Go's crypto/rsa
// uses MGF1 with the signature's hash and the trailer 0xBC, so other
// combinations are refused; so is SHA-1.
func parsePSSParams(p cryptobyte.String) (scheme, error) {
	h, mgfHash, salt := crypto.SHA1, crypto.SHA1, int64(20) // RFC 4055 defaults
	var field cryptobyte.String
	var present bool
	if !p.ReadOptionalASN1(&field, &present, tagPSSHash) {
		return scheme{}, errAlgID
	}
	if present {
		var ok bool
		if h, ok = hashAlgID(field); !ok {
			return scheme{}, fmt.Errorf("%w: PSS hash", ErrUnsupportedAlgorithm)
		}
	}
	if !p.ReadOptionalASN1(&field, &present, tagPSSMGF) {
		return scheme{}, errAlgID
	}
	if present {
		oid, params, hasParams, ok := readAlgID(field, true)
		if !ok || !hasParams || !oid.Equal(oidMGF1) || params.tag != cbasn1.SEQUENCE {
			return scheme{}, fmt.Errorf("%w: PSS mask generation function", ErrUnsupportedAlgorithm)
		}
		if mgfHash, ok = hashAlgID(params.full); !ok {
			return scheme{}, fmt.Errorf("%w: PSS MGF1 hash", ErrUnsupportedAlgorithm)
		}
	}
	if !p.ReadOptionalASN1(&field, &present, tagPSSSalt) {
		return scheme{}, errAlgID
	}
	if present && (!field.ReadASN1Int64WithTag(&salt, cbasn1.INTEGER) || !field.Empty()) {
		return scheme{}, errAlgID
	}
	if !p.ReadOptionalASN1(&field, &present, tagPSSTrailer) {
		return scheme{}, errAlgID
	}
	if present {
		var trailer int64
		if !field.ReadASN1Int64WithTag(&trailer, cbasn1.INTEGER) || !field.Empty() {
			return scheme{}, errAlgID
		}
		if trailer != 1 {
			return scheme{}, fmt.Errorf("%w: PSS trailer field %d", ErrUnsupportedAlgorithm, trailer)
		}
	}
	if !p.Empty() {
		return scheme{}, errAlgID
	}
	if h == crypto.SHA1 || mgfHash != h {
		return scheme{}, fmt.Errorf("%w: PSS with hash %v and MGF1 hash %v", ErrUnsupportedAlgorithm, h, mgfHash)
	}
	if salt < 0 || salt > 1024 {
		return scheme{}, fmt.Errorf("%w: PSS salt length %d", ErrUnsupportedAlgorithm, salt)
	}
	return scheme{key: keyRSA, hash: h, pss: true, salt: int(salt)}, nil
}
