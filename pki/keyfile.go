package pki

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// Sentinel errors for private key files. The errors returned by
// ParsePrivateKeyPEM, LoadKeyFile and MarshalPrivateKeyPEM wrap them.
var (
	// ErrNoPrivateKey means the input holds no PEM block with a private key.
	ErrNoPrivateKey = errors.New("pki: no private key found in PEM data")
	// ErrMultiplePrivateKeys means the input holds more than one private key
	// block; refusing is safer than guessing which key the operator meant.
	ErrMultiplePrivateKeys = errors.New("pki: more than one private key in PEM data")
	// ErrMalformedKey means a key block could not be decoded.
	ErrMalformedKey = errors.New("pki: malformed private key")
	// ErrPasswordRequired means the key is encrypted and no password was given.
	ErrPasswordRequired = errors.New("pki: private key is encrypted and no password was given")
	// ErrWrongPassword means decryption failed, which for CBC with PKCS#7
	// padding almost always means the password is wrong.
	ErrWrongPassword = errors.New("pki: wrong password for encrypted private key")
	// ErrLegacyEncryption is returned for encryption schemes this package
	// refuses on purpose: OpenSSL's traditional "Proc-Type: 4,ENCRYPTED" PEM
	// (an MD5-based, unsalted-iteration KDF) and PKCS#5 v1.5 / PKCS#12 PBES1
	// (DES, RC2, 3DES with MD5/SHA-1). Convert such keys with
	// "openssl pkcs8 -topk8 -v2 aes-256-cbc".
	ErrLegacyEncryption = errors.New("pki: legacy private key encryption is not supported; convert with 'openssl pkcs8 -topk8 -v2 aes-256-cbc'")
	// ErrUnsupportedEncryption is returned for PBES2 parameters outside
	// PBKDF2 with HMAC-SHA-1/SHA-2 and AES-CBC (for example scrypt).
	ErrUnsupportedEncryption = errors.New("pki: unsupported private key encryption")
)

// PEM block types this package reads and writes.
const (
	pemTypePKCS1          = "RSA PRIVATE KEY"
	pemTypeSEC1           = "EC PRIVATE KEY"
	pemTypePKCS8          = "PRIVATE KEY"
	pemTypeEncryptedPKCS8 = "ENCRYPTED PRIVATE KEY"
)

// PBKDF2IterationCount is the PBKDF2-HMAC-SHA256 iteration count
// MarshalPrivateKeyPEM uses. 600,000 is OWASP's 2023 recommendation for
// PBKDF2-HMAC-SHA256; it costs roughly a quarter of a second per encryption
// or decryption, which is paid once per process start for a key file.
const PBKDF2IterationCount = 600_000

// maxPBKDF2Iterations bounds the work an untrusted key file can demand, so
// that a crafted file cannot stall a process for hours. It is a variable
// only so that the fuzz target can lower it.
var maxPBKDF2Iterations = 10_000_000

// maxKeyFileSize bounds how much LoadKeyFile reads; real key files are a few
// kilobytes, and the limit keeps a wrong path (a log, a device) harmless.
const maxKeyFileSize = 1 << 20

// Object identifiers of PKCS#5 v2.1 (RFC 8018) and NIST AES.
var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	// PBES1 schemes: pbeWithMD2AndDES-CBC ... pbeWithSHA1AndRC2-CBC live
	// under 1.2.840.113549.1.5, the PKCS#12 ones under 1.2.840.113549.1.12.1.
	oidPKCS5Prefix  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5}
	oidPKCS12PBEArc = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
)

// encryptedPrivateKeyInfo is the PKCS#8 EncryptedPrivateKeyInfo (RFC 5958).
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

// pbes2Params is PBES2-params of RFC 8018 appendix A.4.
type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

// pbkdf2Params is PBKDF2-params of RFC 8018 appendix A.2. Only the
// "specified" (OCTET STRING) salt choice is supported; it is the only one
// any tool writes.
type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// ParsePrivateKeyPEM parses a PEM-encoded private key and returns it as a
// crypto.Signer (*rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey).
//
// Accepted blocks are "RSA PRIVATE KEY" (PKCS#1), "EC PRIVATE KEY" (SEC1),
// "PRIVATE KEY" (PKCS#8) and "ENCRYPTED PRIVATE KEY" (PKCS#8 with PBES2:
// PBKDF2 with HMAC-SHA-1/224/256/384/512 and AES-128/192/256-CBC, as written
// by "openssl pkcs8 -topk8 -v2 aes-256-cbc" and "openssl genpkey -aes256").
// Other blocks, such as "EC PARAMETERS" written by "openssl ecparam -genkey"
// or certificates in a combined file, are skipped. Exactly one private key
// block must be present.
//
// password is used only for encrypted PKCS#8 and may be nil otherwise; the
// function does not retain it. Legacy encryption (OpenSSL "Proc-Type:
// 4,ENCRYPTED" headers, PBES1) is refused with ErrLegacyEncryption.
func ParsePrivateKeyPEM(pemBytes, password []byte) (crypto.Signer, error) {
	block, err := findPrivateKeyBlock(pemBytes)
	if err != nil {
		return nil, err
	}
	// The decoded DER is a private copy holding the key; the parsers copy
	// what they keep, so wipe it rather than leave it to the GC.
	defer clear(block.Bytes)
	if _, ok := block.Headers["Proc-Type"]; ok {
		// x509.DecryptPEMBlock is deprecated for good reason: its KDF is a
		// single MD5 pass and it cannot detect a wrong password reliably.
		return nil, fmt.Errorf("%w (PEM block %q has a Proc-Type header)", ErrLegacyEncryption, block.Type)
	}

	switch block.Type {
	case pemTypePKCS1:
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#1: %w", ErrMalformedKey, err)
		}
		return k, nil
	case pemTypeSEC1:
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: SEC1: %w", ErrMalformedKey, err)
		}
		return k, nil
	case pemTypePKCS8:
		return parsePKCS8Signer(block.Bytes)
	case pemTypeEncryptedPKCS8:
		if len(password) == 0 {
			return nil, ErrPasswordRequired
		}
		der, err := decryptPKCS8(block.Bytes, password)
		if err != nil {
			return nil, err
		}
		defer clear(der)
		k, err := parsePKCS8Signer(der)
		if err != nil {
			// The padding check passes by chance for about 1 in 256 wrong
			// passwords; the garbage that results does not parse.
			return nil, fmt.Errorf("%w (decrypted data is not a private key: %w)", ErrWrongPassword, err)
		}
		return k, nil
	default:
		// findPrivateKeyBlock returns only the types above.
		return nil, fmt.Errorf("%w: PEM block %q", ErrUnsupportedKey, block.Type)
	}
}

// LoadKeyFile reads a PEM private key file; see ParsePrivateKeyPEM for the
// accepted formats and the role of password. Errors name the file.
func LoadKeyFile(path string, password []byte) (crypto.Signer, error) {
	data, err := readLimited(path, maxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("pki: reading key file: %w", err)
	}
	defer clear(data)
	k, err := ParsePrivateKeyPEM(data, password)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// readLimited reads at most limit bytes of a file and fails if there is more.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		clear(data)
		return nil, fmt.Errorf("%s: larger than %d bytes, not a key file", path, limit)
	}
	return data, nil
}

// MarshalPrivateKeyPEM encodes key as PKCS#8 PEM. With an empty password the
// block is "PRIVATE KEY"; otherwise it is "ENCRYPTED PRIVATE KEY" using PBES2
// with PBKDF2-HMAC-SHA256 (PBKDF2IterationCount iterations, 16-byte random
// salt) and AES-256-CBC, which "openssl pkcs8" and ParsePrivateKeyPEM read.
//
// key must be an *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey; a
// key held on a token cannot be exported and yields ErrUnsupportedKey.
func MarshalPrivateKeyPEM(key crypto.Signer, password []byte) ([]byte, error) {
	return marshalPrivateKeyPEM(key, password, PBKDF2IterationCount)
}

// marshalPrivateKeyPEM is MarshalPrivateKeyPEM with a chosen iteration count,
// so that tests and fuzz seeds need not pay for 600,000 iterations.
func marshalPrivateKeyPEM(key crypto.Signer, password []byte, iterations int) ([]byte, error) {
	if err := checkSignerKey(key); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupportedKey, err)
	}
	defer clear(der)
	if len(password) == 0 {
		return pem.EncodeToMemory(&pem.Block{Type: pemTypePKCS8, Bytes: der}), nil
	}
	enc, err := encryptPKCS8(der, password, iterations)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeEncryptedPKCS8, Bytes: enc}), nil
}

// findPrivateKeyBlock returns the single private key block of pemBytes.
func findPrivateKeyBlock(pemBytes []byte) (*pem.Block, error) {
	var found *pem.Block
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case pemTypePKCS1, pemTypeSEC1, pemTypePKCS8, pemTypeEncryptedPKCS8:
			if found != nil {
				return nil, ErrMultiplePrivateKeys
			}
			found = block
		default:
			if strings.HasSuffix(block.Type, "PRIVATE KEY") {
				// "DSA PRIVATE KEY", "OPENSSH PRIVATE KEY", ...: say so
				// rather than claiming there is no key at all.
				return nil, fmt.Errorf("%w: PEM block %q", ErrUnsupportedKey, block.Type)
			}
		}
	}
	if found == nil {
		return nil, ErrNoPrivateKey
	}
	return found, nil
}

// parsePKCS8Signer parses unencrypted PKCS#8 DER and insists on a signing key.
func parsePKCS8Signer(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS#8: %w", ErrMalformedKey, err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		// X25519 (*ecdh.PrivateKey) parses but cannot sign.
		return nil, fmt.Errorf("%w: PKCS#8 key of type %T cannot sign", ErrUnsupportedKey, k)
	}
}

// prfByOID maps a PBKDF2 PRF to its hash.
func prfByOID(oid asn1.ObjectIdentifier) (func() hash.Hash, bool) {
	switch {
	case oid.Equal(oidHMACWithSHA1):
		return sha1.New, true
	case oid.Equal(oidHMACWithSHA224):
		return sha256.New224, true
	case oid.Equal(oidHMACWithSHA256):
		return sha256.New, true
	case oid.Equal(oidHMACWithSHA384):
		return sha512.New384, true
	case oid.Equal(oidHMACWithSHA512):
		return sha512.New, true
	}
	return nil, false
}

// aesKeySizeByOID maps an AES-CBC encryption scheme to its key length.
func aesKeySizeByOID(oid asn1.ObjectIdentifier) (int, bool) {
	switch {
	case oid.Equal(oidAES128CBC):
		return 16, true
	case oid.Equal(oidAES192CBC):
		return 24, true
	case oid.Equal(oidAES256CBC):
		return 32, true
	}
	return 0, false
}

// hasPrefix reports whether oid lies under prefix.
func hasPrefix(oid, prefix asn1.ObjectIdentifier) bool {
	return len(oid) > len(prefix) && oid[:len(prefix)].Equal(prefix)
}

// unmarshalExact is asn1.Unmarshal that also refuses trailing bytes, so that
// two different encodings never parse to the same key.
func unmarshalExact(der []byte, v any, what string) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMalformedKey, what, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformedKey, what, len(rest))
	}
	return nil
}

// decryptPKCS8 decrypts an EncryptedPrivateKeyInfo and returns the PKCS#8
// PrivateKeyInfo DER inside it. The caller should clear the result.
func decryptPKCS8(der, password []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if err := unmarshalExact(der, &info, "EncryptedPrivateKeyInfo"); err != nil {
		return nil, err
	}
	alg := info.Algorithm.Algorithm
	if !alg.Equal(oidPBES2) {
		if hasPrefix(alg, oidPKCS5Prefix) || hasPrefix(alg, oidPKCS12PBEArc) {
			return nil, fmt.Errorf("%w (PBES1 scheme %v)", ErrLegacyEncryption, alg)
		}
		return nil, fmt.Errorf("%w: scheme %v", ErrUnsupportedEncryption, alg)
	}
	var params pbes2Params
	if err := unmarshalExact(info.Algorithm.Parameters.FullBytes, &params, "PBES2 parameters"); err != nil {
		return nil, err
	}

	kdf := params.KeyDerivationFunc
	if !kdf.Algorithm.Equal(oidPBKDF2) {
		if kdf.Algorithm.Equal(oidScrypt) {
			return nil, fmt.Errorf("%w: scrypt key derivation (use PBKDF2: openssl pkcs8 -topk8 -v2 aes-256-cbc)", ErrUnsupportedEncryption)
		}
		return nil, fmt.Errorf("%w: key derivation %v", ErrUnsupportedEncryption, kdf.Algorithm)
	}
	var kp pbkdf2Params
	if err := unmarshalExact(kdf.Parameters.FullBytes, &kp, "PBKDF2 parameters"); err != nil {
		return nil, err
	}
	if kp.IterationCount < 1 || kp.IterationCount > maxPBKDF2Iterations {
		return nil, fmt.Errorf("%w: PBKDF2 iteration count %d outside 1..%d", ErrUnsupportedEncryption, kp.IterationCount, maxPBKDF2Iterations)
	}
	prf := sha1.New // RFC 8018: the PRF defaults to hmacWithSHA1.
	if len(kp.PRF.Algorithm) != 0 {
		var ok bool
		if prf, ok = prfByOID(kp.PRF.Algorithm); !ok {
			return nil, fmt.Errorf("%w: PBKDF2 PRF %v", ErrUnsupportedEncryption, kp.PRF.Algorithm)
		}
	}

	enc := params.EncryptionScheme
	keySize, ok := aesKeySizeByOID(enc.Algorithm)
	if !ok {
		return nil, fmt.Errorf("%w: cipher %v (only AES-CBC is supported)", ErrUnsupportedEncryption, enc.Algorithm)
	}
	if kp.KeyLength != 0 && kp.KeyLength != keySize {
		return nil, fmt.Errorf("%w: PBKDF2 key length %d does not match the cipher's %d", ErrMalformedKey, kp.KeyLength, keySize)
	}
	var iv []byte
	if err := unmarshalExact(enc.Parameters.FullBytes, &iv, "AES-CBC IV"); err != nil {
		return nil, err
	}
	if len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("%w: AES-CBC IV of %d bytes", ErrMalformedKey, len(iv))
	}
	ct := info.EncryptedData
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: ciphertext length %d is not a positive multiple of the AES block size", ErrMalformedKey, len(ct))
	}

	key, err := pbkdf2.Key(prf, string(password), kp.Salt, kp.IterationCount, keySize)
	if err != nil {
		return nil, fmt.Errorf("pki: PBKDF2: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("pki: AES: %w", err)
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ct)
	unpadded, ok := unpadPKCS7(plain)
	if !ok {
		clear(plain)
		return nil, ErrWrongPassword
	}
	return unpadded, nil
}

// unpadPKCS7 strips PKCS#7 padding, reporting whether it was well formed.
func unpadPKCS7(b []byte) ([]byte, bool) {
	if len(b) == 0 {
		return nil, false
	}
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize || n > len(b) {
		return nil, false
	}
	pad := bytes.Repeat([]byte{byte(n)}, n)
	if subtle.ConstantTimeCompare(b[len(b)-n:], pad) != 1 {
		return nil, false
	}
	return b[:len(b)-n], true
}

// encryptPKCS8 wraps PKCS#8 DER in an EncryptedPrivateKeyInfo using PBES2
// (PBKDF2-HMAC-SHA256, AES-256-CBC).
func encryptPKCS8(der, password []byte, iterations int) ([]byte, error) {
	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("pki: reading random salt: %w", err)
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("pki: reading random IV: %w", err)
	}
	const keySize = 32
	key, err := pbkdf2.Key(sha256.New, string(password), salt, iterations, keySize)
	if err != nil {
		return nil, fmt.Errorf("pki: PBKDF2: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("pki: AES: %w", err)
	}
	padLen := aes.BlockSize - len(der)%aes.BlockSize
	plain := make([]byte, len(der)+padLen)
	copy(plain, der)
	for i := len(der); i < len(plain); i++ {
		plain[i] = byte(padLen)
	}
	defer clear(plain)
	ct := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, plain)

	kdfParams, err := asn1.Marshal(pbkdf2Params{
		Salt:           salt,
		IterationCount: iterations,
		PRF:            pkix.AlgorithmIdentifier{Algorithm: oidHMACWithSHA256, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		return nil, fmt.Errorf("pki: encoding PBKDF2 parameters: %w", err)
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding IV: %w", err)
	}
	pbes2, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdfParams}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, fmt.Errorf("pki: encoding PBES2 parameters: %w", err)
	}
	out, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: pbes2}},
		EncryptedData: ct,
	})
	if err != nil {
		return nil, fmt.Errorf("pki: encoding EncryptedPrivateKeyInfo: %w", err)
	}
	return out, nil
}
