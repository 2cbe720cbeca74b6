package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// TestIntegrationSingletonRunsOnOneNodeAtATime: three stores (three
// nodes) start the same job at once; one runs it, the others skip, and
// after it finished the next round runs again.
func TestIntegrationSingletonRunsOnOneNodeAtATime(t *testing.T) {
	testenv.Integration(t)
	url := testenv.Database(t)
	var nodes []*store.Store
	for range 3 {
		st, err := store.Open(context.Background(), url, store.Options{MaxConns: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		nodes = append(nodes, st)
	}
	var running, ran, maxRunning atomic.Int64
	release := make(chan struct{})
	job := func(ctx context.Context) error {
		n := running.Add(1)
		if n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		ran.Add(1)
		<-release
		running.Add(-1)
		return nil
	}
	var wg sync.WaitGroup
	var skipped atomic.Int64
	started := make(chan struct{}, 3)
	for _, st := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			ok, err := store.Singleton(context.Background(), st.Pool(), "score", job)
			if err != nil {
				t.Error(err)
			}
			if !ok {
				skipped.Add(1)
			}
		}()
	}
	for range 3 {
		<-started
	}
	deadline := time.Now().Add(10 * time.Second)
	for skipped.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if ran.Load() != 1 || skipped.Load() != 2 || maxRunning.Load() != 1 {
		t.Fatalf("ran %d, skipped %d, at most %d at once; want 1, 2, 1", ran.Load(), skipped.Load(), maxRunning.Load())
	}
	// Another job name is not blocked, and the lock was given back.
	for _, name := range []string{"retention", "score"} {
		if ok, err := store.Singleton(context.Background(), nodes[1].Pool(), name, func(context.Context) error { return nil }); !ok || err != nil {
			t.Fatalf("%s after the first round: ran %v, %v", name, ok, err)
		}
	}
}
