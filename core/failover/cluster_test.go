package failover

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// TestIntegrationClusterFailover: a broker given the three nodes of a
// RabbitMQ cluster publishes to a quorum queue; the node it is connected
// to is killed; it goes on through another node, and every confirmed
// batch, before and after the kill, is replayed exactly once.
func TestIntegrationClusterFailover(t *testing.T) {
	testenv.Integration(t)
	rc := testenv.StartRabbitCluster(t, 3)
	b := testBroker(t, "", func(o *Options) { o.URLs = rc.URLs })
	ctx := context.Background()
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	if got := b.pub.Node(); got != 0 {
		t.Fatalf("publish link on node %d, want the first URL's", got)
	}
	want := map[int64]bool{}
	confirmed := func(bt []signal.Signal) {
		for _, s := range bt {
			want[s.RecordHash()] = true
		}
	}
	for i := range 20 {
		bt := batch("before", i*10, 10)
		if err := b.Write(ctx, bt); err != nil {
			t.Fatal(err)
		}
		confirmed(bt)
	}
	if st := b.Stats(); st.QueueType != "quorum" {
		t.Fatalf("queue type %q, want quorum", st.QueueType)
	}
	rc.Kill(0)
	// Writes fail (not durable: the caller moves on) until the link has
	// reached another node; none may be lost once confirmed.
	deadline := time.Now().Add(30 * time.Second)
	failed := 0
	for i := 0; i < 20; {
		bt := batch("after", i*10, 10)
		err := b.Write(ctx, bt)
		if err == nil {
			confirmed(bt)
			i++
			continue
		}
		failed++
		if time.Now().After(deadline) {
			t.Fatalf("no publish confirmed 30 s after node 0 died (%d failed): %v", failed, err)
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Logf("write failed while failing over: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := b.pub.Node(); got == 0 {
		t.Fatal("publish link still on the killed node")
	}
	t.Logf("%d writes refused while failing over", failed)
	c := &collector{}
	for len(c.seen) < len(want) && time.Now().Before(deadline) {
		if _, err := b.Drain(ctx, c.handle); err != nil {
			t.Logf("drain: %v", err)
			time.Sleep(50 * time.Millisecond)
		}
	}
	for h := range want {
		if c.seen[h] != 1 {
			t.Fatalf("confirmed record %x replayed %d times (of %d confirmed, %d replayed)", h, c.seen[h], len(want), len(c.seen))
		}
	}
}
