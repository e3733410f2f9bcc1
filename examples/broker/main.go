// Command broker is the minimal remotegate broker: OpenVPN on UDP and TCP,
// the access model, 1:1 NAT, a CA, and the management API, from one
// command.
//
//	go run ./examples/broker                      start with the built-in demo setup
//	go run ./examples/broker -config broker.yaml  start with your setup
//	go run ./examples/broker profile engineer     print engineer's .ovpn profile
//	go run ./examples/broker swanctl-profile gw   write gw's strongSwan profile (a tar for /etc/swanctl)
//	go run ./examples/broker status               print the CA, the participants and the bootstrap state
//	go run ./examples/broker hash-password        read a password on stdin, print its hash for broker.yaml
//
// All state (configuration, CA, keys, certificates, tunnel addresses,
// accounts, the event log) lives in the database broker.db in the data
// directory, ./remotegate-data unless -data says otherwise; only the user
// the broker runs as may enter it (mode 0700, see secureDataDir), and its
// secrets are sealed with the key in broker.key beside it (or the file
// named by REMOTEGATE_SECRET_KEY_FILE).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

func main() {
	var o options
	flag.StringVar(&o.dataDir, "data", "remotegate-data", "data directory (holds broker.db)")
	flag.StringVar(&o.configPath, "config", "", "broker.yaml, applied at start; empty: the built-in demo setup on first start")
	flag.StringVar(&o.metrics, "metrics", "127.0.0.1:9155", "address for Prometheus /metrics (local only by default); empty: off")
	flag.StringVar(&o.api, "api", "127.0.0.1:8443", "address of the HTTPS management API (local only by default; another address exposes it, and its certificate names it); empty: off")
	flag.Var(&o.apiNames, "api-name", "a DNS `name` or IP address clients reach the management API under, for its certificate (repeatable; needed when -api listens on every address)")
	flag.Var(&o.vendorKeys, "vendor-key", "vendor public key `file` that licenses must be signed with (licensetool keygen writes it; repeat for a key rotation); none: only the base license of 4 participants")
	flag.DurationVar(&o.licenseGrace, "license-grace", 14*24*time.Hour, "how long an expired license keeps counting")
	flag.DurationVar(&o.eventRetention, "event-retention", api.DefaultEventRetention, "how long the event log keeps an event")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: broker [flags] [profile NAME | swanctl-profile NAME | status | hash-password]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(o, flag.Args(), log); err != nil {
		log.Error("broker", "error", err)
		os.Exit(1)
	}
}

type options struct {
	dataDir, configPath, metrics, api string
	apiNames                          stringList
	vendorKeys                        stringList
	licenseGrace, eventRetention      time.Duration
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func run(o options, args []string, log *slog.Logger) error {
	if len(args) == 1 && args[0] == "hash-password" {
		return hashPassword(os.Stdin, os.Stdout)
	}
	cfg, err := loadConfig(o.configPath)
	if err != nil {
		return err
	}
	if err := secureDataDir(o.dataDir, log); err != nil {
		return err
	}
	st, keyPath, err := openStore(o.dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	lic, err := openLicensing(ctx, st, o.vendorKeys, o.licenseGrace)
	if err != nil {
		return err
	}
	if err := lic.restore(ctx, st, log); err != nil {
		return err
	}
	if err := applyConfig(ctx, st, cfg, lic, o.configPath != "", log); err != nil {
		return err
	}
	k, err := openKeys(ctx, st)
	if err != nil {
		return err
	}
	switch {
	case len(args) == 2 && args[0] == "profile":
		return printProfile(ctx, os.Stdout, st, k, cfg, args[1], false)
	case len(args) == 2 && args[0] == "swanctl-profile":
		return printProfile(ctx, os.Stdout, st, k, cfg, args[1], true)
	case len(args) == 1 && args[0] == "status":
		return printStatus(ctx, os.Stdout, o.dataDir, keyPath, st, k, lic)
	case len(args) != 0:
		return fmt.Errorf("unknown command %q (want profile NAME, swanctl-profile NAME, status or hash-password)", args)
	}
	return serve(ctx, o, st, k, cfg, lic, log)
}

// applyConfig writes the file's setup into the store (entries the file
// names are replaced, others made through the API stay): the built-in demo
// setup into an empty store only, a file whenever its content differs from
// the one applied last, so that a restart with the same file keeps the
// changes made through the API since. The file's licenses are applied
// first; participants beyond the capacity they give are refused, as through
// the API.
func applyConfig(ctx context.Context, st *store.Store, cfg *config, lic *licensing, fromFile bool, log *slog.Logger) error {
	current, err := st.Config(ctx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cfg.raw)
	if !fromFile && current.Revision > 0 {
		return nil
	}
	if last, err := st.Secret(ctx, secretConfigSum); err == nil && bytes.Equal(last, sum[:]) {
		return nil
	}
	if err := applyLicenses(ctx, st, lic, cfg, log); err != nil {
		return err
	}
	_, err = st.Update(ctx, func(sc *store.Config) error {
		before := api.Participants(sc)
		if err := cfg.apply(sc); err != nil {
			return err
		}
		if err := api.CheckNewParticipants(before, sc, lic.state, time.Now()); err != nil {
			return err
		}
		return cfg.check(sc)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", nameOr(cfg.path, "built-in config"), err)
	}
	if err := st.PutSecret(ctx, secretConfigSum, sum[:]); err != nil {
		return err
	}
	for _, u := range cfg.Users {
		if u.PasswordHash == "" {
			continue
		}
		a, err := st.Account(ctx, u.Name)
		if errors.Is(err, store.ErrNotFound) {
			a, err = &store.Account{Name: u.Name, Created: time.Now()}, nil
		}
		if err != nil {
			return err
		}
		if a.PasswordHash != u.PasswordHash {
			a.PasswordHash, a.Updated = u.PasswordHash, time.Now()
			if err := st.PutAccount(ctx, *a); err != nil {
				return err
			}
		}
	}
	return nil
}

func serve(ctx context.Context, o options, st *store.Store, k *keys, cfg *config, lic *licensing, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := raiseFileLimit(systemRlimits, log); err != nil {
		log.Warn("open-file limit unknown", "error", err)
	}
	addresses, err := st.Addresses(ctx)
	if err != nil {
		return err
	}
	empty, err := policy.Compile(&policy.Model{})
	if err != nil {
		return err
	}
	events := newEventQueue(st, log)
	defer events.close()
	b, err := broker.New(broker.Config{
		Policy: empty, Pool: cfg.pool, Addresses: addresses, UserRoutes: cfg.userRoutes,
		// Stored before the participant is told, so that it keeps the
		// address after a crash.
		OnAddress: func(name string, a netip.Addr) {
			if err := st.SetAddress(context.Background(), name, a); err != nil {
				log.Error("store address", "participant", name, "error", err)
			}
		},
		Events: events.fromBroker,
		Logger: log,
	})
	if err != nil {
		return err
	}
	apiSrv, err := api.New(ctx, api.Config{
		Store: st, Broker: b, CA: k.ca, Verifier: k.verifier,
		Profile: func(w io.Writer, name string, certPEM, keyPEM []byte) error {
			return writeProfile(w, cfg, k, name, certPEM, keyPEM)
		},
		SwanctlProfile: func(w io.Writer, name string, certPEM, keyPEM []byte) error {
			lans, err := deviceLANs(ctx, st, name)
			if err != nil {
				return err
			}
			return writeSwanctlProfile(w, cfg, k, name, lans, certPEM, keyPEM)
		},
		Licenses: lic.state, InstallationKey: lic.key,
		EventRetention: o.eventRetention,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	if err := apiSrv.Maintain(ctx); err != nil {
		log.Error("store maintenance", "error", err)
	}
	go func() {
		// Expiries and the ends of grace periods reach the event log and
		// the broker within a minute; expired API sessions and events past
		// the retention leave the store as often, so that it does not grow
		// without bound.
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				apiSrv.CheckLicenses(ctx)
				if err := apiSrv.Maintain(ctx); err != nil {
					log.Error("store maintenance", "error", err)
				}
			}
		}
	}()
	password, bootstrapState, err := apiSrv.Bootstrap(ctx)
	if err != nil {
		return err
	}
	srv, err := newOpenVPNServer(k, events, log)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(cfg.Listen, strconv.Itoa(cfg.Port))
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		udp.Close()
		return err
	}
	errc := make(chan error, 3)
	go func() { errc <- srv.ServeUDP(ctx, udp.(*net.UDPConn), b) }()
	go func() { errc <- srv.ServeTCP(ctx, tcp, b) }()
	servers := 2
	if cfg.IPsec.Port > 0 {
		ipsecErr, err := startIPsec(ctx, cfg, k, b, events, log)
		if err != nil {
			stop()
			for range servers {
				<-errc
			}
			return err
		}
		servers++
		go func() { errc <- <-ipsecErr }()
	}
	if o.metrics != "" {
		ml, err := net.Listen("tcp", o.metrics)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", b.MetricsHandler())
		ms := newHTTPServer(mux, nil, log)
		lml, err := limitHTTP(ms, ml, metricsConnLimits, log)
		if err != nil {
			ml.Close()
			return fmt.Errorf("metrics: %w", err)
		}
		go func() { logServeEnd(log, "metrics", ms.Serve(lml)) }()
		defer ms.Close()
	}
	if o.api != "" {
		if err := k.loadAPICert(ctx, o.api, o.apiNames, log); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", o.api)
		if err != nil {
			return fmt.Errorf("management API: %w", err)
		}
		as, err := serveAPI(ln, apiSrv, k.apiTLS(), log)
		if err != nil {
			ln.Close()
			return err
		}
		defer as.Close()
	}
	go summarizeDrops(ctx, b, events)
	log.Info("listening", "openvpn", addr, "pool", cfg.pool, "metrics", o.metrics, "api", o.api)
	first := firstUser(ctx, st)
	fmt.Fprintf(os.Stderr, `
remotegate broker is running. Next:
  export a profile:   go run ./examples/broker -data %[1]s profile %[2]s > %[2]s.ovpn
  connect with it:    sudo openvpn --config %[2]s.ovpn
  list participants:  go run ./examples/broker -data %[1]s status
`, o.dataDir, first)
	if o.api != "" {
		fmt.Fprintf(os.Stderr, "  management API:     https://%s/api/v1/ (OpenAPI document: /api/v1/openapi.json)\n", o.api)
		switch {
		case password != "":
			fmt.Fprintf(os.Stderr, `
  First login: name %q, one-time password %s
  (shown once; log in at POST /api/v1/login, then name your administrator at POST /api/v1/bootstrap)
`, api.BootstrapAccount, password)
		case bootstrapState == "pending":
			fmt.Fprintf(os.Stderr, "  The bootstrap administrator's one-time password was shown at the first start.\n")
		}
	}
	var firstErr error
	for range servers {
		if err := <-errc; err != nil && firstErr == nil {
			firstErr = err
			stop()
		}
	}
	return firstErr
}

// serveAPI serves the management API over HTTPS with a certificate of the
// broker's CA; a client certificate of the CA, if presented, allows the
// certificate (smartcard) login. Its connections are capped and timed
// (limits.go), so that idle connections cannot keep the operator out.
func serveAPI(ln net.Listener, h http.Handler, tlsConfig *tls.Config, log *slog.Logger) (*http.Server, error) {
	hs := newHTTPServer(h, tlsConfig, log)
	lln, err := limitHTTP(hs, ln, apiConnLimits, log)
	if err != nil {
		return nil, fmt.Errorf("management API: %w", err)
	}
	go func() { logServeEnd(log, "management API", hs.ServeTLS(lln, "", "")) }()
	return hs, nil
}

// logServeEnd logs why an HTTP server stopped serving, unless it was closed.
func logServeEnd(log *slog.Logger, what string, err error) {
	if !errors.Is(err, http.ErrServerClosed) {
		log.Error(what+" stopped serving", "error", err)
	}
}

func firstUser(ctx context.Context, st *store.Store) string {
	cfg, err := st.Config(ctx)
	if err == nil {
		for _, u := range cfg.Model.Users {
			return u.Name
		}
		for _, d := range cfg.Model.Devices {
			return d.Name
		}
	}
	return "NAME"
}

// printStatus lists the participants with their stable addresses and the
// bootstrap state.
func printStatus(ctx context.Context, w io.Writer, dir, keyPath string, st *store.Store, k *keys, lic *licensing) error {
	cfg, err := st.Config(ctx)
	if err != nil {
		return err
	}
	addrs, err := st.Addresses(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "data directory: %s\nsecret key: %s\nCA: %s (valid until %s)\n", dir, keyPath, k.ca.Certificate().Subject.CommonName, k.ca.Certificate().NotAfter.Format("2006-01-02"))
	state := "not started yet"
	if v, err := st.Secret(ctx, "api/bootstrap"); err == nil {
		state = string(v)
	}
	fmt.Fprintf(w, "bootstrap administrator: %s\nconfiguration revision: %d\n", state, cfg.Revision)
	line := func(name, kind string, disabled bool) {
		addr := "(no address yet)"
		if a, ok := addrs[name]; ok {
			addr = a.String()
		}
		fmt.Fprintf(w, "  %-20s %-16s %-6s enabled=%v\n", name, addr, kind, !disabled)
	}
	for _, u := range cfg.Model.Users {
		line(u.Name, "user", u.Disabled)
	}
	for _, d := range cfg.Model.Devices {
		line(d.Name, "device", d.Disabled)
	}
	printLicenses(w, lic, len(cfg.Model.Users)+len(cfg.Model.Devices))
	return nil
}

// hashPassword reads a password (one line) and prints its argon2id hash,
// for password_hash in broker.yaml.
func hashPassword(r io.Reader, w io.Writer) error {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if len(line) < 12 {
		return errors.New("hash-password: the password needs at least 12 characters")
	}
	h, err := api.HashPassword(line, api.PasswordCost{})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, h)
	return err
}

func nameOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
