package keymethod

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ErrNotPushReply is returned for a message that is not a PUSH_REPLY.
var ErrNotPushReply = errors.New("keymethod: not a PUSH_REPLY")

// PushReply is the set of options a server pushes.
type PushReply struct {
	RouteGateway netip.Addr
	Topology     string
	Ping         int
	PingRestart  int
	Ifconfig     netip.Prefix // address with the netmask as prefix length (topology subnet)
	IfconfigIPv6 netip.Prefix // "ifconfig-ipv6 fd00::2/64 fd00::1": fd00::2/64
	// IfconfigIPv6Gateway is the optional second argument of ifconfig-ipv6
	// (the server's tunnel address); invalid when absent.
	IfconfigIPv6Gateway netip.Addr
	Routes              []Route
	PeerID              int // -1: absent
	Cipher              string
	ProtocolFlags       []string
	KeyDerivation       string
	TunMTU              int
	RedirectGateway     []string
	Other               []string // options not understood, verbatim
}

// Route is a pushed route.
type Route struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	Metric  int
}

// TLSEKM reports whether data keys come from the TLS exporter.
func (p *PushReply) TLSEKM() bool {
	return slices.Contains(p.ProtocolFlags, "tls-ekm") || p.KeyDerivation == "tls-ekm"
}

// Marshal returns the reply as control messages of at most maxLen bytes,
// split with push-continuation when needed.
func (p *PushReply) Marshal(maxLen int) []string {
	var opts []string
	if p.RouteGateway.IsValid() {
		opts = append(opts, "route-gateway "+p.RouteGateway.String())
	}
	if p.Topology != "" {
		opts = append(opts, "topology "+p.Topology)
	}
	if p.Ping > 0 {
		opts = append(opts, "ping "+strconv.Itoa(p.Ping))
	}
	if p.PingRestart > 0 {
		opts = append(opts, "ping-restart "+strconv.Itoa(p.PingRestart))
	}
	for _, r := range p.Routes {
		if !r.Prefix.IsValid() {
			continue
		}
		s := "route " + r.Prefix.Masked().Addr().String() + " " + netmask(r.Prefix.Bits())
		if r.Prefix.Addr().Is6() {
			s = "route-ipv6 " + r.Prefix.Masked().String()
		}
		if r.Gateway.IsValid() {
			s += " " + r.Gateway.String()
			if r.Metric > 0 {
				s += " " + strconv.Itoa(r.Metric)
			}
		}
		opts = append(opts, s)
	}
	// A nil slice is absent; an empty one is a bare "redirect-gateway".
	if p.RedirectGateway != nil {
		opts = append(opts, "redirect-gateway "+strings.Join(p.RedirectGateway, " "))
	}
	if p.Ifconfig.IsValid() {
		opts = append(opts, "ifconfig "+p.Ifconfig.Addr().String()+" "+netmask(p.Ifconfig.Bits()))
	}
	if p.IfconfigIPv6.IsValid() {
		s := "ifconfig-ipv6 " + p.IfconfigIPv6.String()
		if p.IfconfigIPv6Gateway.IsValid() {
			s += " " + p.IfconfigIPv6Gateway.String()
		}
		opts = append(opts, s)
	}
	if p.PeerID >= 0 {
		opts = append(opts, "peer-id "+strconv.Itoa(p.PeerID))
	}
	if p.Cipher != "" {
		opts = append(opts, "cipher "+p.Cipher)
	}
	if len(p.ProtocolFlags) > 0 {
		opts = append(opts, "protocol-flags "+strings.Join(p.ProtocolFlags, " "))
	}
	if p.KeyDerivation != "" {
		opts = append(opts, "key-derivation "+p.KeyDerivation)
	}
	if p.TunMTU > 0 {
		opts = append(opts, "tun-mtu "+strconv.Itoa(p.TunMTU))
	}
	opts = append(opts, p.Other...)

	const head = "PUSH_REPLY"
	const cont = ",push-continuation 2"
	var msgs []string
	cur := head
	for _, o := range opts {
		if len(cur)+1+len(o)+len(cont) > maxLen && cur != head {
			msgs = append(msgs, cur+cont)
			cur = head
		}
		cur += "," + o
	}
	if len(msgs) > 0 {
		cur += ",push-continuation 1"
	}
	return append(msgs, cur)
}

func netmask(bits int) string {
	var b [4]byte
	for i := 0; i < bits && i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b).String()
}

// maskBits converts a dotted netmask to a prefix length.
func maskBits(s string) (int, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("%w: netmask %q", ErrMalformed, s)
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("%w: netmask %q is not contiguous", ErrMalformed, s)
	}
	return n, nil
}

// ParsePushReply parses one "PUSH_REPLY,..." message. more is true when it
// ends with "push-continuation 2" (another part follows).
func ParsePushReply(msg string) (reply *PushReply, more bool, err error) {
	rest, ok := strings.CutPrefix(msg, "PUSH_REPLY")
	if !ok || (rest != "" && rest[0] != ',') {
		return nil, false, ErrNotPushReply
	}
	p := &PushReply{PeerID: -1}
	for _, opt := range strings.Split(strings.TrimPrefix(rest, ","), ",") {
		opt = strings.TrimSpace(opt)
		if opt == "" {
			continue
		}
		f := strings.Fields(opt)
		bad := func() error { return fmt.Errorf("%w: pushed option %q", ErrMalformed, opt) }
		switch f[0] {
		case "push-continuation":
			more = len(f) > 1 && f[1] == "2"
		case "route-gateway":
			if len(f) < 2 {
				return nil, false, bad()
			}
			if p.RouteGateway, err = netip.ParseAddr(f[1]); err != nil {
				return nil, false, bad()
			}
		case "topology":
			if len(f) < 2 {
				return nil, false, bad()
			}
			p.Topology = f[1]
		case "ping", "ping-restart", "peer-id", "tun-mtu":
			if len(f) < 2 {
				return nil, false, bad()
			}
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 0 {
				return nil, false, bad()
			}
			switch f[0] {
			case "ping":
				p.Ping = n
			case "ping-restart":
				p.PingRestart = n
			case "peer-id":
				p.PeerID = n
			case "tun-mtu":
				p.TunMTU = n
			}
		case "ifconfig":
			if len(f) < 3 {
				return nil, false, bad()
			}
			a, err1 := netip.ParseAddr(f[1])
			bits, err2 := maskBits(f[2])
			if err1 != nil || err2 != nil || !a.Is4() {
				return nil, false, bad()
			}
			p.Ifconfig = netip.PrefixFrom(a, bits)
		case "ifconfig-ipv6":
			if len(f) < 2 {
				return nil, false, bad()
			}
			if p.IfconfigIPv6, err = netip.ParsePrefix(f[1]); err != nil || !p.IfconfigIPv6.Addr().Is6() {
				return nil, false, bad()
			}
			if len(f) > 2 {
				if p.IfconfigIPv6Gateway, err = netip.ParseAddr(f[2]); err != nil || !p.IfconfigIPv6Gateway.Is6() {
					return nil, false, bad()
				}
			}
		case "route", "route-ipv6":
			r, ok := parseRoute(f)
			if !ok {
				// Symbolic gateways (vpn_gateway, net_gateway) and other
				// forms stay verbatim: dropping net_gateway would turn a
				// bypass route into a tunnel route.
				p.Other = append(p.Other, opt)
				continue
			}
			p.Routes = append(p.Routes, r)
		case "cipher":
			if len(f) < 2 {
				return nil, false, bad()
			}
			p.Cipher = f[1]
		case "protocol-flags":
			p.ProtocolFlags = append(p.ProtocolFlags, f[1:]...)
		case "key-derivation":
			if len(f) < 2 {
				return nil, false, bad()
			}
			p.KeyDerivation = f[1]
		case "redirect-gateway":
			p.RedirectGateway = append([]string{}, f[1:]...)
		default:
			p.Other = append(p.Other, opt)
		}
	}
	return p, more, nil
}

// Merge adds the options of a continuation part.
func (p *PushReply) Merge(o *PushReply) {
	if o.RouteGateway.IsValid() {
		p.RouteGateway = o.RouteGateway
	}
	if o.Topology != "" {
		p.Topology = o.Topology
	}
	if o.Ping > 0 {
		p.Ping = o.Ping
	}
	if o.PingRestart > 0 {
		p.PingRestart = o.PingRestart
	}
	if o.Ifconfig.IsValid() {
		p.Ifconfig = o.Ifconfig
	}
	if o.IfconfigIPv6.IsValid() {
		p.IfconfigIPv6 = o.IfconfigIPv6
		p.IfconfigIPv6Gateway = o.IfconfigIPv6Gateway
	}
	p.Routes = append(p.Routes, o.Routes...)
	if o.PeerID >= 0 {
		p.PeerID = o.PeerID
	}
	if o.Cipher != "" {
		p.Cipher = o.Cipher
	}
	p.ProtocolFlags = append(p.ProtocolFlags, o.ProtocolFlags...)
	if o.KeyDerivation != "" {
		p.KeyDerivation = o.KeyDerivation
	}
	if o.TunMTU > 0 {
		p.TunMTU = o.TunMTU
	}
	if o.RedirectGateway != nil {
		p.RedirectGateway = o.RedirectGateway
	}
	p.Other = append(p.Other, o.Other...)
}

// SplitCommands splits a TLS record into its NUL-terminated commands,
// trimming trailing CR/LF and dropping empty or non-printable ones.
func SplitCommands(record []byte) []string {
	var out []string
	for _, part := range strings.Split(string(record), "\x00") {
		part = strings.TrimRight(part, "\r\n")
		if part == "" || !printable(part) {
			continue
		}
		out = append(out, part)
	}
	return out
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Command is a control message split at its first comma.
type Command struct {
	Name string
	Arg  string
}

// ParseCommand splits "AUTH_FAILED,reason" into name and argument.
func ParseCommand(s string) Command {
	name, arg, _ := strings.Cut(s, ",")
	return Command{Name: name, Arg: arg}
}

// parseRoute understands "route network [netmask [gateway [metric]]]" and
// "route-ipv6 prefix/bits [gateway [metric]]" with numeric arguments only.
func parseRoute(f []string) (Route, bool) {
	if len(f) < 2 {
		return Route{}, false
	}
	var r Route
	rest := f[2:]
	if f[0] == "route" {
		a, err := netip.ParseAddr(f[1])
		if err != nil || !a.Is4() {
			return Route{}, false
		}
		bits := 32
		if len(rest) > 0 {
			if bits, err = maskBits(rest[0]); err != nil {
				return Route{}, false
			}
			rest = rest[1:]
		}
		r.Prefix = netip.PrefixFrom(a, bits).Masked()
	} else {
		pfx, err := netip.ParsePrefix(f[1])
		if err != nil || !pfx.Addr().Is6() {
			return Route{}, false
		}
		r.Prefix = pfx.Masked()
	}
	if len(rest) > 0 {
		gw, err := netip.ParseAddr(rest[0])
		if err != nil || gw.Is4() != r.Prefix.Addr().Is4() {
			return Route{}, false
		}
		r.Gateway = gw
		rest = rest[1:]
	}
	if len(rest) > 0 {
		m, err := strconv.Atoi(rest[0])
		if err != nil || m <= 0 || len(rest) > 1 {
			return Route{}, false
		}
		r.Metric = m
	}
	return r, true
}
