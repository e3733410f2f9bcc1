package ipsec

import "testing"

// As responder of a child rekey the session sends on the old child until
// the peer shows it has the new one; handOver then moves it over.
func TestHandOver(t *testing.T) {
	sa := &ikeSA{link: &link{}}
	sess := &session{link: sa.link}
	sa.session.Store(sess)
	old, next, other := &childSA{}, &childSA{}, &childSA{}
	next.replaces.Store(old)
	sa.children = []*childSA{next, other}

	sess.link.out.Store(old)
	sa.handOver(old)
	if sess.link.out.Load() != next || next.replaces.Load() != nil {
		t.Fatalf("after the old child went away the session sends on %p, want the new one %p", sess.link.out.Load(), next)
	}
	// A child without successor: nothing to send on.
	sess.link.out.Store(other)
	sa.handOver(other)
	if sess.link.out.Load() != nil {
		t.Fatalf("after its only child went away the session sends on %p", sess.link.out.Load())
	}
	// A rekeyed child that is not the one the session sends on changes
	// nothing.
	later := &childSA{}
	later.replaces.Store(other)
	sa.children = []*childSA{later}
	sess.link.out.Store(next)
	sa.handOver(other)
	if sess.link.out.Load() != next || later.replaces.Load() != nil {
		t.Fatalf("handing over from a child the session does not send on moved it to %p", sess.link.out.Load())
	}
}
