package failover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

func testBroker(t *testing.T, url string, mut func(*Options)) *Broker {
	t.Helper()
	o := Options{URL: url, Queue: "fc.failover", DeadLetter: "fc.failover.dead", ConfirmTimeout: 5 * time.Second,
		IdleWait: 100 * time.Millisecond, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}
	if mut != nil {
		mut(&o)
	}
	b, err := New(o, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func batch(dev string, from, n int) []signal.Signal {
	out := make([]signal.Signal, n)
	frame := []byte(fmt.Sprintf("frame-%s-%d", dev, from))
	for i := range out {
		s := signal.New(dev, time.Date(2026, 2, 1, 0, 0, from+i, 0, time.UTC))
		s.Speed = float64(i)
		s.SetAttr("seq", from+i)
		s.Protocol, s.Path, s.Frame = "test", signal.PathFailover, frame
		out[i] = s
	}
	return out
}

// collector is a Handler that records record hashes.
type collector struct {
	mu   sync.Mutex
	seen map[int64]int
	fail error
}

func (c *collector) handle(_ context.Context, b []signal.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	if c.seen == nil {
		c.seen = map[int64]int{}
	}
	for _, s := range b {
		if s.Path != signal.PathFailover {
			return fmt.Errorf("path %q", s.Path)
		}
		c.seen[s.RecordHash()]++
	}
	return nil
}

func TestIntegrationPublishConfirmAndDrain(t *testing.T) {
	testenv.Integration(t)
	b := testBroker(t, testenv.VHost(t), nil)
	ctx := context.Background()
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	want := map[int64]bool{}
	var mu sync.Mutex
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				bt := batch(fmt.Sprintf("dev%d", w), i*10, 10)
				if err := b.Write(ctx, bt); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, s := range bt {
					want[s.RecordHash()] = true
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	st := b.Stats()
	if st.Published != 100 || st.PublishedSignals != 1000 || st.Failures != 0 || st.QueueType != "quorum" {
		t.Fatalf("stats %+v", st)
	}
	c := &collector{}
	res, err := b.Drain(ctx, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 100 || res.Signals != 1000 || res.Backlog != 0 {
		t.Fatalf("drain %+v", res)
	}
	for h := range want {
		if c.seen[h] != 1 {
			t.Fatalf("record %x replayed %d times", h, c.seen[h])
		}
	}
	if st := b.Stats(); st.Backlog != 0 || st.OldestAge != 0 || st.ReplayedSignals != 1000 || st.ReplayRate <= 0 {
		t.Fatalf("stats after drain %+v", st)
	}
}

func rawConn(t *testing.T, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestIntegrationUndecodableGoesToDeadLetterWithReason(t *testing.T) {
	testenv.Integration(t)
	url := testenv.VHost(t)
	b := testBroker(t, url, nil)
	ctx := context.Background()
	if err := b.Write(ctx, batch("good", 0, 3)); err != nil {
		t.Fatal(err)
	}
	ch := rawConn(t, url)
	if err := ch.PublishWithContext(ctx, "", "fc.failover", false, false, amqp.Publishing{Body: []byte("not a batch"), MessageId: "junk"}); err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	// The raw publish is not confirmed; drain until both are handled.
	deadline := time.Now().Add(10 * time.Second)
	total := DrainResult{}
	for total.Messages+total.DeadLettered < 2 && time.Now().Before(deadline) {
		res, err := b.Drain(ctx, c.handle)
		if err != nil {
			t.Fatal(err)
		}
		total.Messages += res.Messages
		total.DeadLettered += res.DeadLettered
	}
	if total.Messages != 1 || total.DeadLettered != 1 {
		t.Fatalf("drained %+v", total)
	}
	d, ok, err := ch.Get("fc.failover.dead", true)
	if err != nil || !ok {
		t.Fatalf("dead-letter queue empty: %v", err)
	}
	if string(d.Body) != "not a batch" || d.MessageId != "junk" {
		t.Fatalf("dead letter %q %q", d.Body, d.MessageId)
	}
	if r, _ := d.Headers[HeaderReason].(string); r == "" || !contains(r, "undecodable") {
		t.Fatalf("reason header %q", d.Headers[HeaderReason])
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestIntegrationFailedReplayIsRequeuedBoundedThenDeadLettered(t *testing.T) {
	testenv.Integration(t)
	url := testenv.VHost(t)
	b := testBroker(t, url, func(o *Options) { o.MaxRedeliver = 3 })
	ctx := context.Background()
	if err := b.Write(ctx, batch("d", 0, 2)); err != nil {
		t.Fatal(err)
	}
	down := errors.New("postgres down")
	c := &collector{fail: down}
	for i := 1; i <= 2; i++ {
		res, err := b.Drain(ctx, c.handle)
		if !errors.Is(err, down) || res.Requeued != 1 || res.Messages != 0 {
			t.Fatalf("round %d: %+v, %v: want the message requeued and replay stopped", i, res, err)
		}
	}
	// Recovers before the bound: stored once.
	c.fail = nil
	res, err := b.Drain(ctx, c.handle)
	if err != nil || res.Messages != 1 || len(c.seen) != 2 {
		t.Fatalf("after recovery %+v, %v, %d records", res, err, len(c.seen))
	}
	// A message that keeps failing while the store answers is
	// dead-lettered after MaxRedeliver attempts, not dropped.
	if err := b.Write(ctx, batch("e", 0, 1)); err != nil {
		t.Fatal(err)
	}
	c.fail = down
	for i := 0; i < 3; i++ {
		b.Drain(ctx, c.handle) //nolint:errcheck // failing on purpose
	}
	if st := b.Stats(); st.DeadLettered != 1 || st.Requeued != 4 {
		t.Fatalf("stats %+v", st)
	}
	ch := rawConn(t, url)
	d, ok, err := ch.Get("fc.failover.dead", true)
	if err != nil || !ok {
		t.Fatalf("nothing dead-lettered: %v", err)
	}
	if r, _ := d.Headers[HeaderReason].(string); !contains(r, "gave up after 3") {
		t.Fatalf("reason %q", r)
	}
}

func TestIntegrationBrokerOutageRefusesThenReconnects(t *testing.T) {
	testenv.Integration(t)
	url := testenv.VHost(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(url))
	b := testBroker(t, testenv.WithHost(url, proxy.Addr()), func(o *Options) { o.ConfirmTimeout = time.Second })
	ctx := context.Background()
	if err := b.Write(ctx, batch("d", 0, 1)); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	for i := 0; i < 5; i++ {
		if err := b.Write(ctx, batch("d", 10+i, 1)); err == nil {
			t.Fatalf("write %d confirmed while the broker was unreachable", i)
		}
	}
	proxy.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.Write(ctx, batch("d", 100, 1))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect after restore: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := b.Stats()
	if st.Reconnects < 1 || st.Published != 2 || st.Failures < 5 {
		t.Fatalf("stats %+v", st)
	}
	c := &collector{}
	res, err := b.Drain(ctx, c.handle)
	if err != nil || res.Messages != 2 {
		t.Fatalf("drain %+v %v", res, err)
	}
}

func TestIntegrationClassicFallbackWhenQueueExists(t *testing.T) {
	testenv.Integration(t)
	url := testenv.VHost(t)
	ch := rawConn(t, url)
	if _, err := ch.QueueDeclare("fc.failover", true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	b := testBroker(t, url, nil)
	if err := b.Write(context.Background(), batch("d", 0, 1)); err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	if res, err := b.Drain(context.Background(), c.handle); err != nil || res.Messages != 1 {
		t.Fatalf("drain %+v %v", res, err)
	}
}
