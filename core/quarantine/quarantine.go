package quarantine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Rejection is one refused frame as the gateway reports it.
type Rejection struct {
	Recv       time.Time
	RemoteAddr string
	Listener   string
	Protocol   string
	DeviceID   string
	Reason     string
	// Raw is read only during Reject, which copies what it keeps: the
	// caller may reuse the buffer afterwards.
	Raw []byte
}

// Row is a rejection as it is stored: every text sanitized (see Sanitize)
// and capped, Raw cut to Config.MaxRawBytes, RawLength the frame's length
// before the cut.
type Row struct {
	Recv       time.Time
	RemoteAddr string
	Listener   string
	Protocol   string
	DeviceID   string // "" is stored as NULL
	Reason     string
	Raw        []byte
	RawLength  int
}

// Sink stores rows. An error that wraps ErrRefused means the database
// refused the rows themselves (a retry would fail the same way): the Writer
// then stores them one at a time and drops the ones refused again. Any
// other error (Postgres unreachable, a timeout) is retried.
type Sink interface {
	WriteRows(ctx context.Context, rows []Row) error
}

// ErrRefused marks a Sink error that retrying cannot cure.
var ErrRefused = errors.New("rejected frames refused by the database")

// Defaults of Config.
const (
	DefaultMaxRawBytes    = 4096
	DefaultPerSourceRate  = 60 // rows a minute
	DefaultPerSourceBurst = 20
	DefaultRate           = 6000 // rows a minute, all sources together
	DefaultBurst          = 1000
	DefaultQueue          = 4096
	DefaultBatchRows      = 256
	DefaultMaxSources     = 10000
)

// Individual "rejected frame" log lines, all sources together: a minute
// holds at most logPerMinute of them after a burst of logBurst (each
// source's bucket still applies first). The rest are counted and
// summarised.
const (
	logPerMinute = 600
	logBurst     = 100
)

// summaryLines caps the per-source summary lines of one period; the
// remaining sources share one line.
const summaryLines = 20

// Config tunes a Writer. Zero fields take the defaults above.
type Config struct {
	// MaxRawBytes is the most raw bytes kept per row.
	MaxRawBytes int
	// PerSourceRate and PerSourceBurst bound the rows (and log lines) of
	// one source: rows a minute, and how many may come at once.
	PerSourceRate  int
	PerSourceBurst int
	// Rate and Burst bound the rows of all sources together.
	Rate  int
	Burst int
	// Queue is how many rows may wait for the database; beyond it a
	// rejection is dropped and counted.
	Queue int
	// BatchRows is the most rows written by one statement.
	BatchRows int
	// MaxSources bounds the sources tracked by the rate limiter; beyond
	// it new sources share one bucket (OverflowSource).
	MaxSources int
	// WriteTimeout bounds one batch write (default 10s); DrainTimeout the
	// final writes after Run's context ends (default 5s).
	WriteTimeout time.Duration
	DrainTimeout time.Duration
	// SummaryEvery is the period of the summary log lines (default 1m).
	SummaryEvery time.Duration
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

func (c *Config) defaults() {
	defi := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	defi(&c.MaxRawBytes, DefaultMaxRawBytes)
	defi(&c.PerSourceRate, DefaultPerSourceRate)
	defi(&c.PerSourceBurst, DefaultPerSourceBurst)
	defi(&c.Rate, DefaultRate)
	defi(&c.Burst, DefaultBurst)
	defi(&c.Queue, DefaultQueue)
	defi(&c.BatchRows, DefaultBatchRows)
	defi(&c.MaxSources, DefaultMaxSources)
	defd(&c.WriteTimeout, 10*time.Second)
	defd(&c.DrainTimeout, 5*time.Second)
	defd(&c.SummaryEvery, time.Minute)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stats are a Writer's counters. Every rejection handed to Reject ends in
// exactly one of Rows, RateLimited, QueueFull, Refused and Shutdown (once
// Run has returned; before, some may still be Queued or being written).
type Stats struct {
	Rows        uint64 // stored
	RateLimited uint64 // over its source's or the global rate: not stored, not logged individually
	QueueFull   uint64 // the queue was full (the database slow or down)
	Refused     uint64 // the database refused the row itself
	Shutdown    uint64 // still queued when Run had to stop
	// LogSuppressed counts rejections that got no log line of their own
	// (RateLimited, and those over the global log cap); the summary lines
	// account for them.
	LogSuppressed uint64
	// WriteFailures counts failed batch writes (each retried).
	WriteFailures uint64
	Queued        int // rows waiting for the database
	Sources       int // sources tracked by the rate limiter
}

// Writer is the quarantine stage: Reject never blocks; Run stores.
type Writer struct {
	cfg  Config
	sink Sink
	log  hclog.Logger
	lim  *limiter

	// mu orders Reject's send against Run's final drain: after closed is
	// set nothing more enters the queue.
	mu     sync.RWMutex
	closed bool
	queue  chan Row

	logMu     sync.Mutex
	logBucket bucket

	rows, rateLimited, queueFull, refused, shutdown atomic.Uint64
	logSuppressed, logCapped, writeFailures         atomic.Uint64

	// Run's own state.
	pending                        []Row // a batch whose write failed, retried
	summarisedFull, summarisedLogs uint64
	failingSince                   time.Time
	lastFailLog                    time.Time
}

// New makes a writer that stores into sink once Run runs.
func New(cfg Config, sink Sink, log hclog.Logger) *Writer {
	cfg.defaults()
	now := cfg.Now()
	return &Writer{
		cfg: cfg, sink: sink, log: log,
		lim:       newLimiter(cfg.PerSourceRate, cfg.PerSourceBurst, cfg.Rate, cfg.Burst, cfg.MaxSources, now),
		queue:     make(chan Row, cfg.Queue),
		logBucket: bucket{tokens: logBurst, last: now},
	}
}

// Stats returns the live counters.
func (w *Writer) Stats() Stats {
	return Stats{
		Rows: w.rows.Load(), RateLimited: w.rateLimited.Load(), QueueFull: w.queueFull.Load(),
		Refused: w.refused.Load(), Shutdown: w.shutdown.Load(), LogSuppressed: w.logSuppressed.Load(),
		WriteFailures: w.writeFailures.Load(), Queued: len(w.queue), Sources: w.lim.tracked(),
	}
}

// Reject quarantines a rejection: within its source's rate it is logged
// and queued for the database, beyond it only counted. It never blocks.
func (w *Writer) Reject(r Rejection) {
	now := w.cfg.Now()
	if !w.lim.allow(Source(r.RemoteAddr), now) {
		w.rateLimited.Add(1)
		w.logSuppressed.Add(1)
		return
	}
	row := w.row(r)
	queued, closed := false, false
	w.mu.RLock()
	if w.closed {
		closed = true
	} else {
		select {
		case w.queue <- row:
			queued = true
		default:
		}
	}
	w.mu.RUnlock()
	switch {
	case closed:
		w.shutdown.Add(1)
	case !queued:
		w.queueFull.Add(1)
	}
	if !w.logAllowed(now) {
		w.logSuppressed.Add(1)
		w.logCapped.Add(1)
		return
	}
	args := []any{"listener", row.Listener, "remote", row.RemoteAddr, "device", row.DeviceID,
		"reason", row.Reason, "bytes", row.RawLength}
	if !queued {
		// Compact: the frame is not stored, so its first bytes are here.
		why := "quarantine queue full (database slow or down)"
		if closed {
			why = "shutting down"
		}
		args = append(args, "stored", false, "why", why, "raw_hex_prefix", hex.EncodeToString(row.Raw[:min(len(row.Raw), 64)]))
	}
	w.log.Warn("rejected frame", args...)
}

func (w *Writer) logAllowed(now time.Time) bool {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	return w.logBucket.take(now, logPerMinute/60.0, logBurst)
}

// row sanitizes r and copies at most MaxRawBytes of its raw bytes.
func (w *Writer) row(r Rejection) Row {
	recv := r.Recv
	if recv.IsZero() {
		recv = w.cfg.Now()
	}
	return Row{
		Recv:       recv.UTC(),
		RemoteAddr: Sanitize(r.RemoteAddr, MaxRemoteAddrBytes),
		Listener:   Sanitize(r.Listener, MaxListenerBytes),
		Protocol:   Sanitize(r.Protocol, MaxProtocolBytes),
		DeviceID:   Sanitize(r.DeviceID, MaxDeviceIDBytes),
		Reason:     Sanitize(r.Reason, MaxReasonBytes),
		Raw:        append(make([]byte, 0, min(len(r.Raw), w.cfg.MaxRawBytes)), r.Raw[:min(len(r.Raw), w.cfg.MaxRawBytes)]...),
		RawLength:  len(r.Raw),
	}
}

// Run stores queued rows in batches until ctx ends, then makes a last
// attempt, bounded by DrainTimeout, at what is still queued; the rest is
// counted as Shutdown. It logs the summary lines every SummaryEvery.
func (w *Writer) Run(ctx context.Context) {
	tick := time.NewTicker(w.cfg.SummaryEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			w.drain()
			return
		case <-tick.C:
			w.summarise()
		case r := <-w.queue:
			// pending is empty here unless ctx has just ended with a batch
			// held: keep it for the drain.
			w.pending = append(w.pending, r)
			if ctx.Err() != nil {
				w.drain()
				return
			}
			w.pending = w.fill(w.pending)
			w.store(ctx, tick.C)
		}
	}
}

// fill adds what is queued to batch, up to BatchRows.
func (w *Writer) fill(batch []Row) []Row {
	for len(batch) < w.cfg.BatchRows {
		select {
		case r := <-w.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// store writes w.pending, retrying with backoff while the database is
// unavailable (the queue meanwhile fills, and Reject drops beyond it). It
// returns with w.pending empty, or when ctx ends with w.pending left for
// the drain.
func (w *Writer) store(ctx context.Context, summary <-chan time.Time) {
	backoff := 100 * time.Millisecond
	for {
		err := w.write(ctx, w.pending)
		if err == nil {
			if !w.failingSince.IsZero() {
				w.log.Info("storing rejected frames again", "failing_for", time.Since(w.failingSince).Round(time.Second))
				w.failingSince = time.Time{}
			}
			w.pending = w.pending[:0]
			return
		}
		if errors.Is(err, ErrRefused) {
			w.storeEach(ctx)
			if len(w.pending) == 0 || ctx.Err() != nil {
				return
			}
			continue
		}
		w.writeFailures.Add(1)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if w.failingSince.IsZero() {
			w.failingSince = now
		}
		if now.Sub(w.lastFailLog) >= w.cfg.SummaryEvery {
			w.lastFailLog = now
			w.log.Warn("storing rejected frames failed; holding them and retrying (new ones beyond the queue are dropped and counted)",
				"rows", len(w.pending), "queued", len(w.queue), "error", err)
		}
		t := time.NewTimer(backoff)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-summary:
				w.summarise()
			case <-t.C:
				break wait
			}
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// storeEach writes w.pending one row at a time after the database refused
// the batch: the rows it refuses again are dropped (Refused) and logged,
// the rest stored. On any other error it leaves the unwritten rows in
// w.pending.
func (w *Writer) storeEach(ctx context.Context) {
	for len(w.pending) > 0 {
		r := w.pending[0]
		err := w.write(ctx, w.pending[:1])
		switch {
		case err == nil:
		case errors.Is(err, ErrRefused):
			w.refused.Add(1)
			w.log.Error("database refused a rejected frame; dropped", "listener", r.Listener, "remote", r.RemoteAddr,
				"reason", r.Reason, "bytes", r.RawLength, "error", err)
		default:
			return
		}
		w.pending = w.pending[1:]
	}
}

func (w *Writer) write(ctx context.Context, rows []Row) error {
	wctx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
	defer cancel()
	if err := w.sink.WriteRows(wctx, rows); err != nil {
		return err
	}
	w.rows.Add(uint64(len(rows)))
	return nil
}

// drain closes the queue to new rejections and makes one bounded attempt
// at storing what is held and queued.
func (w *Writer) drain() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.DrainTimeout)
	defer cancel()
	for {
		w.pending = w.fill(w.pending)
		if len(w.pending) == 0 {
			break
		}
		w.store(ctx, nil)
		if ctx.Err() != nil {
			break
		}
	}
	left := len(w.pending) + len(w.queue)
	w.pending = nil
	for len(w.queue) > 0 {
		<-w.queue
	}
	if left > 0 {
		w.shutdown.Add(uint64(left))
		w.log.Warn("rejected frames not stored at shutdown", "frames", left)
	}
	w.summarise()
}

// summarise logs what the rate limits and the queue held back since the
// last summary: one line per source (the busiest summaryLines, then one
// for the rest), one for a full queue, one for the log cap.
func (w *Writer) summarise() {
	period := "minute"
	if w.cfg.SummaryEvery != time.Minute {
		period = w.cfg.SummaryEvery.String()
	}
	held := w.lim.takeHeld(w.cfg.Now())
	for i, h := range held {
		if i == summaryLines {
			var n uint64
			for _, r := range held[i:] {
				n += r.n
			}
			w.log.Warn(fmt.Sprintf("%d rejected frames from %d more sources not stored in the last %s (rate limit)", n, len(held)-i, period),
				"frames", n, "sources", len(held)-i)
			break
		}
		w.log.Warn(fmt.Sprintf("%d rejected frames from %s not stored in the last %s (rate limit)", h.n, h.source, period),
			"frames", h.n, "source", h.source)
	}
	if full := w.queueFull.Load(); full > w.summarisedFull {
		n := full - w.summarisedFull
		w.summarisedFull = full
		w.log.Warn(fmt.Sprintf("%d rejected frames not stored in the last %s (quarantine queue full: database slow or down)", n, period),
			"frames", n)
	}
	if capped := w.logCapped.Load(); capped > w.summarisedLogs {
		n := capped - w.summarisedLogs
		w.summarisedLogs = capped
		w.log.Warn(fmt.Sprintf("%d rejected frames not logged one by one in the last %s (log limit)", n, period), "frames", n)
	}
}
