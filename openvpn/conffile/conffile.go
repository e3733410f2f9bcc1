package conffile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/remotegate/remotegate/openvpn"
)

// Errors wrapped by ParseError.
var (
	ErrUnknownDirective = errors.New("unknown directive")
	ErrUnsupported      = errors.New("not supported")
	ErrBadArgument      = errors.New("bad argument")
)

// ParseError names the line and directive of a configuration error.
type ParseError struct {
	Line      int
	Directive string
	Err       error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("conffile: line %d: %s: %v", e.Line, e.Directive, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Remote is a `remote host [port] [proto]` line.
type Remote struct {
	Host  string
	Port  int
	Proto string
}

// Directive is one parsed line.
type Directive struct {
	Line int
	Name string
	Args []string
}

// File is a parsed configuration. Integer fields are 0 when absent unless
// their comment says otherwise.
type File struct {
	Client    bool // "client" (= pull + tls-client)
	TLSServer bool
	TLSClient bool
	Pull      bool
	Mode      string // "server" with `mode server` or the `server` macro

	Dev     string // "tun", "tun0", ...; only tun devices are supported
	DevType string
	Proto   string // "udp" or "tcp"
	Family  string // "", "4" or "6" (from udp4, tcp6-server, ...)
	Local   string
	Port    int
	Remotes []Remote
	Nobind  bool

	Server         netip.Prefix // server 10.8.0.0 255.255.255.0
	ServerIPv6     netip.Prefix
	Topology       string
	ClientToClient bool
	DuplicateCN    bool
	TCPNoDelay     bool     // tcp-nodelay
	Push           []string // contents of push "..." lines
	Routes         [][]string
	// RoutesIPv6 are the arguments of route-ipv6 lines (prefix/bits
	// [gateway [metric]]).
	RoutesIPv6 [][]string

	Keepalive   [2]int // interval, timeout
	Ping        int
	PingRestart int

	CA, Cert, Key []byte // PEM
	ExtraCerts    []byte
	DH            string
	// CRL is the certificate revocation list of crl-verify (PEM or DER).
	CRL []byte

	TLSAuth      []byte
	KeyDirection int // -1 when absent
	TLSCrypt     []byte
	TLSCryptV2   []byte

	DataCiphers         []string
	DataCiphersFallback string
	Cipher              string
	Auth                string
	TLSVersionMin       string

	RenegSec         int // -1 when absent; 0 disables
	RenegBytes       int64
	RenegPkts        int64
	HandWindow       int
	TLSTimeout       int
	TransitionWindow int

	ExplicitExitNotify int
	RemoteCertTLS      string
	VerifyClientCert   string

	AuthUserPass       bool
	AuthUserPassFile   string
	Username, Password string // from an inline <auth-user-pass> block

	Compress string // argument of compress ("stub" when none), "" when absent
	CompLZO  string // argument of comp-lzo ("yes" when none), "" when absent

	MaxClients int
	TunMTU     int
	Verb       int

	// ConnectFreqInitial holds connect-freq-initial's max and seconds;
	// zero when absent.
	ConnectFreqInitial [2]int
	// RcvBuf and SndBuf are the rcvbuf and sndbuf sizes in bytes; -1 when
	// absent (0 is stock's "leave the system default").
	RcvBuf, SndBuf int

	// Ignored lists the harmless directives that were skipped.
	Ignored []Directive
}

// ParseFile reads a config file; relative file names in it are resolved
// against its directory.
func ParseFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("conffile: %w", err)
	}
	defer fh.Close()
	return Parse(fh, filepath.Dir(path))
}

var ignored = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`persist-key persist-tun mute status status-version log log-append user group
		resolv-retry mute-replay-warnings ifconfig-pool-persist script-security setenv setenv-safe float
		txqueuelen mssfix fast-io suppress-timestamps writepid daemon auth-nocache connect-retry connect-retry-max
		server-poll-timeout remote-random ignore-unknown-option block-outside-dns dhcp-option
		redirect-gateway route-nopull push-peer-info tun-ipv6 route-delay route-method machine-readable-output
		tls-cert-profile ecdh-curve ncp-disable opt-verify keysize tls-exit single-session username-as-common-name`) {
		ignored[n] = true
	}
}

// unsupported maps directives stock openvpn knows to why we refuse them.
var unsupported = map[string]string{
	"fragment":                "--fragment (internal fragmentation) is not implemented; use the path MTU",
	"secret":                  "static-key mode is insecure and not implemented; use TLS mode",
	"plugin":                  "plugins are C shared objects; use the Go callbacks (VerifyUserPass, tls.Config.VerifyConnection)",
	"up":                      "scripts are not run; the program configures its TUN device itself",
	"down":                    "scripts are not run",
	"auth-user-pass-verify":   "scripts are not run; use openvpn.ServerConfig.VerifyUserPass",
	"client-connect":          "scripts are not run; use tunnel.Handler.Admit",
	"client-disconnect":       "scripts are not run; use tunnel.Handler.Down",
	"learn-address":           "scripts are not run",
	"tls-verify":              "scripts are not run; use tls.Config.VerifyConnection",
	"management":              "the management interface is not implemented",
	"client-config-dir":       "per-client config files are not implemented; use tunnel.Handler.Admit",
	"ifconfig":                "point-to-point (non-server) mode is not implemented",
	"ifconfig-ipv6":           "point-to-point (non-server) mode is not implemented; servers take server-ipv6",
	"pkcs12":                  "PKCS#12 files are not read; use ca, cert and key (PEM)",
	"tls-groups":              "TLS groups are chosen by Go's crypto/tls",
	"tls-cipher":              "TLS cipher suites are chosen by Go's crypto/tls",
	"dev-node":                "dev-node is Windows-only",
	"dynamic-tls-crypt":       "dynamic tls-crypt is not implemented",
	"http-proxy":              "proxies are not implemented",
	"socks-proxy":             "proxies are not implemented",
	"askpass":                 "encrypted private keys are not supported; decrypt the key first",
	"auth-user-pass-optional": "not implemented",
}

var inlineBlocks = map[string]bool{"ca": true, "cert": true, "key": true, "tls-auth": true, "tls-crypt": true,
	"tls-crypt-v2": true, "extra-certs": true, "dh": true, "auth-user-pass": true}

// Parse reads a config from r; baseDir resolves relative file names.
func Parse(r io.Reader, baseDir string) (*File, error) {
	f := &File{KeyDirection: -1, RenegSec: -1, RcvBuf: -1, SndBuf: -1}
	inline := map[string][]byte{}
	var directives []Directive
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' || text[0] == ';' {
			continue
		}
		if strings.HasPrefix(text, "<") && strings.HasSuffix(text, ">") && !strings.HasPrefix(text, "</") {
			name := text[1 : len(text)-1]
			if !inlineBlocks[name] {
				return nil, &ParseError{line, "<" + name + ">", fmt.Errorf("%w: no such inline block", ErrUnknownDirective)}
			}
			start := line
			var body strings.Builder
			closed := false
			for sc.Scan() {
				line++
				l := sc.Text()
				if strings.TrimSpace(l) == "</"+name+">" {
					closed = true
					break
				}
				body.WriteString(l + "\n")
			}
			if !closed {
				return nil, &ParseError{start, "<" + name + ">", fmt.Errorf("%w: block not closed", ErrBadArgument)}
			}
			inline[name] = []byte(body.String())
			continue
		}
		args, err := split(text)
		if err != nil {
			return nil, &ParseError{line, text, err}
		}
		if len(args) == 0 {
			continue
		}
		directives = append(directives, Directive{Line: line, Name: strings.TrimPrefix(args[0], "--"), Args: args[1:]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("conffile: %w", err)
	}
	p := parser{f: f, baseDir: baseDir, inline: inline}
	for _, d := range directives {
		if err := p.apply(d); err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, &ParseError{d.Line, d.Name, err}
		}
	}
	// Inline blocks without a directive line stand on their own.
	for name := range inline {
		if p.used[name] {
			continue
		}
		if err := p.apply(Directive{Name: name, Args: []string{"[inline]"}}); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// split tokenizes a line as openvpn does: whitespace separates, quotes
// group, backslash escapes, and a token starting with # or ; ends the line.
func split(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inTok := false
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' && i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inTok = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inTok = true
		case c == ' ' || c == '\t':
			if inTok {
				out = append(out, cur.String())
				cur.Reset()
				inTok = false
			}
		case (c == '#' || c == ';') && !inTok:
			i = len(s)
		default:
			cur.WriteByte(c)
			inTok = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%w: unterminated quote", ErrBadArgument)
	}
	if inTok {
		out = append(out, cur.String())
	}
	return out, nil
}

type parser struct {
	f       *File
	baseDir string
	inline  map[string][]byte
	used    map[string]bool
}

func (p *parser) need(d Directive, min, max int) error {
	if len(d.Args) < min || (max >= 0 && len(d.Args) > max) {
		if max == min {
			return fmt.Errorf("%w: want %d argument(s), got %d", ErrBadArgument, min, len(d.Args))
		}
		return fmt.Errorf("%w: want %d to %d arguments, got %d", ErrBadArgument, min, max, len(d.Args))
	}
	return nil
}

// maxSocketBuffer bounds rcvbuf and sndbuf: far above any kernel's cap,
// low enough that a typo (a size in bits, an extra digit) is caught.
const maxSocketBuffer = 1 << 30

func atoi(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %q is not a non-negative number", ErrBadArgument, s)
	}
	return n, nil
}

// content returns the data of a file argument or of its inline block.
func (p *parser) content(d Directive) ([]byte, error) {
	if p.used == nil {
		p.used = map[string]bool{}
	}
	if b, ok := p.inline[d.Name]; ok && (len(d.Args) == 0 || d.Args[0] == "[inline]") {
		p.used[d.Name] = true
		return b, nil
	}
	if len(d.Args) == 0 {
		return nil, fmt.Errorf("%w: file name missing", ErrBadArgument)
	}
	if d.Args[0] == "[inline]" {
		return nil, fmt.Errorf("%w: [inline] without a <%s> block", ErrBadArgument, d.Name)
	}
	path := d.Args[0]
	if !filepath.IsAbs(path) {
		path = filepath.Join(p.baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadArgument, err)
	}
	p.used[d.Name] = true
	return b, nil
}

func parsePrefix(addr, mask string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%w: %q is not an IPv4 address", ErrBadArgument, addr)
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() {
		return netip.Prefix{}, fmt.Errorf("%w: %q is not a netmask", ErrBadArgument, mask)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	bits := 0
	for v&0x80000000 != 0 {
		bits++
		v <<= 1
	}
	if v != 0 {
		return netip.Prefix{}, fmt.Errorf("%w: netmask %q is not contiguous", ErrBadArgument, mask)
	}
	return netip.PrefixFrom(a, bits), nil
}

func normalizeProto(s string) (proto, family string, err error) {
	s = strings.ToLower(s)
	s = strings.TrimSuffix(strings.TrimSuffix(s, "-server"), "-client")
	switch s {
	case "udp", "tcp":
		return s, "", nil
	case "udp4", "udp6", "tcp4", "tcp6":
		return s[:3], s[3:], nil
	}
	return "", "", fmt.Errorf("%w: protocol %q", ErrBadArgument, s)
}

func (p *parser) apply(d Directive) error {
	f := p.f
	if ignored[d.Name] {
		f.Ignored = append(f.Ignored, d)
		return nil
	}
	if why, ok := unsupported[d.Name]; ok {
		return fmt.Errorf("%w: %s", ErrUnsupported, why)
	}
	var err error
	switch d.Name {
	case "client":
		f.Client, f.Pull, f.TLSClient = true, true, true
	case "pull":
		f.Pull = true
	case "tls-client":
		f.TLSClient = true
	case "tls-server":
		f.TLSServer = true
	case "mode":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		if d.Args[0] != "server" {
			return fmt.Errorf("%w: only mode server (point-to-point mode is not implemented)", ErrUnsupported)
		}
		f.Mode = "server"
	case "server":
		if err := p.need(d, 2, 3); err != nil {
			return err
		}
		if f.Server, err = parsePrefix(d.Args[0], d.Args[1]); err != nil {
			return err
		}
		f.Mode, f.TLSServer = "server", true
	case "server-ipv6":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		if f.ServerIPv6, err = netip.ParsePrefix(d.Args[0]); err != nil {
			return fmt.Errorf("%w: %w", ErrBadArgument, err)
		}
	case "dev":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		if strings.HasPrefix(d.Args[0], "tap") {
			return fmt.Errorf("%w: tap (layer 2) devices are not implemented; use dev tun", ErrUnsupported)
		}
		f.Dev = d.Args[0]
	case "dev-type":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		if d.Args[0] != "tun" {
			return fmt.Errorf("%w: only dev-type tun", ErrUnsupported)
		}
		f.DevType = d.Args[0]
	case "proto":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		if f.Proto, f.Family, err = normalizeProto(d.Args[0]); err != nil {
			return err
		}
	case "port", "lport", "rport":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		if f.Port, err = atoi(d.Args[0]); err != nil || f.Port > 65535 {
			return fmt.Errorf("%w: port %q", ErrBadArgument, d.Args[0])
		}
	case "local":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		f.Local = d.Args[0]
	case "remote":
		if err := p.need(d, 1, 3); err != nil {
			return err
		}
		r := Remote{Host: d.Args[0]}
		if len(d.Args) > 1 {
			if r.Port, err = atoi(d.Args[1]); err != nil || r.Port > 65535 {
				return fmt.Errorf("%w: port %q", ErrBadArgument, d.Args[1])
			}
		}
		if len(d.Args) > 2 {
			if r.Proto, _, err = normalizeProto(d.Args[2]); err != nil {
				return err
			}
		}
		f.Remotes = append(f.Remotes, r)
	case "nobind":
		f.Nobind = true
	case "topology":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		if d.Args[0] != "subnet" {
			return fmt.Errorf("%w: topology %s; only topology subnet is implemented", ErrUnsupported, d.Args[0])
		}
		f.Topology = d.Args[0]
	case "client-to-client":
		f.ClientToClient = true
	case "duplicate-cn":
		f.DuplicateCN = true
	case "tcp-nodelay":
		f.TCPNoDelay = true
	case "push":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		f.Push = append(f.Push, d.Args[0])
	case "route":
		if err := p.need(d, 1, 4); err != nil {
			return err
		}
		f.Routes = append(f.Routes, d.Args)
	case "route-ipv6":
		if err := p.need(d, 1, 3); err != nil {
			return err
		}
		if _, err := netip.ParsePrefix(d.Args[0]); err != nil {
			return fmt.Errorf("%w: %w", ErrBadArgument, err)
		}
		f.RoutesIPv6 = append(f.RoutesIPv6, d.Args)
	case "keepalive":
		if err := p.need(d, 2, 2); err != nil {
			return err
		}
		if f.Keepalive[0], err = atoi(d.Args[0]); err != nil {
			return err
		}
		if f.Keepalive[1], err = atoi(d.Args[1]); err != nil {
			return err
		}
	case "ping", "ping-restart", "hand-window", "tls-timeout", "tran-window", "max-clients", "tun-mtu", "verb", "reneg-sec", "explicit-exit-notify":
		if d.Name == "explicit-exit-notify" && len(d.Args) == 0 {
			f.ExplicitExitNotify = 1
			return nil
		}
		if err := p.need(d, 1, 2); err != nil {
			return err
		}
		n, err := atoi(d.Args[0])
		if err != nil {
			return err
		}
		switch d.Name {
		case "ping":
			f.Ping = n
		case "ping-restart":
			f.PingRestart = n
		case "hand-window":
			f.HandWindow = n
		case "tls-timeout":
			f.TLSTimeout = n
		case "tran-window":
			f.TransitionWindow = n
		case "max-clients":
			f.MaxClients = n
		case "tun-mtu":
			f.TunMTU = n
		case "verb":
			f.Verb = n
		case "reneg-sec":
			f.RenegSec = n
		case "explicit-exit-notify":
			f.ExplicitExitNotify = n
		}
	case "connect-freq-initial":
		if err := p.need(d, 2, 2); err != nil {
			return err
		}
		for i, a := range d.Args {
			n, err := strconv.Atoi(a)
			if err != nil || n < 1 {
				return fmt.Errorf("%w: %q: want connect-freq-initial MAX SECONDS, both at least 1", ErrBadArgument, a)
			}
			f.ConnectFreqInitial[i] = n
		}
	case "rcvbuf", "sndbuf":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		n, err := atoi(d.Args[0])
		if err != nil {
			return err
		}
		if n > maxSocketBuffer {
			return fmt.Errorf("%w: %d bytes is more than %d", ErrBadArgument, n, maxSocketBuffer)
		}
		if d.Name == "rcvbuf" {
			f.RcvBuf = n
		} else {
			f.SndBuf = n
		}
	case "reneg-bytes", "reneg-pkts":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		n, err := strconv.ParseInt(d.Args[0], 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: %q", ErrBadArgument, d.Args[0])
		}
		if d.Name == "reneg-bytes" {
			f.RenegBytes = n
		} else {
			f.RenegPkts = n
		}
	case "ca":
		f.CA, err = p.content(d)
	case "cert":
		f.Cert, err = p.content(d)
	case "key":
		f.Key, err = p.content(d)
	case "crl-verify":
		if err := p.need(d, 1, 2); err != nil {
			return err
		}
		if len(d.Args) == 2 {
			return fmt.Errorf("%w: crl-verify dir (a directory of serials) is not implemented; use a CRL file", ErrUnsupported)
		}
		f.CRL, err = p.content(d)
	case "extra-certs":
		f.ExtraCerts, err = p.content(d)
	case "dh":
		if len(d.Args) == 1 && d.Args[0] == "none" {
			f.DH = "none"
			return nil
		}
		_, err = p.content(d)
		f.DH = "file"
	case "tls-auth":
		if err := p.need(d, 0, 2); err != nil {
			return err
		}
		if f.TLSAuth, err = p.content(d); err != nil {
			return err
		}
		if len(d.Args) == 2 {
			if d.Args[1] != "0" && d.Args[1] != "1" {
				return fmt.Errorf("%w: key direction %q, want 0 or 1", ErrBadArgument, d.Args[1])
			}
			f.KeyDirection = int(d.Args[1][0] - '0')
		}
	case "key-direction":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		if d.Args[0] != "0" && d.Args[0] != "1" {
			return fmt.Errorf("%w: key direction %q, want 0 or 1", ErrBadArgument, d.Args[0])
		}
		f.KeyDirection = int(d.Args[0][0] - '0')
	case "tls-crypt":
		if err := p.need(d, 0, 1); err != nil {
			return err
		}
		f.TLSCrypt, err = p.content(d)
	case "tls-crypt-v2":
		if err := p.need(d, 0, 2); err != nil {
			return err
		}
		if len(d.Args) == 2 && d.Args[1] != "force-cookie" && d.Args[1] != "allow-noncookie" {
			return fmt.Errorf("%w: %q", ErrBadArgument, d.Args[1])
		}
		f.TLSCryptV2, err = p.content(d)
	case "data-ciphers", "ncp-ciphers":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		f.DataCiphers = strings.Split(d.Args[0], ":")
	case "data-ciphers-fallback":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		f.DataCiphersFallback = d.Args[0]
	case "cipher":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		f.Cipher = d.Args[0]
	case "auth":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		f.Auth = d.Args[0]
	case "tls-version-min":
		if err := p.need(d, 1, 2); err != nil {
			return err
		}
		if d.Args[0] != "1.2" && d.Args[0] != "1.3" {
			return fmt.Errorf("%w: TLS %s is below the 1.2 minimum or unknown", ErrUnsupported, d.Args[0])
		}
		f.TLSVersionMin = d.Args[0]
	case "remote-cert-tls":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		if d.Args[0] != "server" && d.Args[0] != "client" {
			return fmt.Errorf("%w: %q", ErrBadArgument, d.Args[0])
		}
		f.RemoteCertTLS = d.Args[0]
	case "verify-client-cert":
		if err := p.need(d, 1, 1); err != nil {
			return err
		}
		switch d.Args[0] {
		case "none", "optional", "require":
		default:
			return fmt.Errorf("%w: %q", ErrBadArgument, d.Args[0])
		}
		f.VerifyClientCert = d.Args[0]
	case "auth-user-pass":
		f.AuthUserPass = true
		if b, ok := p.inline["auth-user-pass"]; ok && (len(d.Args) == 0 || d.Args[0] == "[inline]") {
			if p.used == nil {
				p.used = map[string]bool{}
			}
			p.used["auth-user-pass"] = true
			lines := strings.SplitN(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", 3)
			if len(lines) < 2 {
				return fmt.Errorf("%w: <auth-user-pass> needs a username and a password line", ErrBadArgument)
			}
			f.Username, f.Password = lines[0], lines[1]
		} else if len(d.Args) > 0 {
			f.AuthUserPassFile = d.Args[0]
			if !filepath.IsAbs(f.AuthUserPassFile) {
				f.AuthUserPassFile = filepath.Join(p.baseDir, f.AuthUserPassFile)
			}
		}
	case "compress", "comp-lzo":
		// Only the framing is implemented; with allow-compression no (the
		// 2.6 default) stock peers never compress either.
		if err := p.need(d, 0, 1); err != nil {
			return err
		}
		if _, err := openvpn.ParseCompression(strings.Join(append([]string{d.Name}, d.Args...), " ")); err != nil {
			return fmt.Errorf("%w: %s %s: want compress [stub|stub-v2|lz4|lz4-v2|lzo] or comp-lzo [yes|no|adaptive]", ErrBadArgument, d.Name, strings.Join(d.Args, " "))
		}
		if d.Name == "compress" {
			f.Compress = "stub"
			if len(d.Args) > 0 {
				f.Compress = d.Args[0]
			}
		} else {
			f.CompLZO = "yes"
			if len(d.Args) > 0 {
				f.CompLZO = d.Args[0]
			}
		}
	case "allow-compression":
		if err := p.need(d, 0, 1); err != nil {
			return err
		}
		if len(d.Args) == 1 && d.Args[0] == "yes" {
			return fmt.Errorf("%w: allow-compression yes: packets are never compressed or decompressed, only framed (use no or asym)", ErrUnsupported)
		}
	default:
		return fmt.Errorf("%w %q", ErrUnknownDirective, d.Name)
	}
	return err
}
