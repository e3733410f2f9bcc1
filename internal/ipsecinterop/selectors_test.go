package ipsecinterop

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
)

// Acceptance 2: road warrior with a virtual IP from the configuration
// payload, and site to site with a LAN on each side; the traffic selectors
// are narrowed correctly.

// checkSelectors compares the selectors of strongSwan's installed child
// and those the Go server logged for it.
func checkSelectors(t *testing.T, ini *swaninterop.Charon, child string, g *goLog, local, remote string) {
	t.Helper()
	c := ini.Counters(t, child)
	if c.LocalTS != local || c.RemoteTS != remote {
		t.Errorf("strongSwan installed %s === %s, want %s === %s\n%s", c.LocalTS, c.RemoteTS, local, remote, ini.ListSAs(t))
	}
	// The Go side logs its own view: its selectors first.
	if want := `ts="` + remote + " === " + local + `"`; !strings.Contains(g.String(), want) {
		t.Errorf("the Go server did not log a CHILD_SA with %s", want)
	}
}

// The road warrior proposes 0.0.0.0/0 for itself (it does not know its
// address yet) and a /16 for the other side; it must get its virtual IP
// /32 and the /24 the hub routes.
func TestRoadWarriorSelectorsNarrowed(t *testing.T) {
	swaninterop.Require(t, "ping")
	t.Parallel()
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	g, logTo := captureLog(t)
	r := startGoResponder(t, l, "", logTo)
	conn := l.InitiatorConn()
	conn.RemoteTS = "10.232.0.0/16"
	ini := initiate(t, l, conn)
	waitUp(t, r.hub, 5*time.Second)

	log := ini.Log()
	for _, re := range []string{
		`proposing traffic selectors for us:\n\S+ \S+ +0\.0\.0\.0/0\n`,
		`proposing traffic selectors for other:\n\S+ \S+ +10\.232\.0\.0/16\n`,
		`installing new virtual IP ` + swaninterop.FirstVIP.String(),
	} {
		if countLog(log, re) == 0 {
			t.Errorf("charon.log does not match %q", re)
		}
	}
	checkSelectors(t, ini, swaninterop.ChildName, g, swaninterop.FirstVIP.String()+"/32", "10.232.0.0/24")
	if got := pingFrom(t, l.I, swaninterop.FirstVIP, l.Target(), 3); got != 3 {
		t.Fatalf("%d of 3 pings answered", got)
	}
	if st := r.srv.Stats(); st.ESPDropped != 0 {
		t.Errorf("the Go server dropped %d ESP packets", st.ESPDropped)
	}
}

// Site to site: InitiatorNet (I's lo) and ResponderNet (R's lo) reach
// each other both ways, with exactly those selectors on both sides.
func TestSiteToSite(t *testing.T) {
	swaninterop.Require(t, "ping")
	t.Parallel()
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.SiteToSite, KeyType: swaninterop.ECDSAP256})
	g, logTo := captureLog(t)
	r := startGoResponder(t, l, "", logTo)
	ini := initiate(t, l, l.InitiatorConn())
	waitUp(t, r.hub, 5*time.Second)

	iLAN, rLAN := swaninterop.InitiatorNet.Addr(), swaninterop.ResponderNet.Addr()
	if got := pingFrom(t, l.I, iLAN, rLAN, 3); got != 3 {
		t.Errorf("%d of 3 pings %s -> %s answered", got, iLAN, rLAN)
	}
	if got := pingFrom(t, l.R, rLAN, iLAN, 3); got != 3 {
		t.Errorf("%d of 3 pings %s -> %s answered", got, rLAN, iLAN)
	}
	checkSelectors(t, ini, swaninterop.ChildName, g, "10.240.0.0/24", "10.232.0.0/24")
	if c := ini.Counters(t, swaninterop.ChildName); c.PacketsIn < 6 || c.PacketsOut < 6 {
		t.Errorf("strongSwan's child carried %d packets in, %d out; want at least 6 each (two pings of 3)", c.PacketsIn, c.PacketsOut)
	}
	if st := r.srv.Stats(); st.ESPDropped != 0 {
		t.Errorf("the Go server dropped %d ESP packets", st.ESPDropped)
	}
	noEvents(t, r.hub, "after the pings")
}

// Narrowing in site-to-site mode: a proposal wider than the networks the
// hub allows is cut to them (strongSwan accepts that as initiator); one
// outside them is refused with TS_UNACCEPTABLE, in IKE_AUTH and in
// CREATE_CHILD_SA alike, and the IKE SA stays.
func TestSiteToSiteNarrowing(t *testing.T) {
	swaninterop.Require(t, "ping")
	t.Parallel()

	t.Run("wider", func(t *testing.T) {
		l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.SiteToSite, KeyType: swaninterop.ECDSAP256})
		g, logTo := captureLog(t)
		r := startGoResponder(t, l, "", logTo)
		conn := l.InitiatorConn()
		conn.LocalTS, conn.RemoteTS = "10.240.0.0/16", "10.232.0.0/16"
		ini := initiate(t, l, conn)
		waitUp(t, r.hub, 5*time.Second)
		checkSelectors(t, ini, swaninterop.ChildName, g, "10.240.0.0/24", "10.232.0.0/24")
		if got := pingFrom(t, l.I, swaninterop.InitiatorNet.Addr(), l.Target(), 3); got != 3 {
			t.Errorf("%d of 3 pings answered", got)
		}
	})

	t.Run("outside", func(t *testing.T) {
		l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.SiteToSite, KeyType: swaninterop.ECDSAP256})
		g, logTo := captureLog(t)
		r := startGoResponder(t, l, "", logTo)
		good := l.InitiatorConn()
		bad := good
		bad.Child, bad.LocalTS = "bad", "10.250.0.0/24"
		ini := swaninterop.Start(t, l.I, swaninterop.Options{})
		ini.InstallCA(t, l.CA)
		ini.InstallLeaf(t, "ini", l.InitiatorLeaf)
		ini.Load(t, withChild(good.String(), bad))

		// The first child, in IKE_AUTH, is refused; the IKE SA is kept.
		err := ini.Initiate(t, "bad")
		if !errors.Is(err, swaninterop.ErrInitiate) {
			t.Fatalf("initiating child bad (10.250.0.0/24): %v, want a failure", err)
		}
		ini.WaitLog(t, `received TS_UNACCEPTABLE notify, no CHILD_SA built`, 5*time.Second)
		ini.WaitLog(t, `failed to establish CHILD_SA, keeping IKE_SA`, 5*time.Second)
		sess := waitUp(t, r.hub, 5*time.Second)
		sas := ini.ListSAs(t)
		if ikes := ikeSAs(sas); len(ikes) != 1 || !strings.Contains(ikes[0], "ESTABLISHED") || strings.Contains(sas, "INSTALLED") {
			t.Fatalf("after the refused child, want one IKE SA without children:\n%s", sas)
		}
		if g.count(`msg="CHILD_SA refused: traffic selectors".*initiator=10\.250\.0\.0/24`) != 1 {
			t.Errorf("the Go server did not log the refusal of 10.250.0.0/24")
		}

		// A good child on the same IKE SA (CREATE_CHILD_SA) comes up.
		if err := ini.Initiate(t, swaninterop.ChildName); err != nil {
			t.Fatalf("second child on the kept IKE SA: %v", err)
		}
		checkSelectors(t, ini, swaninterop.ChildName, g, "10.240.0.0/24", "10.232.0.0/24")
		if got := pingFrom(t, l.I, swaninterop.InitiatorNet.Addr(), l.Target(), 3); got != 3 {
			t.Errorf("%d of 3 pings answered", got)
		}

		// The bad one again, now in CREATE_CHILD_SA: refused, and nothing
		// else changes.
		if err := ini.Initiate(t, "bad"); !errors.Is(err, swaninterop.ErrInitiate) {
			t.Fatalf("initiating child bad again: %v, want a failure", err)
		}
		if n := countLog(ini.Log(), `received TS_UNACCEPTABLE notify, no CHILD_SA built`); n != 2 {
			t.Errorf("strongSwan logged TS_UNACCEPTABLE %d times, want 2", n)
		}
		if g.count(`msg="CHILD_SA refused: traffic selectors".*initiator=10\.250\.0\.0/24`) != 2 {
			t.Errorf("the Go server did not log the second refusal of 10.250.0.0/24")
		}
		sas = ini.ListSAs(t)
		if ikes := ikeSAs(sas); len(ikes) != 1 || !strings.Contains(ikes[0], "ESTABLISHED") {
			t.Fatalf("want the IKE SA still established:\n%s", sas)
		}
		if got := pingFrom(t, l.I, swaninterop.InitiatorNet.Addr(), l.Target(), 3); got != 3 {
			t.Errorf("%d of 3 pings answered after the second refusal", got)
		}
		noEvents(t, r.hub, "after the refusals")
		if sess.Remote() != netip.AddrPortFrom(swaninterop.InitiatorAddr.Addr(), 4500) {
			t.Errorf("session remote %v", sess.Remote())
		}
	})
}
