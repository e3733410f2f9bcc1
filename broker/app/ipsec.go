package app

import (
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/tunnel"
)

// ipsecServer is the broker's IKEv2 responder: devices and users with
// strongSwan (or any IKEv2 client) connect to it as they connect to the
// OpenVPN server, and reach each other through the same switch.
type ipsecServer struct {
	srv   *ipsec.Server
	conns []*net.UDPConn
}

// newIPsec makes the responder and binds its ports: s.IPsecPort, and
// s.IKEPort where the broker may bind it (port 500 needs privileges; the
// profiles use IPsecPort only).
func newIPsec(s store.Settings, k *keys, props *proposalState, events *eventQueue, now func() time.Time, log *slog.Logger) (*ipsecServer, error) {
	leaf := k.server.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(k.server.Certificate[0]); err != nil {
			return nil, err
		}
	}
	signer, ok := k.server.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("ipsec: the server key cannot sign")
	}
	srv, err := ipsec.NewServer(&ipsec.Config{
		// Clients that ask for no identity see the certificate's subject,
		// as before the certificate named the public address; those that
		// ask for the address (Apple's, the strongSwan app) get it.
		LocalID:                brokerIKEID(leaf),
		Certificate:            []*x509.Certificate{leaf},
		PrivateKey:             signer,
		CertificateAuthorities: []*x509.Certificate{k.ca.Certificate()},
		VerifyPeer: func(id ipsec.ID, chain []*x509.Certificate) (tunnel.Identity, error) {
			name, err := k.verifier.Verify(chain)
			if errors.Is(err, pki.ErrNotIssued) {
				// Issued by another process since we last looked.
				if rerr := k.refresh(context.Background()); rerr == nil {
					name, err = k.verifier.Verify(chain)
				}
			}
			if err != nil {
				var subject string
				if len(chain) > 0 {
					subject = chain[0].Subject.CommonName
				}
				events.authFailure(subject, "IKE authentication refused", map[string]string{"error": err.Error()})
				return tunnel.Identity{}, err
			}
			return tunnel.Identity{Name: name}, nil
		},
		// A participant's own ESP proposals; the installation's are the
		// server's (SetProposals, by props).
		ChildProposals: props.ownESP,
		Logger:         log,
		Now:            now,
	})
	if err != nil {
		return nil, err
	}
	if err := props.follow(srv); err != nil {
		return nil, err
	}
	is := &ipsecServer{srv: srv}
	for _, port := range []int{s.IPsecPort, s.IKEPort} {
		if port <= 0 {
			continue
		}
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(s.Listen), Port: port})
		if err != nil {
			if port == s.IKEPort && len(is.conns) > 0 {
				// Port 500 needs privileges; profiles use 4500 only.
				log.Warn("IKE on port 500 not available; IKEv2 clients must use port 4500", "error", err)
				continue
			}
			is.close()
			return nil, fmt.Errorf("ipsec: %w", err)
		}
		is.conns = append(is.conns, c)
	}
	log.Info("IPsec listening", "port", s.IPsecPort, "ike_port", s.IKEPort, "identity", brokerIKEID(leaf).String())
	return is, nil
}

// close closes the sockets of a responder that does not serve.
func (is *ipsecServer) close() {
	for _, c := range is.conns {
		c.Close()
	}
}

// serve serves until ctx ends.
func (is *ipsecServer) serve(ctx context.Context, h tunnel.Handler) error {
	return is.srv.Serve(ctx, h, is.conns...)
}

// brokerIKEID is the identity the broker's IKE server authenticates with
// unless a client asks for another its certificate names: the
// certificate's subject.
func brokerIKEID(leaf *x509.Certificate) ipsec.ID {
	return ipsec.ID{Type: ipsec.IDDN, Value: leaf.RawSubject}
}

// writeSwanctlProfile writes a tar archive for /etc/swanctl: swanctl.conf
// with the connection "remotegate", the participant's certificate and key,
// and the CA. A device announces its LANs as its traffic selectors; the
// broker narrows them to the networks configured for it.
//
// The name becomes the names of archive members and a value in
// swanctl.conf: a name outside policy.ValidName's rule is refused, and
// every value that comes from outside (the name, the public address, the
// broker's identity) is written quoted, or refused if it cannot be.
func writeSwanctlProfile(w io.Writer, s store.Settings, k *keys, name string, lans []netip.Prefix, certPEM, keyPEM []byte, now time.Time) error {
	leaf := k.server.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(k.server.Certificate[0]); err != nil {
			return err
		}
	}
	_, err := profile.Swanctl{
		Name:        name,
		RemoteAddrs: []string{s.PublicAddress},
		Port:        s.IPsecPort,
		ServerID:    brokerIKEID(leaf).String(),
		Device:      lans != nil,
		LANs:        lans,
		Pool:        s.Pool,
		Pool6:       s.Pool6,
		Cert:        certPEM, Key: keyPEM,
		CA:           pki.EncodeCertificatesPEM(k.ca.Certificate()),
		IKEProposals: s.Proposals.IKE,
		ESPProposals: cmp.Or(s.Proposals.Participants[name], s.Proposals.ESP),
		Now:          func() time.Time { return now },
	}.WriteTo(w)
	return err
}

// writeNativeProfile writes a user's profile for a native IKEv2 client
// (profile.FormatApple, FormatWindows, FormatAndroid) with its certificate
// and key in a PKCS#12 file protected by password. Apple's and Windows'
// clients connect to IKE on port 500 (they have no port setting), so the
// broker must be able to bind s.IKEPort; the strongSwan app is given
// s.IPsecPort, which always is. Windows routes all traffic through the
// tunnel; the broker's traffic selectors say what passes.
func writeNativeProfile(w io.Writer, s store.Settings, k *keys, f profile.Format, name string, cert *x509.Certificate, key crypto.Signer, password string) error {
	ca := k.ca.Certificate()
	var p io.WriterTo
	switch f {
	case profile.FormatApple:
		p = profile.Apple{Name: name, RemoteAddress: s.PublicAddress, Cert: cert, Key: key, CA: ca, Password: password}
	case profile.FormatWindows:
		p = profile.Windows{Name: name, ServerAddress: s.PublicAddress, Cert: cert, Key: key, CA: ca, Password: password}
	case profile.FormatAndroid:
		p = profile.Android{Name: name, RemoteAddress: s.PublicAddress, Port: s.IPsecPort, Cert: cert, Key: key, CA: ca, Password: password}
	default:
		return fmt.Errorf("%w: %q is not a native client's format", profile.ErrInvalid, f)
	}
	_, err := p.WriteTo(w)
	return err
}

// deviceLANs are the networks of a device (non-nil, possibly empty), or
// nil for a user.
func deviceLANs(sc *store.Config, name string) []netip.Prefix {
	for _, d := range sc.Model.Devices {
		if d.Name == name {
			lans := []netip.Prefix{}
			for _, n := range sc.Networks[name] {
				lans = append(lans, n.LAN)
			}
			return lans
		}
	}
	return nil
}

// proposalState is the IPsec proposals of the configuration in force,
// which the IPsec server follows.
type proposalState struct {
	cur atomic.Pointer[model.IPsecProposals]
	srv atomic.Pointer[ipsec.Server]
	log *slog.Logger
}

// applied takes the proposals of a configuration now in force
// (model.Config.Applied).
func (ps *proposalState) applied(cfg *store.Config) {
	p, err := model.ParseIPsecProposals(cfg)
	if err != nil {
		// Compile checked them before the configuration was stored.
		ps.log.Error("IPsec proposals of the configuration in force", "error", err)
		return
	}
	ps.cur.Store(p)
	if srv := ps.srv.Load(); srv != nil {
		if err := srv.SetProposals(p.IKE, p.ESP); err != nil {
			ps.log.Error("IPsec proposals", "error", err)
		}
	}
}

// follow gives srv the proposals in force, and every later change.
func (ps *proposalState) follow(srv *ipsec.Server) error {
	ps.srv.Store(srv)
	if p := ps.cur.Load(); p != nil {
		return srv.SetProposals(p.IKE, p.ESP)
	}
	return nil
}

// ownESP returns the child SA proposals of a participant that has its
// own; nil otherwise (the server's then apply).
func (ps *proposalState) ownESP(peer tunnel.Identity) []ipsec.Proposal {
	if p := ps.cur.Load(); p != nil {
		return p.Participants[peer.Name]
	}
	return nil
}
