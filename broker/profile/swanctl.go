package profile

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Swanctl is a strongSwan profile: a tar archive to unpack into
// /etc/swanctl, with swanctl.conf holding the connection "remotegate", the
// participant's certificate (x509/NAME.pem) and key (private/NAME.pem),
// and the broker's CA (x509ca/remotegate-ca.pem). The participant
// initiates IKEv2 with NAT traversal on the broker's port (4500 by
// default) and asks for a virtual IP.
//
// A device announces its LANs as its traffic selectors (the broker narrows
// them to the networks configured for it), one child SA per LAN, and
// reaches the broker's address pool: the child "remotegate" carries its
// virtual IP and its first LAN, "remotegate-2" its second LAN, and so on,
// all on one IKE SA, as strongSwan sites with several LANs are usually
// configured; the broker sends each LAN's traffic on its own child. A user
// asks for everything (0.0.0.0/0) and is given what its relations allow.
type Swanctl struct {
	// Name is the participant's name: the names of the archive members
	// and the certificate's file name in swanctl.conf. It must pass
	// policy.ValidName.
	Name string
	// RemoteAddrs are the broker's addresses (IP addresses or host names,
	// see ValidHost), written as swanctl's remote_addrs list. At least one.
	RemoteAddrs []string
	// Port is the broker's UDP port for IKE with NAT traversal and ESP
	// (remote_port); zero means 4500.
	Port int
	// ServerID is the identity the broker authenticates with (remote.id),
	// as IKEIdentity returns it for its certificate. Required.
	ServerID string

	// Device says the profile is a device's: its local traffic selectors
	// are its LANs besides its virtual IP, and its remote one the Pool.
	// Otherwise the profile is a user's, and LANs must be empty.
	Device bool
	// LANs are a device's networks behind it.
	LANs []netip.Prefix
	// Pool is the broker's tunnel address pool; required for a device.
	Pool netip.Prefix
	// Pool6 is the broker's IPv6 tunnel pool, if it has one: the profile
	// then asks for an IPv6 virtual address too (vips = 0.0.0.0, ::), and
	// a user's remote traffic selectors add ::/0, a device's Pool6, so
	// that the participant's IPv6 traffic goes through the tunnel.
	Pool6 netip.Prefix

	// Cert and Key are the participant's certificate and private key, CA
	// the broker's CA certificate, all in PEM. Required.
	Cert, Key, CA []byte

	// IKEProposals and ESPProposals are the broker's proposals for the
	// participant in strongSwan's syntax (proposals and esp_proposals);
	// empty: a strong choice out of the broker's defaults.
	IKEProposals, ESPProposals string

	// Now stamps the archive members; nil means time.Now.
	Now func() time.Time
}

// IKEIdentity is a broker's IKE identity as strongSwan writes it for the
// broker's certificate leaf: its first DNS name, else its subject.
func IKEIdentity(leaf *x509.Certificate) string {
	if leaf == nil {
		return ""
	}
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return leaf.Subject.String()
}

// Marshal returns the tar archive, or an error wrapping ErrInvalid that
// names the value that cannot be written safely.
func (p Swanctl) Marshal() ([]byte, error) {
	if err := checkName(p.Name); err != nil {
		return nil, err
	}
	if len(p.RemoteAddrs) == 0 {
		return nil, invalid(nil, "no remote address")
	}
	for _, a := range p.RemoteAddrs {
		if err := ValidHost(a); err != nil {
			return nil, fmt.Errorf("remote_addrs: %w", err)
		}
	}
	port := p.Port
	if port == 0 {
		port = 4500
	}
	if port < 0 || port > 65535 {
		return nil, invalid(nil, "port %d", p.Port)
	}
	if p.ServerID == "" {
		return nil, invalid(nil, "no server identity")
	}
	var quoted [3]string
	for i, v := range []string{strings.Join(p.RemoteAddrs, ","), p.Name + ".pem", p.ServerID} {
		var err error
		if quoted[i], err = SwanctlValue(v); err != nil {
			return nil, err
		}
	}
	ike, esp := defaultSwanctlIKE, defaultSwanctlESP
	if p.IKEProposals != "" {
		ike = strings.ToLower(p.IKEProposals)
	}
	if p.ESPProposals != "" {
		esp = strings.ToLower(p.ESPProposals)
	}
	for _, v := range []string{ike, esp} {
		if err := checkProposals(v); err != nil {
			return nil, err
		}
	}
	// localTS are the local_ts of the children, one per LAN; the first
	// child carries the virtual IP too.
	localTS := []string{"dynamic"}
	remoteTS := "0.0.0.0/0"
	if p.Device {
		if !p.Pool.IsValid() {
			return nil, invalid(nil, "a device's profile needs the broker's address pool")
		}
		for i, l := range p.LANs {
			if !l.IsValid() {
				return nil, invalid(nil, "LAN %v", l)
			}
			if i == 0 {
				localTS[0] += "," + l.Masked().String()
			} else {
				localTS = append(localTS, l.Masked().String())
			}
		}
		remoteTS = p.Pool.Masked().String()
		if p.Pool6.IsValid() {
			remoteTS += "," + p.Pool6.Masked().String()
		}
	} else if p.Pool6.IsValid() && len(p.LANs) == 0 {
		remoteTS += ",::/0"
	} else if len(p.LANs) > 0 {
		return nil, invalid(nil, "LANs in a user's profile")
	}
	vips := "0.0.0.0"
	if p.Pool6.IsValid() {
		vips = "0.0.0.0, ::"
	}
	var pems [3][]byte
	for i, f := range []struct {
		what string
		data []byte
		typ  string
	}{{"certificate", p.Cert, "CERTIFICATE"}, {"key", p.Key, "*PRIVATE KEY"}, {"CA", p.CA, "CERTIFICATE"}} {
		var err error
		if pems[i], err = checkBlock(f.what, f.data, f.typ); err != nil {
			return nil, err
		}
	}
	name := p.Name
	conf := fmt.Sprintf(`# remotegate IPsec profile for %[1]q.
# Unpack into /etc/swanctl (tar -C /etc/swanctl -xf %[1]s.tar), then:
#   swanctl --load-all && swanctl --initiate --child remotegate
connections {
  remotegate {
    version = 2
    remote_addrs = %[2]s
    local_port = 4500
    remote_port = %[3]d
    encap = yes
    vips = %[7]s
    proposals = %[8]s
    dpd_delay = 30s
    local {
      auth = pubkey
      certs = %[6]s
    }
    remote {
      auth = pubkey
      id = %[4]s
    }
    children {
%[5]s    }
  }
}
`, name, quoted[0], port, quoted[2], children(localTS, remoteTS, esp), quoted[1], vips, ike)
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	mtime := now()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range []struct {
		name string
		data []byte
		mode int64
	}{
		{"swanctl.conf", []byte(conf), 0o644},
		{"x509/" + name + ".pem", pems[0], 0o644},
		{"private/" + name + ".pem", pems[1], 0o600},
		{"x509ca/remotegate-ca.pem", pems[2], 0o644},
	} {
		// The name passed policy.ValidName; this is the last word on paths.
		if !fs.ValidPath(f.name) || strings.Contains(f.name, "..") {
			return nil, invalid(nil, "archive member %q", f.name)
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			return nil, fmt.Errorf("profile: tar: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("profile: tar: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("profile: tar: %w", err)
	}
	return b.Bytes(), nil
}

// children renders the children section: one child per entry of
// localTS, each to remoteTS. Loading the profile starts them all
// (start_action), on one IKE SA.
func children(localTS []string, remoteTS, esp string) string {
	var b strings.Builder
	for i, ts := range localTS {
		name := "remotegate"
		if i > 0 {
			name = fmt.Sprintf("remotegate-%d", i+1)
		}
		fmt.Fprintf(&b, `      %s {
        local_ts = %s
        remote_ts = %s
        esp_proposals = %s
        dpd_action = restart
        start_action = start
      }
`, name, ts, remoteTS, esp)
	}
	return b.String()
}

// WriteTo writes the tar archive to w; a profile that cannot be rendered
// writes nothing. It implements io.WriterTo.
func (p Swanctl) WriteTo(w io.Writer) (int64, error) {
	data, err := p.Marshal()
	if err != nil {
		return 0, err
	}
	return write(w, data)
}

// SwanctlValue returns v as a quoted swanctl.conf value. Unquoted,
// swanctl.conf ends a value at a line break and reads "#" as a comment; in
// quotes these are text, but a quote ends the value and a backslash
// escapes. Rather than depend on escapes, control characters (line breaks
// among them), Unicode format and separator characters, quotes and
// backslashes are refused with an error wrapping ErrInvalid: none of the
// values a profile holds needs them.
func SwanctlValue(v string) (string, error) {
	if !utf8.ValidString(v) || strings.ContainsAny(v, "\"\\") || strings.ContainsFunc(v, unicode.IsControl) ||
		strings.ContainsFunc(v, func(r rune) bool { return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) }) {
		return "", invalid(nil, "%q in swanctl.conf", v)
	}
	return `"` + v + `"`, nil
}

// The proposals of a profile whose broker has the defaults: the strongest
// of those every strongSwan 5.9 has.
const (
	defaultSwanctlIKE = "aes256gcm16-prfsha256-x25519-ecp256, aes256-sha256-x25519-ecp256-modp2048"
	defaultSwanctlESP = "aes256gcm16, aes128gcm16, chacha20poly1305"
)

// checkProposals refuses a proposal list with anything but the letters,
// digits, dashes, commas and spaces of strongSwan's syntax, so that it
// cannot end the value. Whether the algorithms exist is the caller's
// check (ipsec.ParseESPProposals).
func checkProposals(v string) error {
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == ',' || r == ' ') {
			return invalid(nil, "proposals %q: only a-z, 0-9, '-', ',' and ' '", v)
		}
	}
	if strings.TrimSpace(v) == "" {
		return invalid(nil, "empty proposals")
	}
	return nil
}
