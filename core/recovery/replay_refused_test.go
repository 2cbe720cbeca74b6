package recovery_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/failover"
	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/recovery"
	"github.com/fleetcore/fleetcore/core/spool"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// poisonedBatch is 200 acked records of 20 devices and one that Postgres
// refuses (its device ID is in poison).
func poisonedBatch(poison string) []signal.Signal {
	out := make([]signal.Signal, 0, 201)
	for i := 0; i < 200; i++ {
		s := signal.New(fmt.Sprintf("dev-%02d", i%20), time.Date(2026, 3, 1, 0, 0, i, 0, time.UTC))
		s.Protocol, s.Frame = "test", []byte(fmt.Sprintf("frame-%d", i/10))
		out = append(out, s)
		if i == 100 {
			p := signal.New(poison, time.Date(2026, 3, 1, 0, 0, i, 0, time.UTC))
			p.Protocol, p.Frame = "test", []byte("poison-frame")
			out = append(out, p)
		}
	}
	return out
}

func randomID(n int) string {
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rng.IntN(26))
	}
	return string(b)
}

func poisonStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Database(t), store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.MigrateAll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `ALTER TABLE signals ADD CONSTRAINT poison CHECK (device_id NOT LIKE 'poison%')`); err != nil {
		t.Fatal(err)
	}
	return st
}

// replayCase checks what replaying a poisoned batch left: the 200 good
// records stored once each, the refused one in rejected_records with
// acked=true, counted, and its device alerted.
func checkReplayed(t *testing.T, st *store.Store, r *recovery.Replayer, poison, path, sqlstate string) {
	t.Helper()
	ctx := context.Background()
	q := func(sql string, args ...any) int {
		t.Helper()
		var n int
		if err := st.Pool().QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := q("SELECT count(DISTINCT (device_id, ts, record_hash)) FROM signals WHERE path = $1", path); n != 200 || q("SELECT count(*) FROM signals") != 200 {
		t.Fatalf("%d good records stored by %s replay (%d rows), want 200 once each", n, path, q("SELECT count(*) FROM signals"))
	}
	if n := q("SELECT count(*) FROM rejected_records WHERE acked AND path = $1 AND sqlstate = $2 AND device_id_len = $3", path, sqlstate, len(poison)); n != 1 {
		t.Fatalf("rejected_records holds %d acked rows for the refused record, want 1", n)
	}
	if acked, _ := st.RefusedCounts(); acked < 1 {
		t.Fatalf("refused acked records counted %d", acked)
	}
	if s := r.Stats(); s.Refused < 1 {
		t.Fatalf("replay stats %+v", s)
	}
	subject := store.Printable(poison, store.MaxPrintable)
	if n := q("SELECT count(*) FROM alerts WHERE device_id = $1 AND kind = $2 AND state = 'open'", subject, integrity.KindRecordRefused); n != 1 {
		t.Fatalf("%d open record_refused alerts for the device, want 1", n)
	}
	if n := q("SELECT count(*) FROM alert_events WHERE device_id = $1 AND kind = $2", subject, integrity.KindRecordRefused); n != 1 {
		t.Fatalf("%d record_refused alert events, want 1", n)
	}
}

// openAlerts is the node's RefusedFunc in small: one record_refused
// alert per device.
func openAlerts(t *testing.T, st *store.Store) recovery.RefusedFunc {
	return func(ctx context.Context, recs []store.RejectedRecord) {
		for _, r := range recs {
			if _, err := integrity.OpenAlert(ctx, st.Pool(), store.Printable(r.Signal.DeviceID, store.MaxPrintable),
				integrity.KindRecordRefused, r.Reason); err != nil {
				t.Error(err)
			}
		}
	}
}

var poisons = []struct {
	name, id, sqlstate string
}{
	{"check constraint", "poison-7", "23514"},
	{"device id too long for the index", randomID(6000), "54000"},
}

func TestIntegrationReplayFailoverKeepsRefusedRecord(t *testing.T) {
	testenv.Integration(t)
	for _, tc := range poisons {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := poisonStore(t)
			fo, err := failover.New(failover.Options{URL: testenv.VHost(t), Queue: "fc.failover", DeadLetter: "fc.failover.dead",
				ConfirmTimeout: 5 * time.Second, IdleWait: 100 * time.Millisecond, MaxRedeliver: 3}, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			defer fo.Close()
			if err := fo.Connect(); err != nil {
				t.Fatal(err)
			}
			// One message holding the poison record and 200 good ones,
			// and a clean message behind it.
			batch := poisonedBatch(tc.id)
			if err := fo.Write(ctx, batch[:150]); err != nil {
				t.Fatal(err)
			}
			if err := fo.Write(ctx, batch[150:]); err != nil {
				t.Fatal(err)
			}
			r := recovery.New(st, fo, nil, 4096, 10*time.Second, hclog.NewNullLogger())
			r.OnRefused(openAlerts(t, st))
			if err := r.ReplayFailover(ctx); err != nil {
				t.Fatal(err)
			}
			fs := fo.Stats()
			if fs.DeadLettered != 0 || fs.DeadLetterBacklog != 0 {
				t.Fatalf("dead-lettered %d (dead-letter queue %d), want none", fs.DeadLettered, fs.DeadLetterBacklog)
			}
			if fs.Replayed != 2 || fs.Backlog != 0 {
				t.Fatalf("replayed %d messages, %d left in the queue; want both acked", fs.Replayed, fs.Backlog)
			}
			checkReplayed(t, st, r, tc.id, signal.PathFailover, tc.sqlstate)
		})
	}
}

func TestIntegrationReplaySpoolKeepsRefusedRecord(t *testing.T) {
	testenv.Integration(t)
	for _, tc := range poisons {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := poisonStore(t)
			sp, err := spool.Open(spool.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			batch := poisonedBatch(tc.id)
			for _, part := range [][]signal.Signal{batch[:50], batch[50:150], batch[150:]} {
				if err := sp.Write(ctx, part); err != nil {
					t.Fatal(err)
				}
			}
			r := recovery.New(st, nil, sp, 64, 10*time.Second, hclog.NewNullLogger())
			r.OnRefused(openAlerts(t, st))
			if err := r.ReplaySpool(ctx); err != nil {
				t.Fatal(err)
			}
			ss := sp.Stats()
			if ss.Segments != 0 || ss.DeadSegments != 0 || ss.DeadBacklog != 0 {
				t.Fatalf("spool after replay: %d segments, %d moved to dead/; want the segment replayed and removed", ss.Segments, ss.DeadSegments)
			}
			checkReplayed(t, st, r, tc.id, signal.PathSpool, tc.sqlstate)
		})
	}
}
