package ipsec

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
	"github.com/remotegate/remotegate/tunnel"
)

// The responder's handshake: IKE_SA_INIT and IKE_AUTH as the Server runs
// them. What follows IKE_AUTH is the role-independent IKE SA (ikesa.go and
// the exchange_*.go files).

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
	// Our SPI is the responder's, unless we are the original initiator
	// of the IKE SA (one we rekeyed): then the peer's messages lack the
	// I flag.
	ours := h.SPIr
	if h.Flags&message.FlagInitiator == 0 {
		ours = h.SPIi
	}
	s.mu.Lock()
	sa := s.bySPI[ours]
	s.mu.Unlock()
	if sa == nil || sa.spii != h.SPIi || sa.spir != h.SPIr || sa.ourSPI() != ours {
		s.stats.unknownSPI.Add(1)
		return
	}
	sa.link.mu.Lock()
	defer sa.link.mu.Unlock()
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
		old.link.mu.Lock()
		defer old.link.mu.Unlock()
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
	sel, wrongKE, err := selectIKE(s.ikeProposals(), saP, ke.Group)
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
	nr, err := s.sc.random(nonceLen)
	if err != nil {
		return nil, nil, err
	}
	sa := &ikeSA{cfg: s.sc, role: s, link: &link{unroutable: &s.stats.unroutable}, table: &s.children, created: s.now(), firstRemote: from, spii: h.SPIi, suite: sel,
		ni: bytes.Clone(nonce.Data), nr: nr, initReq: bytes.Clone(req), peerMID: 1}
	if sa.spir, err = sa.newSPI(); err != nil {
		return nil, nil, err
	}
	sa.link.ep.Store(&endpoint{pc: pc, remote: from})
	if sa.prf, err = ikecrypto.NewPRF(sel.PRF); err != nil {
		return nil, nil, err
	}
	if sa.keys, err = ikecrypto.DeriveIKEKeys(sel.ikeSuite(), sa.ni, sa.nr, shared, sa.spii, sa.spir); err != nil {
		return nil, nil, err
	}
	if err := sa.installSK(); err != nil {
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

// handleAuth authenticates the initiator, admits it, and sets up the first
// child SA (RFC 7296 §1.2, §2.15).
func (s *Server) handleAuth(ctx context.Context, sa *ikeSA, ps []message.Payload) ([]message.Payload, func()) {
	remote := sa.link.ep.Load().remote
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
	s.configurePeer(sa, identity)
	// Our side of the authentication.
	local := s.responderID(ps, sa.psk != nil)
	idr := &message.ID{Responder: true, IDType: message.IDType(local.Type), Data: local.Value}
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
	sess := &session{id: tunnel.NewSessionID(), identity: identity, asg: asg, since: s.now(), handshake: s.now().Sub(sa.created), link: sa.link}
	sess.setSA(sa)
	sa.session.Store(sess)
	s.mu.Lock()
	s.index(sa)
	s.mu.Unlock()
	initialContact := false
	for _, n := range message.Notifies(ps) {
		if n.NotifyType == message.NotifyInitialContact {
			initialContact = true
		}
	}
	childOut, child := s.firstChild(sa, ps, asg)
	out = append(out, childOut...)
	s.log.Info("IKE SA established", "peer", peer.String(), "participant", identity.Name, "remote", remote, "proposal", sa.suite.String())
	return out, func() {
		if initialContact {
			s.closeOthers(identity.Name, sess)
		}
		if child != nil {
			child.logEstablished("CHILD_SA established", identity.Name)
			sa.link.out.Store(child)
		}
		sess.up.Store(true)
		s.h.Up(sess)
	}
}

// firstChild negotiates the CHILD_SA of IKE_AUTH. A failure here is
// reported with a notify and leaves the IKE SA up (RFC 7296 §1.2).
func (s *Server) firstChild(sa *ikeSA, ps []message.Payload, asg tunnel.Assignment) ([]message.Payload, *childSA) {
	var out []message.Payload
	var vips []netip.Addr
	if cp, ok := message.Find[*message.CP](ps); ok && cp.CfgType == message.CfgRequest {
		var reply *message.CP
		reply, vips = configReply(cp, asg, s.cfg.DNS)
		if len(vips) == 0 {
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
	for _, vip := range vips {
		allowedI = append(allowedI, netip.PrefixFrom(vip, vip.BitLen()))
	}
	allowedR := asg.Routes
	if len(allowedR) == 0 {
		allowedR = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	ni, nr := narrow(tsi.Selectors, allowedI), narrow(tsr.Selectors, allowedR)
	if len(ni) == 0 || len(nr) == 0 {
		s.log.Info("CHILD_SA refused: traffic selectors", "initiator", tsString(tsi.Selectors), "responder", tsString(tsr.Selectors), "allowed", allowedI)
		return append(out, &message.Notify{NotifyType: message.NotifyTSUnacceptable}), nil
	}
	sel, err := selectESP(sa.cfg.espProposals, saP, 0)
	if err != nil {
		return append(out, &message.Notify{NotifyType: message.NotifyNoProposalChosen}), nil
	}
	child, err := sa.newChild(sel, nil, sa.ni, sa.nr, false, ni, nr)
	if err != nil {
		s.log.Error("CHILD_SA", "error", err)
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

// configReply answers a configuration request (RFC 7296 §3.15) from the
// Handler's assignment: the first assigned address of each family the
// peer asked for (INTERNAL_IP4_ADDRESS, INTERNAL_IP6_ADDRESS), and the DNS
// servers of the families it asked for. A peer asking for both families
// that was assigned only one gets that one, as §3.15.4 lets a responder
// do; vips are the addresses handed out, none when the peer asked for no
// address we have.
func configReply(req *message.CP, asg tunnel.Assignment, dns []netip.Addr) (reply *message.CP, vips []netip.Addr) {
	reply = &message.CP{CfgType: message.CfgReply}
	first := func(is6 bool) netip.Addr {
		for _, p := range asg.Addresses {
			if a := p.Addr(); a.Is6() == is6 && !a.Is4In6() {
				return a
			}
		}
		return netip.Addr{}
	}
	done := map[uint16]bool{}
	for _, a := range req.Attributes {
		if done[a.Type] {
			continue
		}
		done[a.Type] = true
		switch a.Type {
		case message.AttrInternalIP4Address:
			if v := first(false); v.IsValid() {
				vips = append(vips, v)
				reply.Attributes = append(reply.Attributes, message.Attribute{Type: a.Type, Value: v.AsSlice()})
			}
		case message.AttrInternalIP6Address:
			if v := first(true); v.IsValid() {
				vips = append(vips, v)
				// The selectors cover the address alone, so its prefix
				// is /128: the peer routes the rest through the tunnel
				// by the selectors, not by an on-link prefix.
				reply.Attributes = append(reply.Attributes, message.Attribute{Type: a.Type, Value: append(v.AsSlice(), 128)})
			}
		case message.AttrInternalIP4DNS, message.AttrInternalIP6DNS:
			for _, d := range dns {
				if d = d.Unmap(); d.Is4() == (a.Type == message.AttrInternalIP4DNS) {
					reply.Attributes = append(reply.Attributes, message.Attribute{Type: a.Type, Value: d.AsSlice()})
				}
			}
		}
	}
	return reply, vips
}

// closeOthers closes the other sessions of a participant whose initiator
// says it holds no other IKE SA (INITIAL_CONTACT): they are stale.
func (s *Server) closeOthers(name string, keep *session) {
	s.mu.Lock()
	var stale []*ikeSA
	for sa := range s.byName[name] {
		if sess := sa.session.Load(); sess != nil && sess != keep {
			stale = append(stale, sa)
		}
	}
	s.mu.Unlock()
	for _, sa := range stale {
		sa.close(errors.New("ipsec: replaced by a new IKE SA of the same peer (INITIAL_CONTACT)"), false)
	}
}

// The Server's side of its IKE SAs (role).

// additionalChild: a child SA the peer adds covers what the Handler
// assigned, like the first one.
func (s *Server) additionalChild(sa *ikeSA) (peer, local []netip.Prefix, ok bool) {
	sess := sa.session.Load()
	if sess == nil {
		return nil, nil, false
	}
	peer = append([]netip.Prefix(nil), sess.asg.Networks...)
	for _, p := range sess.asg.Addresses {
		peer = append(peer, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
	}
	local = sess.asg.Routes
	if len(local) == 0 {
		local = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	return peer, local, true
}

func (s *Server) childUp(sa *ikeSA, c, old *childSA) {
	sess := sa.session.Load()
	if sess == nil {
		return
	}
	if old != nil {
		c.logEstablished("CHILD_SA rekeyed", sess.identity.Name)
		return
	}
	c.logEstablished("CHILD_SA established", sess.identity.Name)
	// Beside the others: each carries the traffic its selectors cover.
	sa.link.out.add(c)
}

// childless: a session without child SAs stays; the peer may add one.
func (s *Server) childless(*ikeSA) {}

func (s *Server) spiTaken(spi [8]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, taken := s.bySPI[spi]
	return taken
}

func (s *Server) ikeRekeyed(old, n *ikeSA) {
	if sess := n.session.Load(); sess != nil {
		sess.setSA(n)
	}
	s.mu.Lock()
	s.bySPI[n.ourSPI()] = n
	s.index(n)
	s.mu.Unlock()
}

func (s *Server) down(sa *ikeSA, cause error) {
	if sess := sa.session.Load(); sess != nil && sess.down.CompareAndSwap(false, true) {
		sess.up.Store(false)
		s.log.Info("IKE SA closed", "participant", sess.identity.Name, "reason", cause)
		go s.h.Down(sess, cause)
	}
}

func (s *Server) gone(sa *ikeSA) { s.forget(sa) }

// responderID is the identity we authenticate with in IKE_AUTH. An
// initiator may name the identity it wants to talk to in an IDr payload of
// its request (RFC 7296 §2.15, §3.5), and the IKEv2 clients built into
// operating systems do: Apple's sends its profile's RemoteIdentifier, the
// strongSwan app (Android) the server address, each as an address or a
// host name, and each refuses a response under another identity. When our
// certificate names the requested identity (a dNSName, iPAddress or e-mail
// subjectAltName, or its subject), we answer with it; otherwise, and with a
// pre-shared key, with LocalID, and the initiator decides.
func (s *Server) responderID(ps []message.Payload, psk bool) ID {
	if psk || len(s.cfg.Certificate) == 0 {
		return s.local
	}
	for _, p := range ps {
		if id, ok := p.(*message.ID); ok && id.Responder {
			want := ID{Type: IDType(id.IDType), Value: bytes.Clone(id.Data)}
			if want.Equal(s.local) || want.MatchesCertificate(s.cfg.Certificate[0]) {
				return want
			}
			break
		}
	}
	return s.local
}

func (s *Server) adopt(sa *ikeSA) {
	s.mu.Lock()
	s.bySPI[sa.ourSPI()] = sa
	s.index(sa)
	s.mu.Unlock()
}
