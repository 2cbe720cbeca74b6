package ingest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/signal"
)

// Breaker is a circuit breaker around a tier (Postgres). After a failed
// write it opens: its Gate reports the tier unavailable, so new batches go
// straight to the next tier instead of each waiting for a write timeout
// against a dead database. While open, one probe (store.Ping) runs every
// interval; the first success closes the breaker. Only state changes are
// logged.
type Breaker struct {
	tier     Tier
	probe    func(ctx context.Context) error
	interval time.Duration
	log      hclog.Logger

	open     atomic.Bool
	openedAt atomic.Int64 // unix ns

	mu        sync.Mutex
	probing   bool
	stop      chan struct{}
	closed    bool
	wg        sync.WaitGroup
	onRecover []func()

	opens, probes, probeFailures, trips atomic.Uint64
}

var (
	_ Tier = (*Breaker)(nil)
	_ Gate = (*Breaker)(nil)
)

// NewBreaker wraps tier. probe checks the service behind it; interval is
// how often it runs while the breaker is open.
func NewBreaker(tier Tier, probe func(ctx context.Context) error, interval time.Duration, log hclog.Logger) *Breaker {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Breaker{tier: tier, probe: probe, interval: interval, log: log, stop: make(chan struct{})}
}

// OnRecover registers fn to run (in the probe goroutine) each time the
// breaker closes again, e.g. to start replaying backlogs at once.
func (b *Breaker) OnRecover(fn func()) {
	b.mu.Lock()
	b.onRecover = append(b.onRecover, fn)
	b.mu.Unlock()
}

// Name is the wrapped tier's name.
func (b *Breaker) Name() string { return b.tier.Name() }

// Available reports whether the breaker is closed (the tier may be used).
func (b *Breaker) Available() bool { return !b.open.Load() }

// Write writes through to the tier; a failure opens the breaker. A
// *PartialError (some records refused for their data, the rest stored) is
// no failure of the tier: it does not open the breaker.
func (b *Breaker) Write(ctx context.Context, batch []signal.Signal) error {
	err := b.tier.Write(ctx, batch)
	var partial *PartialError
	if err != nil && !errors.As(err, &partial) {
		b.Trip(err)
		return err
	}
	if b.open.Load() {
		// A last-resort write went through: the tier is back.
		b.recover("write succeeded")
	}
	return err
}

// Trip opens the breaker (if closed) and starts probing.
func (b *Breaker) Trip(cause error) {
	b.trips.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.open.Store(true)
		return
	}
	if !b.open.Swap(true) {
		b.openedAt.Store(time.Now().UnixNano())
		b.opens.Add(1)
		b.log.Warn("circuit open: sending batches to the next tier until the probe succeeds",
			"tier", b.tier.Name(), "probe_every", b.interval, "error", cause)
	}
	if !b.probing {
		b.probing = true
		b.wg.Add(1)
		go b.probeLoop()
	}
}

func (b *Breaker) probeLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.mu.Lock()
		if !b.open.Load() { // closed by a successful write meanwhile
			b.probing = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), b.interval)
		b.probes.Add(1)
		err := b.probe(ctx)
		cancel()
		if err != nil {
			b.probeFailures.Add(1)
			continue
		}
		b.recover("probe succeeded")
	}
}

// recover closes the breaker (if open) and runs the OnRecover hooks.
func (b *Breaker) recover(why string) {
	b.mu.Lock()
	if !b.open.Load() {
		b.mu.Unlock()
		return
	}
	b.open.Store(false)
	fns := append([]func(){}, b.onRecover...)
	b.mu.Unlock()
	b.log.Info("circuit closed", "tier", b.tier.Name(), "reason", why,
		"open_for", time.Since(time.Unix(0, b.openedAt.Load())).Round(time.Millisecond))
	for _, fn := range fns {
		fn()
	}
}

// Close stops probing.
func (b *Breaker) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// BreakerStats is a snapshot of a breaker.
type BreakerStats struct {
	Tier          string
	Open          bool
	OpenFor       time.Duration // how long it has been open (0 when closed)
	Opens         uint64        // closed → open transitions
	Trips         uint64        // failed writes seen
	Probes        uint64
	ProbeFailures uint64
}

// Stats returns a snapshot.
func (b *Breaker) Stats() BreakerStats {
	s := BreakerStats{Tier: b.tier.Name(), Open: b.open.Load(), Opens: b.opens.Load(), Trips: b.trips.Load(),
		Probes: b.probes.Load(), ProbeFailures: b.probeFailures.Load()}
	if s.Open {
		s.OpenFor = time.Since(time.Unix(0, b.openedAt.Load()))
	}
	return s
}
