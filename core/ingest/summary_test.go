package ingest

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/signal"
)

// countingTier stores nothing and reports fixed row counts, as
// PostgresTier does after writing 5 new rows and skipping 3 duplicates.
type countingTier struct{}

func (countingTier) Name() string                                 { return signal.PathDirect }
func (countingTier) Write(context.Context, []signal.Signal) error { return nil }
func (countingTier) Counts() (inserted, duplicates uint64)        { return 5, 3 }

type plainTier struct{}

func (plainTier) Name() string                                 { return signal.PathSpool }
func (plainTier) Write(context.Context, []signal.Signal) error { return nil }

// TestSummaryStoredCountsNewRowsOnly: the dashboard's "signals stored" is
// the tier's new rows, not the acked signals (a duplicate is acked too).
func TestSummaryStoredCountsNewRowsOnly(t *testing.T) {
	b := New(Config{}, hclog.NewNullLogger(), countingTier{}, plainTier{})
	b.durable.Add(8) // 5 new + 3 duplicates, all acked
	got := map[string]string{}
	for _, l := range b.Summary() {
		got[l[0]] = l[1]
	}
	for k, want := range map[string]string{
		"signals acked": "8", "signals stored (new rows, direct)": "5", "duplicates skipped (direct)": "3",
	} {
		if got[k] != want {
			t.Errorf("%q = %q, want %q (summary %v)", k, got[k], want, got)
		}
	}
	if _, ok := got["signals stored"]; ok {
		t.Errorf("a bare \"signals stored\" line (the acked count) is still there: %v", got)
	}
	if _, ok := got["signals stored (new rows, spool)"]; ok {
		t.Errorf("a tier without counts got a stored line: %v", got)
	}
}
