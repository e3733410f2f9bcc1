package swaninterop

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// Names and identities of the lab configuration (notes §8.3).
const (
	ConnName    = "lab"      // connection name in both swanctl.conf files
	ChildName   = "net"      // CHILD_SA name: swanctl --initiate --child net
	InitiatorID = "ini.test" // FQDN identity and SAN dNSName of the initiator
	ResponderID = "resp.test"
	// PoolName is the responder's virtual-IP pool.
	PoolName = "rw"
)

// Addresses of the lab topology (notes §8.4): namespace I —veth— namespace R.
var (
	InitiatorAddr = netip.MustParsePrefix("10.231.0.1/24") // I's veth
	ResponderAddr = netip.MustParsePrefix("10.231.0.2/24") // R's veth
	// ResponderNet is the subnet protected by the responder; its first
	// address sits on R's lo and is the ping and iperf3 target.
	ResponderNet = netip.MustParsePrefix("10.232.0.1/24")
	// InitiatorNet is the initiator's protected subnet in site-to-site mode;
	// its first address sits on I's lo, so the route charon installs gets it
	// as source.
	InitiatorNet = netip.MustParsePrefix("10.240.0.1/24")
	// PoolNet is the responder's virtual-IP pool in road-warrior mode;
	// FirstVIP is the address the first client gets.
	PoolNet  = netip.MustParsePrefix("10.233.0.0/24")
	FirstVIP = netip.MustParseAddr("10.233.0.1")
)

// Mode selects the traffic selectors of a lab.
type Mode int

const (
	// RoadWarrior: the initiator requests a virtual IP from the responder's
	// pool (vips = 0.0.0.0, local_ts dynamic) and reaches ResponderNet.
	RoadWarrior Mode = iota
	// SiteToSite: InitiatorNet <=> ResponderNet, no configuration payload.
	SiteToSite
)

func (m Mode) String() string {
	switch m {
	case RoadWarrior:
		return "road-warrior"
	case SiteToSite:
		return "site-to-site"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// LabOptions describe a lab.
type LabOptions struct {
	Mode    Mode
	KeyType KeyType // of the CA and both end entities
	// PSK, when set, switches both sides to pre-shared-key authentication
	// (the certificates are made anyway).
	PSK string
}

// Lab is the two-namespace topology of notes §8.4 with its PKI, ready for
// an IKEv2 initiator in I and a responder in R, either of which may be
// strongSwan (StartInitiator, StartResponder) or the project's own code
// using the same addresses, identities and certificates.
type Lab struct {
	LabOptions
	I, R     *netns.NS
	IIf, RIf string // the veth ends in I and R
	CA       *CA
	// InitiatorLeaf is issued for InitiatorID, ResponderLeaf for ResponderID.
	InitiatorLeaf, ResponderLeaf *Leaf
}

// NewLab creates namespaces I ("swI…") and R ("swR…"), the veth link with
// InitiatorAddr and ResponderAddr, ResponderNet on R's lo (and InitiatorNet
// on I's lo for SiteToSite), a CA and both end-entity certificates.
// Everything is removed at cleanup.
func NewLab(t testing.TB, opt LabOptions) *Lab {
	t.Helper()
	l := &Lab{LabOptions: opt}
	l.I = netns.New(t, "swI")
	l.R = netns.New(t, "swR")
	l.IIf, l.RIf = netns.Link(t, l.I, InitiatorAddr, l.R, ResponderAddr)
	l.R.Run(t, 5*time.Second, "ip", "addr", "add", ResponderNet.String(), "dev", "lo")
	if opt.Mode == SiteToSite {
		l.I.Run(t, 5*time.Second, "ip", "addr", "add", InitiatorNet.String(), "dev", "lo")
	}
	l.CA = NewCA(t, "remotegate swaninterop CA", opt.KeyType)
	l.InitiatorLeaf = l.CA.Issue(t, InitiatorID, opt.KeyType)
	l.ResponderLeaf = l.CA.Issue(t, ResponderID, opt.KeyType)
	return l
}

// Target is the address behind the responder that tests ping: the first
// address of ResponderNet.
func (l *Lab) Target() netip.Addr { return ResponderNet.Addr() }

// Source is the initiator's inner address: FirstVIP or InitiatorNet's first.
func (l *Lab) Source() netip.Addr {
	if l.Mode == SiteToSite {
		return InitiatorNet.Addr()
	}
	return FirstVIP
}

func (l *Lab) auth() string {
	if l.PSK != "" {
		return "psk"
	}
	return "pubkey"
}

// InitiatorConn is the swanctl connection of a strongSwan initiator in I
// (notes §8.3, DPD every 30 s with dpd_action restart, start_action none).
func (l *Lab) InitiatorConn() Conn {
	c := Conn{
		LocalAddr:   InitiatorAddr.Addr().String(),
		RemoteAddr:  ResponderAddr.Addr().String(),
		Encap:       true,
		LocalID:     InitiatorID,
		RemoteID:    ResponderID,
		Auth:        l.auth(),
		PSK:         l.PSK,
		RemoteTS:    maskedString(ResponderNet),
		DPDDelay:    30 * time.Second,
		DPDAction:   "restart",
		StartAction: "none",
	}
	if l.PSK == "" {
		c.CertFile = "ini.pem"
	}
	if l.Mode == SiteToSite {
		c.LocalTS = maskedString(InitiatorNet)
	} else {
		c.VIPs = []string{"0.0.0.0"}
		c.LocalTS = "dynamic"
	}
	return c
}

// ResponderConn is the swanctl connection of a strongSwan responder in R.
func (l *Lab) ResponderConn() Conn {
	c := Conn{
		LocalAddr: ResponderAddr.Addr().String(),
		Encap:     true,
		LocalID:   ResponderID,
		RemoteID:  InitiatorID,
		Auth:      l.auth(),
		PSK:       l.PSK,
		LocalTS:   maskedString(ResponderNet),
		DPDDelay:  30 * time.Second,
		DPDAction: "clear",
	}
	if l.PSK == "" {
		c.CertFile = "resp.pem"
	}
	if l.Mode == SiteToSite {
		c.RemoteTS = maskedString(InitiatorNet)
	} else {
		// A pool makes strongSwan demand a CP request (FAILED_CP_REQUIRED
		// otherwise, pitfall 9.21): road warrior only.
		c.Pools = []Pool{{Name: PoolName, Addrs: PoolNet.String()}}
		c.RemoteTS = "dynamic"
	}
	return c
}

// StartInitiator starts strongSwan in I with the CA, the initiator's
// certificate and InitiatorConn loaded. It does not initiate.
func (l *Lab) StartInitiator(t testing.TB, opt Options) *Charon {
	t.Helper()
	c := Start(t, l.I, opt)
	c.InstallCA(t, l.CA)
	c.InstallLeaf(t, "ini", l.InitiatorLeaf)
	c.Load(t, l.InitiatorConn().String())
	return c
}

// StartResponder starts strongSwan in R with the CA, the responder's
// certificate and ResponderConn loaded.
func (l *Lab) StartResponder(t testing.TB, opt Options) *Charon {
	t.Helper()
	c := Start(t, l.R, opt)
	c.InstallCA(t, l.CA)
	c.InstallLeaf(t, "resp", l.ResponderLeaf)
	c.Load(t, l.ResponderConn().String())
	return c
}

// StrongSwanPair is the baseline: a lab with strongSwan on both sides and
// the CHILD_SA established (initiator in I, responder in R).
func StrongSwanPair(t testing.TB, opt LabOptions, iOpt, rOpt Options) (l *Lab, ini, resp *Charon) {
	t.Helper()
	l = NewLab(t, opt)
	resp = l.StartResponder(t, rOpt)
	ini = l.StartInitiator(t, iOpt)
	if err := ini.Initiate(t, ChildName); err != nil {
		t.Fatal(err)
	}
	return l, ini, resp
}

func maskedString(p netip.Prefix) string { return p.Masked().String() }

// CPUMeter is anything that reports the processor time it has used:
// *Charon, *netns.Process, or a wrapper around the test process's own
// rusage for an in-process implementation.
type CPUMeter interface {
	CPUTime() (time.Duration, error)
}

// SelfCPU measures the test process itself (user and system time of all
// its threads, from getrusage): the meter for an implementation that runs
// inside the test binary. Everything else the test does in the meantime is
// counted too.
var SelfCPU CPUMeter = selfCPU{}

type selfCPU struct{}

func (selfCPU) CPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("swaninterop: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// ThroughputResult is one iperf3 run through a lab tunnel.
type ThroughputResult struct {
	netns.IperfResult
	// Wall is the duration of the measurement (iperf3 start to end).
	Wall time.Duration
	// CPU is the processor time each meter used during the run.
	CPU map[string]time.Duration
	// Interval is the mean length of the reporting intervals, from
	// iperf3's own time stamps (on a busy machine they come out a little
	// longer than asked); ThroughputUntil only.
	Interval time.Duration
	// Met reports that ThroughputUntil's condition held before its limit,
	// and Waited how long after the start of the run it was first seen to.
	Met    bool
	Waited time.Duration
}

// Mbps is the receiver's goodput in Mbit/s.
func (r ThroughputResult) Mbps() float64 { return r.BitsPerSecond / 1e6 }

// Throughput runs iperf3 for d from I (client) to Target in R (server)
// through the established tunnel, and measures the processor time each
// meter used meanwhile. It logs Mbit/s and the CPU times. extraArgs go to
// the iperf3 client ("-R" reverses the direction).
func (l *Lab) Throughput(t testing.TB, d time.Duration, meters map[string]CPUMeter, extraArgs ...string) ThroughputResult {
	t.Helper()
	cpu := startCPU(t, meters)
	start := time.Now()
	res := ThroughputResult{IperfResult: netns.Iperf3(t, l.I, l.R, l.Target(), d, extraArgs...)}
	res.Wall = time.Since(start)
	res.CPU = cpu.used(t)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s %s: %.1f Mbit/s over %v (%d TCP retransmits)", l.Mode, l.KeyType, direction(extraArgs), res.Mbps(), d, res.Retransmits)
	cpu.report(&sb, res)
	t.Log(sb.String())
	return res
}

// ThroughputUntil is Throughput for as long as it takes something to
// happen, rather than for a fixed time: iperf3 runs from I to Target
// while until is polled every 100 ms; once until has reported true, the
// traffic goes on for settle more (so that the aftermath of the awaited
// event is measured as well) and the client is stopped. At limit iperf3
// ends by itself (-t) whether or not until held: Met tells. The intervals
// are iperf3's own reports (--forceflush text output, read after the
// client stopped), the last one cut short by the stop left out. extraArgs
// go to the iperf3 client after ThroughputUntil's "-i 0.5" ("-R" reverses
// the direction, a later "-i" sets the interval).
func (l *Lab) ThroughputUntil(t testing.TB, limit, settle time.Duration, until func() bool, meters map[string]CPUMeter, extraArgs ...string) ThroughputResult {
	t.Helper()
	secs := max(1, int(math.Ceil(limit.Seconds())))
	srv := l.R.Start(t, "iperf3", "-s", "-1", "--forceflush", "-B", l.Target().String(), "-p", strconv.Itoa(iperfPort))
	defer srv.Stop()
	srv.WaitLog(t, `Server listening`, 5*time.Second)
	cpu := startCPU(t, meters)
	start := time.Now()
	args := append([]string{"-c", l.Target().String(), "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(secs), "-i", "0.5", "-P", "1", "--forceflush"}, extraArgs...)
	cli := l.I.Start(t, "iperf3", args...)
	var res ThroughputResult
	var metAt time.Time
	hardStop := start.Add(time.Duration(secs)*time.Second + 10*time.Second) // iperf3 hung
	tick := time.NewTicker(100 * time.Millisecond)
	for !cli.Exited() && time.Now().Before(hardStop) {
		if !res.Met && until() {
			res.Met, metAt = true, time.Now()
			res.Waited = metAt.Sub(start)
		}
		if res.Met && time.Since(metAt) >= settle {
			break
		}
		<-tick.C
	}
	tick.Stop()
	stoppedEarly := !cli.Exited()
	_ = cli.Stop() // iperf3 exits non-zero on SIGTERM ("interrupt - the client has terminated")
	res.Wall = time.Since(start)
	res.CPU = cpu.used(t)
	if !res.Met && until() {
		res.Met = true // in the last moment; Waited stays zero
	}
	out := cli.Log()
	rep, err := parseIperfText(out)
	if err != nil {
		t.Fatalf("swaninterop: iperf3 %s -> %s: %v\nclient log:\n%s\nserver log:\n%s", l.I.Name, l.Target(), err, tail(out, logTail), tail(srv.Log(), logTail))
	}
	if stoppedEarly && len(rep.bps) > 1 {
		// The interval iperf3 closed when it got SIGTERM is a fraction of
		// the others: its rate says little.
		rep = rep.dropLast()
	}
	res.Intervals, res.Retransmits, res.Interval = rep.bps, rep.retransmits, rep.mean()
	res.BitsPerSecond = rep.average()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s %s: %.1f Mbit/s over %v in %d intervals of %v", l.Mode, l.KeyType, direction(extraArgs), res.Mbps(), res.Wall.Round(time.Millisecond), len(res.Intervals), res.Interval.Round(time.Millisecond))
	if !slices.Contains(extraArgs, "-R") {
		fmt.Fprintf(&sb, " (%d TCP retransmits)", res.Retransmits)
	}
	if res.Met {
		fmt.Fprintf(&sb, "; the condition held after %v", res.Waited.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&sb, "; the condition did not hold within %v", limit)
	}
	cpu.report(&sb, res)
	t.Log(sb.String())
	return res
}

// iperfPort is the port of ThroughputUntil's iperf3 server (iperf3's
// default; every namespace has its own port space).
const iperfPort = 5201

func direction(iperfArgs []string) string {
	if slices.Contains(iperfArgs, "-R") {
		return "R->I"
	}
	return "I->R"
}

// cpuMeters measures the processor time of named meters over a run.
type cpuMeters struct {
	names  []string
	meters map[string]CPUMeter
	before map[string]time.Duration
}

func startCPU(t testing.TB, meters map[string]CPUMeter) *cpuMeters {
	t.Helper()
	c := &cpuMeters{names: slices.Sorted(maps.Keys(meters)), meters: meters, before: make(map[string]time.Duration, len(meters))}
	for _, n := range c.names {
		cpu, err := meters[n].CPUTime()
		if err != nil {
			t.Fatalf("swaninterop: CPU time of %s: %v", n, err)
		}
		c.before[n] = cpu
	}
	return c
}

// used is the processor time each meter used since startCPU.
func (c *cpuMeters) used(t testing.TB) map[string]time.Duration {
	t.Helper()
	used := make(map[string]time.Duration, len(c.names))
	for _, n := range c.names {
		cpu, err := c.meters[n].CPUTime()
		if err != nil {
			t.Fatalf("swaninterop: CPU time of %s: %v", n, err)
		}
		used[n] = cpu - c.before[n]
	}
	return used
}

func (c *cpuMeters) report(sb *strings.Builder, res ThroughputResult) {
	for _, n := range c.names {
		fmt.Fprintf(sb, "; %s CPU %v (%.0f%% of wall)", n, res.CPU[n].Round(time.Millisecond), 100*res.CPU[n].Seconds()/res.Wall.Seconds())
	}
}

// Counters are the traffic counters of one CHILD_SA from swanctl --list-sas.
type Counters struct {
	Mode                 string // "TUNNEL-in-UDP" with libipsec
	SPIIn, SPIOut        string // 8 hex digits
	BytesIn, PacketsIn   uint64
	BytesOut, PacketsOut uint64
	LocalTS, RemoteTS    string // the first selector of each side
}

var (
	childLine = regexp.MustCompile(`^\s+(\S+): #\d+, reqid \d+, (\S+), (\S+),`)
	spiLine   = regexp.MustCompile(`^\s+(in|out)\s+([0-9a-f]{8})[^,]*,\s*(\d+) bytes,\s*(\d+) packets`)
	tsLine    = regexp.MustCompile(`^\s+(local|remote)\s+(\d[0-9./]*)\s*$`)
)

// ParseCounters finds the first INSTALLED CHILD_SA named child in the
// output of `swanctl --list-sas` and returns its counters.
func ParseCounters(listSAs, child string) (Counters, error) {
	var c Counters
	found := false
	for _, ln := range strings.Split(listSAs, "\n") {
		if m := childLine.FindStringSubmatch(ln); m != nil {
			if found {
				break // the next child
			}
			if m[1] == child && m[2] == "INSTALLED" {
				found = true
				c.Mode = m[3]
			}
			continue
		}
		if !found {
			continue
		}
		if m := spiLine.FindStringSubmatch(ln); m != nil {
			b, _ := strconv.ParseUint(m[3], 10, 64)
			p, _ := strconv.ParseUint(m[4], 10, 64)
			if m[1] == "in" {
				c.SPIIn, c.BytesIn, c.PacketsIn = m[2], b, p
			} else {
				c.SPIOut, c.BytesOut, c.PacketsOut = m[2], b, p
			}
		} else if m := tsLine.FindStringSubmatch(ln); m != nil {
			if m[1] == "local" && c.LocalTS == "" {
				c.LocalTS = m[2]
			} else if m[1] == "remote" && c.RemoteTS == "" {
				c.RemoteTS = m[2]
			}
		} else if strings.Contains(ln, "#") && !strings.HasPrefix(ln, "    ") {
			break // the next IKE_SA
		}
	}
	if !found {
		return c, fmt.Errorf("swaninterop: no INSTALLED CHILD_SA %q in --list-sas output", child)
	}
	if c.SPIIn == "" || c.SPIOut == "" {
		return c, fmt.Errorf("swaninterop: CHILD_SA %q: no in/out counter lines", child)
	}
	return c, nil
}

// Capture is a tcpdump of UDP traffic on one interface, counting IKE and
// ESP-in-UDP packets (tcpdump decodes port 4500 as NONESP-encap: isakmp and
// UDP-encap: ESP).
type Capture struct {
	p *netns.Process
}

// CaptureStats counts captured packets by kind.
type CaptureStats struct {
	ESPInUDP int // UDP 4500 carrying ESP
	IKE4500  int // UDP 4500 with the non-ESP marker (IKE)
	IKE500   int // UDP 500 (IKE_SA_INIT without NAT-T float)
	Other    int // other UDP
}

// StartCapture starts tcpdump on ifname in ns (UDP only, no name
// resolution, immediate mode, line-buffered) and waits up to 5 s until it listens. It is
// stopped at cleanup if Stats was not called.
func StartCapture(t testing.TB, ns *netns.NS, ifname string) *Capture {
	t.Helper()
	p := ns.Start(t, "tcpdump", "-n", "-l", "--immediate-mode", "-i", ifname, "udp")
	p.WaitLog(t, `listening on `+regexp.QuoteMeta(ifname), 5*time.Second)
	return &Capture{p: p}
}

// Stats stops tcpdump and counts what it saw.
func (c *Capture) Stats() CaptureStats {
	_ = c.p.Stop()
	var s CaptureStats
	for _, ln := range strings.Split(c.p.Log(), "\n") {
		if !strings.Contains(ln, " IP ") {
			continue
		}
		switch {
		case strings.Contains(ln, "UDP-encap: ESP("):
			s.ESPInUDP++
		case strings.Contains(ln, "NONESP-encap: isakmp"):
			s.IKE4500++
		case strings.Contains(ln, ".500: isakmp") || strings.Contains(ln, ".500 > "):
			s.IKE500++
		default:
			s.Other++
		}
	}
	return s
}

// Log is tcpdump's output so far.
func (c *Capture) Log() string { return c.p.Log() }
