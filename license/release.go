package license

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Armor lines and the domain-separation prefix of release statements.
const (
	// ReleaseBegin is the first line of an armored release statement.
	ReleaseBegin = "-----BEGIN REMOTEGATE LICENSE RELEASE-----"
	// ReleaseEnd is the last line of an armored release statement.
	ReleaseEnd = "-----END REMOTEGATE LICENSE RELEASE-----"
	// ReleaseSigningPrefix is prepended to the payload lines of a release
	// statement to form the message the installation signs.
	ReleaseSigningPrefix = "remotegate-license-release-v1\n"
)

// Field indexes in releaseSpec.fields.
const (
	rNumber = iota
	rInstallation
	rReleased
	rKey
	rSignature
	nReleaseFields
)

var releaseSpec = &blockSpec{
	doc:    "release statement",
	what:   "release statement",
	begin:  ReleaseBegin,
	end:    ReleaseEnd,
	prefix: ReleaseSigningPrefix,
	fields: []fieldSpec{
		rNumber:       {name: "number", check: checkNumber},
		rInstallation: {name: "installation", check: checkInstallation},
		rReleased:     {name: "released", check: checkTime},
		rKey:          {name: "installation-key", check: checkBase64(ed25519.PublicKeySize)},
		rSignature:    {name: "signature", check: checkBase64(ed25519.SignatureSize)},
	},
	other:     LicenseBegin,
	otherWhat: "license",
}

// A Release is the content of a release statement: installation
// Installation released license Number at time Released. The installation
// signs it with its own Ed25519 key, whose public key the statement
// carries; the vendor portal checks the signature and matches the key and
// the installation ID against its activation records before it re-issues
// the license for another installation.
type Release struct {
	// Number is the license number.
	Number string
	// Installation is the installation ID of the installation that
	// released the license.
	Installation string
	// Released is when the license was released, UTC, whole seconds.
	Released time.Time
	// InstallationKey is the public key of the installation that signed
	// the statement.
	InstallationKey ed25519.PublicKey
}

func (r *Release) values() []string {
	v := make([]string, nReleaseFields)
	v[rNumber] = r.Number
	v[rInstallation] = r.Installation
	if !r.Released.IsZero() {
		v[rReleased] = r.Released.UTC().Format(timeLayout)
	}
	if r.InstallationKey != nil {
		v[rKey] = base64.StdEncoding.EncodeToString(r.InstallationKey)
	}
	return v
}

// IssueRelease returns a release statement for license number, signed with
// the installation's private key. The statement records installation and
// the time at (UTC, truncated to whole seconds). An invalid number or
// installation ID is reported as a *FormatError.
//
// State.Release calls it; call it directly only when the activation
// records live elsewhere.
func IssueRelease(installationKey ed25519.PrivateKey, number, installation string, at time.Time) ([]byte, error) {
	if len(installationKey) != ed25519.PrivateKeySize {
		return nil, errors.New("license: invalid Ed25519 installation key")
	}
	if at.IsZero() {
		return nil, releaseSpec.errorf(0, "released", "", "required")
	}
	r := Release{
		Number:          number,
		Installation:    installation,
		Released:        at,
		InstallationKey: installationKey.Public().(ed25519.PublicKey),
	}
	p, err := releaseSpec.payloadOf(r.values())
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(installationKey, append([]byte(ReleaseSigningPrefix), p...))
	return releaseSpec.armor(p, sig), nil
}

// ParseRelease strictly parses a release statement without verifying its
// signature, under the same rules as Parse. It returns the statement, the
// message the signature covers (ReleaseSigningPrefix followed by the field
// lines from "number:" through "installation-key:") and the signature.
func ParseRelease(data []byte) (*Release, []byte, []byte, error) {
	p, err := parseBlock(data, releaseSpec)
	if err != nil {
		return nil, nil, nil, err
	}
	v := p.values
	r := &Release{Number: v[rNumber], Installation: v[rInstallation]}
	r.Released, _ = parseTime(v[rReleased])                         // checked
	r.InstallationKey, _ = base64.StdEncoding.DecodeString(v[rKey]) // checked
	return r, p.msg, p.sig, nil
}

// VerifyRelease parses a release statement strictly and verifies its
// signature with the installation key it carries. That proves the holder
// of that key made the statement; whether the key belongs to the
// installation the license was activated on is for the vendor to check
// against its activation records.
//
// Errors wrap ErrFormat or ErrSignature.
func VerifyRelease(data []byte) (*Release, error) {
	r, msg, sig, err := ParseRelease(data)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(r.InstallationKey, msg, sig) {
		return nil, fmt.Errorf("%w (release statement for license %s)", ErrSignature, r.Number)
	}
	return r, nil
}
