package ingest_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/ingest"
	"github.com/fleetcore/fleetcore/signal"
)

// memTier records batches; fail makes it refuse them.
type memTier struct {
	name    string
	fail    atomic.Bool
	block   chan struct{} // when not nil, Write waits on it
	mu      sync.Mutex
	batches [][]signal.Signal
}

func (m *memTier) Name() string { return m.name }
func (m *memTier) Write(ctx context.Context, b []signal.Signal) error {
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.fail.Load() {
		return errors.New("tier down")
	}
	m.mu.Lock()
	m.batches = append(m.batches, append([]signal.Signal(nil), b...))
	m.mu.Unlock()
	return nil
}
func (m *memTier) signals() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, b := range m.batches {
		n += len(b)
	}
	return n
}

func sigs(n int) []signal.Signal {
	out := make([]signal.Signal, n)
	for i := range out {
		out[i] = signal.New("d", time.Unix(int64(i), 0))
	}
	return out
}

func TestGroupCommitBatchesAndResolves(t *testing.T) {
	tier := &memTier{name: signal.PathDirect}
	b := ingest.New(ingest.Config{MaxSignals: 100, MaxAge: time.Hour, Writers: 1}, hclog.NewNullLogger(), tier)
	b.Start()
	var tickets []*ingest.Ticket
	for i := 0; i < 10; i++ {
		tk, err := b.Submit(context.Background(), sigs(10))
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	// MaxAge is an hour: only the size bound (100) can have flushed them.
	for _, tk := range tickets {
		if err := tk.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if tk.Path() != signal.PathDirect {
			t.Fatalf("path %q", tk.Path())
		}
	}
	if len(tier.batches) != 1 || len(tier.batches[0]) != 100 {
		t.Fatalf("got %d batches (first %d signals), want one batch of 100", len(tier.batches), len(tier.batches[0]))
	}
	if tier.batches[0][0].Path != signal.PathDirect {
		t.Fatalf("signal path %q, want direct", tier.batches[0][0].Path)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAgeFlushesSmallBatch(t *testing.T) {
	tier := &memTier{name: "direct"}
	b := ingest.New(ingest.Config{MaxSignals: 1000, MaxAge: 5 * time.Millisecond}, hclog.NewNullLogger(), tier)
	b.Start()
	defer b.Close(context.Background())
	tk, _ := b.Submit(context.Background(), sigs(3))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if tier.signals() != 3 {
		t.Fatalf("stored %d", tier.signals())
	}
}

func TestFallsThroughTiersAndReportsNotDurable(t *testing.T) {
	pg := &memTier{name: signal.PathDirect}
	spool := &memTier{name: signal.PathSpool}
	b := ingest.New(ingest.Config{MaxSignals: 10, MaxAge: time.Millisecond}, hclog.NewNullLogger(), pg, spool)
	b.Start()
	defer b.Close(context.Background())

	pg.fail.Store(true)
	tk, _ := b.Submit(context.Background(), sigs(5))
	if err := tk.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tk.Path() != signal.PathSpool || spool.signals() != 5 || pg.signals() != 0 {
		t.Fatalf("path %q, spool %d, pg %d", tk.Path(), spool.signals(), pg.signals())
	}
	if spool.batches[0][0].Path != signal.PathSpool {
		t.Fatalf("signal path %q, want spool", spool.batches[0][0].Path)
	}

	spool.fail.Store(true)
	tk, _ = b.Submit(context.Background(), sigs(5))
	err := tk.Wait(context.Background())
	if !errors.Is(err, ingest.ErrNotDurable) {
		t.Fatalf("err %v, want ErrNotDurable", err)
	}
	st := b.Stats()
	if st.NotDurable != 5 || st.Durable != 5 {
		t.Fatalf("stats durable %d not durable %d", st.Durable, st.NotDurable)
	}
}

func TestBackpressureBlocksSubmit(t *testing.T) {
	tier := &memTier{name: "direct", block: make(chan struct{})}
	b := ingest.New(ingest.Config{MaxSignals: 10, MaxAge: time.Millisecond, QueueSignals: 20, Writers: 1}, hclog.NewNullLogger(), tier)
	b.Start()
	t1, err := b.Submit(context.Background(), sigs(10))
	if err != nil {
		t.Fatal(err)
	}
	t2, err := b.Submit(context.Background(), sigs(10))
	if err != nil {
		t.Fatal(err)
	}
	// The queue holds 20 signals and the tier is blocked: a third submit
	// must wait, not drop.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Submit(ctx, sigs(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("submit over the bound returned %v, want it to block until the deadline", err)
	}
	close(tier.block)
	for _, tk := range []*ingest.Ticket{t1, t2} {
		if err := tk.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Submit(context.Background(), sigs(1)); err != nil {
		t.Fatalf("submit after drain: %v", err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tier.signals() != 21 {
		t.Fatalf("stored %d, want 21", tier.signals())
	}
}

func TestCloseFlushesQueued(t *testing.T) {
	tier := &memTier{name: "direct"}
	b := ingest.New(ingest.Config{MaxSignals: 1000, MaxAge: time.Hour}, hclog.NewNullLogger(), tier)
	b.Start()
	var tks []*ingest.Ticket
	for i := 0; i < 5; i++ {
		tk, _ := b.Submit(context.Background(), sigs(7))
		tks = append(tks, tk)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tk := range tks {
		select {
		case <-tk.Done():
			if tk.Err() != nil {
				t.Fatal(tk.Err())
			}
		default:
			t.Fatal("ticket unresolved after Close")
		}
	}
	if _, err := b.Submit(context.Background(), sigs(1)); !errors.Is(err, ingest.ErrClosed) {
		t.Fatalf("submit after close: %v", err)
	}
	if tier.signals() != 35 {
		t.Fatalf("stored %d", tier.signals())
	}
}

func TestConcurrentSubmittersHammer(t *testing.T) {
	tier := &memTier{name: "direct"}
	b := ingest.New(ingest.Config{MaxSignals: 64, MaxAge: time.Millisecond, QueueSignals: 256, Writers: 2}, hclog.NewNullLogger(), tier)
	b.Start()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				tk, err := b.Submit(context.Background(), sigs(3))
				if err != nil {
					t.Error(err)
					return
				}
				if err := tk.Wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.Close(context.Background())
	if tier.signals() != 16*100*3 {
		t.Fatalf("stored %d", tier.signals())
	}
	if st := b.Stats(); st.Pending != 0 || st.Durable != 4800 {
		t.Fatalf("stats %+v", st)
	}
}

// gatedTier counts writes as they start and holds each until released.
type gatedTier struct {
	started atomic.Int32
	release chan struct{}
	mu      sync.Mutex
	sizes   []int
}

func (g *gatedTier) Name() string { return signal.PathDirect }
func (g *gatedTier) Write(ctx context.Context, b []signal.Signal) error {
	g.started.Add(1)
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	g.sizes = append(g.sizes, len(b))
	g.mu.Unlock()
	return nil
}

// waitStarted waits until n writes started, or reports false after d.
func (g *gatedTier) waitStarted(n int32, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if g.started.Load() >= n {
			return true
		}
	}
	return false
}

func TestSecondWriterWaitsForALargeBatch(t *testing.T) {
	for _, tc := range []struct {
		name        string
		parallelMin int
		// the second batch's size when its write starts
		wantSecond int
	}{
		{"held until it holds ParallelMin", 50, 50},
		{"ParallelMin 1 writes at once", 1, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gatedTier{release: make(chan struct{})}
			b := ingest.New(ingest.Config{MaxSignals: 100, MaxAge: time.Millisecond, Writers: 2, ParallelMin: tc.parallelMin},
				hclog.NewNullLogger(), g)
			b.Start()
			ctx := context.Background()
			var tickets []*ingest.Ticket
			submit := func(n int) {
				tk, err := b.Submit(ctx, sigs(n))
				if err != nil {
					t.Fatal(err)
				}
				tickets = append(tickets, tk)
			}
			submit(10)
			if !g.waitStarted(1, 5*time.Second) {
				t.Fatal("the first batch was never written")
			}
			submit(10) // the first write is still in flight
			second := g.waitStarted(2, 100*time.Millisecond)
			if tc.parallelMin > 10 && second {
				t.Fatal("a 10-signal batch went to the second writer while a write was in flight")
			}
			if tc.parallelMin <= 10 && !second {
				t.Fatal("with ParallelMin 1 the second batch did not go at once")
			}
			if !second {
				submit(40) // now it holds 50
				if !g.waitStarted(2, 5*time.Second) {
					t.Fatal("a batch of ParallelMin signals did not go to the second writer")
				}
			}
			close(g.release)
			for _, tk := range tickets {
				if err := tk.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if len(g.sizes) != 2 || g.sizes[0]+g.sizes[1] != 10+tc.wantSecond || max(g.sizes[0], g.sizes[1]) != max(10, tc.wantSecond) {
				t.Fatalf("batch sizes %v, want 10 and %d", g.sizes, tc.wantSecond)
			}
		})
	}
}

// TestHeldBatchGoesWhenTheWriteFinishes: a small batch held back for the
// write in flight is written as soon as that write finishes.
func TestHeldBatchGoesWhenTheWriteFinishes(t *testing.T) {
	g := &gatedTier{release: make(chan struct{})}
	b := ingest.New(ingest.Config{MaxSignals: 100, MaxAge: time.Millisecond, Writers: 2, ParallelMin: 50}, hclog.NewNullLogger(), g)
	b.Start()
	defer b.Close(context.Background())
	ctx := context.Background()
	first, _ := b.Submit(ctx, sigs(10))
	if !g.waitStarted(1, 5*time.Second) {
		t.Fatal("the first batch was never written")
	}
	second, _ := b.Submit(ctx, sigs(5))
	if g.waitStarted(2, 50*time.Millisecond) {
		t.Fatal("the small batch did not wait for the write in flight")
	}
	g.release <- struct{}{} // finish the first write only
	if err := first.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !g.waitStarted(2, 5*time.Second) {
		t.Fatal("the held batch was not written after the write in flight finished")
	}
	close(g.release)
	if err := second.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDurableMillisCountsTheWaitForTheBatch: the per-frame durable time
// spans submission to the batch's write returning.
func TestDurableMillisCountsTheWaitForTheBatch(t *testing.T) {
	g := &gatedTier{release: make(chan struct{})}
	b := ingest.New(ingest.Config{MaxSignals: 100, MaxAge: time.Millisecond, Writers: 1}, hclog.NewNullLogger(), g)
	b.Start()
	defer b.Close(context.Background())
	tk, err := b.Submit(context.Background(), sigs(3))
	if err != nil {
		t.Fatal(err)
	}
	if !g.waitStarted(1, 5*time.Second) {
		t.Fatal("never written")
	}
	time.Sleep(60 * time.Millisecond)
	close(g.release)
	if err := tk.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := b.Stats().DurableMillis
	_, _, _, n := h.Snapshot()
	if n != 1 || h.Quantile(0.5) < 60 {
		t.Fatalf("durable histogram: %d observations, median %.1f ms; want 1 of at least 60 ms", n, h.Quantile(0.5))
	}
}
