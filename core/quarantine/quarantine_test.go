package quarantine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/quarantine"
)

// memSink records rows; fail, when set, decides per call whether (and
// how) the write fails.
type memSink struct {
	mu    sync.Mutex
	rows  []quarantine.Row
	calls int
	fail  func(call int, rows []quarantine.Row) error
}

func (s *memSink) WriteRows(ctx context.Context, rows []quarantine.Row) error {
	s.mu.Lock()
	s.calls++
	call, fail := s.calls, s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(call, rows); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		r.Raw = append([]byte(nil), r.Raw...)
		s.rows = append(s.rows, r)
	}
	return nil
}

func (s *memSink) got() []quarantine.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]quarantine.Row(nil), s.rows...)
}

// syncBuffer is a log destination safe for the writer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// running starts w.Run; the returned func stops it and waits.
func running(w *quarantine.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	return func() { cancel(); <-done }
}

// fixedClock is a clock tests move by hand.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func rejection(remote string, raw []byte) quarantine.Rejection {
	return quarantine.Rejection{Recv: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), RemoteAddr: remote,
		Listener: "jsonl", Protocol: "jsonl", DeviceID: "dev-1", Reason: "framing: malformed frame", Raw: raw}
}

func TestRawBytesCappedWithTheirLength(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     int
		size    int
		wantRaw int
	}{
		{"default cap on a 64 KB line", 0, 64 << 10, quarantine.DefaultMaxRawBytes},
		{"configured cap", 100, 1000, 100},
		{"short frame whole", 100, 10, 10},
		{"empty frame", 100, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &memSink{}
			w := quarantine.New(quarantine.Config{MaxRawBytes: tc.max}, sink, hclog.NewNullLogger())
			stop := running(w)
			raw := bytes.Repeat([]byte{0xAB}, tc.size)
			w.Reject(rejection("10.0.0.1:1000", raw))
			for i := range raw {
				raw[i] = 0 // the caller reuses its buffer: the row must not change
			}
			stop()
			rows := sink.got()
			if len(rows) != 1 {
				t.Fatalf("%d rows", len(rows))
			}
			r := rows[0]
			if len(r.Raw) != tc.wantRaw || r.RawLength != tc.size || !bytes.Equal(r.Raw, bytes.Repeat([]byte{0xAB}, tc.wantRaw)) {
				t.Fatalf("raw %d bytes (first %x), length %d; want %d bytes of 0xab, length %d",
					len(r.Raw), r.Raw[:min(4, len(r.Raw))], r.RawLength, tc.wantRaw, tc.size)
			}
		})
	}
}

func TestRateLimitPerSource(t *testing.T) {
	clock := &fixedClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	sink := &memSink{}
	logs := &syncBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn})
	w := quarantine.New(quarantine.Config{PerSourceRate: 60, PerSourceBurst: 20, SummaryEvery: time.Minute, Now: clock.Now}, sink, log)
	stop := running(w)
	// A floods (two ports: one source), B sends a few in between.
	for i := 0; i < 1000; i++ {
		w.Reject(rejection(fmt.Sprintf("10.0.0.1:%d", 1000+i%2), []byte("junk")))
		if i%200 == 0 {
			w.Reject(rejection("10.0.0.2:5000", []byte("other")))
		}
	}
	// A minute later A has a full burst again (60/min refills 20 in 20 s).
	clock.Add(time.Minute)
	for i := 0; i < 30; i++ {
		w.Reject(rejection("10.0.0.1:1000", []byte("junk")))
	}
	stop()
	perSource := map[string]int{}
	for _, r := range sink.got() {
		perSource[r.RemoteAddr[:len("10.0.0.x")]]++
	}
	if perSource["10.0.0.1"] != 40 || perSource["10.0.0.2"] != 5 {
		t.Fatalf("stored per source %v, want 10.0.0.1: 40 (two bursts of 20), 10.0.0.2: 5 (all)", perSource)
	}
	st := w.Stats()
	if st.Rows != 45 || st.RateLimited != 990 || st.LogSuppressed != 990 || st.QueueFull != 0 || st.Shutdown != 0 {
		t.Fatalf("stats %+v, want 45 rows, 990 rate limited (and not logged)", st)
	}
	out := logs.String()
	if n := strings.Count(out, "rejected frame:"); n != 45 {
		t.Errorf("%d individual log lines, want 45 (one per stored row)", n)
	}
	// Both periods' held-back frames are in the summary at stop (the
	// ticker did not fire on the test clock).
	if !strings.Contains(out, "990 rejected frames from 10.0.0.1 not stored in the last minute (rate limit)") {
		t.Errorf("no summary line for 10.0.0.1 in:\n%s", out)
	}
	if strings.Contains(out, "from 10.0.0.2") {
		t.Errorf("a summary line for 10.0.0.2, which held nothing back:\n%s", out)
	}
}

func TestGlobalRateAndSourceTable(t *testing.T) {
	clock := &fixedClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	t.Run("all sources share the global rate", func(t *testing.T) {
		sink := &memSink{}
		w := quarantine.New(quarantine.Config{PerSourceBurst: 20, Burst: 30, Now: clock.Now}, sink, hclog.NewNullLogger())
		stop := running(w)
		for i := 0; i < 100; i++ {
			w.Reject(rejection(fmt.Sprintf("10.0.1.%d:1", i%5), nil))
		}
		stop()
		if st := w.Stats(); st.Rows != 30 || st.RateLimited != 70 {
			t.Fatalf("stats %+v, want 30 rows (global burst) and 70 rate limited", st)
		}
	})
	t.Run("sources beyond the table share one bucket", func(t *testing.T) {
		sink := &memSink{}
		logs := &syncBuffer{}
		w := quarantine.New(quarantine.Config{PerSourceBurst: 2, MaxSources: 3, Now: clock.Now}, sink,
			hclog.New(&hclog.LoggerOptions{Output: logs}))
		stop := running(w)
		for i := 0; i < 10; i++ {
			w.Reject(rejection(fmt.Sprintf("10.0.2.%d:1", i), nil))
		}
		st := w.Stats()
		stop()
		// Three sources with a bucket each (2 rows each would fit, 1
		// used), the other seven share the overflow bucket (2 rows).
		if st.Sources != 4 || w.Stats().Rows != 5 || w.Stats().RateLimited != 5 {
			t.Fatalf("stats %+v then %+v, want 4 tracked buckets, 5 rows, 5 rate limited", st, w.Stats())
		}
		if !strings.Contains(logs.String(), "5 rejected frames from "+quarantine.OverflowSource+" not stored") {
			t.Fatalf("no summary for the overflow bucket:\n%s", logs)
		}
	})
}

// blockingSink holds every write until release is closed.
type blockingSink struct {
	memSink
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *blockingSink) WriteRows(ctx context.Context, rows []quarantine.Row) error {
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.memSink.WriteRows(ctx, rows)
}

func TestRejectNeverBlocksOnASlowDatabase(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
	w := quarantine.New(quarantine.Config{Queue: 8, BatchRows: 4, PerSourceRate: 1 << 20, PerSourceBurst: 1 << 20,
		Rate: 1 << 20, Burst: 1 << 20, WriteTimeout: time.Minute}, sink, hclog.NewNullLogger())
	stop := running(w)
	w.Reject(rejection("10.0.0.1:1", []byte("first")))
	<-sink.entered // the writer is stuck in the database
	start := time.Now()
	for i := 0; i < 1000; i++ {
		w.Reject(rejection("10.0.0.1:1", []byte("more")))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("1000 rejections took %s while the database hung", d)
	}
	st := w.Stats()
	if st.Queued != 8 || st.QueueFull != 1000-8 {
		t.Fatalf("stats %+v, want 8 queued and %d dropped as queue_full", st, 1000-8)
	}
	close(sink.release)
	deadline := time.Now().Add(30 * time.Second)
	for w.Stats().Rows < 9 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	st = w.Stats()
	if st.Rows != 9 || st.Rows+st.QueueFull != 1001 || len(sink.got()) != 9 {
		t.Fatalf("stats %+v, %d stored; want 9 rows (the held one and the 8 queued)", st, len(sink.got()))
	}
}

func TestWriteFailuresAreRetriedAndRefusedRowsIsolated(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		fail                    func(call int, rows []quarantine.Row) error
		wantRows, wantRefused   uint64
		wantFailures            uint64
		wantStoredWithoutReason string
	}{
		{
			name: "database down for three attempts",
			fail: func(call int, _ []quarantine.Row) error {
				if call <= 3 {
					return errors.New("connection refused")
				}
				return nil
			},
			wantRows: 5, wantFailures: 3,
		},
		{
			name: "one row refused",
			fail: func(_ int, rows []quarantine.Row) error {
				for _, r := range rows {
					if r.Reason == "poison" {
						return fmt.Errorf("copying: %w", quarantine.ErrRefused)
					}
				}
				return nil
			},
			wantRows: 4, wantRefused: 1, wantStoredWithoutReason: "poison",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &memSink{fail: tc.fail}
			w := quarantine.New(quarantine.Config{}, sink, hclog.NewNullLogger())
			for i := 0; i < 5; i++ {
				r := rejection("10.0.0.1:1", []byte{byte(i)})
				if i == 2 {
					r.Reason = "poison"
				}
				w.Reject(r) // queued before Run: one batch of 5
			}
			stop := running(w)
			deadline := time.Now().Add(30 * time.Second)
			for st := w.Stats(); st.Rows+st.Refused < 5 && time.Now().Before(deadline); st = w.Stats() {
				time.Sleep(10 * time.Millisecond)
			}
			stop()
			st := w.Stats()
			if st.Rows != tc.wantRows || st.Refused != tc.wantRefused || st.WriteFailures != tc.wantFailures {
				t.Fatalf("stats %+v, want %d rows, %d refused, %d write failures", st, tc.wantRows, tc.wantRefused, tc.wantFailures)
			}
			for _, r := range sink.got() {
				if tc.wantStoredWithoutReason != "" && r.Reason == tc.wantStoredWithoutReason {
					t.Fatalf("refused row stored: %+v", r)
				}
			}
		})
	}
}

func TestShutdownCountsWhatIsLeft(t *testing.T) {
	sink := &memSink{fail: func(int, []quarantine.Row) error { return errors.New("down") }}
	w := quarantine.New(quarantine.Config{DrainTimeout: 200 * time.Millisecond}, sink, hclog.NewNullLogger())
	for i := 0; i < 7; i++ {
		w.Reject(rejection("10.0.0.1:1", nil))
	}
	stop := running(w)
	stop()
	w.Reject(rejection("10.0.0.1:1", nil)) // after Run returned
	if st := w.Stats(); st.Shutdown != 8 || st.Rows != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v, want 8 counted as shutdown", st)
	}
}

func TestStopDuringAHungWriteAccountsForEveryRejection(t *testing.T) {
	for i := 0; i < 20; i++ {
		sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
		w := quarantine.New(quarantine.Config{Queue: 16, BatchRows: 4, DrainTimeout: 20 * time.Millisecond}, sink, hclog.NewNullLogger())
		stop := running(w)
		w.Reject(rejection("10.0.0.1:1", nil))
		<-sink.entered
		for j := 0; j < 19; j++ {
			w.Reject(rejection("10.0.0.1:1", nil))
		}
		stop()
		if st := w.Stats(); st.Rows+st.QueueFull+st.Shutdown != 20 || st.Rows != 0 {
			t.Fatalf("round %d: stats %+v: %d of 20 rejections accounted for", i, st, st.Rows+st.QueueFull+st.Shutdown)
		}
	}
}
