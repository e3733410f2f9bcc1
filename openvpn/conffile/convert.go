package conffile

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/remotegate/remotegate/openvpn"
)

// ErrIncomplete reports a config that lacks what a role needs (ca, cert, key).
var ErrIncomplete = errors.New("conffile: incomplete configuration")

// ServerConfig maps the file onto an openvpn.ServerConfig: certificates,
// control-channel protection, data ciphers, timers, pushed options. The
// address pool (`server`), `dev` and `proto` are for the caller, which owns
// the TUN device, the sockets and the tunnel.Handler.
func (f *File) ServerConfig() (*openvpn.ServerConfig, error) {
	if len(f.CA) == 0 || len(f.Cert) == 0 || len(f.Key) == 0 {
		return nil, fmt.Errorf("%w: a server needs ca, cert and key", ErrIncomplete)
	}
	cert, err := tls.X509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("conffile: cert/key: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.CA) {
		return nil, fmt.Errorf("%w: ca holds no certificate", ErrIncomplete)
	}
	cfg := &openvpn.ServerConfig{
		TLS:         &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, MinVersion: tlsMin(f.TLSVersionMin)},
		DataCiphers: f.DataCiphers,
		TunMTU:      f.TunMTU,
		MaxSessions: f.MaxClients,
		Compression: f.compression(),
		TCPNoDelay:  f.TCPNoDelay,
	}
	if cfg.Protection, err = f.protection(true); err != nil {
		return nil, err
	}
	if len(f.CRL) > 0 {
		verify, err := crlCheck(f.CRL)
		if err != nil {
			return nil, err
		}
		cfg.TLS.VerifyConnection = verify
	}
	cfg.Timers = f.timers()
	if f.ConnectFreqInitial[0] > 0 {
		cfg.ConnectFreqInitial = openvpn.ConnectFreq{Max: f.ConnectFreqInitial[0], Per: seconds(f.ConnectFreqInitial[1])}
	}
	cfg.ReadBuffer, cfg.WriteBuffer = socketBuffer(f.RcvBuf), socketBuffer(f.SndBuf)
	// Listing AES-256-CBC in data-ciphers is the explicit opt-in to the
	// legacy data channel; --auth then names its HMAC.
	for _, c := range f.DataCiphers {
		if strings.EqualFold(c, "AES-256-CBC") {
			cfg.AllowLegacy = true
		}
	}
	if cfg.Auth, err = digest(f.Auth); err != nil {
		return nil, err
	}
	if f.Keepalive[0] > 0 {
		cfg.Timers.Ping = seconds(f.Keepalive[0])
		cfg.Timers.PingRestart = seconds(f.Keepalive[1])
	}
	for _, p := range f.Push {
		cfg.Push = append(cfg.Push, strings.TrimSpace(p))
	}
	return cfg, nil
}

// ClientConfig maps the file onto an openvpn.ClientConfig. Credentials come
// from an inline <auth-user-pass> block or the file named by auth-user-pass.
func (f *File) ClientConfig() (*openvpn.ClientConfig, error) {
	if len(f.CA) == 0 {
		return nil, fmt.Errorf("%w: a client needs ca", ErrIncomplete)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.CA) {
		return nil, fmt.Errorf("%w: ca holds no certificate", ErrIncomplete)
	}
	cfg := &openvpn.ClientConfig{
		TLS:         &tls.Config{RootCAs: pool, MinVersion: tlsMin(f.TLSVersionMin)},
		DataCiphers: f.DataCiphers,
		Compression: f.compression(),
	}
	if len(f.Cert) > 0 || len(f.Key) > 0 {
		cert, err := tls.X509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("conffile: cert/key: %w", err)
		}
		cfg.TLS.Certificates = []tls.Certificate{cert}
	} else if !f.AuthUserPass {
		return nil, fmt.Errorf("%w: a client needs cert and key, or auth-user-pass", ErrIncomplete)
	}
	var err error
	if cfg.Protection, err = f.protection(false); err != nil {
		return nil, err
	}
	cfg.Timers = f.timers()
	if cfg.Auth, err = digest(f.Auth); err != nil {
		return nil, err
	}
	if f.AuthUserPass {
		cfg.Username, cfg.Password = f.Username, f.Password
		if f.AuthUserPassFile != "" {
			b, err := os.ReadFile(f.AuthUserPassFile)
			if err != nil {
				return nil, fmt.Errorf("conffile: auth-user-pass: %w", err)
			}
			lines := strings.SplitN(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", 3)
			if len(lines) < 2 {
				return nil, fmt.Errorf("conffile: auth-user-pass file %s: want username and password lines", f.AuthUserPassFile)
			}
			cfg.Username, cfg.Password = lines[0], lines[1]
		}
		if cfg.Username == "" {
			return nil, fmt.Errorf("%w: auth-user-pass without a file or inline block (interactive prompts are not supported)", ErrIncomplete)
		}
	}
	return cfg, nil
}

func (f *File) protection(server bool) (openvpn.Protection, error) {
	var p openvpn.Protection
	switch {
	case len(f.TLSCryptV2) > 0:
		p.Mode = openvpn.ProtectionTLSCryptV2
		var err error
		if server {
			p.ServerKey, err = openvpn.ParseTLSCryptV2ServerKey(f.TLSCryptV2)
		} else {
			p.ClientKey, err = openvpn.ParseTLSCryptV2ClientKey(f.TLSCryptV2)
		}
		if err != nil {
			return p, fmt.Errorf("conffile: tls-crypt-v2: %w", err)
		}
	case len(f.TLSCrypt) > 0:
		k, err := openvpn.ParseStaticKey(f.TLSCrypt)
		if err != nil {
			return p, fmt.Errorf("conffile: tls-crypt: %w", err)
		}
		p.Mode, p.Key = openvpn.ProtectionTLSCrypt, k
	case len(f.TLSAuth) > 0:
		k, err := openvpn.ParseStaticKey(f.TLSAuth)
		if err != nil {
			return p, fmt.Errorf("conffile: tls-auth: %w", err)
		}
		p.Mode, p.Key, p.KeyDirection = openvpn.ProtectionTLSAuth, k, f.KeyDirection
		d, err := digest(f.Auth)
		if err != nil {
			return p, err
		}
		p.Digest = d
	}
	return p, nil
}

// timers maps the timing directives; absent ones are 0, which Timers reads
// as the stock default. reneg-sec 0 disables time-based renegotiation.
func (f *File) timers() openvpn.Timers {
	t := openvpn.Timers{
		Ping:               seconds(f.Ping),
		PingRestart:        seconds(f.PingRestart),
		RenegotiatePackets: f.RenegPkts,
		RenegotiateBytes:   f.RenegBytes,
		HandshakeWindow:    seconds(f.HandWindow),
		TLSTimeout:         seconds(f.TLSTimeout),
		TransitionWindow:   seconds(f.TransitionWindow),
	}
	switch {
	case f.RenegSec > 0:
		t.RenegotiateAfter = seconds(f.RenegSec)
	case f.RenegSec == 0:
		t.RenegotiateAfter = -1
	}
	return t
}

// socketBuffer maps rcvbuf or sndbuf onto ServerConfig.ReadBuffer or
// WriteBuffer: absent takes the server's default (4 MiB), 0 leaves the
// system's default as stock openvpn does, anything else is asked for.
func socketBuffer(n int) int {
	switch {
	case n < 0:
		return 0
	case n == 0:
		return -1
	}
	return n
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

func tlsMin(v string) uint16 {
	if v == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

func digest(name string) (crypto.Hash, error) {
	switch strings.ToUpper(name) {
	case "", "SHA1", "SHA-1":
		return crypto.SHA1, nil
	case "SHA256", "SHA-256":
		return crypto.SHA256, nil
	case "SHA384", "SHA-384":
		return crypto.SHA384, nil
	case "SHA512", "SHA-512":
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("%w: auth %s", ErrUnsupported, name)
}

// ErrRevoked is returned (and sent as a TLS alert) for a client whose
// certificate is on the CRL.
var ErrRevoked = errors.New("conffile: certificate revoked")

// crlCheck returns a VerifyConnection callback that refuses certificates on
// the CRL. The CRL's signature must verify against one of the CA
// certificates, so that a forged list cannot be slipped in.
func crlCheck(data []byte) (func(tls.ConnectionState) error, error) {
	der := data
	if b, _ := pem.Decode(data); b != nil {
		der = b.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("conffile: crl-verify: %w", err)
	}
	revoked := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		revoked[e.SerialNumber.String()] = true
	}
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) < 2 {
			return nil
		}
		chain := cs.VerifiedChains[0]
		issuer := chain[1]
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("conffile: CRL not signed by the client's CA: %w", err)
		}
		if revoked[chain[0].SerialNumber.String()] {
			// Printed in hex, as pki.SerialString (which this package may
			// not import) prints serials everywhere else.
			return fmt.Errorf("%w: serial %s", ErrRevoked, chain[0].SerialNumber.Text(16))
		}
		return nil
	}, nil
}

// compression is the framing of the compress or comp-lzo directive (the
// parser accepted its argument); comp-lzo wins when both are present, as in
// stock openvpn, where it is applied last.
func (f *File) compression() openvpn.Compression {
	var c openvpn.Compression
	switch {
	case f.CompLZO != "":
		c, _ = openvpn.ParseCompression("comp-lzo " + f.CompLZO)
	case f.Compress != "":
		c, _ = openvpn.ParseCompression("compress " + f.Compress)
	}
	return c
}
