package ipsec

import (
	"context"
	"errors"
	"testing"
)

// An initiator that names the responder identity it wants (IDr in its
// IKE_AUTH request, as Apple's client sends its RemoteIdentifier and the
// strongSwan app the server address) gets that identity back when the
// server's certificate carries it, even though LocalID is another one of
// the certificate's identities; one the certificate does not carry gets
// LocalID, which the initiator then refuses.
func TestResponderAnswersRequestedIdentity(t *testing.T) {
	scfg, dcfg := certPair(t)
	scfg.LocalID = ID{Type: IDDN, Value: scfg.Certificate[0].RawSubject}
	_, addr := testServer(t, scfg, newEchoHandler())

	c, err := Dial(context.Background(), loopbackConn(t), addr, dcfg)
	if err != nil {
		t.Fatalf("Dial asking for %v: %v", dcfg.RemoteID, err)
	}
	if !c.RemoteID().Equal(FQDN("responder.test")) {
		t.Errorf("responder authenticated as %v, want responder.test", c.RemoteID())
	}
	c.Close()

	d := *dcfg
	d.RemoteID = ID{}
	c, err = Dial(context.Background(), loopbackConn(t), addr, &d)
	if err != nil {
		t.Fatalf("Dial without IDr: %v", err)
	}
	if !c.RemoteID().Equal(scfg.LocalID) {
		t.Errorf("without IDr the responder authenticated as %v, want LocalID %v", c.RemoteID(), scfg.LocalID)
	}
	c.Close()

	d.RemoteID = FQDN("other.test")
	if c, err := Dial(context.Background(), loopbackConn(t), addr, &d); !errors.Is(err, ErrAuthentication) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial asking for an identity the certificate lacks: %v, want ErrAuthentication", err)
	}
}
