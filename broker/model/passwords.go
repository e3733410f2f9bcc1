package model

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PasswordCost are the argon2id parameters of new password hashes. Stored
// hashes carry their own parameters, so changing them affects new
// passwords only.
type PasswordCost struct {
	Time      uint32 // passes; zero means 3
	MemoryKiB uint32 // zero means 64 MiB
	Threads   uint8  // zero means 2
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c PasswordCost) WithDefaults() PasswordCost {
	if c.Time == 0 {
		c.Time = 3
	}
	if c.MemoryKiB == 0 {
		c.MemoryKiB = 64 * 1024
	}
	if c.Threads == 0 {
		c.Threads = 2
	}
	return c
}

// HashPassword returns the PHC string of an argon2id hash,
// $argon2id$v=19$m=65536,t=3,p=2$salt$hash, as the store keeps it and as a
// declarative configuration may give it (so that no password is written
// down in the clear).
func HashPassword(password string, cost PasswordCost) (string, error) {
	cost = cost.WithDefaults()
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("model: password salt: %w", err)
	}
	sum := argon2.IDKey([]byte(password), salt, cost.Time, cost.MemoryKiB, cost.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, cost.MemoryKiB, cost.Time, cost.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

// ErrBadHash is returned for a stored hash CheckPassword cannot read.
var ErrBadHash = errors.New("model: unreadable password hash")

// CheckPassword reports whether password matches the PHC string phc (from
// HashPassword), comparing in constant time. Parameters beyond what
// HashPassword would ever write are refused (ErrBadHash), so that a
// tampered hash cannot make a login take unbounded memory or time.
func CheckPassword(phc, password string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" {
		return false, ErrBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 100 {
		return false, ErrBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) < 16 {
		return false, ErrBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// MinPasswordLength is the shortest new password (and backup passphrase)
// the domain steps accept.
const MinPasswordLength = 12

// CheckNewPassword refuses (ErrInvalid) a new password shorter than
// MinPasswordLength.
func CheckNewPassword(p string) error {
	if len(p) < MinPasswordLength {
		return fmt.Errorf("%w: a password needs at least %d characters", ErrInvalid, MinPasswordLength)
	}
	return nil
}
