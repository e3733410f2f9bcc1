package app

import (
	"archive/tar"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
func newIPsec(s store.Settings, k *keys, events *eventQueue, now func() time.Time, log *slog.Logger) (*ipsecServer, error) {
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
		Logger: log,
		Now:    now,
	})
	if err != nil {
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
	log.Info("IPsec listening", "port", s.IPsecPort, "ike_port", s.IKEPort, "identity", ipsecIdentity(leaf))
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

// ipsecIdentity is the broker's IKE identity as strongSwan writes it: its
// certificate's subject (it has no DNS name).
func ipsecIdentity(leaf *x509.Certificate) string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return leaf.Subject.String()
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
	if err := profileName(name); err != nil {
		return err
	}
	if err := checkPublicAddress(s.PublicAddress); err != nil {
		return fmt.Errorf("%w: %w", errProfileValue, err)
	}
	leaf := k.server.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(k.server.Certificate[0]); err != nil {
			return err
		}
	}
	var quoted [3]string
	for i, v := range []string{s.PublicAddress, name + ".pem", ipsecIdentity(leaf)} {
		var err error
		if quoted[i], err = swanctlValue(v); err != nil {
			return err
		}
	}
	localTS := []string{"dynamic"}
	for _, l := range lans {
		localTS = append(localTS, l.Masked().String())
	}
	remoteTS := "0.0.0.0/0"
	if lans != nil {
		remoteTS = s.Pool.Masked().String()
	}
	conf := fmt.Sprintf(`# remotegate IPsec profile for %[1]q.
# Unpack into /etc/swanctl (tar -C /etc/swanctl -xf %[1]s.tar), then:
#   swanctl --load-all && swanctl --initiate --child remotegate
connections {
  remotegate {
    version = 2
    remote_addrs = %[2]s
    local_port = 4500
    remote_port = %[3]d
    encap = yes
    vips = 0.0.0.0
    proposals = aes256gcm16-prfsha256-x25519-ecp256, aes256-sha256-x25519-ecp256-modp2048
    dpd_delay = 30s
    local {
      auth = pubkey
      certs = %[7]s
    }
    remote {
      auth = pubkey
      id = %[4]s
    }
    children {
      remotegate {
        local_ts = %[5]s
        remote_ts = %[6]s
        esp_proposals = aes256gcm16, aes128gcm16, chacha20poly1305
        dpd_action = restart
        start_action = start
      }
    }
  }
}
`, name, quoted[0], s.IPsecPort, quoted[2], strings.Join(localTS, ","), remoteTS, quoted[1])
	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		data []byte
		mode int64
	}{
		{"swanctl.conf", []byte(conf), 0o644},
		{"x509/" + name + ".pem", certPEM, 0o644},
		{"private/" + name + ".pem", keyPEM, 0o600},
		{"x509ca/remotegate-ca.pem", pki.EncodeCertificatesPEM(k.ca.Certificate()), 0o644},
	} {
		// The name passed profileName; this is the last word on paths.
		if !fs.ValidPath(f.name) || strings.Contains(f.name, "..") {
			return fmt.Errorf("%w: archive member %q", errProfileValue, f.name)
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// errProfileValue: a value a profile cannot carry safely.
var errProfileValue = errors.New("app: a value the profile cannot carry")

// swanctlValue writes v as a quoted swanctl.conf value. Unquoted,
// swanctl.conf ends a value at a line break and reads "#" as a comment;
// in quotes these are text, but a quote ends the value and a backslash
// escapes. Rather than depend on escapes, control characters (line breaks
// among them), quotes and backslashes are refused: none of the values
// written here needs them.
func swanctlValue(v string) (string, error) {
	if !utf8.ValidString(v) || strings.ContainsAny(v, "\"\\") || strings.ContainsFunc(v, unicode.IsControl) ||
		strings.ContainsFunc(v, func(r rune) bool { return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) }) {
		return "", fmt.Errorf("%w: %q in swanctl.conf", errProfileValue, v)
	}
	return `"` + v + `"`, nil
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
