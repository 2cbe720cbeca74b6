package failover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetcore/fleetcore/core/health"
	"github.com/fleetcore/fleetcore/core/metrics"
)

var (
	_ metrics.Collector = (*Broker)(nil)
	_ health.Checker    = (*Broker)(nil)
)

// Collect writes the publisher's, the queue's and the replay's counters.
func (b *Broker) Collect(w *metrics.Writer) {
	st := b.Stats()
	w.Gauge("fleetcore_failover_connected", "1 while the failover publisher is connected.", metrics.Bool(st.Connected))
	w.Counter("fleetcore_failover_published_batches_total", "Batches confirmed by the failover broker.", float64(st.Published))
	w.Counter("fleetcore_failover_published_signals_total", "Signals confirmed by the failover broker.", float64(st.PublishedSignals))
	w.Counter("fleetcore_failover_failures_total", "Failover batches not confirmed.", float64(st.Failures))
	w.Gauge("fleetcore_failover_backlog_batches", "Batches waiting in the failover queue (-1 unknown).", float64(st.Backlog))
	w.Gauge("fleetcore_failover_dead_letter_batches", "Batches in the dead-letter queue (-1 unknown).", float64(st.DeadLetterBacklog))
	w.Gauge("fleetcore_failover_oldest_seconds", "Age of the oldest batch waiting in the failover queue.", st.OldestAge.Seconds())
	w.Counter("fleetcore_failover_replayed_signals_total", "Signals replayed from the failover queue into Postgres.", float64(st.ReplayedSignals))
}

// Check is the "rabbitmq" service check: failing while the publisher is
// not connected, degraded with a backlog or dead-lettered batches.
func (b *Broker) Check(context.Context) (string, string) {
	st := b.Stats()
	if !st.Connected {
		return health.StatusFail, "failover publisher not connected"
	}
	detail := fmt.Sprintf("connected (%s queue)", st.QueueType)
	switch {
	case st.DeadLetterBacklog > 0:
		return health.StatusWarn, fmt.Sprintf("%s; %d batches dead-lettered (undecodable or given up after repeated failures; queue %s)",
			detail, st.DeadLetterBacklog, b.opt.DeadLetter)
	case st.Backlog > 0:
		return health.StatusWarn, fmt.Sprintf("%s; failover backlog %d batches, oldest %s", detail, st.Backlog, st.OldestAge.Round(time.Second))
	}
	return health.StatusOK, detail + ", failover queue empty"
}

// errNotConnected is Ready's answer while the publisher is down.
var errNotConnected = errors.New("failover broker not connected")

// Ready reports an error while the publisher cannot take a batch (the
// node's /readyz).
func (b *Broker) Ready(context.Context) error {
	if !b.Available() {
		return errNotConnected
	}
	return nil
}
