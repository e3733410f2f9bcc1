package license

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxFileSize is the largest license file or release statement, comments
// included, that Parse and ParseRelease accept.
const MaxFileSize = 64 << 10

// fieldSpec describes one "name: value" line of an armored block.
type fieldSpec struct {
	name     string
	optional bool
	// check returns why value is invalid, or "" when it is valid.
	check func(value string) string
}

// blockSpec describes an armored block: a license or a release statement.
// Its last field is the signature, which is not part of the signed payload.
type blockSpec struct {
	doc        string // "" or "release statement", for FormatError
	what       string // "license" or "release statement", for messages
	begin, end string
	prefix     string // domain separation, prepended to the payload
	fields     []fieldSpec
	// other is the BEGIN line of the other kind of block, recognized to
	// give a helpful error when one is parsed as the other.
	other, otherWhat string
}

func (s *blockSpec) index(name string) int {
	for i, f := range s.fields {
		if f.name == name {
			return i
		}
	}
	return -1
}

// parsedBlock is the result of parseBlock.
type parsedBlock struct {
	values []string // by field index; "" when an optional field is absent
	lines  []int    // line number of each field; 0 when absent
	msg    []byte   // prefix + payload lines: what the signature covers
	sig    []byte   // the decoded signature
}

func (s *blockSpec) errorf(line int, field, value, format string, args ...any) error {
	return &FormatError{doc: s.doc, Line: line, Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// parseBlock strictly parses the one armored block in data. Lines outside
// the block are ignored.
func parseBlock(data []byte, s *blockSpec) (*parsedBlock, error) {
	if len(data) > MaxFileSize {
		return nil, s.errorf(0, "", "", "input larger than %d bytes", MaxFileSize)
	}
	lines := strings.Split(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1] // the final LF ends the last line
	}
	const (
		before = iota
		inside
		after
	)
	n := len(s.fields)
	p := &parsedBlock{values: make([]string, n), lines: make([]int, n)}
	var payload strings.Builder
	payload.WriteString(s.prefix)
	st := before
	next := 0     // index of the first field that may come next
	last := ""    // name of the previous field
	sawOther := 0 // line of the other kind's BEGIN line
	for i, line := range lines {
		ln := i + 1
		if st != inside {
			trimmed := strings.TrimSpace(line)
			switch {
			case line == s.begin && st == before:
				st = inside
			case line == s.begin || (trimmed == s.begin && st == after):
				return nil, s.errorf(ln, "", "", "a second BEGIN line: one %s per file", s.what)
			case trimmed == s.begin:
				return nil, s.errorf(ln, "", "", "BEGIN line with surrounding whitespace (CRLF line ends?)")
			case trimmed == s.end && st == before:
				return nil, s.errorf(ln, "", "", "END line without a BEGIN line")
			case s.other != "" && trimmed == s.other && sawOther == 0:
				sawOther = ln
			}
			continue
		}
		if line == s.end {
			for j := next; j < n; j++ {
				if !s.fields[j].optional {
					return nil, s.errorf(ln, "", "", "missing field %q", s.fields[j].name)
				}
			}
			st = after
			continue
		}
		if strings.TrimSpace(line) == s.end {
			return nil, s.errorf(ln, "", "", "END line with surrounding whitespace (CRLF line ends?)")
		}
		if next == n {
			return nil, s.errorf(ln, "", "", "expected the END line after the signature")
		}
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			if line == "" {
				return nil, s.errorf(ln, "", "", "empty line inside the %s", s.what)
			}
			if name, _, ok := strings.Cut(line, ":"); ok && s.index(name) >= 0 {
				return nil, s.errorf(ln, "", "", "field %q: expected a space and a value after the colon", name)
			}
			return nil, s.errorf(ln, "", "", "expected \"name: value\", got %q", truncate(line))
		}
		pos := s.index(name)
		switch {
		case pos < 0:
			return nil, s.errorf(ln, "", "", "unknown field %q", truncate(name))
		case p.lines[pos] != 0:
			return nil, s.errorf(ln, "", "", "duplicate field %q (first on line %d)", name, p.lines[pos])
		case pos < next:
			return nil, s.errorf(ln, "", "", "field %q out of order: it must come before %q", name, last)
		}
		for j := next; j < pos; j++ {
			if !s.fields[j].optional {
				return nil, s.errorf(ln, "", "", "missing field %q before %q", s.fields[j].name, name)
			}
		}
		if strings.TrimRight(value, " \t\r") != value {
			return nil, s.errorf(ln, name, value, "trailing whitespace (CRLF line ends?)")
		}
		if reason := s.fields[pos].check(value); reason != "" {
			return nil, s.errorf(ln, name, value, "%s", reason)
		}
		p.values[pos], p.lines[pos] = value, ln
		next, last = pos+1, name
		if pos < n-1 {
			payload.WriteString(line)
			payload.WriteByte('\n')
		}
	}
	switch st {
	case before:
		if sawOther != 0 {
			return nil, s.errorf(sawOther, "", "", "this is a %s, not a %s", s.otherWhat, s.what)
		}
		return nil, s.errorf(0, "", "", "no %s line found", s.begin)
	case inside:
		return nil, s.errorf(len(lines), "", "", "missing the END line %s", s.end)
	}
	p.msg = []byte(payload.String())
	p.sig, _ = base64.StdEncoding.DecodeString(p.values[n-1]) // checked
	return p, nil
}

// armor returns the armored block for the payload lines (without the
// prefix) and the signature.
func (s *blockSpec) armor(payload, sig []byte) []byte {
	var b strings.Builder
	b.WriteString(s.begin)
	b.WriteByte('\n')
	b.Write(payload)
	b.WriteString(s.fields[len(s.fields)-1].name)
	b.WriteString(": ")
	b.WriteString(base64.StdEncoding.EncodeToString(sig))
	b.WriteByte('\n')
	b.WriteString(s.end)
	b.WriteByte('\n')
	return []byte(b.String())
}

// payloadOf returns the payload lines (without the prefix) for the field
// values, checking each; absent optional fields have the value "". The
// signature field is not included.
func (s *blockSpec) payloadOf(values []string) ([]byte, error) {
	var b strings.Builder
	for i, f := range s.fields[:len(s.fields)-1] {
		v := values[i]
		if v == "" && f.optional {
			continue
		}
		if v == "" {
			return nil, s.errorf(0, f.name, v, "required")
		}
		if reason := f.check(v); reason != "" {
			return nil, s.errorf(0, f.name, v, "%s", reason)
		}
		b.WriteString(f.name)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}

func truncate(s string) string {
	if len(s) > 72 {
		return s[:72] + "..."
	}
	return s
}

// Value checks.

func isUpperAlnumDash(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' }
func isLowerAlnumDash(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' }
func isAlnumDash(c byte) bool      { return isUpperAlnumDash(c) || c >= 'a' && c <= 'z' }
func isLowerHex(c byte) bool       { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func allOf(s string, min, max int, ok func(byte) bool) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func checkNumber(v string) string {
	if !allOf(v, 1, 64, isUpperAlnumDash) {
		return "must be 1 to 64 characters A-Z, 0-9 or -"
	}
	return ""
}

func checkName(v string) string {
	if !allOf(v, 1, 32, isLowerAlnumDash) {
		return "must be 1 to 32 characters a-z, 0-9 or -"
	}
	return ""
}

// MaxParticipants is the largest participant count one license may add.
const MaxParticipants = 1_000_000

func checkParticipants(v string) string {
	const reason = "must be a decimal number from 1 to 1000000 without leading zeros"
	if !allOf(v, 1, 7, func(c byte) bool { return c >= '0' && c <= '9' }) || v[0] == '0' {
		return reason
	}
	if n, err := strconv.Atoi(v); err != nil || n > MaxParticipants {
		return reason
	}
	return ""
}

const dateLayout = "2006-01-02"

// parseDate parses a YYYY-MM-DD date from the years 2000 to 9999 as UTC
// midnight.
func parseDate(v string) (time.Time, bool) {
	if len(v) != len(dateLayout) || v[0] == '0' || v[0] == '1' {
		return time.Time{}, false
	}
	t, err := time.Parse(dateLayout, v)
	if err != nil || t.Format(dateLayout) != v {
		return time.Time{}, false
	}
	return t, true
}

func checkDate(v string) string {
	if _, ok := parseDate(v); !ok {
		return "must be a date YYYY-MM-DD (years 2000 to 9999)"
	}
	return ""
}

const timeLayout = "2006-01-02T15:04:05Z"

// parseTime parses an RFC 3339 UTC time with seconds precision, years 2000
// to 9999, as in 2026-12-01T10:00:00Z.
func parseTime(v string) (time.Time, bool) {
	if len(v) != len(timeLayout) || v[0] == '0' || v[0] == '1' {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil || t.UTC().Format(timeLayout) != v {
		return time.Time{}, false
	}
	return t.UTC(), true
}

func checkTime(v string) string {
	if _, ok := parseTime(v); !ok {
		return "must be an RFC 3339 UTC time YYYY-MM-DDTHH:MM:SSZ (years 2000 to 9999)"
	}
	return ""
}

// MaxInstallationIDLength is the longest installation ID.
const MaxInstallationIDLength = 128

func checkInstallation(v string) string {
	if !allOf(v, 1, MaxInstallationIDLength, isAlnumDash) {
		return "must be 1 to 128 characters A-Z, a-z, 0-9 or -"
	}
	return ""
}

func checkKeyID(v string) string {
	if !allOf(v, 8, 8, isLowerHex) {
		return "must be 8 lowercase hex digits"
	}
	return ""
}

// checkBase64 returns a check for the standard base64 encoding (with
// padding) of exactly n bytes.
func checkBase64(n int) func(string) string {
	enc := base64.StdEncoding
	reason := fmt.Sprintf("must be standard base64 of %d bytes", n)
	return func(v string) string {
		if len(v) != enc.EncodedLen(n) {
			return reason
		}
		b, err := enc.Strict().DecodeString(v)
		if err != nil || len(b) != n || enc.EncodeToString(b) != v {
			return reason
		}
		return ""
	}
}
