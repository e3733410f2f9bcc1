package openvpn

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// openPeer and closePeer are the peer table's part of newSession and
// onClose.
func openPeer(srv *Server) *ServerSession {
	srv.mu.Lock()
	ss := &ServerSession{srv: srv, peerID: srv.allocPeerID()}
	srv.publishPeer(ss)
	srv.mu.Unlock()
	return ss
}

func closePeer(srv *Server, ss *ServerSession) {
	srv.mu.Lock()
	srv.releasePeer(ss)
	srv.mu.Unlock()
}

// TestPeerIDsLowestFree: a new session takes the lowest peer id free, as
// stock servers hand them out, and the data path finds it by that id.
func TestPeerIDsLowestFree(t *testing.T) {
	srv := &Server{}
	var all []*ServerSession
	for i := range 600 {
		ss := openPeer(srv)
		if ss.peerID != uint32(i) {
			t.Fatalf("session %d got peer id %d", i, ss.peerID)
		}
		all = append(all, ss)
	}
	for _, i := range []int{500, 3, 257} {
		closePeer(srv, all[i])
		if srv.peerByID(uint32(i)) != nil {
			t.Fatalf("peer id %d still found after its session closed", i)
		}
	}
	for _, want := range []uint32{3, 257, 500, 600} {
		ss := openPeer(srv)
		if ss.peerID != want {
			t.Fatalf("new session got peer id %d, want %d", ss.peerID, want)
		}
		if srv.peerByID(want) != ss {
			t.Fatalf("peer id %d does not find its session", want)
		}
	}
	// A closed session does not clear the id another session now holds.
	closePeer(srv, all[3])
	if srv.peerByID(3) == nil {
		t.Fatal("a stale close cleared the peer id of a newer session")
	}
	if srv.peerByID(1<<24-1) != nil || srv.peerByID(601) != nil {
		t.Fatal("an unused peer id found a session")
	}
}

func TestPeerByIDAllocs(t *testing.T) {
	srv := &Server{}
	for range 1000 {
		openPeer(srv)
	}
	var ss *ServerSession
	if n := testing.AllocsPerRun(1000, func() { ss = srv.peerByID(777) }); n != 0 || ss == nil {
		t.Fatalf("peerByID: %v allocations", n)
	}
}

// TestPeerTableConcurrent looks peer ids up, as the data path does without
// the server's lock, while sessions open and close (run with -race): a
// lookup finds nothing or the session that holds that id.
func TestPeerTableConcurrent(t *testing.T) {
	srv := &Server{}
	const n = 3000
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(1, 2))
			for !stop.Load() {
				id := r.Uint32N(n + 100)
				if ss := srv.peerByID(id); ss != nil && ss.peerID != id {
					t.Errorf("peer id %d found the session of %d", id, ss.peerID)
					return
				}
			}
		})
	}
	live := make([]*ServerSession, 0, n)
	r := rand.New(rand.NewPCG(3, 4))
	for range 30000 {
		if len(live) < n && (len(live) == 0 || r.IntN(2) == 0) {
			live = append(live, openPeer(srv))
			continue
		}
		i := r.IntN(len(live))
		closePeer(srv, live[i])
		live[i] = live[len(live)-1]
		live = live[:len(live)-1]
	}
	stop.Store(true)
	wg.Wait()
	for _, ss := range live {
		if srv.peerByID(ss.peerID) != ss {
			t.Fatalf("live session with peer id %d not found", ss.peerID)
		}
	}
}

// BenchmarkServerOpenClose is the peer table's cost of one session closing
// and another opening with N sessions connected, the oldest closing first:
// it must not grow with N.
func BenchmarkServerOpenClose(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			srv := &Server{}
			ring := make([]*ServerSession, n)
			for i := range ring {
				ring[i] = openPeer(srv)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				closePeer(srv, ring[i])
				ring[i] = openPeer(srv)
				i = (i + 1) % n
			}
		})
	}
}

// BenchmarkPeerByID is the data path's lookup of a packet's peer id.
func BenchmarkPeerByID(b *testing.B) {
	srv := &Server{}
	for range 10000 {
		openPeer(srv)
	}
	b.ReportAllocs()
	var id uint32
	for b.Loop() {
		_ = srv.peerByID(id % 10000)
		id += 7919
	}
}
