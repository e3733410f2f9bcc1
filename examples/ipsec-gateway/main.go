package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/tunnel"
)

// options are the command line.
type options struct {
	server, listen           string
	id, remoteID             string
	cert, key, ca, pskFile   string
	lan, remoteTS            string
	ike, esp                 string
	vip, vip6, once, verbose bool
	childPerLAN              bool
	tun                      string
	dpd, dialTimeout, maxBO  time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "", "responder `host[:port]` (port 4500 unless given)")
	flag.StringVar(&o.listen, "listen", "", "local UDP `address` (default: any address, an ephemeral port)")
	flag.StringVar(&o.id, "id", "", "our IKE `identity` (default: from the certificate)")
	flag.StringVar(&o.remoteID, "remote-id", "", "the responder's required IKE `identity` (default: any that the CA or PSK vouches for)")
	flag.StringVar(&o.cert, "cert", "", "our certificate chain, PEM `file`, leaf first")
	flag.StringVar(&o.key, "key", "", "our private key, PEM `file` (PKCS#8, PKCS#1 or SEC 1)")
	flag.StringVar(&o.ca, "ca", "", "PEM `file` of the CA certificates that vouch for the responder")
	flag.StringVar(&o.pskFile, "psk-file", "", "`file` holding a pre-shared key (instead of -cert/-key, or besides -ca)")
	flag.StringVar(&o.lan, "lan", "", "comma-separated `prefixes` behind the gateway (our traffic selectors); empty: ask for a virtual address")
	flag.StringVar(&o.remoteTS, "remote-ts", "0.0.0.0/0", "comma-separated `prefixes` to reach through the tunnel")
	flag.StringVar(&o.ike, "ike", "", "IKE `proposals` in strongSwan's syntax, e.g. aes256gcm16-prfsha384-ecp384,aes128-sha256-modp3072 (default: ipsec.DefaultIKEProposals)")
	flag.StringVar(&o.esp, "esp", "", "ESP `proposals` in strongSwan's syntax, e.g. aes256gcm16,aes128-sha256 (default: ipsec.DefaultESPProposals)")
	flag.BoolVar(&o.vip, "vip", false, "ask for a virtual address also with -lan")
	flag.BoolVar(&o.vip6, "vip6", false, "ask for a virtual IPv6 address too (the default when a virtual address is asked for and -remote-ts has an IPv6 prefix)")
	flag.BoolVar(&o.childPerLAN, "child-per-lan", false, "one child SA per -lan prefix, as a responder with one child configuration per LAN expects (default: one child SA for all of them)")
	flag.StringVar(&o.tun, "tun", "rgipsec0", "TUN interface `name`")
	flag.DurationVar(&o.dpd, "dpd", 30*time.Second, "dead peer detection after this much silence (negative: off)")
	flag.DurationVar(&o.dialTimeout, "dial-timeout", 30*time.Second, "bound of one connection attempt")
	flag.DurationVar(&o.maxBO, "max-backoff", time.Minute, "longest wait between connection attempts")
	flag.BoolVar(&o.once, "once", false, "exit when the tunnel ends instead of reconnecting")
	flag.BoolVar(&o.verbose, "v", false, "log debug events")
	flag.Parse()
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := o.dialConfig(log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ipsec-gateway: %v\n", err)
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, cfg, log); err != nil {
		log.Error("giving up", "error", err)
		os.Exit(1)
	}
}

// run connects, and reconnects with a backoff that doubles up to
// maxBO, until ctx ends.
func run(ctx context.Context, o options, cfg *ipsec.DialConfig, log *slog.Logger) error {
	backoff := time.Second
	for {
		start := time.Now()
		err := connectOnce(ctx, o, cfg, log)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ipsec.ErrConfig) || o.once {
			return err
		}
		if time.Since(start) > 2*o.maxBO {
			backoff = time.Second // it ran for a while: start over
		}
		log.Warn("tunnel down; reconnecting", "error", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, o.maxBO)
	}
}

// connectOnce dials, brings the TUN up and bridges until the tunnel or
// ctx ends; then the deferred Close deletes the IKE SA.
func connectOnce(ctx context.Context, o options, cfg *ipsec.DialConfig, log *slog.Logger) error {
	remote, err := resolve(o.server)
	if err != nil {
		return err
	}
	network, listen := "udp4", o.listen
	if remote.Addr().Is6() {
		network = "udp6"
	}
	if listen == "" {
		listen = ":0"
	}
	laddr, err := net.ResolveUDPAddr(network, listen)
	if err != nil {
		return fmt.Errorf("-listen %s: %w", listen, err)
	}
	conn, err := net.ListenUDP(network, laddr)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, o.dialTimeout)
	c, err := ipsec.Dial(dctx, conn, remote, cfg) // owns conn from here on
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	tun, err := tunnel.OpenTUN(tunnel.TUNConfig{Name: o.tun, MTU: c.MTU(), Addresses: c.Addresses()})
	if err != nil {
		return err
	}
	defer tun.Close()
	lans := append([]netip.Prefix(nil), cfg.LocalTS...)
	for _, ch := range cfg.AdditionalChildren {
		lans = append(lans, ch.LocalTS...)
	}
	src, src6 := sourceAddress(c, lans, false), sourceAddress(c, lans, true)
	for _, p := range c.RemoteTS() {
		args := []string{"route", "replace", p.String(), "dev", tun.Name()}
		from := src
		if p.Addr().Is6() {
			from = src6
		}
		if from.IsValid() {
			args = append(args, "src", from.String())
		}
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	log.Info("tunnel up", "tun", tun.Name(), "responder", c.RemoteID().String(), "remote", c.Remote(),
		"addresses", c.Addresses(), "local_ts", c.LocalTS(), "remote_ts", c.RemoteTS(), "source", src, "source6", src6,
		"ike", c.IKEProposal().String(), "esp", c.ESPProposal().String())
	errc := make(chan error, 2)
	go func() { errc <- tunnel.Pump(tun, c) }()
	go func() { errc <- tunnel.Pump(c, tun) }()
	select {
	case <-ctx.Done():
		log.Info("shutting down: deleting the IKE SA")
		return nil
	case <-c.Done():
		return c.Err()
	case err := <-errc:
		if cerr := c.Err(); cerr != nil {
			return cerr
		}
		return err
	}
}

// sourceAddress is the address of one family (IPv6 if is6) that the
// gateway's own packets into the tunnel come from: the virtual address of
// that family, else the gateway's address in one of the LAN prefixes,
// else none (the kernel picks). A route takes a source of its own family
// only.
func sourceAddress(c *ipsec.Client, lan []netip.Prefix, is6 bool) netip.Addr {
	for _, a := range c.Addresses() {
		if a.Addr().Is6() == is6 {
			return a.Addr()
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		for _, p := range lan {
			if p.Contains(ip.Unmap()) && ip.Unmap().Is6() == is6 {
				return ip.Unmap()
			}
		}
	}
	return netip.Addr{}
}

// resolve looks the responder up; the port defaults to 4500 (NAT-T),
// where the initiator starts.
func resolve(server string) (netip.AddrPort, error) {
	host, port := server, "4500"
	if h, p, err := net.SplitHostPort(server); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1] // an IPv6 address without a port
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("-server %s: bad port: %w", server, err)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(pn)), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("-server %s: %w", server, err)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(pn)), nil
}

// dialConfig checks the flags and loads the credentials.
func (o options) dialConfig(log *slog.Logger) (*ipsec.DialConfig, error) {
	if o.server == "" {
		return nil, errors.New("-server is required")
	}
	cfg := &ipsec.DialConfig{DPDInterval: o.dpd, Logger: log}
	var err error
	if o.id != "" {
		if cfg.LocalID, err = ipsec.ParseID(o.id); err != nil {
			return nil, fmt.Errorf("-id: %w", err)
		}
	}
	if o.remoteID != "" {
		if cfg.RemoteID, err = ipsec.ParseID(o.remoteID); err != nil {
			return nil, fmt.Errorf("-remote-id: %w", err)
		}
	}
	if o.pskFile != "" {
		b, err := os.ReadFile(o.pskFile)
		if err != nil {
			return nil, err
		}
		cfg.PSK = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(cfg.PSK) == 0 {
			return nil, fmt.Errorf("-psk-file %s is empty", o.pskFile)
		}
	}
	if o.cert != "" || o.key != "" {
		if o.cert == "" || o.key == "" {
			return nil, errors.New("-cert and -key go together")
		}
		if cfg.Certificate, err = readCerts(o.cert); err != nil {
			return nil, err
		}
		if cfg.PrivateKey, err = readKey(o.key); err != nil {
			return nil, err
		}
	}
	if o.ca != "" {
		cas, err := readCerts(o.ca)
		if err != nil {
			return nil, err
		}
		roots := x509.NewCertPool()
		for _, c := range cas {
			roots.AddCert(c)
		}
		cfg.CertificateAuthorities = cas
		cfg.VerifyPeer = func(_ ipsec.ID, chain []*x509.Certificate) error {
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			// IKE certificates carry whatever extended key usage: the
			// TLS defaults do not apply.
			_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		}
	}
	if len(cfg.PSK) == 0 && (cfg.Certificate == nil || cfg.VerifyPeer == nil) {
		return nil, errors.New("need -psk-file, or -cert, -key and -ca")
	}
	if cfg.LocalTS, err = prefixes(o.lan); err != nil {
		return nil, fmt.Errorf("-lan: %w", err)
	}
	if cfg.RemoteTS, err = prefixes(o.remoteTS); err != nil {
		return nil, fmt.Errorf("-remote-ts: %w", err)
	}
	if len(cfg.RemoteTS) == 0 {
		return nil, errors.New("-remote-ts is empty")
	}
	cfg.RequestAddress = o.vip || len(cfg.LocalTS) == 0
	has6 := func(ps []netip.Prefix) bool {
		return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr().Is6() })
	}
	// IPv6 destinations need an IPv6 source: a virtual one unless the
	// LAN has IPv6 prefixes.
	cfg.RequestAddress6 = o.vip6 || cfg.RequestAddress && has6(cfg.RemoteTS) && !has6(cfg.LocalTS)
	if o.childPerLAN {
		if len(cfg.LocalTS) == 0 {
			return nil, errors.New("-child-per-lan needs -lan")
		}
		// The first LAN's child comes with IKE_AUTH, the others by
		// CREATE_CHILD_SA, each to all of -remote-ts.
		for _, p := range cfg.LocalTS[1:] {
			cfg.AdditionalChildren = append(cfg.AdditionalChildren, ipsec.ChildTS{LocalTS: []netip.Prefix{p}, RemoteTS: cfg.RemoteTS})
		}
		cfg.LocalTS = cfg.LocalTS[:1]
	}
	if o.ike != "" {
		if cfg.IKEProposals, err = ipsec.ParseIKEProposals(o.ike); err != nil {
			return nil, fmt.Errorf("-ike: %w", err)
		}
	}
	if o.esp != "" {
		if cfg.ESPProposals, err = ipsec.ParseESPProposals(o.esp); err != nil {
			return nil, fmt.Errorf("-esp: %w", err)
		}
	}
	return cfg, nil
}

func prefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func readCerts(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertificatesPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return certs, nil
}

func readKey(file string) (crypto.Signer, error) {
	return pki.LoadKeyFile(file, nil)
}
