// Package nativeclient reads the profiles broker/profile writes for the
// IKEv2 clients built into operating systems back into what those clients
// then put on the wire: their proposals in strongSwan's syntax and the
// identities they send. The interop tests configure strongSwan with what
// it returns, so that strongSwan plays the client as the profile a user
// downloads configures it, and the profile package's tests compare it
// with the proposals the package documents: neither can drift from the
// other.
//
// The translations follow the vendors' documentation: Apple's
// IKESecurityAssociationParameters and ChildSecurityAssociationParameters
// (EncryptionAlgorithm, IntegrityAlgorithm, which is the PRF with an AEAD
// cipher, DiffieHellmanGroup as an IKE group number), and Microsoft's
// Set-VpnConnectionIPsecConfiguration (EncryptionMethod and
// IntegrityCheckMethod, also the PRF, for the IKE SA with DHGroup;
// CipherTransformConstants and AuthenticationTransformConstants, both
// GCMAES* for AES-GCM, for ESP with PfsGroup). A value without a
// translation is an error: it means a profile this package cannot vouch
// for.
package nativeclient

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Plist is a decoded property list value: map[string]any, []any, string,
// int, bool or []byte.
type Plist = any

// ParsePlist decodes an XML property list.
func ParsePlist(data []byte) (Plist, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "plist" {
			return plistValue(d, nil)
		}
	}
}

// plistValue reads the next value; start is its element if already read.
func plistValue(d *xml.Decoder, start *xml.StartElement) (Plist, error) {
	for start == nil {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			start = &se
		}
	}
	switch start.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, fmt.Errorf("plist: %w", err)
			}
			switch t := tok.(type) {
			case xml.EndElement:
				return m, nil
			case xml.StartElement:
				if t.Name.Local != "key" {
					return nil, fmt.Errorf("plist: <%s> where a key belongs", t.Name.Local)
				}
				var k string
				if err := d.DecodeElement(&k, &t); err != nil {
					return nil, fmt.Errorf("plist: %w", err)
				}
				v, err := plistValue(d, nil)
				if err != nil {
					return nil, err
				}
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("plist: key %q twice", k)
				}
				m[k] = v
			}
		}
	case "array":
		var a []any
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, fmt.Errorf("plist: %w", err)
			}
			switch t := tok.(type) {
			case xml.EndElement:
				return a, nil
			case xml.StartElement:
				v, err := plistValue(d, &t)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
		}
	case "true", "false":
		if err := d.Skip(); err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		return start.Name.Local == "true", nil
	}
	var text string
	if err := d.DecodeElement(&text, start); err != nil {
		return nil, fmt.Errorf("plist: %w", err)
	}
	switch start.Name.Local {
	case "string":
		return text, nil
	case "integer":
		return strconv.Atoi(strings.TrimSpace(text))
	case "data":
		return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
	}
	return nil, fmt.Errorf("plist: unknown element <%s>", start.Name.Local)
}

// Apple is what an Apple client does with a .mobileconfig.
type Apple struct {
	IKE, ESP         string // proposals in strongSwan's syntax
	RemoteAddress    string
	RemoteIdentifier string // the IDr it asks for
	LocalIdentifier  string // the IDi it sends
	PKCS12, CA       []byte // the identity and root payloads
	VPN              map[string]any
}

var (
	appleEncryption = map[string]string{"AES-128": "aes128", "AES-256": "aes256", "AES-128-GCM": "aes128gcm16", "AES-256-GCM": "aes256gcm16", "ChaCha20Poly1305": "chacha20poly1305"}
	appleIntegrity  = map[string]string{"SHA2-256": "sha256", "SHA2-384": "sha384", "SHA2-512": "sha512"}
	groups          = map[int]string{14: "modp2048", 15: "modp3072", 19: "ecp256", 20: "ecp384", 21: "ecp521", 31: "curve25519"}
)

// ReadApple reads a configuration profile with one IKEv2 VPN payload.
func ReadApple(data []byte) (*Apple, error) {
	v, err := ParsePlist(data)
	if err != nil {
		return nil, err
	}
	top, _ := v.(map[string]any)
	content, _ := top["PayloadContent"].([]any)
	var a Apple
	byUUID := map[string]map[string]any{}
	for _, p := range content {
		m, _ := p.(map[string]any)
		u, _ := m["PayloadUUID"].(string)
		byUUID[u] = m
		switch m["PayloadType"] {
		case "com.apple.vpn.managed":
			a.VPN = m
		case "com.apple.security.root":
			a.CA, _ = m["PayloadContent"].([]byte)
		}
	}
	if a.VPN == nil || a.VPN["VPNType"] != "IKEv2" {
		return nil, errors.New("no IKEv2 VPN payload")
	}
	ike, _ := a.VPN["IKEv2"].(map[string]any)
	if ike["AuthenticationMethod"] != "Certificate" {
		return nil, fmt.Errorf("AuthenticationMethod %v", ike["AuthenticationMethod"])
	}
	a.RemoteAddress, _ = ike["RemoteAddress"].(string)
	a.RemoteIdentifier, _ = ike["RemoteIdentifier"].(string)
	a.LocalIdentifier, _ = ike["LocalIdentifier"].(string)
	certUUID, _ := ike["PayloadCertificateUUID"].(string)
	if p := byUUID[certUUID]; p != nil && p["PayloadType"] == "com.apple.security.pkcs12" {
		a.PKCS12, _ = p["PayloadContent"].([]byte)
	} else {
		return nil, fmt.Errorf("PayloadCertificateUUID %q names no PKCS#12 payload", certUUID)
	}
	pfs, _ := ike["EnablePFS"].(int)
	if a.IKE, err = appleProposal(ike["IKESecurityAssociationParameters"], true, true); err != nil {
		return nil, fmt.Errorf("IKE: %w", err)
	}
	if a.ESP, err = appleProposal(ike["ChildSecurityAssociationParameters"], false, pfs == 1); err != nil {
		return nil, fmt.Errorf("child: %w", err)
	}
	return &a, nil
}

func appleProposal(v any, ike, group bool) (string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", errors.New("no parameters (the client's defaults)")
	}
	enc, ok := appleEncryption[fmt.Sprint(m["EncryptionAlgorithm"])]
	if !ok {
		return "", fmt.Errorf("EncryptionAlgorithm %v", m["EncryptionAlgorithm"])
	}
	integ, ok := appleIntegrity[fmt.Sprint(m["IntegrityAlgorithm"])]
	if !ok {
		return "", fmt.Errorf("IntegrityAlgorithm %v", m["IntegrityAlgorithm"])
	}
	dh, _ := m["DiffieHellmanGroup"].(int)
	g, ok := groups[dh]
	if !ok {
		return "", fmt.Errorf("DiffieHellmanGroup %v", m["DiffieHellmanGroup"])
	}
	parts := []string{enc}
	aead := strings.Contains(enc, "gcm") || strings.Contains(enc, "poly")
	switch {
	case aead && ike:
		parts = append(parts, "prf"+integ)
	case !aead:
		parts = append(parts, integ)
	}
	if group {
		parts = append(parts, g)
	}
	return strings.Join(parts, "-"), nil
}

// Windows is what Windows does with the PowerShell script.
type Windows struct {
	IKE, ESP         string // proposals in strongSwan's syntax
	Server           string
	AddVpnConnection map[string]string // its parameters ("" for switches)
	PKCS12, CA       []byte
}

var (
	winEncryption = map[string]string{"AES128": "aes128", "AES192": "aes192", "AES256": "aes256", "GCMAES128": "aes128gcm16", "GCMAES256": "aes256gcm16"}
	winIntegrity  = map[string]string{"SHA256": "sha256", "SHA384": "sha384"}
	winGroups     = map[string]string{"Group14": "modp2048", "ECP256": "ecp256", "ECP384": "ecp384", "Group24": "", "None": ""}
	winCipher     = map[string]string{"AES128": "aes128", "AES192": "aes192", "AES256": "aes256", "GCMAES128": "aes128gcm16", "GCMAES192": "aes192gcm16", "GCMAES256": "aes256gcm16"}
	winAuth       = map[string]string{"SHA256128": "sha256", "GCMAES128": "gcm", "GCMAES192": "gcm", "GCMAES256": "gcm"}
	psParam       = regexp.MustCompile(`-(\w+)(?:\s+('[^']*'|[^\s-][^\s]*))?`)
	psAssign      = regexp.MustCompile(`(?m)^\$(\w+) = (?:'([^']*)'|\[Convert\]::FromBase64String\('([A-Za-z0-9+/=]*)'\))\r?$`)
)

// psCommand returns the parameters of the first line that starts with
// cmd, with $Variables replaced by the script's assignments.
func psCommand(script, cmd string, vars map[string]string) (map[string]string, error) {
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimRight(line, "\r")
		rest, ok := strings.CutPrefix(line, cmd+" ")
		if !ok {
			continue
		}
		out := map[string]string{}
		for _, m := range psParam.FindAllStringSubmatch(rest, -1) {
			v := strings.Trim(m[2], "'")
			if strings.HasPrefix(v, "$") {
				v = vars[v[1:]]
			}
			out[m[1]] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("no %s", cmd)
}

// ReadWindows reads the script.
func ReadWindows(script []byte) (*Windows, error) {
	s := string(script)
	vars := map[string]string{}
	var w Windows
	for _, m := range psAssign.FindAllStringSubmatch(s, -1) {
		if m[3] != "" || strings.Contains(m[0], "FromBase64String") {
			b, err := base64.StdEncoding.DecodeString(m[3])
			if err != nil {
				return nil, fmt.Errorf("$%s: %w", m[1], err)
			}
			switch m[1] {
			case "Identity":
				w.PKCS12 = b
			case "CA":
				w.CA = b
			}
			continue
		}
		vars[m[1]] = m[2]
	}
	add, err := psCommand(s, "Add-VpnConnection", vars)
	if err != nil {
		return nil, err
	}
	if add["TunnelType"] != "Ikev2" || add["AuthenticationMethod"] != "MachineCertificate" {
		return nil, fmt.Errorf("Add-VpnConnection %v", add)
	}
	w.AddVpnConnection, w.Server = add, add["ServerAddress"]
	set, err := psCommand(s, "Set-VpnConnectionIPsecConfiguration", vars)
	if err != nil {
		return nil, err
	}
	if set["ConnectionName"] != add["Name"] {
		return nil, fmt.Errorf("IPsec configuration of %q, connection %q", set["ConnectionName"], add["Name"])
	}
	enc, ok1 := winEncryption[set["EncryptionMethod"]]
	integ, ok2 := winIntegrity[set["IntegrityCheckMethod"]]
	dh, ok3 := winGroups[set["DHGroup"]]
	if !ok1 || !ok2 || !ok3 || dh == "" {
		return nil, fmt.Errorf("IKE parameters %v", set)
	}
	if strings.Contains(enc, "gcm") {
		w.IKE = enc + "-prf" + integ + "-" + dh
	} else {
		w.IKE = enc + "-" + integ + "-" + dh
	}
	cipher, ok1 := winCipher[set["CipherTransformConstants"]]
	auth, ok2 := winAuth[set["AuthenticationTransformConstants"]]
	pfs, ok3 := winGroups[set["PfsGroup"]]
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("ESP parameters %v", set)
	}
	gcm := strings.Contains(cipher, "gcm")
	if gcm != (auth == "gcm") || gcm && !strings.HasSuffix(set["CipherTransformConstants"], strings.TrimPrefix(set["AuthenticationTransformConstants"], "GCMAES")) {
		return nil, fmt.Errorf("ESP cipher %s with authentication %s", set["CipherTransformConstants"], set["AuthenticationTransformConstants"])
	}
	w.ESP = cipher
	if !gcm {
		w.ESP += "-" + auth
	}
	if pfs != "" {
		w.ESP += "-" + pfs
	}
	return &w, nil
}
