package spool

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetcore/fleetcore/signal"
)

// TestReplaysSegmentsOfTheVersion1Codec: a journal written by a build
// before decoder_version (testdata/v1: three batches of batchOf, written by
// that build's Write) still replays whole and in order after an upgrade,
// its signals without a decoder version; batches written now carry theirs.
func TestReplaysSegmentsOfTheVersion1Codec(t *testing.T) {
	dir := t.TempDir()
	old, err := filepath.Glob(filepath.Join("testdata", "v1", "*"+segSuffix))
	if err != nil || len(old) == 0 {
		t.Fatalf("no version 1 segment fixture: %v", err)
	}
	for _, f := range old {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, dir, nil)
	ctx := context.Background()
	batch := batchOf("dev", 15, 5)
	for i := range batch {
		batch[i].DecoderVersion = "1.2.0+sha256:abcdef123456"
	}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var got []signal.Signal
	if _, err := s.Replay(ctx, 1000, func(_ context.Context, b []signal.Signal) error {
		got = append(got, b...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 {
		t.Fatalf("replayed %d signals, want 15 from the old segment and 5 new", len(got))
	}
	want := append(append(batchOf("dev", 0, 5), batchOf("dev", 5, 5)...), batchOf("dev", 10, 5)...)
	for i, g := range got {
		if seq := g.Attrs["seq"].(int64); seq != int64(i) {
			t.Fatalf("signal %d has seq %d: out of order", i, seq)
		}
		wantVersion := ""
		if i >= 15 {
			wantVersion = batch[0].DecoderVersion
		} else if g.RecordHash() != want[i].RecordHash() || string(g.Frame) != string(want[i].Frame) {
			t.Errorf("old signal %d differs from what was written: %+v", i, g)
		}
		if g.DecoderVersion != wantVersion {
			t.Errorf("signal %d: decoder version %q, want %q", i, g.DecoderVersion, wantVersion)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "dead", "*")); len(m) > 0 {
		t.Fatalf("segments moved to dead/: %v", m)
	}
}
