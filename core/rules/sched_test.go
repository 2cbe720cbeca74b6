package rules_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/core/rules"
	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
	"github.com/fleetcore/fleetcore/signal"
)

// TestIntegrationRuleBatchesGrowAndCrossGaps checks the catch-up mode:
// batches grow with the backlog up to MaxBatchSize, a long run of ids that
// no signal holds (burnt sequence values, deleted rows) costs no more than
// a batch, and every signal is still evaluated exactly once.
func TestIntegrationRuleBatchesGrowAndCrossGaps(t *testing.T) {
	testenv.Integration(t)
	cases := []struct {
		name         string
		batch, max   int
		gap          int64 // sequence values burnt after the first half
		wantBatchMax int   // most batches the single run may take
	}{
		{"no growth", 100, 0, 0, 30},
		{"growth", 100, 1000, 0, 4},
		{"growth across a gap", 100, 1000, 1_000_000, 6},
		{"gap without growth", 100, 0, 5_000_000, 32},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			url, st := database(t)
			sigs, bad := failing(3000, 0)
			write(t, st, sigs[:1500]...)
			if c.gap > 0 {
				if _, err := st.Pool().Exec(ctx, `SELECT setval('signals_id_seq', nextval('signals_id_seq') + $1)`, c.gap); err != nil {
					t.Fatal(err)
				}
			}
			write(t, st, sigs[1500:]...)
			rule := compileRule(t, newHost(t, wasmrule.Config{}), ruleWasm(t, "gps.range", ""))
			r := rules.New(rulesPool(t, url, 2), staticRules{rule}, rules.Config{
				BatchSize: c.batch, MaxBatchSize: c.max, MaxBatchesPerRun: 1 << 20, Backfill: true}, testLogger(t))
			res, err := r.RunRule(ctx, rule)
			if err != nil {
				t.Fatal(err)
			}
			if res.Evaluated != len(sigs) || res.More || res.Watermark != res.Frontier {
				t.Fatalf("run: %+v, want %d evaluated up to the frontier", res, len(sigs))
			}
			if res.Batches > c.wantBatchMax {
				t.Errorf("%d batches, want at most %d", res.Batches, c.wantBatchMax)
			}
			checkExactlyOnce(t, st.Pool(), "gps.range", "1.0.0", int64(len(sigs)), int64(bad))
		})
	}
}

// TestIntegrationRuleAttrsPickedOut checks that picking the declared attrs
// out in the fetch gives the verdicts the host gives the full signals
// (obd.plausibility reads the ignition attr): numbers, booleans, numeric
// strings, JSON null and absent keys alike.
func TestIntegrationRuleAttrsPickedOut(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	ignition := []any{nil, 0.0, 1.0, false, true, "0", "1", "off", "absent"}
	var sigs []signal.Signal
	for i := 0; i < 90; i++ {
		s := fix(fmt.Sprintf("dev-%d", i%4), i, 50, 20)
		s.RPM = []float64{0, 750, 3000}[i%3]
		s.Coolant, s.Voltage = 90, 14
		if v := ignition[i%len(ignition)]; v != "absent" {
			s.SetAttr("ignition", v)
		}
		s.SetAttr("other", float64(i))
		sigs = append(sigs, s)
	}
	write(t, st, sigs...)
	h := newHost(t, wasmrule.Config{})
	rule := compileRule(t, h, ruleWasm(t, "obd.plausibility", ""))
	if !slices.Contains(rule.Meta().Attrs, "ignition") {
		t.Fatalf("obd.plausibility declares %v, want ignition among them", rule.Meta().Attrs)
	}
	in := make([]wasmrule.Input, len(sigs))
	for i, s := range sigs {
		in[i] = wasmrule.Input{Signal: s, Now: s.Recv.Truncate(1e9)}
	}
	want, err := rule.Check(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	pool := rulesPool(t, url, 2)
	r := rules.New(pool, staticRules{rule}, rules.Config{Backfill: true}, testLogger(t))
	res, err := r.RunRule(ctx, rule)
	if err != nil || res.Evaluated != len(sigs) {
		t.Fatalf("run: %+v, %v", res, err)
	}
	// Signals are stored in order, so the i-th id is the i-th signal.
	rows, err := pool.Query(ctx, `SELECT coalesce(f.status, '') FROM signals s
		LEFT JOIN findings f ON f.signal_id = s.id AND f.rule = 'obd.plausibility' ORDER BY s.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i, findings := 0, 0
	for rows.Next() {
		var status string
		if err := rows.Scan(&status); err != nil {
			t.Fatal(err)
		}
		w := ""
		if st := want[i].Status; st == wasmrule.StatusWarn || st == wasmrule.StatusFail {
			w = st.String()
			findings++
		}
		if status != w {
			t.Errorf("signal %d (rpm %v, ignition %v): finding %q, want %q", i, sigs[i].RPM, sigs[i].Attrs["ignition"], status, w)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(sigs) || findings == 0 {
		t.Fatalf("%d signals, %d expected findings: the test does not exercise the attr", i, findings)
	}
}

// TestIntegrationRuleFailedRuleWaitsAnInterval checks that a rule whose
// batch was not evaluated sits out the reruns of its group until its
// interval has passed, while the other rules of the group go on.
func TestIntegrationRuleFailedRuleWaitsAnInterval(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	url, st := database(t)
	h := newHost(t, wasmrule.Config{})
	gps := compileRule(t, h, ruleWasm(t, "gps.range", ""))
	trap := compileRule(t, h, trapWasm(t))
	const every = time.Hour
	r := rules.New(rulesPool(t, url, 2), staticRules{gps, trap}, rules.Config{
		Interval: every, BatchSize: 100, Backfill: true}, testLogger(t))
	sigs, _ := failing(300, 0)
	for i := range sigs {
		sigs[i].Speed = 1
	}
	sigs[150].Speed = -3 // test.trap traps on a negative speed
	write(t, st, sigs...)
	res, err := r.RunInterval(ctx, every)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Evaluated != 300 || res[1].Failed == 0 {
		t.Fatalf("first run: %+v, want gps.range through all 300 and test.trap failed", res)
	}
	more, _ := failing(100, 300)
	write(t, st, more...)
	res, err = r.RunInterval(ctx, every)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Evaluated != 100 {
		t.Fatalf("rerun: %+v, want gps.range alone through the 100 new signals", res)
	}
	for _, s := range r.Status() {
		if s.Rule == "test.trap" && s.Runs != 1 {
			t.Errorf("test.trap ran %d times, want 1", s.Runs)
		}
	}
}
