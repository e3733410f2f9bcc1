// Command broker is the minimal remotegate broker: OpenVPN on UDP and TCP,
// IPsec, the access model, 1:1 NAT, a CA, and the management API, from one
// command. The broker itself is package broker/app; this is its flags,
// signals and messages.
//
//	go run ./examples/broker                      start with the built-in demo setup
//	go run ./examples/broker -config broker.yaml  start with your setup
//	go run ./examples/broker profile engineer     print engineer's .ovpn profile
//	go run ./examples/broker swanctl-profile gw   write gw's strongSwan profile (a tar for /etc/swanctl)
//	go run ./examples/broker profile -format mobileconfig engineer < pw > engineer.mobileconfig
//	                                              engineer's profile for macOS/iOS (also powershell
//	                                              for Windows, sswan for Android; the password of
//	                                              its PKCS#12 file on standard input)
//	go run ./examples/broker status               print the CA, the participants and the bootstrap state
//	go run ./examples/broker hash-password        read a password on stdin, print its hash for broker.yaml
//
// All state (configuration, CA, keys, certificates, tunnel addresses,
// accounts, the event log) lives in the database broker.db in the data
// directory, ./remotegate-data unless -data says otherwise; only the user
// the broker runs as may enter it (mode 0700), and its secrets are sealed
// with the key in broker.key beside it (or the file named by
// REMOTEGATE_SECRET_KEY_FILE).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/remotegate/remotegate/broker/app"
	"github.com/remotegate/remotegate/broker/profile"
)

func main() {
	var (
		cfg              app.Config
		apiAddr, metrics string
		names, vendor    stringList
	)
	flag.StringVar(&cfg.DataDir, "data", app.DefaultDataDir, "data directory (holds broker.db)")
	flag.StringVar(&cfg.ConfigFile, "config", "", "broker.yaml, applied at start; empty: the built-in demo setup on first start")
	flag.StringVar(&metrics, "metrics", app.DefaultMetricsAddr, "address for Prometheus /metrics (local only by default); empty: off")
	flag.StringVar(&apiAddr, "api", app.DefaultAPIAddr, "address of the HTTPS management API (local only by default; another address exposes it, and its certificate names it); empty: off")
	flag.Var(&names, "api-name", "a DNS `name` or IP address clients reach the management API under, for its certificate (repeatable; needed when -api listens on every address)")
	flag.Var(&vendor, "vendor-key", "vendor public key `file` that licenses must be signed with (licensetool keygen writes it; repeat for a key rotation); none: only the base license of 4 participants")
	flag.DurationVar(&cfg.LicenseGrace, "license-grace", app.DefaultLicenseGrace, "how long an expired license keeps counting")
	flag.DurationVar(&cfg.EventRetention, "event-retention", app.DefaultEventRetention, "how long the event log keeps an event")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: broker [flags] [profile [-format F] NAME | swanctl-profile NAME | status | hash-password]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	cfg.APIAddr, cfg.MetricsAddr = orOff(apiAddr), orOff(metrics)
	cfg.APINames, cfg.VendorKeyFiles = names, vendor
	if cfg.LicenseGrace == 0 {
		cfg.LicenseGrace = -1 // -license-grace 0: none (app's zero is the default)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(cfg, flag.Args(), os.Stdin, os.Stdout, os.Stderr); err != nil {
		cfg.Logger.Error("broker", "error", err)
		os.Exit(1)
	}
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// orOff maps the flags' "off" (empty) to app's.
func orOff(addr string) string {
	if addr == "" {
		return app.Off
	}
	return addr
}

// run runs the command args (none: the broker) on the standard streams.
func run(cfg app.Config, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 1 && args[0] == "hash-password" {
		return app.HashPassword(stdin, stdout)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var format app.ProfileFormat
	var name, password string
	switch {
	case len(args) == 0:
		cfg.OnReady = func(r app.Ready) { printNext(stderr, r) }
	case len(args) >= 2 && args[0] == "profile":
		var err error
		if format, name, err = profileArgs(args[1:]); err != nil {
			return err
		}
		if profile.Format(format).NeedsPassword() {
			if password, err = readPassword(stdin); err != nil {
				return err
			}
		}
	case len(args) == 2 && args[0] == "swanctl-profile":
	case len(args) == 1 && args[0] == "status":
	default:
		return fmt.Errorf("unknown command %q (want profile [-format F] NAME, swanctl-profile NAME, status or hash-password)", args)
	}
	b, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	switch {
	case len(args) == 0:
		return b.Run(ctx)
	case args[0] == "profile":
		return b.ExportProfile(ctx, stdout, name, format, password)
	case args[0] == "swanctl-profile":
		return b.WriteProfile(ctx, stdout, args[1], app.FormatSwanctl)
	}
	return b.Status(ctx, stdout)
}

// printNext tells the person who started the broker what to do next.
func printNext(w io.Writer, r app.Ready) {
	fmt.Fprintf(w, `
remotegate broker is running. Next:
  export a profile:   go run ./examples/broker -data %[1]s profile %[2]s > %[2]s.ovpn
  connect with it:    sudo openvpn --config %[2]s.ovpn
  list participants:  go run ./examples/broker -data %[1]s status
`, r.DataDir, r.Participant)
	if r.API == "" {
		return
	}
	fmt.Fprintf(w, "  web console:        https://%s/\n", r.API)
	fmt.Fprintf(w, "  management API:     https://%s/api/v1/ (OpenAPI document: /api/v1/openapi.json)\n", r.API)
	switch {
	case r.BootstrapPassword != "":
		fmt.Fprintf(w, `
  First login: name %q, one-time password %s
  (shown once; log in to the web console at https://%[3]s/ and name your administrator,
  or through the API: POST /api/v1/login, then POST /api/v1/bootstrap)
`, app.BootstrapAccount, r.BootstrapPassword, r.API)
	case r.BootstrapPending:
		fmt.Fprintf(w, "  The bootstrap administrator's one-time password was shown at the first start.\n")
	}
}

// profileArgs reads the profile command's arguments: -format (ovpn, the
// default; swanctl; or a native client's: mobileconfig, powershell,
// sswan) and the participant's name.
func profileArgs(args []string) (app.ProfileFormat, string, error) {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	format := fs.String("format", "ovpn", "ovpn, swanctl, mobileconfig (macOS, iOS), powershell (Windows) or sswan (Android); the last three read the password of their PKCS#12 file from standard input")
	if err := fs.Parse(args); err != nil {
		return "", "", err
	}
	if fs.NArg() != 1 {
		return "", "", fmt.Errorf("profile: want one participant name, got %q", fs.Args())
	}
	if _, err := profile.ParseFormat(*format); err != nil || *format == string(profile.FormatPKCS12) {
		return "", "", fmt.Errorf("profile -format %q: want ovpn, swanctl, mobileconfig, powershell or sswan", *format)
	}
	return app.ProfileFormat(*format), fs.Arg(0), nil
}

// readPassword reads one line, the password of a profile's PKCS#12 file.
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("profile: the password of the PKCS#12 file is read from standard input")
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("profile: an empty password (give it on standard input)")
	}
	return line, nil
}
