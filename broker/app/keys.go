package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/internal/tlsaead"
	"github.com/remotegate/remotegate/openvpn"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// Names of the broker's secrets in the store.
const (
	secretCACert     = "ca/certificate"
	secretCAKey      = "ca/key"
	secretServerCert = "openvpn/server-certificate"
	secretServerKey  = "openvpn/server-key"
	secretTLSCrypt   = "openvpn/tls-crypt"
	secretAPICert    = "api/server-certificate"
	secretAPIKey     = "api/server-key"
	secretConfigSum  = "config/applied-sha256" // of the broker.yaml applied last
)

// keys is the broker's key material, created on the first start.
type keys struct {
	ca       *pki.CA
	verifier *pki.Verifier
	server   tls.Certificate // OpenVPN
	api      tls.Certificate // management API, set by loadAPICert
	tlsCrypt *openvpn.StaticKey
	st       *store.Store
}

// openKeys loads the CA, the servers' certificates and the tls-crypt key
// from the store, creating them on the first start. The CA stores every
// certificate it issues before handing it out (OnIssue), and learns the
// ones issued before from the store.
func openKeys(ctx context.Context, st *store.Store, now func() time.Time) (*keys, error) {
	k := &keys{st: st}
	onIssue := func(r pki.Record) error { return st.PutCertificate(context.Background(), r) }
	certPEM, err := st.Secret(ctx, secretCACert)
	switch {
	case errors.Is(err, store.ErrNotFound):
		ca, err := pki.NewCA(pki.CAConfig{CommonName: "remotegate broker CA", OnIssue: onIssue, Now: now})
		if err != nil {
			return nil, err
		}
		keyPEM, err := pki.MarshalPrivateKeyPEM(ca.Key(), nil)
		if err != nil {
			return nil, err
		}
		if err := st.PutSecret(ctx, secretCAKey, keyPEM); err != nil {
			return nil, err
		}
		if err := st.PutSecret(ctx, secretCACert, pki.EncodeCertificatesPEM(ca.Certificate())); err != nil {
			return nil, err
		}
		k.ca = ca
	case err != nil:
		return nil, err
	default:
		cert, err := pki.ParseCertificatePEM(certPEM)
		if err != nil {
			return nil, fmt.Errorf("stored CA certificate: %w", err)
		}
		keyPEM, err := st.Secret(ctx, secretCAKey)
		if err != nil {
			return nil, fmt.Errorf("stored CA key: %w", err)
		}
		key, err := pki.ParsePrivateKeyPEM(keyPEM, nil)
		if err != nil {
			return nil, fmt.Errorf("stored CA key: %w", err)
		}
		if k.ca, err = pki.ImportCA(cert, key, pki.CAConfig{OnIssue: onIssue, Now: now}); err != nil {
			return nil, err
		}
	}
	if err := k.refresh(ctx); err != nil {
		return nil, err
	}
	k.verifier = &pki.Verifier{CA: k.ca}
	if k.server, _, err = k.serverCert(ctx, secretServerCert, secretServerKey, "remotegate broker", certNames{}); err != nil {
		return nil, err
	}
	tc, err := st.Secret(ctx, secretTLSCrypt)
	if errors.Is(err, store.ErrNotFound) {
		if k.tlsCrypt, err = openvpn.GenerateStaticKey(); err == nil {
			err = st.PutSecret(ctx, secretTLSCrypt, k.tlsCrypt.Marshal())
		}
	} else if err == nil {
		k.tlsCrypt, err = openvpn.ParseStaticKey(tc)
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

// refresh loads the certificate records from the store: those issued by
// another process on the same database (the profile command) and
// revocations made there.
func (k *keys) refresh(ctx context.Context) error {
	records, err := k.st.Certificates(ctx)
	if err != nil {
		return err
	}
	return k.ca.Restore(records)
}

// certNames are the names a server certificate is issued for.
type certNames struct {
	dns []string
	ips []net.IP
}

// missing returns the names leaf does not carry.
func (n certNames) missing(leaf *x509.Certificate) []string {
	var out []string
	for _, name := range n.dns {
		if leaf.VerifyHostname(name) != nil {
			out = append(out, name)
		}
	}
	for _, ip := range n.ips {
		if leaf.VerifyHostname(ip.String()) != nil {
			out = append(out, ip.String())
		}
	}
	return out
}

// serverCert returns the stored certificate and key certName and keyName,
// or, when there are none or the stored certificate lacks one of names, a
// new one issued by the CA and stored; reissued says which.
func (k *keys) serverCert(ctx context.Context, certName, keyName, cn string, names certNames) (_ tls.Certificate, reissued bool, _ error) {
	certPEM, err1 := k.st.Secret(ctx, certName)
	keyPEM, err2 := k.st.Secret(ctx, keyName)
	if err1 == nil && err2 == nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return tls.Certificate{}, false, fmt.Errorf("stored %s: %w", certName, err)
		}
		if len(names.missing(cert.Leaf)) == 0 {
			return cert, false, nil
		}
		// Configured to be reached under a name the certificate lacks (a
		// new API address or name): clients would refuse it, so it is
		// replaced, with a new key.
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	req := pki.Request{Profile: pki.ProfileServer, CommonName: cn, PublicKey: key.Public(), DNSNames: names.dns, IPAddresses: names.ips}
	cert, err := k.ca.Issue(req)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if keyPEM, err = pki.MarshalPrivateKeyPEM(key, nil); err != nil {
		return tls.Certificate{}, false, err
	}
	certPEM = pki.EncodeCertificatesPEM(cert)
	if err := k.st.PutSecret(ctx, keyName, keyPEM); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := k.st.PutSecret(ctx, certName, certPEM); err != nil {
		return tls.Certificate{}, false, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	return c, true, err
}

// loadServerCert sets the certificate of the OpenVPN and IKE server for
// the public address the profiles give, issuing a new one when the stored
// one does not name it. The IKEv2 clients of Windows and Apple and the
// strongSwan app check that the server's certificate names the address
// they were given (profile.ServerNames says how) and has the serverAuth
// usage (pki.ProfileServer); OpenVPN clients check only the CA and the
// usage, so a new certificate changes nothing for them.
func (k *keys) loadServerCert(ctx context.Context, publicAddress string, log *slog.Logger) error {
	dns, ips, err := profile.ServerNames(publicAddress)
	if err != nil {
		return fmt.Errorf("public address: %w", err)
	}
	cert, reissued, err := k.serverCert(ctx, secretServerCert, secretServerKey, "remotegate broker", certNames{dns: dns, ips: ips})
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	k.server = cert
	if reissued {
		log.Info("issued the server's certificate for the public address", "dns", cert.Leaf.DNSNames, "ips", cert.Leaf.IPAddresses)
	}
	return nil
}

// apiCertNames are the names the management API's certificate carries:
// localhost and the loopback addresses always, the host of the API address
// (Config.APIAddr, -api) unless it is unspecified (0.0.0.0, ::, empty),
// and every API name (Config.APINames, -api-name: a DNS name or an IP
// address). unspecified reports an API address of all the host's
// addresses, whose names only the API names can give.
func apiCertNames(apiAddr string, extra []string) (names certNames, unspecified bool, err error) {
	names = certNames{dns: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	host, _, err := net.SplitHostPort(apiAddr)
	if err != nil {
		return certNames{}, false, fmt.Errorf("API address %q: %w", apiAddr, err)
	}
	add := func(what, name string) error {
		if a, err := netip.ParseAddr(name); err == nil {
			if a.Zone() != "" {
				return fmt.Errorf("%s %q: an address with a zone cannot be in a certificate", what, name)
			}
			ip := net.IP(a.AsSlice())
			if !slices.ContainsFunc(names.ips, ip.Equal) {
				names.ips = append(names.ips, ip)
			}
			return nil
		}
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if !validDNSName(name) {
			return fmt.Errorf("%s %q: not an IP address or a DNS name", what, name)
		}
		if !slices.Contains(names.dns, name) {
			names.dns = append(names.dns, name)
		}
		return nil
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		unspecified = true
	} else if err := add("API address", host); err != nil {
		return certNames{}, false, err
	}
	for _, n := range extra {
		if err := add("API name", n); err != nil {
			return certNames{}, false, err
		}
	}
	return names, unspecified, nil
}

// validDNSName reports whether s is a host name a certificate may carry:
// dot-separated labels of letters, digits and inner hyphens, no wildcards.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// loadAPICert sets the management API's certificate for the names clients
// reach it under, issuing a new one when the stored one lacks any of them.
func (k *keys) loadAPICert(ctx context.Context, apiAddr string, extra []string, log *slog.Logger) error {
	names, unspecified, err := apiCertNames(apiAddr, extra)
	if err != nil {
		return err
	}
	cert, reissued, err := k.serverCert(ctx, secretAPICert, secretAPIKey, "localhost", names)
	if err != nil {
		return fmt.Errorf("management API certificate: %w", err)
	}
	k.api = cert
	if reissued {
		log.Info("issued the management API's certificate", "dns", cert.Leaf.DNSNames, "ips", cert.Leaf.IPAddresses)
	}
	if unspecified && len(extra) == 0 {
		log.Warn("the management API listens on every address, but its certificate names only localhost and the loopback addresses; give the names and addresses clients use as API names (-api-name)", "api", apiAddr)
	}
	return nil
}

// verifyConnection checks an OpenVPN client's certificate against the CA,
// including revocation. A certificate the CA does not know may have been
// issued by another process since the last look; the store is read again
// once before it is refused.
func (k *keys) verifyConnection(cs tls.ConnectionState) error {
	err := k.verifier.VerifyConnection(cs)
	if errors.Is(err, pki.ErrNotIssued) {
		if rerr := k.refresh(context.Background()); rerr == nil {
			err = k.verifier.VerifyConnection(cs)
		}
	}
	return err
}

func (k *keys) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(k.ca.Certificate())
	return p
}

// apiTLS: TLS 1.2 at least, with AEAD suites only; client certificates of
// the CA are asked for but optional, for the certificate login.
func (k *keys) apiTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tlsaead.CipherSuites(),
		Certificates: []tls.Certificate{k.api},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    k.roots(),
	}
}

func newOpenVPNServer(k *keys, events *eventQueue, now func() time.Time, log *slog.Logger) (*openvpn.Server, error) {
	return openvpn.NewServer(&openvpn.ServerConfig{
		TLS: &tls.Config{
			Certificates: []tls.Certificate{k.server}, ClientCAs: k.roots(),
			VerifyConnection: k.verifyConnection,
		},
		OnHandshakeFailure: func(remote netip.AddrPort, name string, err error) {
			events.authFailure(name, "VPN handshake refused", map[string]string{"remote": remote.String(), "error": err.Error()})
		},
		Protection: openvpn.Protection{Mode: openvpn.ProtectionTLSCrypt, Key: k.tlsCrypt},
		Logger:     log,
		Now:        now,
	})
}

// writeProfile writes a participant's OpenVPN profile (broker/profile
// checks the name and the address, so that neither can start a directive
// of its own).
func writeProfile(w io.Writer, s store.Settings, k *keys, name string, certPEM, keyPEM []byte) error {
	if err := policy.ValidName(name); err != nil {
		return fmt.Errorf("%w: %w", profile.ErrInvalid, err)
	}
	_, err := profile.OpenVPN{
		Name:        name,
		Remotes:     []profile.Remote{{Host: s.PublicAddress, Port: s.Port}},
		DataCiphers: []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"},
		Verb:        3,
		CA:          pki.EncodeCertificatesPEM(k.ca.Certificate()),
		Cert:        certPEM, Key: keyPEM,
		TLSCrypt: k.tlsCrypt.Marshal(),
	}.WriteTo(w)
	return err
}
