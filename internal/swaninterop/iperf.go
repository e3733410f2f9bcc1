package swaninterop

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// iperfLine is one interval report of iperf3's text output, e.g.
//
//	[  5]   0.00-0.10   sec  2.50 MBytes   210 Mbits/sec    12    587 KBytes
//
// (retransmits and congestion window only where the client sends), or a
// line of the final summary, which ends in "sender" or "receiver".
var iperfLine = regexp.MustCompile(`^\[\s*\d+\]\s+(\d+\.\d+)-(\d+\.\d+)\s+sec\s+\S+\s+\S*Bytes\s+(\d+(?:\.\d+)?)\s+([KMGT]?)bits/sec(?:\s+(\d+)\s+\S+\s+\S*Bytes)?\s*(sender|receiver)?\s*$`)

// iperfReport is what parseIperfText found: per interval the bits/s and
// the length, and the sender's retransmits summed over the intervals
// (none are reported where the client receives, with -R).
type iperfReport struct {
	bps         []float64
	lengths     []time.Duration
	retransmits int
}

var unitScale = map[string]float64{"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}

// parseIperfText reads the interval reports of an iperf3 client's text
// output (one stream), leaving out the final summary. An iperf3 error
// other than the interrupt of a client stopped by a signal, or output
// without intervals, is an error.
func parseIperfText(out string) (iperfReport, error) {
	var r iperfReport
	for _, ln := range strings.Split(out, "\n") {
		ln = strings.TrimRight(ln, " \r")
		if strings.HasPrefix(ln, "iperf3: ") && !strings.Contains(ln, "interrupt - the client has terminated") {
			return r, fmt.Errorf("%w: %s", netns.ErrCommand, ln)
		}
		m := iperfLine.FindStringSubmatch(ln)
		if m == nil || m[6] != "" {
			continue
		}
		from, _ := strconv.ParseFloat(m[1], 64)
		to, _ := strconv.ParseFloat(m[2], 64)
		rate, _ := strconv.ParseFloat(m[3], 64)
		if to <= from {
			continue
		}
		r.bps = append(r.bps, rate*unitScale[m[4]])
		r.lengths = append(r.lengths, time.Duration((to-from)*float64(time.Second)).Round(time.Millisecond))
		if m[5] != "" {
			n, _ := strconv.Atoi(m[5])
			r.retransmits += n
		}
	}
	if len(r.bps) == 0 {
		return r, fmt.Errorf("%w: no iperf3 interval reports", netns.ErrParse)
	}
	return r, nil
}

// dropLast leaves out the last interval.
func (r iperfReport) dropLast() iperfReport {
	n := len(r.bps) - 1
	return iperfReport{bps: r.bps[:n], lengths: r.lengths[:n], retransmits: r.retransmits}
}

// mean is the mean length of the intervals.
func (r iperfReport) mean() time.Duration {
	var sum time.Duration
	for _, d := range r.lengths {
		sum += d
	}
	return sum / time.Duration(len(r.lengths))
}

// average is the bits/s over all the intervals.
func (r iperfReport) average() float64 {
	var bits, secs float64
	for i, v := range r.bps {
		bits += v * r.lengths[i].Seconds()
		secs += r.lengths[i].Seconds()
	}
	return bits / secs
}
