package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/core/integrity"
	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/core/store"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/internal/wasmfixture"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

type oneRule []*wasmrule.Rule

func (o oneRule) Rules() []*wasmrule.Rule { return o }

// `fleetcore rules backtest` over a private database with seeded signals:
// the printed counts per device are those of the seeded values in the
// range (signals outside it are left out), nothing is written, and the
// printed score with the rule is what the device scores once the rule
// really runs.
func TestIntegrationRulesBacktest(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	db := testenv.Database(t)
	t.Setenv("FLEETCORE_DATABASE_URL", db)
	st, err := store.Open(ctx, db, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.MigrateAll(ctx); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 5, 6, 8, 0, 0, 0, time.UTC)
	fix := func(dev string, at time.Time, lat, lon float64) signal.Signal {
		s := signal.New(dev, at)
		s.Lat, s.Lon, s.Recv = lat, lon, at.Add(time.Second)
		s.Protocol, s.Path = "test", signal.PathDirect
		return s
	}
	var sigs []signal.Signal
	for i := 0; i < 30; i++ {
		at := base.Add(time.Duration(i) * 10 * time.Second)
		lat := 45.0
		switch {
		case i%3 == 0:
			lat = 91 // 10 fail on lat
		case i%10 == 1:
			lat = 0 // passes
		}
		lon := 7.0
		if i == 2 {
			lon = 200 // fails on lon
		}
		sigs = append(sigs, fix("truck-1", at, lat, lon), fix("truck-2", at, 45, 7))
		if i < 5 {
			// An hour before the range: failing, and not counted.
			sigs = append(sigs, fix("truck-1", at.Add(-2*time.Hour), 95, 7))
		}
	}
	var nopos signal.Signal = signal.New("truck-3", base.Add(time.Minute))
	nopos.Recv, nopos.Protocol, nopos.Path = base.Add(time.Minute), "test", signal.PathDirect
	sigs = append(sigs, nopos)
	if res, err := st.WriteSignals(ctx, sigs); err != nil || res.Inserted != len(sigs) {
		t.Fatalf("writing signals: %+v %v", res, err)
	}
	log := hclog.NewNullLogger()
	scorer := integrity.NewScorer(st.Pool(), integrity.DefaultParams(), log)
	if _, err := scorer.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	wasm := wasmfixture.Rule(t, "gps.range")
	if err := os.WriteFile(filepath.Join(dir, "gps.range.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "fleet.hcl")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("database {\n  url = %q\n}\nrules {\n  dir = %q\n}\n", db, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	from, to := base.Format(time.RFC3339), base.Add(time.Hour).Format(time.RFC3339)
	// By name (resolved in rules.dir) and by file: the same report.
	code, out := runCaptured(t, "rules", "backtest", "gps.range", "-config", cfgFile, "-from", from, "-to", to, "-cache-dir", "")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	code2, out2 := runCaptured(t, "rules", "backtest", filepath.Join(dir, "gps.range.wasm"), "-config", cfgFile, "-from", from, "-to", to, "-cache-dir", "")
	if code2 != 0 || out2 != out {
		t.Fatalf("by file: exit %d:\n%s\nby name:\n%s", code2, out2, out)
	}
	t.Log("\n" + out)
	if !strings.Contains(out, "rule gps.range 1.0.0 over device time 2026-05-06T08:00:00Z .. 2026-05-06T09:00:00Z: 61 signals, 3 devices") {
		t.Fatalf("header:\n%s", out)
	}
	row := func(dev string) []string {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(dev) + `\s+(.*)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no row for %s:\n%s", dev, out)
		}
		return strings.Fields(m[1])
	}
	want := map[string][]string{
		"truck-1": {"19", "0", "11", "0"},
		"truck-2": {"30", "0", "0", "0"},
		"truck-3": {"0", "0", "0", "1"},
		"total":   {"49", "0", "11", "1"},
	}
	got := map[string][]string{}
	for dev, w := range want {
		r := row(dev)
		got[dev] = r
		if len(r) < 4 || strings.Join(r[:4], " ") != strings.Join(w, " ") {
			t.Errorf("%s: pass warn fail n/a = %v, want %v", dev, r, w)
		}
	}
	if r := got["truck-2"]; len(r) != 7 || r[6] != "+0.00" || r[4] != r[5] {
		t.Errorf("truck-2 score columns %v: want no change", r)
	}
	r1 := got["truck-1"]
	if len(r1) != 7 || !strings.HasPrefix(r1[6], "-") {
		t.Fatalf("truck-1 score columns %v: want a loss", r1)
	}
	var n int64
	if err := st.Pool().QueryRow(ctx, "SELECT (SELECT count(*) FROM findings) + (SELECT count(*) FROM rule_stats) + (SELECT count(*) FROM rule_watermarks)").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the backtest wrote %d rows (%v)", n, err)
	}

	// Run the rule for real over the range's signals only (the earlier
	// hour is removed first) and score: the device lands where the
	// backtest said.
	if _, err := st.Pool().Exec(ctx, "DELETE FROM signals WHERE ts < $1", base); err != nil {
		t.Fatal(err)
	}
	host, err := wasmrule.NewHost(wasmrule.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(ctx)
	rule, err := host.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	runner := rules.New(st.Pool(), oneRule{rule}, rules.Config{Backfill: true}, log)
	if _, err := runner.RunRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"truck-1", "truck-2"} {
		if err := scorer.Rescore(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	var score int64
	if err := st.Pool().QueryRow(ctx, "SELECT score FROM device_scores WHERE device_id = 'truck-1'").Scan(&score); err != nil {
		t.Fatal(err)
	}
	if integrity.FormatCenti(score) != r1[5] {
		t.Fatalf("truck-1 scores %s with the rule running, the backtest said %s", integrity.FormatCenti(score), r1[5])
	}
}
