package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// errUsage marks flag combinations that make no sense; main exits with
// status 2 for them.
var errUsage = errors.New("loadgen: usage")

// options are the command line, validated.
type options struct {
	config string // .ovpn profile
	remote string // host:port overriding the profile's first remote
	proto  string // udp or tcp overriding the profile's

	n      int // OpenVPN tunnels
	ipsecN int // IKEv2 SAs
	k      int // handshakes at a time
	max    int
	force  bool

	caCert, caKey string // issue one certificate per tunnel
	cert, key     string // or share this one
	cnPrefix      string

	ipsecServer string // host:port of the IKEv2 responder
	ipsecID     string // the responder's identity (FQDN), optional
	ipsecCA     string // roots that verify the responder's certificate

	timeout  time.Duration // per handshake
	hold     time.Duration
	progress time.Duration
	pps      int
	target   netip.AddrPort // inside the tunnels
	json     string         // write the report as JSON here ("-": stdout)
}

// maxPPS bounds the packets per second per tunnel: the traffic is there
// to keep tunnels and their state warm, not to measure throughput.
const maxPPS = 1000

// parseFlags reads the command line into options and validates them.
func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.config, "config", "", "OpenVPN client profile (.ovpn): remote, CA, tls-crypt/tls-auth, ciphers")
	fs.StringVar(&o.remote, "remote", "", "server host:port to use instead of the profile's first remote")
	fs.StringVar(&o.proto, "proto", "", "udp or tcp, instead of the profile's")
	fs.IntVar(&o.n, "n", 0, "OpenVPN tunnels to open")
	fs.IntVar(&o.ipsecN, "ipsec", 0, "IKEv2 SAs to open (with -ipsec-server)")
	fs.IntVar(&o.k, "k", 8, "handshakes at a time (a server's per-source cap on pending handshakes bounds what one host can use)")
	fs.IntVar(&o.max, "max", 1000, "refuse more tunnels than this in all unless -force")
	fs.BoolVar(&o.force, "force", false, "allow more tunnels than -max")
	fs.StringVar(&o.caCert, "ca-cert", "", "CA certificate (PEM) to issue one client certificate per tunnel from")
	fs.StringVar(&o.caKey, "ca-key", "", "the CA's private key (PEM)")
	fs.StringVar(&o.cert, "cert", "", "client certificate (PEM) all tunnels share, instead of the profile's")
	fs.StringVar(&o.key, "key", "", "its private key (PEM)")
	fs.StringVar(&o.cnPrefix, "cn-prefix", "loadgen-", "common name prefix of the issued certificates (a number follows)")
	fs.StringVar(&o.ipsecServer, "ipsec-server", "", "IKEv2 responder host:port (port 4500 or 500)")
	fs.StringVar(&o.ipsecID, "ipsec-id", "", "the responder's identity (FQDN) to require; empty: any its certificate proves")
	fs.StringVar(&o.ipsecCA, "ipsec-ca", "", "CA certificates (PEM) that verify the responder; default -ca-cert")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound of one handshake")
	fs.DurationVar(&o.hold, "hold", 0, "hold the tunnels this long after the handshakes")
	fs.DurationVar(&o.progress, "progress", time.Second, "progress interval")
	fs.IntVar(&o.pps, "pps", 0, "UDP packets per second per tunnel sent inside it to -target while holding")
	target := fs.String("target", "", "address:port inside the tunnels that -pps traffic goes to")
	fs.StringVar(&o.json, "json", "", "also write the report as JSON to this file (- for stdout)")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *target != "" {
		ap, err := netip.ParseAddrPort(*target)
		if err != nil {
			return nil, fmt.Errorf("%w: -target: %w", errUsage, err)
		}
		o.target = ap
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// validate refuses what cannot work, or would do more than asked, before
// anything is sent.
func (o *options) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
	}
	switch {
	case o.n < 0 || o.ipsecN < 0:
		return bad("-n and -ipsec must not be negative")
	case o.n == 0 && o.ipsecN == 0:
		return bad("nothing to do: give -n (OpenVPN tunnels) and/or -ipsec (IKEv2 SAs)")
	case o.n+o.ipsecN > o.max && !o.force:
		return bad("%d tunnels exceed -max %d; raise -max or add -force", o.n+o.ipsecN, o.max)
	case o.k < 1:
		return bad("-k must be at least 1")
	case o.n > 0 && o.config == "":
		return bad("OpenVPN tunnels need -config (an .ovpn profile)")
	case o.proto != "" && o.proto != "udp" && o.proto != "tcp":
		return bad("-proto must be udp or tcp")
	case o.ipsecN > 0 && o.ipsecServer == "":
		return bad("-ipsec needs -ipsec-server")
	case o.ipsecN > 0 && o.ipsecCA == "" && o.caCert == "":
		return bad("-ipsec needs -ipsec-ca (or -ca-cert) to verify the responder")
	case o.ipsecN > 0 && o.caCert == "" && o.cert == "":
		return bad("-ipsec needs a client certificate: -ca-cert/-ca-key or -cert/-key")
	case (o.caCert == "") != (o.caKey == ""):
		return bad("-ca-cert and -ca-key go together")
	case (o.cert == "") != (o.key == ""):
		return bad("-cert and -key go together")
	case o.caCert != "" && o.cert != "":
		return bad("-ca-cert/-ca-key (a certificate per tunnel) and -cert/-key (one shared) exclude each other")
	case o.timeout <= 0:
		return bad("-timeout must be positive")
	case o.hold < 0:
		return bad("-hold must not be negative")
	case o.progress <= 0:
		return bad("-progress must be positive")
	case o.pps < 0 || o.pps > maxPPS:
		return bad("-pps must be between 0 and %d", maxPPS)
	case o.pps > 0 && !o.target.IsValid():
		return bad("-pps needs -target (address:port inside the tunnels)")
	case o.pps > 0 && !o.target.Addr().Is4():
		return bad("-target must be an IPv4 address")
	case o.pps > 0 && o.hold == 0:
		return bad("-pps sends while holding: give -hold")
	}
	return nil
}
