package ipsec

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/ipsec/internal/esp"
	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

// Retransmission of our own requests (DPD, deletes): after 2 s, then
// 1.8 times longer each time, five tries, like strongSwan's defaults but
// faster at first. These are the defaults of Config.RetransmitTimeout and
// Config.RetransmitTries.
const (
	retransmitFirst = 2 * time.Second
	retransmitTries = 5
	nonceLen        = 32
	// rekeyedGrace keeps the inbound ESP SA of a rekeyed child for packets
	// still in flight when the peer does not delete it itself; it is also
	// the longest our traffic stays on it when the peer neither sends on
	// the new child nor deletes the old one (ikeSA.handOver).
	rekeyedGrace = 10 * time.Second
)

// endpoint is where the peer is now: the socket and its address (which
// may change with NAT traversal, to port 4500).
type endpoint struct {
	pc     *packetConn
	remote netip.AddrPort
}

// ikeSA is one IKE SA of the responder.
type ikeSA struct {
	srv         *Server
	created     time.Time
	firstRemote netip.AddrPort
	spii, spir  [8]byte

	ep          atomic.Pointer[endpoint]
	session     atomic.Pointer[session]
	lastInbound atomic.Int64 // unix nanoseconds of the last authenticated IKE or ESP packet

	mu          sync.Mutex
	established bool
	closed      bool
	suite       chosen
	prf         ikecrypto.PRF
	keys        ikecrypto.IKEKeys
	skIn, skOut *ikecrypto.SKCipher
	ni, nr      []byte
	initReq     []byte // RealMessage1 and 2, signed in IKE_AUTH
	initResp    []byte
	peerHashes  []uint16
	psk         []byte // the pre-shared key, when the peer used one

	// frag: both sides support IKE fragmentation (RFC 7383), negotiated
	// in IKE_SA_INIT and kept by rekeyed IKE SAs; reqFrags and respFrags
	// collect the fragments of the peer's requests and responses.
	frag                bool
	reqFrags, respFrags reassembly

	peerMID  uint32   // the next request ID expected from the peer
	lastResp [][]byte // the answer to request peerMID-1 (its fragments), for retransmissions

	myMID       uint32   // the ID of our next request
	pending     [][]byte // our outstanding request (its fragments), nil if none
	pendingSent time.Time
	pendingWait time.Duration
	pendingTry  int

	children []*childSA
	// rekeyedTo is the IKE SA that replaced this one; when the peer then
	// deletes this one, the session lives on.
	rekeyedTo *ikeSA
}

// handleIKE dispatches one IKE message (without the non-ESP marker).
func (s *Server) handleIKE(ctx context.Context, pc *packetConn, msg []byte, from netip.AddrPort) {
	h, err := message.ParseHeader(msg)
	if err != nil {
		s.stats.malformed.Add(1)
		return
	}
	if h.Exchange == message.IKESAInit && h.Flags&message.FlagResponse == 0 {
		s.handleInit(pc, msg, h, from)
		return
	}
	s.mu.Lock()
	sa := s.bySPI[h.SPIr]
	s.mu.Unlock()
	if sa == nil || sa.spii != h.SPIi {
		s.stats.unknownSPI.Add(1)
		return
	}
	sa.handle(ctx, pc, msg, h, from)
}

// handleInit answers an IKE_SA_INIT request (RFC 7296 §1.2, §2.6).
func (s *Server) handleInit(pc *packetConn, msg []byte, h message.Header, from netip.AddrPort) {
	if h.SPIr != ([8]byte{}) || h.MessageID != 0 || h.Flags&message.FlagInitiator == 0 {
		s.stats.malformed.Add(1)
		return
	}
	key := halfOpenKey{h.SPIi, from}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if old, ok := s.halfOpen[key]; ok {
		s.mu.Unlock()
		old.mu.Lock()
		defer old.mu.Unlock()
		if bytes.Equal(old.initReq, msg) {
			// A retransmission: the same answer, not a second SA.
			sendIKE(pc, from, old.initResp)
		}
		return
	}
	halfOpen := len(s.halfOpen)
	s.mu.Unlock()
	_, ps, err := message.Parse(msg)
	if err != nil {
		s.stats.malformed.Add(1)
		if errors.Is(err, message.ErrUnsupportedCritical) {
			s.initError(pc, from, h, message.NotifyUnsupportedCriticalPayload, nil)
		}
		return
	}
	saP, ok1 := message.Find[*message.SA](ps)
	ke, ok2 := message.Find[*message.KE](ps)
	nonce, ok3 := message.Find[*message.Nonce](ps)
	if !ok1 || !ok2 || !ok3 || len(nonce.Data) < 16 || len(nonce.Data) > 256 {
		s.stats.malformed.Add(1)
		s.initError(pc, from, h, message.NotifyInvalidSyntax, nil)
		return
	}
	if halfOpen >= s.cfg.MaxHalfOpen {
		s.stats.halfOpenDropped.Add(1)
		return
	}
	if halfOpen >= s.cfg.CookieThreshold {
		want := s.cookie(nonce.Data, from, h.SPIi)
		first, ok := ps[0].(*message.Notify)
		if !ok || first.NotifyType != message.NotifyCookie || !hmac.Equal(first.Data, want) {
			s.stats.cookiesSent.Add(1)
			s.initError(pc, from, h, message.NotifyCookie, want)
			return
		}
	}
	sel, wrongKE, err := selectIKE(s.cfg.IKEProposals, saP, ke.Group)
	if err != nil {
		s.log.Info("IKE_SA_INIT refused: no acceptable proposal", "remote", from)
		s.initError(pc, from, h, message.NotifyNoProposalChosen, nil)
		return
	}
	if wrongKE {
		// The peer guessed another group; it retries with ours and the
		// same SPI. No state is kept meanwhile.
		s.initError(pc, from, h, message.NotifyInvalidKEPayload, binary.BigEndian.AppendUint16(nil, sel.DHGroup))
		return
	}
	sa, resp, err := s.newIKESA(pc, msg, ps, h, from, sel, ke, nonce)
	if err != nil {
		s.log.Info("IKE_SA_INIT failed", "remote", from, "error", err)
		s.initError(pc, from, h, message.NotifyInvalidSyntax, nil)
		return
	}
	s.mu.Lock()
	s.halfOpen[key] = sa
	s.bySPI[sa.spir] = sa
	s.mu.Unlock()
	sendIKE(pc, from, resp)
}

// initError answers an IKE_SA_INIT with a single notify and no state.
func (s *Server) initError(pc *packetConn, to netip.AddrPort, req message.Header, t message.NotifyType, data []byte) {
	h := message.Header{SPIi: req.SPIi, Version: 0x20, Exchange: message.IKESAInit, Flags: message.FlagResponse}
	out, err := message.Marshal(h, []message.Payload{&message.Notify{NotifyType: t, Data: data}})
	if err == nil {
		sendIKE(pc, to, out)
	}
}

// sendIKE sends an IKE message, with the non-ESP marker on port 4500.
func sendIKE(pc *packetConn, to netip.AddrPort, msg []byte) {
	if pc.marker(to) {
		msg = append(make([]byte, message.NonESPMarkerLen, message.NonESPMarkerLen+len(msg)), msg...)
	}
	_ = pc.send(msg, to)
}

// sendIKEs sends the fragments of an IKE message (or the one message).
func sendIKEs(pc *packetConn, to netip.AddrPort, msgs [][]byte) {
	for _, m := range msgs {
		sendIKE(pc, to, m)
	}
}

func (s *Server) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return nil, fmt.Errorf("ipsec: random: %w", err)
	}
	return b, nil
}

// newIKESA computes the keys of a new IKE SA and its IKE_SA_INIT response.
func (s *Server) newIKESA(pc *packetConn, req []byte, ps []message.Payload, h message.Header, from netip.AddrPort, sel chosen, ke *message.KE, nonce *message.Nonce) (*ikeSA, []byte, error) {
	dh, err := ikecrypto.NewDH(sel.DHGroup, s.rand)
	if err != nil {
		return nil, nil, err
	}
	shared, err := dh.SharedSecret(ke.Data)
	if err != nil {
		return nil, nil, err
	}
	nr, err := s.random(nonceLen)
	if err != nil {
		return nil, nil, err
	}
	sa := &ikeSA{srv: s, created: s.now(), firstRemote: from, spii: h.SPIi, suite: sel,
		ni: bytes.Clone(nonce.Data), nr: nr, initReq: bytes.Clone(req), peerMID: 1}
	for {
		if _, err := io.ReadFull(s.rand, sa.spir[:]); err != nil {
			return nil, nil, err
		}
		s.mu.Lock()
		_, taken := s.bySPI[sa.spir]
		s.mu.Unlock()
		if !taken && sa.spir != ([8]byte{}) {
			break
		}
	}
	sa.ep.Store(&endpoint{pc: pc, remote: from})
	if sa.prf, err = ikecrypto.NewPRF(sel.PRF); err != nil {
		return nil, nil, err
	}
	if sa.keys, err = ikecrypto.DeriveIKEKeys(sel.ikeSuite(), sa.ni, sa.nr, shared, sa.spii, sa.spir); err != nil {
		return nil, nil, err
	}
	if err := sa.installSK(false); err != nil {
		return nil, nil, err
	}
	for _, n := range message.Notifies(ps) {
		switch n.NotifyType {
		case message.NotifySignatureHashAlgorithms:
			for d := n.Data; len(d) >= 2; d = d[2:] {
				sa.peerHashes = append(sa.peerHashes, binary.BigEndian.Uint16(d))
			}
		case message.NotifyFragmentationSupported:
			// RFC 7383 §2.3: the responder echoes it only when the
			// initiator sent it, and only then may either side fragment.
			sa.frag = s.cfg.Fragmentation != FragmentationDisabled
		}
	}
	// Our NAT_DETECTION_SOURCE_IP hashes an address we do not have, so
	// that the initiator believes we are behind a NAT and encapsulates ESP
	// in UDP: this server has no other ESP (no kernel XFRM).
	fake := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), 4500)
	src := ikecrypto.NATDetectionHash(sa.spii, sa.spir, fake)
	dst := ikecrypto.NATDetectionHash(sa.spii, sa.spir, from)
	var hashes []byte
	for _, a := range ikecrypto.SupportedHashes {
		hashes = binary.BigEndian.AppendUint16(hashes, a)
	}
	out := []message.Payload{
		&message.SA{Proposals: []message.Proposal{sel.transforms(message.ProtoIKE, nil)}},
		&message.KE{Group: sel.DHGroup, Data: dh.Public()},
		&message.Nonce{Data: sa.nr},
		&message.Notify{NotifyType: message.NotifyNATDetectionSourceIP, Data: src[:]},
		&message.Notify{NotifyType: message.NotifyNATDetectionDestinationIP, Data: dst[:]},
	}
	if len(s.cfg.CertificateAuthorities) > 0 {
		var req []byte
		for _, ca := range s.cfg.CertificateAuthorities {
			sum := sha1.Sum(ca.RawSubjectPublicKeyInfo)
			req = append(req, sum[:]...)
		}
		out = append(out, &message.CertReq{Encoding: message.CertX509Signature, Data: req})
	}
	out = append(out, &message.Notify{NotifyType: message.NotifySignatureHashAlgorithms, Data: hashes})
	if sa.frag {
		out = append(out, &message.Notify{NotifyType: message.NotifyFragmentationSupported})
	}
	resp, err := message.Marshal(message.Header{SPIi: sa.spii, SPIr: sa.spir, Version: 0x20, Exchange: message.IKESAInit, Flags: message.FlagResponse}, out)
	if err != nil {
		return nil, nil, err
	}
	sa.initResp = resp
	return sa, resp, nil
}

// installSK makes the SK ciphers of both directions; initiator says
// whether we are the IKE SA's original initiator.
func (sa *ikeSA) installSK(initiator bool) error {
	s := sa.suite.ikeSuite()
	ei, ai, er, ar := sa.keys.Ei, sa.keys.Ai, sa.keys.Er, sa.keys.Ar
	if initiator {
		ei, ai, er, ar = er, ar, ei, ai
	}
	var err error
	if sa.skIn, err = ikecrypto.NewSKCipher(s, ei, ai, sa.srv.rand); err != nil {
		return err
	}
	sa.skOut, err = ikecrypto.NewSKCipher(s, er, ar, sa.srv.rand)
	return err
}

// handle processes an IKE message of an existing IKE SA.
func (sa *ikeSA) handle(ctx context.Context, pc *packetConn, msg []byte, h message.Header, from netip.AddrPort) {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if sa.closed {
		return
	}
	if h.Flags&message.FlagResponse != 0 {
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
	// Only an authenticated message may move the peer (RFC 7296 §2.23).
	sa.ep.Store(&endpoint{pc: pc, remote: from})
	sa.lastInbound.Store(sa.srv.now().UnixNano())
	var out []message.Payload
	var after func()
	switch {
	case h.Exchange == message.IKEAuth && !sa.established:
		out, after = sa.handleAuth(ctx, inner)
	case h.Exchange == message.Informational && sa.established:
		out, after = sa.handleInformational(inner)
	case h.Exchange == message.CreateChildSA && sa.established:
		out, after = sa.handleCreateChild(inner)
	default:
		return
	}
	resp, err := sa.seal(message.Header{SPIi: sa.spii, SPIr: sa.spir, Version: 0x20, Exchange: h.Exchange,
		Flags: message.FlagResponse, MessageID: h.MessageID}, out)
	if err != nil {
		sa.srv.log.Error("IKE response", "error", err)
		return
	}
	sa.peerMID++
	sa.lastResp = resp
	sendIKEs(pc, from, resp)
	after()
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
		sa.srv.stats.malformed.Add(1)
		return nil, false
	}
	return inner, done
}

// seal builds an encrypted message, in fragments when it is larger than
// FragmentSize and the peer supports them.
func (sa *ikeSA) seal(h message.Header, ps []message.Payload) ([][]byte, error) {
	limit := 0
	if sa.frag {
		limit = fragmentLimit(sa.srv.cfg.FragmentSize, sa.ep.Load().remote)
	}
	return sealMessage(sa.skOut, h, ps, limit)
}

// handleAuth authenticates the initiator, admits it, and sets up the first
// child SA (RFC 7296 §1.2, §2.15).
func (sa *ikeSA) handleAuth(ctx context.Context, ps []message.Payload) ([]message.Payload, func()) {
	s := sa.srv
	remote := sa.ep.Load().remote
	fail := func(why string, err error) ([]message.Payload, func()) {
		s.log.Info("IKE_AUTH refused", "remote", remote, "reason", why, "error", err)
		return []message.Payload{&message.Notify{NotifyType: message.NotifyAuthenticationFailed}}, func() { sa.closeLocked(ErrAuthentication, false) }
	}
	idi, ok1 := message.Find[*message.ID](ps)
	auth, ok2 := message.Find[*message.Auth](ps)
	if !ok1 || !ok2 || idi.Responder {
		return fail("no IDi or AUTH (EAP is not supported)", nil)
	}
	peer := ID{Type: IDType(idi.IDType), Value: bytes.Clone(idi.Data)}
	octets := ikecrypto.SignedOctets(sa.initReq, sa.nr, sa.prf, sa.keys.Pi, idi.Body())
	var identity tunnel.Identity
	if auth.Method == message.AuthPSK {
		if s.cfg.PSK == nil {
			return fail("PSK authentication is not enabled", nil)
		}
		key, name, ok := s.cfg.PSK(peer)
		if !ok {
			return fail("no pre-shared key for "+peer.String(), nil)
		}
		if !hmac.Equal(auth.Data, ikecrypto.PSKAuth(sa.prf, key, octets)) {
			return fail("wrong pre-shared key of "+peer.String(), nil)
		}
		sa.psk = bytes.Clone(key)
		identity = tunnel.Identity{Name: name}
	} else {
		if s.cfg.VerifyPeer == nil {
			return fail("certificate authentication is not enabled", nil)
		}
		var chain []*x509.Certificate
		for _, p := range ps {
			if c, ok := p.(*message.Cert); ok && c.Encoding == message.CertX509Signature {
				cert, err := x509.ParseCertificate(bytes.Clone(c.Data))
				if err != nil {
					return fail("unparsable certificate", err)
				}
				chain = append(chain, cert)
			}
		}
		if len(chain) == 0 {
			return fail("no certificate from "+peer.String(), nil)
		}
		var err error
		if identity, err = s.cfg.VerifyPeer(peer, chain); err != nil {
			return fail("certificate of "+peer.String()+" refused", err)
		}
		if !peer.MatchesCertificate(chain[0]) {
			return fail("identity "+peer.String()+" is not in its certificate", nil)
		}
		if err := ikecrypto.Verify(chain[0].PublicKey, uint8(auth.Method), auth.Data, octets); err != nil {
			return fail("AUTH of "+peer.String(), err)
		}
		identity.Chain = chain
	}
	asg, err := s.h.Admit(ctx, identity, remote)
	if err != nil {
		return fail("not admitted", err)
	}
	// Our side of the authentication.
	idr := &message.ID{Responder: true, IDType: message.IDType(s.local.Type), Data: s.local.Value}
	octR := ikecrypto.SignedOctets(sa.initResp, sa.ni, sa.prf, sa.keys.Pr, idr.Body())
	out := []message.Payload{idr}
	if sa.psk != nil {
		out = append(out, &message.Auth{Method: message.AuthPSK, Data: ikecrypto.PSKAuth(sa.prf, sa.psk, octR)})
	} else {
		for _, c := range s.cfg.Certificate {
			out = append(out, &message.Cert{Encoding: message.CertX509Signature, Data: c.Raw})
		}
		method, data, err := ikecrypto.Sign(s.cfg.PrivateKey, sa.peerHashes, octR)
		if err != nil {
			s.log.Error("IKE_AUTH: signing", "error", err)
			return fail("signing failed", err)
		}
		out = append(out, &message.Auth{Method: message.AuthMethod(method), Data: data})
	}
	sa.established = true
	s.mu.Lock()
	delete(s.halfOpen, halfOpenKey{sa.spii, sa.firstRemote})
	s.mu.Unlock()
	sess := &session{id: tunnel.NewSessionID(), identity: identity, asg: asg, since: s.now(), handshake: s.now().Sub(sa.created)}
	sess.setSA(sa)
	sa.session.Store(sess)
	initialContact := false
	for _, n := range message.Notifies(ps) {
		if n.NotifyType == message.NotifyInitialContact {
			initialContact = true
		}
	}
	childOut, child := sa.firstChild(ps, asg)
	out = append(out, childOut...)
	s.log.Info("IKE SA established", "peer", peer.String(), "participant", identity.Name, "remote", remote, "proposal", sa.suite.String())
	return out, func() {
		if initialContact {
			s.closeOthers(identity.Name, sess)
		}
		if child != nil {
			child.logEstablished("CHILD_SA established", identity.Name)
			sess.out.Store(child)
		}
		sess.up.Store(true)
		s.h.Up(sess)
	}
}

// firstChild negotiates the CHILD_SA of IKE_AUTH. A failure here is
// reported with a notify and leaves the IKE SA up (RFC 7296 §1.2).
func (sa *ikeSA) firstChild(ps []message.Payload, asg tunnel.Assignment) ([]message.Payload, *childSA) {
	var out []message.Payload
	var vip netip.Addr
	if cp, ok := message.Find[*message.CP](ps); ok && cp.CfgType == message.CfgRequest {
		reply := &message.CP{CfgType: message.CfgReply}
		for _, a := range cp.Attributes {
			switch a.Type {
			case message.AttrInternalIP4Address:
				for _, p := range asg.Addresses {
					if p.Addr().Is4() && !vip.IsValid() {
						vip = p.Addr()
						v := vip.As4()
						reply.Attributes = append(reply.Attributes, message.Attribute{Type: message.AttrInternalIP4Address, Value: v[:]})
					}
				}
			case message.AttrInternalIP4DNS:
				for _, d := range sa.srv.cfg.DNS {
					if d.Is4() {
						v := d.As4()
						reply.Attributes = append(reply.Attributes, message.Attribute{Type: message.AttrInternalIP4DNS, Value: v[:]})
					}
				}
			}
		}
		if !vip.IsValid() {
			return []message.Payload{&message.Notify{NotifyType: message.NotifyInternalAddressFailure}}, nil
		}
		out = append(out, reply)
	}
	saP, ok1 := message.Find[*message.SA](ps)
	tsi, ok2 := findTS(ps, false)
	tsr, ok3 := findTS(ps, true)
	if !ok1 || !ok2 || !ok3 {
		return out, nil // a childless IKE SA (RFC 6023)
	}
	allowedI := append([]netip.Prefix(nil), asg.Networks...)
	if vip.IsValid() {
		allowedI = append(allowedI, netip.PrefixFrom(vip, 32))
	}
	allowedR := asg.Routes
	if len(allowedR) == 0 {
		allowedR = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	ni, nr := narrow(tsi.Selectors, allowedI), narrow(tsr.Selectors, allowedR)
	if len(ni) == 0 || len(nr) == 0 {
		sa.srv.log.Info("CHILD_SA refused: traffic selectors", "initiator", tsString(tsi.Selectors), "responder", tsString(tsr.Selectors), "allowed", allowedI)
		return append(out, &message.Notify{NotifyType: message.NotifyTSUnacceptable}), nil
	}
	sel, err := selectESP(sa.srv.cfg.ESPProposals, saP, 0)
	if err != nil {
		return append(out, &message.Notify{NotifyType: message.NotifyNoProposalChosen}), nil
	}
	child, err := sa.newChild(sel, nil, sa.ni, sa.nr, false, ni, nr)
	if err != nil {
		sa.srv.log.Error("CHILD_SA", "error", err)
		return append(out, &message.Notify{NotifyType: message.NotifyNoProposalChosen}), nil
	}
	spi := binary.BigEndian.AppendUint32(nil, child.inSPI)
	out = append(out,
		&message.SA{Proposals: []message.Proposal{sel.transforms(message.ProtoESP, spi)}},
		&message.TrafficSelectors{Selectors: ni},
		&message.TrafficSelectors{Responder: true, Selectors: nr},
	)
	return out, child
}

func findTS(ps []message.Payload, responder bool) (*message.TrafficSelectors, bool) {
	for _, p := range ps {
		if ts, ok := p.(*message.TrafficSelectors); ok && ts.Responder == responder {
			return ts, true
		}
	}
	return nil, false
}

// newChild derives the keys of a child SA negotiated in an exchange the
// peer (weInitiated false) or we started, and installs its inbound SA.
func (sa *ikeSA) newChild(sel chosen, shared, ni, nr []byte, weInitiated bool, tsi, tsr []message.Selector) (*childSA, error) {
	keys, err := ikecrypto.DeriveChildKeys(sa.prf, sa.keys.D, sel.childSuite(), shared, ni, nr)
	if err != nil {
		return nil, err
	}
	inE, inA, outE, outA := keys.EncrI, keys.IntegI, keys.EncrR, keys.IntegR
	if weInitiated {
		inE, inA, outE, outA = outE, outA, inE, inA
	}
	c := &childSA{sa: sa, suite: sel, created: sa.srv.now(), outSPI: binary.BigEndian.Uint32(sel.spi)}
	// As responder the peer's traffic selectors are TSi (its side) and
	// TSr (ours); inbound packets go from its side to ours.
	c.peerTS, c.localTS = tsi, tsr
	if c.out, err = esp.NewOutbound(esp.Params{SPI: c.outSPI, Encr: sel.Encryption, EncrKey: outE, Integ: sel.Integrity, IntegKey: outA, ESN: sel.esn}); err != nil {
		return nil, err
	}
	spi, err := sa.srv.children.Reserve(sa.srv.rand, c)
	if err != nil {
		return nil, err
	}
	c.inSPI = spi
	if c.in, err = esp.NewInbound(esp.Params{SPI: spi, Encr: sel.Encryption, EncrKey: inE, Integ: sel.Integrity, IntegKey: inA, ESN: sel.esn}, true); err != nil {
		sa.srv.children.Remove(spi)
		return nil, err
	}
	sa.children = append(sa.children, c)
	return c, nil
}

// handleInformational answers DPD checks and deletes (RFC 7296 §1.4).
func (sa *ikeSA) handleInformational(ps []message.Payload) ([]message.Payload, func()) {
	var out []message.Payload
	after := func() {}
	for _, p := range ps {
		d, ok := p.(*message.Delete)
		if !ok {
			continue
		}
		switch d.Protocol {
		case message.ProtoIKE:
			if sa.rekeyedTo != nil {
				// The old SA of a rekey: the session lives on in the new one.
				return nil, func() { sa.retireLocked() }
			}
			return nil, func() { sa.closeLocked(ErrDeleted, false) }
		case message.ProtoESP:
			var ours [][]byte
			for _, spi := range d.SPIs {
				if len(spi) != 4 {
					continue
				}
				if c := sa.removeChildByOutSPI(binary.BigEndian.Uint32(spi)); c != nil {
					ours = append(ours, binary.BigEndian.AppendUint32(nil, c.inSPI))
				}
			}
			if len(ours) > 0 {
				out = append(out, &message.Delete{Protocol: message.ProtoESP, SPISize: 4, SPIs: ours})
			}
		}
	}
	return out, after
}

// removeChildByOutSPI removes the child whose outbound SPI (the peer's
// inbound) is spi; sa.mu is held.
func (sa *ikeSA) removeChildByOutSPI(spi uint32) *childSA {
	for i, c := range sa.children {
		if c.outSPI == spi {
			sa.children = append(sa.children[:i], sa.children[i+1:]...)
			sa.srv.children.Remove(c.inSPI)
			sa.handOver(c)
			return c
		}
	}
	return nil
}

// handOver moves the session's outbound traffic off c, which is going
// away, to the child that replaced it in a rekey, if any; sa.mu is held.
func (sa *ikeSA) handOver(c *childSA) {
	sess := sa.session.Load()
	for _, n := range sa.children {
		if n.replaces.Load() == c {
			n.replaces.Store(nil)
			if sess != nil {
				sess.out.CompareAndSwap(c, n)
			}
			return
		}
	}
	if sess != nil {
		sess.out.CompareAndSwap(c, nil)
	}
}

// handleCreateChild rekeys a child SA or the IKE SA, or adds a child
// (RFC 7296 §1.3).
func (sa *ikeSA) handleCreateChild(ps []message.Payload) ([]message.Payload, func()) {
	s := sa.srv
	saP, ok := message.Find[*message.SA](ps)
	nonce, ok2 := message.Find[*message.Nonce](ps)
	if !ok || !ok2 || len(nonce.Data) < 16 {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyInvalidSyntax}}, func() {}
	}
	ke, hasKE := message.Find[*message.KE](ps)
	keGroup := uint16(0)
	if hasKE {
		keGroup = ke.Group
	}
	nr, err := s.random(nonceLen)
	if err != nil {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyTemporaryFailure}}, func() {}
	}
	if len(saP.Proposals) > 0 && saP.Proposals[0].Protocol == message.ProtoIKE {
		return sa.rekeyIKE(saP, ke, nonce.Data, nr)
	}
	var old *childSA
	for _, n := range message.Notifies(ps) {
		if n.NotifyType == message.NotifyRekeySA && n.Protocol == message.ProtoESP && len(n.SPI) == 4 {
			spi := binary.BigEndian.Uint32(n.SPI)
			for _, c := range sa.children {
				if c.outSPI == spi {
					old = c
				}
			}
			if old == nil {
				return []message.Payload{&message.Notify{Protocol: message.ProtoESP, SPI: n.SPI, NotifyType: message.NotifyChildSANotFound}}, func() {}
			}
		}
	}
	sel, err := selectESP(s.cfg.ESPProposals, saP, keGroup)
	if err != nil {
		if hasKE {
			// Perhaps a group we take, but not the one of the KE payload.
			if alt, err2 := selectESP(s.cfg.ESPProposals, saP, 0); err2 == nil && alt.DHGroup == 0 {
				sel, err = alt, nil
			}
		}
		if err != nil {
			return []message.Payload{&message.Notify{NotifyType: message.NotifyNoProposalChosen}}, func() {}
		}
	}
	var shared []byte
	out := []message.Payload{}
	var myKE *message.KE
	if sel.DHGroup != 0 {
		dh, err := ikecrypto.NewDH(sel.DHGroup, s.rand)
		if err == nil {
			shared, err = dh.SharedSecret(ke.Data)
		}
		if err != nil {
			return []message.Payload{&message.Notify{NotifyType: message.NotifyInvalidSyntax}}, func() {}
		}
		myKE = &message.KE{Group: sel.DHGroup, Data: dh.Public()}
	}
	tsi, ok1 := findTS(ps, false)
	tsr, ok3 := findTS(ps, true)
	if !ok1 || !ok3 {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyInvalidSyntax}}, func() {}
	}
	var ni, nrTS []message.Selector
	if sess := sa.session.Load(); sess != nil {
		allowedI := append([]netip.Prefix(nil), sess.asg.Networks...)
		for _, p := range sess.asg.Addresses {
			allowedI = append(allowedI, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
		}
		allowedR := sess.asg.Routes
		if len(allowedR) == 0 {
			allowedR = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		}
		ni, nrTS = narrow(tsi.Selectors, allowedI), narrow(tsr.Selectors, allowedR)
	}
	if len(ni) == 0 || len(nrTS) == 0 {
		s.log.Info("CHILD_SA refused: traffic selectors", "initiator", tsString(tsi.Selectors), "responder", tsString(tsr.Selectors))
		return []message.Payload{&message.Notify{NotifyType: message.NotifyTSUnacceptable}}, func() {}
	}
	child, err := sa.newChild(sel, shared, nonce.Data, nr, false, ni, nrTS)
	if err != nil {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyNoProposalChosen}}, func() {}
	}
	spi := binary.BigEndian.AppendUint32(nil, child.inSPI)
	out = append(out, &message.SA{Proposals: []message.Proposal{sel.transforms(message.ProtoESP, spi)}}, &message.Nonce{Data: nr})
	if myKE != nil {
		out = append(out, myKE)
	}
	out = append(out, &message.TrafficSelectors{Selectors: ni}, &message.TrafficSelectors{Responder: true, Selectors: nrTS})
	if old != nil {
		old.rekeyed = s.now()
		// Our traffic stays on the old SA until the peer shows that it has
		// the new one, by sending on it or deleting the old one (RFC 7296
		// §2.8; strongSwan does the same as responder): if this response
		// is lost, the peer installs the new SA only when our answer to its
		// retransmission arrives, seconds later, and all we sent on the
		// new SA meanwhile would be dropped.
		child.replaces.Store(old)
	}
	return out, func() {
		sess := sa.session.Load()
		if sess == nil {
			return
		}
		if old == nil {
			child.logEstablished("CHILD_SA established", sess.identity.Name)
			sess.out.Store(child)
			return
		}
		child.logEstablished("CHILD_SA rekeyed", sess.identity.Name)
	}
}

// rekeyIKE answers the rekey of the IKE SA (RFC 7296 §1.3.2, §2.18): a new
// IKE SA with new SPIs and keys takes over the children and the session.
func (sa *ikeSA) rekeyIKE(saP *message.SA, ke *message.KE, ni, nr []byte) ([]message.Payload, func()) {
	s := sa.srv
	if ke == nil {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyInvalidSyntax}}, func() {}
	}
	sel, wrongKE, err := selectIKE(s.cfg.IKEProposals, saP, ke.Group)
	if err != nil {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyNoProposalChosen}}, func() {}
	}
	if wrongKE {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyInvalidKEPayload, Data: binary.BigEndian.AppendUint16(nil, sel.DHGroup)}}, func() {}
	}
	if len(sel.spi) != 8 {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyInvalidSyntax}}, func() {}
	}
	dh, err := ikecrypto.NewDH(sel.DHGroup, s.rand)
	if err != nil {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyNoProposalChosen}}, func() {}
	}
	shared, err := dh.SharedSecret(ke.Data)
	if err != nil {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyInvalidSyntax}}, func() {}
	}
	n := &ikeSA{srv: s, created: s.now(), firstRemote: sa.firstRemote, suite: sel, ni: bytes.Clone(ni), nr: nr,
		established: true, peerHashes: sa.peerHashes, psk: sa.psk, frag: sa.frag}
	copy(n.spii[:], sel.spi)
	for {
		if _, err := io.ReadFull(s.rand, n.spir[:]); err != nil {
			return []message.Payload{&message.Notify{NotifyType: message.NotifyTemporaryFailure}}, func() {}
		}
		s.mu.Lock()
		_, taken := s.bySPI[n.spir]
		s.mu.Unlock()
		if !taken && n.spir != ([8]byte{}) {
			break
		}
	}
	if n.prf, err = ikecrypto.NewPRF(sel.PRF); err == nil {
		n.keys, err = ikecrypto.DeriveRekeyedIKEKeys(sa.prf, sa.keys.D, sel.ikeSuite(), shared, ni, nr, n.spii, n.spir)
	}
	if err == nil {
		err = n.installSK(false)
	}
	if err != nil {
		return []message.Payload{&message.Notify{NotifyType: message.NotifyNoProposalChosen}}, func() {}
	}
	n.ep.Store(sa.ep.Load())
	n.lastInbound.Store(sa.lastInbound.Load())
	out := []message.Payload{
		&message.SA{Proposals: []message.Proposal{sel.transforms(message.ProtoIKE, n.spir[:])}},
		&message.Nonce{Data: nr},
		&message.KE{Group: sel.DHGroup, Data: dh.Public()},
	}
	return out, func() {
		// The children and the session move to the new SA; this one waits
		// for the peer's delete.
		n.mu.Lock()
		n.children = sa.children
		for _, c := range n.children {
			c.sa = n
		}
		sess := sa.session.Load()
		n.session.Store(sess)
		if sess != nil {
			sess.setSA(n)
		}
		n.mu.Unlock()
		sa.children = nil
		sa.rekeyedTo = n
		s.mu.Lock()
		s.bySPI[n.spir] = n
		s.mu.Unlock()
		s.log.Info("IKE SA rekeyed", "remote", sa.ep.Load().remote)
	}
}

// handleResponse takes the answer to our outstanding request (DPD or a
// delete).
func (sa *ikeSA) handleResponse(msg []byte, h message.Header) {
	if sa.pending == nil || h.MessageID != sa.myMID {
		return
	}
	if _, ok := sa.open(msg, &sa.respFrags); !ok {
		return
	}
	sa.pending = nil
	sa.myMID++
	sa.lastInbound.Store(sa.srv.now().UnixNano())
}

// request sends an INFORMATIONAL request of ours; sa.mu is held.
func (sa *ikeSA) request(ps []message.Payload) {
	if sa.pending != nil {
		return
	}
	// As responder of the IKE SA our requests do not carry the I flag.
	msg, err := sa.seal(message.Header{SPIi: sa.spii, SPIr: sa.spir, Version: 0x20, Exchange: message.Informational, MessageID: sa.myMID}, ps)
	if err != nil {
		return
	}
	sa.pending, sa.pendingSent, sa.pendingWait, sa.pendingTry = msg, sa.srv.now(), sa.srv.cfg.RetransmitTimeout, 1
	ep := sa.ep.Load()
	sendIKEs(ep.pc, ep.remote, msg)
}

// tick runs dead peer detection and retransmissions.
func (sa *ikeSA) tick(now time.Time) {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if sa.closed || !sa.established {
		return
	}
	for i := 0; i < len(sa.children); i++ {
		c := sa.children[i]
		if !c.rekeyed.IsZero() && now.Sub(c.rekeyed) > rekeyedGrace {
			sa.children = append(sa.children[:i], sa.children[i+1:]...)
			sa.srv.children.Remove(c.inSPI)
			sa.handOver(c)
			i--
		}
	}
	if sa.pending != nil {
		if now.Sub(sa.pendingSent) < sa.pendingWait {
			return
		}
		if sa.pendingTry >= sa.srv.cfg.RetransmitTries {
			sa.srv.log.Info("peer not responding", "remote", sa.ep.Load().remote)
			sa.closeLocked(ErrDeadPeer, false)
			return
		}
		sa.pendingTry++
		sa.pendingSent = now
		sa.pendingWait = sa.pendingWait * 18 / 10
		ep := sa.ep.Load()
		sendIKEs(ep.pc, ep.remote, sa.pending)
		return
	}
	if sa.rekeyedTo == nil && sa.srv.cfg.DPDInterval > 0 && now.Sub(time.Unix(0, sa.lastInbound.Load())) > sa.srv.cfg.DPDInterval {
		sa.request(nil)
	}
}

// close deletes the IKE SA; notify sends the peer a Delete first.
func (sa *ikeSA) close(cause error, notify bool) {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	sa.closeLocked(cause, notify)
}

// closeLocked tears the IKE SA down; sa.mu is held.
func (sa *ikeSA) closeLocked(cause error, notify bool) {
	if sa.closed {
		return
	}
	if notify && sa.established {
		if sa.pending != nil {
			// A DPD check is unanswered: the Delete takes the next message
			// ID, since the peer would take a new request under the same ID
			// for a retransmission and ignore it.
			sa.pending = nil
			sa.myMID++
		}
		sa.request([]message.Payload{&message.Delete{Protocol: message.ProtoIKE}})
	}
	sa.closed = true
	for _, c := range sa.children {
		sa.srv.children.Remove(c.inSPI)
	}
	sa.children = nil
	sa.srv.forget(sa)
	if sess := sa.session.Load(); sess != nil && sess.down.CompareAndSwap(false, true) {
		sess.up.Store(false)
		sa.srv.log.Info("IKE SA closed", "participant", sess.identity.Name, "reason", cause)
		go sa.srv.h.Down(sess, cause)
	}
}

// retireLocked drops an IKE SA that a rekey replaced, leaving its session.
func (sa *ikeSA) retireLocked() {
	sa.closed = true
	sa.srv.forget(sa)
}

// closeOthers closes the other sessions of a participant whose initiator
// says it holds no other IKE SA (INITIAL_CONTACT): they are stale.
func (s *Server) closeOthers(name string, keep *session) {
	s.mu.Lock()
	var stale []*ikeSA
	for _, sa := range s.bySPI {
		if sess := sa.session.Load(); sess != nil && sess != keep && sess.identity.Name == name {
			stale = append(stale, sa)
		}
	}
	s.mu.Unlock()
	for _, sa := range stale {
		sa.close(errors.New("ipsec: replaced by a new IKE SA of the same peer (INITIAL_CONTACT)"), false)
	}
}
