package openvpn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/internal/connlimit"
	"github.com/remotegate/remotegate/internal/idtable"
	"github.com/remotegate/remotegate/internal/tlsaead"
	"github.com/remotegate/remotegate/internal/udpbatch"
	"github.com/remotegate/remotegate/openvpn/internal/datachannel"
	"github.com/remotegate/remotegate/openvpn/internal/keymethod"
	"github.com/remotegate/remotegate/openvpn/internal/wire"
	"github.com/remotegate/remotegate/tunnel"
)

// serverOptionsString is the OCC options string the server sends in key
// method 2. Stock peers only compare it for warnings; this is what a stock
// 2.6 server with default settings sends.
const serverOptionsString = "V4,dev-type tun,link-mtu 1559,tun-mtu 1500,proto UDPv4,cipher AES-256-GCM,auth [null-digest],keysize 256,key-method 2,tls-server"

// Server is an OpenVPN server. It serves any number of UDP sockets and TCP
// listeners at once; sessions, peer ids and the Handler are shared.
type Server struct {
	cfg     ServerConfig
	framing datachannel.Compression
	tlsCfg  *tls.Config
	ciphers []datachannel.Cipher
	prot    *wire.Protection
	timers  Timers
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	cookie  [32]byte
	// tcpPending and udpPending hold the clients of each transport that
	// have not authenticated yet (ServerConfig.MaxPending).
	tcpPending, udpPending *connlimit.Set
	// initial bounds the answers to new UDP clients' resets
	// (ServerConfig.ConnectFreqInitial).
	initial *freqLimiter

	mu     sync.Mutex
	byAddr map[netip.AddrPort]*ServerSession
	count  int
	closed bool
	// peers finds a session by the peer id of a data packet without a
	// lock; peerIDs hands out the lowest free id. Both are changed under
	// mu, in O(1) and O(log N): a connect costs the same with 10 or 10,000
	// sessions up.
	peers   idtable.Table[ServerSession]
	peerIDs *idtable.Alloc

	stats serverStats
}

type serverStats struct {
	acceptErrors   atomic.Uint64
	dropNoSession  atomic.Uint64
	dropBadPacket  atomic.Uint64
	statelessReset atomic.Uint64
	dropConnFreq   atomic.Uint64
}

// ServerStats are counters of a Server.
type ServerStats struct {
	// Sessions is the number of sessions that hold state.
	Sessions int
	// StatelessResets counts client resets answered without keeping state.
	StatelessResets uint64
	// DroppedNoSession counts packets that matched no session.
	DroppedNoSession uint64
	// DroppedBadPacket counts packets that failed authentication or parsing.
	DroppedBadPacket uint64
	// DroppedConnectFreq counts resets from new UDP clients left
	// unanswered because ServerConfig.ConnectFreqInitial's bound was
	// reached: a count that climbs means a flood, most likely of forged
	// source addresses, or a bound too low for the clients' reconnects.
	DroppedConnectFreq uint64
	// AcceptErrors counts failed Accept calls of ServeTCP's listeners (too
	// many open files, ...); each was retried after a pause.
	AcceptErrors uint64
	// PendingTCP and PendingUDP are the clients of each transport that
	// have not authenticated yet (see ServerConfig.MaxPending).
	PendingTCP, PendingUDP int
	// EvictedTCP and EvictedUDP count pending clients closed to make room
	// for newer ones.
	EvictedTCP, EvictedUDP uint64
}

// NewServer checks cfg and returns a server ready to Serve.
func NewServer(cfg *ServerConfig) (*Server, error) {
	if cfg == nil || cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil) {
		return nil, fmt.Errorf("%w: TLS with a server certificate is required", ErrConfig)
	}
	if cfg.TLS.ClientCAs == nil && !cfg.AllowNoClientCert {
		return nil, fmt.Errorf("%w: TLS.ClientCAs is required to verify client certificates", ErrConfig)
	}
	if cfg.AllowNoClientCert && cfg.VerifyUserPass == nil {
		return nil, fmt.Errorf("%w: AllowNoClientCert needs VerifyUserPass", ErrConfig)
	}
	ciphers, err := parseCiphers(cfg.DataCiphers, cfg.AllowLegacy)
	if err != nil {
		return nil, err
	}
	prot := cfg.Protection.wire()
	if err := prot.Validate(wire.RoleServer); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	framing, err := cfg.Compression.framing()
	if err != nil {
		return nil, err
	}
	srv := &Server{
		framing: framing,
		cfg:     *cfg,
		ciphers: ciphers,
		prot:    prot,
		timers:  cfg.Timers.withDefaults(true),
		log:     discardLogger(cfg.Logger),
		now:     cfg.Now,
		rand:    cfg.Rand,
		byAddr:  map[netip.AddrPort]*ServerSession{},
	}
	if srv.now == nil {
		srv.now = time.Now
	}
	if srv.rand == nil {
		srv.rand = rand.Reader
	}
	if srv.cfg.MaxSessions == 0 {
		srv.cfg.MaxSessions = 1024
	}
	if srv.cfg.TunMTU == 0 {
		srv.cfg.TunMTU = 1500
	}
	if cfg.MaxPending < 0 || cfg.MaxPendingPerSource < 0 || cfg.FirstPacketTimeout < 0 {
		return nil, fmt.Errorf("%w: MaxPending, MaxPendingPerSource and FirstPacketTimeout must not be negative", ErrConfig)
	}
	if srv.cfg.MaxPending == 0 {
		srv.cfg.MaxPending = 256
	}
	if srv.cfg.MaxPendingPerSource == 0 {
		srv.cfg.MaxPendingPerSource = 8
	}
	if srv.cfg.FirstPacketTimeout == 0 {
		srv.cfg.FirstPacketTimeout = 10 * time.Second
	}
	if srv.initial, err = newFreqLimiter(cfg.ConnectFreqInitial); err != nil {
		return nil, err
	}
	limits := connlimit.Limits{Total: srv.cfg.MaxPending, PerSource: srv.cfg.MaxPendingPerSource}
	if srv.tcpPending, err = connlimit.New(limits); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if srv.udpPending, err = connlimit.New(limits); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := io.ReadFull(srv.rand, srv.cookie[:]); err != nil {
		return nil, fmt.Errorf("openvpn: cookie secret: %w", err)
	}
	t := cfg.TLS.Clone()
	if t.MinVersion < tls.VersionTLS12 {
		t.MinVersion = tls.VersionTLS12
	}
	if t.CipherSuites == nil {
		// crypto/tls's TLS 1.2 defaults include CBC suites; stock
		// OpenVPN clients (OpenSSL 1.0.1 and later) all offer AES-GCM.
		t.CipherSuites = tlsaead.CipherSuites()
	}
	if cfg.AllowNoClientCert {
		t.ClientAuth = tls.VerifyClientCertIfGiven
	} else {
		t.ClientAuth = tls.RequireAndVerifyClientCert
	}
	t.SessionTicketsDisabled = true
	t.DynamicRecordSizingDisabled = true
	srv.tlsCfg = t
	return srv, nil
}

// Stats returns the server's counters.
func (srv *Server) Stats() ServerStats {
	srv.mu.Lock()
	n := srv.count
	srv.mu.Unlock()
	tcp, udp := srv.tcpPending.Stats(), srv.udpPending.Stats()
	return ServerStats{
		Sessions:           n,
		StatelessResets:    srv.stats.statelessReset.Load(),
		DroppedNoSession:   srv.stats.dropNoSession.Load(),
		DroppedBadPacket:   srv.stats.dropBadPacket.Load(),
		DroppedConnectFreq: srv.stats.dropConnFreq.Load(),
		AcceptErrors:       srv.stats.acceptErrors.Load(),
		PendingTCP:         tcp.Tracked,
		PendingUDP:         udp.Tracked,
		EvictedTCP:         tcp.Evicted,
		EvictedUDP:         udp.Evicted,
	}
}

// ServerSession is one client's tunnel on a Server. It implements
// tunnel.Session.
type ServerSession struct {
	srv      *Server
	s        *session
	h        tunnel.Handler
	peerID   uint32
	identity tunnel.Identity
	isUDP    bool
	up       atomic.Bool
	since    atomic.Int64 // unix nanoseconds when the data channel came up
	created  time.Time    // when the client's first packet was accepted
	// pending tracks the session among the unauthenticated clients of its
	// transport until it is up. Atomic: a UDP session gets its entry while
	// another socket's newcomer may already evict it.
	pending atomic.Pointer[connlimit.Entry]
	// guarded by s.mu until pushed
	assignment tunnel.Assignment
	pushMsgs   []string
	pushed     bool
	tc         atomic.Pointer[tls.Conn]
}

// Protocol is "openvpn/udp" or "openvpn/tcp" (tunnel.Reporter).
func (ss *ServerSession) Protocol() string {
	if ss.isUDP {
		return "openvpn/udp"
	}
	return "openvpn/tcp"
}

// Since is when the data channel came up; zero before (tunnel.Reporter).
func (ss *ServerSession) Since() time.Time {
	if n := ss.since.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// HandshakeDuration is how long the handshake took, from the client's
// first accepted packet to the data channel (tunnel.Reporter); zero before.
func (ss *ServerSession) HandshakeDuration() time.Duration {
	if n := ss.since.Load(); n != 0 {
		return time.Unix(0, n).Sub(ss.created)
	}
	return 0
}

// Counters are the session's traffic totals (tunnel.Reporter).
func (ss *ServerSession) Counters() tunnel.Counters {
	return tunnel.Counters{
		BytesIn: ss.s.bytesIn.Load(), BytesOut: ss.s.bytesOut.Load(),
		PacketsIn: ss.s.packetsIn.Load(), PacketsOut: ss.s.packetsOut.Load(),
	}
}

// ID is unique among the server's sessions.
func (ss *ServerSession) ID() uint64 { return ss.s.id }

// Identity is the client's verified identity.
func (ss *ServerSession) Identity() tunnel.Identity { return ss.identity }

// Remote is the client's current address.
func (ss *ServerSession) Remote() netip.AddrPort { return ss.s.link.remote() }

// PeerID is the peer id the server assigned to the client.
func (ss *ServerSession) PeerID() uint32 { return ss.peerID }

// Send encrypts and sends packets to the client; see tunnel.Session.
func (ss *ServerSession) Send(bufs [][]byte, offset int) (int, error) {
	return ss.s.send(bufs, offset)
}

// Close tears the session down. The client is told to reconnect (RESTART)
// so that it does not wait for its ping timeout.
func (ss *ServerSession) Close(cause error) error {
	if tc := ss.tc.Load(); tc != nil && !ss.s.closedFlag.Load() {
		_ = writeText(tc, "RESTART")
		ss.s.waitAcked(time.Second)
	}
	if cause == nil {
		cause = ErrClosed
	}
	ss.s.close(cause)
	return nil
}

var (
	_ tunnel.Session  = (*ServerSession)(nil)
	_ tunnel.Reporter = (*ServerSession)(nil)
)

// ServeUDP serves OpenVPN over a UDP socket until ctx is done or the socket
// fails. It closes conn when it returns, and closes the sessions it started.
func (srv *Server) ServeUDP(ctx context.Context, conn *net.UDPConn, h tunnel.Handler) error {
	if h == nil {
		return fmt.Errorf("%w: nil Handler", ErrConfig)
	}
	srv.sizeUDPBuffers(conn)
	uc := udpbatch.New(conn)
	// Cancelling only unblocks the read: the socket stays open until the
	// sessions have told their clients (RESTART).
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	defer uc.Close()
	defer srv.closeSessions(func(ss *ServerSession) bool { return ss.isUDP }, ErrClosed)

	const batch = 64
	const dataOffset = tunnel.Headroom - 24 // P_DATA_V2 AEAD plaintext lands at Headroom
	bufs := make([][]byte, batch)
	msgs := make([]udpbatch.Message, batch)
	for i := range bufs {
		bufs[i] = make([]byte, tunnel.BufferSize)
		msgs[i].Buf = bufs[i][dataOffset : tunnel.BufferSize-tunnel.Tailroom]
	}
	d := deliverer{bufs: make([][]byte, 0, batch), sizes: make([]int, 0, batch)}
	for {
		n, err := uc.ReadBatch(msgs)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("openvpn: read UDP: %w", err)
		}
		for i := 0; i < n; i++ {
			pkt := msgs[i].Buf[:msgs[i].N]
			srv.handleUDP(uc, h, pkt, msgs[i].Addr, msgs[i].Local, bufs[i], &d)
		}
		d.flush()
	}
}

// deliverer gathers consecutive packets of one session into one Deliver call.
type deliverer struct {
	ss    *ServerSession
	bufs  [][]byte
	sizes []int
}

func (d *deliverer) add(ss *ServerSession, buf []byte, plain []byte) {
	if d.ss != ss {
		d.flush()
		d.ss = ss
	}
	// Move the plaintext to the common offset when its header was not the
	// P_DATA_V2 AEAD one (rare: P_DATA_V1, CBC).
	start := cap(buf) - cap(plain)
	if start != tunnel.Headroom {
		copy(buf[tunnel.Headroom:], plain)
	}
	d.bufs = append(d.bufs, buf)
	d.sizes = append(d.sizes, len(plain))
	if len(d.bufs) == cap(d.bufs) {
		d.flush()
	}
}

func (d *deliverer) flush() {
	if d.ss != nil && len(d.bufs) > 0 {
		d.ss.h.Deliver(d.ss, d.bufs, d.sizes, tunnel.Headroom)
	}
	d.bufs = d.bufs[:0]
	d.sizes = d.sizes[:0]
	d.ss = nil
}

// handleUDP handles one datagram from a client; local is the address of
// ours it was sent to (zero on a socket bound to one address), which the
// session answers from.
func (srv *Server) handleUDP(uc *udpbatch.Conn, h tunnel.Handler, pkt []byte, from netip.AddrPort, local netip.Addr, buf []byte, d *deliverer) {
	if len(pkt) == 0 {
		srv.stats.dropBadPacket.Add(1)
		return
	}
	op, _ := wire.SplitOpcode(pkt[0])
	if op.IsData() {
		var ss *ServerSession
		if op == wire.OpDataV2 && len(pkt) >= 4 {
			ss = srv.peerByID(uint32(pkt[1])<<16 | uint32(pkt[2])<<8 | uint32(pkt[3]))
		}
		if ss == nil {
			ss = srv.sessionByAddr(from)
		}
		if ss == nil {
			srv.stats.dropNoSession.Add(1)
			return
		}
		plain, ok := ss.s.openData(pkt)
		if !ok {
			return
		}
		if !ss.reachedAt(from, local) {
			srv.float(ss, from, local)
		}
		if ss.up.Load() {
			d.add(ss, buf, plain)
		}
		return
	}
	if ss := srv.sessionByAddr(from); ss != nil {
		ss.s.handleControl(pkt)
		return
	}
	srv.handleNewUDP(uc, h, pkt, from, local)
}

// maxPeerID bounds peer ids to the 24 bits of a P_DATA_V2 header: the
// allocator hands out 0 to 0xfffffe, leaving out the all-ones id that
// stands for "no peer id".
const maxPeerID = 1<<idtable.IDBits - 1

// allocPeerID returns the lowest peer id no session holds; srv.mu is held.
// MaxSessions, far below 2²⁴, keeps it from running out.
func (srv *Server) allocPeerID() uint32 {
	if srv.peerIDs == nil {
		srv.peerIDs = idtable.NewAlloc(maxPeerID)
	}
	id, _ := srv.peerIDs.Get()
	return id
}

// publishPeer makes ss the session of its peer id for the data path;
// srv.mu is held.
func (srv *Server) publishPeer(ss *ServerSession) {
	srv.peers.Store(ss.peerID, ss)
}

// releasePeer frees the peer id of ss, if ss still holds it; srv.mu is
// held.
func (srv *Server) releasePeer(ss *ServerSession) {
	if srv.peers.Load(ss.peerID) == ss {
		srv.peers.Store(ss.peerID, nil)
		srv.peerIDs.Put(ss.peerID)
	}
}

// peerByID is the data path's lookup: lock-free and allocation-free.
func (srv *Server) peerByID(id uint32) *ServerSession { return srv.peers.Load(id) }

func (srv *Server) sessionByAddr(a netip.AddrPort) *ServerSession {
	srv.mu.Lock()
	ss := srv.byAddr[a]
	srv.mu.Unlock()
	return ss
}

// reachedAt reports whether a UDP session already talks to client address
// from with our address local.
func (ss *ServerSession) reachedAt(from netip.AddrPort, local netip.Addr) bool {
	l, ok := ss.s.link.(*udpLink)
	if !ok {
		return true
	}
	p := l.path.Load()
	return p.remote == from && p.local == local
}

// float moves a UDP session to a new client address, or to another of our
// addresses, after a packet from there was authenticated (the client's NAT
// mapping changed, or it turned to another address of a multihomed
// server).
func (srv *Server) float(ss *ServerSession, to netip.AddrPort, local netip.Addr) {
	if !ss.isUDP {
		return
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if other := srv.byAddr[to]; other != nil && other != ss {
		return
	}
	l, ok := ss.s.link.(*udpLink)
	if !ok {
		return
	}
	delete(srv.byAddr, l.remote())
	l.setPath(to, local)
	srv.byAddr[to] = ss
}

// cookieSID is the server session id for a client, derived statelessly
// from a per-process secret, a 30-second time slot, the client's address and
// its session id (the 2.6 "HMAC cookie"), so that a reset allocates nothing.
func (srv *Server) cookieSID(slot int64, from netip.AddrPort, client wire.SessionID) wire.SessionID {
	m := hmac.New(sha256.New, srv.cookie[:])
	var b [8 + 18 + 2 + 8]byte
	binary.BigEndian.PutUint64(b[:8], uint64(slot))
	a16 := from.Addr().As16()
	copy(b[8:24], a16[:])
	binary.BigEndian.PutUint16(b[24:26], from.Port())
	copy(b[26:], client[:])
	m.Write(b[:])
	var sid wire.SessionID
	copy(sid[:], m.Sum(nil))
	if sid.IsZero() {
		sid[0] = 1
	}
	return sid
}

func (srv *Server) cookieSlot(t time.Time) int64 { return t.Unix() / 30 }

func (srv *Server) handleNewUDP(uc *udpbatch.Conn, h tunnel.Handler, pkt []byte, from netip.AddrPort, local netip.Addr) {
	op, keyID, sid, err := wire.PeekHeader(pkt)
	if err != nil || keyID != 0 || sid.IsZero() {
		srv.stats.dropBadPacket.Add(1)
		return
	}
	now := srv.now()
	switch op {
	case wire.OpControlHardResetClientV2, wire.OpControlHardResetClientV3:
		// Beyond the bound the reset is dropped before anything is
		// decoded or allocated.
		if srv.initial.full(now) {
			srv.stats.dropConnFreq.Add(1)
			return
		}
	case wire.OpControlV1, wire.OpAckV1, wire.OpControlWKCV1:
	default:
		srv.stats.dropNoSession.Add(1)
		return
	}
	codec, err := wire.NewCodec(srv.prot, wire.RoleServer, now)
	if err != nil {
		return
	}
	p, err := codec.Decode(pkt)
	if err != nil {
		srv.stats.dropBadPacket.Add(1)
		return
	}
	if op == wire.OpControlHardResetClientV2 || op == wire.OpControlHardResetClientV3 {
		if p.MessageID != 0 {
			srv.stats.dropBadPacket.Add(1)
			return
		}
		// Counted only once the reset has passed tls-auth or tls-crypt,
		// when configured, so that resets forged without the key cannot
		// use up the answers meant for real clients.
		if !srv.initial.allow(now) {
			srv.stats.dropConnFreq.Add(1)
			return
		}
		if srv.prot.Mode == wire.ModeTLSCryptV2 {
			// The client key arrived with this reset only; later packets
			// do not repeat it, so state must be kept from here.
			srv.newSession(h, codec, wire.SessionID{}, p.SessionID, newUDPLink(uc, from, local), true, &p, nil)
			return
		}
		cookie := srv.cookieSID(srv.cookieSlot(now), from, p.SessionID)
		reply, err := codec.Encode(nil, &wire.Packet{
			Opcode:          wire.OpControlHardResetServerV2,
			SessionID:       cookie,
			Acks:            []uint32{0},
			RemoteSessionID: p.SessionID,
		})
		if err != nil {
			return
		}
		srv.stats.statelessReset.Add(1)
		_, _ = uc.WriteBatch([]udpbatch.Message{{Buf: reply, N: len(reply), Addr: from, Local: local}})
		return
	}
	// The client's third packet: it must acknowledge our reset (message 0)
	// with a valid cookie session id and, if it carries a message, be the
	// client's first one (id 1). Later packets of a session that has gone
	// must not bring it back.
	if !slices.Contains(p.Acks, 0) || (p.Opcode == wire.OpAckV1 && len(p.Acks) != 1) || (p.Opcode != wire.OpAckV1 && p.MessageID != 1) {
		srv.stats.dropBadPacket.Add(1)
		return
	}
	slot := srv.cookieSlot(now)
	valid := false
	for d := int64(-2); d <= 1 && !valid; d++ {
		c := srv.cookieSID(slot+d, from, p.SessionID)
		valid = hmac.Equal(c[:], p.RemoteSessionID[:])
	}
	if !valid {
		srv.stats.dropBadPacket.Add(1)
		return
	}
	// Our reset (replay id 1) went out from a throw-away codec: advance this
	// codec past that id so that the next packet carries replay id 2.
	if _, err := codec.Encode(nil, &wire.Packet{Opcode: wire.OpAckV1, SessionID: p.RemoteSessionID}); err != nil {
		return
	}
	srv.newSession(h, codec, p.RemoteSessionID, p.SessionID, newUDPLink(uc, from, local), true, &p, nil)
}

// newSession creates the state for a client. local is our session id (zero:
// make one); first is the client packet that created it, already decoded.
//
// A TCP session comes with the pending entry of its connection; a UDP
// session gets its own here, evicting the oldest pending UDP session of
// the client's address, or of all, when a cap is reached.
func (srv *Server) newSession(h tunnel.Handler, codec *wire.Codec, local, remote wire.SessionID, l link, isUDP bool, first *wire.Packet, pending *connlimit.Entry) *ServerSession {
	srv.mu.Lock()
	if srv.closed || srv.count >= srv.cfg.MaxSessions {
		srv.mu.Unlock()
		l.close()
		return nil
	}
	if old := srv.byAddr[l.remote()]; old != nil {
		srv.mu.Unlock()
		old.s.close(errors.New("openvpn: replaced by a new session from the same address"))
		srv.mu.Lock()
	}
	stateless := !local.IsZero()
	if local.IsZero() {
		var err error
		if local, err = wire.NewSessionID(srv.rand); err != nil {
			srv.mu.Unlock()
			return nil
		}
	}
	peerID := srv.allocPeerID()
	ss := &ServerSession{srv: srv, h: h, peerID: peerID, isUDP: isUDP, created: srv.now()}
	ss.pending.Store(pending)
	s := newSession(wire.RoleServer, codec, local, l, srv.timers, srv.log, srv.now, srv.rand)
	s.id = tunnel.NewSessionID()
	s.hardReset = wire.OpControlHardResetServerV2
	s.remoteSID = remote
	s.runKeyFn = ss.runKey
	s.onClose = ss.onClose
	s.auth = srv.cfg.Auth
	s.framing.Store(uint32(srv.framing))
	s.timers.PingRestart = 2 * srv.timers.PingRestart
	ss.s = s
	srv.publishPeer(ss)
	if isUDP {
		srv.byAddr[l.remote()] = ss
	}
	srv.count++
	srv.mu.Unlock()

	if isUDP {
		// Added after srv.mu is released: an evicted session's close takes it.
		e, err := srv.udpPending.Add(connlimit.Source(l.remote().Addr()), sessionCloser{ss})
		if err != nil {
			s.close(fmt.Errorf("openvpn: %w", err))
			return nil
		}
		ss.pending.Store(e)
	}
	s.mu.Lock()
	var ks *keyState
	if stateless {
		ks = s.newKeyState(0, 1, 1)
	} else {
		ks = s.newKeyState(0, 0, 0)
		_ = ks.rel.Send(nil) // our hard reset, message 0
	}
	s.mu.Unlock()
	srv.log.Debug("new session", "session", s.id, "remote", l.remote(), "peer_id", peerID)
	// The client's packet is taken in before the loop runs, so that our
	// reset goes out with its ACK, as a stock server's does. Sent bare and
	// followed by a separate P_ACK_V1, it makes a stock 2.6 TCP client
	// retransmit its reset and then, when both arrive in one read, corrupt
	// that retransmission (see session.process).
	s.process(first)
	s.start(ks)
	return ss
}

// errEvicted closes a pending UDP session to make room for a newer one.
var errEvicted = errors.New("openvpn: closed unauthenticated to make room for a newer client")

// sessionCloser closes a pending UDP session when it is evicted.
type sessionCloser struct{ ss *ServerSession }

func (c sessionCloser) Close() error {
	c.ss.s.close(errEvicted)
	return nil
}

func (ss *ServerSession) onClose(cause error) {
	srv := ss.srv
	ss.pending.Load().Done()
	srv.mu.Lock()
	srv.releasePeer(ss)
	if ss.isUDP && srv.byAddr[ss.Remote()] == ss {
		delete(srv.byAddr, ss.Remote())
	}
	srv.count--
	srv.mu.Unlock()
	ss.s.link.close()
	if ss.up.Load() {
		ss.h.Down(ss, cause)
	}
	srv.log.Info("session closed", "session", ss.s.id, "name", ss.identity.Name, "cause", cause)
}

func (srv *Server) closeSessions(match func(*ServerSession) bool, cause error) {
	srv.mu.Lock()
	var all []*ServerSession
	srv.peers.Range(func(_ uint32, ss *ServerSession) bool {
		if match(ss) {
			all = append(all, ss)
		}
		return true
	})
	srv.mu.Unlock()
	var wg sync.WaitGroup
	for _, ss := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ss.Close(cause)
		}()
	}
	wg.Wait()
}

// runKey is the TLS work of one key state on the server side.
func (ss *ServerSession) runKey(ks *keyState) error {
	s := ss.s
	srv := ss.srv
	ctx, cancel := context.WithTimeout(s.ctx, srv.timers.HandshakeWindow)
	defer cancel()
	tc := tls.Server(ks.conn, srv.tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		// crypto/tls has queued its alert (bad or revoked certificate) on
		// the reliable layer: let it reach the client before the session
		// goes, so that the client learns why instead of timing out.
		s.waitAcked(2 * time.Second)
		srv.log.Info("TLS handshake failed", "session", s.id, "remote", ss.Remote(), "error", err)
		if f := srv.cfg.OnHandshakeFailure; f != nil {
			name := ""
			if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
				name = pc[0].Subject.CommonName
			}
			f(ss.Remote(), name, err)
		}
		return fmt.Errorf("openvpn: TLS handshake: %w", err)
	}
	buf := make([]byte, 17*1024)
	n, err := tc.Read(buf)
	if err != nil {
		return fmt.Errorf("openvpn: reading key method 2: %w", err)
	}
	cm, err := keymethod.ParseClient(buf[:n])
	if err != nil {
		return fmt.Errorf("openvpn: key method 2 from client: %w", err)
	}
	sm := &keymethod.Message{Options: serverOptionsString}
	if _, err := io.ReadFull(s.rand, sm.Random1[:]); err != nil {
		return err
	}
	if _, err := io.ReadFull(s.rand, sm.Random2[:]); err != nil {
		return err
	}
	smBytes, err := sm.MarshalServer()
	if err != nil {
		return err
	}
	if ks.id == 0 {
		reason := ss.authorize(ctx, tc, cm)
		if _, err := tc.Write(smBytes); err != nil {
			return err
		}
		if reason != "" {
			srv.log.Info("client refused", "session", s.id, "remote", ss.Remote(), "reason", reason)
			_ = writeText(tc, "AUTH_FAILED,"+reason)
			s.waitAcked(2 * time.Second)
			return fmt.Errorf("%w: %s", ErrAuthFailed, reason)
		}
	} else {
		// A renegotiated key is installed (for receiving; sending switches
		// when the client uses it) before our key-method message goes out:
		// the client starts sending with the new key as soon as it has read
		// that message, and its first packets must not arrive before the
		// server can open them.
		key, err := s.deriveKey(ks, tc, cm, sm)
		if err != nil {
			return err
		}
		s.installKey(ks, key, false)
		if _, err := tc.Write(smBytes); err != nil {
			return err
		}
	}
	if ks.id == 0 {
		key, err := s.deriveKey(ks, tc, cm, sm)
		if err != nil {
			return err
		}
		s.installKey(ks, key, true)
	}
	ss.tc.Store(tc)
	if ks.id == 0 {
		// Up before the push: the client sends data as soon as it has the
		// PUSH_REPLY, and that data must find the session ready.
		ss.since.Store(srv.now().UnixNano())
		ss.up.Store(true)
		// Authenticated: no longer among the pending clients that a
		// newer one may push out.
		ss.pending.Load().Done()
		ss.h.Up(ss)
		pi := keymethod.ParsePeerInfo(cm.PeerInfo)
		if pi.Proto&keymethod.ProtoRequestPush != 0 {
			if err := ss.push(tc); err != nil {
				return err
			}
		}
		srv.log.Info("session up", "session", s.id, "name", ss.identity.Name, "remote", ss.Remote(),
			"cipher", s.cipher.String(), "peer_id", ss.peerID)
	}
	// readCommands reads with a small buffer of its own: buf, the
	// handshake's, is not kept for the life of the key.
	return readCommands(tc, ks, func(_ string, cmd keymethod.Command) (bool, error) {
		switch cmd.Name {
		case "PUSH_REQUEST":
			return false, ss.push(tc)
		case "EXIT":
			s.close(ErrPeerExit)
			return true, nil
		}
		srv.log.Debug("ignored control message", "session", s.id, "message", cmd.Name)
		return false, nil
	})
}

// authorize checks the client's key-method-2 message, negotiates the data
// channel and asks the Handler for an assignment. It returns the AUTH_FAILED
// reason, or "" when the client is admitted.
func (ss *ServerSession) authorize(ctx context.Context, tc *tls.Conn, cm *keymethod.Message) string {
	s := ss.s
	srv := ss.srv
	pi := keymethod.ParsePeerInfo(cm.PeerInfo)
	cipherName, err := keymethod.NegotiateCipher(cipherNames(srv.ciphers), pi, cm.Options)
	if err != nil {
		return "Data channel cipher negotiation failed (no shared cipher)"
	}
	c, err := datachannel.ParseCipher(cipherName)
	if err != nil {
		return "Data channel cipher negotiation failed (no shared cipher)"
	}
	ekm := pi.Proto&keymethod.ProtoTLSKeyExport != 0
	if !ekm && !srv.cfg.AllowLegacy {
		return "client does not support TLS key material export (OpenVPN 2.6 or later required)"
	}
	cs := tc.ConnectionState()
	id := tunnel.Identity{Username: cm.Username}
	if len(cs.PeerCertificates) > 0 {
		id.Name = cs.PeerCertificates[0].Subject.CommonName
		if len(cs.VerifiedChains) > 0 {
			id.Chain = cs.VerifiedChains[0]
		}
	}
	if srv.cfg.VerifyUserPass != nil {
		if !cm.HasAuth {
			return "username and password required"
		}
		if err := srv.cfg.VerifyUserPass(ctx, cm.Username, cm.Password); err != nil {
			srv.log.Info("username/password refused", "session", s.id, "username", cm.Username, "error", err)
			return "invalid username or password"
		}
	}
	if id.Name == "" {
		id.Name = cm.Username
	}
	ss.identity = id
	asg, err := ss.h.Admit(ctx, id, ss.Remote())
	if err != nil {
		return errText(err)
	}
	pr, err := ss.pushReply(asg, pi, c, ekm)
	if err != nil {
		return err.Error()
	}
	s.mu.Lock()
	s.cipher = c
	s.useEKM = ekm
	s.mu.Unlock()
	ss.assignment = asg
	ss.pushMsgs = pr.Marshal(1000)
	if pi.Proto&keymethod.ProtoDataV2 != 0 {
		s.sendPeerID.Store(ss.peerID)
	}
	return ""
}

func (ss *ServerSession) pushReply(asg tunnel.Assignment, pi keymethod.PeerInfo, c datachannel.Cipher, ekm bool) (*keymethod.PushReply, error) {
	srv := ss.srv
	pr := &keymethod.PushReply{PeerID: -1, Topology: "subnet"}
	for _, a := range asg.Addresses {
		if a.Addr().Is4() && !pr.Ifconfig.IsValid() {
			pr.Ifconfig = a
		}
		if a.Addr().Is6() && !pr.IfconfigIPv6.IsValid() {
			pr.IfconfigIPv6 = a
		}
	}
	if !pr.Ifconfig.IsValid() {
		return nil, errors.New("no IPv4 tunnel address assigned")
	}
	gw := asg.Gateway
	if !gw.IsValid() || !gw.Is4() {
		gw = pr.Ifconfig.Masked().Addr().Next()
	}
	pr.RouteGateway = gw
	if pr.IfconfigIPv6.IsValid() {
		// Stock clients configure the address either way; the second
		// argument is the server's end, which they log and keep for
		// routes without a gateway of their own.
		gw6 := asg.Gateway6
		if !gw6.IsValid() || !gw6.Is6() {
			gw6 = pr.IfconfigIPv6.Masked().Addr().Next()
		}
		pr.IfconfigIPv6Gateway = gw6
	}
	pr.Ping = int(srv.timers.Ping / time.Second)
	pr.PingRestart = int(srv.timers.PingRestart / time.Second)
	for _, r := range asg.Routes {
		// IPv6 routes only to a client that has an IPv6 address: without
		// one its TUN has no IPv6 source to send from.
		if r.Addr().Is4() || (r.Addr().Is6() && pr.IfconfigIPv6.IsValid()) {
			pr.Routes = append(pr.Routes, keymethod.Route{Prefix: r.Masked()})
		}
	}
	if pi.Proto&keymethod.ProtoDataV2 != 0 {
		pr.PeerID = int(ss.peerID)
	}
	pr.Cipher = c.String()
	if ekm {
		if pi.Proto&keymethod.ProtoCCExitNotify != 0 {
			pr.ProtocolFlags = []string{"cc-exit", "tls-ekm"}
		} else {
			pr.KeyDerivation = "tls-ekm"
		}
	}
	if pi.MTU > 0 {
		pr.TunMTU = srv.cfg.TunMTU
	}
	pr.Other = append(pr.Other, srv.cfg.Push...)
	return pr, nil
}

// push sends the PUSH_REPLY once per session; later requests are answered
// with nothing, as stock servers do within their 30 s hold-off.
func (ss *ServerSession) push(tc *tls.Conn) error {
	ss.s.mu.Lock()
	if ss.pushed {
		ss.s.mu.Unlock()
		return nil
	}
	ss.pushed = true
	msgs := ss.pushMsgs
	ss.s.mu.Unlock()
	for _, m := range msgs {
		if err := writeText(tc, m); err != nil {
			return err
		}
	}
	return nil
}

// deriveKey makes the data-channel key of key state ks from its TLS session
// (EKM) or, for legacy peers, from the key-method-2 randoms (PRF).
func (s *session) deriveKey(ks *keyState, tc *tls.Conn, cm, sm *keymethod.Message) (*datachannel.Key, error) {
	s.mu.Lock()
	c, ekm := s.cipher, s.useEKM
	clientSID, serverSID := s.localSID, s.remoteSID
	if s.role == wire.RoleServer {
		clientSID, serverSID = s.remoteSID, s.localSID
	}
	s.mu.Unlock()
	var kb *datachannel.KeyBlock
	var err error
	if ekm {
		cs := tc.ConnectionState()
		kb, err = datachannel.ExportKeyBlock(cs.ExportKeyingMaterial)
	} else {
		kb, err = datachannel.PRFKeyBlock(cm.PreMaster, cm.Random1[:], sm.Random1[:], cm.Random2[:], sm.Random2[:], clientSID, serverSID)
	}
	if err != nil {
		return nil, fmt.Errorf("openvpn: deriving data keys: %w", err)
	}
	k, err := datachannel.NewKey(datachannel.KeyConfig{Cipher: c, Auth: s.auth, Block: kb, Server: s.role == wire.RoleServer, KeyID: ks.id})
	kb.Wipe()
	return k, err
}

// waitAcked waits until every control message sent so far was acknowledged,
// or d passed.
func (s *session) waitAcked(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		pending := 0
		for _, ks := range s.keys {
			if ks != nil {
				pending += ks.rel.Unacked() + ks.rel.Queued()
			}
		}
		s.mu.Unlock()
		if pending == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// udpLink reaches a client through the server's shared UDP socket. The
// path is read for every data packet and changes only when the client
// floats, so it is swapped whole rather than locked.
type udpLink struct {
	uc      *udpbatch.Conn
	path    atomic.Pointer[udpPath]
	scratch []udpbatch.Message
}

// udpPath is where a client is and which of our addresses it talks to.
// local is the destination of its packets when the socket is bound to a
// wildcard address (zero otherwise): replies go out from it, because a
// client drops replies from any other address, and on a server with
// several addresses the kernel's choice is often another one.
type udpPath struct {
	remote netip.AddrPort
	local  netip.Addr
}

func newUDPLink(uc *udpbatch.Conn, to netip.AddrPort, local netip.Addr) *udpLink {
	l := &udpLink{uc: uc}
	l.setPath(to, local)
	return l
}

func (l *udpLink) setPath(to netip.AddrPort, local netip.Addr) {
	l.path.Store(&udpPath{remote: to, local: local})
}

func (l *udpLink) remote() netip.AddrPort { return l.path.Load().remote }

func (l *udpLink) sendControl(pkt []byte) error {
	p := l.path.Load()
	_, err := l.uc.WriteBatch([]udpbatch.Message{{Buf: pkt, N: len(pkt), Addr: p.remote, Local: p.local}})
	return err
}

// sendData is called with the session's send lock held, which also guards
// the scratch messages.
func (l *udpLink) sendData(pkts [][]byte) error {
	path := l.path.Load()
	msgs := l.scratch[:0]
	for _, p := range pkts {
		msgs = append(msgs, udpbatch.Message{Buf: p, N: len(p), Addr: path.remote, Local: path.local})
	}
	l.scratch = msgs[:0]
	for len(msgs) > 0 {
		n, err := l.uc.WriteBatch(msgs)
		if err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func (l *udpLink) close() {}

// errText keeps AUTH_FAILED reasons on one line.
func errText(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// ServeTCP serves OpenVPN over TCP connections accepted from ln until ctx is
// done or ln is closed. It closes ln when it returns, and closes the
// sessions it started.
//
// Any other accept error (too many open files, no buffer space, a
// connection aborted before it was accepted) is counted in the stats and
// retried after a pause, 5 ms doubling up to 1 s as net/http does: a flood
// that exhausts a resource for a moment must not end the serving. The
// connections that have not authenticated yet are bounded by
// ServerConfig.MaxPending and MaxPendingPerSource.
func (srv *Server) ServeTCP(ctx context.Context, ln net.Listener, h tunnel.Handler) error {
	if h == nil {
		return fmt.Errorf("%w: nil Handler", ErrConfig)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer srv.closeSessions(func(ss *ServerSession) bool { return !ss.isUDP }, ErrClosed)
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	defer ln.Close()
	var backoff connlimit.Backoff
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("openvpn: accept: %w", err)
			}
			srv.stats.acceptErrors.Add(1)
			d := backoff.Next()
			srv.log.Warn("accept failed; retrying", "address", ln.Addr().String(), "error", err, "retry_in", d)
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		backoff.Reset()
		// Tracked from the accept on: an idle connection is what a flood
		// is made of. Every entry is evictable, so Add does not fail.
		pending, err := srv.tcpPending.Add(connlimit.SourceOf(conn.RemoteAddr()), conn)
		if err != nil {
			_ = conn.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.serveTCPConn(conn, h, pending)
		}()
	}
}

func (srv *Server) serveTCPConn(conn net.Conn, h tunnel.Handler, pending *connlimit.Entry) {
	defer conn.Close()
	defer pending.Done()
	// Go turns Nagle's algorithm off for every TCP connection; stock
	// openvpn leaves it on unless told "tcp-nodelay". With it on, the small
	// packets a tunnel carries back (TCP ACKs of the inner flows) share outer
	// segments while data is in flight, which halves the segments the client
	// has to receive.
	if tc, ok := conn.(*net.TCPConn); ok && !srv.cfg.TCPNoDelay {
		_ = tc.SetNoDelay(false)
	}
	rw := rawOrConn(conn)
	buf := make([]byte, tunnel.BufferSize)
	room := buf[tunnel.Headroom-24 : tunnel.BufferSize-tunnel.Tailroom]
	// The first packet is read unbuffered, so that a connection that never
	// sends one costs no read buffer. A socket deadline is on the
	// runtime's clock, whatever clock the server decides with.
	_ = conn.SetReadDeadline(time.Now().Add(srv.cfg.FirstPacketTimeout))
	n, err := readFrame(rw, room)
	if err != nil {
		return
	}
	codec, err := wire.NewCodec(srv.prot, wire.RoleServer, srv.now())
	if err != nil {
		return
	}
	p, err := codec.Decode(room[:n])
	if err != nil || p.KeyID != 0 || p.MessageID != 0 ||
		(p.Opcode != wire.OpControlHardResetClientV2 && p.Opcode != wire.OpControlHardResetClientV3) {
		srv.stats.dropBadPacket.Add(1)
		return
	}
	l := &streamLink{conn: conn, w: rw}
	ss := srv.newSession(h, codec, wire.SessionID{}, p.SessionID, l, false, &p, pending)
	if ss == nil {
		return
	}
	// From here the session's handshake window bounds the wait.
	_ = conn.SetReadDeadline(time.Time{})
	// The read buffer is large only during bursts (see burstReader), and
	// the buffers of a batch beyond the first are taken from a pool for
	// the batch: an idle session holds neither.
	br := newBurstReader(rw)
	// Packets that have already arrived in the read buffer are opened into
	// their own buffers and delivered together, so that the handler gets a
	// batch (and a TUN device can merge TCP segments) as with UDP.
	const batch = 32
	bufs := make([][]byte, batch)
	bufs[0] = buf
	var held [batch]*rxBuf
	d := deliverer{bufs: make([][]byte, 0, batch), sizes: make([]int, 0, batch)}
	for {
		for i := 0; i < batch && (i == 0 || frameBuffered(br)); i++ {
			if i > 0 && held[i] == nil {
				held[i] = getRxBuf()
				bufs[i] = held[i].buf
			}
			room := bufs[i][tunnel.Headroom-24 : tunnel.BufferSize-tunnel.Tailroom]
			n, err := readFrame(br, room)
			if err != nil {
				d.flush()
				ss.s.close(fmt.Errorf("openvpn: TCP connection: %w", err))
				return
			}
			pkt := room[:n]
			op, _ := wire.SplitOpcode(pkt[0])
			if !op.IsData() {
				d.flush()
				ss.s.handleControl(pkt)
				continue
			}
			if plain, ok := ss.s.openData(pkt); ok && ss.up.Load() {
				d.add(ss, bufs[i], plain)
			}
		}
		d.flush()
		for i := 1; i < batch && held[i] != nil; i++ {
			putRxBuf(held[i])
			held[i], bufs[i] = nil, nil
		}
	}
}

// frameBuffered reports whether a whole length-prefixed packet is already
// in br, so that reading it does not block.
func frameBuffered(br *burstReader) bool {
	hdr := br.buffered()
	if len(hdr) < 2 {
		return false
	}
	return len(hdr) >= 2+int(binary.BigEndian.Uint16(hdr))
}
