package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

// TestIntegrationPromotedStandby: a store on the multi-host URL of a
// primary and its synchronous standby goes on writing after the primary
// dies and the standby is promoted, with every acked record on the new
// primary; and the keys it remembers from the old primary are not taken
// for stored on the new one (here the rows are deleted there, as a standby
// that missed the tail would lack them): a resend is written again, never
// answered from memory.
func TestIntegrationPromotedStandby(t *testing.T) {
	testenv.Integration(t)
	pair := testenv.StartPGPair(t)
	pair.Exec(0, "CREATE DATABASE fc")
	ctx := context.Background()
	st, err := store.Open(ctx, pair.MultiHostURL("fc"), store.Options{MaxConns: 4, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.MigrateAll(ctx); err != nil {
		t.Fatal(err)
	}
	batch := func(dev string) []signal.Signal {
		b := make([]signal.Signal, 50)
		for i := range b {
			b[i] = sig(dev, i)
		}
		return b
	}
	a := batch("before")
	if res, err := st.WriteSignals(ctx, a); err != nil || res.Inserted != 50 {
		t.Fatalf("first write: %+v %v", res, err)
	}
	// The cache answers a resend while the server is the same.
	if res, err := st.WriteSignals(ctx, a); err != nil || res.Duplicates != 50 {
		t.Fatalf("resend to the same primary: %+v %v", res, err)
	}
	pair.Kill(0)
	pair.Promote()
	start := time.Now()
	var res store.WriteResult
	failed := 0
	for {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err = st.WriteSignals(wctx, batch("after"))
		cancel()
		if err == nil {
			break
		}
		if failed++; failed == 1 {
			t.Logf("write during the failover: %v", err)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no write to the promoted standby within 30 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("first write on the promoted standby %v after the promotion (%d failed before)", time.Since(start).Round(time.Millisecond), failed)
	// A write that failed may have committed: its retry finds those rows.
	if res.Inserted+res.Duplicates != 50 || count(t, st, "SELECT count(*) FROM signals WHERE device_id = 'after'") != 50 {
		t.Fatalf("write after the promotion: %+v", res)
	}
	// The synchronous standby had every committed record of the old primary.
	if n := count(t, st, "SELECT count(*) FROM signals WHERE device_id = 'before'"); n != 50 {
		t.Fatalf("%d of 50 records acked by the old primary on the new one", n)
	}
	if _, err := st.Pool().Exec(ctx, "DELETE FROM signals WHERE device_id = 'before'"); err != nil {
		t.Fatal(err)
	}
	res, err = st.WriteSignals(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 50 || count(t, st, "SELECT count(*) FROM signals WHERE device_id = 'before'") != 50 {
		t.Fatalf("resend after the failover: %+v, want all 50 written to the new primary (not acked from the old primary's keys)", res)
	}
}
