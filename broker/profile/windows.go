package profile

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Windows is a user's IKEv2 profile for the VPN client of Windows 10 and
// 11: a PowerShell script, run elevated, that imports the broker's CA into
// the machine's trusted roots and the user's PKCS#12 file into the
// machine's personal store (asking for its Password, which the script does
// not hold), adds the connection "remotegate" for all users with
// Add-VpnConnection -TunnelType Ikev2 -AuthenticationMethod
// MachineCertificate, and sets its proposals with
// Set-VpnConnectionIPsecConfiguration (WindowsIKEProposal,
// WindowsESPProposal; the defaults are refused, see the package's notes on
// native clients).
//
// Machine certificate authentication is IKEv2's own certificate
// authentication (an AUTH payload signed with the key, the certificate's
// subject as the identity), which the broker verifies. Windows' "user
// certificate" method is EAP-TLS inside IKEv2, which the broker does not
// implement. The certificate is the user's all the same: whoever uses the
// machine's connection is that user to the broker.
//
// Windows connects to ServerAddress on port 500 (it has no port setting;
// NAT traversal moves it to 4500) and checks that the broker's certificate
// names ServerAddress as a dNSName and has the serverAuth usage (see
// ServerNames).
type Windows struct {
	// Name is the user's name (policy.ValidName), for the file names.
	Name string
	// ServerAddress is the broker's address (ValidHost).
	ServerAddress string
	// Routes, when not empty, make the connection a split tunnel that
	// routes only these networks through the broker (the tunnel network
	// and what the user reaches); empty sends all traffic through it.
	Routes []netip.Prefix
	// Cert and Key are the user's certificate and key, CA the broker's CA
	// certificate, Password the PKCS#12 file's. Required.
	Cert     *x509.Certificate
	Key      crypto.Signer
	CA       *x509.Certificate
	Password string
}

// ConnectionName is the name of the VPN connection the Windows script
// adds (and replaces when it exists).
const ConnectionName = "remotegate"

// The Set-VpnConnectionIPsecConfiguration parameters that make Windows
// propose WindowsIKEProposal and WindowsESPProposal.
var windowsIPsec = []struct{ param, value string }{
	{"EncryptionMethod", "AES256"},
	{"IntegrityCheckMethod", "SHA384"},
	{"DHGroup", "ECP384"},
	{"CipherTransformConstants", "GCMAES256"},
	{"AuthenticationTransformConstants", "GCMAES256"},
	{"PfsGroup", "ECP384"},
}

// PowerShellString returns v as a PowerShell single-quoted string
// literal. Inside one only a quote is special, but PowerShell counts the
// typographic quotes (U+2018 to U+201B) as quotes too, and a line break
// would end the command in a script that someone may paste; rather than
// escape, anything but printable ASCII and every kind of quote is refused
// with an error wrapping ErrInvalid. Names and addresses need none of it.
func PowerShellString(v string) (string, error) {
	for _, c := range []byte(v) {
		if c < 0x20 || c > 0x7e || c == '\'' || c == '"' || c == '`' {
			return "", invalid(nil, "%q in a PowerShell script", v)
		}
	}
	return "'" + v + "'", nil
}

// Marshal returns the script, or an error wrapping ErrInvalid that names
// what cannot be written.
func (p Windows) Marshal() ([]byte, error) {
	id, err := native(p.Name, p.ServerAddress, p.Cert, p.Key, p.CA, p.Password)
	if err != nil {
		return nil, err
	}
	var q [4]string
	for i, v := range []string{ConnectionName, id.server, id.name + ".p12", "remotegate-ca.cer"} {
		if q[i], err = PowerShellString(v); err != nil {
			return nil, err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# remotegate IKEv2 profile for %[1]s (Windows 10 and 11).
# Run it in PowerShell as administrator:
#   powershell -ExecutionPolicy Bypass -File .\%[1]s.ps1
# It imports the broker's CA and the certificate of %[1]s into the computer's
# certificate stores (it asks for the certificate file's password) and adds
# the VPN connection %[2]s for all users of this computer.
#Requires -RunAsAdministrator
$ErrorActionPreference = 'Stop'
$Name = %[2]s
$Server = %[3]s
$Identity = [Convert]::FromBase64String('%[6]s')
$CA = [Convert]::FromBase64String('%[7]s')

$Dir = Join-Path ([IO.Path]::GetTempPath()) ([Guid]::NewGuid().ToString())
New-Item -ItemType Directory -Path $Dir | Out-Null
try {
  $CAFile = Join-Path $Dir %[5]s
  [IO.File]::WriteAllBytes($CAFile, $CA)
  Import-Certificate -FilePath $CAFile -CertStoreLocation 'Cert:\LocalMachine\Root' | Out-Null
  $IdentityFile = Join-Path $Dir %[4]s
  [IO.File]::WriteAllBytes($IdentityFile, $Identity)
  $Password = Read-Host -AsSecureString -Prompt 'Password of the certificate file'
  Import-PfxCertificate -FilePath $IdentityFile -CertStoreLocation 'Cert:\LocalMachine\My' -Password $Password | Out-Null
} finally {
  Remove-Item -Recurse -Force $Dir
}

Get-VpnConnection -Name $Name -AllUserConnection -ErrorAction SilentlyContinue | Remove-VpnConnection -AllUserConnection -Force
`, id.name, q[0], q[1], q[2], q[3], base64.StdEncoding.EncodeToString(id.p12), base64.StdEncoding.EncodeToString(id.ca))
	split := ""
	if len(p.Routes) > 0 {
		split = " -SplitTunneling"
	}
	fmt.Fprintf(&b, "Add-VpnConnection -Name $Name -ServerAddress $Server -TunnelType Ikev2 -AuthenticationMethod MachineCertificate -EncryptionLevel Required -AllUserConnection%s -Force\n", split)
	b.WriteString("Set-VpnConnectionIPsecConfiguration -ConnectionName $Name -AllUserConnection")
	for _, s := range windowsIPsec {
		b.WriteString(" -" + s.param + " " + s.value)
	}
	b.WriteString(" -Force\n")
	for _, r := range p.Routes {
		if !r.IsValid() {
			return nil, invalid(nil, "route %v", r)
		}
		fmt.Fprintf(&b, "Add-VpnConnectionRoute -ConnectionName $Name -AllUserConnection -DestinationPrefix '%s'\n", r.Masked())
	}
	b.WriteString("Write-Host \"Added the VPN connection $Name. Connect with rasdial $Name, or in the network settings.\"\n")
	return []byte(strings.ReplaceAll(b.String(), "\n", "\r\n")), nil
}

// WriteTo writes the script to w; one that cannot be rendered writes
// nothing. It implements io.WriterTo.
func (p Windows) WriteTo(w io.Writer) (int64, error) {
	data, err := p.Marshal()
	if err != nil {
		return 0, err
	}
	return write(w, data)
}
