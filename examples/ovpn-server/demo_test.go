package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/remotegate/remotegate/openvpn/conffile"
)

// TestDemoFiles: the demo's client profile points at the demo server and
// carries its CA and tls-crypt key inline; both files read as configs of
// their kind. (internal/ovpninterop connects stock openvpn with them.)
func TestDemoFiles(t *testing.T) {
	dir := t.TempDir()
	sp, err := writeDemo(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := conffile.ParseFile(sp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ServerConfig(); err != nil {
		t.Fatalf("server.conf: %v", err)
	}
	cli, err := conffile.ParseFile(filepath.Join(dir, "client.ovpn"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ClientConfig(); err != nil {
		t.Fatalf("client.ovpn: %v", err)
	}
	if len(cli.Remotes) != 1 || cli.Remotes[0].Host != srv.Local || cli.Remotes[0].Port != srv.Port || cli.Proto != srv.Proto {
		t.Errorf("client remotes %+v proto %s; server at %s:%d %s", cli.Remotes, cli.Proto, srv.Local, srv.Port, srv.Proto)
	}
	if !bytes.Equal(cli.CA, srv.CA) || !bytes.Equal(cli.TLSCrypt, srv.TLSCrypt) || len(cli.Cert) == 0 || bytes.Equal(cli.Cert, srv.Cert) {
		t.Errorf("client.ovpn does not carry the server's CA and tls-crypt key and a certificate of its own")
	}
	if cli.RemoteCertTLS != "server" || !cli.Client || !cli.Nobind {
		t.Errorf("client.ovpn: remote-cert-tls %q client %v nobind %v", cli.RemoteCertTLS, cli.Client, cli.Nobind)
	}
}
