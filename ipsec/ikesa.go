package ipsec

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/esp"
	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// The established IKE SA is one state machine for both roles: once
// IKE_SA_INIT and IKE_AUTH are done (responder.go for the Server,
// initiator.go for Dial), the Server and the Client run the same code for
// CREATE_CHILD_SA (exchange_create_child.go), INFORMATIONAL with deletes
// and dead peer detection (exchange_informational.go) and the
// retransmission of our own requests (retransmit.go). What differs by role
// is behind the role interface: what an additional child SA may carry,
// and what happens to the tunnel when the IKE SA changes or ends.

const (
	// retransmitFirst and retransmitTries are the defaults of
	// RetransmitTimeout and RetransmitTries: the first retransmission after
	// 2 s, then 1.8 times longer each time, five tries, like strongSwan's
	// defaults but faster at first.
	retransmitFirst = 2 * time.Second
	retransmitTries = 5
	// defaultDPD is the default of DPDInterval.
	defaultDPD = 30 * time.Second
	nonceLen   = 32
	// rekeyedGrace keeps the inbound ESP SA of a rekeyed child for packets
	// still in flight when the peer does not delete it itself; it is also
	// the longest our traffic stays on it when the peer neither sends on
	// the new child nor deletes the old one (ikeSA.handOver).
	rekeyedGrace = 10 * time.Second
)

// saConfig is what the IKE SAs of both roles are configured with, taken
// from a Config or a DialConfig and defaulted in one place
// (newSAConfig).
type saConfig struct {
	ikeProposals, espProposals []Proposal
	dpd                        time.Duration // <0: never
	retransmitTimeout          time.Duration
	retransmitTries            int
	fragmentation              FragmentationMode
	fragmentSize               int
	rand                       io.Reader
	now                        func() time.Time
	log                        *slog.Logger
	// ikeLife and childLife say when we rekey (lifetime.go).
	ikeLife, childLife lifetime
	// malformed counts messages that did not authenticate; nil: not
	// counted.
	malformed *atomic.Uint64
}

// saSettings are the fields of Config and DialConfig that saConfig takes.
type saSettings struct {
	ikeProposals, espProposals []Proposal
	dpd, retransmitTimeout     time.Duration
	retransmitTries            int
	fragmentation              FragmentationMode
	fragmentSize               int
	rand                       io.Reader
	now                        func() time.Time
	log                        *slog.Logger
	ikeLifetime, childLifetime Lifetime
}

// newSAConfig checks and defaults the settings both roles share.
func newSAConfig(s saSettings) (*saConfig, error) {
	c := &saConfig{ikeProposals: s.ikeProposals, espProposals: s.espProposals, dpd: s.dpd,
		retransmitTimeout: s.retransmitTimeout, retransmitTries: s.retransmitTries,
		fragmentation: s.fragmentation, fragmentSize: s.fragmentSize, rand: s.rand, now: s.now, log: s.log}
	if c.ikeProposals == nil {
		c.ikeProposals = DefaultIKEProposals
	}
	if c.espProposals == nil {
		c.espProposals = DefaultESPProposals
	}
	if c.dpd == 0 {
		c.dpd = defaultDPD
	}
	if c.retransmitTimeout < 0 || c.retransmitTries < 0 {
		return nil, fmt.Errorf("%w: negative RetransmitTimeout or RetransmitTries", ErrConfig)
	}
	if c.retransmitTimeout == 0 {
		c.retransmitTimeout = retransmitFirst
	}
	if c.retransmitTries == 0 {
		c.retransmitTries = retransmitTries
	}
	if err := checkFragmentSize(c.fragmentSize); err != nil {
		return nil, err
	}
	if err := checkLifetimes(s.ikeLifetime, s.childLifetime); err != nil {
		return nil, err
	}
	c.ikeLife, c.childLife = newLifetime(s.ikeLifetime, defaultIKERekey), newLifetime(s.childLifetime, defaultChildRekey)
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// random returns n random bytes.
func (c *saConfig) random(n int) ([]byte, error) { return randomBytes(c.rand, n) }

// endpoint is where the peer is now: the socket (the view of it that
// sends from the address the peer last sent to, see packetConn) and its
// address (which may change with NAT traversal, to port 4500).
type endpoint struct {
	pc     *packetConn
	remote netip.AddrPort
}

// link is what the IKE SAs of one peer share and what outlives an IKE
// rekey: the lock, the peer's address, the child SAs our traffic leaves
// on, and when we last heard from the peer.
type link struct {
	// mu guards the IKE SAs of the link (all their fields but the atomic
	// ones) and, for a Client, its own state.
	mu  sync.Mutex
	ep  atomic.Pointer[endpoint]
	out childSet // the child SAs we send on (children.go)
	// unroutable counts our packets that no child SA's traffic selectors
	// cover, dropped rather than sent on a child the peer would refuse
	// them on; nil: not counted.
	unroutable   *atomic.Uint64
	lastInbound  atomic.Int64 // unix nanoseconds of the last authenticated IKE or ESP packet
	lastOutbound atomic.Int64 // unix nanoseconds of the last packet sent
	rekeys       rekeyCounts  // guarded by mu
}

// role is what the Server and the Client do differently with an
// established IKE SA. Its methods are called with the link's lock held.
type role interface {
	// handleAuth answers an IKE_AUTH request (the responder only; the
	// initiator returns nil and the request is ignored).
	handleAuth(ctx context.Context, sa *ikeSA, ps []message.Payload) ([]message.Payload, func())
	// additionalChild returns the addresses a child SA that the peer adds
	// (not a rekey) may cover, on its side and ours; ok false refuses it
	// with NO_ADDITIONAL_SAS.
	additionalChild(sa *ikeSA) (peer, local []netip.Prefix, ok bool)
	// childUp reports a child SA that is installed: new, or the
	// replacement of old in a rekey.
	childUp(sa *ikeSA, c, old *childSA)
	// childless reports that the peer deleted the last child SA.
	childless(sa *ikeSA)
	// spiTaken reports whether an IKE SPI of ours is in use.
	spiTaken(spi [8]byte) bool
	// ikeRekeyed reports that n replaced old, which lives on until the
	// peer deletes it.
	ikeRekeyed(old, n *ikeSA)
	// down reports that the tunnel no longer carries traffic (the IKE SA
	// is deleted or dead); the IKE SA may still wait for the answer to
	// our Delete.
	down(sa *ikeSA, cause error)
	// gone reports that the IKE SA has ended and is to be forgotten.
	gone(sa *ikeSA)
	// adopt keeps an IKE SA that carries nothing until it is deleted:
	// the redundant one of simultaneous IKE SA rekeys (RFC 7296 §2.8.1).
	adopt(sa *ikeSA)
}

// ikeSA is one IKE SA, of either role.
type ikeSA struct {
	cfg   *saConfig
	role  role
	link  *link
	table *esp.Table[*childSA] // the inbound ESP SAs, by our SPI

	created     time.Time
	firstRemote netip.AddrPort
	initiator   bool // we are its original initiator: our messages carry the I flag
	spii, spir  [8]byte

	session atomic.Pointer[session] // the Server's session, once authenticated

	established bool
	closed      bool
	// deleting: our Delete of the IKE SA is on its way; the SA carries no
	// traffic and waits for the answer.
	deleting bool

	suite       chosen
	prf         ikecrypto.PRF
	keys        ikecrypto.IKEKeys
	skIn, skOut *ikecrypto.SKCipher

	// The responder's handshake state.
	ni, nr     []byte
	initReq    []byte // RealMessage1 and 2, signed in IKE_AUTH
	initResp   []byte
	peerHashes []uint16
	psk        []byte // the pre-shared key, when the peer used one

	// frag: both sides support IKE fragmentation (RFC 7383), negotiated
	// in IKE_SA_INIT and kept by rekeyed IKE SAs; reqFrags and respFrags
	// collect the fragments of the peer's requests and responses.
	frag                bool
	reqFrags, respFrags reassembly

	peerMID  uint32   // the next request ID expected from the peer
	lastResp [][]byte // the answer to request peerMID-1 (its fragments), for retransmissions

	myMID   uint32     // the ID of our next request
	pending *request   // our outstanding request, nil if none
	queue   []*request // our requests waiting for the window (retransmit.go)

	children []*childSA
	// rekeyedTo is the IKE SA that replaced this one; when the peer then
	// deletes this one, the tunnel lives on.
	rekeyedTo *ikeSA
	rk        ikeRekey // our rekeys of it (rekey.go)
}

// installSK makes the SK ciphers: what the original initiator sends uses
// SK_ei/SK_ai (RFC 7296 §2.14).
func (sa *ikeSA) installSK() error {
	s := sa.suite.ikeSuite()
	sendE, sendA, recvE, recvA := sa.keys.Ei, sa.keys.Ai, sa.keys.Er, sa.keys.Ar
	if !sa.initiator {
		sendE, sendA, recvE, recvA = recvE, recvA, sendE, sendA
	}
	var err error
	if sa.skOut, err = ikecrypto.NewSKCipher(s, sendE, sendA, sa.cfg.rand); err != nil {
		return err
	}
	sa.skIn, err = ikecrypto.NewSKCipher(s, recvE, recvA, sa.cfg.rand)
	return err
}

// handle processes an IKE message of this IKE SA that arrived on pc from
// from. The link's lock is held.
func (sa *ikeSA) handle(ctx context.Context, pc *packetConn, msg []byte, h message.Header, from netip.AddrPort) {
	if sa.closed {
		return
	}
	if h.IsResponse() {
		sa.handleResponse(msg, h)
		return
	}
	if h.MessageID+1 == sa.peerMID && sa.lastResp != nil {
		// A retransmitted request: the same answer (all its fragments),
		// once per retransmission, so only for its first fragment.
		if firstFragment(msg) {
			sendIKEs(pc, from, sa.lastResp)
		}
		return
	}
	if h.MessageID != sa.peerMID {
		return
	}
	inner, ok := sa.open(msg, &sa.reqFrags)
	if !ok {
		return
	}
	sa.moved(pc, from)
	sa.link.lastInbound.Store(sa.cfg.now().UnixNano())
	var out []message.Payload
	var after func()
	switch {
	case h.Exchange == message.IKEAuth && !sa.established:
		out, after = sa.role.handleAuth(ctx, sa, inner)
	case h.Exchange == message.Informational && sa.established:
		out, after = sa.handleInformational(inner)
	case h.Exchange == message.CreateChildSA && sa.established && !sa.deleting:
		out, after = sa.handleCreateChild(inner)
	case h.Exchange == message.CreateChildSA && sa.established:
		// We are deleting the IKE SA: nothing new on it (RFC 7296 §1.4.1).
		out, after = []message.Payload{&message.Notify{NotifyType: message.NotifyTemporaryFailure}}, func() {}
	}
	if after == nil {
		return
	}
	resp, err := sa.seal(h.Exchange, true, h.MessageID, out)
	if err != nil {
		sa.cfg.log.Error("IKE response", "error", err)
		return
	}
	sa.peerMID++
	sa.lastResp = resp
	sendIKEs(pc, from, resp)
	after()
}

// moved records the peer's address of an authenticated message (only
// those may move it, RFC 7296 §2.23). A peer that floated to the NAT-T
// port does not move back to 500.
func (sa *ikeSA) moved(pc *packetConn, from netip.AddrPort) {
	if cur := sa.link.ep.Load(); cur != nil && (cur.pc == pc && cur.remote == from || from.Port() == 500 && cur.remote.Port() != 500) {
		return
	}
	sa.link.ep.Store(&endpoint{pc: pc, remote: from})
}

// open authenticates and decrypts a message (SK, or an SKF fragment
// collected in frags) and parses its inner payloads; ok is false for
// malformed messages and for fragments of a message still incomplete.
func (sa *ikeSA) open(msg []byte, frags *reassembly) ([]message.Payload, bool) {
	if !sa.frag {
		frags = nil
	}
	inner, done, err := openMessage(sa.skIn, msg, frags)
	if err != nil {
		if sa.cfg.malformed != nil {
			sa.cfg.malformed.Add(1)
		}
		return nil, false
	}
	return inner, done
}

// seal builds an encrypted message of this IKE SA, in fragments when it
// is larger than FragmentSize and the peer supports them.
func (sa *ikeSA) seal(exchange message.ExchangeType, response bool, mid uint32, ps []message.Payload) ([][]byte, error) {
	h := message.Header{SPIi: sa.spii, SPIr: sa.spir, Version: message.Version2, Exchange: exchange, MessageID: mid}
	if sa.initiator {
		h.Flags |= message.FlagInitiator
	}
	if response {
		h.Flags |= message.FlagResponse
	}
	limit := 0
	if sa.frag {
		limit = fragmentLimit(sa.cfg.fragmentSize, sa.link.ep.Load().remote)
	}
	return sealMessage(sa.skOut, h, ps, limit)
}

// send sends our message (its fragments) to where the peer is now.
func (sa *ikeSA) send(msgs [][]byte) {
	ep := sa.link.ep.Load()
	sendIKEs(ep.pc, ep.remote, msgs)
	sa.link.lastOutbound.Store(sa.cfg.now().UnixNano())
}

// ourSPI is the SPI by which we know the IKE SA.
func (sa *ikeSA) ourSPI() [8]byte {
	if sa.initiator {
		return sa.spii
	}
	return sa.spir
}

// newSPI picks an IKE SPI of ours that is not in use.
func (sa *ikeSA) newSPI() ([8]byte, error) {
	var spi [8]byte
	for spi == ([8]byte{}) || sa.role.spiTaken(spi) {
		if _, err := io.ReadFull(sa.cfg.rand, spi[:]); err != nil {
			return spi, fmt.Errorf("ipsec: random: %w", err)
		}
	}
	return spi, nil
}

// close ends the IKE SA; notify tells the peer with a Delete first.
func (sa *ikeSA) close(cause error, notify bool) {
	sa.link.mu.Lock()
	defer sa.link.mu.Unlock()
	sa.closeLocked(cause, notify)
}

// closeLocked ends the IKE SA: its children go at once and the tunnel is
// down. With notify the peer is told in a Delete, retransmitted like any
// request of ours until it is answered (or the peer counts as dead),
// and the IKE SA is forgotten then; without, at once. The link's lock is
// held.
func (sa *ikeSA) closeLocked(cause error, notify bool) {
	if sa.closed || sa.deleting {
		return
	}
	sa.dropChildren()
	sa.role.down(sa, cause)
	if notify && sa.established {
		sa.deleting = true
		// Requests waiting for the window are moot now; the Delete waits
		// for an outstanding one, since the window is one request.
		sa.queue = nil
		sa.enqueue(message.Informational, []message.Payload{&message.Delete{Protocol: message.ProtoIKE}}, func([]message.Payload) { sa.goneLocked() })
		return
	}
	sa.goneLocked()
}

// goneLocked forgets the IKE SA; the link's lock is held.
func (sa *ikeSA) goneLocked() {
	if sa.closed {
		return
	}
	sa.closed = true
	sa.dropChildren()
	sa.pending, sa.queue = nil, nil
	sa.role.gone(sa)
}

// retireLocked drops an IKE SA that a rekey replaced (the peer deleted
// it), leaving the tunnel on its successor.
func (sa *ikeSA) retireLocked() {
	sa.closed = true
	sa.pending, sa.queue = nil, nil
	sa.role.gone(sa)
}
