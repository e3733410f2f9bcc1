package swaninterop

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultProposals and DefaultESPProposals are the explicit proposals of
// the lab configuration (notes §8.3). Explicit lists keep the first KE
// group predictable (ECP-256 rather than Curve25519, notes §0.4); set
// Conn.Proposals to []string{"default"} for strongSwan's own defaults.
var (
	DefaultProposals    = []string{"aes256gcm16-prfsha256-ecp256-curve25519-modp2048", "aes256-sha256-ecp256-modp2048"}
	DefaultESPProposals = []string{"aes256gcm16-ecp256", "aes256gcm16"}
)

// Pool is a virtual-IP pool a responder hands out through the
// configuration payload (swanctl.conf `pools { name { addrs = ... } }`).
type Pool struct {
	Name  string   // referenced by Conn.Pools
	Addrs string   // a subnet ("10.233.0.0/24") or a range ("10.233.0.10-10.233.0.20")
	DNS   []string // optional DNS servers (attribute only: the resolve plugin is never loaded)
}

// Conn is one swanctl connection with a single child, rendered by String
// into swanctl.conf syntax. Zero values leave the setting out (strongSwan's
// default applies) unless a field says otherwise.
type Conn struct {
	Name string // connection name; "" means ConnName
	// Child is the CHILD_SA name; "" means ChildName.
	Child string

	Version int // IKE version; 0 means 2

	LocalAddr  string // local_addrs; "" means %any
	RemoteAddr string // remote_addrs; "" means %any
	LocalPort  int    // local_port; 0 means charon's default (500)
	RemotePort int    // remote_port; 0 means 500
	Encap      bool   // encap = yes: fake a NAT (libipsec forces UDP encapsulation anyway)

	// Proposals are the IKE proposals; nil means DefaultProposals.
	Proposals []string
	// ESPProposals are the CHILD_SA proposals; nil means DefaultESPProposals.
	ESPProposals []string

	LocalID  string // local.id (and id-1 of the PSK secret)
	RemoteID string // remote.id (and id-2 of the PSK secret); "" accepts any identity
	// Auth is "pubkey" (the default) or "psk", for both rounds.
	Auth string
	// PSK is the pre-shared key for Auth "psk", rendered into the secrets
	// section (quoted, or as 0x hex when it has unusual characters).
	PSK string
	// CertFile is local.certs: a file name in x509/ next to swanctl.conf
	// (see Charon.InstallLeaf). Only for Auth "pubkey".
	CertFile string
	// SendCert is the send_cert setting ("always", "ifasked", "never");
	// "" keeps strongSwan's default ifasked (notes §0.6).
	SendCert string

	VIPs  []string // vips (initiator requesting virtual IPs): "0.0.0.0"
	Pools []Pool   // responder pools; rendered as `pools = ...` and a top-level pools section

	LocalTS  string // local_ts; "" means dynamic (the VIP or the outer address)
	RemoteTS string // remote_ts; "" means dynamic

	// RekeyTime is the IKE_SA rekey_time and ChildRekeyTime the CHILD_SA's;
	// 0 keeps strongSwan's defaults (4h / 1h), a negative value disables
	// rekeying (rendered as 0).
	RekeyTime      time.Duration
	ChildRekeyTime time.Duration
	DPDDelay       time.Duration // dpd_delay; 0 disables DPD
	DPDAction      string        // child dpd_action: clear, trap, restart
	StartAction    string        // child start_action: none (default), trap, start

	// Extra and ChildExtra are raw lines added at the end of the
	// connection's and the child's section.
	Extra      []string
	ChildExtra []string
}

// String renders the connection as a complete swanctl.conf: its
// connections section, and secrets and pools sections when it needs them.
func (c Conn) String() string { return Render(c) }

// Render renders several connections into one swanctl.conf.
func Render(conns ...Conn) string {
	var b strings.Builder
	b.WriteString("connections {\n")
	for _, c := range conns {
		c.writeConn(&b)
	}
	b.WriteString("}\n")
	var secrets, pools []string
	for _, c := range conns {
		if c.Auth == "psk" {
			s := fmt.Sprintf("  ike-%s {\n", c.name())
			if c.LocalID != "" {
				s += line(4, "id-1", c.LocalID)
			}
			if c.RemoteID != "" {
				s += line(4, "id-2", c.RemoteID)
			}
			s += "    secret = " + pskValue(c.PSK) + "\n  }\n"
			secrets = append(secrets, s)
		}
		for _, p := range c.Pools {
			s := fmt.Sprintf("  %s {\n", p.Name) + line(4, "addrs", p.Addrs)
			if len(p.DNS) > 0 {
				s += line(4, "dns", strings.Join(p.DNS, ", "))
			}
			pools = append(pools, s+"  }\n")
		}
	}
	if len(secrets) > 0 {
		b.WriteString("secrets {\n" + strings.Join(secrets, "") + "}\n")
	}
	if len(pools) > 0 {
		b.WriteString("pools {\n" + strings.Join(pools, "") + "}\n")
	}
	return b.String()
}

func (c Conn) name() string {
	if c.Name == "" {
		return ConnName
	}
	return c.Name
}

func (c Conn) child() string {
	if c.Child == "" {
		return ChildName
	}
	return c.Child
}

func (c Conn) writeConn(b *strings.Builder) {
	w := func(indent int, key, val string) {
		if val != "" {
			b.WriteString(line(indent, key, val))
		}
	}
	version := c.Version
	if version == 0 {
		version = 2
	}
	proposals, esp := c.Proposals, c.ESPProposals
	if proposals == nil {
		proposals = DefaultProposals
	}
	if esp == nil {
		esp = DefaultESPProposals
	}
	auth := c.Auth
	if auth == "" {
		auth = "pubkey"
	}

	fmt.Fprintf(b, "  %s {\n", c.name())
	w(4, "version", strconv.Itoa(version))
	w(4, "local_addrs", c.LocalAddr)
	w(4, "remote_addrs", c.RemoteAddr)
	if c.LocalPort != 0 {
		w(4, "local_port", strconv.Itoa(c.LocalPort))
	}
	if c.RemotePort != 0 {
		w(4, "remote_port", strconv.Itoa(c.RemotePort))
	}
	if c.Encap {
		w(4, "encap", "yes")
	}
	w(4, "proposals", strings.Join(proposals, ", "))
	w(4, "vips", strings.Join(c.VIPs, ", "))
	var pools []string
	for _, p := range c.Pools {
		pools = append(pools, p.Name)
	}
	w(4, "pools", strings.Join(pools, ", "))
	w(4, "rekey_time", duration(c.RekeyTime))
	if c.DPDDelay > 0 {
		w(4, "dpd_delay", duration(c.DPDDelay))
	}
	w(4, "send_cert", c.SendCert)
	for _, l := range c.Extra {
		b.WriteString("    " + l + "\n")
	}

	b.WriteString("    local {\n")
	w(6, "auth", auth)
	if auth == "pubkey" {
		w(6, "certs", c.CertFile)
	}
	w(6, "id", c.LocalID)
	b.WriteString("    }\n")
	b.WriteString("    remote {\n")
	w(6, "auth", auth)
	w(6, "id", c.RemoteID)
	b.WriteString("    }\n")

	b.WriteString("    children {\n")
	fmt.Fprintf(b, "      %s {\n", c.child())
	w(8, "local_ts", c.LocalTS)
	w(8, "remote_ts", c.RemoteTS)
	w(8, "esp_proposals", strings.Join(esp, ", "))
	w(8, "rekey_time", duration(c.ChildRekeyTime))
	w(8, "start_action", c.StartAction)
	w(8, "dpd_action", c.DPDAction)
	for _, l := range c.ChildExtra {
		b.WriteString("        " + l + "\n")
	}
	b.WriteString("      }\n    }\n  }\n")
}

// duration renders d in whole seconds the way swanctl.conf reads it; 0 is
// "" (leave the default) and negative is "0" (disabled).
func duration(d time.Duration) string {
	switch {
	case d == 0:
		return ""
	case d < 0:
		return "0"
	}
	secs := int64((d + time.Second - 1) / time.Second) // round up: 500ms must not become 0 (= disabled)
	return strconv.FormatInt(secs, 10) + "s"
}

// plainValue is what strongSwan's settings parser takes unquoted.
var plainValue = regexp.MustCompile(`^[A-Za-z0-9_.:/@%*+, -]*$`)

func line(indent int, key, val string) string {
	return strings.Repeat(" ", indent) + key + " = " + quote(val) + "\n"
}

// quote returns val as is when the settings parser reads it verbatim, in
// double quotes (with \" and \\ escaped) otherwise, e.g. for DN identities
// ("C=CH, O=x, CN=y") whose '=' must not be parsed.
func quote(val string) string {
	if plainValue.MatchString(val) && strings.TrimSpace(val) == val {
		return val
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(val) + `"`
}

// pskValue quotes a simple secret and hex-encodes anything else.
func pskValue(psk string) string {
	if regexp.MustCompile(`^[A-Za-z0-9 _.,:/+=-]+$`).MatchString(psk) {
		return `"` + psk + `"`
	}
	return "0x" + hex.EncodeToString([]byte(psk))
}
