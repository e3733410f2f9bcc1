package datachannel

import (
	"bytes"
	"crypto"
	"errors"
	"testing"
)

// A legacy AES-256-CBC + HMAC-SHA1 P_DATA_V2 packet from stock openvpn
// 2.6.14 (server to client, peer id 0, "data-ciphers AES-256-CBC", "auth
// SHA1", EKM keys), captured on loopback; the keys are the client's
// "Incoming Data Channel: CIPHER KEY / HMAC KEY" lines at verb 7.
const (
	cbcVecKey    = "981c7866c966f8b29b46b48e6588f11cd347f09dc228547d0f38f61cb0a965d6"
	cbcVecHMAC   = "f0b1cdd4ff689997123e6e6c59e6d9171718e446"
	cbcVecPacket = "48000000b7d38715cb8f7a7548cce0c428f533a4d355b8955ccf9ca6e71694fde1203d5184a18fe759eca7f0b5b1dc83e8588d6f30a2f425300408223460e74b8979f4adc8c5c34547c9c18644f92ca7b63f738789f779d2e8289fda256e6fc156a1a58afde3cfad"
)

func TestKnownAnswerCBC(t *testing.T) {
	kb := new(KeyBlock)
	copy(kb[128:], unhex(t, cbcVecKey))
	copy(kb[192:], unhex(t, cbcVecHMAC))
	k, err := NewKey(KeyConfig{Cipher: AES256CBC, Auth: crypto.SHA1, Block: kb})
	if err != nil {
		t.Fatal(err)
	}
	pkt := unhex(t, cbcVecPacket)
	plain, err := k.Open(pkt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// An IPv6 packet from the server's tun (48 bytes: 40 header + 8).
	if len(plain) != 48 || plain[0]>>4 != 6 || int(plain[4])<<8|int(plain[5]) != len(plain)-40 {
		t.Fatalf("plaintext %x", plain)
	}
	if _, err := k.Open(unhex(t, cbcVecPacket)); !errors.Is(err, ErrReplay) {
		t.Fatalf("second Open: %v", err)
	}
	// Our sealing side produces what the stock receiver expects: the server
	// key with the same slots seals, the client key opens.
	srv, err := NewKey(KeyConfig{Cipher: AES256CBC, Block: kb, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := NewKey(KeyConfig{Cipher: AES256CBC, Block: kb})
	if err != nil {
		t.Fatal(err)
	}
	sealed := seal(t, srv, plain, 0)
	if len(sealed) != len(pkt) || !bytes.Equal(sealed[:4], pkt[:4]) {
		t.Fatalf("sealed %d bytes %x, stock sent %d", len(sealed), sealed[:4], len(pkt))
	}
	if got, err := fresh.Open(sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("reopen: %v", err)
	}
}
