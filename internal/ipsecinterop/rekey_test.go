package ipsecinterop

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
)

// Acceptance 3, rekeying: strongSwan rekeys the CHILD_SA and the IKE_SA
// every rekey_time during an iperf3 run; the throughput has no gap over
// 1 s and the Go server keeps one session throughout.
//
// The IKE_SA and the CHILD_SA must not fall due for a rekey at the same
// moment. charon 5.9 starts a child rekey from a one-shot job (libipsec's
// soft expiry) that notes which IKE_SA holds the child, waits for that
// IKE_SA and looks for the child in it; when charon is completing an
// IKE_SA rekey meanwhile, which moves the children to the new IKE_SA, the
// child is not found ("CHILD_SA ESP/0x... not found for rekey"), the job
// is dropped and the child runs to its hard lifetime, after which charon
// creates a new one rather than a rekeyed one. Our responder answers at
// once, so with equal rekey times and no jitter the IKE rekey completes
// just as the child's job runs, and on a busy machine the job loses that
// race now and then (in about one run in ten): then strongSwan did no
// child rekey at all in the 25 s that this test used to run, while the
// IKE_SA went on rekeying.
//
// The traffic runs until strongSwan has done the rekeys, not for a fixed
// time: each rekey is due rekey_time after the SA it replaces was
// installed, so every IKE message lost on the way (strongSwan retransmits
// after 4 s, then 7.2 s later) pushes it and all later ones back. With -R
// the Go server's ESP keeps charon's UDP 4500 socket in I full, and the
// IKE responses that arrive there are dropped now and then, more often on
// a busy machine; a response lost twice delays its rekey, and every later
// one, by 11.2 s.

// iperfInterval is the reporting interval of the rekey runs, passed to
// iperf3 after the harness's own "-i 0.5" (the last one wins): fine
// enough that a gap of over 1 s shows as more than 10 intervals in a row.
const iperfInterval = 100 * time.Millisecond

// longestGap is the longest run of consecutive intervals whose throughput
// is below a tenth of the median, and the median.
func longestGap(intervals []float64, interval time.Duration) (gap time.Duration, median float64) {
	s := slices.Clone(intervals)
	slices.Sort(s)
	median = s[len(s)/2]
	run := 0
	for _, v := range intervals {
		if v < median/10 {
			run++
			gap = max(gap, time.Duration(run)*interval)
		} else {
			run = 0
		}
	}
	return gap, median
}

func TestRekeyUnderLoad(t *testing.T) {
	swaninterop.Require(t, "iperf3")
	type tc struct {
		name    string
		esp     string // the child proposal: with a DH group, every child rekey has a KE exchange (PFS)
		reverse bool   // iperf3 -R: the Go server sends, strongSwan receives
		// defaults leaves strongSwan's jitter and hard lifetimes as they
		// are (rekey after 90-100 % of rekey_time, expiry at 110 %): then
		// a single lost rekey request lets the child expire first.
		defaults bool
		// rekey is the CHILD_SA's rekey_time, ikeRekey the IKE_SA's.
		// Without jitter they differ (see above), and by more than a
		// retransmission shifts them by: 8 s and 11 s, started together,
		// only come due together again after 44 s or more.
		rekey, ikeRekey time.Duration
		minTimes        int // of each rekey
	}
	cases := []tc{
		{name: "no-pfs", esp: "aes256gcm16", rekey: 20 * time.Second, ikeRekey: 20 * time.Second, minTimes: 2, defaults: true},
		{name: "pfs-reverse", esp: "aes256gcm16-ecp256", reverse: true, rekey: 8 * time.Second, ikeRekey: 11 * time.Second, minTimes: 2},
	}
	if testing.Short() {
		cases[0].rekey, cases[0].ikeRekey, cases[0].defaults = 8*time.Second, 11*time.Second, false
		cases[1].rekey = 6 * time.Second
		cases[1].minTimes = 1
	}
	// The margin between rekey and expiry when the defaults are not
	// kept (see below).
	const margin = 20 * time.Second
	// settle is how long the traffic goes on after the last awaited
	// rekey, over strongSwan's delete of the old child and the Go
	// server's move to the new one.
	const settle = 3 * time.Second
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
			g, logTo := captureLog(t)
			r := startGoResponder(t, l, "", logTo)
			conn := l.InitiatorConn()
			conn.ESPProposals = []string{c.esp}
			conn.RekeyTime, conn.ChildRekeyTime = c.ikeRekey, c.rekey
			if !c.defaults {
				// No jitter, so that the rekeys happen at rekey_time, and
				// the hard limits 20 s later. (With rand_time 0 alone
				// strongSwan takes life_time = rekey_time and lets the SAs
				// expire at the moment it rekeys them.) The margin covers
				// IKE messages lost under iperf3 load, which strongSwan
				// retransmits after 4 s, then 7.2 s: lost in the R->I
				// direction in charon's own socket in I (about one
				// datagram in seven with its default buffer), or in the
				// I->R direction in the Go server's socket when that is
				// too small (see ipsec.Config.ReadBuffer).
				conn.Extra = []string{"rand_time = 0s", fmt.Sprintf("over_time = %ds", int(margin.Seconds()))}
				conn.ChildExtra = []string{"rand_time = 0s", fmt.Sprintf("life_time = %ds", int((c.rekey + margin).Seconds()))}
			}
			ini := initiate(t, l, conn)
			sess := waitUp(t, r.hub, 5*time.Second)

			args := []string{"-i", fmt.Sprintf("%.1f", iperfInterval.Seconds())}
			if c.reverse {
				args = append(args, "-R")
			}
			// Traffic until strongSwan has done each rekey at least
			// minTimes. The limit only bounds a failing run: each rekey is
			// due rekey_time after the one before, and when it comes more
			// than the margin later than that, its SA has expired anyway.
			const childRekeyed, ikeRekeyed = `CHILD_SA net\{\d+\} state change: REKEYING => REKEYED`, `IKE_SA lab\[\d+\] rekeyed between`
			rekeyed := func() bool {
				log := ini.Log()
				return countLog(log, childRekeyed) >= c.minTimes && countLog(log, ikeRekeyed) >= c.minTimes
			}
			limit := time.Duration(c.minTimes)*(max(c.rekey, c.ikeRekey)+margin) + 10*time.Second
			res := l.ThroughputUntil(t, limit, settle, rekeyed, map[string]swaninterop.CPUMeter{"charon": ini, "go": swaninterop.SelfCPU}, args...)
			// iperf3 must have reported throughout: a gap is measured in
			// its intervals (on a busy machine they come out a little
			// longer than asked, fewer of them: measured with their real
			// length).
			if covered := time.Duration(len(res.Intervals)) * res.Interval; covered < res.Wall/2 {
				t.Fatalf("iperf3 reported %d intervals of %v over a run of %v: it stopped early", len(res.Intervals), res.Interval, res.Wall)
			}
			interval := res.Interval
			gap, median := longestGap(res.Intervals, interval)
			var dips []string
			for i, v := range res.Intervals {
				if v < median/10 {
					dips = append(dips, fmt.Sprintf("%.1fs", float64(i)*interval.Seconds()))
				}
			}
			st := r.srv.Stats()
			t.Logf("%d intervals of %v, median %.0f Mbit/s, lowest %.0f Mbit/s, longest stretch below a tenth of the median %v (intervals starting at %v); Go server dropped %d ESP packets of unknown SPIs, %d others",
				len(res.Intervals), interval.Round(time.Millisecond), median/1e6, slices.Min(res.Intervals)/1e6, gap.Round(time.Millisecond), dips, st.UnknownSPI, st.ESPDropped)
			if gap > time.Second {
				t.Errorf("throughput below %.0f Mbit/s for %v: a gap over 1 s", median/10/1e6, gap)
			}

			log := ini.Log()
			childRekeys, ikeRekeys := countLog(log, childRekeyed), countLog(log, ikeRekeyed)
			t.Logf("strongSwan: %d CHILD_SA rekeys, %d IKE_SA rekeys, %d retransmits; Go server: %d and %d",
				childRekeys, ikeRekeys, countLog(log, `retransmit \d+ of request`), g.count(`msg="CHILD_SA rekeyed"`), g.count(`msg="IKE SA rekeyed"`))
			if childRekeys < c.minTimes || ikeRekeys < c.minTimes {
				t.Errorf("strongSwan rekeyed the CHILD_SA %d times and the IKE_SA %d times in %v, want at least %d each", childRekeys, ikeRekeys, res.Wall.Round(time.Second), c.minTimes)
			}
			// The Go server logs a rekey when it answers, strongSwan when it
			// has the answer: one may be under way as the run ends.
			if gc, gi := g.count(`msg="CHILD_SA rekeyed"`), g.count(`msg="IKE SA rekeyed"`); gc < childRekeys || gc > childRekeys+1 || gi < ikeRekeys || gi > ikeRekeys+1 {
				t.Errorf("the Go server logged %d CHILD_SA and %d IKE SA rekeys, strongSwan %d and %d", gc, gi, childRekeys, ikeRekeys)
			}
			if c.esp == "aes256gcm16-ecp256" {
				if n, all := g.count(`msg="CHILD_SA rekeyed".*proposal=aes256gcm16-ecp256`), g.count(`msg="CHILD_SA rekeyed"`); n != all {
					t.Errorf("%d of %d child rekeys with PFS (ECP-256)", n, all)
				}
			}
			// A child that expired, its rekey lost (as above) or too late,
			// was replaced by a new one, not rekeyed: the run waited for
			// later rekeys instead.
			for _, bad := range []string{"giving up", "failed to establish", "CHILD_SA_NOT_FOUND", "received .* notify error", "not found for rekey", "closing expired CHILD_SA"} {
				if n := countLog(log, bad); n > 0 {
					t.Errorf("charon.log has %d lines matching %q", n, bad)
				}
			}
			if n := g.count(`msg="CHILD_SA established"`); n != 1 {
				t.Errorf("the Go server logged %d new CHILD_SAs, want 1: every later one rekeyed the one before", n)
			}
			// One session throughout: Up once (above), Down never.
			noEvents(t, r.hub, "during the rekeys")
			// The old SAs are gone once strongSwan deleted them.
			deadline := time.Now().Add(5 * time.Second)
			for r.srv.Stats().IKESAs != 1 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if n := r.srv.Stats().IKESAs; n != 1 {
				t.Errorf("the Go server holds %d IKE SAs after the rekeys, want 1", n)
			}
			if got := l.I.Ping(t, l.Target(), 3); got != 3 {
				t.Errorf("%d of 3 pings answered after the rekeys", got)
			}
			noEvents(t, r.hub, "after the rekeys")
			if sess.Remote().Port() != 4500 {
				t.Errorf("session remote %v", sess.Remote())
			}
		})
	}
}

// A child rekey whose answer reaches strongSwan late, as when the first
// answer is lost and the retransmission answered seconds later: strongSwan
// installs the new SA only then, so the Go server must keep sending on the
// old one until it sees that strongSwan has the new one. charon's
// receive_delay holds back every CREATE_CHILD_SA response (exchange 36)
// for 3 s.
func TestChildRekeyAnsweredLate(t *testing.T) {
	swaninterop.Require(t, "iperf3")
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	g, logTo := captureLog(t)
	r := startGoResponder(t, l, "", logTo)
	ini := swaninterop.Start(t, l.I, swaninterop.Options{Settings: "receive_delay = 3000\nreceive_delay_type = 36\nreceive_delay_request = no\nreceive_delay_response = yes"})
	ini.InstallCA(t, l.CA)
	ini.InstallLeaf(t, "ini", l.InitiatorLeaf)
	conn := l.InitiatorConn()
	conn.ESPProposals = []string{"aes256gcm16"}
	ini.Load(t, conn.String())
	if err := ini.Initiate(t, swaninterop.ChildName); err != nil {
		t.Fatal(err)
	}
	waitUp(t, r.hub, 5*time.Second)

	rekeyed := make(chan struct{})
	go func() {
		defer close(rekeyed)
		time.Sleep(2 * time.Second)
		if out, err := ini.Swanctl(15*time.Second, "--rekey", "--child", swaninterop.ChildName); err != nil {
			t.Errorf("swanctl --rekey --child: %v\n%s", err, out)
		}
	}()
	// The Go server sends (R->I), strongSwan only acknowledges.
	res := l.Throughput(t, 8*time.Second, nil, "-R", "-i", fmt.Sprintf("%.1f", iperfInterval.Seconds()))
	<-rekeyed
	gap, median := longestGap(res.Intervals, iperfInterval)
	t.Logf("median %.0f Mbit/s, longest stretch below a tenth of it %v", median/1e6, gap)
	if gap > time.Second {
		t.Errorf("throughput below %.0f Mbit/s for %v around the rekey", median/10/1e6, gap)
	}
	log := ini.Log()
	if countLog(log, `using receive delay`) == 0 || countLog(log, `CHILD_SA net\{\d+\} state change: REKEYING => REKEYED`) != 1 {
		t.Errorf("want one child rekey whose answer strongSwan received with a delay")
	}
	if g.count(`msg="CHILD_SA rekeyed"`) != 1 {
		t.Errorf("the Go server did not log the child rekey")
	}
	noEvents(t, r.hub, "after the rekey")
}

// Issue 16 item 2, rekeys started by our side, against strongSwan.

// swanSPIs are the IKE SA SPIs (initiator's/responder's) and the SPIs of
// the installed child SAs in swanctl --list-sas; child SAs that are being
// deleted are left out.
func swanSPIs(listSAs string) (ike, child []string) {
	ikeRE := regexp.MustCompile(`([0-9a-f]{16})_i\*? ([0-9a-f]{16})_r`)
	childRE := regexp.MustCompile(`^\s+\S+: #\d+, reqid \d+, (\w+),`)
	spiRE := regexp.MustCompile(`^\s+(?:in|out)\s+([0-9a-f]{8})`)
	installed := false
	for _, ln := range strings.Split(listSAs, "\n") {
		if m := ikeRE.FindStringSubmatch(ln); m != nil {
			ike = append(ike, m[1]+"/"+m[2])
		}
		if m := childRE.FindStringSubmatch(ln); m != nil {
			installed = m[1] == "INSTALLED"
		}
		if m := spiRE.FindStringSubmatch(ln); m != nil && installed {
			child = append(child, m[1])
		}
	}
	return ike, child
}

// pingWhile pings through the tunnel from I in bursts until done reports
// true or limit passes, and returns the pings sent and answered.
func pingWhile(t *testing.T, l *swaninterop.Lab, limit time.Duration, done func() bool) (sent, answered int) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !done() && time.Now().Before(deadline) {
		answered += l.I.Ping(t, l.Target(), 5)
		sent += 5
	}
	return sent, answered
}

// checkOurRekeys asserts that traffic kept flowing (all but one ping of
// the run answered), that we did the rekeys, and that strongSwan lists
// SPIs none of which it listed before.
func checkOurRekeys(t *testing.T, swan *swaninterop.Charon, g *goLog, before string, sent, answered int, childRE, ikeRE string) {
	t.Helper()
	childRekeys, ikeRekeys := g.count(childRE), g.count(ikeRE)
	t.Logf("%d of %d pings answered; our side rekeyed the child SA %d times and the IKE SA %d times", answered, sent, childRekeys, ikeRekeys)
	if childRekeys < 2 || ikeRekeys < 1 {
		t.Errorf("our side rekeyed the child SA %d times and the IKE SA %d times; want at least 2 and 1", childRekeys, ikeRekeys)
	}
	if sent == 0 || answered < sent-1 {
		t.Errorf("%d of %d pings answered during the rekeys", answered, sent)
	}
	after := swan.ListSAs(t)
	ike0, child0 := swanSPIs(before)
	ike1, child1 := swanSPIs(after)
	if len(ike1) != 1 || len(child1) != 2 || len(ike0) != 1 || len(child0) != 2 {
		t.Fatalf("strongSwan's SAs before:\n%s\nafter:\n%s", before, after)
	}
	if ike1[0] == ike0[0] || slices.Contains(child0, child1[0]) || slices.Contains(child0, child1[1]) {
		t.Errorf("strongSwan lists the SPIs of before the rekeys:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	log := swan.Log()
	for _, bad := range []string{"received .* notify error", "CHILD_SA_NOT_FOUND", "closing expired", "giving up"} {
		if n := countLog(log, bad); n > 0 {
			t.Errorf("charon.log has %d lines matching %q", n, bad)
		}
	}
}

// Our Server rekeys the child SA every 4 s and the IKE SA every 10 s; the
// strongSwan initiator has its own rekeying off (rekey_time = 0) and
// answers. Pings pass throughout; one session throughout.
func TestOurRekeysStrongSwanInitiator(t *testing.T) {
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	g, logTo := captureLog(t)
	r := startGoResponder(t, l, "", logTo, func(c *ipsec.Config) {
		c.ChildLifetime = ipsec.Lifetime{RekeyTime: 4 * time.Second}
		c.IKELifetime = ipsec.Lifetime{RekeyTime: 10 * time.Second}
	})
	conn := l.InitiatorConn()
	conn.ESPProposals = []string{"aes256gcm16-ecp256"} // PFS in our child rekeys
	conn.RekeyTime, conn.ChildRekeyTime = -1, -1
	ini := initiate(t, l, conn)
	waitUp(t, r.hub, 5*time.Second)
	before := ini.ListSAs(t)
	sent, answered := pingWhile(t, l, 40*time.Second, func() bool {
		return g.count(`msg="CHILD_SA rekeyed"`) >= 3 && g.count(`msg="IKE SA rekeyed"`) >= 1
	})
	checkOurRekeys(t, ini, g, before, sent, answered, `msg="CHILD_SA rekeyed"`, `msg="IKE SA rekeyed"`)
	if n := g.count(`msg="CHILD_SA rekeyed".*proposal=aes256gcm16-ecp256`); n != g.count(`msg="CHILD_SA rekeyed"`) {
		t.Errorf("%d child SA rekeys with PFS (ECP-256) of %d", n, g.count(`msg="CHILD_SA rekeyed"`))
	}
	noEvents(t, r.hub, "during our rekeys")
	if n := r.srv.Stats().IKESAs; n != 1 {
		t.Errorf("the Go server holds %d IKE SAs, want 1", n)
	}
}

// Our Client rekeys the child SA every 4 s and the IKE SA every 10 s
// against a strongSwan responder with its own rekeying off.
func TestOurRekeysStrongSwanResponder(t *testing.T) {
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	resp := swaninterop.Start(t, l.R, swaninterop.Options{})
	resp.InstallCA(t, l.CA)
	resp.InstallLeaf(t, "resp", l.ResponderLeaf)
	conn := l.ResponderConn()
	conn.ESPProposals = []string{"aes256gcm16-ecp256", "aes256gcm16"}
	conn.RekeyTime, conn.ChildRekeyTime = -1, -1
	resp.Load(t, conn.String())
	g := &goLog{t: t}
	cfg := initiatorConfig(t, l)
	cfg.Logger = slog.New(slog.NewTextHandler(g, nil))
	cfg.ESPProposals = []ipsec.Proposal{{Encryption: ipsec.EncrAESGCM16, KeyBits: 256, DHGroup: ipsec.DHECP256}}
	cfg.ChildLifetime = ipsec.Lifetime{RekeyTime: 4 * time.Second}
	cfg.IKELifetime = ipsec.Lifetime{RekeyTime: 10 * time.Second}
	gi := dialFromI(t, l, cfg, 4500)
	if l.I.Ping(t, l.Target(), 3) != 3 {
		t.Fatal("no pings through the tunnel")
	}
	before := resp.ListSAs(t)
	sent, answered := pingWhile(t, l, 40*time.Second, func() bool {
		return g.count(`msg="child SA rekeyed"`) >= 3 && g.count(`msg="IKE SA rekeyed"`) >= 1
	})
	checkOurRekeys(t, resp, g, before, sent, answered, `msg="child SA rekeyed"`, `msg="IKE SA rekeyed"`)
	if p := gi.c.ESPProposal(); p.DHGroup != ipsec.DHECP256 {
		t.Errorf("the rekeyed child SA's proposal %v has no PFS group", p)
	}
	if err := gi.c.Err(); err != nil {
		t.Fatalf("the Client ended: %v", err)
	}
}

// Both sides rekey with short rekey times and their rekeys collide:
// strongSwan holds back every CREATE_CHILD_SA message it receives,
// request or response, for 1 s (receive_delay), and our rekeys fall due
// half a second before its own. Our request then waits in strongSwan
// while strongSwan sends its own rekey of the same SA, which we answer
// while ours is in flight: both sides see both exchanges and keep only
// one new SA (RFC 7296 §2.8.1). Pings pass throughout, one session
// throughout. strongSwan's over_time is set: its default, 10 % of
// rekey_time in whole seconds, is 0 below 10 s and expires the SAs as
// their rekey starts.
func TestRekeysBothSidesStrongSwan(t *testing.T) {
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	g, logTo := captureLog(t)
	r := startGoResponder(t, l, "", logTo, func(c *ipsec.Config) {
		c.ChildLifetime = ipsec.Lifetime{RekeyTime: 5500 * time.Millisecond, OverTime: 10 * time.Second, RandTime: -1}
		c.IKELifetime = ipsec.Lifetime{RekeyTime: 13500 * time.Millisecond, OverTime: 10 * time.Second, RandTime: -1}
	})
	ini := swaninterop.Start(t, l.I, swaninterop.Options{Settings: "receive_delay = 1000\nreceive_delay_type = 36\nreceive_delay_request = yes\nreceive_delay_response = yes"})
	ini.InstallCA(t, l.CA)
	ini.InstallLeaf(t, "ini", l.InitiatorLeaf)
	conn := l.InitiatorConn()
	conn.ESPProposals = []string{"aes256gcm16"}
	conn.RekeyTime, conn.ChildRekeyTime = 14*time.Second, 6*time.Second
	conn.Extra = []string{"over_time = 10s", "rand_time = 0s"}
	conn.ChildExtra = []string{"life_time = 16s", "rand_time = 0s"}
	ini.Load(t, conn.String())
	if err := ini.Initiate(t, swaninterop.ChildName); err != nil {
		t.Fatal(err)
	}
	waitUp(t, r.hub, 5*time.Second)
	start := time.Now()
	sent, answered := pingWhile(t, l, 40*time.Second, func() bool {
		return time.Since(start) > 30*time.Second || g.count(`collision`) >= 3 && g.count(`msg="IKE SA rekeyed"`) >= 2
	})
	log := ini.Log()
	t.Logf("%d of %d pings answered; the Go server logged %d child and %d IKE rekeys and these collisions:\n%s",
		answered, sent, g.count(`msg="CHILD_SA rekeyed"`), g.count(`msg="IKE SA rekeyed"`), strings.Join(regexp.MustCompile(`.*collision.*`).FindAllString(g.String(), -1), "\n"))
	if answered < sent-2 {
		t.Errorf("%d of %d pings answered while both sides rekeyed", answered, sent)
	}
	if g.count(`collision`) == 0 {
		t.Errorf("no rekey collision in %v", time.Since(start).Round(time.Second))
	}
	if g.count(`msg="CHILD_SA rekeyed"`) < 3 || g.count(`msg="IKE SA rekeyed"`) < 1 {
		t.Errorf("too few rekeys")
	}
	for _, bad := range []string{"closing expired", "giving up", "failed to establish CHILD_SA, keeping IKE_SA"} {
		if n := countLog(log, bad); n > 0 {
			t.Errorf("charon.log has %d lines matching %q", n, bad)
		}
	}
	if l.I.Ping(t, l.Target(), 3) != 3 {
		t.Error("pings lost after the rekeys")
	}
	// Once the deletes are through, strongSwan and we agree on one IKE SA
	// and one child SA: no redundant SA is left over.
	var sas string
	deadline := time.Now().Add(15 * time.Second) // a redundant IKE SA strongSwan drops silently goes after 10 s
	for {
		sas = ini.ListSAs(t)
		ike, child := swanSPIs(sas)
		if len(ike) == 1 && len(child) == 2 && r.srv.Stats().IKESAs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("strongSwan's SAs after the collisions (the Go server holds %d IKE SAs):\n%s", r.srv.Stats().IKESAs, sas)
		}
		time.Sleep(200 * time.Millisecond)
	}
	noEvents(t, r.hub, "while both sides rekeyed")
}

// numberedUDP sends a numbered UDP datagram every 10 ms from I to the
// lab's target in R and counts what arrives: the longest run of
// consecutive numbers lost, in the sender's own time, is the longest gap
// in the tunnel, whatever the load does to the receiver's timing.
type numberedUDP struct {
	recv    *net.UDPConn
	send    *net.UDPConn
	mu      sync.Mutex
	got     map[uint32]bool
	sent    atomic.Uint32
	stop    chan struct{}
	stopped sync.WaitGroup
}

func startNumberedUDP(t *testing.T, l *swaninterop.Lab) *numberedUDP {
	t.Helper()
	n := &numberedUDP{got: map[uint32]bool{}, stop: make(chan struct{})}
	target := net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.Target(), 5999))
	if err := l.R.Do(func() (err error) { n.recv, err = net.ListenUDP("udp4", target); return err }); err != nil {
		t.Fatal(err)
	}
	if err := l.I.Do(func() (err error) { n.send, err = net.DialUDP("udp4", nil, target); return err }); err != nil {
		t.Fatal(err)
	}
	n.stopped.Add(2)
	go func() {
		defer n.stopped.Done()
		buf := make([]byte, 64)
		for {
			k, err := n.recv.Read(buf)
			if err != nil {
				return
			}
			if k >= 4 {
				n.mu.Lock()
				n.got[binary.BigEndian.Uint32(buf)] = true
				n.mu.Unlock()
			}
		}
	}()
	go func() {
		defer n.stopped.Done()
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		var b [32]byte
		for seq := uint32(0); ; seq++ {
			select {
			case <-n.stop:
				return
			case <-tk.C:
			}
			binary.BigEndian.PutUint32(b[:], seq)
			_, _ = n.send.Write(b[:])
			n.sent.Store(seq + 1)
		}
	}()
	t.Cleanup(func() { n.finish() })
	return n
}

// finish stops the sender, waits for the stragglers and returns the
// numbers sent, received, and the longest run lost.
func (n *numberedUDP) finish() (sent, received, longest int) {
	select {
	case <-n.stop:
	default:
		close(n.stop)
		time.Sleep(time.Second) // stragglers through the tunnel
		n.recv.Close()
		n.send.Close()
		n.stopped.Wait()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	sent = int(n.sent.Load())
	run := 0
	for i := range sent {
		if n.got[uint32(i)] {
			received++
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	return sent, received, longest
}

// Go ↔ Go under iperf3 for 60 s with short lifetimes on both sides
// (child SA every 5 s, IKE SA every 15 s, jitter 10 %): our Client in I
// and our Server in R, each behind a TUN. Next to iperf3, numbered UDP
// datagrams every 10 ms: no run of more than 20 of them is lost (200 ms
// of the sender's time) around any rekey, and the rekeys did happen.
func TestGoToGoRekeysUnderLoad(t *testing.T) {
	swaninterop.Require(t, "iperf3")
	run := 60 * time.Second
	if testing.Short() {
		run = 20 * time.Second
	}
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	child, ike := ipsec.Lifetime{RekeyTime: 5 * time.Second}, ipsec.Lifetime{RekeyTime: 15 * time.Second}
	gs, logTo := captureLog(t)
	r := startGoResponder(t, l, "", logTo, func(c *ipsec.Config) { c.ChildLifetime, c.IKELifetime = child, ike })
	gc := &goLog{t: t}
	cfg := initiatorConfig(t, l)
	cfg.Logger = slog.New(slog.NewTextHandler(gc, nil))
	cfg.ChildLifetime, cfg.IKELifetime = child, ike
	gi := dialFromI(t, l, cfg, 4500)
	waitUp(t, r.hub, 5*time.Second)
	if l.I.Ping(t, l.Target(), 3) != 3 {
		t.Fatal("no pings through the tunnel")
	}
	probe := startNumberedUDP(t, l)
	res := l.Throughput(t, run, map[string]swaninterop.CPUMeter{"go": swaninterop.SelfCPU})
	sent, received, longest := probe.finish()
	childRekeys, ikeRekeys := gs.count(`msg="CHILD_SA rekeyed"`), gs.count(`msg="IKE SA rekeyed"`)
	t.Logf("numbered datagrams: %d sent, %d received, longest run lost %d (%v); rekeys seen by the Server: %d child SA, %d IKE SA; collisions: %d, %d",
		sent, received, longest, time.Duration(longest)*10*time.Millisecond, childRekeys, ikeRekeys, gs.count("collision"), gc.count("collision"))
	if longest > 20 {
		t.Errorf("%d numbered datagrams in a row lost: a gap of %v in the sender's time", longest, time.Duration(longest)*10*time.Millisecond)
	}
	if sent < int(run/(20*time.Millisecond)) || received < sent*9/10 {
		t.Errorf("%d numbered datagrams sent, %d received", sent, received)
	}
	if want := int(run / (5 * time.Second) * 7 / 10); childRekeys < want || ikeRekeys < int(run/(15*time.Second))-1 {
		t.Errorf("%d child SA and %d IKE SA rekeys in %v; want at least %d and %d", childRekeys, ikeRekeys, run, want, int(run/(15*time.Second))-1)
	}
	if res.Mbps() < 10 {
		t.Errorf("iperf3 through the tunnel: %.1f Mbit/s", res.Mbps())
	}
	if err := gi.c.Err(); err != nil {
		t.Fatalf("the Client ended: %v", err)
	}
	noEvents(t, r.hub, "during the rekeys")
}
