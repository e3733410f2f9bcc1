package datachannel

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

func TestPRFKnownAnswer(t *testing.T) {
	pm := make([]byte, 48)
	for i := range pm {
		pm[i] = byte(i)
	}
	r := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	kb, err := PRFKeyBlock(pm, r(1), r(2), r(3), r(4), [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, [8]byte{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8})
	if err != nil {
		t.Fatal(err)
	}
	// Computed independently with Python 3's hmac/hashlib from RFC 2246
	// section 5 (P_MD5(S1) xor P_SHA1(S2), secret split in halves):
	//   master = PRF(pm, "OpenVPN master secret", r1c‖r1s)[:48]
	//   block  = PRF(master, "OpenVPN key expansion", r2c‖r2s‖csid‖ssid)[:256]
	want := "57ef2d71f6036be8277bebf8268e68800ba0ffd4f642ecfb68371c0f630cb854cd9d38b336d61e6f52a72dbc7be6db6a861e52ad50ab9e5cf371737cd8fef5fe49befa7307b5c5243904d8d9eab2a866571cda1a7ecc4117fd0f1ba7e6c5d3f1a85da797e53eaecaf4a373118575f0e7d319d652785ce4796d88a135d71f852ba5c98c50fe220e97d67668e9cf6f2058e80155f4dba0d94fbaf9841b36dd5aa08d8e85225972220771052aa93fa939a672e2e75df8eca70bdba85bd721a6b48d9ee81a24116d2600db578b981a6d1508fe6fe82f3949b7256ed4e76287377e9cc96a9aac186c0fa756bb158989cc57c6b4e9271565139f8f4a9d876bb1bf9743"
	if hex.EncodeToString(kb[:]) != want {
		t.Fatalf("PRF block\n%x", kb[:])
	}
	// Swapping the session ids must change the block (they are in the seed).
	kb2, err := PRFKeyBlock(pm, r(1), r(2), r(3), r(4), [8]byte{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8}, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil || *kb2 == *kb {
		t.Fatalf("session ids ignored: %v", err)
	}
	for _, bad := range [][]byte{nil, pm[:47], append(pm, 0)} {
		if _, err := PRFKeyBlock(bad, r(1), r(2), r(3), r(4), [8]byte{}, [8]byte{}); !errors.Is(err, ErrKeyMaterial) {
			t.Fatalf("pre-master of %d bytes: %v", len(bad), err)
		}
	}
	if _, err := PRFKeyBlock(pm, r(1)[:31], r(2), r(3), r(4), [8]byte{}, [8]byte{}); !errors.Is(err, ErrKeyMaterial) {
		t.Fatalf("short random: %v", err)
	}
}

func TestExportKeyBlockArguments(t *testing.T) {
	var gotLabel string
	var gotContextNil bool
	var gotLen int
	kb, err := ExportKeyBlock(func(label string, context []byte, length int) ([]byte, error) {
		gotLabel, gotContextNil, gotLen = label, context == nil, length
		return bytes.Repeat([]byte{7}, length), nil
	})
	if err != nil || gotLabel != "EXPORTER-OpenVPN-datakeys" || !gotContextNil || gotLen != 256 || kb[255] != 7 {
		t.Fatalf("export called with %q nil=%v %d: %v", gotLabel, gotContextNil, gotLen, err)
	}
	sentinel := errors.New("no EMS")
	if _, err := ExportKeyBlock(func(string, []byte, int) ([]byte, error) { return nil, sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("export error not wrapped: %v", err)
	}
	if _, err := ExportKeyBlock(func(string, []byte, int) ([]byte, error) { return make([]byte, 10), nil }); !errors.Is(err, ErrKeyMaterial) {
		t.Fatalf("short export: %v", err)
	}
}

func TestExportKeyBlockOverTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "s"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		a, b := net.Pipe()
		srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: v})
		cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true, MaxVersion: v})
		errc := make(chan error, 1)
		go func() { errc <- srv.HandshakeContext(context.Background()) }()
		if err := cli.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		cs, ss := cli.ConnectionState(), srv.ConnectionState()
		if cs.Version != v {
			t.Fatalf("negotiated %x, want %x", cs.Version, v)
		}
		kc, err := ExportKeyBlock(cs.ExportKeyingMaterial)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := ExportKeyBlock(ss.ExportKeyingMaterial)
		if err != nil || *kc != *ks || *kc == (KeyBlock{}) {
			t.Fatalf("TLS %x: blocks differ or %v", v, err)
		}
		for _, c := range allCiphers {
			ck, err := NewKey(KeyConfig{Cipher: c, Block: kc})
			if err != nil {
				t.Fatal(err)
			}
			sk, err := NewKey(KeyConfig{Cipher: c, Block: ks, Server: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if got, err := sk.Open(seal(t, ck, []byte("hello"), 0)); err != nil || string(got) != "hello" {
					t.Fatalf("TLS %x %v: c2s open %q %v", v, c, got, err)
				}
				if got, err := ck.Open(seal(t, sk, []byte("olleh"), NoPeerID)); err != nil || string(got) != "olleh" {
					t.Fatalf("TLS %x %v: s2c open %q %v", v, c, got, err)
				}
			}
		}
		a.Close()
		b.Close()
	}
}
