package quarantine_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/quarantine"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
)

// migrated returns a store on a fresh, migrated database and that
// database's URL.
func migrated(t *testing.T) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	url := testenv.Database(t)
	st, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.MigrateAll(ctx); err != nil {
		t.Fatal(err)
	}
	return st, url
}

func TestIntegrationStoresAnyBytes(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st, _ := migrated(t)
	w := quarantine.New(quarantine.Config{}, quarantine.PGSink{DB: st.Pool()}, hclog.NewNullLogger())
	stop := running(w)
	raw := append([]byte("d\x00\xff,1\n"), bytes.Repeat([]byte{0}, 10000)...)
	w.Reject(quarantine.Rejection{
		Recv:       time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		RemoteAddr: "10.0.0.1:1\x00", Listener: "line\xff", Protocol: "li\x00ne",
		DeviceID: "d\x00\xff", Reason: "invalid signal: device_id has a NUL \x00 and \xc3\x28", Raw: raw,
	})
	stop()
	if st := w.Stats(); st.Rows != 1 {
		t.Fatalf("stats %+v, want the row stored", st)
	}
	var dev, reason, remote, listener, protocol string
	var got []byte
	var length int
	if err := st.Pool().QueryRow(ctx, `SELECT device_id, reason, remote_addr, listener, protocol, raw, raw_length FROM rejected_frames`).
		Scan(&dev, &reason, &remote, &listener, &protocol, &got, &length); err != nil {
		t.Fatal(err)
	}
	if dev != `d\x00\xff` || reason != `invalid signal: device_id has a NUL \x00 and \xc3(` || remote != `10.0.0.1:1\x00` ||
		listener != `line\xff` || protocol != `li\x00ne` {
		t.Fatalf("text columns %q %q %q %q %q", dev, reason, remote, listener, protocol)
	}
	if !bytes.Equal(got, raw[:quarantine.DefaultMaxRawBytes]) || length != len(raw) {
		t.Fatalf("raw %d bytes (%q…), raw_length %d; want the first %d bytes and %d", len(got), got[:8], length,
			quarantine.DefaultMaxRawBytes, len(raw))
	}
}

// TestIntegrationPostgresCutNeverBlocks cuts the writer's Postgres: every
// Reject returns at once, what the queue cannot hold is counted as
// dropped, and once Postgres is back the held and queued rows are stored.
func TestIntegrationPostgresCutNeverBlocks(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st, url := migrated(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(url))
	viaProxy, err := store.Open(ctx, testenv.WithHost(url, proxy.Addr()), store.Options{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	w := quarantine.New(quarantine.Config{Queue: 50, BatchRows: 10, PerSourceRate: 1 << 20, PerSourceBurst: 1 << 20,
		Rate: 1 << 20, Burst: 1 << 20, WriteTimeout: 2 * time.Second}, quarantine.PGSink{DB: viaProxy.Pool()}, hclog.NewNullLogger())
	stop := running(w)
	defer stop()
	proxy.Cut()
	const n = 2000
	slowest := time.Duration(0)
	for i := 0; i < n; i++ {
		start := time.Now()
		w.Reject(rejection(fmt.Sprintf("10.0.%d.%d:1", i/250, i%250), []byte("garbage")))
		slowest = max(slowest, time.Since(start))
	}
	if slowest > 50*time.Millisecond {
		t.Fatalf("the slowest Reject took %s while Postgres was cut", slowest)
	}
	// Wait until the writer has failed at least once, so the rows it
	// holds are really held through the outage.
	deadline := time.Now().Add(30 * time.Second)
	for w.Stats().WriteFailures == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	before := w.Stats()
	if before.WriteFailures == 0 || before.QueueFull < n-50-10 || before.Rows != 0 {
		t.Fatalf("during the cut: %+v, want write failures, at least %d dropped as queue_full, no rows", before, n-60)
	}
	proxy.Restore()
	want := uint64(n) - before.QueueFull
	for w.Stats().Rows < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	after := w.Stats()
	var stored uint64
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM rejected_frames`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if after.Rows != want || stored != want || after.QueueFull != before.QueueFull || after.Rows+after.QueueFull != n {
		t.Fatalf("after the restore: %+v, %d rows in the table; want %d rows and %d dropped", after, stored, want, before.QueueFull)
	}
}

func TestIntegrationRetentionDeletesOldRowsOnly(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	st, _ := migrated(t)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	// ids in insertion order; ages in days.
	ages := []int{40, 31, 29, 45, 1, 0, 2}
	for i, days := range ages {
		if _, err := st.Pool().Exec(ctx, `INSERT INTO rejected_frames (recv, remote_addr, listener, protocol, reason, raw, raw_length)
			VALUES ($1, '10.0.0.1:1', 'l', 'p', $2, '\x00', 1)`, now.Add(-time.Duration(days)*24*time.Hour), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	left := func() []string {
		rows, err := st.Pool().Query(ctx, `SELECT reason FROM rejected_frames ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for rows.Next() {
			var r string
			rows.Scan(&r) //nolint:errcheck
			out = append(out, r)
		}
		return out
	}
	r := &quarantine.Retention{DB: st.Pool(), MaxAge: 30 * 24 * time.Hour, Chunk: 1, Now: func() time.Time { return now }}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(left()); got != "[2 4 5 6]" || r.Deleted() != 3 {
		t.Fatalf("after the age limit: %s left, %d deleted; want [2 4 5 6] (younger than 30 days), 3 deleted", got, r.Deleted())
	}
	r.MaxRows = 3
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(left()); got != "[4 5 6]" || r.Deleted() != 4 {
		t.Fatalf("after the row cap: %s left; want the newest three [4 5 6]", got)
	}
	r.MaxChunks = 1
	r.MaxRows = 1
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(left()); got != "[5 6]" {
		t.Fatalf("one chunk of one row per run: %s left, want [5 6]", got)
	}
}
