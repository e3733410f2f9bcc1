package app

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/console"
	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/policy"
)

// Ready is what Run reports through Config.OnReady once every listener is
// up: the addresses it serves on and what the first login needs.
type Ready struct {
	// DataDir is the data directory.
	DataDir string
	// OpenVPN is the address of OpenVPN, on UDP and TCP.
	OpenVPN string
	// IPsec is the address of IKE with NAT traversal and ESP; empty when
	// IPsec is off.
	IPsec string
	// API is the address of the HTTPS listener (the management API under
	// /api/); empty when off.
	API string
	// Metrics is the address of Prometheus /metrics; empty when off.
	Metrics string
	// BootstrapPassword is the one-time password of BootstrapAccount,
	// made at this start: show it once. Empty when it was made at an
	// earlier start (BootstrapPending) or the bootstrap is done, and when
	// the API is off.
	BootstrapPassword string
	// BootstrapPending says the bootstrap administrator has not named the
	// real administrator yet.
	BootstrapPending bool
	// Participant names a participant of the configuration, for examples
	// of commands ("NAME" when there is none).
	Participant string
}

// Run serves the broker until ctx ends: OpenVPN on UDP and TCP, IPsec,
// the management API over HTTPS and the metrics, with the stored
// configuration and settings. It binds every listener first and fails
// with none left open if one cannot be bound. It returns nil when ctx
// ended, or the first error of a server, after all have stopped.
//
// It also raises the process's soft open-file limit to the hard one, as a
// broker with every session in use needs many descriptors.
func (b *Broker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log, st := b.log, b.st
	if _, err := raiseFileLimit(systemRlimits, log); err != nil {
		log.Warn("open-file limit unknown", "error", err)
	}
	sc, err := st.Config(ctx)
	if err != nil {
		return err
	}
	settings := withDefaults(sc.Settings)
	if err := b.keys.loadServerCert(ctx, settings.PublicAddress, log); err != nil {
		return err
	}
	addresses, err := st.Addresses(ctx)
	if err != nil {
		return err
	}
	empty, err := policy.Compile(&policy.Model{})
	if err != nil {
		return err
	}
	events := newEventQueue(st, log, b.now)
	defer events.close()
	brk, err := broker.New(broker.Config{
		Policy: empty, Pool: settings.Pool, Pool6: settings.Pool6, Addresses: addresses, UserRoutes: settings.UserRoutes,
		// Stored before the participant is told, so that it keeps the
		// address after a crash.
		OnAddress: func(name string, a netip.Addr) {
			if err := st.SetAddress(context.Background(), name, a); err != nil {
				log.Error("store address", "participant", name, "error", err)
			}
		},
		Events: events.fromBroker,
		Logger: log,
		Now:    b.now,
	})
	if err != nil {
		return err
	}
	apiSrv, err := api.New(ctx, api.Config{
		Store: st, Broker: brk, CA: b.keys.ca, Verifier: b.keys.verifier,
		Profile: func(w io.Writer, name string, certPEM, keyPEM []byte) error {
			sc, err := st.Config(ctx)
			if err != nil {
				return err
			}
			return writeProfile(w, withDefaults(sc.Settings), b.keys, name, certPEM, keyPEM)
		},
		SwanctlProfile: func(w io.Writer, name string, certPEM, keyPEM []byte) error {
			sc, err := st.Config(ctx)
			if err != nil {
				return err
			}
			return writeSwanctlProfile(w, withDefaults(sc.Settings), b.keys, name, deviceLANs(sc, name), certPEM, keyPEM, b.now())
		},
		NativeProfile: func(w io.Writer, format profile.Format, name string, cert *x509.Certificate, key crypto.Signer, password string) error {
			sc, err := st.Config(ctx)
			if err != nil {
				return err
			}
			return writeNativeProfile(w, withDefaults(sc.Settings), b.keys, format, name, cert, key, password)
		},
		Licenses: b.lic.state, InstallationKey: b.lic.key,
		EventRetention: b.cfg.EventRetention,
		Applied:        b.proposals.applied,
		Logger:         log,
		Now:            b.now,
	})
	if err != nil {
		return err
	}
	if err := apiSrv.Maintain(ctx); err != nil {
		log.Error("store maintenance", "error", err)
	}
	l, err := b.listen(ctx, settings, events, brk.MetricsHandler())
	if err != nil {
		return err
	}
	defer l.close()
	ready := Ready{DataDir: b.cfg.DataDir, Participant: b.firstParticipant(ctx)}
	ready.OpenVPN, ready.IPsec, ready.API, ready.Metrics = l.addrs()
	if l.https != nil {
		// The console is made once the addresses are bound, for its
		// system page; nothing is served before serveHTTP below.
		con, err := console.New(console.Config{
			API: apiSrv, CA: b.keys.ca.Certificate(),
			Addresses:  consoleAddresses(ready),
			MetricsURL: metricsURL(ready.Metrics),
			Logger:     log, Now: b.now,
		})
		if err != nil {
			return err
		}
		l.https.Handler = httpsHandler(apiSrv, con)
	}
	if l.api != nil {
		// Made once the API can be reached, so that a start that fails
		// to bind does not use up the one chance to show it.
		password, state, err := apiSrv.Bootstrap(ctx)
		if err != nil {
			return err
		}
		ready.BootstrapPassword, ready.BootstrapPending = password, state == "pending"
	}

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	servers := 0
	serve := func(f func() error) {
		servers++
		wg.Go(func() { errc <- f() })
	}
	serve(func() error { return l.ovpn.ServeUDP(ctx, l.udp, brk) })
	serve(func() error { return l.ovpn.ServeTCP(ctx, l.tcp, brk) })
	if l.ipsec != nil {
		serve(func() error { return l.ipsec.serve(ctx, brk) })
	}
	wg.Go(func() {
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
	})
	wg.Go(func() { summarizeDrops(ctx, brk, events) })
	l.serveHTTP(&wg)
	log.Info("listening", "openvpn", ready.OpenVPN, "pool", settings.Pool, "metrics", ready.Metrics, "api", ready.API)
	if b.cfg.OnReady != nil {
		b.cfg.OnReady(ready)
	}
	var firstErr error
	for range servers {
		if err := <-errc; err != nil && firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	cancel()
	l.close()
	wg.Wait()
	return firstErr
}

// httpsHandler is what the HTTPS listener serves: the management API
// under /api/, enrollment over EST at /.well-known/est/ and the web console
// at every other path, on one listener, certificate and set of connection
// limits.
func httpsHandler(apiSrv *api.Server, con http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/api/", apiSrv)
	mux.Handle(api.EnrollmentPath, apiSrv.EnrollmentHandler())
	mux.Handle("/", con)
	return mux
}

// consoleAddresses are the bound addresses the console's system page
// lists.
func consoleAddresses(r Ready) []console.Address {
	var out []console.Address
	add := func(name, addr string) {
		if addr != "" {
			out = append(out, console.Address{Name: name, Address: addr})
		}
	}
	add("OpenVPN (UDP and TCP)", r.OpenVPN)
	add("IPsec (IKEv2)", r.IPsec)
	add("management API and console (HTTPS)", r.API)
	add("metrics (HTTP)", r.Metrics)
	return out
}

// metricsURL is the URL of the metrics served at addr ("" when off).
func metricsURL(addr string) string {
	if addr == "" {
		return ""
	}
	return "http://" + addr + "/metrics"
}

// listeners are the broker's bound sockets and their servers.
type listeners struct {
	ovpn        *openvpn.Server
	udp         *net.UDPConn
	tcp         net.Listener
	ipsec       *ipsecServer
	api, metric net.Listener // limited (limitHTTP)
	https, http *http.Server // theirs
	log         *slog.Logger
}

// listen binds every listener Run serves on; on an error it closes those
// it bound.
//
// The metrics listener serves metrics under GET /metrics, the HTTPS
// listener https; both with connection caps and timeouts (limits.go), so
// that idle connections cannot keep the operator out. A client
// certificate of the CA, if presented over HTTPS, allows the certificate
// (smartcard) login.
func (b *Broker) listen(ctx context.Context, s store.Settings, events *eventQueue, metrics http.Handler) (_ *listeners, err error) {
	l := &listeners{log: b.log}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.ovpn, err = newOpenVPNServer(b.keys, events, b.now, b.log); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(s.Listen, strconv.Itoa(s.Port))
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	l.udp = udp.(*net.UDPConn)
	if l.tcp, err = net.Listen("tcp", addr); err != nil {
		return nil, err
	}
	if s.IPsecPort > 0 {
		if l.ipsec, err = newIPsec(s, b.keys, &b.proposals, events, b.now, b.log); err != nil {
			return nil, err
		}
	}
	if b.cfg.MetricsAddr != Off {
		ml, err := net.Listen("tcp", b.cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		l.http = newHTTPServer(mux, nil, b.log)
		if l.metric, err = limitHTTP(l.http, ml, metricsConnLimits, b.log); err != nil {
			ml.Close()
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	if b.cfg.APIAddr != Off {
		if err := b.keys.loadAPICert(ctx, b.cfg.APIAddr, b.cfg.APINames, b.log); err != nil {
			return nil, err
		}
		al, err := net.Listen("tcp", b.cfg.APIAddr)
		if err != nil {
			return nil, fmt.Errorf("management API: %w", err)
		}
		// Its handler is set by Run once the console is made.
		l.https = newHTTPServer(http.NotFoundHandler(), b.keys.apiTLS(), b.log)
		if l.api, err = limitHTTP(l.https, al, apiConnLimits, b.log); err != nil {
			al.Close()
			return nil, fmt.Errorf("management API: %w", err)
		}
	}
	return l, nil
}

// serveHTTP starts serving the HTTP listeners, in goroutines of wg that
// end when close closes them.
func (l *listeners) serveHTTP(wg *sync.WaitGroup) {
	if l.http != nil {
		wg.Go(func() { logServeEnd(l.log, "metrics", l.http.Serve(l.metric)) })
	}
	if l.https != nil {
		wg.Go(func() { logServeEnd(l.log, "management API", l.https.ServeTLS(l.api, "", "")) })
	}
}

// addrs are the addresses the listeners are bound to ("" for those off).
func (l *listeners) addrs() (openvpn, ipsec, api, metrics string) {
	openvpn = l.udp.LocalAddr().String()
	if l.ipsec != nil {
		ipsec = l.ipsec.conns[0].LocalAddr().String()
	}
	if l.api != nil {
		api = l.api.Addr().String()
	}
	if l.metric != nil {
		metrics = l.metric.Addr().String()
	}
	return
}

// close closes what is still open: the HTTP servers (and their
// connections) and the sockets; those the transports served are closed
// already.
func (l *listeners) close() {
	for _, hs := range []*http.Server{l.https, l.http} {
		if hs != nil {
			hs.Close()
		}
	}
	if l.udp != nil {
		l.udp.Close()
	}
	for _, ln := range []net.Listener{l.tcp, l.api, l.metric} {
		if ln != nil {
			ln.Close()
		}
	}
	if l.ipsec != nil {
		l.ipsec.close()
	}
}

// logServeEnd logs why an HTTP server stopped serving, unless it was closed.
func logServeEnd(log *slog.Logger, what string, err error) {
	if !errors.Is(err, http.ErrServerClosed) {
		log.Error(what+" stopped serving", "error", err)
	}
}
