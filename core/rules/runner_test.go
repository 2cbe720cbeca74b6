package rules_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

type findingRow struct {
	SignalID   int64
	DeviceID   string
	TS         time.Time
	Rule       string
	Version    string
	Dimension  string
	Severity   string
	Status     string
	Reason     int
	ReasonText string
}

func TestIntegrationRuleFindingsGPSRange(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	rule := compileRule(t, newHost(t, wasmrule.Config{}), ruleWasm(t, "gps.range", ""))
	cases := []struct {
		name     string
		lat, lon float64
		status   string // "" = pass, "n/a" = not applicable
		reason   int
		text     string
	}{
		{"lat 90 passes", 90, 0, "", 0, ""},
		{"lat 90.0001 fails", 90.0001, 0, "fail", 1, "latitude outside [-90, 90]"},
		{"lat -90 passes", -90, 10, "", 0, ""},
		{"lat 45 lon 120 passes", 45, 120, "", 0, ""},
		{"lon -180.5 fails", 0, -180.5, "fail", 2, "longitude outside [-180, 180]"},
		{"no position", math.NaN(), math.NaN(), "n/a", 0, ""},
	}
	var sigs []signal.Signal
	for i, c := range cases {
		sigs = append(sigs, fix("dev-"+string(rune('a'+i%2)), i, c.lat, c.lon))
	}
	write(t, st, sigs...)

	pool := rulesPool(t, url, 2)
	r := rules.New(pool, staticRules{rule}, rules.Config{NodeID: "n1", Backfill: true}, testLogger(t))
	if err := r.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := r.RunRule(ctx, rule)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluated != len(cases) || res.Findings != 2 || res.Failed != 0 {
		t.Fatalf("run: %+v, want %d evaluated and 2 findings", res, len(cases))
	}

	rows, err := pool.Query(ctx, `SELECT signal_id, device_id, ts, rule, rule_version, dimension, severity,
		status, reason, reason_text FROM findings ORDER BY signal_id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[findingRow])
	if err != nil {
		t.Fatal(err)
	}
	byTS := map[time.Time]findingRow{}
	for _, f := range got {
		byTS[f.TS.UTC()] = f
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := sigs[i]
			f, ok := byTS[s.TS]
			if c.status != "fail" {
				if ok {
					t.Fatalf("unexpected finding %+v", f)
				}
				return
			}
			var id int64
			if err := pool.QueryRow(ctx, "SELECT id FROM signals WHERE device_id = $1 AND ts = $2", s.DeviceID, s.TS).Scan(&id); err != nil {
				t.Fatal(err)
			}
			want := findingRow{SignalID: id, DeviceID: s.DeviceID, TS: s.TS, Rule: "gps.range", Version: "1.0.0",
				Dimension: "validity", Severity: "critical", Status: "fail", Reason: c.reason, ReasonText: c.text}
			f.TS = f.TS.UTC()
			if f != want {
				t.Fatalf("finding\n got %+v\nwant %+v", f, want)
			}
		})
	}

	// rule_stats: one row per device and hour with exact counts.
	type statRow struct {
		Dev                       string
		Hour                      time.Time
		Dim                       string
		Evaluated, Passed, Warned int64
		Failed, NotApplicable     int64
	}
	rows, err = pool.Query(ctx, `SELECT device_id, hour, dimension, evaluated, passed, warned, failed, not_applicable
		FROM rule_stats WHERE rule = 'gps.range' AND rule_version = '1.0.0' ORDER BY device_id`)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := pgx.CollectRows(rows, pgx.RowToStructByPos[statRow])
	if err != nil {
		t.Fatal(err)
	}
	hour := baseTS.Truncate(time.Hour)
	want := []statRow{
		{"dev-a", hour, "validity", 3, 2, 0, 1, 0}, // cases 0, 2, 4
		{"dev-b", hour, "validity", 3, 1, 0, 1, 1}, // cases 1, 3, 5
	}
	if len(stats) != len(want) {
		t.Fatalf("rule_stats: %+v, want %+v", stats, want)
	}
	for i := range want {
		stats[i].Hour = stats[i].Hour.UTC()
		if stats[i] != want[i] {
			t.Fatalf("rule_stats[%d] = %+v, want %+v", i, stats[i], want[i])
		}
	}

	// Caught up: a second run evaluates nothing.
	res, err = r.RunRule(ctx, rule)
	if err != nil || res.Evaluated != 0 {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	maxID := queryInt(t, pool, "SELECT max(id) FROM signals")
	wms, err := r.Watermarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(wms) != 1 || wms[0].Rule != "gps.range" || wms[0].Version != "1.0.0" || wms[0].LastID != maxID ||
		wms[0].Evaluated != int64(len(cases)) || wms[0].UpdatedBy != "n1" || wms[0].StartID != 0 {
		t.Fatalf("watermarks %+v, want gps.range 1.0.0 at %d with %d evaluated by n1", wms, maxID, len(cases))
	}
}

// failing returns signals of three devices where every 7th is outside the
// latitude range, and how many fail.
func failing(n, offset int) ([]signal.Signal, int) {
	var out []signal.Signal
	bad := 0
	for i := 0; i < n; i++ {
		lat := 50 + float64(i%100)/1000
		if (i+offset)%7 == 0 {
			lat = 91
			bad++
		}
		out = append(out, fix([]string{"d1", "d2", "d3"}[i%3], i+offset, lat, 20))
	}
	return out, bad
}

// checkExactlyOnce asserts that every stored signal was evaluated once by
// the rule version: stats sum to the signal count, the watermark counted the
// same, and every failing signal has exactly one finding.
func checkExactlyOnce(t *testing.T, pool *pgxpool.Pool, rule, version string, signals, bad int64) {
	t.Helper()
	if got := queryInt(t, pool, `SELECT coalesce(sum(evaluated), 0) FROM rule_stats WHERE rule = $1 AND rule_version = $2`, rule, version); got != signals {
		t.Errorf("%s %s: rule_stats evaluated %d, want %d", rule, version, got, signals)
	}
	if got := queryInt(t, pool, `SELECT evaluated FROM rule_watermarks WHERE rule = $1 AND rule_version = $2`, rule, version); got != signals {
		t.Errorf("%s %s: watermark evaluated %d, want %d", rule, version, got, signals)
	}
	if got := queryInt(t, pool, `SELECT count(*) FROM findings WHERE rule = $1 AND rule_version = $2`, rule, version); got != bad {
		t.Errorf("%s %s: %d findings, want %d", rule, version, got, bad)
	}
	if got := queryInt(t, pool, `SELECT count(*) FROM signals s WHERE s.lat > 90
		AND s.id <= (SELECT last_id FROM rule_watermarks WHERE rule = $1 AND rule_version = $2)
		AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.signal_id = s.id AND f.rule = $1 AND f.rule_version = $2)`, rule, version); got != 0 {
		t.Errorf("%s %s: %d failing signals without a finding", rule, version, got)
	}
}

func TestIntegrationRuleExactlyOnceAcrossRestart(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	sigs, bad := failing(3000, 0)
	for i := 0; i < len(sigs); i += 500 {
		write(t, st, sigs[i:i+500]...)
	}
	cfg := rules.Config{BatchSize: 200, MaxBatchesPerRun: 4, Backfill: true, NodeID: "first"}

	// First organizer: one run of four batches, then a run whose second
	// batch is cut off before COMMIT (the process "dies" mid-batch).
	rule1 := compileRule(t, newHost(t, wasmrule.Config{}), ruleWasm(t, "gps.range", ""))
	pool1 := rulesPool(t, url, 2)
	r1 := rules.New(pool1, staticRules{rule1}, cfg, testLogger(t))
	res, err := r1.RunRule(ctx, rule1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluated != 800 || !res.More {
		t.Fatalf("first run: %+v, want 800 evaluated and more to do", res)
	}
	cctx, cancel := context.WithCancel(ctx)
	commits := 0
	rules.SetBeforeCommit(r1, func(ctx context.Context, rule string, lastID int64) {
		commits++
		if commits == 2 {
			cancel()
		}
	})
	res, err = r1.RunRule(cctx, rule1)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %+v, %v; want a canceled commit", res, err)
	}
	if res.Evaluated != 200 {
		t.Fatalf("interrupted run committed %d, want the 200 of its first batch", res.Evaluated)
	}
	pool1.Close()
	rule1.Close(ctx)

	// Second organizer, fresh host, pool and runner: resumes at the
	// watermark and finishes.
	rule2 := compileRule(t, newHost(t, wasmrule.Config{}), ruleWasm(t, "gps.range", ""))
	cfg.NodeID = "second"
	r2 := rules.New(rulesPool(t, url, 2), staticRules{rule2}, cfg, testLogger(t))
	total := 0
	for {
		res, err := r2.RunRule(ctx, rule2)
		if err != nil {
			t.Fatal(err)
		}
		total += res.Evaluated
		if !res.More {
			break
		}
	}
	if total != 2000 {
		t.Fatalf("second organizer evaluated %d, want the remaining 2000", total)
	}
	checkExactlyOnce(t, st.Pool(), "gps.range", "1.0.0", 3000, int64(bad))
}

func TestIntegrationRuleTwoOrganizersConcurrently(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	sigs, bad := failing(4000, 3)
	write(t, st, sigs[:1000]...)

	h := newHost(t, wasmrule.Config{PoolSize: 2})
	cfg := rules.Config{BatchSize: 100, MaxBatchesPerRun: 2, Backfill: true, FrontierWait: 20 * time.Millisecond}
	var runners []*rules.Runner
	var rs []*wasmrule.Rule
	for i := 0; i < 2; i++ {
		rule := compileRule(t, h, ruleWasm(t, "gps.range", ""))
		cfg.NodeID = []string{"a", "b"}[i]
		runners = append(runners, rules.New(rulesPool(t, url, 2), staticRules{rule}, cfg, testLogger(t)))
		rs = append(rs, rule)
	}
	// Ingest keeps writing while both organizers evaluate.
	var wg sync.WaitGroup
	wg.Add(1)
	writing := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(writing)
		for i := 1000; i < len(sigs); i += 100 {
			if _, err := st.WriteSignals(ctx, sigs[i:i+100]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	batches := make([]int, 2)
	errs := make(chan error, 2)
	for i := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := false
			for {
				select {
				case <-writing:
					done = true
				default:
				}
				res, err := runners[i].RunRule(ctx, rs[i])
				if err != nil {
					errs <- err
					return
				}
				batches[i] += res.Batches
				// Stop once ingest is over and a run found nothing to do.
				if done && !res.Leased && !res.More && res.Evaluated == 0 && res.Watermark >= res.Frontier {
					var maxID int64
					if err := st.Pool().QueryRow(ctx, "SELECT max(id) FROM signals").Scan(&maxID); err != nil {
						errs <- err
						return
					}
					if res.Watermark >= maxID {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("batches committed: organizer a %d, organizer b %d", batches[0], batches[1])
	checkExactlyOnce(t, st.Pool(), "gps.range", "1.0.0", 4000, int64(bad))
}

func TestIntegrationRuleOutOfOrderCommit(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	rule := compileRule(t, newHost(t, wasmrule.Config{}), ruleWasm(t, "gps.range", ""))
	pool := rulesPool(t, url, 2)
	r := rules.New(pool, staticRules{rule}, rules.Config{Backfill: true, FrontierWait: 30 * time.Millisecond}, testLogger(t))

	// A writer takes the lower id and stays open...
	slow, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx)
	var lowID int64
	if err := slow.QueryRow(ctx, `INSERT INTO signals (device_id, ts, recv, lat, lon, protocol, path, record_hash)
		VALUES ('slow', $1, $2, 95, 0, 'test', 'direct', 1) RETURNING id`, baseTS, baseRecv).Scan(&lowID); err != nil {
		t.Fatal(err)
	}
	// ...while another takes a higher id and commits first.
	write(t, st, fix("fast", 1, 95, 0))
	highID := queryInt(t, pool, "SELECT max(id) FROM signals")
	if highID <= lowID {
		t.Fatalf("ids %d then %d: want the committed one higher", lowID, highID)
	}
	// A rolled-back writer leaves a gap that must not hold the frontier.
	gap, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var gapID int64
	if err := gap.QueryRow(ctx, `INSERT INTO signals (device_id, ts, recv, lat, lon, protocol, path, record_hash)
		VALUES ('gap', $1, $2, 95, 0, 'test', 'direct', 2) RETURNING id`, baseTS, baseRecv).Scan(&gapID); err != nil {
		t.Fatal(err)
	}
	if err := gap.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// Only the higher id is visible, but evaluating it would move the
	// watermark past the open lower one: nothing may be evaluated yet.
	res, err := r.RunRule(ctx, rule)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluated != 0 || res.Frontier >= lowID {
		t.Fatalf("with a writer open below: %+v, want nothing evaluated and a frontier below %d", res, lowID)
	}

	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = r.RunRule(ctx, rule)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluated != 2 || res.Findings != 2 || res.Watermark < gapID {
		t.Fatalf("after the commit: %+v, want both signals evaluated and the watermark past the gap %d", res, gapID)
	}
	for _, id := range []int64{lowID, highID} {
		if n := queryInt(t, pool, "SELECT count(*) FROM findings WHERE signal_id = $1", id); n != 1 {
			t.Fatalf("signal %d has %d findings, want 1", id, n)
		}
	}
}

func TestIntegrationRulePreviousByDeviceTime(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	rule := compileRule(t, newHost(t, wasmrule.Config{}), ruleWasm(t, "odometer.backwards", ""))
	pool := rulesPool(t, url, 2)
	// Batches of one signal: the previous signal always comes from the
	// database, never from the batch.
	r := rules.New(pool, staticRules{rule}, rules.Config{BatchSize: 1, Backfill: true}, testLogger(t))
	odo := func(dev string, sec int, km float64) signal.Signal {
		s := fix(dev, sec, math.NaN(), math.NaN())
		s.Odometer = km
		return s
	}
	write(t, st, odo("x", 0, 1000), odo("x", 20, 990), odo("y", 10, 5))
	// A late record of x between the two: stored last, but by device time
	// its previous signal is the one at 0 s.
	write(t, st, odo("x", 10, 995))
	// The same device time twice: the second by id sees the first.
	write(t, st, odo("y", 30, 7))
	write(t, st, odo("y", 30, 6))
	for {
		res, err := r.RunRule(ctx, rule)
		if err != nil {
			t.Fatal(err)
		}
		if !res.More {
			break
		}
	}
	type row struct {
		Dev string
		Sec int
		Odo float64
	}
	rows, err := pool.Query(ctx, `SELECT s.device_id, extract(epoch FROM s.ts - $1)::int, s.odometer
		FROM findings f JOIN signals s ON s.id = f.signal_id ORDER BY s.device_id, s.ts, s.id`, baseTS)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	want := []row{{"x", 10, 995}, {"x", 20, 990}, {"y", 30, 6}}
	if len(got) != len(want) {
		t.Fatalf("findings %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("findings %+v, want %+v", got, want)
		}
	}
	// The first signal of each device has no previous one.
	if n := queryInt(t, pool, "SELECT sum(not_applicable) FROM rule_stats"); n != 2 {
		t.Fatalf("%d not applicable, want 2 (the first record of x and of y)", n)
	}
}

func TestIntegrationRuleSampleMode(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	rule := compileRule(t, newHost(t, wasmrule.Config{}), ruleWasm(t, "gps.range", ""))
	pool := rulesPool(t, url, 2)
	r := rules.New(pool, staticRules{rule}, rules.Config{
		BatchSize: 50, Backfill: true, SampleEvery: map[string]int{"gps.range": 4}}, testLogger(t))
	var sigs []signal.Signal
	for i := 0; i < 600; i++ {
		sigs = append(sigs, fix("s", i, 91, 0)) // all fail
	}
	write(t, st, sigs[:300]...)
	run := func() {
		for {
			res, err := r.RunRule(ctx, rule)
			if err != nil {
				t.Fatal(err)
			}
			if !res.More {
				return
			}
		}
	}
	run()
	write(t, st, sigs[300:]...)
	run()
	sample := queryInt(t, pool, "SELECT count(*) FROM signals WHERE (hashint8(id) & 2147483647) % 4 = 0")
	if sample < 100 || sample > 200 {
		t.Fatalf("sample of %d out of 600 with 1 in 4", sample)
	}
	if got := queryInt(t, pool, `SELECT count(*) FROM findings f JOIN signals s ON s.id = f.signal_id
		WHERE (hashint8(s.id) & 2147483647) % 4 = 0`); got != sample {
		t.Fatalf("%d sampled signals have findings, want all %d", got, sample)
	}
	if got := queryInt(t, pool, "SELECT count(*) FROM findings"); got != sample {
		t.Fatalf("%d findings, want %d (only the sample)", got, sample)
	}
	if got := queryInt(t, pool, "SELECT evaluated + sampled_out FROM rule_watermarks"); got != 600 {
		t.Fatalf("evaluated + sampled_out = %d, want 600", got)
	}
	if got := queryInt(t, pool, "SELECT sum(evaluated) FROM rule_stats"); got != sample {
		t.Fatalf("rule_stats evaluated %d, want %d", got, sample)
	}
}

func TestIntegrationRuleNotEvaluatedIsRetriedThenDisabled(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	var alerts []wasmrule.Alert
	h := newHost(t, wasmrule.Config{BatchSize: 2, MaxFailures: 3, OnAlert: func(a wasmrule.Alert) { alerts = append(alerts, a) }})
	rule := compileRule(t, h, trapWasm(t))
	pool := rulesPool(t, url, 2)
	r := rules.New(pool, staticRules{rule}, rules.Config{BatchSize: 4, Backfill: true}, testLogger(t))
	speeds := []float64{10, 20, -1, 30, 40, 50, -3, 60, 70}
	for i, v := range speeds {
		s := fix("t", i, 1, 1)
		s.Speed = v
		write(t, st, s)
	}
	rows, err := pool.Query(ctx, "SELECT id FROM signals ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}

	// Batch 1 (signals 0-3) is evaluated; batch 2 (4-7) is evaluated in
	// host calls of two: 4-5 pass, 6-7 trap. 4-5 are kept, 6-7 are not
	// evaluated, and the run stops there.
	res, err := r.RunRule(ctx, rule)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluated != 6 || res.Failed != 2 || res.Findings != 1 || res.Watermark != ids[5] {
		t.Fatalf("first run: %+v, want 6 evaluated, 2 not evaluated, watermark %d", res, ids[5])
	}
	for run := 2; run <= 3; run++ {
		res, err := r.RunRule(ctx, rule)
		if err != nil {
			t.Fatal(err)
		}
		if res.Evaluated != 0 || res.Failed != 3 || res.Watermark != ids[5] {
			t.Fatalf("run %d: %+v, want the failed batch retried and not evaluated", run, res)
		}
	}
	if !rule.Disabled() || len(alerts) != 1 {
		t.Fatalf("disabled %v with %d alerts after 3 failed batches", rule.Disabled(), len(alerts))
	}
	if got := (staticRules{rule}).Rules(); len(got) != 0 {
		t.Fatal("a disabled rule is still served")
	}
	var first, last, n int64
	var kind string
	if err := pool.QueryRow(ctx, `SELECT first_id, last_id, signals, kind FROM rule_errors ORDER BY id LIMIT 1`).Scan(&first, &last, &n, &kind); err != nil {
		t.Fatal(err)
	}
	if first != ids[6] || last != ids[7] || n != 2 || kind != "trap" {
		t.Fatalf("rule_errors: %d-%d (%d signals, %s), want %d-%d (2, trap)", first, last, n, kind, ids[6], ids[7])
	}
	if got := queryInt(t, pool, "SELECT count(*) FROM rule_errors"); got != 3 {
		t.Fatalf("%d rule_errors rows, want 3", got)
	}
	// Not evaluated is never failed: only evaluated signals are counted.
	if got := queryInt(t, pool, "SELECT sum(evaluated) FROM rule_stats"); got != 6 {
		t.Fatalf("rule_stats evaluated %d, want 6", got)
	}
	if got := queryInt(t, pool, "SELECT sum(failed) FROM rule_stats"); got != 1 {
		t.Fatalf("rule_stats failed %d, want 1 (speed -1)", got)
	}
}

func TestIntegrationRuleHotReloadNewVersionUnderLoad(t *testing.T) {
	testenv.Integration(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, st := database(t)
	folder := t.TempDir()
	install := func(wasm []byte) {
		tmp := filepath.Join(folder, ".gps.range.wasm.tmp")
		if err := os.WriteFile(tmp, wasm, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(folder, "gps.range.wasm")); err != nil {
			t.Fatal(err)
		}
	}
	v1, v2 := ruleWasm(t, "gps.range", ""), ruleWasm(t, "gps.range", "1.1.0")
	install(v1)
	dir := wasmrule.NewDir(newHost(t, wasmrule.Config{}), folder, time.Hour)
	defer dir.Close(context.Background())
	if err := dir.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if r := dir.Rule("gps.range"); r == nil || r.Version() != "1.0.0" {
		t.Fatalf("loaded %v", dir.Status())
	}

	o := organizer.New(testLogger(t), 4)
	runner := rules.New(rulesPool(t, url, 2), dir, rules.Config{
		Interval: 5 * time.Millisecond, BatchSize: 64, MaxBatchesPerRun: 2, Backfill: true,
		FrontierWait: 20 * time.Millisecond, SyncInterval: time.Hour}, testLogger(t))
	runner.Register(o)
	sigs, bad := failing(3000, 1)
	write(t, st, sigs[:300]...)
	o.Start(ctx)
	defer o.Wait()
	defer cancel()

	// Ingest under way while the rule runs on its schedule and is replaced.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 300; i < len(sigs); i += 50 {
			if _, err := st.WriteSignals(ctx, sigs[i:i+50]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	job := runner.JobName("gps.range")
	if err := o.RunNow(ctx, job); err != nil {
		t.Fatal(err)
	}
	if got := queryInt(t, st.Pool(), "SELECT evaluated FROM rule_watermarks WHERE rule_version = '1.0.0'"); got == 0 {
		t.Fatal("version 1.0.0 evaluated nothing before the reload")
	}
	install(v2)
	if err := dir.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if r := dir.Rule("gps.range"); r == nil || r.Version() != "1.1.0" {
		t.Fatalf("after reload: %+v", dir.Status())
	}
	if err := o.RunNow(ctx, rules.SyncJobName); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// Drain: run the job until version 1.1.0 has seen every signal.
	maxID := queryInt(t, st.Pool(), "SELECT max(id) FROM signals")
	for queryInt(t, st.Pool(), "SELECT coalesce(max(last_id), 0) FROM rule_watermarks WHERE rule_version = '1.1.0'") < maxID {
		if err := o.RunNow(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	o.Wait()

	checkExactlyOnce(t, st.Pool(), "gps.range", "1.1.0", int64(len(sigs)), int64(bad))
	// Version 1.0.0 stopped where it was replaced, having evaluated each
	// signal up to its watermark once.
	var v1Last int64
	if err := st.Pool().QueryRow(context.Background(), "SELECT last_id FROM rule_watermarks WHERE rule_version = '1.0.0'").Scan(&v1Last); err != nil {
		t.Fatal(err)
	}
	upTo := queryInt(t, st.Pool(), "SELECT count(*) FROM signals WHERE id <= $1", v1Last)
	badUpTo := queryInt(t, st.Pool(), "SELECT count(*) FROM signals WHERE id <= $1 AND lat > 90", v1Last)
	checkExactlyOnce(t, st.Pool(), "gps.range", "1.0.0", upTo, badUpTo)
	st1 := runner.Status()
	if len(st1) != 1 || st1[0].Version != "1.1.0" || st1[0].Evaluated != uint64(len(sigs)) {
		t.Fatalf("runner status %+v", st1)
	}
}

func TestIntegrationRuleGroupSharesBatchesAndIsolatesFailures(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	h := newHost(t, wasmrule.Config{})
	gps := compileRule(t, h, ruleWasm(t, "gps.range", ""))
	trap := compileRule(t, h, trapWasm(t))
	pool := rulesPool(t, url, 2)
	r := rules.New(pool, staticRules{gps, trap}, rules.Config{BatchSize: 100, MaxBatchesPerRun: 1000, Backfill: true}, testLogger(t))
	sigs, bad := failing(1000, 0)
	for i := range sigs {
		sigs[i].Speed = float64(i % 50)
	}
	write(t, st, sigs[:500]...)
	if res, err := r.RunRule(ctx, gps); err != nil || res.Evaluated != 500 {
		t.Fatalf("gps.range alone: %+v, %v", res, err)
	}
	write(t, st, sigs[500:]...)
	// test.trap is new and starts at 0; gps.range is 500 ahead. Evaluated
	// together, each sees every signal once.
	res, err := r.RunRules(ctx, []*wasmrule.Rule{gps, trap})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Evaluated != 500 || res[1].Evaluated != 1000 || res[0].More || res[1].More {
		t.Fatalf("group run: %+v", res)
	}
	checkExactlyOnce(t, pool, "gps.range", "1.0.0", 1000, int64(bad))
	if got := queryInt(t, pool, "SELECT sum(evaluated) FROM rule_stats WHERE rule = 'test.trap'"); got != 1000 {
		t.Fatalf("test.trap evaluated %d, want 1000", got)
	}

	// A rule that cannot evaluate a batch stops alone; the others go on.
	more, _ := failing(200, 1000)
	for i := range more {
		more[i].Speed = 1
	}
	more[150].Speed = -3
	write(t, st, more...)
	res, err = r.RunRules(ctx, []*wasmrule.Rule{gps, trap})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Evaluated != 200 || res[1].Failed == 0 || res[1].Evaluated != 100 {
		t.Fatalf("with a failing member: %+v, want gps.range through all 200 and test.trap stopped at the batch of signal 150", res)
	}
}
