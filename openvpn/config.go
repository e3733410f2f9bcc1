package openvpn

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/remotegate/remotegate/openvpn/internal/datachannel"
	"github.com/remotegate/remotegate/openvpn/internal/wire"
	"github.com/remotegate/remotegate/tunnel"
)

// Sentinel errors.
var (
	// ErrAuthFailed is returned by Dial when the server refused the client
	// (AUTH_FAILED). The error text carries the server's reason.
	ErrAuthFailed = errors.New("openvpn: authentication failed")
	// ErrHandshakeTimeout means a key negotiation did not finish within the
	// handshake window.
	ErrHandshakeTimeout = errors.New("openvpn: key negotiation did not finish in time")
	// ErrPingTimeout means nothing was received from the peer for the
	// ping-restart interval.
	ErrPingTimeout = errors.New("openvpn: peer silent for the ping-restart interval")
	// ErrPeerExit means the peer announced that it is going away (EXIT,
	// OCC_EXIT, RESTART or HALT).
	ErrPeerExit = errors.New("openvpn: peer exited")
	// ErrClosed is returned by operations on a closed session, client or
	// server. It wraps tunnel.ErrClosed, so that code written for any
	// tunnel.Device or tunnel.Session (tunnel.Pump, a broker's switch)
	// recognises a closed OpenVPN tunnel without knowing the protocol.
	ErrClosed = fmt.Errorf("openvpn: %w", tunnel.ErrClosed)
	// ErrNoSharedCipher means client and server have no data cipher in common.
	ErrNoSharedCipher = errors.New("openvpn: data channel cipher negotiation failed (no shared cipher)")
	// ErrConfig reports an invalid configuration.
	ErrConfig = errors.New("openvpn: invalid configuration")
)

// ProtectionMode selects how control-channel packets are protected.
type ProtectionMode uint8

const (
	// ProtectionNone sends control packets unprotected (only TLS protects
	// the handshake contents).
	ProtectionNone ProtectionMode = iota
	// ProtectionTLSAuth adds an HMAC with a shared static key (--tls-auth).
	ProtectionTLSAuth
	// ProtectionTLSCrypt encrypts and authenticates with a shared static key
	// (--tls-crypt).
	ProtectionTLSCrypt
	// ProtectionTLSCryptV2 uses a per-client key wrapped by the server key
	// (--tls-crypt-v2).
	ProtectionTLSCryptV2
)

// StaticKey is an "OpenVPN Static key V1" (what `openvpn --genkey secret` or
// `--genkey tls-crypt` writes): 256 bytes.
type StaticKey = wire.StaticKey

// TLSCryptV2ServerKey is a tls-crypt-v2 server key.
type TLSCryptV2ServerKey = wire.V2ServerKey

// TLSCryptV2ClientKey is a tls-crypt-v2 client key: the client's static key
// and the same key wrapped for the server.
type TLSCryptV2ClientKey = wire.V2ClientKey

// ParseStaticKey reads a static key file.
func ParseStaticKey(text []byte) (*StaticKey, error) { return wire.ParseStaticKey(text) }

// GenerateStaticKey makes a new random static key (for tls-auth or
// tls-crypt); Marshal writes it in the file format stock openvpn reads.
func GenerateStaticKey() (*StaticKey, error) { return wire.GenerateStaticKey(rand.Reader) }

// ParseTLSCryptV2ServerKey reads a tls-crypt-v2 server key file.
func ParseTLSCryptV2ServerKey(text []byte) (*TLSCryptV2ServerKey, error) {
	return wire.ParseV2ServerKey(text)
}

// ParseTLSCryptV2ClientKey reads a tls-crypt-v2 client key file.
func ParseTLSCryptV2ClientKey(text []byte) (*TLSCryptV2ClientKey, error) {
	return wire.ParseV2ClientKey(text)
}

// GenerateTLSCryptV2ServerKey makes a new tls-crypt-v2 server key.
func GenerateTLSCryptV2ServerKey() (*TLSCryptV2ServerKey, error) {
	return wire.GenerateV2ServerKey(rand.Reader)
}

// GenerateTLSCryptV2ClientKey makes a client key wrapped by server, in the
// format `openvpn --genkey tls-crypt-v2-client` writes. metadata nil means the
// default metadata (a creation timestamp).
func GenerateTLSCryptV2ClientKey(server *TLSCryptV2ServerKey, metadata []byte) (*TLSCryptV2ClientKey, error) {
	return wire.GenerateV2ClientKey(server, metadata, time.Now(), rand.Reader)
}

// Protection configures control-channel protection. The zero value is
// ProtectionNone.
type Protection struct {
	Mode ProtectionMode
	// Key is the shared key for tls-auth and tls-crypt.
	Key *StaticKey
	// KeyDirection is the tls-auth key direction: 0 (usual on servers), 1
	// (usual on clients) or -1 for none. The zero value is direction 0, so
	// clients must set 1 explicitly, as in stock configs ("tls-auth ta.key 1").
	KeyDirection int
	// Digest is the tls-auth HMAC digest (--auth); zero means SHA-1, the
	// stock default.
	Digest crypto.Hash
	// ServerKey is the tls-crypt-v2 server key (servers only).
	ServerKey *TLSCryptV2ServerKey
	// ClientKey is the tls-crypt-v2 client key (clients only).
	ClientKey *TLSCryptV2ClientKey
}

func (p Protection) wire() *wire.Protection {
	w := &wire.Protection{Key: p.Key, KeyDirection: p.KeyDirection, Digest: p.Digest, ServerKey: p.ServerKey, ClientKey: p.ClientKey}
	switch p.Mode {
	case ProtectionTLSAuth:
		w.Mode = wire.ModeTLSAuth
	case ProtectionTLSCrypt:
		w.Mode = wire.ModeTLSCrypt
	case ProtectionTLSCryptV2:
		w.Mode = wire.ModeTLSCryptV2
	default:
		w.Mode = wire.ModeNone
	}
	return w
}

// DefaultDataCiphers is the cipher list used when a config names none, in
// order of preference; it is stock openvpn 2.6's default.
var DefaultDataCiphers = []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}

// Timers holds the protocol's timing parameters. Every zero field takes the
// stock default named in its comment.
type Timers struct {
	// Ping is how often a keepalive is sent when nothing else was (--ping;
	// servers push it). Zero: 10 s.
	Ping time.Duration
	// PingRestart is how long the peer may be silent before the session is
	// torn down (--ping-restart). Zero: 120 s on clients (servers push it),
	// and twice that on servers, as stock openvpn does with --keepalive.
	PingRestart time.Duration
	// RenegotiateAfter is the data-key lifetime (--reneg-sec). Zero: 3600 s.
	// Negative disables time-based renegotiation.
	RenegotiateAfter time.Duration
	// RenegotiateBytes and RenegotiatePackets trigger renegotiation after
	// that much traffic on one key (--reneg-bytes, --reneg-pkts). Zero: off.
	RenegotiateBytes   int64
	RenegotiatePackets int64
	// HandshakeWindow bounds every key negotiation (--hand-window). Zero: 60 s.
	HandshakeWindow time.Duration
	// TLSTimeout is the first control-packet retransmit timeout
	// (--tls-timeout). Zero: 2 s.
	TLSTimeout time.Duration
	// TransitionWindow is how long a replaced data key still decrypts
	// (--transition-window). Zero: 60 s. Stock openvpn keeps 3600 s, but the
	// old key is replaced at the next renegotiation anyway.
	TransitionWindow time.Duration
}

func (t Timers) withDefaults(server bool) Timers {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.Ping, 10*time.Second)
	if t.PingRestart == 0 {
		t.PingRestart = 120 * time.Second
		if server {
			t.PingRestart = 240 * time.Second
		}
	}
	def(&t.RenegotiateAfter, time.Hour)
	def(&t.HandshakeWindow, 60*time.Second)
	def(&t.TLSTimeout, 2*time.Second)
	def(&t.TransitionWindow, 60*time.Second)
	return t
}

// ServerConfig configures a Server. The zero value is not usable: TLS must
// hold the server certificate and the CA pool for client certificates.
type ServerConfig struct {
	// TLS supplies Certificates and ClientCAs (and optionally
	// VerifyConnection, e.g. for a CRL check: an error refuses the client
	// with a TLS alert). The server clones it and enforces what OpenVPN
	// needs: TLS 1.2 minimum, client certificates required and verified
	// unless AllowNoClientCert, no session tickets, no dynamic record sizing.
	// Nil CipherSuites means the ECDHE suites with AES-GCM or
	// ChaCha20-Poly1305 for TLS 1.2 (no CBC); TLS 1.3 is AEAD anyway.
	TLS *tls.Config
	// AllowNoClientCert accepts clients without a certificate
	// (verify-client-cert none); they must then authenticate with
	// username/password, so VerifyUserPass must be set.
	AllowNoClientCert bool
	// Protection of the control channel.
	Protection Protection
	// DataCiphers in order of preference; nil means DefaultDataCiphers.
	// Legacy AES-256-CBC is accepted only when listed and AllowLegacy is set.
	DataCiphers []string
	// AllowLegacy permits AES-256-CBC with HMAC in DataCiphers, and clients
	// that cannot do TLS key export (the legacy PRF). Off by default.
	AllowLegacy bool
	// Auth is the HMAC digest of the legacy CBC data channel (--auth); zero
	// means SHA-1, the stock default. It must match the clients' setting.
	Auth crypto.Hash
	// VerifyUserPass checks a client's username and password. Nil: clients
	// that send credentials are accepted on their certificate alone. Errors
	// are sent to the client as AUTH_FAILED; the password is never logged.
	VerifyUserPass func(ctx context.Context, username, password string) error
	// Push lists extra options pushed verbatim to every client (like
	// `push "..."` lines), after the routes from Handler.Admit.
	Push []string
	// TunMTU is pushed as tun-mtu when the client announces IV_MTU. Zero: 1500.
	TunMTU int
	// Timers; zero fields take the stock defaults.
	Timers Timers
	// MaxSessions limits concurrent sessions; zero means 1024. New clients
	// beyond it get no answer.
	MaxSessions int
	// MaxPending caps the clients that have not authenticated yet (TLS
	// and key method 2 not done), counted separately for TCP connections
	// (from the moment they are accepted) and UDP sessions (from the
	// moment the client has answered the stateless cookie). When a new one
	// would exceed it, the oldest pending one is closed: a flood can delay
	// real clients but never keep them out, and holds at most this many
	// descriptors and handshakes. Authenticated sessions never count and
	// are never closed by it. Zero means 256; negative is an error.
	MaxPending int
	// MaxPendingPerSource is the same cap for the pending clients of one
	// source address (for IPv6, one /64), so that one host cannot push the
	// others' handshakes out: its own oldest go first. Zero means 8, room
	// for a few clients behind one NAT connecting at once (one evicted
	// retries); negative is an error.
	MaxPendingPerSource int
	// FirstPacketTimeout bounds how long a TCP connection may stay silent
	// after it was accepted: a stock client sends its hard reset as soon
	// as the connection is up, so one that has sent nothing for this long
	// is not a client. From its first packet on, the handshake window
	// (Timers.HandshakeWindow) bounds the rest, so no unauthenticated
	// connection lives longer than both together. Zero means 10 s, ample
	// for a first packet over the slowest links (a few round trips);
	// negative is an error.
	FirstPacketTimeout time.Duration
	// ConnectFreqInitial bounds the answers to resets from new UDP
	// clients (connect-freq-initial); see ConnectFreq. The zero value is
	// stock OpenVPN 2.6's 100 per 10 s.
	ConnectFreqInitial ConnectFreq
	// ReadBuffer and WriteBuffer are the receive and send buffer sizes, in
	// bytes, that ServeUDP asks for on its socket (rcvbuf, sndbuf). With
	// the kernel's default (208 KiB on Linux) a burst of handshakes
	// overflows the receive buffer, and every datagram lost there costs
	// its client a 2 s control-channel retransmit. The kernel caps the
	// size (on Linux at net.core.rmem_max and wmem_max); ServeUDP logs
	// what it got. Zero: 4 MiB each. Negative: the socket's buffers are
	// left as they are. TCP connections keep the kernel's autotuning.
	ReadBuffer, WriteBuffer int
	// Compression is the compression framing every client's packets carry;
	// it must match the clients' own configuration (push it with Push, e.g.
	// "compress stub-v2", for clients that take it from the server). The zero
	// value, no framing, is the OpenVPN 2.6 default.
	Compression Compression
	// TCPNoDelay turns Nagle's algorithm off on TCP connections (the
	// tcp-nodelay directive). The zero value leaves it on, as stock openvpn
	// does: small packets then share outer segments while data is in flight.
	TCPNoDelay bool
	// OnHandshakeFailure, if set, is told of each client whose TLS
	// handshake failed (a certificate the verify callback refused, a
	// revoked one, no common cipher), with the common name of the
	// certificate it presented, if any, for an event log. Refusals at the
	// Admit step reach the Handler instead.
	OnHandshakeFailure func(remote netip.AddrPort, name string, err error)
	// Logger receives connection events; nil discards them. Secrets and
	// per-packet events are never logged.
	Logger *slog.Logger
	// Rand is the source of randomness; nil means crypto/rand.
	Rand io.Reader
	// Now returns the current time; nil means time.Now. Tests inject a clock.
	Now func() time.Time
}

// ClientConfig configures Dial. TLS must hold the CA pool (RootCAs) and,
// unless the server accepts username/password alone, the client certificate.
type ClientConfig struct {
	// TLS supplies RootCAs and Certificates. The server certificate is
	// verified against RootCAs and must carry the serverAuth extended key
	// usage (--remote-cert-tls server). ServerName, if set, is also checked
	// against the certificate; empty skips the name check, as openvpn does.
	TLS *tls.Config
	// Protection of the control channel.
	Protection Protection
	// DataCiphers the client accepts; nil means DefaultDataCiphers. Legacy
	// AES-256-CBC is accepted when listed.
	DataCiphers []string
	// Auth is the HMAC digest of the legacy CBC data channel (--auth); zero
	// means SHA-1.
	Auth crypto.Hash
	// Username and Password are sent when Username is not empty
	// (--auth-user-pass).
	Username, Password string
	// Compression framing, as in ServerConfig. A server that pushes
	// "compress ..." or "comp-lzo ..." overrides it.
	Compression Compression
	// Timers; Ping and PingRestart are replaced by the server's pushed values.
	Timers Timers
	// ExitNotify sends the server an EXIT notice when the client closes
	// (--explicit-exit-notify). On by default; set DisableExitNotify to turn
	// it off.
	DisableExitNotify bool
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Rand is the source of randomness; nil means crypto/rand.
	Rand io.Reader
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func parseCiphers(names []string, allowLegacy bool) ([]datachannel.Cipher, error) {
	if len(names) == 0 {
		names = DefaultDataCiphers
	}
	out := make([]datachannel.Cipher, 0, len(names))
	for _, n := range names {
		c, err := datachannel.ParseCipher(n)
		if err != nil {
			return nil, fmt.Errorf("%w: data cipher %q: %w", ErrConfig, n, err)
		}
		if !c.AEAD() && !allowLegacy {
			return nil, fmt.Errorf("%w: data cipher %s is legacy; set AllowLegacy to use it", ErrConfig, n)
		}
		out = append(out, c)
	}
	return out, nil
}

func cipherNames(cs []datachannel.Cipher) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

func discardLogger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// Compression is the compression framing of data-channel packets, for peers
// whose configuration has a compress or comp-lzo directive. Nothing is ever
// compressed: the framing only marks each packet as not compressed, and a
// packet the peer did compress is dropped (stock OpenVPN 2.6 never
// compresses either unless allow-compression yes is set).
type Compression uint8

const (
	// CompressionNone: no framing byte (no compress or comp-lzo directive).
	CompressionNone Compression = iota
	// CompressionStub: "compress", "compress stub", "compress lz4",
	// "compress lzo": 0xFB in front, the packet's first byte moved to its end.
	CompressionStub
	// CompressionStubV2: "compress stub-v2", "compress lz4-v2": no byte,
	// except an escape for packets that start with 0x50 (never IP).
	CompressionStubV2
	// CompressionLZO: "comp-lzo" in any mode: 0xFA in front.
	CompressionLZO
)

// String is the directive that selects the framing.
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionStub:
		return "compress stub"
	case CompressionStubV2:
		return "compress stub-v2"
	case CompressionLZO:
		return "comp-lzo no"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// framing is the datachannel value for c.
func (c Compression) framing() (datachannel.Compression, error) {
	switch c {
	case CompressionNone:
		return datachannel.CompressionNone, nil
	case CompressionStub:
		return datachannel.CompressionStub, nil
	case CompressionStubV2:
		return datachannel.CompressionStubV2, nil
	case CompressionLZO:
		return datachannel.CompressionLZO, nil
	}
	return 0, fmt.Errorf("%w: unknown %v", ErrConfig, c)
}

// ParseCompression maps a compress or comp-lzo directive, as written in a
// config file or pushed by a server ("compress stub-v2", "comp-lzo no"), to
// its framing.
func ParseCompression(directive string) (Compression, error) {
	f := strings.Fields(directive)
	if len(f) == 0 || len(f) > 2 {
		return 0, fmt.Errorf("%w: compression directive %q", ErrConfig, directive)
	}
	arg := ""
	if len(f) == 2 {
		arg = f[1]
	}
	switch f[0] {
	case "compress":
		switch arg {
		case "", "stub", "lz4", "lzo":
			return CompressionStub, nil
		case "stub-v2", "lz4-v2":
			return CompressionStubV2, nil
		}
	case "comp-lzo":
		switch arg {
		case "", "yes", "no", "adaptive":
			return CompressionLZO, nil
		}
	}
	return 0, fmt.Errorf("%w: compression directive %q", ErrConfig, directive)
}
