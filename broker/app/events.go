package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/policy"
)

// eventQueue writes events to the store's log from its own goroutine: the
// broker reports them while holding its lock, and a database write must
// not stall connects. When the queue is full, events are counted and
// dropped rather than blocking the data path.
type eventQueue struct {
	st      *store.Store
	log     *slog.Logger
	now     func() time.Time
	ch      chan store.Event
	dropped atomic.Uint64
	done    sync.WaitGroup
}

func newEventQueue(st *store.Store, log *slog.Logger, now func() time.Time) *eventQueue {
	q := &eventQueue{st: st, log: log, now: now, ch: make(chan store.Event, 1024)}
	q.done.Add(1)
	go q.run()
	return q
}

func (q *eventQueue) run() {
	defer q.done.Done()
	for e := range q.ch {
		if _, err := q.st.Append(context.Background(), e); err != nil {
			q.log.Error("event log", "error", err)
		}
	}
}

func (q *eventQueue) add(e store.Event) {
	if e.Time.IsZero() {
		e.Time = q.now()
	}
	select {
	case q.ch <- e:
	default:
		q.dropped.Add(1)
	}
}

// authFailure records a refused handshake. The name is what the peer
// claims, from a certificate that failed verification: one that follows
// the rule for names is recorded as it is, any other quoted and cut short,
// so that the log holds neither a subject of kilobytes nor a line break.
func (q *eventQueue) authFailure(name, msg string, attrs map[string]string) {
	if name != "" && policy.ValidName(name) != nil {
		name = fmt.Sprintf("%.64q", name)
	}
	q.add(store.Event{Kind: "auth_failure", Participant: name, Message: msg, Attrs: attrs})
}

func (q *eventQueue) fromBroker(e broker.Event) {
	q.add(store.Event{Kind: e.Kind, Participant: e.Participant, Message: e.Message, Attrs: e.Attrs})
}

// close writes what is queued and stops.
func (q *eventQueue) close() {
	close(q.ch)
	q.done.Wait()
}

// summarizeDrops records policy drops in the event log as one summary a
// minute at most, never one event per packet.
func summarizeDrops(ctx context.Context, b *broker.Broker, q *eventQueue) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	last := b.Switch().Stats().Dropped[broker.DropPolicy]
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := b.Switch().Stats().Dropped[broker.DropPolicy]
		if n := now - last; n > 0 {
			q.add(store.Event{Kind: "policy_drop", Message: fmt.Sprintf("%d packets dropped by the access rules in the last minute", n)})
		}
		last = now
	}
}
