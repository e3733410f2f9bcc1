package message

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so callers can choose their reaction with errors.Is.
var (
	// ErrShort: the input ends before a fixed-size field (the 28-byte
	// header, a 4-byte generic payload header).
	ErrShort = errors.New("message: short buffer")
	// ErrVersion: the header's major version is not 2. RFC 7296 §2.5 asks a
	// responder to answer INVALID_MAJOR_VERSION, so this is kept apart from
	// ErrSyntax.
	ErrVersion = errors.New("message: unsupported IKE major version")
	// ErrLength: the header's Length does not match the datagram, a generic
	// payload length is below 4 or runs past the end, bytes follow the last
	// payload, or (when encoding) something does not fit its length field.
	ErrLength = errors.New("message: bad length")
	// ErrSyntax: a payload body is malformed (the caller answers
	// INVALID_SYNTAX), or (when encoding) a field has a value the wire
	// format cannot carry.
	ErrSyntax = errors.New("message: malformed payload")
	// ErrUnsupportedCritical: an unknown payload type has the critical bit
	// set. The error is an *UnsupportedCriticalError carrying the type,
	// which RFC 7296 §3.10.1 puts in the UNSUPPORTED_CRITICAL_PAYLOAD
	// notify's data.
	ErrUnsupportedCritical = errors.New("message: unsupported critical payload")
)

// UnsupportedCriticalError reports an unknown payload type that was marked
// critical. It unwraps to ErrUnsupportedCritical; use errors.As to get the
// type for the notify data.
type UnsupportedCriticalError struct {
	Type PayloadType
}

func (e *UnsupportedCriticalError) Error() string {
	return fmt.Sprintf("%v: payload type %d", ErrUnsupportedCritical, uint8(e.Type))
}

// Unwrap makes errors.Is(err, ErrUnsupportedCritical) work.
func (e *UnsupportedCriticalError) Unwrap() error { return ErrUnsupportedCritical }

// syntaxf and lengthf keep the "sentinel: detail" shape of every error in one
// place.
func syntaxf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)
}

func lengthf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrLength}, args...)...)
}
