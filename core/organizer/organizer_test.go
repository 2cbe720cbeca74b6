package organizer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/organizer"
)

func TestJobsRunOnTriggerAndRecordFailures(t *testing.T) {
	o := organizer.New(hclog.NewNullLogger(), 2)
	ran := make(chan struct{}, 10)
	var fail atomic.Bool
	fail.Store(true)
	o.Add(organizer.Job{Name: "a", Interval: time.Hour, Run: func(ctx context.Context) error {
		defer func() { ran <- struct{}{} }()
		if fail.Load() {
			return errors.New("boom")
		}
		return nil
	}})
	o.Add(organizer.Job{Name: "p", Interval: time.Hour, Run: func(ctx context.Context) error { panic("bad job") }})
	ctx, cancel := context.WithCancel(context.Background())
	o.Start(ctx)
	o.Trigger("a")
	<-ran
	if err := o.RunNow(ctx, "p"); err == nil {
		t.Fatal("panicking job reported no error")
	}
	fail.Store(false)
	if err := o.RunNow(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	<-ran
	st := o.Status()
	if st[0].Name != "a" || st[0].Runs != 2 || st[0].Failures != 1 || st[0].LastError != "" || st[0].LastSuccess.IsZero() {
		t.Fatalf("status a: %+v", st[0])
	}
	if st[1].Failures != 1 || st[1].LastError == "" {
		t.Fatalf("status p: %+v", st[1])
	}
	cancel()
	o.Wait()
}

func TestJobNeverRunsConcurrentlyWithItself(t *testing.T) {
	o := organizer.New(hclog.NewNullLogger(), 4)
	var inside, maxInside atomic.Int32
	o.Add(organizer.Job{Name: "x", Interval: time.Millisecond, Run: func(ctx context.Context) error {
		n := inside.Add(1)
		if n > maxInside.Load() {
			maxInside.Store(n)
		}
		time.Sleep(time.Millisecond)
		inside.Add(-1)
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	o.Start(ctx)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 20; i++ {
			o.RunNow(ctx, "x") //nolint:errcheck
		}
		close(done)
	}()
	<-done
	cancel()
	o.Wait()
	if maxInside.Load() != 1 {
		t.Fatalf("job ran %d times concurrently", maxInside.Load())
	}
}
