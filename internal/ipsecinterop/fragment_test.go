package ipsecinterop

import (
	"regexp"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
)

// IKE fragmentation (RFC 7383) with strongSwan: with RSA-2048 certificates
// both IKE_AUTH messages exceed strongSwan's fragment_size (1280 bytes of
// IP, 1248 of IKE on port 4500), so each side splits its own and
// reassembles the other's; the tunnel then carries pings.

// fragmentedLogs checks a charon.log for both directions: strongSwan
// split its IKE_AUTH message (logged as "splitting IKE message" and, in
// the message summary, EF(1/n)) and reassembled ours ("received fragment
// #i of n").
func fragmentedLogs(t *testing.T, log string) {
	t.Helper()
	for _, ln := range regexp.MustCompile(`(?m)^.*(fragment|EF\().*$`).FindAllString(log, -1) {
		t.Log(ln)
	}
	if countLog(log, `splitting IKE message|generating IKE_AUTH (request|response) 1 \[ EF\(1/`) == 0 {
		t.Errorf("strongSwan did not send its IKE_AUTH in fragments:\n%s", log)
	}
	if countLog(log, `received fragment #\d+ of \d+, reassembled fragmented IKE message`) == 0 {
		t.Errorf("strongSwan did not reassemble a fragmented IKE_AUTH of ours:\n%s", log)
	}
}

func TestFragmentationStrongSwanInitiator(t *testing.T) {
	swaninterop.Require(t, "ping")
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.RSA2048})
	r := startGoResponder(t, l, "")
	conn := l.InitiatorConn()
	// strongSwan's default, spelled out: the test is about it.
	conn.Extra = append(conn.Extra, "fragmentation = yes")
	ini := initiate(t, l, conn)
	waitUp(t, r.hub, 5*time.Second)
	if got := l.I.Ping(t, l.Target(), 3); got != 3 {
		t.Fatalf("%d of 3 pings through the tunnel answered\n%s", got, ini.ListSAs(t))
	}
	fragmentedLogs(t, ini.Log())
}

func TestFragmentationStrongSwanResponder(t *testing.T) {
	swaninterop.Require(t, "ping")
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.RSA2048})
	resp := swaninterop.Start(t, l.R, swaninterop.Options{})
	resp.InstallCA(t, l.CA)
	resp.InstallLeaf(t, "resp", l.ResponderLeaf)
	conn := l.ResponderConn()
	conn.Extra = append(conn.Extra, "fragmentation = yes")
	resp.Load(t, conn.String())
	g := dialFromI(t, l, initiatorConfig(t, l), 4500)
	if got := l.I.Ping(t, l.Target(), 3); got != 3 {
		t.Fatalf("%d of 3 pings through the tunnel answered\n%s", got, resp.ListSAs(t))
	}
	if err := g.c.Err(); err != nil {
		t.Fatalf("the Client ended: %v", err)
	}
	fragmentedLogs(t, resp.Log())
}
