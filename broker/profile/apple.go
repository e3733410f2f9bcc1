package profile

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Apple is a user's IKEv2 profile for macOS and iOS: a configuration
// profile (.mobileconfig) with three payloads, the VPN
// (com.apple.vpn.managed, VPNType IKEv2, certificate authentication), the
// user's key and certificate (com.apple.security.pkcs12, protected by
// Password, which the profile does not hold: the system asks for it when
// the profile is installed) and the broker's CA
// (com.apple.security.root).
//
// The client connects to RemoteAddress on port 500 (Apple's client has no
// port setting; it moves to 4500 for NAT traversal), asks for the
// broker's identity RemoteAddress (the broker's IKE certificate carries it,
// see ServerNames), authenticates as the user's name (LocalIdentifier; the
// user's certificate carries it, see ClientNames) and checks that the
// broker's certificate is issued by the CA (ServerCertificateIssuerCommonName,
// which also makes it send a certificate request). It proposes
// AppleIKEProposal and AppleESPProposal only.
type Apple struct {
	// Name is the user's name (policy.ValidName): LocalIdentifier and
	// part of the payloads' identifiers.
	Name string
	// RemoteAddress is the broker's address (ValidHost), also the
	// identity asked of it.
	RemoteAddress string
	// Cert and Key are the user's certificate and key, CA the broker's
	// CA certificate, Password the PKCS#12 file's. Required.
	Cert     *x509.Certificate
	Key      crypto.Signer
	CA       *x509.Certificate
	Password string
	// Rand is the source of the payloads' UUIDs; nil means crypto/rand.
	Rand io.Reader
}

// Apple's names for the parameters of AppleIKEProposal and
// AppleESPProposal.
const (
	appleEncryption = "AES-256-GCM"
	appleIntegrity  = "SHA2-384"
	appleDHGroup    = 20
)

// plist writes an XML property list. Strings go through plistString,
// which refuses what a name or an address never holds.
type plist struct {
	b   bytes.Buffer
	err error
}

func (p *plist) key(k string) { p.b.WriteString("<key>" + k + "</key>") }

func (p *plist) str(k, v string) {
	p.key(k)
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool {
		return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
	}) {
		if p.err == nil {
			p.err = invalid(nil, "%q in a configuration profile", v)
		}
		return
	}
	p.b.WriteString("<string>")
	_ = xml.EscapeText(&p.b, []byte(v))
	p.b.WriteString("</string>")
}

func (p *plist) integer(k string, v int) { p.key(k); fmt.Fprintf(&p.b, "<integer>%d</integer>", v) }

func (p *plist) boolean(k string, v bool) {
	p.key(k)
	if v {
		p.b.WriteString("<true/>")
	} else {
		p.b.WriteString("<false/>")
	}
}

func (p *plist) data(k string, v []byte) {
	p.key(k)
	p.b.WriteString("<data>" + base64.StdEncoding.EncodeToString(v) + "</data>")
}

func (p *plist) dict(k string, body func()) {
	if k != "" {
		p.key(k)
	}
	p.b.WriteString("<dict>")
	body()
	p.b.WriteString("</dict>")
}

// Marshal returns the configuration profile, or an error wrapping
// ErrInvalid that names what cannot be written.
func (a Apple) Marshal() ([]byte, error) {
	id, err := native(a.Name, a.RemoteAddress, a.Cert, a.Key, a.CA, a.Password)
	if err != nil {
		return nil, err
	}
	certType, err := appleCertificateType(a.Cert)
	if err != nil {
		return nil, err
	}
	var uuids [4]string
	for i := range uuids {
		if uuids[i], err = uuid(a.Rand); err != nil {
			return nil, err
		}
	}
	base := "org.remotegate.vpn." + id.name
	p := &plist{}
	p.b.WriteString(xml.Header)
	p.b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	p.b.WriteString(`<plist version="1.0">`)
	params := func(k string, lifetime int) {
		p.dict(k, func() {
			p.str("EncryptionAlgorithm", appleEncryption)
			p.str("IntegrityAlgorithm", appleIntegrity)
			p.integer("DiffieHellmanGroup", appleDHGroup)
			p.integer("LifeTimeInMinutes", lifetime)
		})
	}
	p.dict("", func() {
		p.str("PayloadDisplayName", "remotegate VPN ("+id.name+")")
		p.str("PayloadIdentifier", base)
		p.str("PayloadType", "Configuration")
		p.str("PayloadUUID", uuids[0])
		p.integer("PayloadVersion", 1)
		p.key("PayloadContent")
		p.b.WriteString("<array>")
		p.dict("", func() {
			p.str("PayloadDisplayName", "remotegate")
			p.str("PayloadIdentifier", base+".vpn")
			p.str("PayloadType", "com.apple.vpn.managed")
			p.str("PayloadUUID", uuids[1])
			p.integer("PayloadVersion", 1)
			p.str("UserDefinedName", "remotegate")
			p.str("VPNType", "IKEv2")
			p.dict("IKEv2", func() {
				p.str("RemoteAddress", id.server)
				p.str("RemoteIdentifier", id.server)
				p.str("LocalIdentifier", id.name)
				p.str("AuthenticationMethod", "Certificate")
				p.str("CertificateType", certType)
				p.str("PayloadCertificateUUID", uuids[2])
				p.str("ServerCertificateIssuerCommonName", id.caCert.Subject.CommonName)
				p.integer("ExtendedAuthEnabled", 0)
				p.integer("EnablePFS", 1)
				p.str("DeadPeerDetectionRate", "Medium")
				p.integer("DisableMOBIKE", 0)
				p.integer("DisableRedirect", 1)
				params("IKESecurityAssociationParameters", 1440)
				params("ChildSecurityAssociationParameters", 60)
			})
		})
		p.dict("", func() {
			p.str("PayloadDisplayName", id.name+" (certificate and key)")
			p.str("PayloadIdentifier", base+".identity")
			p.str("PayloadType", "com.apple.security.pkcs12")
			p.str("PayloadUUID", uuids[2])
			p.integer("PayloadVersion", 1)
			p.str("PayloadCertificateFileName", id.name+".p12")
			p.data("PayloadContent", id.p12)
		})
		p.dict("", func() {
			p.str("PayloadDisplayName", id.caCert.Subject.CommonName)
			p.str("PayloadIdentifier", base+".ca")
			p.str("PayloadType", "com.apple.security.root")
			p.str("PayloadUUID", uuids[3])
			p.integer("PayloadVersion", 1)
			p.str("PayloadCertificateFileName", "remotegate-ca.cer")
			p.data("PayloadContent", id.ca)
		})
		p.b.WriteString("</array>")
		p.boolean("PayloadRemovalDisallowed", false)
	})
	p.b.WriteString("</plist>\n")
	if p.err != nil {
		return nil, p.err
	}
	return p.b.Bytes(), nil
}

// WriteTo writes the configuration profile to w; one that cannot be
// rendered writes nothing. It implements io.WriterTo.
func (a Apple) WriteTo(w io.Writer) (int64, error) {
	data, err := a.Marshal()
	if err != nil {
		return 0, err
	}
	return write(w, data)
}
