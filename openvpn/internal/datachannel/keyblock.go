package datachannel

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
)

// KeyBlock is the 256-byte data-channel key material:
// c2s cipher | c2s hmac | s2c cipher | s2c hmac, 64 bytes each.
type KeyBlock [256]byte

// Wipe zeroes the block. Call it once every Key built from it exists: NewKey
// keeps its own copies.
func (kb *KeyBlock) Wipe() { clear(kb[:]) }

// ErrKeyMaterial is returned by ExportKeyBlock and PRFKeyBlock when their
// inputs are unusable.
var ErrKeyMaterial = errors.New("datachannel: bad key material")

// exporterLabel is the RFC 5705 label OpenVPN 2.6 uses for data keys.
const exporterLabel = "EXPORTER-OpenVPN-datakeys"

// ExportKeyBlock derives the block with the TLS exporter: the label
// "EXPORTER-OpenVPN-datakeys", no context (nil, which TLS 1.2 distinguishes
// from an empty one), 256 bytes. export is usually
// tls.ConnectionState.ExportKeyingMaterial.
func ExportKeyBlock(export func(label string, context []byte, length int) ([]byte, error)) (*KeyBlock, error) {
	b, err := export(exporterLabel, nil, len(KeyBlock{}))
	if err != nil {
		return nil, fmt.Errorf("datachannel: TLS key export: %w", err)
	}
	if len(b) != len(KeyBlock{}) {
		return nil, fmt.Errorf("%w: TLS key export returned %d bytes", ErrKeyMaterial, len(b))
	}
	kb := new(KeyBlock)
	copy(kb[:], b)
	clear(b)
	return kb, nil
}

// PRFKeyBlock derives the block with OpenVPN's legacy PRF (the TLS 1.0 PRF),
// used with peers that cannot do TLS key export:
//
//	master = PRF(pre_master, "OpenVPN master secret", client.random1 ‖ server.random1)      48 bytes
//	block  = PRF(master, "OpenVPN key expansion", client.random2 ‖ server.random2 ‖ client_sid ‖ server_sid)
func PRFKeyBlock(clientPreMaster, clientRandom1, serverRandom1, clientRandom2, serverRandom2 []byte, clientSID, serverSID [8]byte) (*KeyBlock, error) {
	if len(clientPreMaster) != 48 || len(clientRandom1) != 32 || len(serverRandom1) != 32 || len(clientRandom2) != 32 || len(serverRandom2) != 32 {
		return nil, fmt.Errorf("%w: PRF inputs must be a 48-byte pre-master secret and 32-byte randoms", ErrKeyMaterial)
	}
	master := make([]byte, 48)
	tls10PRF(master, clientPreMaster, "OpenVPN master secret", concat(clientRandom1, serverRandom1))
	kb := new(KeyBlock)
	tls10PRF(kb[:], master, "OpenVPN key expansion", concat(clientRandom2, serverRandom2, clientSID[:], serverSID[:]))
	clear(master)
	return kb, nil
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// tls10PRF is the PRF of RFC 2246 section 5: P_MD5 over the first half of the
// secret XOR P_SHA1 over the second half (halves overlap by one byte when
// the length is odd).
func tls10PRF(out, secret []byte, label string, seed []byte) {
	ls := append([]byte(label), seed...)
	half := (len(secret) + 1) / 2
	s1, s2 := secret[:half], secret[len(secret)-half:]
	pHash(out, md5.New, s1, ls)
	tmp := make([]byte, len(out))
	pHash(tmp, sha1.New, s2, ls)
	for i := range out {
		out[i] ^= tmp[i]
	}
	clear(tmp)
}

func pHash(out []byte, h func() hash.Hash, secret, seed []byte) {
	mac := hmac.New(h, secret)
	mac.Write(seed)
	a := mac.Sum(nil)
	for len(out) > 0 {
		mac.Reset()
		mac.Write(a)
		mac.Write(seed)
		b := mac.Sum(nil)
		n := copy(out, b)
		out = out[n:]
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(nil)
	}
}
