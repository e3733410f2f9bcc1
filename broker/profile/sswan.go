package profile

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
)

// Android is a user's profile for the strongSwan app on Android: a
// .sswan file (JSON, the app's documented import format) of type
// "ikev2-cert" with the broker's address, its CA certificate and the
// user's PKCS#12 file, which the app imports into the system's key store
// (asking for Password, which the profile does not hold). The app
// authenticates with the certificate's subject, asks for the broker's
// identity as its address (the broker's IKE certificate carries it, see
// ServerNames) and proposes strongSwan's defaults, which the broker
// accepts minus the deprecated algorithms; the profile sets none.
type Android struct {
	// Name is the user's name (policy.ValidName).
	Name string
	// RemoteAddress is the broker's address (ValidHost); Port its IKE
	// port, zero meaning the app's default (500).
	RemoteAddress string
	Port          int
	// Cert and Key are the user's certificate and key, CA the broker's CA
	// certificate, Password the PKCS#12 file's. Required.
	Cert     *x509.Certificate
	Key      crypto.Signer
	CA       *x509.Certificate
	Password string
	// Rand is the source of the profile's UUID; nil means crypto/rand.
	Rand io.Reader
}

// sswan is the JSON of a .sswan file.
type sswan struct {
	UUID   string      `json:"uuid"`
	Name   string      `json:"name"`
	Type   string      `json:"type"`
	Remote sswanRemote `json:"remote"`
	Local  sswanLocal  `json:"local"`
}

type sswanRemote struct {
	Addr string `json:"addr"`
	Port int    `json:"port,omitempty"`
	Cert string `json:"cert"`
}

type sswanLocal struct {
	P12 string `json:"p12"`
}

// Marshal returns the profile, or an error wrapping ErrInvalid that names
// what cannot be written.
func (a Android) Marshal() ([]byte, error) {
	id, err := native(a.Name, a.RemoteAddress, a.Cert, a.Key, a.CA, a.Password)
	if err != nil {
		return nil, err
	}
	if a.Port < 0 || a.Port > 65535 {
		return nil, invalid(nil, "port %d", a.Port)
	}
	u, err := uuid(a.Rand)
	if err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(sswan{
		UUID: u, Name: "remotegate (" + id.name + ")", Type: "ikev2-cert",
		Remote: sswanRemote{Addr: id.server, Port: a.Port, Cert: base64.StdEncoding.EncodeToString(id.ca)},
		Local:  sswanLocal{P12: base64.StdEncoding.EncodeToString(id.p12)},
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return append(data, '\n'), nil
}

// WriteTo writes the profile to w; one that cannot be rendered writes
// nothing. It implements io.WriterTo.
func (a Android) WriteTo(w io.Writer) (int64, error) {
	data, err := a.Marshal()
	if err != nil {
		return 0, err
	}
	return write(w, data)
}
