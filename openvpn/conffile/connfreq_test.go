package conffile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/openvpn"
)

// serverWith returns the openvpn.ServerConfig of a minimal server config
// with real certificates plus extra lines.
func serverWith(t *testing.T, extra string) *openvpn.ServerConfig {
	t.Helper()
	ca := testpki.New(t, "CA")
	dir := t.TempDir()
	ca.WriteFiles(t, dir, map[string]*testpki.Leaf{"server": ca.Server(t, "server")})
	conf := "dev tun\nserver 10.8.0.0 255.255.255.0\nca ca.crt\ncert server.crt\nkey server.key\n" + extra
	path := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConnectFreqInitialDirective(t *testing.T) {
	if got := serverWith(t, "connect-freq-initial 5 10\n").ConnectFreqInitial; got != (openvpn.ConnectFreq{Max: 5, Per: 10 * time.Second}) {
		t.Errorf("connect-freq-initial 5 10: %+v", got)
	}
	if got := serverWith(t, "").ConnectFreqInitial; got != (openvpn.ConnectFreq{}) {
		t.Errorf("absent: %+v, want the zero value (stock's default)", got)
	}
	for _, bad := range []string{"connect-freq-initial\n", "connect-freq-initial 5\n", "connect-freq-initial 5 10 3\n",
		"connect-freq-initial 0 10\n", "connect-freq-initial 5 0\n", "connect-freq-initial -1 10\n", "connect-freq-initial many 10\n"} {
		_, err := Parse(strings.NewReader("dev tun\n"+bad), "/nonexistent")
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 2 || pe.Directive != "connect-freq-initial" || !errors.Is(err, ErrBadArgument) {
			t.Errorf("%q: %v, want a bad argument on line 2", bad, err)
		}
	}
}

func TestSocketBufferDirectives(t *testing.T) {
	cfg := serverWith(t, "rcvbuf 1048576\nsndbuf 524288\n")
	if cfg.ReadBuffer != 1<<20 || cfg.WriteBuffer != 512<<10 {
		t.Errorf("rcvbuf/sndbuf: %d/%d", cfg.ReadBuffer, cfg.WriteBuffer)
	}
	if cfg := serverWith(t, ""); cfg.ReadBuffer != 0 || cfg.WriteBuffer != 0 {
		t.Errorf("absent: %d/%d, want 0 (the server's default)", cfg.ReadBuffer, cfg.WriteBuffer)
	}
	// 0 is stock's "system default": the socket is left alone.
	if cfg := serverWith(t, "rcvbuf 0\nsndbuf 0\n"); cfg.ReadBuffer != -1 || cfg.WriteBuffer != -1 {
		t.Errorf("rcvbuf 0: %d/%d, want -1", cfg.ReadBuffer, cfg.WriteBuffer)
	}
	for _, bad := range []string{"rcvbuf\n", "rcvbuf -5\n", "sndbuf 4M\n", "rcvbuf 1 2\n", "sndbuf 99999999999\n"} {
		_, err := Parse(strings.NewReader("dev tun\n"+bad), "/nonexistent")
		if !errors.Is(err, ErrBadArgument) || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v, want a bad argument on line 2", bad, err)
		}
	}
}
