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
	"runtime/pprof"
	"strconv"
	"syscall"

	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/openvpn/conffile"
	"github.com/remotegate/remotegate/tunnel"
)

func main() {
	configPath := flag.String("config", "", "OpenVPN server config file")
	demo := flag.String("demo", "", "write a demo CA, server.conf and client.ovpn into this directory and serve it")
	noTUN := flag.Bool("no-tun", false, "do not open a TUN device (relay between clients only)")
	usersFile := flag.String("users", "", "require username/password: file of name:bcrypt-hash lines")
	verbose := flag.Bool("v", false, "log debug events")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile (go tool pprof) to this file until exit")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *demo != "" {
		p, err := writeDemo(*demo)
		if err != nil {
			log.Error("demo", "error", err)
			os.Exit(1)
		}
		*configPath = p
		log.Info("demo files written", "dir", *demo, "client_profile", *demo+"/client.ovpn")
	}
	if *configPath == "" {
		fmt.Fprintln(os.Stderr, "usage: ovpn-server -config server.conf | -demo DIR")
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			log.Error("cpu profile", "error", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *configPath, *noTUN, *usersFile, log); err != nil {
		log.Error("ovpn-server", "error", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(ctx context.Context, path string, noTUN bool, usersFile string, log *slog.Logger) error {
	f, err := conffile.ParseFile(path)
	if err != nil {
		return err
	}
	cfg, err := f.ServerConfig()
	if err != nil {
		return err
	}
	cfg.Logger = log
	if usersFile != "" {
		if cfg.VerifyUserPass, err = loadUsers(usersFile); err != nil {
			return err
		}
	}
	if !f.Server.IsValid() {
		return errors.New("the config needs a `server NETWORK NETMASK` line")
	}
	srv, err := openvpn.NewServer(cfg)
	if err != nil {
		return err
	}
	network := f.Server.Masked()
	gateway := network.Addr().Next()
	var routes []netip.Prefix
	var tun *tunnel.TUN
	if !noTUN && f.Dev != "" && f.Dev != "null" {
		name := ""
		if f.Dev != "tun" {
			name = f.Dev
		}
		mtu := f.TunMTU
		addrs := []netip.Prefix{netip.PrefixFrom(gateway, network.Bits())}
		if f.ServerIPv6.IsValid() {
			n6 := f.ServerIPv6.Masked()
			addrs = append(addrs, netip.PrefixFrom(n6.Addr().Next(), n6.Bits()))
		}
		tun, err = tunnel.OpenTUN(tunnel.TUNConfig{Name: name, MTU: mtu, Addresses: addrs})
		if err != nil {
			return err
		}
		defer tun.Close()
		defer func() {
			st := tun.Stats()
			log.Info("TUN closed", "packets_written", st.PacketsWritten, "writes", st.Writes)
		}()
		log.Info("TUN up", "name", tun.Name(), "addresses", addrs, "offload", tun.Offload())
	}
	var dev tunnel.Device
	if tun != nil {
		dev = tun
	}
	h := newHub(network, f.ServerIPv6, routes, f.ClientToClient, dev)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	if tun != nil {
		go func() { errc <- h.fromTUN(ctx) }()
	}
	port := f.Port
	if port == 0 {
		port = 1194
	}
	addr := net.JoinHostPort(f.Local, strconv.Itoa(port))
	switch f.Proto {
	case "", "udp":
		ua, err := net.ResolveUDPAddr("udp"+f.Family, addr)
		if err != nil {
			return err
		}
		conn, err := net.ListenUDP("udp"+f.Family, ua)
		if err != nil {
			return err
		}
		log.Info("listening", "proto", "udp", "addr", conn.LocalAddr())
		go func() { errc <- srv.ServeUDP(ctx, conn, h) }()
	case "tcp":
		ln, err := net.Listen("tcp"+f.Family, addr)
		if err != nil {
			return err
		}
		log.Info("listening", "proto", "tcp", "addr", ln.Addr())
		go func() { errc <- srv.ServeTCP(ctx, ln, h) }()
	default:
		return fmt.Errorf("proto %q not supported", f.Proto)
	}
	select {
	case err := <-errc:
		cancel()
		return err
	case <-ctx.Done():
		log.Info("shutting down")
		cancel()
		<-errc
		return nil
	}
}
