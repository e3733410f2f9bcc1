package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/internal/nativeclient"
	"software.sslmate.com/src/go-pkcs12"
)

// A user's profiles for the native IKEv2 clients: the broker's public
// address, the documented proposals, the user's certificate naming the
// identity Apple's client sends, behind the password. Devices and an
// empty password are refused before a certificate is issued.
func TestExportNativeProfiles(t *testing.T) {
	dir := t.TempDir()
	b := open(t, Config{DataDir: filepath.Join(dir, "data"), ConfigFile: writeYAML(t, dir, settingsYAML)})
	ctx := context.Background()
	var apple, windows bytes.Buffer
	if err := b.ExportProfile(ctx, &apple, "u1", FormatApple, "pw"); err != nil {
		t.Fatal(err)
	}
	a, err := nativeclient.ReadApple(apple.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if a.RemoteAddress != "vpn.example" || a.IKE != profile.AppleIKEProposal || a.LocalIdentifier != "u1" {
		t.Errorf("Apple profile: %q %s %q", a.RemoteAddress, a.IKE, a.LocalIdentifier)
	}
	_, cert, _, err := pkcs12.DecodeChain(a.PKCS12, "pw")
	if err != nil || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "u1" || cert.Subject.CommonName != "u1" {
		t.Fatalf("the user's certificate: %v", err)
	}
	if err := b.ExportProfile(ctx, &windows, "u1", FormatWindows, "pw"); err != nil {
		t.Fatal(err)
	}
	if w, err := nativeclient.ReadWindows(windows.Bytes()); err != nil || w.Server != "vpn.example" || w.IKE != profile.WindowsIKEProposal {
		t.Errorf("Windows script: %v %+v", err, w)
	}
	if err := b.ExportProfile(ctx, io.Discard, "u1", FormatAndroid, "pw"); err != nil {
		t.Error(err)
	}
	if err := b.ExportProfile(ctx, io.Discard, "gw1", FormatApple, "pw"); !errors.Is(err, profile.ErrInvalid) {
		t.Errorf("a device's Apple profile: %v", err)
	}
	if err := b.ExportProfile(ctx, io.Discard, "u1", FormatWindows, ""); !errors.Is(err, profile.ErrInvalid) {
		t.Errorf("without a password: %v", err)
	}
}

// The server's certificate names the public address as Windows and Apple
// check it, and is issued again when the address changes.
func TestServerCertificateNamesPublicAddress(t *testing.T) {
	dir := t.TempDir()
	b := open(t, Config{DataDir: filepath.Join(dir, "data"), ConfigFile: writeYAML(t, dir, settingsYAML)})
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if err := b.keys.loadServerCert(ctx, "vpn.example", log); err != nil {
		t.Fatal(err)
	}
	leaf := b.keys.server.Leaf
	if leaf.VerifyHostname("vpn.example") != nil || leaf.Subject.CommonName != "remotegate broker" {
		t.Errorf("certificate for %v", leaf.DNSNames)
	}
	if err := b.keys.loadServerCert(ctx, "192.0.2.7", log); err != nil {
		t.Fatal(err)
	}
	leaf = b.keys.server.Leaf
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("192.0.2.7")) || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "192.0.2.7" {
		t.Errorf("certificate for %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if brokerIKEID(leaf).String() != "CN=remotegate broker" {
		t.Errorf("IKE identity %v", brokerIKEID(leaf))
	}
}
