// Command broker is the minimal remotegate broker: OpenVPN on UDP and TCP,
// the access model, 1:1 NAT and a CA, from one command.
//
//	go run ./examples/broker                      start with the built-in demo setup
//	go run ./examples/broker -config broker.yaml  start with your setup
//	go run ./examples/broker profile engineer     print engineer's .ovpn profile
//	go run ./examples/broker status               print the CA and the participants
//
// State (CA, server certificate, tls-crypt key, tunnel addresses) lives in
// the data directory, ./remotegate-data unless -data says otherwise.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

func main() {
	dataDir := flag.String("data", "remotegate-data", "data directory (CA, keys, tunnel addresses)")
	configPath := flag.String("config", "", "broker.yaml; empty: the built-in demo setup")
	metrics := flag.String("metrics", "127.0.0.1:9155", "address for Prometheus /metrics (local only by default); empty: off")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: broker [-data DIR] [-config broker.yaml] [profile NAME | status]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*dataDir, *configPath, *metrics, flag.Args(), log); err != nil {
		log.Error("broker", "error", err)
		os.Exit(1)
	}
}

func run(dataDir, configPath, metrics string, args []string, log *slog.Logger) error {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	model, devices, err := cfg.model()
	if err != nil {
		return err
	}
	snap, err := policy.Compile(model)
	if err != nil {
		return err
	}
	st, err := openState(dataDir)
	if err != nil {
		return err
	}
	switch {
	case len(args) == 2 && args[0] == "profile":
		return printProfile(os.Stdout, st, cfg, snap, devices, args[1])
	case len(args) == 1 && args[0] == "status":
		return printStatus(st, cfg, snap)
	case len(args) != 0:
		return fmt.Errorf("unknown command %q (want profile NAME or status)", args)
	}
	return serve(st, cfg, snap, devices, metrics, log)
}

func serve(st *state, cfg *config, snap *policy.Snapshot, devices map[string]broker.DeviceNetworks, metrics string, log *slog.Logger) error {
	pool, err := netip.ParsePrefix(cfg.Pool)
	if err != nil {
		return fmt.Errorf("pool %q: %w", cfg.Pool, err)
	}
	b, err := broker.New(broker.Config{Policy: snap, Pool: pool, Devices: devices, Addresses: st.addresses, Logger: log})
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(st.ca.Certificate())
	srv, err := openvpn.NewServer(&openvpn.ServerConfig{
		TLS:        &tls.Config{Certificates: []tls.Certificate{st.server}, ClientCAs: roots},
		Protection: openvpn.Protection{Mode: openvpn.ProtectionTLSCrypt, Key: st.tlsCrypt},
		Logger:     log,
	})
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- srv.ServeUDP(ctx, udp.(*net.UDPConn), b) }()
	go func() { errc <- srv.ServeTCP(ctx, tcp, b) }()
	if metrics != "" {
		ml, err := net.Listen("tcp", metrics)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", b.MetricsHandler())
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = ms.Serve(ml) }()
		defer ms.Close()
	}
	log.Info("listening", "openvpn", addr, "pool", pool, "metrics", metrics, "participants", len(cfg.Users)+len(cfg.Devices))
	fmt.Fprintf(os.Stderr, `
remotegate broker is running. Next:
  export a profile:   go run ./examples/broker -data %s profile %s > %s.ovpn
  connect with it:    sudo openvpn --config %s.ovpn
  list participants:  go run ./examples/broker -data %s status
`, st.dir, firstUser(cfg), firstUser(cfg), firstUser(cfg), st.dir)
	var first error
	for range 2 {
		if err := <-errc; err != nil && first == nil {
			first = err
			stop()
		}
	}
	if err := st.saveAddresses(b.Addresses()); err != nil && first == nil {
		first = err
	}
	return first
}

func firstUser(cfg *config) string {
	if len(cfg.Users) > 0 {
		return cfg.Users[0].Name
	}
	if len(cfg.Devices) > 0 {
		return cfg.Devices[0].Name
	}
	return "NAME"
}

// printProfile issues a certificate for the participant and prints an
// OpenVPN profile with everything inline.
func printProfile(w *os.File, st *state, cfg *config, snap *policy.Snapshot, devices map[string]broker.DeviceNetworks, name string) error {
	if _, ok := snap.Lookup(name); !ok {
		return fmt.Errorf("%q is not a participant of the configuration", name)
	}
	profile := pki.ProfileUser
	if _, ok := devices[name]; ok {
		profile = pki.ProfileDevice
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return err
	}
	cert, err := st.ca.Issue(pki.Request{Profile: profile, CommonName: name, PublicKey: key.Public()})
	if err != nil {
		return err
	}
	keyPEM, err := pki.MarshalPrivateKeyPEM(key, nil)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, `# remotegate profile for %q: openvpn --config %s.ovpn
client
dev tun
proto udp
remote %s %d
nobind
remote-cert-tls server
data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305
verb 3
<ca>
%s</ca>
<cert>
%s</cert>
<key>
%s</key>
<tls-crypt>
%s</tls-crypt>
`, name, name, cfg.PublicAddress, cfg.Port, pki.EncodeCertificatesPEM(st.ca.Certificate()), pki.EncodeCertificatesPEM(cert), keyPEM, st.tlsCrypt.Marshal())
	return err
}

func printStatus(st *state, cfg *config, snap *policy.Snapshot) error {
	fmt.Printf("data directory: %s\nCA: %s (valid until %s)\n", st.dir, st.ca.Certificate().Subject.CommonName, st.ca.Certificate().NotAfter.Format("2006-01-02"))
	var names []string
	for _, u := range cfg.Users {
		names = append(names, u.Name)
	}
	for _, d := range cfg.Devices {
		names = append(names, d.Name)
	}
	sort.Strings(names)
	for _, n := range names {
		addr := "(no address yet)"
		if a, ok := st.addresses[n]; ok {
			addr = a.String()
		}
		id, _ := snap.Lookup(n)
		fmt.Printf("  %-20s %-16s enabled=%v\n", n, addr, snap.Enabled(id))
	}
	return nil
}

// state is what the broker keeps in its data directory.
type state struct {
	dir       string
	ca        *pki.CA
	server    tls.Certificate
	tlsCrypt  *openvpn.StaticKey
	addresses map[string]netip.Addr
}

// openState loads the data directory, creating the CA, the server
// certificate and the tls-crypt key on first start.
func openState(dir string) (*state, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	st := &state{dir: dir, addresses: map[string]netip.Addr{}}
	path := func(n string) string { return filepath.Join(dir, n) }
	caCertPEM, err := os.ReadFile(path("ca.crt"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if st.ca, err = pki.NewCA(pki.CAConfig{CommonName: "remotegate broker CA"}); err != nil {
			return nil, err
		}
		if err := st.writeCA(path); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if st.ca, err = loadCA(caCertPEM, path("ca.key")); err != nil {
			return nil, err
		}
	}
	if st.server, err = tls.LoadX509KeyPair(path("server.crt"), path("server.key")); errors.Is(err, os.ErrNotExist) {
		st.server, err = issueServer(st.ca, path)
	}
	if err != nil {
		return nil, err
	}
	tc, err := os.ReadFile(path("tls-crypt.key"))
	if errors.Is(err, os.ErrNotExist) {
		if st.tlsCrypt, err = openvpn.GenerateStaticKey(); err == nil {
			err = os.WriteFile(path("tls-crypt.key"), st.tlsCrypt.Marshal(), 0o600)
		}
	} else if err == nil {
		st.tlsCrypt, err = openvpn.ParseStaticKey(tc)
	}
	if err != nil {
		return nil, err
	}
	if data, err := os.ReadFile(path("addresses.json")); err == nil {
		if err := json.Unmarshal(data, &st.addresses); err != nil {
			return nil, fmt.Errorf("addresses.json: %w", err)
		}
	}
	return st, nil
}

func (st *state) writeCA(path func(string) string) error {
	if err := os.WriteFile(path("ca.crt"), pki.EncodeCertificatesPEM(st.ca.Certificate()), 0o644); err != nil {
		return err
	}
	key, err := pki.MarshalPrivateKeyPEM(st.ca.Key(), nil)
	if err != nil {
		return err
	}
	return os.WriteFile(path("ca.key"), key, 0o600)
}

func loadCA(certPEM []byte, keyPath string) (*pki.CA, error) {
	cert, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := pki.LoadKeyFile(keyPath, nil)
	if err != nil {
		return nil, err
	}
	return pki.ImportCA(cert, key, pki.CAConfig{})
}

func issueServer(ca *pki.CA, path func(string) string) (tls.Certificate, error) {
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := ca.Issue(pki.Request{Profile: pki.ProfileServer, CommonName: "remotegate broker", PublicKey: key.Public()})
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := pki.MarshalPrivateKeyPEM(key, nil)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pki.EncodeCertificatesPEM(cert)
	if err := os.WriteFile(path("server.crt"), certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(path("server.key"), keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func (st *state) saveAddresses(a map[string]netip.Addr) error {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(st.dir, "addresses.json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(st.dir, "addresses.json"))
}
