package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/remotegate/remotegate/policy"
)

// ErrInvalid reports a profile that cannot be written: a value the format
// cannot carry safely, or a required part missing. The error wrapping it
// names the field and the value.
var ErrInvalid = errors.New("profile: invalid profile")

// invalid returns an error wrapping ErrInvalid and, when err is not nil, err.
func invalid(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, msg, err)
	}
	return fmt.Errorf("%w: %s", ErrInvalid, msg)
}

// checkName checks a participant's name against policy.ValidName; the
// error wraps both ErrInvalid and policy.ErrInvalidName.
func checkName(name string) error {
	if err := policy.ValidName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// ValidHost checks that host is an IP address or a DNS host name, the only
// things a profile writes where a peer's address goes. An address with a
// zone ("fe80::1%eth0") is refused: the zone names an interface of the
// machine that writes it, means nothing on the participant's, and
// net/netip accepts any text there, line breaks included. A host name has
// 1 to 253 characters in labels of 1 to 63 ASCII letters, digits and '-',
// not beginning or ending with '-'; a final '.' is allowed. The error
// wraps ErrInvalid.
func ValidHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return invalid(nil, "%q: an address with a zone cannot be in a profile", host)
		}
		return nil
	}
	bad := func(why string) error {
		return invalid(nil, "%q is not an IP address or a host name: %s", host, why)
	}
	if host == "" || len(host) > 253 {
		return bad("a host name has 1 to 253 characters")
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad("a label has 1 to 63 characters and neither begins nor ends with '-'")
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return bad("labels are ASCII letters, digits and '-'")
			}
		}
	}
	return nil
}

// maxLine bounds every line of an OpenVPN profile, inline blocks included.
// openvpn reads its config with fgets into 256 bytes: a longer line is cut
// there and its rest read as a line of its own, so the tail of a long
// comment or value would become a directive. 254 leaves room for the line
// break and the terminating NUL.
const maxLine = 254

// checkLine checks a line of text that goes into a profile as it is: a
// directive or a comment. It must be valid UTF-8 without control
// characters (a line break would start a directive of its own) or Unicode
// format and separator characters (they hide text from whoever reads the
// profile), and no longer than maxLine.
func checkLine(what, line string) error {
	switch {
	case !utf8.ValidString(line):
		return invalid(nil, "%s %q is not valid UTF-8", what, line)
	case strings.ContainsFunc(line, func(r rune) bool {
		return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
	}):
		return invalid(nil, "%s %q contains a control or format character", what, line)
	case len(line) > maxLine:
		return invalid(nil, "%s of %d bytes: openvpn reads lines of at most %d", what, len(line), maxLine)
	}
	return nil
}

// checkBlock checks the contents of an inline block or an archive member:
// PEM-like text (a "-----BEGIN type-----" line, the base64 or hex body,
// the "-----END type-----" line, and "#" comment lines as openvpn --genkey
// writes them) whose type is one of types (a type "*PRIVATE KEY" matches
// any type ending in "PRIVATE KEY"). Only printable ASCII and line breaks
// (LF or CRLF) are allowed, and no '<' or '>': inside an inline block, a
// line that begins with "</" would close it, and the rest would be read as
// directives. It returns data with a final line break.
func checkBlock(what string, data []byte, types ...string) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, invalid(nil, "%s is empty", what)
	}
	for i, c := range data {
		if c == '\n' || c == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			continue
		}
		if c < 0x20 || c > 0x7e || c == '<' || c == '>' {
			return nil, invalid(nil, "%s contains the byte %q at %d: only PEM text can be inline", what, c, i)
		}
	}
	begun, complete := "", false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		if len(line) > maxLine {
			return nil, invalid(nil, "%s has a line of %d bytes: openvpn reads lines of at most %d", what, len(line), maxLine)
		}
		switch {
		case begun == "":
			if t, ok := strings.CutPrefix(line, "-----BEGIN "); ok {
				if t, ok = strings.CutSuffix(t, "-----"); ok && matchType(t, types) {
					begun = t
				}
			}
		case line == "-----END "+begun+"-----":
			complete = true
		}
	}
	if !complete {
		return nil, invalid(nil, "%s is not PEM of type %s", what, strings.Join(types, " or "))
	}
	if data[len(data)-1] != '\n' {
		data = append(data[:len(data):len(data)], '\n')
	}
	return data, nil
}

func matchType(t string, types []string) bool {
	for _, want := range types {
		if suffix, ok := strings.CutPrefix(want, "*"); ok {
			if strings.HasSuffix(t, suffix) {
				return true
			}
		} else if t == want {
			return true
		}
	}
	return false
}

// write writes data to w after the whole profile has been rendered and
// checked, so that a refused profile leaves nothing behind.
func write(w io.Writer, data []byte) (int64, error) {
	n, err := w.Write(data)
	if err != nil {
		return int64(n), fmt.Errorf("profile: write: %w", err)
	}
	return int64(n), nil
}

// Format is one of the formats a participant's profile is handed out in.
// Its string is the name the management API uses.
type Format string

// The formats.
const (
	FormatOpenVPN Format = "ovpn"    // OpenVPN, everything inline
	FormatSwanctl Format = "swanctl" // a tar archive for /etc/swanctl
	FormatPKCS12  Format = "pkcs12"  // key, certificate and CA, password-protected
)

// formatNames lists the formats for error messages.
const formatNames = "ovpn, swanctl, pkcs12, mobileconfig, powershell or sswan"

// ParseFormat returns the format named s ("ovpn", "swanctl", "pkcs12",
// "mobileconfig", "powershell" or "sswan").
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatOpenVPN, FormatSwanctl, FormatPKCS12, FormatApple, FormatWindows, FormatAndroid:
		return f, nil
	}
	return "", invalid(nil, "format %q: want %s", s, formatNames)
}

// ContentType is the media type a download of the format is served with.
func (f Format) ContentType() string {
	switch f {
	case FormatOpenVPN:
		return "application/x-openvpn-profile"
	case FormatSwanctl:
		return "application/x-tar"
	case FormatPKCS12:
		return "application/x-pkcs12"
	case FormatApple:
		return "application/x-apple-aspen-config"
	case FormatWindows:
		return "text/plain; charset=utf-8"
	case FormatAndroid:
		return "application/vnd.strongswan.profile"
	}
	return "application/octet-stream"
}

// FileName is the name a participant's profile in the format is saved
// under: name.ovpn, name.tar, name.p12, name.mobileconfig, name.ps1 or
// name.sswan. name must pass policy.ValidName
// (so the file name is a plain one); the error wraps ErrInvalid.
func (f Format) FileName(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	switch f {
	case FormatOpenVPN:
		return name + ".ovpn", nil
	case FormatSwanctl:
		return name + ".tar", nil
	case FormatPKCS12:
		return name + ".p12", nil
	case FormatApple:
		return name + ".mobileconfig", nil
	case FormatWindows:
		return name + ".ps1", nil
	case FormatAndroid:
		return name + ".sswan", nil
	}
	return "", invalid(nil, "format %q: want %s", string(f), formatNames)
}
