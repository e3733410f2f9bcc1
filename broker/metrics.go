package broker

import (
	"fmt"
	"net/http"
	"strings"
)

// MetricsHandler serves the broker's counters in the Prometheus text
// exposition format (version 0.0.4): forwarded and dropped packets by
// reason, and the sessions online. It writes the format by hand, which is
// a dozen lines, rather than pulling in the Prometheus client library.
func (b *Broker) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := b.sw.Stats()
		b.mu.Lock()
		online := len(b.online)
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
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(sb.String()))
	})
}
