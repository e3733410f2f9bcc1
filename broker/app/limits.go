package app

import (
	"context"
	"crypto/tls"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/remotegate/remotegate/internal/connlimit"
)

// HTTP connection caps. A connection counts from its accept until it is
// closed; when a cap is reached, the connection of that source (or of all)
// that has been idle longest, or is still waiting for its first request,
// is closed for the newcomer, so that idle connections an attacker holds
// can never keep the operator out. Busy connections are never closed for
// it; when only busy ones fill a cap the newcomer is refused, and the
// timeouts below bound how long that lasts.
var (
	// The API: a browser opens up to six connections per site; a few
	// operators and scripts behind one address fit in 16.
	apiConnLimits = connlimit.Limits{Total: 128, PerSource: 16}
	// Prometheus scrapes with one connection.
	metricsConnLimits = connlimit.Limits{Total: 16, PerSource: 4}
)

// HTTP timeouts of the API and metrics servers.
const (
	// httpReadHeaderTimeout bounds the TLS handshake and the request
	// headers (net/http bounds the handshake by the smallest timeout).
	httpReadHeaderTimeout = 10 * time.Second
	// httpReadTimeout bounds a whole request: the largest body, a 16 MiB
	// restore, takes some 130 s at 1 Mbit/s.
	httpReadTimeout = 5 * time.Minute
	// httpWriteTimeout bounds the handling and the response (a backup
	// download of the same size).
	httpWriteTimeout = 5 * time.Minute
	// httpIdleTimeout closes a keep-alive connection idle for this long.
	httpIdleTimeout = time.Minute
	// httpMaxHeaderBytes: tokens and cookies are short; net/http's 1 MiB
	// default would let each connection buffer far more than needed.
	httpMaxHeaderBytes = 64 << 10
)

// newHTTPServer is an HTTP server with the timeouts above, serving only
// HTTP/1: the connection limiter learns from ConnState which HTTP/1
// connections are busy, and HTTP/2 connections report no such state.
// net/http's own messages go to log.
func newHTTPServer(h http.Handler, tlsCfg *tls.Config, log *slog.Logger) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		Protocols:         &protocols,
		ErrorLog:          stdlog.New(httpLogWriter{log}, "", 0),
	}
}

// httpLogWriter passes net/http's messages to the broker's log. A failed
// TLS handshake is how every flood connection, evicted one and port
// scanner ends: one line each at the default level would let a flood fill
// the disk, so those are debug messages.
type httpLogWriter struct{ log *slog.Logger }

func (w httpLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// limitHTTP wraps ln so that hs's connections are capped by l, and keeps
// the limiter told which connections are busy.
func limitHTTP(hs *http.Server, ln net.Listener, l connlimit.Limits, log *slog.Logger) (net.Listener, error) {
	lim, err := connlimit.NewListener(ln, l, log)
	if err != nil {
		return nil, err
	}
	hs.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateActive:
			lim.Hold(c)
		case http.StateIdle:
			lim.Release(c)
		}
	}
	return lim, nil
}

// fileBudget is roughly how many descriptors the broker may need at once:
// every OpenVPN session and pending TCP connection at their defaults
// (openvpn.ServerConfig.MaxSessions and MaxPending), the HTTP connection
// caps, and some for the database, sockets and logs.
var fileBudget = uint64(1024 + 256 + apiConnLimits.Total + metricsConnLimits.Total + 64)

// rlimits are the calls raiseFileLimit makes; tests replace them.
type rlimits struct {
	get func(*syscall.Rlimit) error
	set func(*syscall.Rlimit) error
}

var systemRlimits = rlimits{
	get: func(r *syscall.Rlimit) error { return syscall.Getrlimit(syscall.RLIMIT_NOFILE, r) },
	set: func(r *syscall.Rlimit) error { return syscall.Setrlimit(syscall.RLIMIT_NOFILE, r) },
}

// raiseFileLimit raises the soft open-file limit to the hard one (the Go
// runtime does too at start, but says nothing) and logs the limit in
// effect, warning when it is below fileBudget. It never raises the hard
// limit: that is the administrator's (prlimit, LimitNOFILE=), and the
// broker's caps are what keep a flood within it.
func raiseFileLimit(r rlimits, log *slog.Logger) (uint64, error) {
	var lim syscall.Rlimit
	if err := r.get(&lim); err != nil {
		return 0, fmt.Errorf("open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		if err := r.set(&raised); err != nil {
			log.Warn("cannot raise the open-file limit", "soft", lim.Cur, "hard", lim.Max, "error", err)
		} else {
			lim = raised
		}
	}
	cur := uint64(lim.Cur) // int64 on some systems
	log.Info("open-file limit", "limit", cur)
	if cur < fileBudget {
		log.Warn("the open-file limit is below what the broker may need with every session in use; raise it (e.g. LimitNOFILE= in its systemd unit)",
			"limit", cur, "want", fileBudget)
	}
	return cur, nil
}
