package license_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/remotegate/remotegate/license"
)

// vendorKey is a fixed key so that the examples' output is reproducible.
// A real vendor key comes from license.GenerateVendorKey and stays on the
// vendor's signing machine.
var vendorKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func licenseFile(number string, participants int, expires time.Time) []byte {
	file, err := license.Issue(vendorKey, license.License{
		Number:       number,
		Product:      "remotegate",
		Edition:      "standard",
		Participants: participants,
		Issued:       time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		Expires:      expires,
	})
	if err != nil {
		log.Fatal(err)
	}
	return file
}

func ExampleIssue() {
	file, err := license.Issue(vendorKey, license.License{
		Number:       "RG-2026-000123",
		Product:      "remotegate",
		Edition:      "standard",
		Participants: 64,
		Issued:       time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		Expires:      time.Date(2027, 11, 23, 0, 0, 0, 0, time.UTC),
		Installation: "3f1c9a0e5b7d42c68e1f0a2b4c6d8e90",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", file)
	// Output:
	// -----BEGIN REMOTEGATE LICENSE-----
	// number: RG-2026-000123
	// product: remotegate
	// edition: standard
	// participants: 64
	// issued: 2026-11-23
	// expires: 2027-11-23
	// installation: 3f1c9a0e5b7d42c68e1f0a2b4c6d8e90
	// key: fe812c12
	// signature: gj/dLIFNDXHNPmUSPV6I3w5Law2BIltN/f6d3OVdJw2r26mhsc6Tg/SfKe19ziFkbhvS/wicpuwIH/T3JpyMBg==
	// -----END REMOTEGATE LICENSE-----
}

func ExampleVerifier_Verify() {
	file := licenseFile("RG-1", 256, time.Time{})

	// The embedding product ships the vendor public keys it trusts; during
	// a key rotation, the old and the new one.
	_, oldKey, _ := license.GenerateVendorKey(nil)
	v := &license.Verifier{
		Product: "remotegate",
		Keys:    []ed25519.PublicKey{oldKey.Public().(ed25519.PublicKey), vendorKey.Public().(ed25519.PublicKey)},
	}
	l, err := v.Verify(file)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Number, l.Product, l.Edition, l.Participants, l.Issued.Format(time.DateOnly), l.Expires.IsZero(), l.KeyID)

	tampered := bytes.Replace(file, []byte("participants: 256"), []byte("participants: 999"), 1)
	_, err = v.Verify(tampered)
	fmt.Println(errors.Is(err, license.ErrSignature), err)

	tampered = bytes.Replace(file, []byte("participants: 256"), []byte("participants: 0x40"), 1)
	_, err = v.Verify(tampered)
	fmt.Println(errors.Is(err, license.ErrFormat), err)
	// Output:
	// RG-1 remotegate standard 256 2026-11-23 true fe812c12
	// true license: signature does not verify (license RG-1, key fe812c12)
	// true license: line 5: participants "0x40": must be a decimal number from 1 to 1000000 without leading zeros
}

func ExampleState() {
	v := &license.Verifier{Product: "remotegate", Keys: []ed25519.PublicKey{vendorKey.Public().(ed25519.PublicKey)}}
	s := license.NewState(v, "3f1c9a0e5b7d42c68e1f0a2b4c6d8e90", 14*24*time.Hour)
	now := time.Date(2027, 1, 10, 12, 0, 0, 0, time.UTC)
	fmt.Println(s.Capacity(now))

	expires := time.Date(2027, 11, 23, 0, 0, 0, 0, time.UTC)
	for _, file := range [][]byte{
		licenseFile("RG-1", 64, expires),
		licenseFile("RG-2", 256, time.Time{}),
		licenseFile("RG-3", 1024, time.Time{}),
	} {
		if _, err := s.Activate(file, now); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(s.Capacity(now))
	fmt.Println(s.Capacity(expires.Add(24 * time.Hour)))
	fmt.Println(s.Capacity(expires.Add(14 * 24 * time.Hour)))
	for _, e := range s.EventsBetween(now, expires.Add(30*24*time.Hour)) {
		fmt.Println(e.At.Format(time.DateOnly), e.Number, e.Kind)
	}
	// Output:
	// 4 participants: base 4
	// 1348 participants: base 4 + RG-1 (+64) + RG-2 (+256) + RG-3 (+1024)
	// 1348 participants: base 4 + RG-1 (+64, expired 2027-11-23, in grace) + RG-2 (+256) + RG-3 (+1024)
	// 1284 participants: base 4 + RG-2 (+256) + RG-3 (+1024); not counting: RG-1 (+64)
	// 2027-11-23 RG-1 expired-grace
	// 2027-12-07 RG-1 lapsed
}

func ExampleState_Release() {
	v := &license.Verifier{Product: "remotegate", Keys: []ed25519.PublicKey{vendorKey.Public().(ed25519.PublicKey)}}
	s := license.NewState(v, "3f1c9a0e5b7d42c68e1f0a2b4c6d8e90", 0)
	now := time.Date(2027, 3, 1, 9, 30, 0, 0, time.UTC)
	file := licenseFile("RG-1", 64, time.Time{})
	if _, err := s.Activate(file, now); err != nil {
		log.Fatal(err)
	}

	// The installation keeps its own key pair for release statements.
	_, installationKey, _ := ed25519.GenerateKey(nil)
	statement, err := s.Release("RG-1", installationKey, now)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Capacity(now))
	_, err = s.Activate(file, now)
	fmt.Println(err)

	// The vendor portal verifies the statement.
	r, err := license.VerifyRelease(statement)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Number, r.Installation, r.Released.Format(time.RFC3339))
	// Output:
	// 4 participants: base 4
	// license: released on this installation: license RG-1 was released at 2027-03-01T09:30:00Z
	// RG-1 3f1c9a0e5b7d42c68e1f0a2b4c6d8e90 2027-03-01T09:30:00Z
}
