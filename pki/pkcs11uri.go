package pki

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Sentinel errors of the PKCS#11 key store. They are declared here, outside
// the cgo build constraint, so that code using them compiles in every build;
// the errors returned by Token methods wrap them together with the
// underlying pkcs11.Error, so both errors.Is(err, ErrWrongPIN) and
// errors.As(err, &pkcs11.Error) work.
var (
	// ErrPKCS11Unavailable is returned by every PKCS#11 function in builds
	// without cgo or with the nopkcs11 build tag.
	ErrPKCS11Unavailable = errors.New("pki: PKCS#11 support is not compiled in (needs cgo and no 'nopkcs11' build tag)")
	// ErrModuleLoad means the PKCS#11 module could not be loaded or initialised.
	ErrModuleLoad = errors.New("pki: cannot load PKCS#11 module")
	// ErrTokenNotFound means no present token matches the configured label or
	// serial number.
	ErrTokenNotFound = errors.New("pki: PKCS#11 token not found")
	// ErrTokenRemoved means the token was removed or its sessions were lost
	// (CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_SESSION_HANDLE_INVALID).
	ErrTokenRemoved = errors.New("pki: PKCS#11 token removed")
	// ErrTokenClosed is returned by methods of a Token after Close.
	ErrTokenClosed = errors.New("pki: PKCS#11 token closed")
	// ErrWrongPIN means the token refused the PIN (CKR_PIN_INCORRECT).
	ErrWrongPIN = errors.New("pki: wrong PIN")
	// ErrPINLocked means the token locked the PIN after too many failures
	// (CKR_PIN_LOCKED); an administrator must unblock it with the SO PIN.
	ErrPINLocked = errors.New("pki: PIN locked")
	// ErrKeyNotFound means no private key on the token matches the label/ID.
	ErrKeyNotFound = errors.New("pki: key not found on token")
	// ErrKeyExists means GenerateKey was asked for a label/ID that is taken;
	// a second key with the same identity would make Signer ambiguous.
	ErrKeyExists = errors.New("pki: a key with this label or ID already exists on the token")
	// ErrAmbiguousKey means more than one private key matches the label/ID.
	ErrAmbiguousKey = errors.New("pki: more than one key on the token matches")
	// ErrInvalidPKCS11URI is wrapped by every ParsePKCS11URI error.
	ErrInvalidPKCS11URI = errors.New("pki: invalid PKCS#11 URI")
)

// PKCS11Config says which module and token OpenToken uses.
type PKCS11Config struct {
	// Module is the path of the PKCS#11 module (shared library), for example
	// /usr/lib/softhsm/libsofthsm2.so or /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so.
	Module string
	// TokenLabel selects the token by its label (CKA_LABEL of the token info).
	TokenLabel string
	// TokenSerial selects the token by its serial number. If both TokenLabel
	// and TokenSerial are set, the token must match both.
	TokenSerial string
	// PIN is the user PIN. Empty means: do not log in if the token does not
	// require it, or let a PIN pad reader ask (protected authentication path).
	PIN string
	// MaxSessions bounds the number of sessions, and therefore concurrent
	// signatures, on the token. Zero means 4.
	MaxSessions int
}

// String describes the configuration without the PIN, so that logging a
// configuration never leaks it.
func (c PKCS11Config) String() string {
	pin := ""
	if c.PIN != "" {
		pin = "REDACTED"
	}
	return fmt.Sprintf("{Module:%q TokenLabel:%q TokenSerial:%q PIN:%s MaxSessions:%d}",
		c.Module, c.TokenLabel, c.TokenSerial, pin, c.MaxSessions)
}

// GoString is String for %#v, which would otherwise print the PIN.
func (c PKCS11Config) GoString() string { return "pki.PKCS11Config" + c.String() }

// PKCS11URI is a parsed RFC 7512 PKCS#11 URI, such as
//
//	pkcs11:token=CA;object=root;id=%01%02;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234
//
// Values are percent-decoded. Empty fields were absent (or empty) in the URI.
type PKCS11URI struct {
	// Path attributes.
	Token               string // token: token label
	Manufacturer        string // manufacturer: token manufacturer ID
	Model               string // model: token model
	Serial              string // serial: token serial number
	Object              string // object: object label (CKA_LABEL)
	ID                  []byte // id: object ID (CKA_ID), raw bytes
	Type                string // type: public, private, cert, secret-key or data
	LibraryManufacturer string // library-manufacturer
	LibraryDescription  string // library-description
	LibraryVersion      string // library-version: "M" or "M.N"
	SlotManufacturer    string // slot-manufacturer
	SlotDescription     string // slot-description
	SlotID              string // slot-id: decimal slot number

	// Query attributes.
	ModulePath string // module-path: absolute path of the module
	ModuleName string // module-name: module name without path or suffix
	PINValue   string // pin-value: the PIN itself
	PINSource  string // pin-source: where to read the PIN (file: URI or absolute path)

	// Vendor-specific attributes (names of letters, digits, '-' and '_' that
	// RFC 7512 does not define), by name, percent-decoded.
	VendorPath  map[string]string
	VendorQuery map[string]string
}

// pkcs11URIScheme is compared case-insensitively, as URI schemes are.
const pkcs11URIScheme = "pkcs11:"

// objectTypes are the values RFC 7512 allows for the type attribute.
var objectTypes = map[string]bool{"public": true, "private": true, "cert": true, "secret-key": true, "data": true}

// uriAttr ties a standard attribute name to its PKCS11URI field.
type uriAttr struct {
	name string
	get  func(*PKCS11URI) *string
}

// pathAttrs lists the standard path attributes in the order Encode writes them.
var pathAttrs = []uriAttr{
	{"token", func(u *PKCS11URI) *string { return &u.Token }},
	{"manufacturer", func(u *PKCS11URI) *string { return &u.Manufacturer }},
	{"model", func(u *PKCS11URI) *string { return &u.Model }},
	{"serial", func(u *PKCS11URI) *string { return &u.Serial }},
	{"object", func(u *PKCS11URI) *string { return &u.Object }},
	{"type", func(u *PKCS11URI) *string { return &u.Type }},
	{"library-manufacturer", func(u *PKCS11URI) *string { return &u.LibraryManufacturer }},
	{"library-description", func(u *PKCS11URI) *string { return &u.LibraryDescription }},
	{"library-version", func(u *PKCS11URI) *string { return &u.LibraryVersion }},
	{"slot-manufacturer", func(u *PKCS11URI) *string { return &u.SlotManufacturer }},
	{"slot-description", func(u *PKCS11URI) *string { return &u.SlotDescription }},
	{"slot-id", func(u *PKCS11URI) *string { return &u.SlotID }},
	// id is []byte and handled separately.
}

// queryAttrs lists the standard query attributes in the order Encode writes them.
var queryAttrs = []uriAttr{
	{"module-name", func(u *PKCS11URI) *string { return &u.ModuleName }},
	{"module-path", func(u *PKCS11URI) *string { return &u.ModulePath }},
	{"pin-source", func(u *PKCS11URI) *string { return &u.PINSource }},
	{"pin-value", func(u *PKCS11URI) *string { return &u.PINValue }},
}

func findAttr(list []uriAttr, name string) (uriAttr, bool) {
	for _, a := range list {
		if a.name == name {
			return a, true
		}
	}
	return uriAttr{}, false
}

// ParsePKCS11URI parses an RFC 7512 PKCS#11 URI. Errors wrap
// ErrInvalidPKCS11URI and name the offending attribute. Unlike a plain URL
// parser it enforces RFC 7512's rules: attributes appear at most once, the
// type and slot-id values are checked, module-path must be absolute (a
// relative one would load a library from the working directory), and
// pin-value and pin-source are mutually exclusive.
func ParsePKCS11URI(uri string) (PKCS11URI, error) {
	var u PKCS11URI
	if len(uri) < len(pkcs11URIScheme) || !strings.EqualFold(uri[:len(pkcs11URIScheme)], pkcs11URIScheme) {
		return u, fmt.Errorf("%w: does not start with %q", ErrInvalidPKCS11URI, pkcs11URIScheme)
	}
	rest := uri[len(pkcs11URIScheme):]
	path, query, hasQuery := strings.Cut(rest, "?")
	if strings.ContainsRune(rest, '#') {
		return u, fmt.Errorf("%w: fragments ('#') are not allowed", ErrInvalidPKCS11URI)
	}

	seen := map[string]bool{}
	if path != "" {
		for _, attr := range strings.Split(path, ";") {
			if err := u.setPathAttr(attr, seen); err != nil {
				return PKCS11URI{}, err
			}
		}
	}
	if hasQuery && query != "" {
		for _, attr := range strings.Split(query, "&") {
			if err := u.setQueryAttr(attr, seen); err != nil {
				return PKCS11URI{}, err
			}
		}
	}
	if u.PINValue != "" && u.PINSource != "" {
		return PKCS11URI{}, fmt.Errorf("%w: pin-value and pin-source must not both be present", ErrInvalidPKCS11URI)
	}
	return u, nil
}

// splitAttr splits "name=value" and checks the name's characters.
func splitAttr(attr, component string) (name, value string, err error) {
	name, value, ok := strings.Cut(attr, "=")
	if !ok {
		return "", "", fmt.Errorf("%w: %s attribute %q has no '='", ErrInvalidPKCS11URI, component, attr)
	}
	if name == "" {
		return "", "", fmt.Errorf("%w: %s attribute with an empty name", ErrInvalidPKCS11URI, component)
	}
	for i := 0; i < len(name); i++ {
		if !isAttrNameChar(name[i]) {
			return "", "", fmt.Errorf("%w: %s attribute name %q: only letters, digits, '-' and '_' are allowed", ErrInvalidPKCS11URI, component, name)
		}
	}
	return name, value, nil
}

func (u *PKCS11URI) setPathAttr(attr string, seen map[string]bool) error {
	name, raw, err := splitAttr(attr, "path")
	if err != nil {
		return err
	}
	if seen[name] {
		return fmt.Errorf("%w: attribute %q appears more than once", ErrInvalidPKCS11URI, name)
	}
	seen[name] = true
	if _, isQuery := findAttr(queryAttrs, name); isQuery {
		return fmt.Errorf("%w: attribute %q belongs in the query (after '?')", ErrInvalidPKCS11URI, name)
	}
	value, err := percentDecode(raw, isPathChar)
	if err != nil {
		return fmt.Errorf("%w: attribute %q: %w", ErrInvalidPKCS11URI, name, err)
	}
	switch name {
	case "id":
		if value != "" {
			u.ID = []byte(value)
		}
		return nil
	case "type":
		if !objectTypes[value] {
			return fmt.Errorf("%w: attribute \"type\": %q is not one of public, private, cert, secret-key, data", ErrInvalidPKCS11URI, value)
		}
	case "slot-id":
		if _, err := strconv.ParseUint(value, 10, 64); err != nil || !allDigits(value) {
			return fmt.Errorf("%w: attribute \"slot-id\": %q is not a decimal number", ErrInvalidPKCS11URI, value)
		}
	case "library-version":
		major, minor, hasMinor := strings.Cut(value, ".")
		if !allDigits(major) || (hasMinor && !allDigits(minor)) {
			return fmt.Errorf("%w: attribute \"library-version\": %q is not M or M.N", ErrInvalidPKCS11URI, value)
		}
	}
	if a, ok := findAttr(pathAttrs, name); ok {
		*a.get(u) = value
		return nil
	}
	if value == "" {
		return nil // an empty attribute is the same as an absent one
	}
	if u.VendorPath == nil {
		u.VendorPath = map[string]string{}
	}
	u.VendorPath[name] = value
	return nil
}

func (u *PKCS11URI) setQueryAttr(attr string, seen map[string]bool) error {
	name, raw, err := splitAttr(attr, "query")
	if err != nil {
		return err
	}
	if seen[name] {
		return fmt.Errorf("%w: attribute %q appears more than once", ErrInvalidPKCS11URI, name)
	}
	seen[name] = true
	if _, isPath := findAttr(pathAttrs, name); isPath || name == "id" {
		return fmt.Errorf("%w: attribute %q belongs in the path (before '?')", ErrInvalidPKCS11URI, name)
	}
	value, err := percentDecode(raw, isQueryChar)
	if err != nil {
		return fmt.Errorf("%w: attribute %q: %w", ErrInvalidPKCS11URI, name, err)
	}
	if name == "module-path" && value != "" && !filepath.IsAbs(value) {
		return fmt.Errorf("%w: attribute \"module-path\": %q is not an absolute path", ErrInvalidPKCS11URI, value)
	}
	if name == "module-name" && strings.ContainsAny(value, "/\\") {
		return fmt.Errorf("%w: attribute \"module-name\": %q must be a name, not a path (use module-path)", ErrInvalidPKCS11URI, value)
	}
	if a, ok := findAttr(queryAttrs, name); ok {
		*a.get(u) = value
		return nil
	}
	if value == "" {
		return nil
	}
	if u.VendorQuery == nil {
		u.VendorQuery = map[string]string{}
	}
	u.VendorQuery[name] = value
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isAttrNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// isUnreserved is RFC 3986 "unreserved".
func isUnreserved(c byte) bool {
	return isAttrNameChar(c) || c == '.' || c == '~'
}

// isPathChar is RFC 7512 pk11-path-unres: characters allowed unescaped in a
// path attribute value.
func isPathChar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte(":[]@!$'()*+,=&", c) >= 0
}

// isQueryChar is RFC 7512 pk11-query-unres.
func isQueryChar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte(":[]@!$'()*+,=/?|;", c) >= 0
}

// percentDecode decodes %XX escapes and refuses characters that RFC 7512
// requires to be escaped, so that a URI with, say, a raw space is reported
// rather than silently accepted.
func percentDecode(s string, allowed func(byte) bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated percent escape at offset %d", i)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("invalid percent escape %q", s[i:i+3])
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
		case allowed(c):
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("character %q must be percent-encoded", c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentEncode escapes every byte outside RFC 3986 "unreserved" (plus '/'
// for query values, so module paths stay readable). Escaping more than the
// minimum is always valid and keeps delimiters like ';' and '&' unambiguous.
func percentEncode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) || (keepSlash && c == '/') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

// Encode returns the URI in a canonical form that ParsePKCS11URI reads back
// to an equal value, including the PIN. Use String for logs.
func (u PKCS11URI) Encode() string { return u.encode(false) }

// String returns the URI like Encode but with a pin-value replaced by
// "REDACTED", so that printing a URI never leaks a PIN.
func (u PKCS11URI) String() string { return u.encode(true) }

func (u PKCS11URI) encode(redact bool) string {
	var path []string
	for _, a := range pathAttrs {
		if v := *a.get(&u); v != "" {
			path = append(path, a.name+"="+percentEncode(v, false))
		}
		if a.name == "object" && len(u.ID) > 0 {
			// The id is binary: escape every byte, as RFC 7512 recommends.
			var b strings.Builder
			for _, c := range u.ID {
				fmt.Fprintf(&b, "%%%02X", c)
			}
			path = append(path, "id="+b.String())
		}
	}
	for _, name := range sortedKeys(u.VendorPath) {
		if v := u.VendorPath[name]; v != "" {
			path = append(path, name+"="+percentEncode(v, false))
		}
	}
	var query []string
	for _, a := range queryAttrs {
		v := *a.get(&u)
		if v == "" {
			continue
		}
		if redact && a.name == "pin-value" {
			v = "REDACTED"
		}
		query = append(query, a.name+"="+percentEncode(v, true))
	}
	for _, name := range sortedKeys(u.VendorQuery) {
		if v := u.VendorQuery[name]; v != "" {
			query = append(query, name+"="+percentEncode(v, true))
		}
	}
	s := pkcs11URIScheme + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Config turns the URI into a PKCS11Config for OpenToken: module-path gives
// the module, token and serial select the token, and the PIN comes from
// pin-value or from the file named by pin-source ("file:" URI or absolute
// path; one trailing newline is stripped). The object, id and type
// attributes are not part of the configuration: pass Object and ID to
// Token.Signer.
func (u PKCS11URI) Config() (PKCS11Config, error) {
	cfg := PKCS11Config{Module: u.ModulePath, TokenLabel: u.Token, TokenSerial: u.Serial, PIN: u.PINValue}
	if cfg.Module == "" {
		if u.ModuleName != "" {
			return PKCS11Config{}, fmt.Errorf("%w: module-name %q is not resolved to a library; give module-path", ErrInvalidPKCS11URI, u.ModuleName)
		}
		return PKCS11Config{}, fmt.Errorf("%w: module-path is required", ErrInvalidPKCS11URI)
	}
	if cfg.TokenLabel == "" && cfg.TokenSerial == "" {
		return PKCS11Config{}, fmt.Errorf("%w: token or serial is required to select a token", ErrInvalidPKCS11URI)
	}
	if u.PINSource != "" {
		path := strings.TrimPrefix(u.PINSource, "file:")
		path = strings.TrimPrefix(path, "//") // file:///abs/path
		if !filepath.IsAbs(path) {
			return PKCS11Config{}, fmt.Errorf("%w: pin-source %q is not a file: URI or absolute path", ErrInvalidPKCS11URI, u.PINSource)
		}
		data, err := readLimited(path, 4096)
		if err != nil {
			return PKCS11Config{}, fmt.Errorf("pki: reading pin-source: %w", err)
		}
		cfg.PIN = strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
		clear(data)
	}
	return cfg, nil
}
