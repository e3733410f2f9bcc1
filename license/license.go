package license

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Armor lines and the domain-separation prefix of license files.
const (
	// LicenseBegin is the first line of the armored license.
	LicenseBegin = "-----BEGIN REMOTEGATE LICENSE-----"
	// LicenseEnd is the last line of the armored license.
	LicenseEnd = "-----END REMOTEGATE LICENSE-----"
	// LicenseSigningPrefix is prepended to the payload lines to form the
	// message the vendor signs, so that a license signature can never be
	// taken for the signature of anything else.
	LicenseSigningPrefix = "remotegate-license-v1\n"
)

// Field indexes in licenseSpec.fields.
const (
	fNumber = iota
	fProduct
	fEdition
	fParticipants
	fIssued
	fExpires
	fInstallation
	fKey
	fSignature
	nLicenseFields
)

var licenseSpec = &blockSpec{
	what:   "license",
	begin:  LicenseBegin,
	end:    LicenseEnd,
	prefix: LicenseSigningPrefix,
	fields: []fieldSpec{
		fNumber:       {name: "number", check: checkNumber},
		fProduct:      {name: "product", check: checkName},
		fEdition:      {name: "edition", check: checkName},
		fParticipants: {name: "participants", check: checkParticipants},
		fIssued:       {name: "issued", check: checkDate},
		fExpires:      {name: "expires", optional: true, check: checkDate},
		fInstallation: {name: "installation", optional: true, check: checkInstallation},
		fKey:          {name: "key", check: checkKeyID},
		fSignature:    {name: "signature", check: checkBase64(ed25519.SignatureSize)},
	},
	other:     ReleaseBegin,
	otherWhat: "release statement",
}

// A License is the content of a license file.
type License struct {
	// Number identifies the license, e.g. "RG-2026-000123": 1 to 64
	// characters A-Z, 0-9 or -.
	Number string
	// Product is the product the license is for, e.g. "remotegate": 1 to
	// 32 characters a-z, 0-9 or -. A Verifier accepts only its product.
	Product string
	// Edition is the product edition, e.g. "standard": 1 to 32 characters
	// a-z, 0-9 or -. This package does not interpret it.
	Edition string
	// Participants is the number of participants (users plus devices) the
	// license adds to the base of BaseParticipants, 1 to MaxParticipants.
	Participants int
	// Issued is the issue date, UTC midnight.
	Issued time.Time
	// Expires is the expiry date, UTC midnight: the license counts before
	// this instant and is in its grace period from then on. The zero Time
	// means the license never expires.
	Expires time.Time
	// Installation is the installation ID the license is bound to; empty
	// means the license may be activated on any installation.
	Installation string
	// KeyID names the vendor key that signed the license (see KeyID).
	KeyID string
}

// values returns the field values of l, without the signature, formatted
// as in the file.
func (l *License) values() []string {
	v := make([]string, nLicenseFields)
	v[fNumber] = l.Number
	v[fProduct] = l.Product
	v[fEdition] = l.Edition
	v[fParticipants] = strconv.Itoa(l.Participants)
	if !l.Issued.IsZero() {
		v[fIssued] = l.Issued.UTC().Format(dateLayout)
	}
	if !l.Expires.IsZero() {
		v[fExpires] = l.Expires.UTC().Format(dateLayout)
	}
	v[fInstallation] = l.Installation
	v[fKey] = l.KeyID
	return v
}

// payload returns the payload lines of l (without the prefix), checking
// every field.
func (l *License) payload() ([]byte, error) {
	v := l.values()
	p, err := licenseSpec.payloadOf(v)
	if err != nil {
		return nil, err
	}
	if v[fExpires] != "" && v[fExpires] <= v[fIssued] {
		return nil, licenseSpec.errorf(0, "expires", v[fExpires], "must be after issued %s", v[fIssued])
	}
	return p, nil
}

// KeyID returns the key ID of a vendor public key: the first 4 bytes of the
// SHA-256 hash of the key, as 8 lowercase hex digits. A license names the
// key that signed it by its key ID.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:4])
}

// Issue signs a license with the vendor private key and returns the license
// file. It sets l.KeyID from the key (a KeyID in l is ignored), keeps only
// the UTC date of l.Issued and l.Expires, and checks every field; an
// invalid field is reported as a *FormatError. Issued is required; Expires,
// if set, must be after Issued.
func Issue(priv ed25519.PrivateKey, l License) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("license: invalid Ed25519 private key")
	}
	l.KeyID = KeyID(priv.Public().(ed25519.PublicKey))
	p, err := l.payload()
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(priv, append([]byte(LicenseSigningPrefix), p...))
	return licenseSpec.armor(p, sig), nil
}

// A Vendor issues licenses with one vendor private key.
type Vendor struct {
	key ed25519.PrivateKey
}

// NewVendor returns a Vendor that signs with priv.
func NewVendor(priv ed25519.PrivateKey) (*Vendor, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("license: invalid Ed25519 private key")
	}
	return &Vendor{key: priv}, nil
}

// PublicKey returns the vendor public key, for the embedding product's
// Verifier.
func (v *Vendor) PublicKey() ed25519.PublicKey {
	return v.key.Public().(ed25519.PublicKey)
}

// KeyID returns the key ID of the vendor key.
func (v *Vendor) KeyID() string { return KeyID(v.PublicKey()) }

// Issue signs a license like the function Issue.
func (v *Vendor) Issue(l License) ([]byte, error) { return Issue(v.key, l) }

// Parse strictly parses a license file without verifying its signature. It
// returns the license, the message the signature covers
// (LicenseSigningPrefix followed by the field lines from "number:" through
// "key:") and the signature.
//
// The file holds exactly one armored license; lines before the BEGIN line
// and after the END line are ignored. Inside the armor every line is
// "name: value" with the fields in the documented order, optional fields
// omitted rather than empty, no unknown or duplicate fields, no trailing
// whitespace and LF line ends. Errors are *FormatError values (wrapping
// ErrFormat) that name the line and the field.
func Parse(data []byte) (*License, []byte, []byte, error) {
	p, err := parseBlock(data, licenseSpec)
	if err != nil {
		return nil, nil, nil, err
	}
	v := p.values
	l := &License{
		Number:       v[fNumber],
		Product:      v[fProduct],
		Edition:      v[fEdition],
		Installation: v[fInstallation],
		KeyID:        v[fKey],
	}
	l.Participants, _ = strconv.Atoi(v[fParticipants]) // checked
	l.Issued, _ = parseDate(v[fIssued])                // checked
	if v[fExpires] != "" {
		l.Expires, _ = parseDate(v[fExpires])
		if !l.Expires.After(l.Issued) {
			return nil, nil, nil, licenseSpec.errorf(p.lines[fExpires], "expires", v[fExpires], "must be after issued %s", v[fIssued])
		}
	}
	return l, p.msg, p.sig, nil
}

// A Verifier verifies license files against the vendor public keys the
// embedding product trusts. It is safe for concurrent use as long as its
// fields are not changed.
type Verifier struct {
	// Product is the product licenses must be for; a license for another
	// product fails with ErrProduct. It must be set.
	Product string
	// Keys are the trusted vendor public keys. A license verifies when it
	// is signed by any of them, so that the vendor can rotate keys: the
	// product ships the new key next to the old one, and drops the old one
	// once no license signed by it is in use.
	Keys []ed25519.PublicKey
}

// Verify parses a license file strictly (see Parse), finds the vendor key
// by the license's key ID, verifies the signature and checks the product.
// It does not look at the expiry date or the installation; State does.
//
// Errors wrap ErrFormat, ErrUnknownKey, ErrSignature or ErrProduct.
func (v *Verifier) Verify(data []byte) (*License, error) {
	l, msg, sig, err := Parse(data)
	if err != nil {
		return nil, err
	}
	known := false
	for _, k := range v.Keys {
		if len(k) != ed25519.PublicKeySize || KeyID(k) != l.KeyID {
			continue
		}
		known = true
		if ed25519.Verify(k, msg, sig) {
			if v.Product == "" {
				return nil, fmt.Errorf("%w: the verifier has no product set", ErrProduct)
			}
			if l.Product != v.Product {
				return nil, fmt.Errorf("%w: license %s is for %q, not %q", ErrProduct, l.Number, l.Product, v.Product)
			}
			return l, nil
		}
	}
	if !known {
		return nil, fmt.Errorf("%w: license %s names key %s", ErrUnknownKey, l.Number, l.KeyID)
	}
	return nil, fmt.Errorf("%w (license %s, key %s)", ErrSignature, l.Number, l.KeyID)
}
