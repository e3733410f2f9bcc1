package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// ProfileFormat is the kind of profile WriteProfile writes.
type ProfileFormat string

// Profile formats.
const (
	// FormatOVPN is an OpenVPN profile with everything inline: openvpn
	// --config NAME.ovpn.
	FormatOVPN ProfileFormat = "ovpn"
	// FormatSwanctl is a tar archive for /etc/swanctl: swanctl.conf, the
	// certificate, its key and the CA.
	FormatSwanctl ProfileFormat = "swanctl"
	// FormatApple, FormatWindows and FormatAndroid are a user's profiles
	// for the IKEv2 clients of macOS and iOS (.mobileconfig), Windows 10
	// and 11 (a PowerShell script) and the strongSwan app on Android
	// (.sswan); see broker/profile. They carry the key in a PKCS#12 file
	// and need a password.
	FormatApple   ProfileFormat = ProfileFormat(profile.FormatApple)
	FormatWindows ProfileFormat = ProfileFormat(profile.FormatWindows)
	FormatAndroid ProfileFormat = ProfileFormat(profile.FormatAndroid)
)

// ErrNotParticipant: WriteProfile was asked for a name that is neither a
// user nor a device of the configuration.
var ErrNotParticipant = errors.New("app: not a participant of the configuration")

// WriteProfile issues a certificate for the participant name and writes its
// profile in format to w. What the profile says (the public address, the
// ports, the tunnel network) comes from the stored configuration, as the
// running broker has it. Formats that need a password are written by
// ExportProfile.
func (b *Broker) WriteProfile(ctx context.Context, w io.Writer, name string, format ProfileFormat) error {
	return b.ExportProfile(ctx, w, name, format, "")
}

// ExportProfile is WriteProfile with the password of the PKCS#12 file the
// native clients' formats (FormatApple, FormatWindows, FormatAndroid)
// carry; those are for users only.
func (b *Broker) ExportProfile(ctx context.Context, w io.Writer, name string, format ProfileFormat, password string) error {
	pf := profile.Format(format)
	if format != FormatOVPN && format != FormatSwanctl && !pf.Native() {
		return fmt.Errorf("%w: profile format %q (want %q, %q, %q, %q or %q)", ErrConfig, format, FormatOVPN, FormatSwanctl, FormatApple, FormatWindows, FormatAndroid)
	}
	if pf.Native() && password == "" {
		return fmt.Errorf("%w: a %s profile needs a password for its PKCS#12 file", profile.ErrInvalid, format)
	}
	// Checked before a certificate is issued for nothing.
	if err := policy.ValidName(name); err != nil {
		return fmt.Errorf("%w: %w", profile.ErrInvalid, err)
	}
	sc, err := b.st.Config(ctx)
	if err != nil {
		return err
	}
	kind := pki.Profile(-1)
	for _, u := range sc.Model.Users {
		if u.Name == name {
			kind = pki.ProfileUser
		}
	}
	for _, d := range sc.Model.Devices {
		if d.Name == name {
			kind = pki.ProfileDevice
		}
	}
	if kind < 0 {
		return fmt.Errorf("%w: %q", ErrNotParticipant, name)
	}
	if pf.Native() && kind != pki.ProfileUser {
		return fmt.Errorf("%w: %s profiles are for users, %q is a device", profile.ErrInvalid, format, name)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return err
	}
	dns, email, err := profile.ClientNames(name)
	if err != nil {
		return err
	}
	cert, err := b.keys.ca.Issue(pki.Request{Profile: kind, CommonName: name, DNSNames: dns, EmailAddresses: email, PublicKey: key.Public()})
	if err != nil {
		return err
	}
	s := withDefaults(sc.Settings)
	if pf.Native() {
		return writeNativeProfile(w, s, b.keys, pf, name, cert, key, password)
	}
	keyPEM, err := pki.MarshalPrivateKeyPEM(key, nil)
	if err != nil {
		return err
	}
	if format == FormatSwanctl {
		return writeSwanctlProfile(w, s, b.keys, name, deviceLANs(sc, name), pki.EncodeCertificatesPEM(cert), keyPEM, b.now())
	}
	return writeProfile(w, s, b.keys, name, pki.EncodeCertificatesPEM(cert), keyPEM)
}

// Status writes the data directory, the CA, the bootstrap state, the
// participants with their stable tunnel addresses, and the licenses.
func (b *Broker) Status(ctx context.Context, w io.Writer) error {
	cfg, err := b.st.Config(ctx)
	if err != nil {
		return err
	}
	addrs, err := b.st.Addresses(ctx)
	if err != nil {
		return err
	}
	ca := b.keys.ca.Certificate()
	fmt.Fprintf(w, "data directory: %s\nsecret key: %s\nCA: %s (valid until %s)\n", b.cfg.DataDir, b.keyPath, ca.Subject.CommonName, ca.NotAfter.Format("2006-01-02"))
	state := "not started yet"
	if v, err := b.st.Secret(ctx, "api/bootstrap"); err == nil {
		state = string(v)
	}
	fmt.Fprintf(w, "bootstrap administrator: %s\nconfiguration revision: %d\n", state, cfg.Revision)
	line := func(name, kind string, disabled bool) {
		addr := "(no address yet)"
		if a, ok := addrs[name]; ok {
			addr = a.String()
		}
		fmt.Fprintf(w, "  %-20s %-16s %-6s enabled=%v\n", name, addr, kind, !disabled)
	}
	for _, u := range cfg.Model.Users {
		line(u.Name, "user", u.Disabled)
	}
	for _, d := range cfg.Model.Devices {
		line(d.Name, "device", d.Disabled)
	}
	printLicenses(w, b.lic, len(cfg.Model.Users)+len(cfg.Model.Devices), b.now())
	return nil
}

// HashPassword reads a password (one line) from r and writes its argon2id
// hash to w, for password_hash in broker.yaml. A password shorter than 12
// characters is refused, as the API refuses it.
func HashPassword(r io.Reader, w io.Writer) error {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if len(line) < 12 {
		return errors.New("app: a password needs at least 12 characters")
	}
	h, err := api.HashPassword(line, api.PasswordCost{})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, h)
	return err
}
