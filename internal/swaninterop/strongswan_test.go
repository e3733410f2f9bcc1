package swaninterop

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if leaked := netns.Leaked(); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "swaninterop: namespaces leaked by the tests: %v\n", leaked)
		code = 1
	}
	if pids := Leaked(); len(pids) > 0 {
		fmt.Fprintf(os.Stderr, "swaninterop: charon processes leaked by the tests: %v\n", pids)
		code = 1
	}
	os.Exit(code)
}

// pings is how many echo requests each tunnel check sends.
const pings = 3

// checkTunnel pings Target from I through the established tunnel and
// checks both charons' counters for the same child: TUNNEL-in-UDP, and at
// least the pings' bytes in both directions.
func checkTunnel(t *testing.T, l *Lab, ini, resp *Charon) (Counters, Counters) {
	t.Helper()
	if got := l.I.Ping(t, l.Target(), pings); got != pings {
		t.Fatalf("%d of %d pings from %s to %s through the tunnel answered\ninitiator SAs:\n%s", got, pings, l.I.Name, l.Target(), ini.ListSAs(t))
	}
	ci, cr := ini.Counters(t, ChildName), resp.Counters(t, ChildName)
	for _, c := range []struct {
		side string
		c    Counters
	}{{"initiator", ci}, {"responder", cr}} {
		if c.c.Mode != "TUNNEL-in-UDP" {
			t.Errorf("%s CHILD_SA mode %q, want TUNNEL-in-UDP (ESP in UDP 4500)", c.side, c.c.Mode)
		}
		// 84-byte echo packets; the first request may be lost to route setup.
		if c.c.PacketsIn < pings || c.c.PacketsOut < pings || c.c.BytesIn < pings*84 || c.c.BytesOut < pings*84 {
			t.Errorf("%s counters %+v: want at least %d packets and %d bytes each way", c.side, c.c, pings, pings*84)
		}
	}
	// One SA pair: the initiator's outbound SPI is the responder's inbound.
	if ci.SPIOut != cr.SPIIn || ci.SPIIn != cr.SPIOut {
		t.Errorf("SPIs do not pair up: initiator in %s out %s, responder in %s out %s", ci.SPIIn, ci.SPIOut, cr.SPIIn, cr.SPIOut)
	}
	return ci, cr
}

func TestStrongSwanRoadWarrior(t *testing.T) {
	Require(t, "ping", "tcpdump")
	t.Parallel()
	l := NewLab(t, LabOptions{Mode: RoadWarrior, KeyType: ECDSAP256})
	resp := l.StartResponder(t, Options{})
	ini := l.StartInitiator(t, Options{})
	capture := StartCapture(t, l.R, l.RIf)

	if err := ini.Initiate(t, ChildName); err != nil {
		t.Fatal(err)
	}
	sas := ini.ListSAs(t)
	t.Logf("initiator --list-sas:\n%s", sas)
	if !strings.Contains(sas, "["+FirstVIP.String()+"]") {
		t.Errorf("initiator --list-sas does not show the virtual IP %s", FirstVIP)
	}
	if addrs := l.I.Run(t, 5*time.Second, "ip", "-o", "addr", "show"); !strings.Contains(addrs, " "+FirstVIP.String()+"/32 ") {
		t.Errorf("virtual IP %s not installed in %s:\n%s", FirstVIP, l.I.Name, addrs)
	}
	ci, cr := checkTunnel(t, l, ini, resp)
	if ci.LocalTS != FirstVIP.String()+"/32" || ci.RemoteTS != maskedString(ResponderNet) {
		t.Errorf("initiator traffic selectors %s === %s, want %s/32 === %s", ci.LocalTS, ci.RemoteTS, FirstVIP, maskedString(ResponderNet))
	}
	t.Logf("initiator %+v", ci)
	t.Logf("responder %+v", cr)

	stats := capture.Stats()
	t.Logf("on the wire (R's veth): %+v", stats)
	if stats.ESPInUDP < 2*pings {
		t.Errorf("tcpdump saw %d ESP-in-UDP packets, want at least %d (pings and replies)\n%s", stats.ESPInUDP, 2*pings, capture.Log())
	}
	if stats.Other > 0 {
		t.Errorf("tcpdump saw %d UDP packets that were neither IKE nor ESP-in-UDP\n%s", stats.Other, capture.Log())
	}

	for _, want := range []string{
		`selected proposal: IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256`,
		`authentication of '` + ResponderID + `' with ECDSA_WITH_SHA256_DER successful`,
		`installing new virtual IP ` + FirstVIP.String(),
		`CHILD_SA ` + ChildName + `\{1\} established with SPIs [0-9a-f]{8}_i [0-9a-f]{8}_o and TS ` + FirstVIP.String() + `/32 === 10\.232\.0\.0/24`,
	} {
		ini.WaitLog(t, want, time.Second)
	}
	resp.WaitLog(t, `assigning virtual IP `+FirstVIP.String()+` to peer '`+InitiatorID+`'`, time.Second)
}

func TestStrongSwanSiteToSite(t *testing.T) {
	Require(t, "ping")
	t.Parallel()
	t.Run("RSA", func(t *testing.T) {
		t.Parallel()
		l, ini, resp := StrongSwanPair(t, LabOptions{Mode: SiteToSite, KeyType: RSA2048}, Options{}, Options{})
		ci, _ := checkTunnel(t, l, ini, resp)
		if ci.LocalTS != maskedString(InitiatorNet) || ci.RemoteTS != maskedString(ResponderNet) {
			t.Errorf("initiator traffic selectors %s === %s, want %s === %s", ci.LocalTS, ci.RemoteTS, maskedString(InitiatorNet), maskedString(ResponderNet))
		}
		if sas := ini.ListSAs(t); strings.Contains(sas, "[10.233.") {
			t.Errorf("site-to-site initiator got a virtual IP:\n%s", sas)
		}
		routes := l.I.Run(t, 5*time.Second, "ip", "route", "show", "table", "220")
		if !strings.Contains(routes, maskedString(ResponderNet)+" dev ipsec0") || !strings.Contains(routes, "src "+InitiatorNet.Addr().String()) {
			t.Errorf("initiator's table 220 lacks the route into ipsec0 with source %s:\n%s", InitiatorNet.Addr(), routes)
		}
		ini.WaitLog(t, `authentication of '`+ResponderID+`' with RSA_EMSA_PKCS1_SHA2_256 successful`, time.Second)
		ini.WaitLog(t, `CHILD_SA `+ChildName+`\{1\} established with SPIs [0-9a-f]{8}_i [0-9a-f]{8}_o and TS 10\.240\.0\.0/24 === 10\.232\.0\.0/24`, time.Second)

		// SIGTERM makes charon delete its SAs at the peer.
		if err := ini.Stop(); err != nil {
			t.Logf("charon exit after SIGTERM: %v", err)
		}
		resp.WaitLog(t, `received DELETE for IKE_SA `+ConnName, 3*time.Second)
	})
	t.Run("PSK", func(t *testing.T) {
		t.Parallel()
		l, ini, resp := StrongSwanPair(t, LabOptions{Mode: SiteToSite, KeyType: ECDSAP256, PSK: "interop test secret, not for production"}, Options{}, Options{})
		checkTunnel(t, l, ini, resp)
		ini.WaitLog(t, `authentication of '`+ResponderID+`' with pre-shared key successful`, time.Second)
		resp.WaitLog(t, `authentication of '`+InitiatorID+`' with pre-shared key successful`, time.Second)
	})
	t.Run("WrongPSK", func(t *testing.T) {
		t.Parallel()
		l := NewLab(t, LabOptions{Mode: SiteToSite, PSK: "the responder's secret"})
		resp := l.StartResponder(t, Options{})
		ini := Start(t, l.I, Options{})
		conn := l.InitiatorConn()
		conn.PSK = "a different secret"
		ini.Load(t, conn.String())
		err := ini.Initiate(t, ChildName)
		if err == nil {
			t.Fatal("initiate with a wrong PSK succeeded")
		}
		if !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
			t.Errorf("initiate failed, but not with AUTHENTICATION_FAILED: %v", err)
		}
		resp.WaitLog(t, `tried 1 shared key for '`+ResponderID+`' - '`+InitiatorID+`', but MAC mismatched`, time.Second)
	})
}

// TestStrongSwanThroughput is the baseline for the project's own IKEv2/ESP:
// 10 s of iperf3 through a strongSwan road-warrior tunnel (kernel-libipsec
// on both sides), with both charons' CPU time.
func TestStrongSwanThroughput(t *testing.T) {
	if os.Getenv("RG_PERF") != "1" {
		t.Skip("SKIPPING throughput baseline: set RG_PERF=1 to run it (10 s of iperf3 in each direction)")
	}
	Require(t, "ping", "iperf3")
	for _, kt := range []KeyType{ECDSAP256} {
		t.Run(kt.String(), func(t *testing.T) {
			l, ini, resp := StrongSwanPair(t, LabOptions{Mode: RoadWarrior, KeyType: kt}, Options{}, Options{})
			if got := l.I.Ping(t, l.Target(), 1); got != 1 {
				t.Fatalf("tunnel does not carry a ping before the throughput run")
			}
			for _, dir := range []struct {
				name string
				args []string
			}{{"I->R", nil}, {"R->I", []string{"-R"}}} {
				res := l.Throughput(t, 10*time.Second, map[string]CPUMeter{"charon I": ini, "charon R": resp}, dir.args...)
				if res.BitsPerSecond <= 0 {
					t.Fatalf("%s: iperf3 moved no data: %+v", dir.name, res)
				}
			}
			c := ini.Counters(t, ChildName)
			t.Logf("initiator CHILD_SA after the runs: %d packets / %d bytes out, %d / %d in", c.PacketsOut, c.BytesOut, c.PacketsIn, c.BytesIn)
		})
	}
}

// TestCharonLoad starts a single charon and loads the full rendering of
// TestConnStringAll (quoted DN identity, hex PSK, pool with DNS) to prove
// that strongSwan reads what the builder writes; it also checks the
// instance's private /run and the resolve plugin's absence.
func TestCharonLoad(t *testing.T) {
	Require(t)
	t.Parallel()
	ns := netns.New(t, "swL")
	c := Start(t, ns, Options{LogLevels: map[string]int{"cfg": 1}, Settings: "retransmit_timeout = 1.0"})
	c.Load(t, Conn{
		Name:     "gw",
		LocalID:  "resp.test",
		RemoteID: "C=CH, O=remotegate, CN=dev 1",
		Auth:     "psk",
		PSK:      `s3cr"et`,
		Pools:    []Pool{{Name: "rw", Addrs: "10.233.0.0/24", DNS: []string{"10.232.0.53"}}},
		LocalTS:  "10.232.0.0/24",
		RemoteTS: "dynamic",
	}.String())
	conns, err := c.Swanctl(5*time.Second, "--list-conns")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conns, "remote pre-shared key authentication:\n    id: C=CH, O=remotegate, CN=dev 1") {
		t.Errorf("--list-conns does not show the DN identity:\n%s", conns)
	}
	pools, err := c.Swanctl(5*time.Second, "--list-pools")
	if err != nil || !strings.Contains(pools, "rw") || !strings.Contains(pools, "10.233.0.0 ") {
		t.Errorf("--list-pools: %v\n%s", err, pools)
	}
	log := c.Log()
	if strings.Contains(log, " resolve") {
		t.Errorf("the resolve plugin was loaded:\n%s", log)
	}
	if !strings.Contains(log, "created TUN device: ipsec0") {
		t.Errorf("kernel-libipsec did not create ipsec0:\n%s", log)
	}
	// charon's pid file went to its private /run, not the host's.
	if _, err := os.Stat("/run/charon.pid"); err == nil {
		t.Logf("note: /run/charon.pid exists on the host (another strongSwan runs there?)")
	}
	if pid, err := ns.RunErr(5*time.Second, "sh", "-c", "cat /proc/"+strconv.Itoa(c.Process.Cmd.Process.Pid)+"/root/run/charon.pid"); err != nil || strings.TrimSpace(pid) != strconv.Itoa(c.Process.Cmd.Process.Pid) {
		t.Errorf("charon.pid in charon's /run: %q (%v), want its pid %d", pid, err, c.Process.Cmd.Process.Pid)
	}
}
