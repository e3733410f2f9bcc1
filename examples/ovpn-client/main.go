package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/openvpn/conffile"
	"github.com/remotegate/remotegate/tunnel"
)

func main() {
	configPath := flag.String("config", "", "OpenVPN client profile")
	verbose := flag.Bool("v", false, "log debug events")
	once := flag.Bool("once", false, "exit when the connection ends instead of reconnecting")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *configPath == "" {
		fmt.Fprintln(os.Stderr, "usage: ovpn-client -config client.ovpn")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := conffile.ParseFile(*configPath)
	if err != nil {
		log.Error("config", "error", err)
		os.Exit(1)
	}
	cfg, err := f.ClientConfig()
	if err != nil {
		log.Error("config", "error", err)
		os.Exit(1)
	}
	cfg.Logger = log
	backoff := time.Second
	for {
		err := connectOnce(ctx, f, cfg, log)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, openvpn.ErrAuthFailed) || *once {
			log.Error("connection ended", "error", err)
			os.Exit(1)
		}
		log.Warn("connection ended; reconnecting", "error", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func connectOnce(ctx context.Context, f *conffile.File, cfg *openvpn.ClientConfig, log *slog.Logger) error {
	if len(f.Remotes) == 0 {
		return errors.New("the profile has no remote")
	}
	var lastErr error
	for _, r := range f.Remotes {
		proto := r.Proto
		if proto == "" {
			proto = f.Proto
		}
		if proto == "" {
			proto = "udp"
		}
		port := r.Port
		if port == 0 {
			port = f.Port
		}
		if port == 0 {
			port = 1194
		}
		addr := net.JoinHostPort(r.Host, strconv.Itoa(port))
		dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		c, err := openvpn.Dial(dctx, proto+f.Family, addr, cfg)
		cancel()
		if err != nil {
			log.Warn("connect failed", "remote", addr, "proto", proto, "error", err)
			lastErr = err
			if errors.Is(err, openvpn.ErrAuthFailed) {
				return err
			}
			continue
		}
		return runTunnel(ctx, c, log)
	}
	return lastErr
}

func runTunnel(ctx context.Context, c *openvpn.Client, log *slog.Logger) error {
	defer c.Close()
	p := c.Pushed()
	addrs := []netip.Prefix{p.Address}
	if p.Address6.IsValid() {
		addrs = append(addrs, p.Address6)
	}
	tun, err := tunnel.OpenTUN(tunnel.TUNConfig{MTU: c.MTU(), Addresses: addrs, Routes: p.Routes})
	if err != nil {
		return err
	}
	defer tun.Close()
	log.Info("tunnel up", "tun", tun.Name(), "address", p.Address, "address6", p.Address6, "routes", p.Routes, "cipher", p.Cipher)
	errc := make(chan error, 2)
	go func() { errc <- tunnel.Pump(tun, c) }()
	go func() { errc <- tunnel.Pump(c, tun) }()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.Done():
		return c.Err()
	case err := <-errc:
		return err
	}
}
