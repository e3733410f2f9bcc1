package license

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. The errors this package returns wrap them (test with
// errors.Is); the wrapping adds the license number, line or key ID where one
// is known.
var (
	// ErrFormat means a license file or release statement is malformed or a
	// field value is invalid. The error is a *FormatError that names the
	// line and the field.
	ErrFormat = errors.New("license: malformed license file")
	// ErrSignature means the signature does not verify: the file was changed
	// after it was signed, or it was signed with another key of the same
	// key ID.
	ErrSignature = errors.New("license: signature does not verify")
	// ErrUnknownKey means no vendor public key of the Verifier has the key
	// ID the license names.
	ErrUnknownKey = errors.New("license: signed with an unknown vendor key")
	// ErrExpired means the license has expired; State.Activate refuses it.
	ErrExpired = errors.New("license: expired")
	// ErrOtherInstallation means the license is bound to another
	// installation.
	ErrOtherInstallation = errors.New("license: bound to another installation")
	// ErrReleased means the license was released on this installation; it
	// cannot be activated again here (the vendor re-issues it for the new
	// installation).
	ErrReleased = errors.New("license: released on this installation")
	// ErrDuplicate means a license with the same number is already
	// activated.
	ErrDuplicate = errors.New("license: already activated")
	// ErrProduct means the license is for another product than the
	// Verifier's.
	ErrProduct = errors.New("license: for another product")
	// ErrRevoked means the license was revoked on this installation; it
	// cannot be activated again.
	ErrRevoked = errors.New("license: revoked")
	// ErrNotActivated means no license with the number is activated on this
	// installation.
	ErrNotActivated = errors.New("license: not activated on this installation")
)

// A FormatError describes a malformed license file or release statement, or
// an invalid field value given to Issue or IssueRelease. It unwraps to
// ErrFormat. Its message reads, for example:
//
//	license: line 5: participants "0x40": must be a decimal number from 1 to 1000000 without leading zeros
type FormatError struct {
	// Line is the 1-based line number in the input; zero when the error is
	// not about one line (Issue, IssueRelease, a missing BEGIN line).
	Line int
	// Field is the name of the field whose value is invalid; empty when the
	// error is about the structure (unknown, duplicate, missing or
	// reordered fields, armor lines).
	Field string
	// Value is the invalid value of Field.
	Value string
	// Reason says what is wrong.
	Reason string

	doc string // "" for a license, "release statement" for a release
}

// Error implements error.
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("license: ")
	if e.doc != "" {
		b.WriteString(e.doc)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		v := e.Value
		if len(v) > 72 {
			v = v[:72] + "..."
		}
		fmt.Fprintf(&b, "%s %q: ", e.Field, v)
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns ErrFormat.
func (e *FormatError) Unwrap() error { return ErrFormat }
