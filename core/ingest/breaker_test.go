package ingest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/signal"
)

// flakyTier fails while down is set and counts attempts.
type flakyTier struct {
	name     string
	down     atomic.Bool
	attempts atomic.Int64
	mu       sync.Mutex
	got      int
}

func (f *flakyTier) Name() string { return f.name }
func (f *flakyTier) Write(_ context.Context, b []signal.Signal) error {
	f.attempts.Add(1)
	if f.down.Load() {
		return errors.New(f.name + " down")
	}
	f.mu.Lock()
	f.got += len(b)
	f.mu.Unlock()
	return nil
}

func TestBreakerRoutesAroundDeadTierUntilProbeSucceeds(t *testing.T) {
	pg := &flakyTier{name: "direct"}
	next := &flakyTier{name: "spool"}
	var healthy atomic.Bool
	probed := make(chan struct{}, 100)
	br := NewBreaker(pg, func(context.Context) error {
		ok := healthy.Load()
		probed <- struct{}{}
		if ok {
			return nil
		}
		return errors.New("still down")
	}, 5*time.Millisecond, nil)
	defer br.Close()
	recovered := make(chan struct{})
	br.OnRecover(func() { close(recovered) })

	b := New(Config{MaxSignals: 1, MaxAge: time.Millisecond, WriteTimeout: time.Second, Writers: 1}, hclog.NewNullLogger(), br, next)
	b.Start()
	defer b.Close(context.Background())
	submit := func() string {
		tk, err := b.Submit(context.Background(), []signal.Signal{signal.New("d", time.Now())})
		if err != nil {
			t.Fatal(err)
		}
		if err := tk.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		return tk.Path()
	}
	if p := submit(); p != "direct" {
		t.Fatalf("path %q with the tier up", p)
	}
	pg.down.Store(true)
	if p := submit(); p != "spool" {
		t.Fatalf("path %q when the tier failed", p)
	}
	before := pg.attempts.Load()
	for i := 0; i < 20; i++ {
		if p := submit(); p != "spool" {
			t.Fatalf("path %q while the breaker is open", p)
		}
	}
	if got := pg.attempts.Load() - before; got != 0 {
		t.Fatalf("%d writes tried against the open breaker: want none", got)
	}
	if st := br.Stats(); !st.Open || st.Opens != 1 {
		t.Fatalf("stats %+v", st)
	}
	<-probed
	pg.down.Store(false)
	healthy.Store(true)
	<-recovered
	if p := submit(); p != "direct" {
		t.Fatalf("path %q after the probe succeeded", p)
	}
	if st := br.Stats(); st.Open || st.Probes == 0 || st.ProbeFailures == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOpenBreakerTierIsLastResort(t *testing.T) {
	pg := &flakyTier{name: "direct"}
	next := &flakyTier{name: "spool"}
	br := NewBreaker(pg, func(context.Context) error { return errors.New("probe says down") }, time.Hour, nil)
	defer br.Close()
	br.Trip(errors.New("write failed"))
	next.down.Store(true)
	b := New(Config{MaxSignals: 1, MaxAge: time.Millisecond, WriteTimeout: time.Second, Writers: 1}, hclog.NewNullLogger(), br, next)
	b.Start()
	defer b.Close(context.Background())
	tk, err := b.Submit(context.Background(), []signal.Signal{signal.New("d", time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Wait(context.Background()); err != nil || tk.Path() != "direct" {
		t.Fatalf("path %q, err %v: the open tier should get a last attempt when every other tier failed", tk.Path(), err)
	}
	// Both down: not durable.
	pg.down.Store(true)
	tk, _ = b.Submit(context.Background(), []signal.Signal{signal.New("d", time.Now())})
	if err := tk.Wait(context.Background()); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("err %v, want ErrNotDurable", err)
	}
}
