package profile_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"testing"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/internal/nativeclient"
	"github.com/remotegate/remotegate/internal/testpki"
	"github.com/remotegate/remotegate/ipsec"
	"software.sslmate.com/src/go-pkcs12"
)

// checkIdentity decodes a profile's PKCS#12 file with the password and
// its CA.
func checkIdentity(t *testing.T, ca *testpki.CA, leaf *testpki.Leaf, p12, caDER []byte, password string) {
	t.Helper()
	_, cert, chain, err := pkcs12.DecodeChain(p12, password)
	if err != nil {
		t.Fatalf("the PKCS#12 file: %v", err)
	}
	if !cert.Equal(leaf.Cert) || len(chain) != 1 || !chain[0].Equal(ca.Cert) {
		t.Errorf("PKCS#12 holds %v and %d CA certificates", cert.Subject, len(chain))
	}
	if !bytes.Equal(caDER, ca.Cert.Raw) {
		t.Error("the CA payload is not the CA certificate")
	}
}

// The Apple profile says what AppleIKEProposal and AppleESPProposal say
// (the interop test configures strongSwan with what nativeclient reads
// from it), holds the identity behind its password without the password,
// and names the broker by its address and the user by its name.
func TestAppleProfile(t *testing.T) {
	ca := testpki.New(t, "remotegate broker CA")
	leaf := ca.Client(t, "engineer")
	data, err := profile.Apple{Name: "engineer", RemoteAddress: "vpn.example.com", Cert: leaf.Cert, Key: leaf.Key, CA: ca.Cert, Password: "pw of the p12"}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	a, err := nativeclient.ReadApple(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if a.IKE != profile.AppleIKEProposal || a.ESP != profile.AppleESPProposal {
		t.Errorf("the profile proposes %s / %s, the package says %s / %s", a.IKE, a.ESP, profile.AppleIKEProposal, profile.AppleESPProposal)
	}
	if _, err := ipsec.ParseIKEProposals(a.IKE); err != nil {
		t.Error(err)
	}
	if _, err := ipsec.ParseESPProposals(a.ESP); err != nil {
		t.Error(err)
	}
	if a.RemoteAddress != "vpn.example.com" || a.RemoteIdentifier != "vpn.example.com" || a.LocalIdentifier != "engineer" {
		t.Errorf("remote %q as %q, local %q", a.RemoteAddress, a.RemoteIdentifier, a.LocalIdentifier)
	}
	ike := a.VPN["IKEv2"].(map[string]any)
	if ike["CertificateType"] != "ECDSA256" || ike["ServerCertificateIssuerCommonName"] != "remotegate broker CA" {
		t.Errorf("CertificateType %v, issuer %v", ike["CertificateType"], ike["ServerCertificateIssuerCommonName"])
	}
	if bytes.Contains(data, []byte("pw of the p12")) || bytes.Contains(data, []byte("<key>Password</key>")) {
		t.Error("the profile holds the password")
	}
	checkIdentity(t, ca, leaf, a.PKCS12, a.CA, "pw of the p12")

	// Values from outside are escaped in the XML, or refused.
	odd := testpki.New(t, `CA <of> "A & B"`)
	data, err = profile.Apple{Name: "engineer", RemoteAddress: "192.0.2.1", Cert: leaf.Cert, Key: leaf.Key, CA: odd.Cert, Password: "x"}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if a, err := nativeclient.ReadApple(data); err != nil || a.VPN["IKEv2"].(map[string]any)["ServerCertificateIssuerCommonName"] != `CA <of> "A & B"` {
		t.Fatalf("%v\n%s", err, data)
	}
	bad := testpki.New(t, "CA\n</string><key>X</key>")
	if _, err := (profile.Apple{Name: "engineer", RemoteAddress: "192.0.2.1", Cert: leaf.Cert, Key: leaf.Key, CA: bad.Cert, Password: "x"}).Marshal(); !errors.Is(err, profile.ErrInvalid) {
		t.Errorf("a CA name with a line break: %v", err)
	}
}

// The Windows script says what WindowsIKEProposal and WindowsESPProposal
// say, adds an IKEv2 connection with machine certificate authentication
// to the broker's address, and carries the identity without its
// password.
func TestWindowsProfile(t *testing.T) {
	ca := testpki.New(t, "remotegate broker CA")
	leaf := ca.Client(t, "engineer")
	data, err := profile.Windows{Name: "engineer", ServerAddress: "198.51.100.7", Cert: leaf.Cert, Key: leaf.Key, CA: ca.Cert, Password: "pw of the p12"}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	w, err := nativeclient.ReadWindows(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if w.IKE != profile.WindowsIKEProposal || w.ESP != profile.WindowsESPProposal {
		t.Errorf("the script proposes %s / %s, the package says %s / %s", w.IKE, w.ESP, profile.WindowsIKEProposal, profile.WindowsESPProposal)
	}
	if _, err := ipsec.ParseIKEProposals(w.IKE); err != nil {
		t.Error(err)
	}
	if _, err := ipsec.ParseESPProposals(w.ESP); err != nil {
		t.Error(err)
	}
	if w.Server != "198.51.100.7" || w.AddVpnConnection["Name"] != profile.ConnectionName {
		t.Errorf("Add-VpnConnection %v", w.AddVpnConnection)
	}
	if _, split := w.AddVpnConnection["SplitTunneling"]; split {
		t.Error("a split tunnel without routes")
	}
	if bytes.Contains(data, []byte("pw of the p12")) || !bytes.Contains(data, []byte("Read-Host -AsSecureString")) {
		t.Error("the script holds the password, or does not ask for it")
	}
	if bytes.Count(data, []byte("\n")) != bytes.Count(data, []byte("\r\n")) {
		t.Error("lines do not end with CRLF")
	}
	checkIdentity(t, ca, leaf, w.PKCS12, w.CA, "pw of the p12")

	for _, v := range []string{"a'b", "a\u2019b", "a\nb", "a`b", `a"b`, "é"} {
		if _, err := profile.PowerShellString(v); !errors.Is(err, profile.ErrInvalid) {
			t.Errorf("PowerShellString(%q): %v", v, err)
		}
	}
	if q, err := profile.PowerShellString("vpn.example.com"); err != nil || q != "'vpn.example.com'" {
		t.Errorf("PowerShellString: %q, %v", q, err)
	}
	for _, host := range []string{"a'; Remove-Item C:\\", "vpn.example.com\r\nx"} {
		if _, err := (profile.Windows{Name: "engineer", ServerAddress: host, Cert: leaf.Cert, Key: leaf.Key, CA: ca.Cert, Password: "x"}).Marshal(); !errors.Is(err, profile.ErrInvalid) {
			t.Errorf("server %q: %v", host, err)
		}
	}
}

// The .sswan profile is the app's JSON with the broker's address and CA and
// the identity without its password.
func TestAndroidProfile(t *testing.T) {
	ca := testpki.New(t, "remotegate broker CA")
	leaf := ca.Client(t, "engineer")
	data, err := profile.Android{Name: "engineer", RemoteAddress: "vpn.example.com", Port: 4500, Cert: leaf.Cert, Key: leaf.Key, CA: ca.Cert, Password: "pw"}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		UUID, Name, Type string
		Remote           struct {
			Addr string
			Port int
			Cert string
		}
		Local struct{ P12 string }
	}
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "ikev2-cert" || p.Remote.Addr != "vpn.example.com" || p.Remote.Port != 4500 || len(p.UUID) != 36 {
		t.Errorf("%s", data)
	}
	p12, err1 := base64.StdEncoding.DecodeString(p.Local.P12)
	caDER, err2 := base64.StdEncoding.DecodeString(p.Remote.Cert)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	checkIdentity(t, ca, leaf, p12, caDER, "pw")
}

// Formats, file names, and what every native profile refuses.
func TestNativeFormats(t *testing.T) {
	for name, want := range map[string]string{"mobileconfig": "u.mobileconfig", "powershell": "u.ps1", "sswan": "u.sswan"} {
		f, err := profile.ParseFormat(name)
		if err != nil || !f.Native() || !f.NeedsPassword() {
			t.Fatalf("%s: %v", name, err)
		}
		if got, err := f.FileName("u"); got != want || err != nil {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if profile.FormatSwanctl.Native() || profile.FormatOpenVPN.NeedsPassword() {
		t.Error("swanctl native or ovpn with a password")
	}
	ca := testpki.New(t, "CA")
	leaf := ca.Client(t, "u")
	for what, p := range map[string]profile.Apple{
		"no password": {Name: "u", RemoteAddress: "vpn.example.com", Cert: leaf.Cert, Key: leaf.Key, CA: ca.Cert},
		"bad name":    {Name: "u'x", RemoteAddress: "vpn.example.com", Cert: leaf.Cert, Key: leaf.Key, CA: ca.Cert, Password: "x"},
		"no CA":       {Name: "u", RemoteAddress: "vpn.example.com", Cert: leaf.Cert, Key: leaf.Key, Password: "x"},
		"bad address": {Name: "u", RemoteAddress: "vpn.example.com<", Cert: leaf.Cert, Key: leaf.Key, CA: ca.Cert, Password: "x"},
	} {
		var b bytes.Buffer
		if _, err := p.WriteTo(&b); !errors.Is(err, profile.ErrInvalid) || b.Len() != 0 {
			t.Errorf("%s: %v, %d bytes", what, err, b.Len())
		}
	}
}

// ServerNames gives Windows its dNSName for an address and Apple its
// iPAddress; ClientNames the identity Apple's LocalIdentifier sends.
func TestCertificateNames(t *testing.T) {
	dns, ips, err := profile.ServerNames("192.0.2.1")
	if err != nil || len(dns) != 1 || dns[0] != "192.0.2.1" || len(ips) != 1 || !ips[0].Equal(net.ParseIP("192.0.2.1")) {
		t.Errorf("ServerNames(192.0.2.1) = %v %v %v", dns, ips, err)
	}
	dns, ips, err = profile.ServerNames("VPN.example.com.")
	if err != nil || len(dns) != 1 || dns[0] != "vpn.example.com" || len(ips) != 0 {
		t.Errorf("ServerNames(VPN.example.com.) = %v %v %v", dns, ips, err)
	}
	if _, _, err := profile.ServerNames("a b"); !errors.Is(err, profile.ErrInvalid) {
		t.Errorf("ServerNames(a b): %v", err)
	}
	if dns, email, err := profile.ClientNames("engineer"); err != nil || len(dns) != 1 || len(email) != 0 {
		t.Errorf("ClientNames(engineer) = %v %v %v", dns, email, err)
	}
	if dns, email, err := profile.ClientNames("jo@example.com"); err != nil || len(dns) != 0 || email[0] != "jo@example.com" {
		t.Errorf("ClientNames(jo@example.com) = %v %v %v", dns, email, err)
	}
}
