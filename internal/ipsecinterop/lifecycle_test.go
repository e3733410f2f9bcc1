package ipsecinterop

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
	"github.com/remotegate/remotegate/tunnel"
)

// Acceptance 3, liveness and teardown: dead peer detection in both
// directions, and DELETE from either side.

// The Go server's dead peer detection: strongSwan answers its checks
// while it lives; killed, it is declared dead within DPDInterval and the
// retransmissions.
func TestGoDPDDetectsDeadPeer(t *testing.T) {
	swaninterop.Require(t)
	t.Parallel()
	const (
		dpd   = 2 * time.Second
		rto   = 500 * time.Millisecond
		tries = 3
	)
	// Silent for dpd, then the check is sent tries times, waiting rto,
	// 1.8 rto, 3.24 rto; the server's timer runs every 250 ms, so each
	// step may come that much later.
	budget := dpd + rto + rto*18/10 + rto*324/100 + (tries+1)*250*time.Millisecond + time.Second
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	g, logTo := captureLog(t)
	r := startGoResponder(t, l, "", logTo, func(c *ipsec.Config) {
		c.DPDInterval, c.RetransmitTimeout, c.RetransmitTries = dpd, rto, tries
	})
	ini := initiate(t, l, l.InitiatorConn()) // strongSwan's own DPD: every 30 s
	waitUp(t, r.hub, 5*time.Second)

	// The checks run on a rekeyed IKE SA: new SPIs, message IDs from 0.
	if out, err := ini.Swanctl(15*time.Second, "--rekey", "--ike", swaninterop.ConnName); err != nil {
		t.Fatalf("swanctl --rekey --ike: %v\n%s", err, out)
	}
	ini.WaitLog(t, `IKE_SA `+swaninterop.ConnName+`\[2\] rekeyed between`, 5*time.Second)
	ini.WaitLog(t, `IKE_SA deleted`, 5*time.Second)

	// Alive and idle: the server checks, strongSwan answers.
	time.Sleep(3*dpd + time.Second)
	noEvents(t, r.hub, "while strongSwan lives")
	if n := countLog(ini.Log(), `generating INFORMATIONAL response \d+ \[ \]`); n < 2 {
		t.Errorf("strongSwan answered %d liveness checks of the Go server in %v, want at least 2", n, 3*dpd+time.Second)
	}

	ini.Process.Kill()
	took, cause := waitDown(t, r.hub, budget+5*time.Second)
	t.Logf("dead peer declared %v after the kill (budget %v)", took.Round(10*time.Millisecond), budget)
	if !errors.Is(cause, ipsec.ErrDeadPeer) {
		t.Errorf("Down with %v, want ErrDeadPeer", cause)
	}
	if took > budget {
		t.Errorf("dead peer declared %v after the kill, want at most %v", took, budget)
	}
	waitNoIKESAs(t, r.srv)
	if g.count(`msg="peer not responding"`) != 1 {
		t.Errorf("the Go server did not log the dead peer")
	}
}

// strongSwan's dead peer detection against the Go server: every check is
// answered, none retransmitted.
func TestStrongSwanDPDAnswered(t *testing.T) {
	swaninterop.Require(t, "ping")
	t.Parallel()
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	r := startGoResponder(t, l, "", func(c *ipsec.Config) { c.DPDInterval = -1 })
	conn := l.InitiatorConn()
	conn.DPDDelay = 2 * time.Second
	ini := initiate(t, l, conn)
	waitUp(t, r.hub, 5*time.Second)

	const idle = 10 * time.Second
	time.Sleep(idle)
	log := ini.Log()
	sent, answered := countLog(log, `sending DPD request`), countLog(log, `parsed INFORMATIONAL response \d+ \[ \]`)
	t.Logf("strongSwan sent %d DPD requests in %v, %d answered", sent, idle, answered)
	// The last request may be on its way when the log is read; a lost
	// answer would show as a retransmission below.
	if sent < 3 || answered < sent-1 {
		t.Errorf("strongSwan sent %d DPD requests in %v and got %d answers; want at least 3, all answered", sent, idle, answered)
	}
	for _, bad := range []string{"giving up", `retransmit \d+ of request`} {
		if countLog(log, bad) > 0 {
			t.Errorf("charon.log matches %q", bad)
		}
	}
	noEvents(t, r.hub, "during strongSwan's DPD")
	if got := l.I.Ping(t, l.Target(), 3); got != 3 {
		t.Errorf("%d of 3 pings answered after the DPD exchanges", got)
	}
}

// DELETE from either side: the other one removes the IKE SA and its
// child at once.
func TestDelete(t *testing.T) {
	swaninterop.Require(t)
	t.Parallel()

	t.Run("by-strongswan", func(t *testing.T) {
		l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
		r := startGoResponder(t, l, "")
		ini := initiate(t, l, l.InitiatorConn())
		waitUp(t, r.hub, 5*time.Second)

		out, err := ini.Swanctl(15*time.Second, "--terminate", "--ike", swaninterop.ConnName)
		if err != nil || !strings.Contains(out, "terminate completed successfully") {
			t.Fatalf("swanctl --terminate: %v\n%s", err, out)
		}
		took, cause := waitDown(t, r.hub, 2*time.Second)
		if !errors.Is(cause, ipsec.ErrDeleted) {
			t.Errorf("Down with %v, want ErrDeleted", cause)
		}
		t.Logf("Down %v after swanctl --terminate returned", took.Round(time.Millisecond))
		// strongSwan got the answer to its DELETE.
		ini.WaitLog(t, `IKE_SA deleted`, 2*time.Second)
		if sas := ini.ListSAs(t); len(ikeSAs(sas)) != 0 {
			t.Errorf("strongSwan still lists SAs:\n%s", sas)
		}
		waitNoIKESAs(t, r.srv)
	})

	t.Run("by-go", func(t *testing.T) {
		l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
		r := startGoResponder(t, l, "")
		ini := initiate(t, l, l.InitiatorConn())
		sess := waitUp(t, r.hub, 5*time.Second)

		byTest := errors.New("closed by the test")
		if err := sess.Close(byTest); err != nil {
			t.Fatalf("Close: %v", err)
		}
		_, cause := waitDown(t, r.hub, 2*time.Second)
		if !errors.Is(cause, byTest) {
			t.Errorf("Down with %v, want the cause given to Close", cause)
		}
		ini.WaitLog(t, `received DELETE for IKE_SA `+swaninterop.ConnName+`\[\d+\]`, 5*time.Second)
		ini.WaitLog(t, `IKE_SA `+swaninterop.ConnName+`\[\d+\] state change: \S+ => DESTROYING`, 5*time.Second)
		if sas := ini.ListSAs(t); len(ikeSAs(sas)) != 0 {
			t.Errorf("strongSwan still lists SAs:\n%s", sas)
		}
		waitNoIKESAs(t, r.srv)
		buf := make([]byte, tunnel.Headroom+20, tunnel.Headroom+20+tunnel.Tailroom)
		if _, err := sess.Send([][]byte{buf}, tunnel.Headroom); !errors.Is(err, ipsec.ErrClosed) {
			t.Errorf("Send on the closed session: %v, want ErrClosed", err)
		}
	})
}

// waitNoIKESAs waits until srv holds no IKE SA. The Handler hears of a
// tunnel that went down from a goroutine of its own, which may run before
// the server has dropped the IKE SA.
func waitNoIKESAs(t *testing.T, srv *ipsec.Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().IKESAs != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.Stats().IKESAs; n != 0 {
		t.Errorf("the Go server still holds %d IKE SAs", n)
	}
}
