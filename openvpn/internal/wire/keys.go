package wire

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"strings"
	"time"
)

// StaticKey is an "OpenVPN Static key V1": 256 bytes laid out as
// keys[0].cipher | keys[0].hmac | keys[1].cipher | keys[1].hmac, 64 each.
type StaticKey [256]byte

const (
	staticBegin = "-----BEGIN OpenVPN Static key V1-----"
	staticEnd   = "-----END OpenVPN Static key V1-----"
	v2ServerPEM = "OpenVPN tls-crypt-v2 server key"
	v2ClientPEM = "OpenVPN tls-crypt-v2 client key"
)

func (k *StaticKey) cipherKey(i int) []byte { return k[i*128 : i*128+64] }
func (k *StaticKey) hmacKey(i int) []byte   { return k[i*128+64 : i*128+128] }

// ParseStaticKey reads the text format of `openvpn --genkey secret`: hex
// between the BEGIN and END lines; comments and line lengths do not matter.
func ParseStaticKey(text []byte) (*StaticKey, error) {
	s := string(text)
	_, rest, ok := strings.Cut(s, staticBegin)
	body, _, ok2 := strings.Cut(rest, staticEnd)
	if !ok || !ok2 {
		return nil, fmt.Errorf("%w: no %q block", ErrKey, staticBegin)
	}
	var digits []byte
	for _, c := range []byte(body) {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			digits = append(digits, c)
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		default:
			return nil, fmt.Errorf("%w: unexpected character %q in static key", ErrKey, c)
		}
	}
	k := new(StaticKey)
	if len(digits) != 2*len(k) {
		return nil, fmt.Errorf("%w: static key has %d hex digits, want %d", ErrKey, len(digits), 2*len(k))
	}
	if _, err := hex.Decode(k[:], digits); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	return k, nil
}

// Marshal writes the key in the format stock openvpn writes and reads.
func (k *StaticKey) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("#\n# 2048 bit OpenVPN static key\n#\n" + staticBegin + "\n")
	for i := 0; i < len(k); i += 16 {
		b.WriteString(hex.EncodeToString(k[i:i+16]) + "\n")
	}
	b.WriteString(staticEnd + "\n")
	return b.Bytes()
}

// GenerateStaticKey returns a random key.
func GenerateStaticKey(rand io.Reader) (*StaticKey, error) {
	k := new(StaticKey)
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return nil, fmt.Errorf("wire: generate key: %w", err)
	}
	return k, nil
}

// V2ServerKey is a tls-crypt-v2 server key: Ke = bytes 0..31, Ka = 64..95.
type V2ServerKey [128]byte

// ParseV2ServerKey reads `openvpn --genkey tls-crypt-v2-server` output.
func ParseV2ServerKey(text []byte) (*V2ServerKey, error) {
	b, err := pemBlock(text, v2ServerPEM)
	if err != nil {
		return nil, err
	}
	k := new(V2ServerKey)
	if len(b) != len(k) {
		return nil, fmt.Errorf("%w: tls-crypt-v2 server key is %d bytes, want %d", ErrKey, len(b), len(k))
	}
	copy(k[:], b)
	return k, nil
}

// Marshal writes the key as stock openvpn does.
func (k *V2ServerKey) Marshal() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: v2ServerPEM, Bytes: k[:]})
}

// GenerateV2ServerKey returns a random server key.
func GenerateV2ServerKey(rand io.Reader) (*V2ServerKey, error) {
	k := new(V2ServerKey)
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return nil, fmt.Errorf("wire: generate key: %w", err)
	}
	return k, nil
}

// V2ClientKey is a tls-crypt-v2 client key: the client's tls-crypt key Kc
// and WKc, the same key wrapped by the server key.
type V2ClientKey struct {
	Key StaticKey
	WKc []byte
}

// ParseV2ClientKey reads `openvpn --genkey tls-crypt-v2-client` output.
func ParseV2ClientKey(text []byte) (*V2ClientKey, error) {
	b, err := pemBlock(text, v2ClientPEM)
	if err != nil {
		return nil, err
	}
	k := new(V2ClientKey)
	if len(b) < len(k.Key)+wkcMin || len(b) > len(k.Key)+wkcMax {
		return nil, fmt.Errorf("%w: tls-crypt-v2 client key is %d bytes", ErrKey, len(b))
	}
	copy(k.Key[:], b)
	k.WKc = append([]byte(nil), b[len(k.Key):]...)
	if int(binary.BigEndian.Uint16(k.WKc[len(k.WKc)-2:])) != len(k.WKc) {
		return nil, fmt.Errorf("%w: WKc length field does not match", ErrKey)
	}
	return k, nil
}

// Marshal writes the key as stock openvpn does.
func (k *V2ClientKey) Marshal() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: v2ClientPEM, Bytes: append(append([]byte(nil), k.Key[:]...), k.WKc...)})
}

func pemBlock(text []byte, typ string) ([]byte, error) {
	for {
		var b *pem.Block
		b, text = pem.Decode(text)
		if b == nil {
			return nil, fmt.Errorf("%w: no %q PEM block", ErrKey, typ)
		}
		if b.Type == typ {
			return b.Bytes, nil
		}
	}
}

const (
	wkcTagLen = 32
	wkcMin    = wkcTagLen + 256 + 2
	wkcMax    = 1024
)

// GenerateV2ClientKey makes a random client key and wraps it. metadata nil
// means the default: type 0x01 and the creation time as a big-endian u64.
func GenerateV2ClientKey(server *V2ServerKey, metadata []byte, now time.Time, rand io.Reader) (*V2ClientKey, error) {
	kc, err := GenerateStaticKey(rand)
	if err != nil {
		return nil, err
	}
	if metadata == nil {
		metadata = binary.BigEndian.AppendUint64([]byte{1}, uint64(now.Unix()))
	}
	wkc, err := server.WrapClientKey(kc, metadata, rand)
	if err != nil {
		return nil, err
	}
	return &V2ClientKey{Key: *kc, WKc: wkc}, nil
}

// WrapClientKey computes WKc = T ‖ AES-256-CTR(Ke, T[:16], Kc ‖ metadata) ‖ L,
// T = HMAC-SHA256(Ka, L ‖ Kc ‖ metadata), L = len(WKc) as u16.
func (k *V2ServerKey) WrapClientKey(kc *StaticKey, metadata []byte, _ io.Reader) ([]byte, error) {
	l := wkcTagLen + len(kc) + len(metadata) + 2
	if l > wkcMax {
		return nil, fmt.Errorf("%w: metadata too long (%d bytes)", ErrKey, len(metadata))
	}
	var lb [2]byte
	binary.BigEndian.PutUint16(lb[:], uint16(l))
	mac := hmac.New(sha256.New, k[64:96])
	mac.Write(lb[:])
	mac.Write(kc[:])
	mac.Write(metadata)
	tag := mac.Sum(nil)
	out := make([]byte, 0, l)
	out = append(out, tag...)
	out = append(out, kc[:]...)
	out = append(out, metadata...)
	block, err := aes.NewCipher(k[:32])
	if err != nil {
		return nil, err
	}
	cipher.NewCTR(block, tag[:16]).XORKeyStream(out[wkcTagLen:], out[wkcTagLen:])
	return append(out, lb[:]...), nil
}

// UnwrapClientKey authenticates and decrypts a WKc.
func (k *V2ServerKey) UnwrapClientKey(wkc []byte) (*StaticKey, []byte, error) {
	if len(wkc) < wkcMin || len(wkc) > wkcMax {
		return nil, nil, fmt.Errorf("%w: WKc of %d bytes", ErrKey, len(wkc))
	}
	if int(binary.BigEndian.Uint16(wkc[len(wkc)-2:])) != len(wkc) {
		return nil, nil, fmt.Errorf("%w: WKc length field does not match", ErrKey)
	}
	tag := wkc[:wkcTagLen]
	pt := make([]byte, len(wkc)-wkcTagLen-2)
	block, err := aes.NewCipher(k[:32])
	if err != nil {
		return nil, nil, err
	}
	cipher.NewCTR(block, tag[:16]).XORKeyStream(pt, wkc[wkcTagLen:len(wkc)-2])
	mac := hmac.New(sha256.New, k[64:96])
	mac.Write(wkc[len(wkc)-2:])
	mac.Write(pt)
	if !hmac.Equal(mac.Sum(nil), tag) {
		return nil, nil, fmt.Errorf("%w: WKc does not authenticate with this server key", ErrAuth)
	}
	kc := new(StaticKey)
	copy(kc[:], pt)
	return kc, pt[len(kc):], nil
}
