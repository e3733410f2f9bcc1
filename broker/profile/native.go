package profile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
)

// The IKEv2 clients built into operating systems (Windows 10/11, macOS and
// iOS) and the strongSwan app on Android authenticate a user with a
// certificate and get a virtual address from the broker like strongSwan
// does with the swanctl profile. Each wants its profile in its own form
// (Apple, Windows, Android), and each offers its own proposals:
//
//   - Windows 10 and 11 offer by default only MODP-1024 (DH group 2) for
//     the IKE SA, with 3DES, AES-CBC and (Windows 11) AES-GCM, SHA-1 and
//     SHA2, and for ESP AES-CBC, 3DES, DES and NULL with SHA-1 only
//     (strongSwan's Windows interoperability notes). MODP-1024, 3DES, DES,
//     NULL and SHA-1 are deprecated (RFC 8247) and not implemented here,
//     so the broker refuses that offer with NO_PROPOSAL_CHOSEN: the user
//     sees a refused connection at once. The Windows profile therefore
//     sets the connection's IPsec parameters with
//     Set-VpnConnectionIPsecConfiguration (see WindowsIKEProposal).
//   - iOS (16.5) offers AES-256-CBC with HMAC-SHA2-256 and MODP-2048, ECP-256
//     or MODP-1536, then AES-128-CBC/SHA-1/MODP-1024 and 3DES; for ESP
//     AES-256-CBC/HMAC-SHA2-256 first. The first proposals are accepted
//     (AES-CBC with SHA2 and MODP-2048 or ECP-256 are among
//     ipsec.DefaultIKEProposals), the SHA-1, MODP-1024/1536 and 3DES ones
//     are not. macOS offers fewer groups; the Apple profile sets strong
//     parameters anyway (see AppleIKEProposal), so what a device offers
//     by default does not matter.
//   - The strongSwan app offers strongSwan's default proposals, which
//     ipsec.DefaultIKEProposals and DefaultESPProposals cover minus what
//     is deprecated; it needs no proposal in its profile.
//
// What each client sends with the profiles written here, in strongSwan's
// proposal syntax (ipsec.ParseIKEProposals and ParseESPProposals read
// it). The interop tests configure strongSwan with exactly these, and the
// tests of this package check that the rendered profiles say the same.
const (
	// AppleIKEProposal: EncryptionAlgorithm AES-256-GCM, IntegrityAlgorithm
	// SHA2-384 (the PRF with an AEAD cipher), DiffieHellmanGroup 20.
	AppleIKEProposal = "aes256gcm16-prfsha384-ecp384"
	// AppleESPProposal: EncryptionAlgorithm AES-256-GCM, DiffieHellmanGroup
	// 20 with EnablePFS (the group is used when the child SA is rekeyed).
	AppleESPProposal = "aes256gcm16-ecp384"
	// WindowsIKEProposal: -EncryptionMethod AES256 -IntegrityCheckMethod
	// SHA384 (integrity and PRF) -DHGroup ECP384. AES-CBC rather than GCM
	// for the IKE SA: Microsoft documents GCMAES256 for the ESP transforms
	// (where it must be both cipher and authentication transform) but not
	// which PRF Windows pairs with an AEAD IKE cipher.
	WindowsIKEProposal = "aes256-sha384-ecp384"
	// WindowsESPProposal: -CipherTransformConstants GCMAES256
	// -AuthenticationTransformConstants GCMAES256 -PfsGroup ECP384.
	WindowsESPProposal = "aes256gcm16-ecp384"
)

// The formats of the native clients' profiles, siblings of FormatSwanctl
// for a user.
const (
	FormatApple   Format = "mobileconfig" // Apple configuration profile (macOS, iOS)
	FormatWindows Format = "powershell"   // PowerShell script for Windows 10/11
	FormatAndroid Format = "sswan"        // strongSwan app profile (Android)
)

// NeedsPassword reports whether the format carries the key in a PKCS#12
// file, which is handed out only with a password.
func (f Format) NeedsPassword() bool {
	switch f {
	case FormatPKCS12, FormatApple, FormatWindows, FormatAndroid:
		return true
	}
	return false
}

// Native reports whether the format is one of a native IKEv2 client's
// (FormatApple, FormatWindows, FormatAndroid): profiles for users.
func (f Format) Native() bool {
	return f == FormatApple || f == FormatWindows || f == FormatAndroid
}

// ServerNames are the subjectAltNames the broker's IKE certificate
// carries for the address (IP or host name) its profiles give: a host
// name as a dNSName; an IP address both as an iPAddress (Apple's clients
// and the strongSwan app compare an address identity with it) and as a
// dNSName in text form, which Windows requires of a server it reaches by
// address (it fails with error 13801 otherwise; strongSwan's Windows
// certificate notes). The certificate also needs the serverAuth extended
// key usage, which Windows and Apple check (pki.ProfileServer has it,
// and the IKE intermediate usage older macOS releases wanted).
func ServerNames(addr string) (dns []string, ips []net.IP, err error) {
	if err := ValidHost(addr); err != nil {
		return nil, nil, err
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		return []string{a.String()}, []net.IP{a.AsSlice()}, nil
	}
	return []string{strings.ToLower(strings.TrimSuffix(addr, "."))}, nil, nil
}

// ClientNames are the subjectAltNames a user's certificate carries so that
// the identity an Apple client sends (its LocalIdentifier: the user's
// name, as a host name, or as an e-mail address when it has an '@') is one
// the certificate names; the broker checks that it is. Windows and the
// strongSwan app send the certificate's subject instead.
func ClientNames(name string) (dns, email []string, err error) {
	if err := checkName(name); err != nil {
		return nil, nil, err
	}
	if strings.Contains(name, "@") {
		return nil, []string{name}, nil
	}
	return []string{name}, nil, nil
}

// nativeIdentity is what the native profiles have in common: the user,
// the broker, and the user's key in a PKCS#12 file.
type nativeIdentity struct {
	name, server string
	p12, ca      []byte // PKCS#12 DER, CA DER
	cert         *x509.Certificate
	caCert       *x509.Certificate
}

// native checks and encodes the parts every native profile needs.
func native(name, server string, cert *x509.Certificate, key crypto.Signer, ca *x509.Certificate, password string) (*nativeIdentity, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := ValidHost(server); err != nil {
		return nil, fmt.Errorf("server address: %w", err)
	}
	if ca == nil {
		return nil, invalid(nil, "no CA certificate")
	}
	p12, err := PKCS12{Key: key, Cert: cert, Chain: []*x509.Certificate{ca}, Password: password}.Marshal()
	if err != nil {
		return nil, err
	}
	return &nativeIdentity{name: name, server: server, p12: p12, ca: ca.Raw, cert: cert, caCert: ca}, nil
}

// uuid returns a random (version 4) UUID read from r (nil: crypto/rand).
func uuid(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("profile: a UUID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// appleCertificateType is the CertificateType of an Apple IKEv2 payload
// for the key of cert: Apple's clients assume RSA unless told.
func appleCertificateType(cert *x509.Certificate) (string, error) {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return "RSA", nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ECDSA256", nil
		case elliptic.P384():
			return "ECDSA384", nil
		case elliptic.P521():
			return "ECDSA521", nil
		}
	case ed25519.PublicKey:
		return "Ed25519", nil
	}
	return "", invalid(nil, "a %T key: Apple's IKEv2 client takes RSA, ECDSA (P-256, P-384, P-521) or Ed25519", cert.PublicKey)
}
