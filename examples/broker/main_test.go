package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/broker/app"
)

// The next steps name the commands that work with this data directory, the
// API and, on the first start only, the one-time password.
func TestPrintNext(t *testing.T) {
	var out bytes.Buffer
	printNext(&out, app.Ready{DataDir: "/tmp/d", Participant: "engineer", API: "127.0.0.1:8443", BootstrapPassword: "pw1", BootstrapPending: true})
	for _, want := range []string{
		"remotegate broker is running. Next:\n",
		"go run ./examples/broker -data /tmp/d profile engineer > engineer.ovpn\n",
		"go run ./examples/broker -data /tmp/d status\n",
		"https://127.0.0.1:8443/api/v1/",
		"web console:        https://127.0.0.1:8443/\n",
		"log in to the web console at https://127.0.0.1:8443/ and name your administrator",
		`First login: name "admin", one-time password pw1` + "\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the next steps lack %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	printNext(&out, app.Ready{DataDir: "d", Participant: "gw", API: "127.0.0.1:8443", BootstrapPending: true})
	if strings.Contains(out.String(), "First login") || !strings.Contains(out.String(), "was shown at the first start") {
		t.Errorf("a later start:\n%s", out.String())
	}
	out.Reset()
	printNext(&out, app.Ready{DataDir: "d", Participant: "gw", BootstrapPassword: "pw1"})
	if strings.Contains(out.String(), "api/v1") || strings.Contains(out.String(), "pw1") {
		t.Errorf("without the API:\n%s", out.String())
	}
}

// The commands: an unknown one is refused before anything is opened; status
// opens the data directory (creating it private) and reports.
func TestCommands(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var out bytes.Buffer
	err := run(app.Config{DataDir: data}, []string{"frobnicate"}, nil, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("an unknown command: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("an unknown command created the data directory: %v", err)
	}
	if err := run(app.Config{DataDir: data}, []string{"status"}, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "data directory: "+data+"\n") || !strings.Contains(out.String(), "  engineer ") {
		t.Errorf("status:\n%s", out.String())
	}
	out.Reset()
	if err := run(app.Config{DataDir: data}, []string{"profile", "engineer"}, nil, &out, &out); err != nil || !strings.HasPrefix(out.String(), "# remotegate profile for \"engineer\"") {
		t.Fatalf("profile engineer: %v\n%s", err, out.String())
	}
	if err := run(app.Config{DataDir: data}, []string{"profile", "nobody"}, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), `"nobody"`) {
		t.Fatalf("a profile of a name not configured: %v", err)
	}
	out.Reset()
	if err := run(app.Config{DataDir: data}, []string{"profile", "-format", "powershell", "engineer"}, strings.NewReader("pw of the p12\n"), &out, &out); err != nil || !strings.Contains(out.String(), "Add-VpnConnection -Name $Name -ServerAddress $Server -TunnelType Ikev2") {
		t.Fatalf("profile -format powershell engineer: %v\n%s", err, out.String())
	}
	if err := run(app.Config{DataDir: data}, []string{"profile", "-format", "mobileconfig", "engineer"}, strings.NewReader(""), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("a mobileconfig without a password: %v", err)
	}
	if err := run(app.Config{DataDir: data}, []string{"profile", "-format", "pkcs12", "engineer"}, nil, io.Discard, io.Discard); err == nil {
		t.Fatal("profile -format pkcs12 accepted")
	}
	out.Reset()
	if err := run(app.Config{}, []string{"hash-password"}, strings.NewReader("a long enough password\n"), &out, &out); err != nil || !strings.HasPrefix(out.String(), "$argon2id$") {
		t.Fatalf("hash-password: %v %q", err, out.String())
	}
	if orOff("") != app.Off || orOff("1.2.3.4:5") != "1.2.3.4:5" {
		t.Error("orOff")
	}
}
