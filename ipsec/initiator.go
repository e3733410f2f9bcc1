package ipsec

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/internal/udpbatch"
	"github.com/remotegate/remotegate/ipsec/internal/esp"
	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// ErrRefused: the responder authenticated the IKE SA but refused the
// tunnel itself (traffic selectors, virtual address, ...); the error names
// the notify it answered with.
var ErrRefused = errors.New("ipsec: the responder refused the tunnel")

// errClientClosed is what Read and Write of a closed Client return:
// ErrClosed, which wraps tunnel.ErrClosed, so that code written for any
// tunnel.Device recognises it.
var errClientClosed = ErrClosed

// DialConfig configures Dial, the IKEv2 initiator. The zero value of every
// field is documented. The initiator needs a way to authenticate itself
// (PSK, or Certificate with PrivateKey) and one to authenticate the
// responder (PSK or VerifyPeer).
type DialConfig struct {
	// LocalID is our identity, sent as IDi; the responder compares it with
	// what it expects (strongSwan's remote.id) and with the certificate.
	// The zero value is the first DNS name of the certificate as an FQDN,
	// or its subject as a DN; with a PSK and no certificate it is required.
	LocalID ID
	// RemoteID is the identity the responder must prove. It is also sent
	// as IDr, which tells a responder with several identities which one to
	// use. The zero value sends no IDr and accepts any identity that
	// VerifyPeer (or knowledge of the PSK) accepts.
	RemoteID ID
	// Certificate is our certificate chain, leaf first, and PrivateKey its
	// key (which may live on a PKCS#11 token). Nil: we authenticate with
	// PSK.
	Certificate []*x509.Certificate
	PrivateKey  crypto.Signer
	// PSK is a pre-shared key. When set, we authenticate with it instead
	// of the certificate, and a responder may authenticate with it too.
	PSK []byte
	// VerifyPeer checks a responder that authenticates with a certificate:
	// id is its IKE identity, chain the certificates it sent, leaf first
	// (typically chain[0].Verify with the CA pool and
	// x509.ExtKeyUsageAny). Dial checks afterwards that the leaf names id
	// and signed the AUTH payload. Nil: a responder's certificate is
	// refused, so only PSK responders are accepted.
	VerifyPeer func(id ID, chain []*x509.Certificate) error
	// CertificateAuthorities are named in our CERTREQ payload, so that a
	// responder with certificates from several CAs picks the right one.
	// A CERTREQ is sent whenever VerifyPeer is set, empty when this is nil:
	// strongSwan sends its certificate only when asked (send_cert =
	// ifasked).
	CertificateAuthorities []*x509.Certificate
	// IKEProposals and ESPProposals are the algorithm suites we offer, in
	// order of preference; the responder picks. Nil: DefaultIKEProposals
	// and DefaultESPProposals. The key exchange starts with the first
	// group of the first IKE proposal; a responder that wants another one
	// of ours says so (INVALID_KE_PAYLOAD) and costs a round trip.
	IKEProposals []Proposal
	ESPProposals []Proposal
	// RequestAddress asks the responder for a virtual IPv4 address (and
	// DNS servers) in a configuration payload, as road warriors do;
	// Addresses returns what it assigned. Dial fails when it assigns none.
	RequestAddress bool
	// RequestAddress6 asks for a virtual IPv6 address (and IPv6 DNS
	// servers) too, or alone without RequestAddress: strongSwan's
	// vips = 0.0.0.0, :: or vips = ::. A responder that has addresses of
	// one family only assigns that one (RFC 7296 §3.15.4); Dial fails when
	// it assigns none of those asked for. The default traffic selectors
	// then include ::/0.
	RequestAddress6 bool
	// LocalTS and RemoteTS are the traffic selectors we propose: the
	// addresses on our side of the tunnel and on the responder's. The
	// responder may narrow them; LocalTS and RemoteTS of the Client are
	// the result. Nil LocalTS: 0.0.0.0/0, which a responder narrows to the
	// virtual address with RequestAddress. Nil RemoteTS: 0.0.0.0/0. With
	// RequestAddress6 both defaults add ::/0 (without RequestAddress they
	// are ::/0 alone).
	LocalTS  []netip.Prefix
	RemoteTS []netip.Prefix
	// AdditionalChildren are further child SAs, each with its own traffic
	// selectors, that Dial negotiates with CREATE_CHILD_SA after IKE_AUTH
	// (which carries the child of LocalTS and RemoteTS): a gateway with
	// two LANs asks for one child SA per LAN, as a responder configured
	// with one child per LAN expects. Write sends each packet on the child
	// whose selectors cover it; LocalTS and RemoteTS of the Client are
	// what all children cover. Dial fails if the responder refuses one.
	AdditionalChildren []ChildTS
	// DPDInterval is how long the IKE SA may be silent (no IKE message and
	// no ESP packet from the responder) before the Client checks that the
	// responder is alive; if it does not answer the retransmissions the
	// Client ends with ErrDeadPeer. Zero: 30 s. Negative: never.
	DPDInterval time.Duration
	// RetransmitTimeout is how long the Client waits for the answer to a
	// request (IKE_SA_INIT, IKE_AUTH, a dead peer check, a rekey, a
	// delete) before it sends it again; each further wait is 1.8 times
	// longer. RetransmitTries is how many times a request is sent in all
	// before the responder counts as dead (ErrDeadPeer). Zero: 2 s and 5
	// tries, as for the Server.
	RetransmitTimeout time.Duration
	RetransmitTries   int
	// CloseTimeout bounds how long Close waits for the responder to
	// answer the Delete (retransmitted meanwhile) before it closes
	// anyway: a gateway shutting down should not wait out every
	// retransmission for a responder that is gone. Zero: 5 s. The
	// responder forgets the SA by its own dead peer detection if the
	// Delete never arrives.
	CloseTimeout time.Duration
	// Fragmentation says whether IKE fragmentation (RFC 7383) is
	// offered: the zero value, FragmentationSupported, sends
	// IKEV2_FRAGMENTATION_SUPPORTED and, when the responder echoes it,
	// reassembles its fragments and fragments our own large messages
	// (IKE_AUTH with certificates). FragmentationDisabled turns it off.
	Fragmentation FragmentationMode
	// FragmentSize is the largest IP datagram (IP and UDP headers, non-ESP
	// marker and IKE message) of a fragment we send, like strongSwan's
	// charon.fragment_size; messages that fit are not fragmented. Zero:
	// 1280. Otherwise at least 256.
	FragmentSize int
	// IKELifetime and ChildLifetime say when we rekey the IKE SA and
	// the child SAs ourselves, and when an SA whose rekey failed is
	// deleted (see Lifetime). Zero: strongSwan's defaults, 4 h and 1 h
	// with 10 % hard limit and jitter. A negative RekeyTime switches our
	// own rekeys by time off.
	IKELifetime, ChildLifetime Lifetime
	// Rand is the source of randomness (SPIs, nonces, DH keys, IVs).
	// Nil: crypto/rand.
	Rand io.Reader
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// Logger receives handshake events; never keys or secrets. Nil:
	// silent.
	Logger *slog.Logger
}

// keepaliveInterval is how often an idle Client sends a NAT keepalive
// (RFC 3948 §2.3), as strongSwan does behind a NAT: it keeps the
// mappings of NATs between us and the responder open, since the responder
// believes we are behind one and never sends keepalives itself.
const keepaliveInterval = 20 * time.Second

// maxHandshakeMessage bounds an IKE message during the handshake: without
// IKE fragmentation, certificate chains arrive as IP-fragmented datagrams.
const maxHandshakeMessage = 65535

// handshakeBufs are the receive buffers of Dial, reused because they are
// large.
var handshakeBufs = sync.Pool{New: func() any { b := make([]byte, maxHandshakeMessage); return &b }}

// Client is an IKEv2 initiator's tunnel: one IKE SA and its child SAs
// (one, or one per AdditionalChildren entry besides) to a responder,
// established by Dial. It is a tunnel.Device: Write seals IP
// packets into ESP and sends them, Read returns the IP packets the
// responder sent, so that a TUN can be bridged to it. In the background it
// answers the responder's dead peer detection, deletes and rekeys, and
// checks the responder's liveness itself. Read and Write may be called
// concurrently with each other and with Close.
type Client struct {
	cfg DialConfig
	sc  *saConfig // what its IKE SAs share, defaulted
	log *slog.Logger
	now func() time.Time

	conn  *net.UDPConn
	uc    *udpbatch.Conn
	pc    *packetConn
	local netip.AddrPort
	// link is the lock, the responder's address (only authenticated IKE
	// messages move it, RFC 7296 §2.23), the child SA that Write uses and
	// the liveness times, shared by the IKE SAs.
	link *link

	espOffer  []Proposal // ESPProposals without DH groups, as offered in IKE_AUTH
	handshake time.Duration

	// Set by Dial, read-only afterwards.
	peerID    ID
	peerChain []*x509.Certificate
	addrs     []netip.Prefix
	dns       []netip.Addr

	// Guarded by link.mu.
	ike       *ikeSA   // the current IKE SA
	old       *ikeSA   // the IKE SA a rekey replaced, until the responder deletes it
	redundant []*ikeSA // see Client.adopt
	closed    bool
	downCause error // why the IKE SA went down, while our Delete is on its way
	cause     error
	done      chan struct{}
	closeOnce sync.Once

	table esp.Table[*childSA] // inbound child SAs by our SPI

	rx        chan *rxPacket
	free      chan *rxPacket
	allocated int // rx buffers made so far (read loop only)
	batch     int // datagrams the read loop reads at once (read loop only)
	wg        sync.WaitGroup

	bytesIn, bytesOut, pktsIn, pktsOut atomic.Uint64
	unroutable                         atomic.Uint64
}

// rxPacket is a received datagram and, once opened, the inner packet in
// it, queued for Read.
type rxPacket struct {
	buf  []byte
	data []byte
}

const (
	rxQueue = 256 // packets waiting for Read; more are dropped like a full interface queue
	rxBatch = 64  // datagrams per read system call, and BatchSize
)

// Dial establishes an IKE SA and a child SA with the responder at remote
// (port 0 means 4500) over conn, like crypto/tls's Client: it runs
// IKE_SA_INIT (following COOKIE and INVALID_KE_PAYLOAD answers) and
// IKE_AUTH, and returns once ESP can flow. ctx bounds the handshake only.
//
// ESP is always carried in UDP (RFC 3948): Dial tells the responder that
// we are behind a NAT, as strongSwan's encap option does. All messages go
// to remote's port with the non-ESP marker when that port is not 500;
// with 500, IKE_SA_INIT goes there and the rest floats to 4500. conn may
// be bound to any port but 500 (4500 is conventional, an ephemeral one
// works).
//
// Dial takes ownership of conn: the Client closes it, and Dial closes it
// when it fails.
func Dial(ctx context.Context, conn *net.UDPConn, remote netip.AddrPort, cfg *DialConfig) (*Client, error) {
	if conn == nil {
		return nil, fmt.Errorf("%w: nil conn", ErrConfig)
	}
	c, err := newClient(conn, remote, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := c.runHandshake(ctx); err != nil {
		if c.ike != nil {
			c.ike.dropChildren()
		}
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	now := c.now()
	c.link.lastInbound.Store(now.UnixNano())
	c.link.lastOutbound.Store(now.UnixNano())
	c.batch = 4
	c.wg.Add(2)
	go c.readLoop()
	go c.timerLoop()
	return c, nil
}

func newClient(conn *net.UDPConn, remote netip.AddrPort, cfg *DialConfig) (*Client, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil DialConfig", ErrConfig)
	}
	d := *cfg
	if len(d.PSK) == 0 && len(d.Certificate) == 0 {
		return nil, fmt.Errorf("%w: neither PSK nor Certificate: we could not authenticate", ErrConfig)
	}
	if len(d.PSK) == 0 && d.PrivateKey == nil {
		return nil, fmt.Errorf("%w: Certificate without PrivateKey", ErrConfig)
	}
	if len(d.PSK) == 0 && d.VerifyPeer == nil {
		return nil, fmt.Errorf("%w: neither PSK nor VerifyPeer: the responder could not authenticate", ErrConfig)
	}
	sc, err := newSAConfig(saSettings{ikeProposals: d.IKEProposals, espProposals: d.ESPProposals, dpd: d.DPDInterval,
		retransmitTimeout: d.RetransmitTimeout, retransmitTries: d.RetransmitTries, fragmentation: d.Fragmentation,
		fragmentSize: d.FragmentSize, rand: d.Rand, now: d.Now, log: d.Logger,
		ikeLifetime: d.IKELifetime, childLifetime: d.ChildLifetime})
	if err != nil {
		return nil, err
	}
	if len(sc.ikeProposals) == 0 || len(sc.espProposals) == 0 {
		return nil, fmt.Errorf("%w: no IKE or no ESP proposals", ErrConfig)
	}
	for _, p := range sc.ikeProposals {
		c := chosen{Proposal: p}
		if p.PRF == 0 || p.DHGroup == 0 {
			return nil, fmt.Errorf("%w: IKE proposal %v needs a PRF and a DH group", ErrConfig, p)
		}
		if err := c.ikeSuite().Validate(); err != nil {
			return nil, fmt.Errorf("%w: IKE proposal %v: %w", ErrConfig, p, err)
		}
	}
	var espOffer []Proposal
	for _, p := range sc.espProposals {
		c := chosen{Proposal: p}
		if err := c.childSuite().Validate(); err != nil {
			return nil, fmt.Errorf("%w: ESP proposal %v: %w", ErrConfig, p, err)
		}
		// IKE_AUTH creates the first child without a key exchange (RFC
		// 7296 §1.2), so no groups are offered there.
		p.DHGroup, p.PRF = 0, 0
		if !slices.Contains(espOffer, p) {
			espOffer = append(espOffer, p)
		}
	}
	if len(wireProposals(sc.ikeProposals, message.ProtoIKE, nil, 0)) > 255 || len(wireProposals(espOffer, message.ProtoESP, nil, 0)) > 255 {
		return nil, fmt.Errorf("%w: more than 255 proposals", ErrConfig)
	}
	if d.LocalID.Type == 0 && len(d.Certificate) > 0 {
		d.LocalID = defaultID(d.Certificate[0])
	}
	if d.LocalID.Type == 0 {
		return nil, fmt.Errorf("%w: no LocalID and no certificate to take it from", ErrConfig)
	}
	for _, ts := range [][]netip.Prefix{d.LocalTS, d.RemoteTS} {
		for _, p := range ts {
			if !p.IsValid() {
				return nil, fmt.Errorf("%w: invalid traffic selector %v", ErrConfig, p)
			}
		}
	}
	for _, ch := range d.AdditionalChildren {
		if len(ch.LocalTS) == 0 || len(ch.RemoteTS) == 0 {
			return nil, fmt.Errorf("%w: an additional child SA without traffic selectors", ErrConfig)
		}
		for _, p := range slices.Concat(ch.LocalTS, ch.RemoteTS) {
			if !p.IsValid() {
				return nil, fmt.Errorf("%w: invalid traffic selector %v", ErrConfig, p)
			}
		}
	}
	anyTS := []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0)}
	if d.RequestAddress6 {
		anyTS = append(anyTS, netip.PrefixFrom(netip.IPv6Unspecified(), 0))
		if !d.RequestAddress {
			anyTS = anyTS[1:]
		}
	}
	if d.LocalTS == nil {
		d.LocalTS = anyTS
	}
	if d.RemoteTS == nil {
		d.RemoteTS = anyTS
	}
	if len(d.LocalTS) == 0 || len(d.RemoteTS) == 0 {
		return nil, fmt.Errorf("%w: empty traffic selectors", ErrConfig)
	}
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	if !remote.Addr().IsValid() || remote.Addr().IsUnspecified() {
		return nil, fmt.Errorf("%w: invalid responder address %v", ErrConfig, remote)
	}
	if remote.Port() == 0 {
		remote = netip.AddrPortFrom(remote.Addr(), 4500)
	}
	c := &Client{cfg: d, sc: sc, log: sc.log, now: sc.now, conn: conn, espOffer: espOffer, link: &link{},
		done: make(chan struct{}), rx: make(chan *rxPacket, rxQueue), free: make(chan *rxPacket, rxQueue+rxBatch)}
	c.link.unroutable = &c.unroutable
	c.uc = udpbatch.New(conn)
	c.local = c.uc.LocalAddr()
	if c.local.Port() == 500 {
		return nil, fmt.Errorf("%w: the initiator's socket must not use port 500 (it speaks NAT traversal on any other)", ErrConfig)
	}
	c.pc = &packetConn{uc: c.uc, local: c.local}
	c.link.ep.Store(&endpoint{pc: c.pc, remote: remote})
	return c, nil
}

// runHandshake runs IKE_SA_INIT and IKE_AUTH.
func (c *Client) runHandshake(ctx context.Context) error {
	start := c.now()
	ike := &ikeSA{cfg: c.sc, role: c, link: c.link, table: &c.table, created: start, initiator: true}
	var err error
	if ike.spii, err = ike.newSPI(); err != nil {
		return err
	}
	ni, err := c.sc.random(nonceLen)
	if err != nil {
		return err
	}
	bp := handshakeBufs.Get().(*[]byte)
	defer handshakeBufs.Put(bp)
	buf := *bp
	group := c.sc.ikeProposals[0].DHGroup
	var (
		cookie, initReq, initResp []byte
		dh                        ikecrypto.DH
		h                         message.Header
		ps                        []message.Payload
	)
	for round := 0; ; round++ {
		if round == 5 {
			return errors.New("ipsec: IKE_SA_INIT: the responder keeps asking for another cookie or group")
		}
		if dh == nil || dh.Group() != group {
			if dh, err = ikecrypto.NewDH(group, c.sc.rand); err != nil {
				return fmt.Errorf("ipsec: IKE_SA_INIT: %w", err)
			}
		}
		req, err := c.initRequest(ike.spii, ni, dh, cookie)
		if err != nil {
			return err
		}
		var resp []byte
		err = c.exchange(ctx, buf, [][]byte{req}, func(msg []byte, rh message.Header) bool {
			if rh.SPIi != ike.spii || rh.Exchange != message.IKESAInit || !rh.IsResponse() || rh.MessageID != 0 {
				return false
			}
			resp, h = bytes.Clone(msg), rh
			return true
		})
		if err != nil {
			return fmt.Errorf("ipsec: IKE_SA_INIT with %v: %w", c.Remote(), err)
		}
		if _, ps, err = message.Parse(resp); err != nil {
			return fmt.Errorf("ipsec: IKE_SA_INIT response: %w", err)
		}
		if n, ok := message.FindNotify(ps, message.NotifyCookie); ok && h.SPIr == ([8]byte{}) {
			if len(n.Data) < 1 || len(n.Data) > 64 {
				return errors.New("ipsec: IKE_SA_INIT: malformed cookie")
			}
			cookie = bytes.Clone(n.Data)
			c.log.Debug("IKE_SA_INIT: the responder asks for a cookie", "remote", c.Remote())
			continue
		}
		if n, ok := message.FindNotify(ps, message.NotifyInvalidKEPayload); ok && h.SPIr == ([8]byte{}) {
			if len(n.Data) != 2 {
				return errors.New("ipsec: IKE_SA_INIT: malformed INVALID_KE_PAYLOAD")
			}
			want := binary.BigEndian.Uint16(n.Data)
			if want == group || !slices.ContainsFunc(c.sc.ikeProposals, func(p Proposal) bool { return p.DHGroup == want }) {
				return fmt.Errorf("%w: the responder wants DH group %d, which we do not offer", ErrNoProposal, want)
			}
			c.log.Debug("IKE_SA_INIT: the responder wants another group", "remote", c.Remote(), "group", want)
			group = want
			continue
		}
		if err := notifyError(ps); err != nil {
			return fmt.Errorf("ipsec: IKE_SA_INIT: %w", err)
		}
		initReq, initResp = req, resp
		break
	}

	saP, ok1 := message.Find[*message.SA](ps)
	ke, ok2 := message.Find[*message.KE](ps)
	nonce, ok3 := message.Find[*message.Nonce](ps)
	if !ok1 || !ok2 || !ok3 || h.SPIr == ([8]byte{}) || len(nonce.Data) < 16 || len(nonce.Data) > 256 {
		return errors.New("ipsec: IKE_SA_INIT response without SA, KE, nonce or SPI")
	}
	if !singleProposal(saP, message.ProtoIKE) {
		return fmt.Errorf("%w: the IKE_SA_INIT response does not carry exactly one proposal", ErrNoProposal)
	}
	sel, wrongKE, err := selectIKE(c.sc.ikeProposals, saP, ke.Group)
	if err != nil {
		return fmt.Errorf("%w: the responder chose a suite we did not offer", ErrNoProposal)
	}
	if wrongKE || ke.Group != dh.Group() {
		return fmt.Errorf("%w: the responder's KE group %d is not the one we sent (%d)", ErrNoProposal, ke.Group, dh.Group())
	}
	shared, err := dh.SharedSecret(ke.Data)
	if err != nil {
		return fmt.Errorf("ipsec: IKE_SA_INIT: %w", err)
	}
	nr := bytes.Clone(nonce.Data)
	ike.spir, ike.suite = h.SPIr, sel
	if ike.prf, err = ikecrypto.NewPRF(sel.PRF); err != nil {
		return fmt.Errorf("ipsec: %w", err)
	}
	if ike.keys, err = ikecrypto.DeriveIKEKeys(sel.ikeSuite(), ni, nr, shared, ike.spii, ike.spir); err != nil {
		return fmt.Errorf("ipsec: %w", err)
	}
	if err := ike.installSK(); err != nil {
		return fmt.Errorf("ipsec: %w", err)
	}
	var peerHashes []uint16
	natd := 0
	for _, n := range message.Notifies(ps) {
		switch n.NotifyType {
		case message.NotifySignatureHashAlgorithms:
			for d := n.Data; len(d) >= 2; d = d[2:] {
				peerHashes = append(peerHashes, binary.BigEndian.Uint16(d))
			}
		case message.NotifyNATDetectionSourceIP, message.NotifyNATDetectionDestinationIP:
			natd++
		case message.NotifyFragmentationSupported:
			// The echo of ours (RFC 7383 §2.3): we never sent it when
			// fragmentation is disabled, but a responder might echo anyway.
			ike.frag = c.cfg.Fragmentation != FragmentationDisabled
		}
	}
	if r := c.Remote(); r.Port() == 500 {
		// Float to the NAT-T port (RFC 7296 §2.23), where ESP goes too.
		if natd == 0 {
			return errors.New("ipsec: the responder does not support NAT traversal, and ESP is only carried in UDP")
		}
		c.link.ep.Store(&endpoint{pc: c.pc, remote: netip.AddrPortFrom(r.Addr(), 4500)})
	}
	c.ike = ike
	if err := c.authenticate(ctx, buf, ike, initReq, initResp, ni, nr, peerHashes, start); err != nil {
		return err
	}
	return c.addChildren(ctx, buf, ike)
}

// initRequest builds the IKE_SA_INIT request.
func (c *Client) initRequest(spii [8]byte, ni []byte, dh ikecrypto.DH, cookie []byte) ([]byte, error) {
	var ps []message.Payload
	if cookie != nil {
		// RFC 7296 §2.6: the cookie comes first.
		ps = append(ps, &message.Notify{NotifyType: message.NotifyCookie, Data: cookie})
	}
	// Our NAT_DETECTION_SOURCE_IP hashes an address we do not have, so
	// that the responder believes we are behind a NAT and encapsulates ESP
	// in UDP; we have no other ESP. The destination hash is honest, so it
	// does not think itself behind one.
	fake := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 2}), 4500)
	src := ikecrypto.NATDetectionHash(spii, [8]byte{}, fake)
	dst := ikecrypto.NATDetectionHash(spii, [8]byte{}, c.Remote())
	var hashes []byte
	for _, a := range ikecrypto.SupportedHashes {
		hashes = binary.BigEndian.AppendUint16(hashes, a)
	}
	ps = append(ps,
		&message.SA{Proposals: wireProposals(c.sc.ikeProposals, message.ProtoIKE, nil, dh.Group())},
		&message.KE{Group: dh.Group(), Data: dh.Public()},
		&message.Nonce{Data: ni},
		&message.Notify{NotifyType: message.NotifyNATDetectionSourceIP, Data: src[:]},
		&message.Notify{NotifyType: message.NotifyNATDetectionDestinationIP, Data: dst[:]},
		&message.Notify{NotifyType: message.NotifySignatureHashAlgorithms, Data: hashes},
	)
	if c.cfg.Fragmentation != FragmentationDisabled {
		ps = append(ps, &message.Notify{NotifyType: message.NotifyFragmentationSupported})
	}
	msg, err := message.Marshal(message.Header{SPIi: spii, Version: message.Version2, Exchange: message.IKESAInit, Flags: message.FlagInitiator}, ps)
	if err != nil {
		return nil, fmt.Errorf("ipsec: IKE_SA_INIT: %w", err)
	}
	return msg, nil
}

// authenticate runs IKE_AUTH (RFC 7296 §1.2, §2.15) with the first child.
func (c *Client) authenticate(ctx context.Context, buf []byte, ike *ikeSA, initReq, initResp, ni, nr []byte, peerHashes []uint16, start time.Time) error {
	idi := &message.ID{IDType: message.IDType(c.cfg.LocalID.Type), Data: c.cfg.LocalID.Value}
	octets := ikecrypto.SignedOctets(initReq, nr, ike.prf, ike.keys.Pi, idi.Body())
	ps := []message.Payload{idi}
	var auth *message.Auth
	if len(c.cfg.PSK) > 0 {
		auth = &message.Auth{Method: message.AuthPSK, Data: ikecrypto.PSKAuth(ike.prf, c.cfg.PSK, octets)}
	} else {
		for _, cert := range c.cfg.Certificate {
			ps = append(ps, &message.Cert{Encoding: message.CertX509Signature, Data: cert.Raw})
		}
		method, data, err := ikecrypto.Sign(c.cfg.PrivateKey, peerHashes, octets)
		if err != nil {
			return fmt.Errorf("ipsec: IKE_AUTH: signing: %w", err)
		}
		auth = &message.Auth{Method: message.AuthMethod(method), Data: data}
	}
	// A Client is the only IKE SA of its socket: the responder may drop
	// state it still holds from our previous run (RFC 7296 §2.4).
	ps = append(ps, &message.Notify{NotifyType: message.NotifyInitialContact})
	if c.cfg.VerifyPeer != nil {
		var hashes []byte
		for _, ca := range c.cfg.CertificateAuthorities {
			sum := sha1.Sum(ca.RawSubjectPublicKeyInfo)
			hashes = append(hashes, sum[:]...)
		}
		ps = append(ps, &message.CertReq{Encoding: message.CertX509Signature, Data: hashes})
	}
	if c.cfg.RemoteID.Type != 0 {
		ps = append(ps, &message.ID{Responder: true, IDType: message.IDType(c.cfg.RemoteID.Type), Data: c.cfg.RemoteID.Value})
	}
	ps = append(ps, auth)
	if c.cfg.RequestAddress || c.cfg.RequestAddress6 {
		cp := &message.CP{CfgType: message.CfgRequest}
		if c.cfg.RequestAddress {
			cp.Attributes = append(cp.Attributes, message.Attribute{Type: message.AttrInternalIP4Address}, message.Attribute{Type: message.AttrInternalIP4DNS})
		}
		if c.cfg.RequestAddress6 {
			cp.Attributes = append(cp.Attributes, message.Attribute{Type: message.AttrInternalIP6Address}, message.Attribute{Type: message.AttrInternalIP6DNS})
		}
		ps = append(ps, cp)
	}
	child := &childSA{sa: ike}
	inSPI, err := c.table.Reserve(c.sc.rand, child)
	if err != nil {
		return fmt.Errorf("ipsec: %w", err)
	}
	child.inSPI = inSPI
	ike.children = []*childSA{child}
	ps = append(ps,
		&message.SA{Proposals: wireProposals(c.espOffer, message.ProtoESP, binary.BigEndian.AppendUint32(nil, inSPI), 0)},
		&message.TrafficSelectors{Selectors: selectorsOf(c.cfg.LocalTS)},
		&message.TrafficSelectors{Responder: true, Selectors: selectorsOf(c.cfg.RemoteTS)},
	)
	req, err := ike.seal(message.IKEAuth, false, 1, ps)
	if err != nil {
		return fmt.Errorf("ipsec: IKE_AUTH: %w", err)
	}
	ike.myMID = 2
	var inner []message.Payload
	err = c.exchange(ctx, buf, req, func(msg []byte, rh message.Header) bool {
		if rh.SPIi != ike.spii || rh.SPIr != ike.spir || rh.Exchange != message.IKEAuth || !rh.IsResponse() || rh.MessageID != 1 {
			return false
		}
		ps, ok := ike.open(msg, &ike.respFrags)
		if !ok {
			return false
		}
		inner = ps
		return true
	})
	if err != nil {
		return fmt.Errorf("ipsec: IKE_AUTH with %v: %w", c.Remote(), err)
	}
	if err := c.verifyResponder(ike, inner, initResp, ni); err != nil {
		return err
	}
	// The IKE SA is up on the responder's side from here on: a failure
	// deletes it.
	if err := c.firstChild(ike, child, inner, ni, nr); err != nil {
		c.abandon(ike)
		return err
	}
	ike.established = true
	c.handshake = c.now().Sub(start)
	c.link.out.Store(child)
	c.log.Info("IKE SA established", "remote", c.Remote(), "responder", c.peerID.String(), "ike", ike.suite.String(),
		"esp", child.suite.String(), "addresses", c.addrs, "local_ts", c.LocalTS(), "remote_ts", c.RemoteTS(), "took", c.handshake)
	return nil
}

// abandon deletes an IKE SA that Dial established but cannot use, without
// waiting for the answer: the responder forgets it either way, by the
// Delete or by its dead peer detection.
func (c *Client) abandon(ike *ikeSA) {
	if msgs, err := ike.seal(message.Informational, false, ike.myMID, []message.Payload{&message.Delete{Protocol: message.ProtoIKE}}); err == nil {
		c.sendIKEs(msgs)
	}
}

// verifyResponder checks the responder's IDr and AUTH (RFC 7296 §2.15).
func (c *Client) verifyResponder(ike *ikeSA, ps []message.Payload, initResp, ni []byte) error {
	if _, ok := message.FindNotify(ps, message.NotifyAuthenticationFailed); ok {
		return fmt.Errorf("%w: the responder refused our authentication (AUTHENTICATION_FAILED)", ErrAuthentication)
	}
	p, ok1 := message.FindType(ps, message.PayloadIDr)
	auth, ok2 := message.Find[*message.Auth](ps)
	if !ok1 || !ok2 {
		if err := notifyError(ps); err != nil {
			return fmt.Errorf("ipsec: IKE_AUTH: %w", err)
		}
		return fmt.Errorf("%w: IKE_AUTH response without IDr or AUTH", ErrAuthentication)
	}
	idr := p.(*message.ID)
	peer := ID{Type: IDType(idr.IDType), Value: bytes.Clone(idr.Data)}
	if c.cfg.RemoteID.Type != 0 && !peer.Equal(c.cfg.RemoteID) {
		return fmt.Errorf("%w: the responder is %s, not %s", ErrAuthentication, peer, c.cfg.RemoteID)
	}
	octets := ikecrypto.SignedOctets(initResp, ni, ike.prf, ike.keys.Pr, idr.Body())
	if auth.Method == message.AuthPSK {
		if len(c.cfg.PSK) == 0 {
			return fmt.Errorf("%w: the responder %s uses a pre-shared key, we have none", ErrAuthentication, peer)
		}
		if err := ikecrypto.VerifyPSKAuth(ike.prf, c.cfg.PSK, octets, auth.Data); err != nil {
			return fmt.Errorf("%w: AUTH of %s: %w", ErrAuthentication, peer, err)
		}
		c.peerID = peer
		return nil
	}
	if c.cfg.VerifyPeer == nil {
		return fmt.Errorf("%w: the responder %s authenticates with a certificate, and VerifyPeer is not set", ErrAuthentication, peer)
	}
	var chain []*x509.Certificate
	for _, p := range ps {
		if ct, ok := p.(*message.Cert); ok && ct.Encoding == message.CertX509Signature {
			cert, err := x509.ParseCertificate(bytes.Clone(ct.Data))
			if err != nil {
				return fmt.Errorf("%w: certificate of %s: %w", ErrAuthentication, peer, err)
			}
			chain = append(chain, cert)
		}
	}
	if len(chain) == 0 {
		return fmt.Errorf("%w: the responder %s sent no certificate", ErrAuthentication, peer)
	}
	if err := c.cfg.VerifyPeer(peer, chain); err != nil {
		return fmt.Errorf("%w: certificate of %s: %w", ErrAuthentication, peer, err)
	}
	if !peer.MatchesCertificate(chain[0]) {
		return fmt.Errorf("%w: identity %s is not in the responder's certificate", ErrAuthentication, peer)
	}
	if err := ikecrypto.Verify(chain[0].PublicKey, uint8(auth.Method), auth.Data, octets); err != nil {
		return fmt.Errorf("%w: AUTH of %s: %w", ErrAuthentication, peer, err)
	}
	c.peerID, c.peerChain = peer, chain
	return nil
}

// firstChild takes the configuration payload and the child SA of the
// IKE_AUTH response.
func (c *Client) firstChild(ike *ikeSA, child *childSA, ps []message.Payload, ni, nr []byte) error {
	if err := notifyError(ps); err != nil {
		return err
	}
	if cp, ok := message.Find[*message.CP](ps); ok && cp.CfgType == message.CfgReply {
		for _, a := range cp.Attributes {
			switch {
			case a.Type == message.AttrInternalIP4Address && len(a.Value) == 4:
				c.addrs = append(c.addrs, netip.PrefixFrom(netip.AddrFrom4([4]byte(a.Value)), 32))
			case a.Type == message.AttrInternalIP6Address && len(a.Value) == 17:
				c.addrs = append(c.addrs, netip.PrefixFrom(netip.AddrFrom16([16]byte(a.Value[:16])), 128))
			case (a.Type == message.AttrInternalIP4DNS && len(a.Value) == 4) || (a.Type == message.AttrInternalIP6DNS && len(a.Value) == 16):
				ip, _ := netip.AddrFromSlice(a.Value)
				c.dns = append(c.dns, ip)
			}
		}
	}
	if (c.cfg.RequestAddress || c.cfg.RequestAddress6) && len(c.addrs) == 0 {
		return fmt.Errorf("%w: no virtual address assigned", ErrRefused)
	}
	saP, ok1 := message.Find[*message.SA](ps)
	tsi, ok2 := findTS(ps, false)
	tsr, ok3 := findTS(ps, true)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("%w: the IKE_AUTH response has no child SA", ErrRefused)
	}
	if !singleProposal(saP, message.ProtoESP) {
		return fmt.Errorf("%w: the IKE_AUTH response does not carry exactly one ESP proposal", ErrNoProposal)
	}
	sel, err := selectESP(c.espOffer, saP, 0)
	if err != nil {
		return fmt.Errorf("%w: the responder chose an ESP suite we did not offer", ErrNoProposal)
	}
	// The responder may only narrow what we proposed (RFC 7296 §2.9).
	local, remote := selectorsOf(c.cfg.LocalTS), selectorsOf(c.cfg.RemoteTS)
	if len(tsi.Selectors) == 0 || len(tsr.Selectors) == 0 || !within(tsi.Selectors, local) || !within(tsr.Selectors, remote) {
		return fmt.Errorf("%w: traffic selectors %v === %v are not within what we proposed", ErrRefused, tsi.Selectors, tsr.Selectors)
	}
	if err := ike.keyChild(child, sel, nil, ni, nr, true); err != nil {
		return err
	}
	child.localTS, child.peerTS = cloneSelectors(tsi.Selectors), cloneSelectors(tsr.Selectors)
	return nil
}

// exchange sends req (all its fragments) and waits for the response that
// accept takes, retransmitting like our other requests. It is the
// handshake's synchronous I/O, before the read loop runs.
func (c *Client) exchange(ctx context.Context, buf []byte, req [][]byte, accept func(msg []byte, h message.Header) bool) error {
	wait := c.sc.retransmitTimeout
	for try := 1; ; try++ {
		c.sendIKEs(req)
		next := time.Now().Add(wait)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			// Short read deadlines keep ctx responsive without a
			// goroutine to watch it.
			deadline := time.Now().Add(200 * time.Millisecond)
			if next.Before(deadline) {
				deadline = next
			}
			if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
				deadline = d
			}
			_ = c.conn.SetReadDeadline(deadline)
			n, from, err := c.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					if time.Now().Before(next) {
						continue
					}
					break
				}
				return fmt.Errorf("read: %w", err)
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if from.Addr() != c.Remote().Addr() {
				continue
			}
			msg, ok := c.ikeOf(buf[:n], from)
			if !ok {
				continue
			}
			h, err := message.ParseHeader(msg)
			if err != nil {
				continue
			}
			if accept(msg, h) {
				return nil
			}
		}
		if try >= c.sc.retransmitTries {
			return fmt.Errorf("%w: no answer after %d tries", ErrDeadPeer, try)
		}
		wait = wait * 18 / 10
	}
}

// ikeOf returns the IKE message in a datagram: all of it from or to port
// 500, after the non-ESP marker otherwise (RFC 3948 §2.2).
func (c *Client) ikeOf(b []byte, from netip.AddrPort) ([]byte, bool) {
	if from.Port() == 500 {
		return b, true
	}
	if esp.Classify(b) == esp.KindIKE {
		return b[message.NonESPMarkerLen:], true
	}
	return nil, false
}

// sendIKE sends an IKE message to the responder, with the non-ESP marker
// unless port 500 is involved (the rule strongSwan follows).
func (c *Client) sendIKE(msg []byte) {
	sendIKE(c.pc, c.Remote(), msg)
	c.link.lastOutbound.Store(c.now().UnixNano())
}

// sendIKEs sends the fragments of an IKE message (or the one message).
func (c *Client) sendIKEs(msgs [][]byte) {
	for _, m := range msgs {
		c.sendIKE(m)
	}
}

// notifyError is the first error notify of a response as an error:
// ErrNoProposal for NO_PROPOSAL_CHOSEN, ErrAuthentication for
// AUTHENTICATION_FAILED, ErrRefused for the rest.
func notifyError(ps []message.Payload) error {
	for _, n := range message.Notifies(ps) {
		if !n.NotifyType.IsError() {
			continue
		}
		switch n.NotifyType {
		case message.NotifyNoProposalChosen:
			return fmt.Errorf("%w (the responder answered %v)", ErrNoProposal, n.NotifyType)
		case message.NotifyAuthenticationFailed:
			return fmt.Errorf("%w (the responder answered %v)", ErrAuthentication, n.NotifyType)
		}
		return fmt.Errorf("%w: %v", ErrRefused, n.NotifyType)
	}
	return nil
}

// singleProposal checks that a response's SA payload is what RFC 7296
// §3.3.6 allows: one proposal of the protocol with one transform of each
// type.
func singleProposal(sa *message.SA, proto message.Protocol) bool {
	if len(sa.Proposals) != 1 || sa.Proposals[0].Protocol != proto {
		return false
	}
	var seen [256]int
	for _, t := range sa.Proposals[0].Transforms {
		seen[t.Type]++
		if seen[t.Type] > 1 || t.Unsupported {
			return false
		}
	}
	return seen[message.TransformEncr] == 1
}

// wireProposals renders our proposals as the SA payload of a request.
// Transforms of one type within a proposal are alternatives (RFC 7296
// §3.3), so proposals that differ only in some algorithms share one wire
// proposal when every combination it allows is one of ours — the
// responder may pick any, and Dial refuses a choice outside the list.
// The default lists become two proposals instead of 234. The DH group of
// our KE payload goes first in each proposal, as strongSwan does.
func wireProposals(ours []Proposal, proto message.Protocol, spi []byte, keGroup uint16) []message.Proposal {
	var uniq []Proposal
	for _, p := range ours {
		if !slices.Contains(uniq, p) {
			uniq = append(uniq, p)
		}
	}
	var groups [][]Proposal
	for _, aead := range classOrder(uniq) {
		class := slices.DeleteFunc(slices.Clone(uniq), func(p Proposal) bool { return p.aead() != aead })
		if isProduct(class) {
			groups = append(groups, class)
			continue
		}
		type cipher struct {
			encr  uint16
			bits  int
			integ uint16
		}
		var order []cipher
		by := map[cipher][]Proposal{}
		for _, p := range class {
			k := cipher{p.Encryption, p.KeyBits, p.Integrity}
			if by[k] == nil {
				order = append(order, k)
			}
			by[k] = append(by[k], p)
		}
		for _, k := range order {
			if isProduct(by[k]) {
				groups = append(groups, by[k])
				continue
			}
			for _, p := range by[k] {
				groups = append(groups, []Proposal{p})
			}
		}
	}
	var out []message.Proposal
	for i, g := range groups {
		if i == 255 {
			break
		}
		out = append(out, renderGroup(g, uint8(i+1), proto, spi, keGroup))
	}
	return out
}

// classOrder is the order in which AEAD and non-AEAD proposals appear.
func classOrder(ps []Proposal) []bool {
	var out []bool
	for _, p := range ps {
		if !slices.Contains(out, p.aead()) {
			out = append(out, p.aead())
		}
	}
	return out
}

type encrKey struct {
	id   uint16
	bits int
}

// dimensions are the distinct algorithms of each type in a group, in
// order of first appearance.
func dimensions(g []Proposal) (encr []encrKey, integ, prf, dh []uint16) {
	for _, p := range g {
		if e := (encrKey{p.Encryption, p.KeyBits}); !slices.Contains(encr, e) {
			encr = append(encr, e)
		}
		if !slices.Contains(integ, p.Integrity) {
			integ = append(integ, p.Integrity)
		}
		if !slices.Contains(prf, p.PRF) {
			prf = append(prf, p.PRF)
		}
		if !slices.Contains(dh, p.DHGroup) {
			dh = append(dh, p.DHGroup)
		}
	}
	return
}

// isProduct reports whether the distinct proposals g are every
// combination of their algorithms.
func isProduct(g []Proposal) bool {
	if len(g) == 0 {
		return false
	}
	encr, integ, prf, dh := dimensions(g)
	return len(encr)*len(integ)*len(prf)*len(dh) == len(g)
}

func renderGroup(g []Proposal, number uint8, proto message.Protocol, spi []byte, keGroup uint16) message.Proposal {
	encr, integ, prf, dh := dimensions(g)
	mp := message.Proposal{Number: number, Protocol: proto, SPI: spi}
	for _, e := range encr {
		t := message.Transform{Type: message.TransformEncr, ID: e.id}
		if e.id != EncrChaCha20Poly1305 {
			t.KeyLength = uint16(e.bits)
		}
		mp.Transforms = append(mp.Transforms, t)
	}
	for _, id := range prf {
		if id != 0 {
			mp.Transforms = append(mp.Transforms, message.Transform{Type: message.TransformPRF, ID: id})
		}
	}
	for _, id := range integ {
		if id != 0 {
			mp.Transforms = append(mp.Transforms, message.Transform{Type: message.TransformInteg, ID: id})
		}
	}
	if i := slices.Index(dh, keGroup); i > 0 {
		dh = append([]uint16{keGroup}, slices.Delete(slices.Clone(dh), i, i+1)...)
	}
	for _, id := range dh {
		if id != 0 {
			mp.Transforms = append(mp.Transforms, message.Transform{Type: message.TransformDH, ID: id})
		}
	}
	if proto == message.ProtoESP {
		mp.Transforms = append(mp.Transforms, message.Transform{Type: message.TransformESN, ID: message.ESNNo})
	}
	return mp
}

// selectorsOf turns prefixes into traffic selectors of any protocol and
// port.
func selectorsOf(ps []netip.Prefix) []message.Selector {
	out := make([]message.Selector, 0, len(ps))
	for _, p := range ps {
		p = p.Masked()
		out = append(out, message.Selector{EndPort: 65535, Start: p.Addr(), End: lastAddr(p)})
	}
	return out
}

// prefixesOf covers the address ranges of selectors with prefixes,
// ignoring protocols and ports.
func prefixesOf(sel []message.Selector) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range sel {
		out = append(out, rangePrefixes(s.Start, s.End)...)
	}
	return out
}

// rangePrefixes is the shortest list of prefixes that covers exactly the
// addresses from start to end.
func rangePrefixes(start, end netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	if !start.IsValid() || !end.IsValid() || start.BitLen() != end.BitLen() {
		return nil
	}
	for start.Compare(end) <= 0 {
		var p netip.Prefix
		for bits := 0; bits <= start.BitLen(); bits++ {
			p = netip.PrefixFrom(start, bits)
			if p.Masked().Addr() == start && lastAddr(p).Compare(end) <= 0 {
				break
			}
		}
		out = append(out, p)
		last := lastAddr(p)
		if last == end {
			break
		}
		start = last.Next()
	}
	return out
}

// within reports whether each selector of got lies inside one of
// proposed: address range, protocol and ports.
func within(got, proposed []message.Selector) bool {
	for _, g := range got {
		if !slices.ContainsFunc(proposed, func(p message.Selector) bool {
			return g.Start.BitLen() == p.Start.BitLen() && p.Start.Compare(g.Start) <= 0 && g.End.Compare(p.End) <= 0 &&
				g.Start.Compare(g.End) <= 0 && (p.Protocol == 0 || p.Protocol == g.Protocol) &&
				p.StartPort <= g.StartPort && g.EndPort <= p.EndPort && g.StartPort <= g.EndPort
		}) {
			return false
		}
	}
	return true
}

func cloneSelectors(s []message.Selector) []message.Selector { return slices.Clone(s) }

func randomBytes(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("ipsec: random: %w", err)
	}
	return b, nil
}
