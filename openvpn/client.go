package openvpn

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/internal/rawio"
	"github.com/remotegate/remotegate/openvpn/internal/datachannel"
	"github.com/remotegate/remotegate/openvpn/internal/keymethod"
	"github.com/remotegate/remotegate/openvpn/internal/wire"
	"github.com/remotegate/remotegate/tunnel"
)

const clientOptionsString = "V4,dev-type tun,link-mtu 1559,tun-mtu 1500,proto UDPv4,cipher AES-256-GCM,auth [null-digest],keysize 256,key-method 2,tls-client"

// clientProto is the IV_PROTO the client announces: only features it
// implements (DATA_V2, REQUEST_PUSH, TLS_KEY_EXPORT, CC_EXIT_NOTIFY); in
// particular not DYN_TLS_CRYPT.
const clientProto = keymethod.ProtoDataV2 | keymethod.ProtoRequestPush | keymethod.ProtoTLSKeyExport | keymethod.ProtoCCExitNotify

// Pushed is what the server pushed to the client.
type Pushed struct {
	// Address is the client's tunnel address with the tunnel network's
	// prefix length (ifconfig with topology subnet).
	Address netip.Prefix
	// Gateway is the server's tunnel address (route-gateway).
	Gateway netip.Addr
	// Address6 is the client's IPv6 tunnel address with the prefix length
	// of the server's IPv6 network (ifconfig-ipv6, pushed by servers with
	// server-ipv6); invalid when the server pushed none.
	Address6 netip.Prefix
	// Gateway6 is the server's IPv6 tunnel address (the second argument
	// of ifconfig-ipv6); invalid when absent.
	Gateway6 netip.Addr
	// Routes are the networks to route through the tunnel, IPv4 (route)
	// and IPv6 (route-ipv6). IPv6 routes are left out when the server
	// pushed no IPv6 address, as stock clients do: the TUN would have no
	// IPv6 source for them.
	Routes []netip.Prefix
	// Cipher is the negotiated data-channel cipher.
	Cipher string
	// PeerID is the id the server assigned; -1 if none was pushed.
	PeerID int
	// TunMTU is the pushed tun-mtu, or 0.
	TunMTU int
	// Ping and PingRestart are the pushed keepalive settings.
	Ping, PingRestart time.Duration
	// Options are all pushed options, verbatim, in order.
	Options []string
}

// Client is an established OpenVPN client connection. It is a
// tunnel.Device: Read returns IP packets from the server, Write sends IP
// packets to it.
type Client struct {
	s       *session
	cfg     ClientConfig
	tlsCfg  *tls.Config
	ciphers []datachannel.Cipher
	conn    net.Conn
	isTCP   bool
	pushed  Pushed
	ccExit  bool

	ready     chan struct{}
	readyOnce sync.Once
	readyErr  error

	// rx queues received packets for Read; their buffers come from and
	// return to rxPool.
	rx      chan *rxBuf
	readerD chan struct{}
	tc      *tls.Conn
	tcMu    sync.Mutex
	// closing is set by Close before it says goodbye, so that the server
	// hanging up in answer is not mistaken for the reason the client ended.
	closing atomic.Bool
}

type rxBuf struct {
	buf   []byte
	plain []byte
}

// clientQueue is the most received packets waiting for Read.
const clientQueue = 256

// rxPool holds the receive buffers of all clients. A client takes one per
// packet and Read gives it back, so a busy client reuses a handful (the
// data path does not allocate once warm) and an idle one holds only the
// buffer its receive loop waits with, instead of a queue's worth each: a
// device embedding Dial pays for bursts only while they last.
var rxPool = sync.Pool{New: func() any { return &rxBuf{buf: make([]byte, tunnel.BufferSize)} }}

func getRxBuf() *rxBuf { return rxPool.Get().(*rxBuf) }

func putRxBuf(rb *rxBuf) {
	rb.plain = nil
	rxPool.Put(rb)
}

// Dial connects to an OpenVPN server, authenticates, and returns once the
// data channel is ready (the PUSH_REPLY was applied). network is "udp",
// "udp4", "udp6", "tcp", "tcp4" or "tcp6". ctx bounds the whole handshake;
// the returned Client is independent of ctx.
func Dial(ctx context.Context, network, address string, cfg *ClientConfig) (*Client, error) {
	if cfg == nil || cfg.TLS == nil {
		return nil, fmt.Errorf("%w: TLS with RootCAs is required", ErrConfig)
	}
	ciphers, err := parseCiphers(cfg.DataCiphers, true)
	if err != nil {
		return nil, err
	}
	prot := cfg.Protection.wire()
	if err := prot.Validate(wire.RoleClient); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := cfg.Compression.framing(); err != nil {
		return nil, err
	}
	isTCP := strings.HasPrefix(network, "tcp")
	if !isTCP && !strings.HasPrefix(network, "udp") {
		return nil, fmt.Errorf("%w: network %q: want udp or tcp", ErrConfig, network)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("openvpn: dial %s: %w", address, err)
	}
	c, err := newClient(conn, isTCP, cfg, ciphers, prot)
	if err != nil {
		conn.Close()
		return nil, err
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		c.s.close(ctx.Err())
		<-c.ready
	}
	if c.readyErr != nil {
		c.shutdown()
		return nil, c.readyErr
	}
	return c, nil
}

func newClient(conn net.Conn, isTCP bool, cfg *ClientConfig, ciphers []datachannel.Cipher, prot *wire.Protection) (*Client, error) {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	codec, err := wire.NewCodec(prot, wire.RoleClient, now())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	local, err := wire.NewSessionID(rnd)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:     *cfg,
		ciphers: ciphers,
		conn:    conn,
		isTCP:   isTCP,
		ready:   make(chan struct{}),
		rx:      make(chan *rxBuf, clientQueue),
		readerD: make(chan struct{}),
	}
	t := cfg.TLS.Clone()
	if t.MinVersion < tls.VersionTLS12 {
		t.MinVersion = tls.VersionTLS12
	}
	t.SessionTicketsDisabled = true
	t.DynamicRecordSizingDisabled = true
	// OpenVPN does not check the server name unless told to; verify the
	// chain and the serverAuth usage ourselves (--remote-cert-tls server).
	roots, serverName := t.RootCAs, t.ServerName
	t.InsecureSkipVerify = true
	userVerify := t.VerifyConnection
	t.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("openvpn: server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: serverName,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return fmt.Errorf("openvpn: server certificate: %w", err)
		}
		if userVerify != nil {
			return userVerify(cs)
		}
		return nil
	}
	c.tlsCfg = t

	var l link
	if isTCP {
		l = &streamLink{conn: conn, w: rawOrConn(conn)}
	} else {
		l = &connLink{conn: conn, rw: rawOrConn(conn)}
	}
	s := newSession(wire.RoleClient, codec, local, l, cfg.Timers.withDefaults(false), discardLogger(cfg.Logger), now, rnd)
	s.hardReset = wire.OpControlHardResetClientV2
	if prot.Mode == wire.ModeTLSCryptV2 {
		s.hardReset = wire.OpControlHardResetClientV3
	}
	s.auth = cfg.Auth
	framing, _ := cfg.Compression.framing() // validated by Dial
	s.framing.Store(uint32(framing))
	s.runKeyFn = c.runKey
	s.onClose = c.onClose
	c.s = s
	s.mu.Lock()
	ks := s.newKeyState(0, 0, 0)
	_ = ks.rel.Send(nil) // hard reset, message 0
	s.mu.Unlock()
	go c.readLoop()
	s.start(ks)
	return c, nil
}

func (c *Client) setReady(err error) {
	c.readyOnce.Do(func() {
		c.readyErr = err
		close(c.ready)
	})
}

func (c *Client) onClose(cause error) {
	c.setReady(cause)
	_ = c.conn.Close()
}

// runKey is the TLS work of one key state on the client side.
func (c *Client) runKey(ks *keyState) error {
	s := c.s
	ctx, cancel := context.WithTimeout(s.ctx, s.timers.HandshakeWindow)
	defer cancel()
	select {
	case <-s.peerKnown:
	case <-ctx.Done():
		return fmt.Errorf("%w: no answer from the server", ErrHandshakeTimeout)
	}
	tc := tls.Client(ks.conn, c.tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("openvpn: TLS handshake: %w", err)
	}
	cm := &keymethod.Message{PreMaster: make([]byte, 48), Options: clientOptionsString}
	for _, b := range [][]byte{cm.PreMaster, cm.Random1[:], cm.Random2[:]} {
		if _, err := io.ReadFull(s.rand, b); err != nil {
			return err
		}
	}
	if c.cfg.Username != "" {
		cm.HasAuth = true
		cm.Username, cm.Password = c.cfg.Username, c.cfg.Password
	}
	cm.PeerInfo = keymethod.PeerInfo{
		Version:  "2.6.0",
		Platform: "linux",
		Proto:    clientProto,
		Ciphers:  cipherNames(c.ciphers),
		NCP:      2,
		MTU:      1600,
		TCPNL:    true,
	}.Marshal()
	cmBytes, err := cm.MarshalClient()
	if err != nil {
		return err
	}
	if _, err := tc.Write(cmBytes); err != nil {
		return fmt.Errorf("openvpn: writing key method 2: %w", err)
	}
	buf := make([]byte, 17*1024)
	n, err := tc.Read(buf)
	if err != nil {
		return fmt.Errorf("openvpn: reading key method 2: %w", err)
	}
	sm, err := keymethod.ParseServer(buf[:n])
	if err != nil {
		return fmt.Errorf("openvpn: key method 2 from server: %w", err)
	}
	if ks.id == 0 {
		if err := c.pull(ctx, tc, buf); err != nil {
			c.setReady(err)
			return err
		}
	}
	key, err := s.deriveKey(ks, tc, cm, sm)
	if err != nil {
		c.setReady(err)
		return err
	}
	s.installKey(ks, key, true)
	c.tcMu.Lock()
	c.tc = tc
	c.tcMu.Unlock()
	c.setReady(nil)
	// readCommands reads with a small buffer of its own: buf, the
	// handshake's, is not kept for the life of the key.
	return readCommands(tc, ks, func(text string, cmd keymethod.Command) (bool, error) {
		switch cmd.Name {
		case "AUTH_FAILED", "RESTART", "HALT":
			s.close(fmt.Errorf("%w: %s", ErrPeerExit, text))
			return true, nil
		}
		return false, nil
	})
}

// pull waits for the server's PUSH_REPLY (asking for it when it does not
// come unprompted) and applies it.
func (c *Client) pull(ctx context.Context, tc *tls.Conn, buf []byte) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Stock servers push at once when asked by IV_PROTO; older ones
		// wait for PUSH_REQUEST, repeated every 5 s like openvpn does.
		t := time.NewTimer(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = writeText(tc, "PUSH_REQUEST")
				t.Reset(5 * time.Second)
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	var reply *keymethod.PushReply
	for {
		n, err := tc.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: no PUSH_REPLY", ErrHandshakeTimeout)
			}
			return fmt.Errorf("openvpn: waiting for PUSH_REPLY: %w", err)
		}
		for _, text := range keymethod.SplitCommands(buf[:n]) {
			cmd := keymethod.ParseCommand(text)
			switch cmd.Name {
			case "AUTH_FAILED":
				return fmt.Errorf("%w: %s", ErrAuthFailed, cmd.Arg)
			case "RESTART", "HALT":
				return fmt.Errorf("%w: %s", ErrPeerExit, text)
			case "PUSH_REPLY":
				part, more, err := keymethod.ParsePushReply(text)
				if err != nil {
					return fmt.Errorf("openvpn: PUSH_REPLY: %w", err)
				}
				if reply == nil {
					reply = part
				} else {
					reply.Merge(part)
				}
				if !more {
					return c.apply(reply)
				}
			}
		}
	}
}

// apply takes the pushed options into use.
func (c *Client) apply(pr *keymethod.PushReply) error {
	s := c.s
	name := pr.Cipher
	if name == "" {
		return errors.New("openvpn: server pushed no cipher (it needs data-ciphers negotiation, OpenVPN 2.4 or later)")
	}
	ci, err := datachannel.ParseCipher(name)
	if err != nil || !slices.Contains(c.ciphers, ci) {
		return fmt.Errorf("openvpn: server pushed cipher %q which is not in our data ciphers %v", name, cipherNames(c.ciphers))
	}
	p := Pushed{Address: pr.Ifconfig, Gateway: pr.RouteGateway, Cipher: ci.String(), PeerID: pr.PeerID, TunMTU: pr.TunMTU,
		Ping: time.Duration(pr.Ping) * time.Second, PingRestart: time.Duration(pr.PingRestart) * time.Second}
	if pr.IfconfigIPv6.IsValid() {
		p.Address6, p.Gateway6 = pr.IfconfigIPv6, pr.IfconfigIPv6Gateway
	}
	for _, r := range pr.Routes {
		if r.Prefix.Addr().Is6() && !p.Address6.IsValid() {
			s.log.Warn("ignoring route-ipv6: the server pushed no ifconfig-ipv6", "route", r.Prefix)
			continue
		}
		p.Routes = append(p.Routes, r.Prefix)
	}
	p.Options = append(p.Options, pr.Other...)
	for _, o := range pr.Other {
		if strings.HasPrefix(o, "compress") || strings.HasPrefix(o, "comp-lzo") {
			comp, err := ParseCompression(o)
			if err != nil {
				return fmt.Errorf("openvpn: server pushed %q: %w", o, err)
			}
			framing, _ := comp.framing()
			s.framing.Store(uint32(framing))
		}
	}
	c.ccExit = slices.Contains(pr.ProtocolFlags, "cc-exit")
	s.mu.Lock()
	s.cipher = ci
	s.useEKM = pr.TLSEKM()
	if p.Ping > 0 {
		s.timers.Ping = p.Ping
	}
	if p.PingRestart > 0 {
		s.timers.PingRestart = p.PingRestart
	}
	s.mu.Unlock()
	if pr.PeerID >= 0 && pr.PeerID < datachannel.NoPeerID {
		s.sendPeerID.Store(uint32(pr.PeerID))
	}
	c.pushed = p
	s.log.Info("connected", "address", p.Address, "address6", p.Address6, "cipher", p.Cipher, "peer_id", p.PeerID)
	return nil
}

// Pushed returns the options the server pushed.
func (c *Client) Pushed() Pushed { return c.pushed }

// readLoop receives from the server: control packets go to the session,
// data packets are decrypted and queued for Read.
func (c *Client) readLoop() {
	defer close(c.readerD)
	const dataOffset = tunnel.Headroom - 24
	rw := rawOrConn(c.conn)
	var br io.Reader
	if c.isTCP {
		br = newBurstReader(rw)
	}
	for {
		if c.s.closedFlag.Load() {
			return
		}
		rb := getRxBuf()
		room := rb.buf[dataOffset : tunnel.BufferSize-tunnel.Tailroom]
		var n int
		var err error
		if c.isTCP {
			n, err = readFrame(br, room)
		} else {
			n, err = rw.Read(room)
		}
		if err != nil {
			putRxBuf(rb)
			switch {
			case c.closing.Load():
				c.s.close(ErrClosed)
			case !c.s.closedFlag.Load():
				c.s.close(fmt.Errorf("openvpn: connection to server: %w", err))
			}
			return
		}
		pkt := room[:n]
		if n == 0 {
			putRxBuf(rb)
			continue
		}
		op, _ := wire.SplitOpcode(pkt[0])
		if !op.IsData() {
			c.s.handleControl(pkt)
			putRxBuf(rb)
			continue
		}
		plain, ok := c.s.openData(pkt)
		if !ok {
			putRxBuf(rb)
			continue
		}
		rb.plain = plain
		select {
		case c.rx <- rb:
		default:
			putRxBuf(rb) // reader too slow: drop, like a full interface queue
		}
	}
}

// Read blocks until packets from the server arrive, then copies up to
// len(bufs) of them into bufs[i][offset:]. See tunnel.Device.
func (c *Client) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	select {
	case rb := <-c.rx:
		sizes[0] = copy(bufs[0][offset:], rb.plain)
		putRxBuf(rb)
		n = 1
	case <-c.s.done:
		return 0, ErrClosed
	}
	for n < len(bufs) {
		select {
		case rb := <-c.rx:
			sizes[n] = copy(bufs[n][offset:], rb.plain)
			putRxBuf(rb)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// Write encrypts and sends bufs[i][offset:] to the server. Each buffer needs
// tunnel.Headroom bytes before offset and tunnel.Tailroom spare capacity.
func (c *Client) Write(bufs [][]byte, offset int) (int, error) {
	if offset < tunnel.Headroom-8 {
		return 0, fmt.Errorf("openvpn: Write needs %d bytes of headroom, got %d", tunnel.Headroom, offset)
	}
	return c.s.send(bufs, offset)
}

// BatchSize is the most packets one Read returns.
func (c *Client) BatchSize() int { return 64 }

// MTU is the pushed tun-mtu, or 1500.
func (c *Client) MTU() int {
	if c.pushed.TunMTU > 0 {
		return c.pushed.TunMTU
	}
	return 1500
}

// Done is closed when the connection ends; Err then tells why.
func (c *Client) Done() <-chan struct{} { return c.s.done }

// Err is the reason the connection ended, or nil while it is up.
func (c *Client) Err() error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.cause
}

// Close tells the server that the client is leaving (unless
// DisableExitNotify) and closes the connection.
func (c *Client) Close() error {
	c.closing.Store(true)
	if !c.s.closedFlag.Load() && !c.cfg.DisableExitNotify {
		c.tcMu.Lock()
		tc := c.tc
		c.tcMu.Unlock()
		switch {
		case c.ccExit && tc != nil:
			_ = writeText(tc, "EXIT")
			c.s.waitAcked(time.Second)
		case !c.isTCP && c.s.hasDataKey():
			buf := make([]byte, tunnel.Headroom+17+tunnel.Tailroom)
			copy(buf[tunnel.Headroom:], datachannel.OCCMagic[:])
			buf[tunnel.Headroom+16] = 6 // OCC_EXIT
			_, _ = c.s.send([][]byte{buf[:tunnel.Headroom+17]}, tunnel.Headroom)
		}
	}
	c.shutdown()
	return nil
}

func (c *Client) shutdown() {
	c.s.close(ErrClosed)
	_ = c.conn.Close()
	<-c.readerD
}

var _ tunnel.Device = (*Client)(nil)

// rawOrConn returns the reader and writer for a connection: its socket
// through package rawio when it has one (which keeps the runtime from
// handing the processor away during each system call), else conn.
func rawOrConn(conn net.Conn) io.ReadWriter {
	if rc, err := rawio.New(conn); err == nil {
		return rc
	}
	return conn
}

// burstReader buffers a TCP stream like a bufio.Reader, but holds
// a large buffer only during bursts: it waits for data with a small one,
// and takes a 64 KiB buffer from a pool once a read fills the small one
// (more is queued in the socket), giving it back once reads come in
// smaller than the small buffer again (a trickle, such as keepalives). A
// connected but idle client or server session thus holds 2 KiB for
// reading, not 64.
type burstReader struct {
	r     io.Reader
	small []byte
	big   *[]byte // from streamBufPool while a burst lasts
	buf   []byte  // small or *big
	start int
	end   int
}

const burstSmall = 2048

func newBurstReader(r io.Reader) *burstReader {
	b := &burstReader{r: r, small: make([]byte, burstSmall)}
	b.buf = b.small
	return b
}

func (b *burstReader) Read(p []byte) (int, error) {
	if b.start == b.end {
		buf := b.small
		if b.big != nil {
			buf = (*b.big)[:cap(*b.big)]
		}
		n, err := b.r.Read(buf)
		switch {
		case b.big == nil && n == len(buf):
			b.big = streamBufPool.Get().(*[]byte)
		case b.big != nil && n < burstSmall:
			// The burst is over: the data read is copied to the small
			// buffer so that the big one can go back to the pool.
			copy(b.small, buf[:n])
			buf = b.small
			streamBufPool.Put(b.big)
			b.big = nil
		}
		b.buf, b.start, b.end = buf, 0, n
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.start:b.end])
	b.start += n
	return n, nil
}

// buffered returns the bytes read and not yet consumed, without reading.
func (b *burstReader) buffered() []byte { return b.buf[b.start:b.end] }

// readFrame reads one length-prefixed packet of a TCP stream into buf; it
// reads nothing past the packet from r itself (a *bufio.Reader or
// burstReader may).
func readFrame(r io.Reader, buf []byte) (int, error) {
	// The length is read into buf: an array of its own would escape to
	// the heap through io.ReadFull, an allocation per packet.
	if len(buf) < 2 {
		return 0, fmt.Errorf("openvpn: buffer of %d bytes for a TCP packet", len(buf))
	}
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(buf[:2]))
	if n == 0 || n > len(buf) {
		return 0, fmt.Errorf("openvpn: bad packet length %d on TCP stream", n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, err
	}
	return n, nil
}

// connLink sends over a connected UDP socket.
type connLink struct {
	conn net.Conn
	rw   io.ReadWriter // conn, or its descriptor through rawOrConn
}

func (l *connLink) sendControl(pkt []byte) error {
	_, err := l.rw.Write(pkt)
	return err
}

func (l *connLink) sendData(pkts [][]byte) error {
	for _, p := range pkts {
		if _, err := l.conn.Write(p); err != nil {
			return err
		}
	}
	return nil
}

func (l *connLink) remote() netip.AddrPort {
	if a, ok := l.conn.RemoteAddr().(*net.UDPAddr); ok {
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

func (l *connLink) close() { _ = l.conn.Close() }

// streamLink sends over TCP with OpenVPN's 2-byte length framing.
type streamLink struct {
	mu   sync.Mutex
	conn net.Conn
	w    io.Writer // conn, or its descriptor through rawOrConn
}

// streamBufSize is the most bytes one write to a TCP stream carries: the
// largest frame (2 + 65535 bytes) fits, and a batch of full-size packets
// goes out in one system call.
const streamBufSize = 2 + 64*1024

// streamBufPool holds the buffers that sends to TCP streams frame their
// packets in. A buffer is taken for one send and given back after it, so
// an idle connection holds none, and a busy one reuses them without
// allocating.
var streamBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, streamBufSize)
	return &b
}}

func (l *streamLink) sendControl(pkt []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writeFrames(pkt, nil)
}

func (l *streamLink) sendData(pkts [][]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writeFrames(nil, pkts)
}

// writeFrames frames one (control) or many (data) packets into a pooled
// buffer and writes it, in as few writes as the buffer allows. The caller
// holds l.mu.
func (l *streamLink) writeFrames(one []byte, pkts [][]byte) error {
	bp := streamBufPool.Get().(*[]byte)
	b := (*bp)[:0]
	defer func() {
		*bp = b[:0]
		streamBufPool.Put(bp)
	}()
	add := func(p []byte) error {
		if len(p) > 0xFFFF {
			return fmt.Errorf("openvpn: packet of %d bytes too large for TCP framing", len(p))
		}
		if len(b)+2+len(p) > cap(b) {
			if _, err := l.w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
		return nil
	}
	if one != nil {
		if err := add(one); err != nil {
			return err
		}
	}
	for _, p := range pkts {
		if err := add(p); err != nil {
			return err
		}
	}
	if len(b) == 0 {
		return nil
	}
	_, err := l.w.Write(b)
	return err
}

func (l *streamLink) remote() netip.AddrPort {
	switch a := l.conn.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

func (l *streamLink) close() { _ = l.conn.Close() }
