package datachannel

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/remotegate/remotegate/internal/replay"
	"golang.org/x/crypto/chacha20poly1305"
)

// Errors of Seal and Open. Per-packet errors are meant to be counted by the
// caller, not logged.
var (
	ErrShort        = errors.New("datachannel: packet too short")
	ErrAuth         = errors.New("datachannel: packet authentication failed")
	ErrReplay       = errors.New("datachannel: replayed or too old packet id")
	ErrKeyID        = errors.New("datachannel: packet for another key id")
	ErrOpcode       = errors.New("datachannel: not a data packet")
	ErrBuffer       = errors.New("datachannel: not enough headroom or tailroom in the buffer")
	ErrKeyExhausted = errors.New("datachannel: packet ids exhausted; renegotiate")
)

// NoPeerID is the peer id meaning "none": packets are sent as P_DATA_V1.
const NoPeerID = 0xFFFFFF

const (
	opDataV1 = 6
	opDataV2 = 9
	tagLen   = 16
	// headerV2 is opcode+peer-id (4) and packet id (4).
	headerV2 = 8
	headerV1 = 5
	// exhausted is where AEAD senders stop, as OpenVPN does, to force a
	// renegotiation before the 32-bit packet id could wrap.
	exhausted = 0xFF000000
)

// SealHeadroom and SealTailroom are the bytes Seal needs before and after the
// plaintext: the largest header (P_DATA_V2 with CBC and an HMAC-SHA512 tag,
// IV and packet id) and the AEAD tag or CBC padding.
const (
	SealHeadroom = 4 + 64 + 16 + 4
	SealTailroom = 16
)

// KeyConfig describes one key id's data-channel key.
type KeyConfig struct {
	Cipher Cipher
	// Auth is the HMAC digest for AES256CBC; 0 means SHA-1. Ignored for AEAD.
	Auth crypto.Hash
	// Block is the key material; NewKey copies what it needs.
	Block *KeyBlock
	// Server selects the halves: the server sends with s2c and opens c2s.
	Server bool
	// KeyID goes into the opcode byte, 0..7.
	KeyID uint8
}

// Key is the data-channel state of one key id. Seal is safe for concurrent
// use; Open is not (one receiving goroutine per key).
type Key struct {
	cipher Cipher
	keyID  uint8

	seal   cipher.AEAD
	sealIV [8]byte
	open   cipher.AEAD
	openIV [8]byte
	// openNonce is Open's scratch; Open is single-goroutine.
	openNonce [12]byte

	// legacy CBC
	sealBlock, openBlock cipher.Block
	sealMAC, openMAC     hash.Hash
	macLen               int
	sealMu               sync.Mutex

	counter atomic.Uint32 // last packet id sent
	window  replay.Window
}

// NewKey builds the key for one key id.
func NewKey(cfg KeyConfig) (*Key, error) {
	if cfg.Block == nil {
		return nil, errors.New("datachannel: nil key block")
	}
	if cfg.KeyID > 7 {
		return nil, fmt.Errorf("datachannel: key id %d out of range", cfg.KeyID)
	}
	c2s, s2c := cfg.Block[0:128], cfg.Block[128:256]
	send, recv := c2s, s2c
	if cfg.Server {
		send, recv = s2c, c2s
	}
	k := &Key{cipher: cfg.Cipher, keyID: cfg.KeyID}
	var err error
	switch {
	case cfg.Cipher.AEAD():
		if k.seal, err = newAEAD(cfg.Cipher, send[:cfg.Cipher.keyLen()]); err != nil {
			return nil, err
		}
		if k.open, err = newAEAD(cfg.Cipher, recv[:cfg.Cipher.keyLen()]); err != nil {
			return nil, err
		}
		copy(k.sealIV[:], send[64:72])
		copy(k.openIV[:], recv[64:72])
	case cfg.Cipher == AES256CBC:
		h := hashFunc(cfg.Auth)
		if h == nil {
			return nil, fmt.Errorf("datachannel: unsupported auth digest %v", cfg.Auth)
		}
		if k.sealBlock, err = aes.NewCipher(send[:32]); err != nil {
			return nil, err
		}
		if k.openBlock, err = aes.NewCipher(recv[:32]); err != nil {
			return nil, err
		}
		k.macLen = h().Size()
		k.sealMAC = hmac.New(h, send[64:64+k.macLen])
		k.openMAC = hmac.New(h, recv[64:64+k.macLen])
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnknownCipher, cfg.Cipher)
	}
	return k, nil
}

func newAEAD(c Cipher, key []byte) (cipher.AEAD, error) {
	if c == ChaCha20Poly1305 {
		return chacha20poly1305.New(key)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func hashFunc(h crypto.Hash) func() hash.Hash {
	switch h {
	case 0, crypto.SHA1:
		return sha1.New
	case crypto.SHA256:
		return sha256.New
	case crypto.SHA512:
		return sha512.New
	}
	return nil
}

// KeyID is the key id in this key's packets.
func (k *Key) KeyID() uint8 { return k.keyID }

// Cipher is the key's cipher.
func (k *Key) Cipher() Cipher { return k.cipher }

// SendCounter is the number of packets sealed so far.
func (k *Key) SendCounter() uint32 { return k.counter.Load() }

// Wipe drops the key material's references; the Key must not be used after.
// (The AEAD implementations keep their own expanded keys and cannot be
// zeroed from outside; dropping them lets the collector reclaim them.)
func (k *Key) Wipe() {
	k.sealIV, k.openIV = [8]byte{}, [8]byte{}
}

func (k *Key) nextID() (uint32, error) {
	id := k.counter.Add(1)
	if id >= exhausted && k.cipher.AEAD() {
		return 0, ErrKeyExhausted
	}
	if id == 0 {
		return 0, ErrKeyExhausted
	}
	return id, nil
}

// Seal encrypts buf[off:off+n] in place and returns the packet, a subslice of
// buf that starts before off. peerID NoPeerID gives P_DATA_V1, any other
// value P_DATA_V2 carrying it.
//
//	V2 AEAD: [0x48|kid][peer-id 3][pid 4][tag 16][ciphertext]   AAD = first 8 bytes
//	V1 AEAD: [0x30|kid][pid 4][tag 16][ciphertext]              AAD = pid
//
// The nonce is pid ‖ the 8-byte implicit IV.
func (k *Key) Seal(buf []byte, off, n int, peerID uint32) ([]byte, error) {
	if off < 0 || n < 0 || off+n+SealTailroom > cap(buf) {
		return nil, ErrBuffer
	}
	buf = buf[:cap(buf)]
	if !k.cipher.AEAD() {
		return k.sealCBC(buf, off, n, peerID)
	}
	v2 := peerID != NoPeerID
	hdr := headerV1
	if v2 {
		hdr = headerV2
	}
	start := off - hdr - tagLen
	if start < 0 {
		return nil, ErrBuffer
	}
	id, err := k.nextID()
	if err != nil {
		return nil, err
	}
	if v2 {
		binary.BigEndian.PutUint32(buf[start:], opDataV2<<27|uint32(k.keyID)<<24|peerID&0xFFFFFF)
	} else {
		buf[start] = opDataV1<<3 | k.keyID
	}
	pidAt := start + hdr - 4
	binary.BigEndian.PutUint32(buf[pidAt:], id)
	// The nonce (pid ‖ IV) is assembled in the tag slot right after the pid,
	// which the tag overwrites below: no allocation, safe for concurrent use.
	copy(buf[pidAt+4:pidAt+12], k.sealIV[:])
	nonce := buf[pidAt : pidAt+12]
	aad := buf[start : start+hdr]
	if !v2 {
		aad = buf[pidAt : pidAt+4]
	}
	sealed := k.seal.Seal(buf[off:off], nonce, buf[off:off+n], aad)
	copy(buf[off-tagLen:off], sealed[n:])
	return buf[start : off+n], nil
}

// Open authenticates and decrypts a data packet in place and returns the
// plaintext, which aliases pkt. The replay window is checked after
// authentication.
func (k *Key) Open(pkt []byte) ([]byte, error) {
	if len(pkt) < 1 {
		return nil, ErrShort
	}
	op, kid := pkt[0]>>3, pkt[0]&7
	if op != opDataV1 && op != opDataV2 {
		return nil, ErrOpcode
	}
	if kid != k.keyID {
		return nil, ErrKeyID
	}
	if !k.cipher.AEAD() {
		return k.openCBC(pkt, op == opDataV2)
	}
	hdr := headerV1
	if op == opDataV2 {
		hdr = headerV2
	}
	if len(pkt) < hdr+tagLen {
		return nil, ErrShort
	}
	pidAt := hdr - 4
	id := binary.BigEndian.Uint32(pkt[pidAt:])
	copy(k.openNonce[:4], pkt[pidAt:pidAt+4])
	copy(k.openNonce[4:], k.openIV[:])
	aad := pkt[:hdr]
	if op == opDataV1 {
		aad = pkt[pidAt:hdr]
	}
	n := len(pkt) - hdr - tagLen
	ct := hdr + tagLen
	var tag [tagLen]byte
	copy(tag[:], pkt[hdr:ct])
	var sealed []byte
	if cap(pkt)-len(pkt) >= tagLen {
		// Room after the packet: append the tag where Go's AEAD wants it.
		full := pkt[:len(pkt)+tagLen]
		copy(full[len(pkt):], tag[:])
		sealed = full[ct:]
	} else {
		// Otherwise shift the ciphertext over the tag slot.
		copy(pkt[hdr:], pkt[ct:])
		copy(pkt[hdr+n:], tag[:])
		ct = hdr
		sealed = pkt[hdr : hdr+n+tagLen]
	}
	plain, err := k.open.Open(sealed[:0], k.openNonce[:], sealed, aad)
	if err != nil {
		return nil, ErrAuth
	}
	if !k.window.Check(uint64(id)) {
		return nil, ErrReplay
	}
	return pkt[ct : ct+len(plain)], nil
}

// sealCBC: [op|kid (+peer-id)][HMAC][IV 16][AES-CBC(pid ‖ payload, PKCS#7)],
// HMAC over IV ‖ ciphertext. Legacy only; it allocates (CBC mode objects).
func (k *Key) sealCBC(buf []byte, off, n int, peerID uint32) ([]byte, error) {
	v2 := peerID != NoPeerID
	hdr := 1
	if v2 {
		hdr = 4
	}
	pad := aes.BlockSize - (n+4)%aes.BlockSize
	ptStart := off - 4
	ivAt := ptStart - aes.BlockSize
	macAt := ivAt - k.macLen
	start := macAt - hdr
	if start < 0 || off+n+pad > len(buf) {
		return nil, ErrBuffer
	}
	id, err := k.nextID()
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(buf[ptStart:], id)
	for i := 0; i < pad; i++ {
		buf[off+n+i] = byte(pad)
	}
	if _, err := rand.Read(buf[ivAt:ptStart]); err != nil {
		return nil, fmt.Errorf("datachannel: IV: %w", err)
	}
	end := off + n + pad
	cipher.NewCBCEncrypter(k.sealBlock, buf[ivAt:ptStart]).CryptBlocks(buf[ptStart:end], buf[ptStart:end])
	k.sealMu.Lock()
	k.sealMAC.Reset()
	k.sealMAC.Write(buf[ivAt:end])
	k.sealMAC.Sum(buf[macAt:macAt])
	k.sealMu.Unlock()
	if v2 {
		binary.BigEndian.PutUint32(buf[start:], opDataV2<<27|uint32(k.keyID)<<24|peerID&0xFFFFFF)
	} else {
		buf[start] = opDataV1<<3 | k.keyID
	}
	return buf[start:end], nil
}

func (k *Key) openCBC(pkt []byte, v2 bool) ([]byte, error) {
	hdr := 1
	if v2 {
		hdr = 4
	}
	body := hdr + k.macLen + aes.BlockSize
	if len(pkt) < body+aes.BlockSize || (len(pkt)-body)%aes.BlockSize != 0 {
		return nil, ErrShort
	}
	k.openMAC.Reset()
	k.openMAC.Write(pkt[hdr+k.macLen:])
	var sum [64]byte
	mac := k.openMAC.Sum(sum[:0])
	if subtle.ConstantTimeCompare(mac, pkt[hdr:hdr+k.macLen]) != 1 {
		return nil, ErrAuth
	}
	iv := pkt[hdr+k.macLen : body]
	ct := pkt[body:]
	cipher.NewCBCDecrypter(k.openBlock, iv).CryptBlocks(ct, ct)
	pad := int(ct[len(ct)-1])
	if pad == 0 || pad > aes.BlockSize || pad > len(ct)-4 {
		return nil, ErrAuth
	}
	id := binary.BigEndian.Uint32(ct)
	if !k.window.Check(uint64(id)) {
		return nil, ErrReplay
	}
	return ct[4 : len(ct)-pad], nil
}
