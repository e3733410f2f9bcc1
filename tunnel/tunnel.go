package tunnel

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"
)

// Headroom is the number of bytes producers leave in front of packet data so
// that a transport can prepend its outer headers and seal in place.
const Headroom = 96

// Tailroom is the number of bytes producers leave after packet data so that an
// AEAD can append its tag in place, and ESP with AES-CBC its padding (up to 15
// bytes), pad length and next header (2) and an HMAC-SHA2-512-256 ICV (32).
const Tailroom = 64

// MaxPacketSize is the largest inner IP packet the SDK's buffers are sized for.
const MaxPacketSize = 1600

// BufferSize is the size of one packet buffer: headroom, packet, tailroom.
const BufferSize = Headroom + MaxPacketSize + Tailroom

// ErrClosed is returned by operations on a closed Device or Session.
var ErrClosed = errors.New("tunnel: closed")

// Device is a batched packet port: a TUN interface, an in-memory pipe.
//
// Read fills up to len(bufs) buffers with one packet each, starting at offset
// in each buffer, stores the packet lengths in sizes, and returns the number of
// packets read. Write sends bufs[i][offset:] for every i and returns how many
// were written. Implementations are safe for one concurrent reader and one
// concurrent writer.
type Device interface {
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
	Write(bufs [][]byte, offset int) (n int, err error)
	// BatchSize is the largest number of packets one Read returns.
	BatchSize() int
	// MTU is the largest packet the device carries.
	MTU() int
	Close() error
}

// Identity is who a peer proved to be during a handshake.
type Identity struct {
	// Name is the peer's principal name: the certificate's common name, or the
	// username when no certificate was presented.
	Name string
	// Chain is the verified certificate chain, leaf first; nil without
	// certificate authentication.
	Chain []*x509.Certificate
	// Username is the name given with username/password authentication, if
	// any. The password is never stored here.
	Username string
}

// Assignment is what a Handler grants an admitted peer.
type Assignment struct {
	// Addresses are the peer's tunnel addresses with the tunnel network's
	// prefix length, e.g. 10.8.0.2/24.
	Addresses []netip.Prefix
	// Gateway is the server's address inside the tunnel network; the zero
	// value lets the transport pick the first address of the network.
	Gateway netip.Addr
	// Gateway6 is the server's IPv6 address inside the tunnel network, for
	// peers that got an IPv6 address too (OpenVPN pushes it as the second
	// argument of ifconfig-ipv6); the zero value lets the transport pick
	// the first address of the IPv6 network, as stock openvpn's
	// server-ipv6 does.
	Gateway6 netip.Addr
	// Routes are the networks the peer should route into the tunnel.
	Routes []netip.Prefix
	// Networks are the networks behind the peer that it may send from and
	// receive for besides its Addresses: a device's LANs. IPsec narrows the
	// peer's traffic selectors to them; OpenVPN servers need not use them
	// (the Handler routes by them).
	Networks []netip.Prefix
}

// Session is one authenticated tunnel of any protocol.
type Session interface {
	// ID is unique among the sessions of the process, whatever their
	// protocol and server (see NewSessionID), so that a Handler can key
	// its tables by it.
	ID() uint64
	Identity() Identity
	// Remote is the peer's current outer address.
	Remote() netip.AddrPort
	// Send encrypts and transmits bufs[i][offset:] for every i. Each buffer
	// must have Headroom bytes before offset and Tailroom bytes of spare
	// capacity after the packet; Send may overwrite both. It returns the number
	// of packets sent.
	Send(bufs [][]byte, offset int) (int, error)
	// Close tears the session down; cause is reported to Handler.Down.
	Close(cause error) error
}

// sessionIDs is the process-wide source of session IDs.
var sessionIDs atomic.Uint64

// NewSessionID returns a session ID never returned before in this process.
// Every transport takes its sessions' IDs from here, so that the sessions
// of an OpenVPN and an IPsec server feeding the same Handler never share
// one.
func NewSessionID() uint64 { return sessionIDs.Add(1) }

// Counters are what a session carried since it started: bytes of the
// encrypted packets on the wire, and those packets.
type Counters struct {
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
}

// Reporter is implemented by sessions that describe themselves for a
// management view: the protocol ("openvpn/udp", "openvpn/tcp", ...), when the
// data channel came up after how long a handshake, and the traffic
// counters. Sessions of tunneltest and
// other simple implementations need not implement it.
type Reporter interface {
	Protocol() string
	Since() time.Time
	// HandshakeDuration is how long authentication and key exchange took.
	HandshakeDuration() time.Duration
	Counters() Counters
}

// Handler is implemented by the broker and called by protocol servers.
type Handler interface {
	// Admit decides whether an authenticated peer may open a tunnel and with
	// which addresses and routes. A non-nil error refuses the peer; its text is
	// sent to the peer where the protocol allows.
	Admit(ctx context.Context, id Identity, remote netip.AddrPort) (Assignment, error)
	// Up reports a session whose data channel is ready.
	Up(s Session)
	// Down reports a session that ended, with the reason.
	Down(s Session, cause error)
	// Deliver hands decrypted packets bufs[i][offset:offset+sizes[i]] from a
	// session to the handler. The buffers are valid during the call only.
	Deliver(from Session, bufs [][]byte, sizes []int, offset int)
}
