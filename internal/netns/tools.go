package netns

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// ErrParse reports output of ping or iperf3 that could not be understood.
var ErrParse = errors.New("netns: cannot parse tool output")

var pingReceived = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)

// Ping runs `ping -c count -W 5 -i 0.2 addr` in the namespace and returns
// how many replies came back. Lost replies are not an error (ping's non-zero
// exit status is ignored); output without ping's summary line fails the test.
//
// Each reply may take up to 5 s: on a loaded machine (the race detector on
// both cores, say) a reply through two tunnels can take over a second, and
// a shorter wait counted it as lost. ping exits as soon as every reply is
// in, so the wait costs nothing when they come.
func (n *NS) Ping(t testing.TB, addr netip.Addr, count int) int {
	t.Helper()
	return n.PingFrom(t, netip.Addr{}, addr, count)
}

// PingFrom is Ping with the source address src (ping -I); the zero Addr
// lets the kernel choose.
func (n *NS) PingFrom(t testing.TB, src, addr netip.Addr, count int) int {
	t.Helper()
	if count < 1 {
		count = 1
	}
	const replyWait = 5 * time.Second
	args := []string{"-n", "-c", strconv.Itoa(count), "-W", strconv.Itoa(int(replyWait.Seconds())), "-i", "0.2"}
	if src.IsValid() {
		args = append(args, "-I", src.String())
	}
	timeout := time.Duration(count)*200*time.Millisecond + replyWait + 5*time.Second
	out, err := n.RunErr(timeout, "ping", append(args, addr.String())...)
	got, perr := parsePing(out)
	if perr != nil {
		t.Fatalf("netns: ping %s from %s: %v (run error: %v)", addr, n.Name, perr, err)
	}
	if got < count {
		// What ping saw of the others (errors, late or duplicate
		// replies), for the test that reports the loss.
		t.Logf("netns: ping %s from %s: %d of %d answered:\n%s", addr, n.Name, got, count, out)
	}
	return got
}

func parsePing(out string) (int, error) {
	m := pingReceived.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%w: no ping summary in %q", ErrParse, out)
	}
	return strconv.Atoi(m[2])
}

// IperfResult is the outcome of one iperf3 run.
type IperfResult struct {
	// BitsPerSecond is the receiver's average goodput.
	BitsPerSecond float64
	// Intervals holds the bits/s of each 0.5 s reporting interval as seen by
	// the client, so callers can look for stalls (e.g. across a
	// renegotiation).
	Intervals []float64
	// Retransmits counts TCP retransmissions by the sender.
	Retransmits int
}

// iperfPort is iperf3's default; every namespace has its own port space.
const iperfPort = 5201

// Iperf3 runs an iperf3 server in server (bound to serverAddr, one test
// only) and an iperf3 client in client for d (TCP, one stream, JSON output,
// 0.5 s intervals), and returns the parsed result. extraArgs go to the
// client (e.g. "-R" to send from server to client). The whole run is bounded
// by d + 10 s.
func Iperf3(t testing.TB, client, server *NS, serverAddr netip.Addr, d time.Duration, extraArgs ...string) IperfResult {
	t.Helper()
	secs := int(math.Ceil(d.Seconds()))
	if secs < 1 {
		secs = 1
	}
	deadline := time.Now().Add(time.Duration(secs)*time.Second + 10*time.Second)
	srv := server.Start(t, "iperf3", "-s", "-1", "--forceflush", "-B", serverAddr.String(), "-p", strconv.Itoa(iperfPort))
	defer srv.Stop()
	srv.WaitLog(t, `Server listening`, 5*time.Second)
	args := append([]string{"-c", serverAddr.String(), "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(secs), "-i", "0.5", "-P", "1", "-J"}, extraArgs...)
	out, err := client.RunErr(time.Until(deadline), "iperf3", args...)
	res, perr := parseIperf([]byte(out))
	if perr != nil {
		t.Fatalf("netns: iperf3 %s -> %s: %v (run error: %v)\nserver log:\n%s", client.Name, serverAddr, perr, err, tail(srv.Log(), logTail))
	}
	return res
}

type iperfJSON struct {
	Error     string `json:"error"`
	Intervals []struct {
		Sum struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum"`
	} `json:"intervals"`
	End struct {
		SumSent struct {
			Retransmits int `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

func parseIperf(out []byte) (IperfResult, error) {
	var j iperfJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return IperfResult{}, fmt.Errorf("%w: iperf3 JSON: %w: %q", ErrParse, err, tail(string(out), 2048))
	}
	if j.Error != "" {
		return IperfResult{}, fmt.Errorf("%w: iperf3 reports: %s", ErrCommand, j.Error)
	}
	if len(j.Intervals) == 0 {
		return IperfResult{}, fmt.Errorf("%w: iperf3 JSON has no intervals", ErrParse)
	}
	res := IperfResult{
		BitsPerSecond: j.End.SumReceived.BitsPerSecond,
		Retransmits:   j.End.SumSent.Retransmits,
		Intervals:     make([]float64, 0, len(j.Intervals)),
	}
	for _, iv := range j.Intervals {
		res.Intervals = append(res.Intervals, iv.Sum.BitsPerSecond)
	}
	return res, nil
}
