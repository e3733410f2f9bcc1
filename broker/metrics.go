package broker

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/remotegate/remotegate/tunnel"
)

// MetricsHandler serves the broker's counters in the Prometheus text
// exposition format (version 0.0.4): forwarded and dropped packets by
// reason, the sessions online, the bytes they carried, and a histogram of
// handshake durations. It writes the format by hand, which is
// a dozen lines, rather than pulling in the Prometheus client library.
func (b *Broker) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := b.sw.Stats()
		b.mu.Lock()
		online := len(b.online)
		in, out := b.closedIn, b.closedOut
		for _, s := range b.online {
			if r, ok := s.(tunnel.Reporter); ok {
				c := r.Counters()
				in, out = in+c.BytesIn, out+c.BytesOut
			}
		}
		hs := b.handshakes
		b.mu.Unlock()
		var sb strings.Builder
		sb.WriteString("# HELP remotegate_sessions Participants with a live tunnel.\n# TYPE remotegate_sessions gauge\n")
		fmt.Fprintf(&sb, "remotegate_sessions %d\n", online)
		sb.WriteString("# HELP remotegate_switch_forwarded_packets_total Packets the switch sent on to a session.\n# TYPE remotegate_switch_forwarded_packets_total counter\n")
		fmt.Fprintf(&sb, "remotegate_switch_forwarded_packets_total %d\n", st.Forwarded)
		sb.WriteString("# HELP remotegate_switch_dropped_packets_total Packets the switch dropped, by reason.\n# TYPE remotegate_switch_dropped_packets_total counter\n")
		for reason, n := range st.Dropped {
			fmt.Fprintf(&sb, "remotegate_switch_dropped_packets_total{reason=%q} %d\n", strings.ReplaceAll(DropReason(reason).String(), " ", "_"), n)
		}
		sb.WriteString("# HELP remotegate_tunnel_bytes_total Bytes of encrypted packets received from and sent to participants.\n# TYPE remotegate_tunnel_bytes_total counter\n")
		fmt.Fprintf(&sb, "remotegate_tunnel_bytes_total{direction=\"in\"} %d\nremotegate_tunnel_bytes_total{direction=\"out\"} %d\n", in, out)
		sb.WriteString("# HELP remotegate_handshake_seconds Time from a participant's first packet to its data channel.\n# TYPE remotegate_handshake_seconds histogram\n")
		hs.write(&sb, "remotegate_handshake_seconds")
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(sb.String()))
	})
}

// histogramBounds are the upper bounds, in seconds, of the handshake
// histogram's buckets: a handshake on a LAN takes milliseconds, one over a
// mobile link or with a smartcard seconds.
var histogramBounds = [...]float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// histogram is a fixed-bucket Prometheus histogram; the broker's lock
// guards it.
type histogram struct {
	counts [len(histogramBounds)]uint64 // cumulative on output, not here
	count  uint64
	sum    float64
}

func (h *histogram) observe(v float64) {
	for i, le := range histogramBounds {
		if v <= le {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += v
}

func (h histogram) write(sb *strings.Builder, name string) {
	var cum uint64
	for i, le := range histogramBounds {
		cum += h.counts[i]
		fmt.Fprintf(sb, "%s_bucket{le=\"%g\"} %d\n", name, le, cum)
	}
	fmt.Fprintf(sb, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.count, name, h.sum, name, h.count)
}
