package integrity

import (
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

var update = flag.Bool("update", false, "rewrite golden files")

var base = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// fleetDevice builds 3 hours of records every 30 s from base; mod may
// change or drop (return false) each record; i is the slot number.
func fleetDevice(mod func(i int, r *Record) bool) []Record {
	var out []Record
	for i := 0; i < 360; i++ {
		ts := base.Add(time.Duration(i) * 30 * time.Second)
		r := Record{TS: ts, Recv: ts.Add(2 * time.Second), Lat: 54.68 + float64(i)*1e-4, Lon: 25.28, Valid: signal.True}
		if mod == nil || mod(i, &r) {
			out = append(out, r)
		}
	}
	return out
}

type synthetic struct {
	name  string
	recs  []Record
	rules func(h time.Time, w WindowStats) []CheckCounts
	score int64    // hundredths
	kinds []string // open alerts
}

func syntheticFleet() []synthetic {
	hour12 := base.Add(2 * time.Hour)
	return []synthetic{
		{name: "healthy", recs: fleetDevice(nil), score: 10000},
		{
			// The last hour has only (0,0) fixes and gps.zero_island fails on
			// them: validity = (896+784)/(1024+896+784) = 6213 bp, so 35 points
			// become 21.74 (−13.26, split evenly between the two checks).
			name: "broken_gps",
			recs: fleetDevice(func(i int, r *Record) bool {
				if !r.TS.Before(hour12) {
					r.Lat, r.Lon = 0, 0
				}
				return true
			}),
			rules: func(h time.Time, w WindowStats) []CheckCounts {
				failed := int64(0)
				if !h.Before(hour12) {
					failed = w.Records
				}
				return []CheckCounts{{"gps.zero_island", "1.0.0", Validity, w.Records, w.Records - failed, 0, failed}}
			},
			score: 8674, kinds: []string{KindGPSBroken},
		},
		{
			// The clock runs an hour behind: every record arrives 1h late
			// by the same amount, a steady offset (builtin.lag 2 fails it;
			// a backlog delivered late would pass): timeliness 0 of 15.
			name:  "drifting_clock",
			recs:  fleetDevice(func(i int, r *Record) bool { r.Recv = r.TS.Add(time.Hour + 2*time.Second); return true }),
			score: 8500, kinds: []string{KindClockDrift},
		},
		{
			// Every record is sent twice with the same device time and other
			// content: uniqueness 50% of 10 points.
			name: "duplicate_sender",
			recs: func() []Record {
				recs := fleetDevice(nil)
				for _, r := range fleetDevice(nil) {
					r.Lon += 0.001
					recs = append(recs, r)
				}
				return recs
			}(),
			score: 9500, kinds: []string{KindDuplicateStorm},
		},
		{
			// A 20m30s hole in the last hour: 40 of 120 expected records
			// missing; completeness (1024·160 + 1680·240)/(2704·240) = 8737 bp
			// of 20 points = 17.47.
			name: "gappy",
			recs: fleetDevice(func(i int, r *Record) bool {
				return r.TS.Before(hour12.Add(10*time.Minute)) || !r.TS.Before(hour12.Add(30*time.Minute))
			}),
			score: 9747, kinds: []string{KindReportingGap},
		},
		{
			// No fix and a clock an hour ahead all along: validity and
			// timeliness lost (35 + 15), 50.00 in every window, so the score
			// alert opens after two windows.
			name: "junk",
			recs: fleetDevice(func(i int, r *Record) bool {
				r.Lat, r.Lon, r.Valid = 0, 0, signal.False
				r.Recv = r.TS.Add(-time.Hour)
				return true
			}),
			score: 5000, kinds: []string{KindClockDrift, KindGPSBroken, KindScoreLow},
		},
	}
}

func windowsOf(s synthetic, p Params) []Window {
	var ws []Window
	for _, st := range Windows(s.recs, p.ExpectedInterval.Milliseconds(), p.ClockDriftLimit.Milliseconds()) {
		w := Window{Stats: st}
		if s.rules != nil {
			w.Rules = s.rules(st.Hour, st)
		}
		ws = append(ws, w)
	}
	return ws
}

func TestGoldenScores(t *testing.T) {
	p := DefaultParams()
	for _, s := range syntheticFleet() {
		t.Run(s.name, func(t *testing.T) {
			r := Compute(p, s.name, windowsOf(s, p))
			if r.ScoreCenti != s.score {
				t.Errorf("score %s, want %s; losses %+v", FormatCenti(r.ScoreCenti), FormatCenti(s.score), r.Losses)
			}
			var kinds []string
			for _, a := range r.Alerts {
				kinds = append(kinds, a.Kind)
			}
			if !reflect.DeepEqual(kinds, s.kinds) {
				t.Errorf("alerts %v, want %v: %+v", kinds, s.kinds, r.Alerts)
			}
			var lost int64
			for _, l := range r.Losses {
				lost += l.LostCenti
			}
			if lost != 10000-r.ScoreCenti {
				t.Errorf("losses add up to %d, score lost %d", lost, 10000-r.ScoreCenti)
			}
			got, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", s.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run with -update): %v", err)
			}
			if strings.TrimSpace(string(want)) != string(got) {
				t.Errorf("result differs from %s (rerun with -update and review the diff):\n%s", path, got)
			}
		})
	}
}

func TestLossReasonNamesCheckCountsAndTime(t *testing.T) {
	p := DefaultParams()
	s := syntheticFleet()[1]
	r := Compute(p, s.name, windowsOf(s, p))
	want := map[string]string{
		CheckGPSFix:       "validity −6.63: builtin.gps_fix failed on 120 of 360 signals since 2026-03-01 12:00",
		"gps.zero_island": "validity −6.63: gps.zero_island failed on 120 of 360 signals since 2026-03-01 12:00",
	}
	if len(r.Losses) != 2 {
		t.Fatalf("losses %+v", r.Losses)
	}
	for _, l := range r.Losses {
		if l.Reason != want[l.Check] {
			t.Errorf("reason %q, want %q", l.Reason, want[l.Check])
		}
	}
}

func TestScoreAlertHysteresis(t *testing.T) {
	p := Params{EnterBelow: 60, ClearAbove: 75, EnterWindows: 2, ClearWindows: 2}
	cases := []struct {
		name   string
		scores []int64
		open   bool
	}{
		{"never low", []int64{9000, 8000, 7000}, false},
		{"one low window is not enough", []int64{9000, 5000}, false},
		{"two low windows open", []int64{9000, 5000, 5900}, true},
		{"low broken by a middling window", []int64{5000, 7000, 5000}, false},
		{"stays open between thresholds", []int64{5000, 5000, 7000, 7500}, true},
		{"one good window does not clear", []int64{5000, 5000, 8000}, true},
		{"two good windows clear", []int64{5000, 5000, 8000, 7501}, false},
		{"reopens", []int64{5000, 5000, 8000, 8000, 1000, 1000}, true},
		{"exactly at enter is not below", []int64{6000, 6000, 6000}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Result
			for i, s := range tc.scores {
				r.History = append(r.History, Point{Hour: base.Add(time.Duration(i) * time.Hour), ScoreCenti: s})
			}
			r.ScoreCenti = tc.scores[len(tc.scores)-1]
			_, open := scoreAlert(p, r)
			if open != tc.open {
				t.Fatalf("open = %v, want %v", open, tc.open)
			}
		})
	}
}

func TestGPSBrokenNeedsTheConfiguredDuration(t *testing.T) {
	p := DefaultParams() // 10m
	for _, tc := range []struct {
		bad  int // trailing bad records at 30 s
		want bool
	}{{20, false}, {21, true}, {200, true}} {
		recs := fleetDevice(func(i int, r *Record) bool {
			if i >= 360-tc.bad {
				r.Valid = signal.False
			}
			return true
		})
		r := Compute(p, "d", windowsOf(synthetic{recs: recs}, p))
		got := false
		for _, a := range r.Alerts {
			got = got || a.Kind == KindGPSBroken
		}
		if got != tc.want {
			t.Errorf("%d bad fixes (%s): gps_broken %v, want %v", tc.bad, time.Duration(tc.bad-1)*30*time.Second, got, tc.want)
		}
	}
}

func TestBacklogIsNotClockDrift(t *testing.T) {
	// A device delivers an hour it buffered all at once at 13:00: lags fall
	// from 1h to 0, so the lags disagree and it is lateness, not drift.
	p := DefaultParams()
	recs := fleetDevice(func(i int, r *Record) bool {
		r.Recv = base.Add(3 * time.Hour)
		return i >= 240
	})
	r := Compute(p, "d", windowsOf(synthetic{recs: recs}, p))
	for _, a := range r.Alerts {
		if a.Kind == KindClockDrift {
			t.Fatalf("backlog raised %+v", a)
		}
	}
	// Correctly timed history delivered late is delivery, not bad data.
	if r.Dimensions[3].Dimension != Timeliness || r.Dimensions[3].RateBP != fullRate || r.ScoreCenti != 10000 {
		t.Fatalf("a late backlog cost points: %s, %+v", FormatCenti(r.ScoreCenti), r.Dimensions)
	}
}

func TestIdleHoursCarryNoWeight(t *testing.T) {
	// The same bad hour followed by a good one scores the same whether the
	// good hour comes right after or two days later.
	p := DefaultParams()
	mk := func(later time.Duration) []Record {
		recs := fleetDevice(func(i int, r *Record) bool {
			if i < 120 {
				r.Valid = signal.False
				return true
			}
			r.TS = r.TS.Add(later)
			r.Recv = r.TS.Add(2 * time.Second)
			return i < 240
		})
		return recs
	}
	a := Compute(p, "d", windowsOf(synthetic{recs: mk(0)}, p))
	b := Compute(p, "d", windowsOf(synthetic{recs: mk(48 * time.Hour)}, p))
	if a.ScoreCenti != b.ScoreCenti || a.ScoreCenti == 10000 {
		t.Fatalf("scores %d and %d: idle time changed the score (or nothing was lost)", a.ScoreCenti, b.ScoreCenti)
	}
}

func randomRecords(rng *rand.Rand) []Record {
	n := 1 + rng.IntN(400)
	t0 := base.Add(time.Duration(rng.IntN(100)) * time.Minute)
	var out []Record
	ts := t0
	for i := 0; i < n; i++ {
		ts = ts.Add(time.Duration(rng.IntN(3)) * time.Duration(1+rng.IntN(600)) * time.Second)
		r := Record{TS: ts, Recv: ts.Add(time.Duration(rng.IntN(7200)-3600) * time.Second), Lat: math.NaN(), Lon: math.NaN()}
		switch rng.IntN(4) {
		case 0:
			r.Lat, r.Lon = 0, 0
		case 1:
			r.Lat, r.Lon, r.Valid = 54.6, 25.2, signal.True
		case 2:
			r.Valid = signal.False
		}
		out = append(out, r)
	}
	return out
}

func randomRules(rng *rand.Rand, w WindowStats) []CheckCounts {
	var out []CheckCounts
	for _, name := range []string{"gps.range", "gps.teleport", "dup.burst"} {
		if rng.IntN(2) == 0 {
			continue
		}
		a := rng.Int64N(w.Records + 1)
		f := rng.Int64N(a + 1)
		wn := rng.Int64N(a - f + 1)
		dim := map[string]string{"gps.range": Validity, "gps.teleport": Consistency, "dup.burst": Uniqueness}[name]
		out = append(out, CheckCounts{name, "1.0.0", dim, a, a - f - wn, wn, f})
	}
	return out
}

func TestPropertiesBoundsOrderIdempotence(t *testing.T) {
	p := DefaultParams()
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		recs := randomRecords(rng)
		stats := Windows(recs, 0, p.ClockDriftLimit.Milliseconds())
		var ws []Window
		for _, st := range stats {
			ws = append(ws, Window{Stats: st, Rules: randomRules(rng, st)})
		}
		r := Compute(p, "d", ws)
		if r.ScoreCenti < 0 || r.ScoreCenti > 10000 {
			t.Fatalf("seed %d: score %d out of bounds", seed, r.ScoreCenti)
		}
		var lost int64
		for _, d := range r.Dimensions {
			if d.RateBP < 0 || d.RateBP > fullRate {
				t.Fatalf("seed %d: rate %+v", seed, d)
			}
			lost += d.LostCenti
		}
		if lost != 10000-r.ScoreCenti {
			t.Fatalf("seed %d: dimensions lose %d, score lost %d", seed, lost, 10000-r.ScoreCenti)
		}
		for _, h := range r.History {
			if h.ScoreCenti < 0 || h.ScoreCenti > 10000 {
				t.Fatalf("seed %d: history %+v", seed, h)
			}
		}

		// Arrival order: shuffled records and shuffled windows and rules give
		// the same result.
		shuf := append([]Record(nil), recs...)
		rng.Shuffle(len(shuf), func(i, j int) { shuf[i], shuf[j] = shuf[j], shuf[i] })
		stats2 := Windows(shuf, 0, p.ClockDriftLimit.Milliseconds())
		if !reflect.DeepEqual(stats, stats2) {
			t.Fatalf("seed %d: windows depend on record order", seed)
		}
		ws2 := make([]Window, len(ws))
		for i, j := range rng.Perm(len(ws)) {
			w := ws[j]
			w.Rules = append([]CheckCounts(nil), w.Rules...)
			rng.Shuffle(len(w.Rules), func(a, b int) { w.Rules[a], w.Rules[b] = w.Rules[b], w.Rules[a] })
			ws2[i] = w
		}
		if r2 := Compute(p, "d", ws2); !reflect.DeepEqual(r, r2) {
			t.Fatalf("seed %d: result depends on window order:\n%+v\n%+v", seed, r, r2)
		}
		// Recomputation is idempotent.
		if r3 := Compute(p, "d", ws); !reflect.DeepEqual(r, r3) {
			t.Fatalf("seed %d: recomputation differs", seed)
		}
		// Hour by hour (what the database layer does) equals all at once.
		interval := stats[0].IntervalMS
		var prev time.Time
		for i, st := range stats {
			var hour []Record
			for _, rec := range recs {
				if rec.TS.UTC().Truncate(time.Hour).Equal(st.Hour) {
					hour = append(hour, rec)
				}
			}
			if got := Aggregate(st.Hour, prev, hour, interval, p.ClockDriftLimit.Milliseconds()); !reflect.DeepEqual(got, stats[i]) {
				t.Fatalf("seed %d: hour %s aggregated alone differs:\n%+v\n%+v", seed, st.Hour, got, stats[i])
			}
			prev = st.LastTS
		}
	}
}

func TestPassingChecksDoNotHideAFailingOne(t *testing.T) {
	p := DefaultParams()
	recs := fleetDevice(func(i int, r *Record) bool { r.Lat, r.Lon = 0, 0; return true })
	plain := Compute(p, "d", windowsOf(synthetic{recs: recs}, p))
	more := Compute(p, "d", windowsOf(synthetic{recs: recs, rules: func(h time.Time, w WindowStats) []CheckCounts {
		return []CheckCounts{
			{"gps.range", "1.0.0", Validity, w.Records, w.Records, 0, 0},
			{"gps.poor_fix", "1.0.0", Validity, w.Records, w.Records, 0, 0},
		}
	}}, p))
	if plain.ScoreCenti != 6500 || more.ScoreCenti != 6500 {
		t.Fatalf("scores %d and %d, want 6500 (all validity points lost) for both", plain.ScoreCenti, more.ScoreCenti)
	}
	if len(more.Losses) != 1 || more.Losses[0].Check != CheckGPSFix || more.Losses[0].LostCenti != 3500 {
		t.Fatalf("losses %+v", more.Losses)
	}
}

func TestLearnIntervalIgnoresBursts(t *testing.T) {
	var ts []time.Time
	for f := 0; f < 20; f++ { // a frame of 10 records every 5 s, 1 ms apart
		for i := 0; i < 10; i++ {
			ts = append(ts, base.Add(time.Duration(f)*5*time.Second+time.Duration(i)*time.Millisecond))
		}
	}
	if got := LearnInterval(ts); got != 4991 {
		t.Fatalf("interval %d ms, want 4991 (frame to frame)", got)
	}
	if got := LearnInterval([]time.Time{base, base.Add(100 * time.Millisecond), base.Add(200 * time.Millisecond)}); got != 1000 {
		t.Fatalf("10 Hz logger: %d, want the 1 s floor", got)
	}
	if got := LearnInterval([]time.Time{base}); got != DefaultIntervalMS {
		t.Fatalf("one record: %d", got)
	}
}

func TestFutureDatedStraysDoNotDriveFastPaths(t *testing.T) {
	// A healthy device with five records dated a day ahead: the stray hour
	// costs timeliness but raises no alert computed from it alone, while a
	// device whose clock is always a day ahead is flagged.
	p := DefaultParams()
	recs := fleetDevice(nil)
	for i := 0; i < 5; i++ {
		ts := base.Add(24*time.Hour + time.Duration(i)*time.Millisecond)
		recs = append(recs, Record{TS: ts, Recv: base.Add(2 * time.Hour), Lat: 0, Lon: 0, Valid: signal.True})
	}
	r := Compute(p, "d", windowsOf(synthetic{recs: recs}, p))
	if len(r.Alerts) != 0 {
		t.Fatalf("alerts from stray future records: %+v", r.Alerts)
	}
	if r.Dimensions[3].RateBP == fullRate {
		t.Fatalf("future-dated records cost nothing: %+v", r.Dimensions)
	}
	ahead := fleetDevice(func(i int, r *Record) bool { r.TS = r.TS.Add(24 * time.Hour); return true })
	r = Compute(p, "d", windowsOf(synthetic{recs: ahead}, p))
	if len(r.Alerts) != 1 || r.Alerts[0].Kind != KindClockDrift {
		t.Fatalf("alerts %+v, want clock_drift", r.Alerts)
	}
}

func TestClockOffsetComesFromThePresent(t *testing.T) {
	p := DefaultParams()
	recs := fleetDevice(nil)
	recs = append(recs, Record{TS: base.Add(24 * time.Hour), Recv: base.Add(3 * time.Hour), Lat: 1, Lon: 1})
	r := Compute(p, "d", windowsOf(synthetic{recs: recs}, p))
	present := recs[len(recs)-2].TS // the newest correctly dated record
	if r.ClockOffsetMS != 2000 || !r.LastTS.Equal(present) {
		t.Fatalf("offset %d ms, last ts %s (want %s)", r.ClockOffsetMS, r.LastTS, present)
	}
	// Tomorrow's window is neither the history's last point nor the
	// newest weight.
	if n := len(r.History); n == 0 || r.History[n-1].Hour.After(present) {
		t.Fatalf("history %+v", r.History)
	}
	without := Compute(p, "d", windowsOf(synthetic{recs: recs[:len(recs)-1]}, p))
	if r.ScoreCenti >= without.ScoreCenti || without.ScoreCenti-r.ScoreCenti > 100 {
		t.Fatalf("one record stamped tomorrow: %s, without it %s (want a small loss)", FormatCenti(r.ScoreCenti), FormatCenti(without.ScoreCenti))
	}
}

// TestReadmeWorkedExample is the worked example of README.md: an hour of
// history delivered 20 minutes late with twelve teleports and 60 missing
// records.
func TestReadmeWorkedExample(t *testing.T) {
	h := base
	w := Window{Stats: WindowStats{
		Hour: h, Records: 720, Missing: 60, IntervalMS: 5000, Late: 720, LagMedianMS: 600_000, LagMinMS: 0,
		LagMaxMS: 1_200_000, GPSChecked: 720, FirstTS: h, LastTS: h.Add(time.Hour - 5*time.Second),
	}, Rules: []CheckCounts{{"gps.teleport", "1.1.0", Consistency, 700, 688, 0, 12}}}
	r := Compute(DefaultParams(), "example", []Window{w})
	want := map[string]int64{Validity: 0, Consistency: 35, Completeness: 154, Timeliness: 0, Uniqueness: 0}
	for _, d := range r.Dimensions {
		if d.LostCenti != want[d.Dimension] {
			t.Errorf("%s lost %d, want %d", d.Dimension, d.LostCenti, want[d.Dimension])
		}
	}
	if r.ScoreCenti != 9811 {
		t.Errorf("score %s, want 98.11; %+v", FormatCenti(r.ScoreCenti), r.Losses)
	}
	// The same hour with every record late by the same 3 h: a clock behind.
	w.Stats.LagMedianMS, w.Stats.LagMinMS, w.Stats.LagMaxMS = 3*3600_000, 3*3600_000-1000, 3*3600_000+1000
	if r := Compute(DefaultParams(), "example", []Window{w}); r.ScoreCenti != 8311 {
		t.Errorf("steady offset: score %s, want 83.11; %+v", FormatCenti(r.ScoreCenti), r.Losses)
	}
	t.Logf("losses: %+v", r.Losses)
}

// TestAlertReasonTexts: a reporting gap names the records missing in that
// gap, not the hour's total over two gaps; a clock ahead names the offset,
// not the median that mixes in how long records waited to be sent.
func TestAlertReasonTexts(t *testing.T) {
	p := DefaultParams()
	gaps := fleetDevice(func(i int, r *Record) bool { return !(i >= 250 && i < 290) && !(i >= 300 && i < 310) })
	r := Compute(p, "d", windowsOf(synthetic{recs: gaps}, p))
	var gapReason, driftReason string
	for _, a := range r.Alerts {
		if a.Kind == KindReportingGap {
			gapReason = a.Reason
		}
	}
	if !strings.Contains(gapReason, "gap of 20m30s") || !strings.Contains(gapReason, "40 records missing in it, 50 in the hour") {
		t.Errorf("reporting gap reason %q", gapReason)
	}
	ahead := fleetDevice(func(i int, r *Record) bool {
		r.Recv = r.TS.Add(-3*time.Hour + time.Duration(i%10)*5*time.Minute) // 0–45 min waiting to be sent
		return true
	})
	r = Compute(p, "d", windowsOf(synthetic{recs: ahead}, p))
	for _, a := range r.Alerts {
		if a.Kind == KindClockDrift {
			driftReason = a.Reason
		}
	}
	if !strings.HasPrefix(driftReason, "device clock ahead by 3h0m0s ") {
		t.Errorf("clock drift reason %q", driftReason)
	}
}
