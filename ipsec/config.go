package ipsec

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/remotegate/remotegate/tunnel"
)

// Errors of the package.
var (
	// ErrConfig: the Config cannot work.
	ErrConfig = errors.New("ipsec: invalid configuration")
	// ErrClosed: the server or session was closed. It wraps
	// tunnel.ErrClosed, so that code written for any tunnel.Device or
	// tunnel.Session recognises a closed IPsec tunnel.
	ErrClosed = fmt.Errorf("ipsec: %w", tunnel.ErrClosed)
	// ErrAuthentication: the peer's AUTH payload did not verify, or it is
	// not allowed in.
	ErrAuthentication = errors.New("ipsec: authentication failed")
	// ErrNoProposal: no proposal of the peer is acceptable.
	ErrNoProposal = errors.New("ipsec: no acceptable proposal")
	// ErrDeadPeer: the peer stopped answering (dead peer detection).
	ErrDeadPeer = errors.New("ipsec: peer not responding")
	// ErrDeleted: the peer deleted the IKE SA.
	ErrDeleted = errors.New("ipsec: deleted by the peer")
)

// IDType is the type of an IKE identity (RFC 7296 §3.5).
type IDType uint8

// Identity types.
const (
	IDIPv4  IDType = 1  // an IPv4 address
	IDFQDN  IDType = 2  // a host name, matched against the certificate's DNS names
	IDEmail IDType = 3  // an RFC 822 address, matched against the certificate's e-mail addresses
	IDIPv6  IDType = 5  // an IPv6 address
	IDDN    IDType = 9  // a DER-encoded X.500 name, matched against the certificate's subject
	IDKeyID IDType = 11 // opaque bytes, for PSK peers
)

// ID is an IKE identity: what a peer says it is, before it proves it.
type ID struct {
	Type  IDType
	Value []byte
}

// FQDN returns the identity of a host name.
func FQDN(name string) ID { return ID{Type: IDFQDN, Value: []byte(name)} }

// String is the identity as strongSwan writes it: the name, address or
// distinguished name.
func (id ID) String() string {
	switch id.Type {
	case IDFQDN, IDEmail, IDKeyID:
		return string(id.Value)
	case IDIPv4, IDIPv6:
		if a, ok := netip.AddrFromSlice(id.Value); ok {
			return a.String()
		}
	case IDDN:
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(id.Value, &rdn); err == nil && len(rest) == 0 {
			var n pkix.Name
			n.FillFromRDNSequence(&rdn)
			return n.String()
		}
	}
	return fmt.Sprintf("ID(type %d, %x)", id.Type, id.Value)
}

// Equal reports whether two identities are the same.
func (id ID) Equal(o ID) bool { return id.Type == o.Type && bytes.Equal(id.Value, o.Value) }

// MatchesCertificate reports whether the identity is one the certificate
// names: an FQDN one of its DNS names, an e-mail address one of its e-mail
// addresses, an address one of its IP addresses, a DN its subject.
// strongSwan checks the same and does not fall back to the common name.
func (id ID) MatchesCertificate(c *x509.Certificate) bool {
	switch id.Type {
	case IDFQDN:
		return slices.Contains(c.DNSNames, string(id.Value))
	case IDEmail:
		return slices.Contains(c.EmailAddresses, string(id.Value))
	case IDIPv4, IDIPv6:
		for _, ip := range c.IPAddresses {
			if a, ok := netip.AddrFromSlice(ip); ok {
				if b, ok := netip.AddrFromSlice(id.Value); ok && a.Unmap() == b.Unmap() {
					return true
				}
			}
		}
	case IDDN:
		return bytes.Equal(c.RawSubject, id.Value)
	}
	return false
}

// Config configures a Server. The zero value of every field is documented;
// a Server needs at least a way to authenticate peers (VerifyPeer or PSK)
// and, for certificate authentication, its own Certificate and PrivateKey.
type Config struct {
	// LocalID is the server's identity, sent as IDr. Initiators compare it
	// with what they expect (strongSwan's remote.id). The zero value is
	// the first DNS name of the certificate as an FQDN, or its subject as
	// a DN.
	LocalID ID
	// Certificate is the server's certificate chain, leaf first, and
	// PrivateKey its key (which may live on a PKCS#11 token). Nil: the
	// server authenticates with a pre-shared key only.
	Certificate []*x509.Certificate
	PrivateKey  crypto.Signer
	// CertificateAuthorities are named in the CERTREQ payload of the
	// IKE_SA_INIT response. Peers such as strongSwan send their certificate
	// only when asked, so with certificate authentication at least the CA
	// that issues the peers' certificates belongs here.
	CertificateAuthorities []*x509.Certificate
	// VerifyPeer checks a peer that authenticates with a certificate: id is
	// its IKE identity, chain the certificates it sent, leaf first. It
	// returns the identity the Handler admits (typically the certificate's
	// common name as Name). The server checks afterwards that the chain's
	// leaf names id and that the AUTH payload is signed by its key. Nil:
	// certificate authentication is refused.
	VerifyPeer func(id ID, chain []*x509.Certificate) (tunnel.Identity, error)
	// PSK returns the pre-shared key of a peer identity and the name the
	// Handler admits it as; ok false refuses the peer. The server then
	// authenticates itself with the same key. Nil: PSK authentication is
	// refused.
	PSK func(id ID) (key []byte, name string, ok bool)
	// IKEProposals and ESPProposals are the acceptable algorithm suites,
	// in order of preference. Nil: DefaultIKEProposals and
	// DefaultESPProposals.
	IKEProposals []Proposal
	ESPProposals []Proposal
	// ChildProposals, if set, returns the ESP proposals acceptable for the
	// child SAs of a peer, once it has authenticated and been admitted as
	// peer: its first child in IKE_AUTH, the children it adds and the
	// rekeys of either side then choose from them. A nil or empty result
	// means ESPProposals (or what Server.SetProposals set). IKE proposals
	// cannot be chosen per peer: IKE_SA_INIT is answered before the peer
	// has said who it is.
	ChildProposals func(peer tunnel.Identity) []Proposal
	// DNS servers handed out in the configuration payload to peers that
	// ask for them. Nil: none.
	DNS []netip.Addr
	// DPDInterval is how long an IKE SA may be silent (no IKE message and
	// no ESP packet from the peer) before the server checks that the peer
	// is alive. Zero: 30 s. Negative: never.
	DPDInterval time.Duration
	// RetransmitTimeout is how long the server waits for the answer to a
	// request of its own (a dead peer check, a delete) before it sends it
	// again; each further wait is 1.8 times longer. RetransmitTries is how
	// many times the request is sent in all before the peer counts as dead
	// (ErrDeadPeer). Zero: 2 s and 5 tries, which declares a silent peer
	// dead about 45 s after the first check.
	RetransmitTimeout time.Duration
	RetransmitTries   int
	// ReadBuffer is the receive buffer size, in bytes, that Serve sets on
	// its sockets, which carry both IKE and ESP: large enough that bursts
	// of ESP do not crowd out IKE messages. The kernel caps it (on Linux
	// at net.core.rmem_max). Zero: 4 MiB. Negative: Serve leaves the
	// sockets' buffers as they are.
	ReadBuffer int
	// CookieThreshold is the number of half-open IKE SAs above which
	// new initiators must first return a cookie (RFC 7296 §2.6), so that a
	// flood of spoofed requests costs no state. Zero: 32.
	CookieThreshold int
	// MaxHalfOpen bounds the half-open IKE SAs; requests beyond it are
	// dropped. Zero: 1024.
	MaxHalfOpen int
	// HalfOpenTimeout is how long an IKE SA may wait for its IKE_AUTH.
	// Zero: 30 s.
	HalfOpenTimeout time.Duration
	// Fragmentation says whether IKE fragmentation (RFC 7383) is
	// supported: the zero value, FragmentationSupported, echoes an
	// initiator's IKEV2_FRAGMENTATION_SUPPORTED, reassembles its fragments
	// (strongSwan sends IKE_AUTH with RSA certificates in two) and
	// fragments our own large messages. FragmentationDisabled turns it
	// off.
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
