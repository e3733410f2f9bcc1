package license

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
)

const testInstallation = "3f1c9a0e5b7d42c68e1f0a2b4c6d8e90"

// testKey returns a deterministic Ed25519 key.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// testLicense returns a valid license with every field set.
func testLicense() License {
	return License{
		Number:       "RG-2026-000123",
		Product:      "remotegate",
		Edition:      "standard",
		Participants: 64,
		Issued:       day(2026, 11, 23),
		Expires:      day(2027, 11, 23),
		Installation: testInstallation,
	}
}

// pack returns an unbound license without expiry.
func pack(number string, participants int) License {
	return License{Number: number, Product: "remotegate", Edition: "standard", Participants: participants, Issued: day(2026, 11, 23)}
}

func mustIssue(t testing.TB, priv ed25519.PrivateKey, l License) []byte {
	t.Helper()
	f, err := Issue(priv, l)
	if err != nil {
		t.Fatalf("Issue(%+v): %v", l, err)
	}
	return f
}

func verifier(keys ...ed25519.PrivateKey) *Verifier {
	v := &Verifier{Product: "remotegate"}
	for _, k := range keys {
		v.Keys = append(v.Keys, pubOf(k))
	}
	return v
}

// editLines returns file with its lines changed by edit.
func editLines(file []byte, edit func(lines []string) []string) []byte {
	lines := strings.Split(strings.TrimSuffix(string(file), "\n"), "\n")
	return []byte(strings.Join(edit(lines), "\n") + "\n")
}
