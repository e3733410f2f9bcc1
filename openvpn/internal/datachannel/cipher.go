package datachannel

import (
	"errors"
	"fmt"
	"strings"
)

// Cipher is a data-channel cipher.
type Cipher uint8

// The supported ciphers. AES256CBC is legacy (CBC + HMAC, P_DATA_V1 layout)
// and only used when a configuration enables it.
const (
	AES128GCM Cipher = iota + 1
	AES256GCM
	ChaCha20Poly1305
	AES256CBC
)

// ErrUnknownCipher is returned by ParseCipher.
var ErrUnknownCipher = errors.New("datachannel: unsupported cipher")

// ParseCipher accepts OpenVPN's cipher names, ignoring case.
func ParseCipher(name string) (Cipher, error) {
	switch strings.ToUpper(name) {
	case "AES-128-GCM":
		return AES128GCM, nil
	case "AES-256-GCM":
		return AES256GCM, nil
	case "CHACHA20-POLY1305":
		return ChaCha20Poly1305, nil
	case "AES-256-CBC":
		return AES256CBC, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownCipher, name)
}

// String is OpenVPN's spelling.
func (c Cipher) String() string {
	switch c {
	case AES128GCM:
		return "AES-128-GCM"
	case AES256GCM:
		return "AES-256-GCM"
	case ChaCha20Poly1305:
		return "CHACHA20-POLY1305"
	case AES256CBC:
		return "AES-256-CBC"
	}
	return fmt.Sprintf("Cipher(%d)", uint8(c))
}

// AEAD reports whether c is an AEAD cipher.
func (c Cipher) AEAD() bool { return c >= AES128GCM && c <= ChaCha20Poly1305 }

func (c Cipher) keyLen() int {
	if c == AES128GCM {
		return 16
	}
	return 32
}
