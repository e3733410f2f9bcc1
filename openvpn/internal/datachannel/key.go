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

// Errors of NewKey, Seal and Open. Per-packet errors are meant to be counted
// by the caller, not logged: anyone can send garbage to a UDP port.
var (
	ErrShort        = errors.New("datachannel: packet too short")
	ErrAuth         = errors.New("datachannel: packet authentication failed")
	ErrReplay       = errors.New("datachannel: replayed or too old packet id")
	ErrKeyID        = errors.New("datachannel: packet for another key id")
	ErrOpcode       = errors.New("datachannel: not a data packet")
	ErrBuffer       = errors.New("datachannel: not enough headroom or tailroom in the buffer")
	ErrKeyExhausted = errors.New("datachannel: packet ids exhausted; renegotiate")
	ErrWiped        = errors.New("datachannel: key has been wiped")
	ErrKeyConfig    = errors.New("datachannel: invalid key configuration")
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
	// exhausted is the last packet id a sender uses. OpenVPN renegotiates
	// well before the 32-bit id wraps; an AEAD nonce must never repeat, so
	// this package refuses to go further even if the caller does not.
	exhausted = 0xFF000000
)

// SealHeadroom and SealTailroom are the bytes Seal needs before and after the
// plaintext in the worst case over all ciphers: in front, the largest header
// (P_DATA_V2 with CBC: opcode+peer-id 4, HMAC-SHA512 64, IV 16, packet id 4;
// AEAD needs only 8+16); behind, the AEAD tag, which Go's AEAD appends before
// Seal moves it to the front, or the CBC padding.
const (
	SealHeadroom = 4 + 64 + aes.BlockSize + 4
	SealTailroom = 16
)

// KeyConfig describes one key id's data-channel key.
type KeyConfig struct {
	Cipher Cipher
	// Auth is the HMAC digest for AES256CBC: 0 (meaning SHA-1), crypto.SHA1,
	// crypto.SHA256 or crypto.SHA512. Ignored for AEAD ciphers.
	Auth crypto.Hash
	// Block is the key material; NewKey copies what it needs, so the caller
	// may Wipe the block afterwards.
	Block *KeyBlock
	// Server selects the halves: the server sends with s2c and opens c2s,
	// the client the reverse.
	Server bool
	// KeyID goes into the opcode byte, 0..7.
	KeyID uint8
}

// Key is the data-channel state of one key id: our sealing key, implicit IV
// and send counter, and the peer's opening key, implicit IV and replay
// window. Seal is safe for concurrent use; Open is not (one receiving
// goroutine per key). Wipe may be called from any goroutine at any time.
type Key struct {
	cipher Cipher
	keyID  uint8

	// st is nil once the key is wiped; Seal and Open load it once per
	// packet, so Wipe never races with a packet in flight.
	st atomic.Pointer[keyState]

	// openNonce is Open's scratch; Open is single-goroutine.
	openNonce [12]byte

	counter atomic.Uint32 // last packet id sent
	window  replay.Window
}

// keyState holds the key material, separately from the counters so that
// Wipe can drop it atomically.
type keyState struct {
	seal   cipher.AEAD
	sealIV [8]byte
	open   cipher.AEAD
	openIV [8]byte

	// legacy CBC: the block modes are reused (SetIV) to avoid allocating per
	// packet; sealMu serialises the sealing mode and HMAC between
	// concurrent Seal calls.
	sealMu         sync.Mutex
	sealBlock      cipher.Block
	openBlock      cipher.Block
	sealCBC        ivBlockMode
	openCBC        ivBlockMode
	sealMAC        hash.Hash
	openMAC        hash.Hash
	macLen         int
	sealMACScratch [64]byte
	openMACScratch [64]byte
}

// ivBlockMode is implemented by the standard library's CBC modes; reusing
// one per direction avoids an allocation per packet.
type ivBlockMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

// NewKey builds the key for one key id.
func NewKey(cfg KeyConfig) (*Key, error) {
	if cfg.Block == nil {
		return nil, fmt.Errorf("%w: nil key block", ErrKeyConfig)
	}
	if cfg.KeyID > 7 {
		return nil, fmt.Errorf("%w: key id %d out of range", ErrKeyConfig, cfg.KeyID)
	}
	c2s, s2c := cfg.Block[0:128], cfg.Block[128:256]
	send, recv := c2s, s2c
	if cfg.Server {
		send, recv = s2c, c2s
	}
	st := new(keyState)
	var err error
	switch {
	case cfg.Cipher.AEAD():
		if st.seal, err = newAEAD(cfg.Cipher, send[:cfg.Cipher.keyLen()]); err != nil {
			return nil, err
		}
		if st.open, err = newAEAD(cfg.Cipher, recv[:cfg.Cipher.keyLen()]); err != nil {
			return nil, err
		}
		// The implicit IV lives in the HMAC slot, which AEAD does not
		// otherwise use.
		copy(st.sealIV[:], send[64:72])
		copy(st.openIV[:], recv[64:72])
	case cfg.Cipher == AES256CBC:
		h := hashFunc(cfg.Auth)
		if h == nil {
			return nil, fmt.Errorf("%w: unsupported auth digest %v", ErrKeyConfig, cfg.Auth)
		}
		if st.sealBlock, err = aes.NewCipher(send[:32]); err != nil {
			return nil, fmt.Errorf("datachannel: %w", err)
		}
		if st.openBlock, err = aes.NewCipher(recv[:32]); err != nil {
			return nil, fmt.Errorf("datachannel: %w", err)
		}
		var zero [aes.BlockSize]byte
		st.sealCBC, _ = cipher.NewCBCEncrypter(st.sealBlock, zero[:]).(ivBlockMode)
		st.openCBC, _ = cipher.NewCBCDecrypter(st.openBlock, zero[:]).(ivBlockMode)
		st.macLen = h().Size()
		st.sealMAC = hmac.New(h, send[64:64+st.macLen])
		st.openMAC = hmac.New(h, recv[64:64+st.macLen])
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnknownCipher, cfg.Cipher)
	}
	k := &Key{cipher: cfg.Cipher, keyID: cfg.KeyID}
	k.st.Store(st)
	return k, nil
}

func newAEAD(c Cipher, key []byte) (cipher.AEAD, error) {
	if c == ChaCha20Poly1305 {
		a, err := chacha20poly1305.New(key)
		if err != nil {
			return nil, fmt.Errorf("datachannel: %w", err)
		}
		return a, nil
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("datachannel: %w", err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("datachannel: %w", err)
	}
	return a, nil
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

// SendCounter is the number of packets sealed so far, which is also the last
// packet id sent. Renegotiate well before it reaches 0xFF000000, after which
// Seal fails with ErrKeyExhausted.
func (k *Key) SendCounter() uint32 { return k.counter.Load() }

// Wipe retires the key: Seal and Open fail with ErrWiped from now on, and
// the key material becomes unreachable from k. It is safe to call
// concurrently with Seal and Open, and more than once. The expanded key
// schedules live inside the standard library's AEAD and CBC implementations,
// which offer no way to zero them; they are left to the garbage collector.
// Wipe the KeyBlock separately (KeyBlock.Wipe).
func (k *Key) Wipe() { k.st.Store(nil) }

// nextID reserves the next packet id. It never wraps: once the counter
// reaches exhausted it stays there, so a caller that ignores
// ErrKeyExhausted still cannot cause a nonce to repeat.
func (k *Key) nextID() (uint32, error) {
	for {
		cur := k.counter.Load()
		if cur >= exhausted {
			return 0, ErrKeyExhausted
		}
		if k.counter.CompareAndSwap(cur, cur+1) {
			return cur + 1, nil
		}
	}
}

// Seal encrypts buf[off:off+n] in place and returns the packet, a subslice of
// buf that starts before off. peerID NoPeerID gives P_DATA_V1, any other
// value P_DATA_V2 carrying its low 24 bits.
//
//	V2 AEAD: [0x48|kid][peer-id 3][pid 4][tag 16][ciphertext]   AAD = first 8 bytes
//	V1 AEAD: [0x30|kid][pid 4][tag 16][ciphertext]              AAD = pid
//	CBC:     [op|kid (+peer-id 3)][HMAC][IV 16][AES-CBC(pid ‖ payload, PKCS#7)]
//
// The AEAD nonce is pid ‖ the 8-byte implicit IV. Seal uses buf up to its
// capacity: it needs cap(buf) >= off+n+SealTailroom and, in front of off, the
// header of the cipher in use (at most SealHeadroom bytes; 24 for V2 AEAD),
// else it returns ErrBuffer. A negative n (from Compression.Frame without
// room) is ErrBuffer too.
func (k *Key) Seal(buf []byte, off, n int, peerID uint32) ([]byte, error) {
	if off < 0 || n < 0 || off > cap(buf) || n > cap(buf)-off || cap(buf)-off-n < SealTailroom {
		return nil, ErrBuffer
	}
	st := k.st.Load()
	if st == nil {
		return nil, ErrWiped
	}
	buf = buf[:cap(buf)]
	if !k.cipher.AEAD() {
		return k.sealCBC(st, buf, off, n, peerID)
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
	// which the tag overwrites below: no allocation, and no shared scratch,
	// so concurrent Seals do not interfere.
	copy(buf[pidAt+4:pidAt+12], st.sealIV[:])
	nonce := buf[pidAt : pidAt+12]
	aad := buf[start : start+hdr]
	if !v2 {
		aad = buf[pidAt : pidAt+4]
	}
	sealed := st.seal.Seal(buf[off:off], nonce, buf[off:off+n], aad)
	copy(buf[off-tagLen:off], sealed[n:])
	return buf[start : off+n], nil
}

// Open authenticates and decrypts a whole data packet (opcode byte included)
// in place and returns the plaintext, which aliases pkt. Both
// P_DATA_V1 and P_DATA_V2 are accepted; the opcode decides the AAD. The
// replay window is checked only after authentication, so forged packets
// cannot advance it.
//
// Open clobbers pkt, also on failure. For AEAD packets it uses up to 16 bytes
// of pkt's spare capacity (pkt[len(pkt):cap(pkt)]) as scratch when they are
// there, which leaves the plaintext at offset 24 of a P_DATA_V2 packet with
// no copying; pass pkt[:n:n] to forbid that (Open then moves the ciphertext
// over the tag instead, and the plaintext starts at offset 8).
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
	st := k.st.Load()
	if st == nil {
		return nil, ErrWiped
	}
	if !k.cipher.AEAD() {
		return k.openCBC(st, pkt, op == opDataV2)
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
	copy(k.openNonce[4:], st.openIV[:])
	aad := pkt[:hdr]
	if op == opDataV1 {
		aad = pkt[pidAt:hdr]
	}
	n := len(pkt) - hdr - tagLen
	ct := hdr + tagLen
	// Go's AEAD wants ciphertext ‖ tag; OpenVPN sends tag ‖ ciphertext.
	var tag [tagLen]byte
	copy(tag[:], pkt[hdr:ct])
	var sealed []byte
	if cap(pkt)-len(pkt) >= tagLen {
		full := pkt[:len(pkt)+tagLen]
		copy(full[len(pkt):], tag[:])
		sealed = full[ct:]
	} else {
		copy(pkt[hdr:], pkt[ct:])
		copy(pkt[hdr+n:], tag[:])
		ct = hdr
		sealed = pkt[hdr : hdr+n+tagLen]
	}
	plain, err := st.open.Open(sealed[:0], k.openNonce[:], sealed, aad)
	if err != nil {
		return nil, ErrAuth
	}
	if !k.window.Check(uint64(id)) {
		return nil, ErrReplay
	}
	return pkt[ct : ct+len(plain)], nil
}

// sealCBC: [op|kid (+peer-id)][HMAC][IV 16][AES-CBC(pid ‖ payload, PKCS#7)],
// HMAC over IV ‖ ciphertext (notes 5.2). The opcode and peer id are not
// authenticated in this legacy format.
func (k *Key) sealCBC(st *keyState, buf []byte, off, n int, peerID uint32) ([]byte, error) {
	v2 := peerID != NoPeerID
	hdr := 1
	if v2 {
		hdr = 4
	}
	pad := aes.BlockSize - (n+4)%aes.BlockSize
	ptStart := off - 4
	ivAt := ptStart - aes.BlockSize
	macAt := ivAt - st.macLen
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
	st.sealMu.Lock()
	if st.sealCBC != nil {
		st.sealCBC.SetIV(buf[ivAt:ptStart])
		st.sealCBC.CryptBlocks(buf[ptStart:end], buf[ptStart:end])
	} else {
		cipher.NewCBCEncrypter(st.sealBlock, buf[ivAt:ptStart]).CryptBlocks(buf[ptStart:end], buf[ptStart:end])
	}
	st.sealMAC.Reset()
	st.sealMAC.Write(buf[ivAt:end])
	copy(buf[macAt:ivAt], st.sealMAC.Sum(st.sealMACScratch[:0]))
	st.sealMu.Unlock()
	if v2 {
		binary.BigEndian.PutUint32(buf[start:], opDataV2<<27|uint32(k.keyID)<<24|peerID&0xFFFFFF)
	} else {
		buf[start] = opDataV1<<3 | k.keyID
	}
	return buf[start:end], nil
}

func (k *Key) openCBC(st *keyState, pkt []byte, v2 bool) ([]byte, error) {
	hdr := 1
	if v2 {
		hdr = 4
	}
	body := hdr + st.macLen + aes.BlockSize
	if len(pkt) < body+aes.BlockSize || (len(pkt)-body)%aes.BlockSize != 0 {
		return nil, ErrShort
	}
	st.openMAC.Reset()
	st.openMAC.Write(pkt[hdr+st.macLen:])
	mac := st.openMAC.Sum(st.openMACScratch[:0])
	if subtle.ConstantTimeCompare(mac, pkt[hdr:hdr+st.macLen]) != 1 {
		return nil, ErrAuth
	}
	iv := pkt[hdr+st.macLen : body]
	ct := pkt[body:]
	if st.openCBC != nil {
		st.openCBC.SetIV(iv)
		st.openCBC.CryptBlocks(ct, ct)
	} else {
		cipher.NewCBCDecrypter(st.openBlock, iv).CryptBlocks(ct, ct)
	}
	// The padding is authenticated (encrypt-then-MAC), so checking it
	// leaks nothing; a bad one means a broken peer.
	pad := int(ct[len(ct)-1])
	if pad == 0 || pad > aes.BlockSize || pad > len(ct)-4 {
		return nil, ErrAuth
	}
	for _, b := range ct[len(ct)-pad:] {
		if int(b) != pad {
			return nil, ErrAuth
		}
	}
	id := binary.BigEndian.Uint32(ct)
	if !k.window.Check(uint64(id)) {
		return nil, ErrReplay
	}
	return ct[4 : len(ct)-pad], nil
}
