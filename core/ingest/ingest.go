package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/semaphore"

	"github.com/fleetcore/fleetcore/signal"
)

// Tier is one durability tier. Write must return nil only when the whole
// batch is durable in that tier; an unclear outcome is an error. A tier
// that refuses some records for their data and made every other record
// durable returns a *PartialError naming the refused ones: the batch is
// done (no later tier is tried), the frames of the refused records fail
// with ErrRefused and every other frame is acked.
type Tier interface {
	// Name is the tier's path label stored with each signal (direct,
	// failover, spool).
	Name() string
	Write(ctx context.Context, batch []signal.Signal) error
}

// Gate is an optional Tier capability: a tier that is known to be down
// (an open circuit breaker) says so and is skipped without a write attempt.
type Gate interface {
	Available() bool
}

// Errors.
var (
	// ErrClosed: Submit after Close.
	ErrClosed = errors.New("ingest closed")
	// ErrNotDurable: every tier refused the batch.
	ErrNotDurable = errors.New("no tier could store the batch")
	// ErrRefused: the store refused a record of the frame for its data
	// (Postgres will never take it, so no other tier holds it for a
	// replay); the frame must not be acked. The rest of its batch is
	// durable.
	ErrRefused = errors.New("record refused by the store")
)

// PartialError is a Tier's answer for a batch it stored except the
// records Refused (indices into the batch, ascending; Reasons[i] says why
// Refused[i] was refused): everything else is durable in that tier.
type PartialError struct {
	Refused []int
	Reasons []string
}

func (e *PartialError) Error() string {
	if len(e.Reasons) == 0 {
		return fmt.Sprintf("%d records refused", len(e.Refused))
	}
	return fmt.Sprintf("%d records refused (first: %s)", len(e.Refused), e.Reasons[0])
}

// Config tunes the batcher.
type Config struct {
	MaxSignals   int           // flush when a batch holds this many signals
	MaxAge       time.Duration // flush when the oldest submission waited this long
	QueueSignals int           // bound on signals waiting or in flight
	Writers      int           // concurrent batch writes
	// ParallelMin is the size a batch must reach to be written while
	// another write is in flight; smaller ones keep collecting until a
	// write finishes. One large COPY costs Postgres less per row than two
	// concurrent small ones, so the second writer only helps once the
	// load outgrows one (default MaxSignals/4; 1 = always write at once).
	ParallelMin  int
	WriteTimeout time.Duration // per tier write
}

func (c *Config) defaults() {
	if c.MaxSignals <= 0 {
		c.MaxSignals = 4096
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 10 * time.Millisecond
	}
	if c.QueueSignals < c.MaxSignals {
		c.QueueSignals = 16 * c.MaxSignals
	}
	if c.Writers <= 0 {
		c.Writers = 2
	}
	if c.ParallelMin <= 0 {
		c.ParallelMin = max(c.MaxSignals/4, 1)
	}
	c.ParallelMin = min(c.ParallelMin, c.MaxSignals)
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
}

// Ticket resolves when the submitted signals are durable or known not to be.
type Ticket struct {
	done      chan struct{}
	err       error
	path      string
	submitted time.Time
}

// Done is closed when the ticket resolves.
func (t *Ticket) Done() <-chan struct{} { return t.done }

// Err is nil when the signals are durable; valid after Done.
func (t *Ticket) Err() error { return t.err }

// Path is the tier that stored the signals; valid after Done.
func (t *Ticket) Path() string { return t.path }

// Wait blocks until the ticket resolves or ctx ends.
func (t *Ticket) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type submission struct {
	sigs   []signal.Signal
	ticket *Ticket
}

type batch struct {
	subs  []submission
	count int
}

// TierStats counts one tier's work.
type TierStats struct {
	Name     string
	Batches  uint64
	Signals  uint64
	Failures uint64
	Skipped  uint64 // batches not tried because the tier's gate was closed
	Down     bool   // last write failed or gate closed
}

// Stats is a snapshot of the batcher's counters.
type Stats struct {
	Submitted   uint64 // signals submitted
	Durable     uint64 // signals resolved durable
	NotDurable  uint64 // signals resolved not durable (frames left unacked)
	Refused     uint64 // signals the first tier refused for their data (frames left unacked)
	Batches     uint64
	Pending     int64 // signals waiting or in flight
	BatchSizes  *Histogram
	WriteMillis *Histogram
	// DurableMillis is, per frame, the time from Submit to its batch being
	// durable (or failed): what a device's ack waits for inside the
	// batcher, group-commit wait included.
	DurableMillis *Histogram
	Tiers         []TierStats
}

type tierState struct {
	tier     Tier
	batches  atomic.Uint64
	signals  atomic.Uint64
	failures atomic.Uint64
	skipped  atomic.Uint64
	down     atomic.Bool
}

// Batcher is the group-commit core.
type Batcher struct {
	cfg   Config
	log   hclog.Logger
	tiers []*tierState
	sem   *semaphore.Weighted

	in   chan submission
	work chan *batch
	// busy counts batches handed to writers and not yet written; freed
	// tells collect that a write finished.
	busy  atomic.Int64
	freed chan struct{}

	mu     sync.RWMutex // guards closed against concurrent Submit
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup

	submitted, durable, notDurable, batches atomic.Uint64
	refused                                 atomic.Uint64
	pending                                 atomic.Int64
	batchSizes, writeMillis, durableMillis  *Histogram
}

// New makes a batcher over the tiers, tried in order. Start it with Start.
func New(cfg Config, log hclog.Logger, tiers ...Tier) *Batcher {
	cfg.defaults()
	b := &Batcher{
		cfg:           cfg,
		log:           log,
		sem:           semaphore.NewWeighted(int64(cfg.QueueSignals)),
		in:            make(chan submission, 1024),
		work:          make(chan *batch),
		freed:         make(chan struct{}, 1),
		stop:          make(chan struct{}),
		batchSizes:    NewHistogram(1, 8, 64, 256, 1024, 4096, 16384, 65536),
		writeMillis:   NewHistogram(1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000),
		durableMillis: NewHistogram(1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000),
	}
	for _, t := range tiers {
		b.tiers = append(b.tiers, &tierState{tier: t})
	}
	return b
}

// Start runs the collector and writers until Close.
func (b *Batcher) Start() {
	b.wg.Add(1)
	go b.collect()
	for i := 0; i < b.cfg.Writers; i++ {
		b.wg.Add(1)
		go b.write()
	}
}

// Submit hands over one frame's signals. It blocks while the queue is full
// (backpressure) until ctx ends. A frame without signals needs no ticket:
// callers ack it directly.
func (b *Batcher) Submit(ctx context.Context, sigs []signal.Signal) (*Ticket, error) {
	n := int64(len(sigs))
	if n > int64(b.cfg.QueueSignals) {
		return nil, fmt.Errorf("submitting %d signals: more than the ingest queue holds (%d)", n, b.cfg.QueueSignals)
	}
	if err := b.sem.Acquire(ctx, n); err != nil {
		return nil, fmt.Errorf("waiting for ingest queue: %w", err)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.sem.Release(n)
		return nil, ErrClosed
	}
	t := &Ticket{done: make(chan struct{}), submitted: time.Now()}
	b.pending.Add(n)
	b.submitted.Add(uint64(n))
	select {
	case b.in <- submission{sigs: sigs, ticket: t}:
		return t, nil
	case <-ctx.Done():
		b.pending.Add(-n)
		b.sem.Release(n)
		return nil, fmt.Errorf("submitting to ingest: %w", ctx.Err())
	}
}

func (b *Batcher) collect() {
	defer b.wg.Done()
	defer close(b.work)
	cur := &batch{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	ready := false
	in := b.in
	for {
		var out chan<- *batch
		accept := in
		if cur.count >= b.cfg.MaxSignals {
			accept = nil
			ready = true
		}
		if ready && cur.count > 0 && (b.busy.Load() == 0 || cur.count >= b.cfg.ParallelMin) {
			out = b.work
		}
		select {
		case s, ok := <-accept:
			if !ok {
				// Drained: flush what is left and stop.
				for cur.count > 0 {
					b.busy.Add(1)
					b.work <- cur
					cur = &batch{}
				}
				return
			}
			if cur.count == 0 {
				timer.Reset(b.cfg.MaxAge)
			}
			cur.subs = append(cur.subs, s)
			cur.count += len(s.sigs)
		case <-timer.C:
			ready = true
		case <-b.freed:
			// A write finished: a batch held back for it may go now.
		case out <- cur:
			b.busy.Add(1)
			cur = &batch{}
			ready = false
			timer.Stop()
		}
	}
}

func (b *Batcher) write() {
	defer b.wg.Done()
	for bt := range b.work {
		b.flush(bt)
		b.busy.Add(-1)
		select {
		case b.freed <- struct{}{}:
		default:
		}
	}
}

func (b *Batcher) flush(bt *batch) {
	sigs := make([]signal.Signal, 0, bt.count)
	for _, s := range bt.subs {
		sigs = append(sigs, s.sigs...)
	}
	start := time.Now()
	path, partial, err := b.writeChain(sigs)
	b.writeMillis.Observe(float64(time.Since(start).Milliseconds()))
	b.batchSizes.Observe(float64(len(sigs)))
	b.batches.Add(1)
	n := uint64(len(sigs))
	var refused map[int]error // submission → why a record of it was refused
	switch {
	case err != nil:
		b.notDurable.Add(n)
	case partial != nil:
		refused = refusedSubs(bt.subs, partial)
		b.refused.Add(uint64(len(partial.Refused)))
		b.durable.Add(n - uint64(len(partial.Refused)))
	default:
		b.durable.Add(n)
	}
	done := time.Now()
	for i, s := range bt.subs {
		s.ticket.err, s.ticket.path = err, path
		if rerr, ok := refused[i]; ok {
			s.ticket.err, s.ticket.path = rerr, ""
		}
		b.durableMillis.Observe(float64(done.Sub(s.ticket.submitted).Microseconds()) / 1000)
		close(s.ticket.done)
	}
	b.pending.Add(-int64(n))
	b.sem.Release(int64(n))
}

// refusedSubs maps the refused records of a batch (indices into the
// concatenated signals of subs) to the submissions that carried them.
func refusedSubs(subs []submission, p *PartialError) map[int]error {
	out := map[int]error{}
	sub, end := 0, 0
	if len(subs) > 0 {
		end = len(subs[0].sigs)
	}
	for k, i := range p.Refused {
		for sub < len(subs) && i >= end {
			sub++
			if sub < len(subs) {
				end += len(subs[sub].sigs)
			}
		}
		if sub == len(subs) {
			break
		}
		if _, ok := out[sub]; ok {
			continue
		}
		reason := "refused"
		if k < len(p.Reasons) {
			reason = p.Reasons[k]
		}
		out[sub] = fmt.Errorf("%w: %s", ErrRefused, reason)
	}
	return out
}

// writeChain tries the tiers in order. partial is set when the tier that
// took the batch refused some of its records.
func (b *Batcher) writeChain(sigs []signal.Signal) (string, *PartialError, error) {
	var errs []error
	var gated []*tierState
	for _, ts := range b.tiers {
		if g, ok := ts.tier.(Gate); ok && !g.Available() {
			ts.skipped.Add(1)
			b.setDown(ts, true, errors.New("gate closed"))
			gated = append(gated, ts)
			continue
		}
		path, partial, err := b.tryTier(ts, sigs)
		if err == nil {
			return path, partial, nil
		}
		errs = append(errs, err)
	}
	// Every open tier failed: a tier skipped by its gate (an open breaker)
	// gets one attempt as the last resort before the frame goes unacked.
	for _, ts := range gated {
		path, partial, err := b.tryTier(ts, sigs)
		if err == nil {
			return path, partial, nil
		}
		errs = append(errs, err)
	}
	return "", nil, fmt.Errorf("%w: %w", ErrNotDurable, errors.Join(errs...))
}

func (b *Batcher) tryTier(ts *tierState, sigs []signal.Signal) (string, *PartialError, error) {
	name := ts.tier.Name()
	for i := range sigs {
		sigs[i].Path = name
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.WriteTimeout)
	err := ts.tier.Write(ctx, sigs)
	cancel()
	var partial *PartialError
	if err == nil || errors.As(err, &partial) {
		stored := len(sigs)
		if partial != nil {
			stored -= len(partial.Refused)
		}
		ts.batches.Add(1)
		ts.signals.Add(uint64(stored))
		b.setDown(ts, false, nil)
		return name, partial, nil
	}
	ts.failures.Add(1)
	b.setDown(ts, true, err)
	return "", nil, fmt.Errorf("%s: %w", name, err)
}

// setDown logs only on state changes.
func (b *Batcher) setDown(ts *tierState, down bool, err error) {
	if ts.down.Swap(down) == down {
		return
	}
	if down {
		b.log.Warn("durability tier down", "tier", ts.tier.Name(), "error", err)
	} else {
		b.log.Info("durability tier up", "tier", ts.tier.Name())
	}
}

// Close stops accepting submissions, flushes everything queued and waits
// for the writers, or until ctx ends.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.in)
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing ingest: %w", ctx.Err())
	}
}

// Stats returns a snapshot of the counters.
func (b *Batcher) Stats() Stats {
	s := Stats{
		Submitted:     b.submitted.Load(),
		Durable:       b.durable.Load(),
		NotDurable:    b.notDurable.Load(),
		Refused:       b.refused.Load(),
		Batches:       b.batches.Load(),
		Pending:       b.pending.Load(),
		BatchSizes:    b.batchSizes,
		WriteMillis:   b.writeMillis,
		DurableMillis: b.durableMillis,
	}
	for _, ts := range b.tiers {
		s.Tiers = append(s.Tiers, TierStats{
			Name: ts.tier.Name(), Batches: ts.batches.Load(), Signals: ts.signals.Load(),
			Failures: ts.failures.Load(), Skipped: ts.skipped.Load(), Down: ts.down.Load(),
		})
	}
	return s
}
