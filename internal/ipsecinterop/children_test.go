package ipsecinterop

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
)

// Several child SAs per IKE SA: a site with two LANs, each in its own
// child SA (its own traffic selectors), against strongSwan in both roles.

// secondLAN is the initiator's second LAN, beside InitiatorNet; its first
// address sits on I's lo.
var secondLAN = netip.MustParsePrefix("10.241.0.1/24")

// lan2Child is the name of strongSwan's child SA for secondLAN.
const lan2Child = "lan2"

// twoChildCounters returns strongSwan's counters of both child SAs and
// checks that it lists exactly two CHILD_SAs under the IKE SA.
func twoChildCounters(t *testing.T, c *swaninterop.Charon) (lan1, lan2 swaninterop.Counters) {
	t.Helper()
	sas := c.ListSAs(t)
	if n := strings.Count(sas, "INSTALLED"); n != 2 || len(ikeSAs(sas)) != 1 {
		t.Fatalf("swanctl --list-sas shows %d installed CHILD_SAs, want 2 under one IKE SA:\n%s", n, sas)
	}
	return c.Counters(t, swaninterop.ChildName), c.Counters(t, lan2Child)
}

// strongSwan initiates two children, one per LAN, to the Go responder,
// whose Handler assigns both LANs: hosts on both LANs reach the
// responder's network and are reached from it, each LAN's traffic on its
// own child in both directions.
func TestStrongSwanTwoChildrenToGoResponder(t *testing.T) {
	swaninterop.Require(t, "ping")
	t.Parallel()
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.SiteToSite, KeyType: swaninterop.ECDSAP256})
	l.I.Run(t, 5*time.Second, "ip", "addr", "add", secondLAN.String(), "dev", "lo")
	g, logTo := captureLog(t)
	r := startGoResponder(t, l, "", logTo)
	r.hub.mu.Lock()
	r.hub.networks[swaninterop.InitiatorID] = []netip.Prefix{swaninterop.InitiatorNet.Masked(), secondLAN.Masked()}
	r.hub.mu.Unlock()
	l.R.Run(t, 5*time.Second, "ip", "route", "add", secondLAN.Masked().String(), "dev", r.tun.Name())

	first := l.InitiatorConn()
	second := first
	second.Child, second.LocalTS = lan2Child, secondLAN.Masked().String()
	ini := swaninterop.Start(t, l.I, swaninterop.Options{})
	ini.InstallCA(t, l.CA)
	ini.InstallLeaf(t, "ini", l.InitiatorLeaf)
	ini.Load(t, withChild(first.String(), second))
	if err := ini.Initiate(t, swaninterop.ChildName); err != nil {
		t.Fatalf("first child: %v\n%s", err, ini.Log())
	}
	waitUp(t, r.hub, 5*time.Second)
	// The second child, by CREATE_CHILD_SA on the same IKE SA.
	if err := ini.Initiate(t, lan2Child); err != nil {
		t.Fatalf("second child: %v\n%s", err, ini.Log())
	}
	if g.count(`msg="CHILD_SA established".*ts="10\.232\.0\.0/24 === 10\.241\.0\.0/24"`) != 1 {
		t.Errorf("the Go server did not log the second child SA")
	}

	target := l.Target()
	for _, lan := range []netip.Addr{swaninterop.InitiatorNet.Addr(), secondLAN.Addr()} {
		if got := pingFrom(t, l.I, lan, target, 3); got != 3 {
			t.Errorf("%d of 3 pings %s -> %s answered\n%s", got, lan, target, ini.ListSAs(t))
		}
		if got := pingFrom(t, l.R, target, lan, 3); got != 3 {
			t.Errorf("%d of 3 pings %s -> %s answered\n%s", got, target, lan, ini.ListSAs(t))
		}
	}
	// Each child carried its LAN's two pings of three, both ways: what the
	// Go side sent arrived on the child of its destination.
	c1, c2 := twoChildCounters(t, ini)
	for _, c := range []struct {
		name string
		cnt  swaninterop.Counters
		lan  netip.Prefix
	}{{swaninterop.ChildName, c1, swaninterop.InitiatorNet}, {lan2Child, c2, secondLAN}} {
		if c.cnt.LocalTS != c.lan.Masked().String() || c.cnt.PacketsIn != 6 || c.cnt.PacketsOut != 6 {
			t.Errorf("strongSwan's child %s (%s) carried %d packets in and %d out, want 6 each for %v", c.name, c.cnt.LocalTS, c.cnt.PacketsIn, c.cnt.PacketsOut, c.lan.Masked())
		}
	}
	if st := r.srv.Stats(); st.ESPDropped != 0 || st.Unroutable != 0 {
		t.Errorf("the Go server dropped %d ESP packets and %d of its own", st.ESPDropped, st.Unroutable)
	}

	// strongSwan deletes the second child: the first keeps carrying, the
	// session stays.
	if out, err := ini.Swanctl(15*time.Second, "--terminate", "--child", lan2Child); err != nil || !strings.Contains(out, "terminate completed successfully") {
		t.Fatalf("swanctl --terminate --child %s: %v\n%s", lan2Child, err, out)
	}
	if sas := ini.ListSAs(t); strings.Count(sas, "INSTALLED") != 1 || len(ikeSAs(sas)) != 1 {
		t.Errorf("after the Delete of one child, want the IKE SA with one child:\n%s", sas)
	}
	if got := pingFrom(t, l.I, swaninterop.InitiatorNet.Addr(), target, 3); got != 3 {
		t.Errorf("after the second child's Delete, %d of 3 pings from the first LAN answered", got)
	}
	noEvents(t, r.hub, "after the Delete of one child")
}

// The Go initiator asks for two children, one per LAN, and strongSwan
// responds with one child configuration per LAN: hosts on both LANs
// reach the responder's network, each on its own child.
func TestGoInitiatorTwoChildrenToStrongSwan(t *testing.T) {
	swaninterop.Require(t, "ping")
	t.Parallel()
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.SiteToSite, KeyType: swaninterop.ECDSAP256})
	l.I.Run(t, 5*time.Second, "ip", "addr", "add", secondLAN.String(), "dev", "lo")
	resp := swaninterop.Start(t, l.R, swaninterop.Options{})
	resp.InstallCA(t, l.CA)
	resp.InstallLeaf(t, "resp", l.ResponderLeaf)
	first := l.ResponderConn()
	second := first
	second.Child, second.RemoteTS = lan2Child, secondLAN.Masked().String()
	resp.Load(t, withChild(first.String(), second))

	cfg := initiatorConfig(t, l)
	cfg.RemoteTS = []netip.Prefix{swaninterop.ResponderNet.Masked()}
	cfg.AdditionalChildren = []ipsec.ChildTS{{LocalTS: []netip.Prefix{secondLAN.Masked()}, RemoteTS: []netip.Prefix{swaninterop.ResponderNet.Masked()}}}
	g := dialFromI(t, l, cfg, 4500)
	if ts := g.c.LocalTS(); len(ts) != 2 || ts[0] != swaninterop.InitiatorNet.Masked() || ts[1] != secondLAN.Masked() {
		t.Errorf("local traffic selectors %v, want both LANs", ts)
	}

	target := l.Target()
	for _, lan := range []netip.Addr{swaninterop.InitiatorNet.Addr(), secondLAN.Addr()} {
		if got := pingFrom(t, l.I, lan, target, 3); got != 3 {
			t.Errorf("%d of 3 pings %s -> %s answered\n%s", got, lan, target, resp.ListSAs(t))
		}
	}
	c1, c2 := twoChildCounters(t, resp)
	for _, c := range []struct {
		name string
		cnt  swaninterop.Counters
		lan  netip.Prefix
	}{{swaninterop.ChildName, c1, swaninterop.InitiatorNet}, {lan2Child, c2, secondLAN}} {
		if c.cnt.RemoteTS != c.lan.Masked().String() || c.cnt.PacketsIn != 3 || c.cnt.PacketsOut != 3 {
			t.Errorf("strongSwan's child %s (%s) carried %d packets in and %d out, want 3 each for %v", c.name, c.cnt.RemoteTS, c.cnt.PacketsIn, c.cnt.PacketsOut, c.lan.Masked())
		}
	}
	// The TUN's own IPv6 chatter (router solicitations) is what no child
	// covers.
	t.Logf("the Client dropped %d packets no child covers", g.c.Unroutable())
}
