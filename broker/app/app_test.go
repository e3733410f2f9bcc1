package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/broker/store"
)

// writeYAML writes a broker.yaml into dir and returns its path.
func writeYAML(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "broker.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// open opens a broker, closed at the end of the test.
func open(t *testing.T, cfg Config) *Broker {
	t.Helper()
	cfg.SecretKeyFile = filepath.Join(cfg.DataDir, "broker.key") // whatever the environment says
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// profileLine is the line of name's .ovpn profile that starts with prefix.
func profileLine(t *testing.T, b *Broker, name, prefix string) string {
	t.Helper()
	var out bytes.Buffer
	if err := b.WriteProfile(context.Background(), &out, name, FormatOVPN); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no line %q in the profile:\n%s", prefix, out.String())
	return ""
}

const settingsYAML = `
port: 1195
public_address: vpn.example
pool: 10.9.0.0/24
ipsec: {port: 4501}
users:
  - name: u1
devices:
  - name: gw1
    networks:
      - lan: 192.168.0.0/24
`

// Issue 15: the profile command, run as the broker prints it (without
// -config), writes the public address and port of the broker.yaml the
// broker was started with: they are stored, not read from the file at each
// start.
func TestProfileWithoutTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	yaml := writeYAML(t, dir, settingsYAML)
	b := open(t, Config{DataDir: data, ConfigFile: yaml})
	b.Close()
	if err := os.Remove(yaml); err != nil {
		t.Fatal(err)
	}

	b = open(t, Config{DataDir: data})
	if got := profileLine(t, b, "u1", "remote "); got != "remote vpn.example 1195" {
		t.Errorf("the profile without -config says %q; want remote vpn.example 1195", got)
	}
	var archive bytes.Buffer
	if err := b.WriteProfile(context.Background(), &archive, "gw1", FormatSwanctl); err != nil {
		t.Fatal(err)
	}
	conf := untar(t, archive.Bytes())["swanctl.conf"]
	for _, want := range []string{`remote_addrs = "vpn.example"`, "remote_port = 4501", "remote_ts = 10.9.0.0/24", "local_ts = dynamic,192.168.0.0/24"} {
		if !strings.Contains(conf, want) {
			t.Errorf("swanctl.conf without -config lacks %q:\n%s", want, conf)
		}
	}
	if err := b.WriteProfile(context.Background(), io.Discard, "nobody", FormatOVPN); !errors.Is(err, ErrNotParticipant) {
		t.Errorf("a profile for a name not configured: %v; want ErrNotParticipant", err)
	}
}

// A data directory from before the settings were stored, started again
// with the same broker.yaml (whose content it applied before), stores the
// file's settings then.
func TestSettingsOfAnEarlierVersionAreStored(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	yaml := writeYAML(t, dir, settingsYAML)
	b := open(t, Config{DataDir: data, ConfigFile: yaml})
	// As an earlier version left it: the file applied, no settings.
	if _, err := b.st.Update(context.Background(), func(c *store.Config) error { c.Settings = store.Settings{}; return nil }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = open(t, Config{DataDir: data})
	if got := profileLine(t, b, "u1", "remote "); got != "remote 127.0.0.1 1194" {
		t.Fatalf("without stored settings: %q; want the defaults", got)
	}
	b.Close()

	open(t, Config{DataDir: data, ConfigFile: yaml}).Close()
	b = open(t, Config{DataDir: data})
	if got := profileLine(t, b, "u1", "remote "); got != "remote vpn.example 1195" {
		t.Errorf("after a start with the file applied before: %q; want remote vpn.example 1195", got)
	}
}

// freePort is a port that was free on 127.0.0.1 for TCP and UDP a moment
// ago.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for TCP and UDP")
	return 0
}

// Run serves the management API under /api/ on the HTTPS listener, leaves
// the rest of it free (for the console), serves the metrics, reports its
// addresses and the one-time password once, and returns nil when its
// context ends.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	yaml := writeYAML(t, dir, fmt.Sprintf("listen: 127.0.0.1\nport: %d\nipsec: {port: -1}\nusers:\n  - name: u1\n", freePort(t)))
	readies := make(chan Ready, 1)
	cfg := Config{DataDir: data, ConfigFile: yaml, APIAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", OnReady: func(r Ready) { readies <- r }}
	b := open(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var r Ready
	select {
	case r = <-readies:
	case err := <-done:
		t.Fatalf("Run returned before it was ready: %v", err)
	}
	if r.BootstrapPassword == "" || !r.BootstrapPending || r.Participant != "u1" || r.IPsec != "" || r.DataDir != data ||
		!strings.HasPrefix(r.OpenVPN, "127.0.0.1:") {
		t.Errorf("Ready = %+v", r)
	}

	roots := x509.NewCertPool()
	roots.AddCert(b.keys.ca.Certificate())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer client.CloseIdleConnections()
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, body := get("https://" + r.API + "/api/v1/openapi.json")
	if status != http.StatusOK || !json.Valid([]byte(body)) || !strings.Contains(body, `"openapi"`) {
		t.Errorf("GET /api/v1/openapi.json: %d %.200s", status, body)
	}
	if status, body := get("https://" + r.API + "/api/v1/nothing"); status != http.StatusNotFound || !strings.Contains(body, `"error"`) {
		t.Errorf("GET /api/v1/nothing: %d %s; want the API's 404", status, body)
	}
	// The console owns the rest of the name space: a browser that opens
	// the address is led to its login page.
	if status, body := get("https://" + r.API + "/"); status != http.StatusOK || !strings.Contains(body, "Log in with certificate") || !strings.Contains(body, `name="password"`) {
		t.Errorf("GET /: %d %.300s; want the console's login page", status, body)
	}
	// Devices enrol over EST beside it.
	if status, body := get("https://" + r.API + "/.well-known/est/cacerts"); status != http.StatusOK || len(body) < 100 {
		t.Errorf("GET /.well-known/est/cacerts: %d %.200s; want the CA", status, body)
	}
	login := fmt.Sprintf(`{"name":%q,"password":%q}`, BootstrapAccount, r.BootstrapPassword)
	resp, err := client.Post("https://"+r.API+"/api/v1/login", "application/json", strings.NewReader(login))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("login with the one-time password: %d", resp.StatusCode)
	}
	if status, body := get("http://" + r.Metrics + "/metrics"); status != http.StatusOK || !strings.Contains(body, "remotegate_sessions 0") {
		t.Errorf("GET /metrics: %d %.200s", status, body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Everything is closed: the ports can be bound again, and the next
	// start does not show the password again.
	for _, addr := range []string{r.API, r.Metrics, r.OpenVPN} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still bound after Run: %v", addr, err)
			continue
		}
		l.Close()
	}
	b.Close()
	b = open(t, cfg)
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- b.Run(ctx) }()
	select {
	case r = <-readies:
	case err := <-done:
		t.Fatalf("the second Run returned before it was ready: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.BootstrapPassword != "" || !r.BootstrapPending {
		t.Errorf("the second start: password %q, pending %v; want none shown, pending", r.BootstrapPassword, r.BootstrapPending)
	}
}

// Run fails, with nothing left bound and the one-time password not used
// up, when a listener cannot be bound.
func TestRunFailsOnABoundPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	port := freePort(t)
	yaml := writeYAML(t, dir, fmt.Sprintf("listen: 127.0.0.1\nport: %d\nipsec: {port: -1}\n", port))
	b := open(t, Config{DataDir: filepath.Join(dir, "data"), ConfigFile: yaml, APIAddr: taken.Addr().String(), MetricsAddr: Off,
		OnReady: func(Ready) { t.Error("ready although the API's port is taken") }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Run(ctx); err == nil || !strings.Contains(err.Error(), "management API") {
		t.Fatalf("Run with the API's port taken: %v", err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("OpenVPN's port still bound after the failed Run: %v", err)
	}
	l.Close()
	// The one-time password was not made: the next start that binds
	// shows it.
	var status bytes.Buffer
	if err := b.Status(ctx, &status); err != nil || !strings.Contains(status.String(), "bootstrap administrator: not started yet\n") {
		t.Errorf("status after the failed Run: %v\n%s", err, status.String())
	}
}

func TestHashPassword(t *testing.T) {
	var out bytes.Buffer
	if err := HashPassword(strings.NewReader("short\n"), &out); err == nil || out.Len() != 0 {
		t.Fatalf("a short password: %v, %q", err, out.String())
	}
	if err := HashPassword(strings.NewReader("a long enough password\r\n"), &out); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out.String())
	if !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("hash %q", hash)
	}
	// broker.yaml takes it.
	if _, err := loadConfig(writeYAML(t, t.TempDir(), "users:\n  - name: bob\n    password_hash: "+hash+"\n")); err != nil {
		t.Fatal(err)
	}
}

// A status names the data directory, the participants and the licenses.
func TestStatus(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	b := open(t, Config{DataDir: data})
	var out bytes.Buffer
	if err := b.Status(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"data directory: " + data + "\n", "bootstrap administrator: not started yet\n",
		"  engineer             (no address yet) user   enabled=true\n", "  plant1-gw            (no address yet) device enabled=true\n",
		"participants: 2 of 4 participants: base 4\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}
