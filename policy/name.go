package policy

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxNameLen is the longest name, in bytes (a valid name is ASCII, so also
// in characters): the 64 characters X.509 allows in a certificate's common
// name (ub-common-name, RFC 5280), which carries participant names.
const MaxNameLen = 64

// ErrInvalidName reports a name outside the rule of ValidName.
var ErrInvalidName = errors.New("policy: invalid name")

// NameRule is the rule of ValidName in words, for messages and documents.
const NameRule = `a name is 1 to 64 ASCII letters, digits, ".", "-", "_" and "@", begins with a letter or a digit, does not end with ".", and has no ".."`

// NamePattern is the rule of ValidName as a regular expression, in the
// common subset of RE2 and ECMA-262 (for OpenAPI's "pattern"); the length
// limit is separate (MaxNameLen).
const NamePattern = `^[A-Za-z0-9][A-Za-z0-9_@-]*(\.[A-Za-z0-9_@-]+)*$`

// ValidName checks a name of a user, device, group, role or relation (and
// so the common name of a participant's certificate) against one rule:
// NameRule. The error wraps ErrInvalidName and says what is wrong.
//
// Names are ASCII because they travel where other characters are trouble
// or deception: into certificates, file names of exported profiles and of
// their archive members, strongSwan's swanctl.conf, command lines, CSV
// exports and the console. Letters of other scripts would let one user
// look like another ("аlice" with a Cyrillic а), and Unicode would let two
// byte sequences that look the same be two participants. No name can carry
// a path ("/", ".."), a control character or whitespace, or begin like a
// command-line option ("-") or a spreadsheet formula ("-", "@"). The "@"
// allows e-mail addresses as user names.
func ValidName(name string) error {
	if why := nameProblem(name); why != "" {
		return fmt.Errorf("%w %s: %s; %s", ErrInvalidName, quoteName(name), why, NameRule)
	}
	return nil
}

// nameProblem says what is wrong with a name, or "" if nothing is.
func nameProblem(name string) string {
	switch {
	case name == "":
		return "it is empty"
	case len(name) > MaxNameLen:
		return fmt.Sprintf("it is %d bytes long", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == '_' || c == '@':
			if i == 0 {
				return fmt.Sprintf("it begins with %q", c)
			}
			if c == '.' && name[i-1] == '.' {
				return `it contains ".."`
			}
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(name[i:])
			if r == utf8.RuneError && size == 1 {
				return fmt.Sprintf("byte %d is not valid UTF-8", i)
			}
			return fmt.Sprintf("it contains %q (U+%04X) at byte %d, which is not ASCII", r, r, i)
		default:
			return fmt.Sprintf("it contains %q at byte %d", c, i)
		}
	}
	if name[len(name)-1] == '.' {
		return `it ends with "."`
	}
	return ""
}

// quoteName quotes a name for a message, as %q does (a newline shows as
// \n), cut short if it is long: an error must not echo a megabyte.
func quoteName(name string) string {
	const show = MaxNameLen
	if len(name) <= show+16 {
		return strconv.Quote(name)
	}
	return strconv.Quote(name[:show]) + fmt.Sprintf("... (%d bytes)", len(name))
}
