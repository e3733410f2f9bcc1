package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/openvpn/conffile"
	"github.com/remotegate/remotegate/tunnel"
)

// conn is what loadgen needs of a tunnel: both openvpn.Client and
// ipsec.Client are one.
type conn interface {
	tunnel.Device
	Done() <-chan struct{}
	Err() error
}

// held is an open tunnel and the address the server gave it.
type held struct {
	c    conn
	addr netip.Addr
}

// Report is everything a run measured; -json writes it.
type Report struct {
	Phases []Summary    `json:"phases"`
	Hold   *HoldReport  `json:"hold,omitempty"`
	Memory MemoryReport `json:"memory"`
}

// HoldReport is what the hold period saw.
type HoldReport struct {
	Seconds         float64        `json:"seconds"`
	Tunnels         int            `json:"tunnels"`
	StillUp         int            `json:"still_up"`
	Dropped         map[string]int `json:"dropped,omitempty"`
	PacketsSent     uint64         `json:"packets_sent"`
	PacketsReceived uint64         `json:"packets_received"`
}

// MemoryReport is loadgen's own memory with all tunnels up: what a client
// costs, which matters to gateways that embed openvpn.Dial.
type MemoryReport struct {
	Tunnels      int     `json:"tunnels"`
	RSSBytes     int64   `json:"rss_bytes"`
	GoHeapBytes  uint64  `json:"go_heap_bytes"`
	GoSysBytes   uint64  `json:"go_sys_bytes"`
	PerTunnelRSS float64 `json:"per_tunnel_rss_bytes"`
}

// gen is one run.
type gen struct {
	o     *options
	out   io.Writer // the report and the log lines a harness waits for
	prog  io.Writer // the progress line
	tty   bool
	now   func() time.Time
	certs certSource

	ovpnNet  string
	ovpnAddr string
	ovpnCfg  *openvpn.ClientConfig

	ipsecRemote netip.AddrPort
	ipsecCfg    *ipsec.DialConfig

	mu   sync.Mutex
	open []held
}

// setup reads the profile and the keys and resolves the servers' addresses
// once, so that every packet goes to the one address given.
func setup(ctx context.Context, o *options, out, prog io.Writer, tty bool) (*gen, error) {
	g := &gen{o: o, out: out, prog: prog, tty: tty, now: time.Now}
	switch {
	case o.caCert != "":
		is, err := loadIssuer(o.caCert, o.caKey, o.cnPrefix, g.now)
		if err != nil {
			return nil, err
		}
		g.certs.is = is
	case o.cert != "":
		cb, err := os.ReadFile(o.cert)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		kb, err := os.ReadFile(o.key)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		if g.certs.shared, err = loadPair(cb, kb); err != nil {
			return nil, err
		}
	}
	if o.n > 0 {
		if err := g.setupOpenVPN(ctx); err != nil {
			return nil, err
		}
	}
	if o.ipsecN > 0 {
		if err := g.setupIPsec(ctx); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (g *gen) setupOpenVPN(ctx context.Context) error {
	f, err := conffile.ParseFile(g.o.config)
	if err != nil {
		return err
	}
	if g.certs.is != nil && len(f.Cert) == 0 && !f.AuthUserPass {
		// The profile carries no client certificate (each tunnel gets its
		// own); give the converter one so it does not refuse the profile.
		c, err := g.certs.is.issue(0)
		if err != nil {
			return err
		}
		f.Cert = pemEncode("CERTIFICATE", c.Certificate[0])
		kd, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		if err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		f.Key = pemEncode("PRIVATE KEY", kd)
	}
	cfg, err := f.ClientConfig()
	if err != nil {
		return err
	}
	if g.certs.is == nil && g.certs.shared == nil {
		if len(cfg.TLS.Certificates) > 0 {
			g.certs.shared = &cfg.TLS.Certificates[0]
		}
	}
	proto, host, port := "udp", "", 1194
	if len(f.Remotes) > 0 {
		r := f.Remotes[0]
		host = r.Host
		if r.Proto != "" {
			proto = r.Proto
		} else if f.Proto != "" {
			proto = f.Proto
		}
		if r.Port != 0 {
			port = r.Port
		} else if f.Port != 0 {
			port = f.Port
		}
	}
	if g.o.remote != "" {
		h, p, err := net.SplitHostPort(g.o.remote)
		if err != nil {
			return fmt.Errorf("%w: -remote: %w", errUsage, err)
		}
		if port, err = strconv.Atoi(p); err != nil {
			return fmt.Errorf("%w: -remote port: %w", errUsage, err)
		}
		host = h
	}
	if g.o.proto != "" {
		proto = g.o.proto
	}
	if host == "" {
		return fmt.Errorf("%w: the profile has no remote; give -remote", errUsage)
	}
	addr, err := resolve(ctx, host, port, f.Family)
	if err != nil {
		return err
	}
	g.ovpnNet, g.ovpnAddr, g.ovpnCfg = proto+f.Family, addr.String(), cfg
	return nil
}

func (g *gen) setupIPsec(ctx context.Context) error {
	caFile := g.o.ipsecCA
	if caFile == "" {
		caFile = g.o.caCert
	}
	roots, cas, err := readPool(caFile)
	if err != nil {
		return err
	}
	h, p, err := net.SplitHostPort(g.o.ipsecServer)
	if err != nil {
		return fmt.Errorf("%w: -ipsec-server: %w", errUsage, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("%w: -ipsec-server port: %w", errUsage, err)
	}
	if g.ipsecRemote, err = resolve(ctx, h, port, ""); err != nil {
		return err
	}
	g.ipsecCfg = &ipsec.DialConfig{
		VerifyPeer: func(_ ipsec.ID, chain []*x509.Certificate) error {
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
		CertificateAuthorities: cas,
		RequestAddress:         true,
	}
	if g.o.ipsecID != "" {
		g.ipsecCfg.RemoteID = ipsec.FQDN(g.o.ipsecID)
	}
	return nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// resolve looks host up once (family "4", "6" or "" for either).
func resolve(ctx context.Context, host string, port int, family string) (netip.AddrPort, error) {
	if port <= 0 || port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("%w: port %d", errUsage, port)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip"+family, host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("loadgen: resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("loadgen: resolve %s: no address", host)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(port)), nil
}

// dialOpenVPN opens tunnel i.
func (g *gen) dialOpenVPN(ctx context.Context, i int) (held, error) {
	cert, err := g.certs.get(i)
	if err != nil {
		return held{}, err
	}
	cfg := *g.ovpnCfg
	cfg.TLS = g.ovpnCfg.TLS.Clone()
	cfg.TLS.Certificates = []tls.Certificate{cert}
	c, err := openvpn.Dial(ctx, g.ovpnNet, g.ovpnAddr, &cfg)
	if err != nil {
		return held{}, err
	}
	return held{c: c, addr: c.Pushed().Address.Addr()}, nil
}

// dialIPsec opens SA i.
func (g *gen) dialIPsec(ctx context.Context, i int) (held, error) {
	cert, err := g.certs.get(i)
	if err != nil {
		return held{}, err
	}
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return held{}, fmt.Errorf("loadgen: %T cannot sign", cert.PrivateKey)
	}
	cfg := *g.ipsecCfg
	cfg.Certificate = []*x509.Certificate{cert.Leaf}
	cfg.PrivateKey = key
	network := "udp4"
	if g.ipsecRemote.Addr().Is6() {
		network = "udp6"
	}
	uc, err := net.ListenUDP(network, nil)
	if err != nil {
		return held{}, fmt.Errorf("loadgen: %w", err)
	}
	c, err := ipsec.Dial(ctx, uc, g.ipsecRemote, &cfg)
	if err != nil {
		return held{}, err
	}
	var addr netip.Addr
	if a := c.Addresses(); len(a) > 0 {
		addr = a[0].Addr()
	}
	return held{c: c, addr: addr}, nil
}

// connect runs one phase: count handshakes, K at a time, each bounded by
// -timeout, with a progress line, until done or ctx ends.
func (g *gen) connect(ctx context.Context, kind string, count, first int, dial func(context.Context, int) (held, error)) Summary {
	rec := newRecorder(g.now())
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(g.o.k, count) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				start := g.now()
				dctx, cancel := context.WithTimeout(ctx, g.o.timeout)
				h, err := dial(dctx, first+i)
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						err = ctx.Err()
					}
					rec.failure(cause(err))
					continue
				}
				rec.success(g.now().Sub(start))
				g.mu.Lock()
				g.open = append(g.open, h)
				g.mu.Unlock()
			}
		}()
	}
	stop := g.showProgress(func() string {
		s := rec.summary(kind, count, g.now())
		return fmt.Sprintf("%s: %d/%d up, %d failed, %.1f/s, p50 %.0f ms, p99 %.0f ms", kind, s.Up, count, s.Failed, s.PerSecond, s.P50, s.P99)
	})
feed:
	for i := range count {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	rec.finish(g.now())
	stop()
	return rec.summary(kind, count, g.now())
}

// showProgress prints line() every -progress: on a terminal as one line
// rewritten in place, otherwise as plain lines (logs, pipes). The
// returned function stops it and ends the line.
func (g *gen) showProgress(line func() string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(g.o.progress)
		defer t.Stop()
		for {
			select {
			case <-done:
				// The last state, also in a log: it dates the phase's end.
				if g.tty {
					fmt.Fprintf(g.prog, "\r\033[K%s\n", line())
				} else {
					fmt.Fprintln(g.prog, line())
				}
				return
			case <-t.C:
				if g.tty {
					fmt.Fprintf(g.prog, "\r\033[K%s", line())
				} else {
					fmt.Fprintln(g.prog, line())
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// hold keeps the tunnels open for -hold (keepalives run inside each
// client), reading what arrives and, with -pps, sending small UDP packets
// inside each tunnel to -target; a tunnel that ends meanwhile is counted
// by cause.
func (g *gen) hold(ctx context.Context) *HoldReport {
	g.mu.Lock()
	open := slices.Clone(g.open)
	g.mu.Unlock()
	r := &HoldReport{Tunnels: len(open), Dropped: map[string]int{}}
	var received, sent atomic.Uint64
	var mu sync.Mutex
	hctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, h := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drain(h.c, &received)
			if hctx.Err() == nil {
				mu.Lock()
				r.Dropped[cause(h.c.Err())]++
				mu.Unlock()
			}
		}()
	}
	if g.o.pps > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.traffic(hctx, open, &sent)
		}()
	}
	fmt.Fprintf(g.out, "holding %d tunnels for %v\n", len(open), g.o.hold)
	start := g.now()
	t := time.NewTimer(g.o.hold)
	stop := g.showProgress(func() string {
		mu.Lock()
		defer mu.Unlock()
		dropped := 0
		for _, n := range r.Dropped {
			dropped += n
		}
		return fmt.Sprintf("holding: %d up, %d dropped, %.1f s of %.1f s, %d packets sent, %d received",
			len(open)-dropped, dropped, g.now().Sub(start).Seconds(), g.o.hold.Seconds(), sent.Load(), received.Load())
	})
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	stop()
	mu.Lock()
	r.Seconds = g.now().Sub(start).Seconds()
	dropped := 0
	for _, n := range r.Dropped {
		dropped += n
	}
	r.StillUp = len(open) - dropped
	mu.Unlock()
	fmt.Fprintf(g.out, "hold end: %d of %d still up\n", r.StillUp, len(open))
	cancel()
	// The drains end when the tunnels close; the report is taken now.
	r.PacketsSent, r.PacketsReceived = sent.Load(), received.Load()
	g.closeAll()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return r
}

// drain reads a tunnel until it ends, counting packets.
func drain(c conn, received *atomic.Uint64) {
	bufs := make([][]byte, 4)
	sizes := make([]int, len(bufs))
	for i := range bufs {
		bufs[i] = make([]byte, tunnel.BufferSize)
	}
	for {
		n, err := c.Read(bufs, sizes, tunnel.Headroom)
		if err != nil {
			return
		}
		received.Add(uint64(n))
	}
}

// traffic sends one small UDP packet inside every tunnel -pps times a
// second, to -target, from the tunnel's own address.
func (g *gen) traffic(ctx context.Context, open []held, sent *atomic.Uint64) {
	buf := make([]byte, tunnel.BufferSize)
	bufs := [][]byte{nil}
	t := time.NewTicker(time.Second / time.Duration(g.o.pps))
	defer t.Stop()
	for seq := uint32(0); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, h := range open {
			if !h.addr.Is4() {
				continue
			}
			n := udpPacket(buf[tunnel.Headroom:], netip.AddrPortFrom(h.addr, 9), g.o.target, seq)
			bufs[0] = buf[:tunnel.Headroom+n]
			if _, err := h.c.Write(bufs, tunnel.Headroom); err == nil {
				sent.Add(1)
			}
		}
	}
}

// udpPacket writes an IPv4/UDP packet with a 4-byte sequence number as
// payload into b and returns its length. The UDP checksum is 0 (none),
// which IPv4 allows.
func udpPacket(b []byte, src, dst netip.AddrPort, seq uint32) int {
	const total = 20 + 8 + 4
	clear(b[:total])
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], total)
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(b[20:], src.Port())
	binary.BigEndian.PutUint16(b[22:], dst.Port())
	binary.BigEndian.PutUint16(b[24:], 8+4)
	binary.BigEndian.PutUint32(b[28:], seq)
	return total
}

// closeAll closes every open tunnel, many at a time (a Close says goodbye
// to the server and may wait for its acknowledgement).
func (g *gen) closeAll() {
	g.mu.Lock()
	open := g.open
	g.open = nil
	g.mu.Unlock()
	next := make(chan held)
	var wg sync.WaitGroup
	for range min(64, len(open)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range next {
				_ = h.c.Close()
			}
		}()
	}
	for _, h := range open {
		next <- h
	}
	close(next)
	wg.Wait()
}

// memory measures the process with its tunnels up.
func (g *gen) memory() MemoryReport {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	g.mu.Lock()
	n := len(g.open)
	g.mu.Unlock()
	m := MemoryReport{Tunnels: n, GoHeapBytes: ms.HeapInuse, GoSysBytes: ms.Sys}
	if rss, err := selfRSS(); err == nil {
		m.RSSBytes = rss
		if n > 0 {
			m.PerTunnelRSS = float64(rss) / float64(n)
		}
	}
	return m
}

// selfRSS reads VmRSS of this process.
func selfRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 2 && f[1] == "kB" {
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("loadgen: no VmRSS")
}

// run is one whole run: the OpenVPN handshakes, the IPsec ones, the
// hold, the report.
func (g *gen) run(ctx context.Context) (*Report, error) {
	r := &Report{}
	if g.o.n > 0 {
		r.Phases = append(r.Phases, g.connect(ctx, "openvpn "+g.ovpnNet, g.o.n, 0, g.dialOpenVPN))
	}
	if g.o.ipsecN > 0 && ctx.Err() == nil {
		r.Phases = append(r.Phases, g.connect(ctx, "ipsec", g.o.ipsecN, g.o.n, g.dialIPsec))
	}
	for _, s := range r.Phases {
		fmt.Fprintln(g.out, s)
	}
	fmt.Fprintln(g.out, "handshakes done")
	r.Memory = g.memory()
	fmt.Fprintf(g.out, "memory with %d tunnels up: RSS %.1f MiB (%.1f KiB per tunnel), Go heap %.1f MiB\n",
		r.Memory.Tunnels, float64(r.Memory.RSSBytes)/(1<<20), r.Memory.PerTunnelRSS/1024, float64(r.Memory.GoHeapBytes)/(1<<20))
	if g.o.hold > 0 && ctx.Err() == nil {
		r.Hold = g.hold(ctx)
		fmt.Fprintf(g.out, "hold: %d of %d up after %.0f s; %d packets sent, %d received\n",
			r.Hold.StillUp, r.Hold.Tunnels, r.Hold.Seconds, r.Hold.PacketsSent, r.Hold.PacketsReceived)
		for k, v := range r.Hold.Dropped {
			fmt.Fprintf(g.out, "  %6d dropped: %s\n", v, k)
		}
	} else {
		g.closeAll()
	}
	fmt.Fprintln(g.out, "done")
	return r, ctx.Err()
}
