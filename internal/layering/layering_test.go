package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/remotegate/remotegate"

// allowed lists, for each top-level package, the other top-level packages of
// this module it may depend on (directly or not). internal/... is always
// allowed; examples and broker compose everything and are not listed.
var allowed = map[string][]string{
	"tunnel":  {},
	"policy":  {},
	"nat":     {},
	"license": {},
	"pki":     {"tunnel"},
	"openvpn": {"tunnel"},
	"ipsec":   {"tunnel"},
}

// notWithin lists, for packages inside the composing top level (broker),
// packages of this module they must not depend on: the broker's core (the
// switch and its sessions) stays free of the database, so that a program
// embedding the switch does not carry SQLite, and the store, below every
// package that uses it, imports none of them.
var notWithin = map[string][]string{
	"broker":       {"broker/store", "broker/model", "broker/api", "broker/app", "license"},
	"broker/store": {"broker", "broker/model", "broker/api", "broker/app"},
	"broker/model": {"broker/api", "broker/app"},
	"broker/api":   {"broker/app"},
}

func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module+"/")
		for _, dep := range fields[1:] {
			d := strings.TrimPrefix(dep, module+"/")
			for _, bad := range notWithin[pkg] {
				if d == bad {
					t.Errorf("%s imports %s, which it must not depend on", pkg, d)
				}
			}
		}
		top := strings.SplitN(pkg, "/", 2)[0]
		rules, ok := allowed[top]
		if !ok {
			continue
		}
		checked++
		for _, dep := range fields[1:] {
			if !strings.HasPrefix(dep, module+"/") {
				continue
			}
			d := strings.TrimPrefix(dep, module+"/")
			dtop := strings.SplitN(d, "/", 2)[0]
			if dtop == top || dtop == "internal" || (top == "openvpn" && strings.HasPrefix(d, "openvpn/")) {
				continue
			}
			ok := false
			for _, a := range rules {
				if dtop == a {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s imports %s: %s may depend only on %v and internal", pkg, d, top, rules)
			}
		}
	}
	for pkg := range notWithin {
		if !strings.Contains(string(out), module+"/"+pkg+" ") {
			t.Errorf("no package %s was listed; is notWithin up to date?", pkg)
		}
	}
	if checked == 0 {
		t.Fatal("no package was checked; is the module path right?")
	}
}
