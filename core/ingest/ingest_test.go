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
	"github.com/fleetcore/fleetcore/core/signal"
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
