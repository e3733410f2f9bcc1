package swaninterop

import (
	"errors"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
)

// The output of an iperf3 3.12 client with -R, stopped by SIGTERM.
const iperfReverseStopped = `Connecting to host 127.0.0.1, port 5201
Reverse mode, remote host 127.0.0.1 is sending
[  5] local 127.0.0.1 port 60058 connected to 127.0.0.1 port 5201
[ ID] Interval           Transfer     Bitrate
[  5]   0.00-0.10   sec  1.25 MBytes   105 Mbits/sec                  
[  5]   0.10-0.20   sec  1.12 MBytes  94.4 Mbits/sec                  
[  5]   0.20-0.31   sec   384 KBytes  28.6 Mbits/sec                  
[  5]   0.31-0.40   sec  0.00 Bytes  0.00 bits/sec                  
[  5]   0.40-0.42   sec   384 KBytes   157 Mbits/sec                  
iperf3: interrupt - the client has terminated
- - - - - - - - - - - - - - - - - - - - - - - - -
[ ID] Interval           Transfer     Bitrate
[  5]   0.00-0.42   sec  0.00 Bytes  0.00 bits/sec                  sender
[  5]   0.00-0.42   sec  3.12 MBytes  62.4 Mbits/sec                  receiver
`

// The output of an iperf3 3.12 client sending, run to its end.
const iperfForward = `Connecting to host 10.232.0.1, port 5201
[  5] local 10.233.0.1 port 47850 connected to 10.232.0.1 port 5201
[ ID] Interval           Transfer     Bitrate         Retr  Cwnd
[  5]   0.00-0.50   sec  13.1 MBytes   221 Mbits/sec   18    587 KBytes       
[  5]   0.50-1.00   sec  10.6 MBytes   178 Mbits/sec    7    363 KBytes       
[  5]   1.00-1.50   sec  1.05 GBytes  1.81 Gbits/sec    0   1.02 MBytes       
- - - - - - - - - - - - - - - - - - - - - - - - -
[ ID] Interval           Transfer     Bitrate         Retr
[  5]   0.00-1.50   sec  1.07 GBytes  6.14 Gbits/sec   25             sender
[  5]   0.00-1.50   sec  1.07 GBytes  6.13 Gbits/sec                  receiver

iperf Done.
`

func TestParseIperfText(t *testing.T) {
	r, err := parseIperfText(iperfReverseStopped)
	if err != nil {
		t.Fatal(err)
	}
	wantBPS := []float64{105e6, 94.4e6, 28.6e6, 0, 157e6}
	wantLen := []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 110 * time.Millisecond, 90 * time.Millisecond, 20 * time.Millisecond}
	if len(r.bps) != len(wantBPS) || r.retransmits != 0 {
		t.Fatalf("got %v %v, %d retransmits", r.bps, r.lengths, r.retransmits)
	}
	for i := range wantBPS {
		if diff := r.bps[i] - wantBPS[i]; diff > 1 || diff < -1 || r.lengths[i] != wantLen[i] {
			t.Errorf("interval %d: %v bit/s over %v, want %v over %v", i, r.bps[i], r.lengths[i], wantBPS[i], wantLen[i])
		}
	}
	r = r.dropLast()
	if len(r.bps) != 4 || r.mean() != 100*time.Millisecond {
		t.Errorf("without the last: %d intervals of %v", len(r.bps), r.mean())
	}
	if got, want := r.average(), (105e6*0.1+94.4e6*0.1+28.6e6*0.11)/0.4; got < want-1 || got > want+1 {
		t.Errorf("average %v, want %v", got, want)
	}

	r, err = parseIperfText(iperfForward)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.bps) != 3 || r.bps[2] != 1.81e9 || r.retransmits != 25 || r.mean() != 500*time.Millisecond {
		t.Errorf("got %v %v, %d retransmits", r.bps, r.lengths, r.retransmits)
	}

	if _, err := parseIperfText("iperf3: error - unable to connect to server: Connection refused\n"); !errors.Is(err, netns.ErrCommand) {
		t.Errorf("connection refused: %v", err)
	}
	if _, err := parseIperfText("Connecting to host 10.232.0.1, port 5201\n"); !errors.Is(err, netns.ErrParse) {
		t.Errorf("no intervals: %v", err)
	}
}
