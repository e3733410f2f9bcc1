package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// badNames are names an attacker or a slip of the keyboard would try; each
// must be refused wherever a name is taken.
var badNames = []struct{ name, why string }{
	{strings.Repeat("a", 1<<20), "1048576 bytes long"},
	{strings.Repeat("a", MaxNameLen+1), "65 bytes long"},
	{"", "empty"},
	{"a\x00b", `'\x00' at byte 1`},
	{"\n", `'\n' at byte 0`},
	{"alice\n  remote_addrs = evil", `'\n' at byte 5`},
	{"a\rb", `'\r' at byte 1`},
	{"a\tb", `'\t' at byte 1`},
	{"a b", `' ' at byte 1`},
	{"..", `begins with '.'`},
	{"a..b", `".."`},
	{"a/b", `'/' at byte 1`},
	{"../../../../tmp/x", `begins with '.'`},
	{`a\b`, `'\\' at byte 1`},
	{"a\"b", `'"' at byte 1`},
	{"a=b", `'=' at byte 1`},
	{"=cmd", `'=' at byte 0`},
	{"+1", `'+' at byte 0`},
	{"-rf", `begins with '-'`},
	{"@SUM", `begins with '@'`},
	{".hidden", `begins with '.'`},
	{"_x", `begins with '_'`},
	{"gw.", `ends with "."`},
	{"\xed\xa0\x80", "byte 0 is not valid UTF-8"}, // a lone surrogate, U+D800
	{"a\xff", "byte 1 is not valid UTF-8"},
	{"аlice", "U+0430"},        // Cyrillic а: looks like alice
	{"a\u202eb", "U+202E"},     // right-to-left override
	{"a\u2028b", "U+2028"},     // line separator
	{"\ufffd", "U+FFFD"},       // what JSON makes of invalid UTF-8
	{"caf\u00e9", "not ASCII"}, // letters beyond ASCII too
	{"a{b}", `'{' at byte 1`},
	{"a#b", `'#' at byte 1`},
	{"a;b", `';' at byte 1`},
	{"a,b", `',' at byte 1`},
}

var goodNames = []string{
	"plant-1", "plant1-gw", "engineer", "gw1", "vpn_user_group", "u2-plant2",
	"jane.doe@example.com", "a", "Z", "7", "A.b-c_d@e", "x-", "x_",
	strings.Repeat("a", MaxNameLen),
}

func TestValidName(t *testing.T) {
	pattern := regexp.MustCompile(NamePattern)
	for _, name := range goodNames {
		if err := ValidName(name); err != nil {
			t.Errorf("ValidName(%q) = %v", name, err)
		}
		if !pattern.MatchString(name) {
			t.Errorf("NamePattern does not match the good name %q", name)
		}
	}
	for _, c := range badNames {
		err := ValidName(c.name)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidName(%s) = %v, want ErrInvalidName", quoteName(c.name), err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.why) || !strings.Contains(msg, NameRule) {
			t.Errorf("ValidName(%s) = %q, want it to say %q and the rule", quoteName(c.name), msg, c.why)
		}
		if strings.ContainsAny(msg, "\n\r\x00") || len(msg) > 600 {
			t.Errorf("ValidName(%s): a message of %d bytes with control characters: %.300q", quoteName(c.name), len(msg), msg)
		}
		if pattern.MatchString(c.name) && len(c.name) <= MaxNameLen {
			t.Errorf("NamePattern matches the bad name %q", c.name)
		}
	}
	// The predefined names follow the rule they impose.
	for _, name := range []string{RoleAdmin, RoleVPNUser, GroupVPNUser} {
		if err := ValidName(name); err != nil {
			t.Errorf("predefined %v", err)
		}
	}
}

// TestCompileRefusesBadNames puts every bad name in every place of the
// model that defines a name, and expects an error that names the kind
// and shows the name quoted: a newline as \n, a long name cut short.
func TestCompileRefusesBadNames(t *testing.T) {
	kinds := []struct {
		kind string
		put  func(m *Model, name string)
	}{
		{"user", func(m *Model, n string) { m.Users = append(m.Users, User{Name: n, Roles: []string{RoleVPNUser}}) }},
		{"device", func(m *Model, n string) {
			m.Devices = append(m.Devices, Device{Name: n, Subnets: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}})
		}},
		{"group", func(m *Model, n string) { m.Groups = append(m.Groups, Group{Name: n}) }},
		{"role", func(m *Model, n string) { m.Roles = append(m.Roles, Role{Name: n, Rights: RightViewEvents}) }},
		{"relation", func(m *Model, n string) {
			m.Relations = append(m.Relations, Relation{Name: n, From: "engineers", To: "plant7"})
		}},
	}
	for _, k := range kinds {
		for _, c := range badNames {
			if c.name == "" {
				continue // "has no name", below
			}
			m := storyModel()
			k.put(m, c.name)
			_, err := Compile(m)
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrInvalidName) {
				t.Errorf("%s %s: Compile = %.300v, want ErrInvalid and ErrInvalidName", k.kind, quoteName(c.name), err)
				continue
			}
			msg := err.Error()
			want := fmt.Sprintf("%s %s: ", k.kind, quoteName(c.name))
			if !strings.Contains(msg, want) || !strings.Contains(msg, c.why) {
				t.Errorf("%s: Compile says %.300q; want it to contain %q and %q", k.kind, msg, want, c.why)
			}
			if strings.ContainsAny(msg, "\n\r\x00") || len(msg) > 1000 {
				t.Errorf("%s %s: a message of %d bytes with control characters: %.300q", k.kind, quoteName(c.name), len(msg), msg)
			}
		}
		m := storyModel()
		k.put(m, "")
		if _, err := Compile(m); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no name") {
			t.Errorf("%s without a name: %v", k.kind, err)
		}
		for _, name := range goodNames {
			m := storyModel()
			k.put(m, name)
			if _, err := Compile(m); err != nil {
				t.Errorf("%s %q: %v", k.kind, name, err)
			}
		}
	}
}

// A reference to a hostile name is an unknown reference, shown quoted and
// cut short like a bad name.
func TestCompileQuotesBadReferences(t *testing.T) {
	m := storyModel()
	huge := strings.Repeat("x", 1<<20)
	m.Users[1].Groups = append(m.Users[1].Groups, "evil\ngroup", huge)
	_, err := Compile(m)
	if !errors.Is(err, ErrUnknownReference) {
		t.Fatalf("Compile = %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `group "evil\ngroup", which`) || !strings.Contains(msg, "... (1048576 bytes)") || len(msg) > 1000 {
		t.Fatalf("message of %d bytes: %.300q", len(msg), msg)
	}
}

// FuzzValidName: ValidName never panics, and what it accepts can go into
// a path, a configuration file, a command line or a CSV cell as it is.
func FuzzValidName(f *testing.F) {
	for _, c := range badNames {
		if len(c.name) < 1000 {
			f.Add(c.name)
		}
	}
	for _, n := range goodNames {
		f.Add(n)
	}
	pattern := regexp.MustCompile(NamePattern)
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidName(name)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) || strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("ValidName(%q) = %q", name, err)
			}
			if pattern.MatchString(name) && len(name) <= MaxNameLen {
				t.Fatalf("NamePattern matches %q, which ValidName refuses: %v", name, err)
			}
			return
		}
		if !pattern.MatchString(name) || len(name) > MaxNameLen {
			t.Fatalf("ValidName accepts %q, which NamePattern does not match", name)
		}
		if strings.Contains(name, "/") || strings.Contains(name, "..") || strings.ContainsAny(name[:1], "=+-@.") {
			t.Fatalf("ValidName accepts %q", name)
		}
		for _, r := range name {
			if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"'\#{}=;,`, r) {
				t.Fatalf("ValidName accepts %q with %q", name, r)
			}
		}
	})
}
