package profile

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Remote is one address of the broker a client may connect to: a `remote`
// line of the profile.
type Remote struct {
	// Host is an IP address or a DNS host name (see ValidHost).
	Host string
	// Port is the broker's OpenVPN port; zero means 1194.
	Port int
	// Proto is "udp" (the zero value "" means udp too) or "tcp".
	Proto string
}

func (r Remote) port() int {
	if r.Port == 0 {
		return 1194
	}
	return r.Port
}

// proto returns the transport as the profile writes it. A client's TCP is
// tcp-client: "tcp" alone would mean the same in a client config, but
// tcp-client says it without depending on the `client` line.
func (r Remote) proto() (string, error) {
	switch r.Proto {
	case "", "udp":
		return "udp", nil
	case "tcp":
		return "tcp-client", nil
	}
	return "", invalid(nil, "remote %q: protocol %q: want udp or tcp", r.Host, r.Proto)
}

// OpenVPN is a client profile (.ovpn) for stock OpenVPN 2.5/2.6 and the
// clients that read its format, with the CA, certificate, key and the
// control channel key inline, so the profile is one file. The zero value
// of every field is documented; CA and one Remote are required.
//
// The rendered profile is, in this order: the comment lines, "client",
// "dev tun", "proto" (when every remote uses the same transport; else each
// remote line names its own), the remote lines, "remote-random",
// "nobind", "remote-cert-tls server", "data-ciphers", "verb", the Extra
// lines, and the inline blocks <ca>, <cert>, <key>, then <tls-auth> (after
// "key-direction 1"), <tls-crypt> or <tls-crypt-v2>.
type OpenVPN struct {
	// Name is the participant the profile is for. When set, it must pass
	// policy.ValidName, and the profile begins with the line
	//   # remotegate profile for "NAME": openvpn --config NAME.ovpn
	Name string
	// Comment lines follow, each written after "# ". Empty: none.
	Comment []string

	// Remotes are the broker's addresses, tried in order (or in random
	// order with RemoteRandom) until one answers. At least one.
	Remotes []Remote
	// RemoteRandom adds remote-random: clients spread over several
	// brokers instead of all trying the first.
	RemoteRandom bool

	// DataCiphers is the data-ciphers list (e.g. "AES-256-GCM"); empty
	// writes none and leaves openvpn's default list.
	DataCiphers []string
	// Verb is openvpn's log level, 1 to 11; zero writes no verb line
	// (openvpn's default, 1).
	Verb int

	// CA is the PEM of the certificates the client trusts for the
	// server's (remote-cert-tls server checks the server's key usage on
	// top). Required.
	CA []byte
	// Cert and Key are the client's certificate chain and private key, in
	// PEM; both or neither (a client that authenticates with a password
	// only, through an auth-user-pass Extra line).
	Cert, Key []byte

	// At most one control channel key, as the text openvpn --genkey (or
	// openvpn.StaticKey.Marshal) writes it. None: the control channel is
	// plain TLS, and anyone can start a handshake with the server.
	//
	// TLSAuth is a tls-auth static key (the client uses key direction 1);
	// TLSCrypt a tls-crypt static key; TLSCryptV2 a tls-crypt-v2 client
	// key.
	TLSAuth, TLSCrypt, TLSCryptV2 []byte

	// Extra lines are further directives, written as they are after the
	// others (so a later one wins where openvpn keeps the last): for what
	// the fields do not cover (connect-retry, reneg-sec, auth-user-pass,
	// pull-filter ...). Each must be a single line without control
	// characters, not opening an inline block ('<'), of at most 254 bytes.
	// They come from the program, never from a participant.
	Extra []string
}

// Marshal returns the rendered profile, or an error wrapping ErrInvalid
// that names the field whose value cannot be written safely.
func (p OpenVPN) Marshal() ([]byte, error) {
	var b bytes.Buffer
	line := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	if p.Name != "" {
		if err := checkName(p.Name); err != nil {
			return nil, err
		}
		line("# remotegate profile for %q: openvpn --config %s.ovpn", p.Name, p.Name)
	}
	for _, c := range p.Comment {
		if err := checkLine("comment", c); err != nil {
			return nil, err
		}
		line("# %s", c)
	}
	line("client")
	line("dev tun")

	if len(p.Remotes) == 0 {
		return nil, invalid(nil, "no remote")
	}
	protos := make([]string, len(p.Remotes))
	uniform := true
	for i, r := range p.Remotes {
		if err := ValidHost(r.Host); err != nil {
			return nil, fmt.Errorf("remote: %w", err)
		}
		if r.Port < 0 || r.Port > 65535 {
			return nil, invalid(nil, "remote %q: port %d", r.Host, r.Port)
		}
		proto, err := r.proto()
		if err != nil {
			return nil, err
		}
		protos[i] = proto
		uniform = uniform && proto == protos[0]
	}
	if uniform {
		line("proto %s", protos[0])
	}
	for i, r := range p.Remotes {
		if uniform {
			line("remote %s %d", r.Host, r.port())
		} else {
			line("remote %s %d %s", r.Host, r.port(), protos[i])
		}
	}
	if p.RemoteRandom {
		line("remote-random")
	}
	line("nobind")
	line("remote-cert-tls server")

	if len(p.DataCiphers) > 0 {
		for _, c := range p.DataCiphers {
			if !cipherName(c) {
				return nil, invalid(nil, "data cipher %q", c)
			}
		}
		line("data-ciphers %s", strings.Join(p.DataCiphers, ":"))
	}
	switch {
	case p.Verb < 0 || p.Verb > 11:
		return nil, invalid(nil, "verb %d: want 1 to 11, or 0 for none", p.Verb)
	case p.Verb > 0:
		line("verb %d", p.Verb)
	}
	for _, x := range p.Extra {
		if err := checkLine("extra line", x); err != nil {
			return nil, err
		}
		if t := strings.TrimSpace(x); t == "" || t[0] == '<' {
			return nil, invalid(nil, "extra line %q: not a directive", x)
		}
		line("%s", x)
	}

	type block struct {
		tag   string
		data  []byte
		types []string
	}
	blocks := []block{{"ca", p.CA, []string{"CERTIFICATE"}}}
	switch {
	case len(p.CA) == 0:
		return nil, invalid(nil, "no CA")
	case (len(p.Cert) == 0) != (len(p.Key) == 0):
		return nil, invalid(nil, "a certificate needs its key, a key its certificate")
	case len(p.Cert) > 0:
		blocks = append(blocks, block{"cert", p.Cert, []string{"CERTIFICATE"}}, block{"key", p.Key, []string{"*PRIVATE KEY"}})
	}
	var keys int
	for _, k := range []block{
		{"tls-auth", p.TLSAuth, []string{"OpenVPN Static key V1"}},
		{"tls-crypt", p.TLSCrypt, []string{"OpenVPN Static key V1"}},
		{"tls-crypt-v2", p.TLSCryptV2, []string{"OpenVPN tls-crypt-v2 client key"}},
	} {
		if len(k.data) > 0 {
			keys++
			blocks = append(blocks, k)
		}
	}
	if keys > 1 {
		return nil, invalid(nil, "more than one of tls-auth, tls-crypt and tls-crypt-v2")
	}
	for _, bl := range blocks {
		data, err := checkBlock("<"+bl.tag+">", bl.data, bl.types...)
		if err != nil {
			return nil, err
		}
		if bl.tag == "tls-auth" {
			// Inline, the key has no direction argument of its own: the
			// client's is 1, the server's 0.
			line("key-direction 1")
		}
		line("<%s>", bl.tag)
		b.Write(data)
		line("</%s>", bl.tag)
	}
	// The last word on openvpn's line length, whatever wrote the line.
	for l := range strings.Lines(b.String()) {
		if len(strings.TrimRight(l, "\r\n")) > maxLine {
			return nil, invalid(nil, "a line of %d bytes: openvpn reads lines of at most %d: %.60q...", len(l), maxLine, l)
		}
	}
	return b.Bytes(), nil
}

// WriteTo renders the profile and writes it to w; a profile that cannot be
// rendered writes nothing. It implements io.WriterTo.
func (p OpenVPN) WriteTo(w io.Writer) (int64, error) {
	data, err := p.Marshal()
	if err != nil {
		return 0, err
	}
	return write(w, data)
}

// cipherName reports whether c looks like an OpenSSL cipher name
// (AES-256-GCM, CHACHA20-POLY1305, BF-CBC): letters, digits, '-' and '_'.
func cipherName(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for _, r := range []byte(c) {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
