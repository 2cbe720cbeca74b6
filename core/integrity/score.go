package integrity

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Dimension names (DESIGN.md §4, §5).
const (
	Validity     = "validity"
	Completeness = "completeness"
	Timeliness   = "timeliness"
	Uniqueness   = "uniqueness"
	Consistency  = "consistency"
)

// Dimensions lists the dimensions in report order with their fixed weights
// in points (they sum to 100). Validity weighs most: a wrong position is
// worse than a missing one; consistency next (teleports, odometer going
// backwards); completeness; then timeliness and uniqueness, whose faults
// the pipeline partly absorbs (late data is still stored, duplicates are
// deduplicated).
var Dimensions = []struct {
	Name   string
	Weight int64
}{
	{Validity, 35},
	{Consistency, 20},
	{Completeness, 20},
	{Timeliness, 15},
	{Uniqueness, 10},
}

func dimensionWeight(d string) int64 {
	for _, x := range Dimensions {
		if x.Name == d {
			return x.Weight
		}
	}
	return 0
}

// Built-in checks, measured from the signals themselves (rules add more).
const (
	CheckGPSFix   = "builtin.gps_fix"   // validity: fix flagged invalid or at (0,0)
	CheckInterval = "builtin.interval"  // completeness: records vs the expected interval
	CheckLag      = "builtin.lag"       // timeliness: the device clock against recv (late delivery is not a fault)
	CheckUniqueTS = "builtin.unique_ts" // uniqueness: one record per device time
	// BuiltinVersion is the version of the built-in checks.
	BuiltinVersion = "1"
	// LagVersion is builtin.lag's version: 2 passes records that only
	// arrived late (history a device replays after an outage, correctly
	// timed) and fails a steady offset (every record of the hour late by
	// the same amount: the clock is behind) and device times ahead of the
	// receive time. Version 1 warned on every late record.
	LagVersion = "2"
)

// CheckCounts is how one check (a rule or a built-in) judged a window's
// signals. Applicable excludes signals the check could not evaluate.
type CheckCounts struct {
	Check, Version, Dimension          string
	Applicable, Passed, Warned, Failed int64
}

// Window is one hour of device time with data: the built-in measurements
// and the rule statistics of that hour.
type Window struct {
	Stats WindowStats
	Rules []CheckCounts // from rule_stats; Applicable = evaluated − not_applicable
	// LagLimitMS is the clock drift limit builtin.lag judges a steady
	// offset by (Compute sets it from Params; 0: late records pass).
	LagLimitMS int64
}

// SteadyLate reports whether the window's late records are a clock behind
// rather than a late delivery: more than half of the hour's records are
// late by more than the limit and all their lags agree within it.
func (w Window) SteadyLate() bool {
	s, lim := w.Stats, w.LagLimitMS
	return lim > 0 && s.Late > 0 && 2*s.Late > s.Records && s.LagMedianMS > lim && s.LagMaxMS-s.LagMinMS <= lim
}

// Checks returns the window's built-in checks followed by its rules.
func (w Window) Checks() []CheckCounts {
	s := w.Stats
	lagPassed, lagFailed := s.Timely+s.Late, s.Early
	if w.SteadyLate() {
		lagPassed, lagFailed = s.Timely, s.Early+s.Late
	}
	out := []CheckCounts{
		{CheckGPSFix, BuiltinVersion, Validity, s.GPSChecked, s.GPSChecked - s.GPSBad, 0, s.GPSBad},
		{CheckInterval, BuiltinVersion, Completeness, s.Records + s.Missing, s.Records, 0, s.Missing},
		{CheckLag, LagVersion, Timeliness, s.Records, lagPassed, 0, lagFailed},
		{CheckUniqueTS, BuiltinVersion, Uniqueness, s.Records, s.Records - s.Dup, 0, s.Dup},
	}
	return append(out, w.Rules...)
}

// Scoring constants.
const (
	// MaxWindows is how many of the most recent windows with data count.
	MaxWindows = 24
	// Window weights decay by 7/8 per window with data (newest 1024), so
	// an idle device keeps its score: hours without data carry no weight.
	decayNum, decayDen, decayStart = 7, 8, 1024
	// Rates are in basis points; scores in hundredths of a point.
	fullRate = 10000
)

// decayWeights returns the weight of the i-th newest window.
func decayWeights(n int) []int64 {
	w := make([]int64, n)
	v := int64(decayStart)
	for i := range w {
		w[i] = v
		v = v * decayNum / decayDen
	}
	return w
}

// DimensionScore is one dimension's share of a score.
type DimensionScore struct {
	Dimension string `json:"dimension"`
	Weight    int64  `json:"weight"`
	// RateBP is the decayed pass rate in basis points (10000 = all good;
	// a warning counts half); 10000 when nothing was evaluated.
	RateBP int64 `json:"rate_bp"`
	// LostCenti is the points lost, in hundredths.
	LostCenti int64 `json:"lost_centi"`
	Evaluated int64 `json:"evaluated"` // signals evaluated in the windows (undecayed)
}

// Loss attributes points lost to one check.
type Loss struct {
	Dimension  string    `json:"dimension"`
	Check      string    `json:"check"`
	Version    string    `json:"version"`
	LostCenti  int64     `json:"lost_centi"`
	Failed     int64     `json:"failed"`
	Warned     int64     `json:"warned"`
	Applicable int64     `json:"applicable"`
	Since      time.Time `json:"since"` // first hour with a failure or warning
	Reason     string    `json:"reason"`
}

// Point is the score as of one window.
type Point struct {
	Hour       time.Time `json:"hour"`
	ScoreCenti int64     `json:"score_centi"`
}

// Result is a device's score.
type Result struct {
	DeviceID   string           `json:"device_id"`
	ScoreCenti int64            `json:"score_centi"` // 0..10000
	Dimensions []DimensionScore `json:"dimensions"`
	Losses     []Loss           `json:"losses"` // largest first
	History    []Point          `json:"history"`
	Alerts     []AlertState     `json:"alerts"` // alerts that should be open
	Windows    int              `json:"windows"`
	LastTS     time.Time        `json:"last_ts"`
	IntervalMS int64            `json:"interval_ms"`
	// ClockOffsetMS is the median recv − ts of the newest window with a
	// record not dated in the future.
	ClockOffsetMS int64 `json:"clock_offset_ms"`
}

// FormatCenti renders hundredths of a point as "87.35".
func FormatCenti(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

type checkKey struct{ dim, check, version string }

type checkAcc struct {
	good, total    int64 // decayed, in half-units
	rate           int64 // basis points
	failed, warned int64 // undecayed
	applicable     int64
	since          time.Time
}

// score computes the decayed score of windows (oldest first); it returns
// the total, the dimensions and the losses.
//
// Each check's pass rate is its decayed good half-units over its decayed
// applicable half-units. A dimension's rate is the rate of its worst check:
// a signal is valid only if it passes every validity check, so adding
// checks that pass must not hide one that fails (pooling the counts would),
// and checks that fail on the same signals (gps.zero_island and
// builtin.gps_fix) are not counted twice (summing failures would).
func score(ws []Window) (int64, []DimensionScore, []Loss) {
	if len(ws) > MaxWindows {
		ws = ws[len(ws)-MaxWindows:]
	}
	weights := decayWeights(len(ws))
	acc := map[checkKey]*checkAcc{}
	for i, w := range ws {
		wt := weights[len(ws)-1-i]
		for _, c := range w.Checks() {
			if c.Applicable <= 0 || dimensionWeight(c.Dimension) == 0 {
				continue
			}
			k := checkKey{c.Dimension, c.Check, c.Version}
			a := acc[k]
			if a == nil {
				a = &checkAcc{}
				acc[k] = a
			}
			good := 2*c.Passed + c.Warned
			a.good += wt * good
			a.total += wt * 2 * c.Applicable
			a.failed += c.Failed
			a.warned += c.Warned
			a.applicable += c.Applicable
			if (c.Failed > 0 || c.Warned > 0) && (a.since.IsZero() || w.Stats.Hour.Before(a.since)) {
				a.since = w.Stats.Hour
			}
		}
	}
	for _, a := range acc {
		a.rate = a.good * fullRate / a.total
	}
	var total int64
	var out []DimensionScore
	var losses []Loss
	for _, dim := range Dimensions {
		ds := DimensionScore{Dimension: dim.Name, Weight: dim.Weight, RateBP: fullRate}
		for k, a := range acc {
			if k.dim == dim.Name {
				ds.RateBP = min(ds.RateBP, a.rate)
				ds.Evaluated = max(ds.Evaluated, a.applicable)
			}
		}
		// Score in hundredths: weight (points) × rate (bp) / 100.
		got := dim.Weight * ds.RateBP / 100
		ds.LostCenti = dim.Weight*100 - got
		total += got
		out = append(out, ds)
		losses = append(losses, attribute(dim.Name, ds.LostCenti, acc)...)
	}
	sort.SliceStable(losses, func(i, j int) bool {
		if losses[i].LostCenti != losses[j].LostCenti {
			return losses[i].LostCenti > losses[j].LostCenti
		}
		return losses[i].Check < losses[j].Check
	})
	return total, out, losses
}

// attribute splits a dimension's lost points among its checks in
// proportion to their shortfall (10000 − rate in basis points), largest
// remainder first, ties by name, so the parts always add up to the whole.
func attribute(dim string, lost int64, acc map[checkKey]*checkAcc) []Loss {
	var keys []checkKey
	var short int64
	for k, a := range acc {
		if k.dim == dim && a.rate < fullRate {
			keys = append(keys, k)
			short += fullRate - a.rate
		}
	}
	if len(keys) == 0 || lost == 0 {
		return nil
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].check != keys[j].check {
			return keys[i].check < keys[j].check
		}
		return keys[i].version < keys[j].version
	})
	parts := make([]int64, len(keys))
	rems := make([]int64, len(keys))
	var given int64
	for i, k := range keys {
		s := fullRate - acc[k].rate
		parts[i] = lost * s / short
		rems[i] = lost * s % short
		given += parts[i]
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rems[order[a]] > rems[order[b]] })
	for i := 0; given < lost; i++ {
		parts[order[i%len(order)]]++
		given++
	}
	var out []Loss
	for i, k := range keys {
		a := acc[k]
		l := Loss{Dimension: dim, Check: k.check, Version: k.version, LostCenti: parts[i],
			Failed: a.failed, Warned: a.warned, Applicable: a.applicable, Since: a.since}
		l.Reason = lossReason(l)
		out = append(out, l)
	}
	return out
}

// lossReason explains a loss like "validity −30.00: gps.range failed on 412
// of 500 signals since 10:00".
func lossReason(l Loss) string {
	var what []string
	if l.Failed > 0 {
		what = append(what, fmt.Sprintf("failed on %d", l.Failed))
	}
	if l.Warned > 0 {
		what = append(what, fmt.Sprintf("warned on %d", l.Warned))
	}
	unit := "signals"
	if l.Check == CheckInterval {
		what = []string{fmt.Sprintf("%d records missing", l.Failed)}
		unit = "expected"
		return fmt.Sprintf("%s −%s: %s: %s of %d %s since %s", l.Dimension, FormatCenti(l.LostCenti), l.Check,
			strings.Join(what, ", "), l.Applicable, unit, l.Since.UTC().Format("2006-01-02 15:04"))
	}
	return fmt.Sprintf("%s −%s: %s %s of %d %s since %s", l.Dimension, FormatCenti(l.LostCenti), l.Check,
		strings.Join(what, " and "), l.Applicable, unit, l.Since.UTC().Format("2006-01-02 15:04"))
}

// Compute scores one device from its windows with data (any order). It is
// a pure function of its arguments.
func Compute(p Params, deviceID string, windows []Window) Result {
	ws := append([]Window(nil), windows...)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Stats.Hour.Before(ws[j].Stats.Hour) })
	for i := range ws {
		ws[i].Rules = sortedChecks(ws[i].Rules)
		ws[i].LagLimitMS = p.ClockDriftLimit.Milliseconds()
	}
	ws = presentLast(ws)
	// Keep the newest MaxWindows for history; each history point scores the
	// windows up to it.
	if len(ws) > 2*MaxWindows {
		ws = ws[len(ws)-2*MaxWindows:]
	}
	r := Result{DeviceID: deviceID, Windows: len(ws)}
	if len(ws) == 0 {
		r.ScoreCenti = 100 * 100
		r.Dimensions = emptyDimensions()
		return r
	}
	present := false // a window with a correctly dated record
	for _, w := range ws {
		present = present || !futureOnly(w)
	}
	start := max(0, len(ws)-MaxWindows)
	for i := start; i < len(ws); i++ {
		if present && futureOnly(ws[i]) {
			continue // no point of the history in tomorrow's hour
		}
		s, _, _ := score(ws[:i+1])
		r.History = append(r.History, Point{Hour: ws[i].Stats.Hour, ScoreCenti: s})
	}
	r.ScoreCenti, r.Dimensions, r.Losses = score(ws)
	cur := ws[currentWindow(ws)].Stats
	r.LastTS, r.IntervalMS, r.ClockOffsetMS = cur.LastTS, cur.IntervalMS, cur.LagMedianMS
	if r.Windows > MaxWindows {
		r.Windows = MaxWindows
	}
	r.Alerts = desiredAlerts(p, ws, r)
	return r
}

// futureOnly: every record of the window is dated ahead of its receive
// time by more than the drift limit (a wrong far-future date).
func futureOnly(w Window) bool {
	s := w.Stats
	return s.Records > 0 && s.Timely+s.Late == 0
}

// presentLast moves windows holding only future-dated records from after
// the newest window with a correctly dated record to just before it
// (keeping their order), so that a few records stamped tomorrow cost
// timeliness points (their builtin.lag failures still count, with a
// decayed weight) but never become the device's present: the newest
// window's weight, last_ts, the history's last point and the alerts' fast
// paths stay with the data the device sends now.
func presentLast(ws []Window) []Window {
	cur := -1
	for i := len(ws) - 1; i >= 0; i-- {
		if !futureOnly(ws[i]) {
			cur = i
			break
		}
	}
	if cur < 0 || cur == len(ws)-1 {
		return ws
	}
	out := make([]Window, 0, len(ws))
	out = append(out, ws[:cur]...)
	out = append(out, ws[cur+1:]...)
	return append(out, ws[cur])
}

func emptyDimensions() []DimensionScore {
	out := make([]DimensionScore, 0, len(Dimensions))
	for _, d := range Dimensions {
		out = append(out, DimensionScore{Dimension: d.Name, Weight: d.Weight, RateBP: fullRate})
	}
	return out
}

func sortedChecks(cs []CheckCounts) []CheckCounts {
	out := append([]CheckCounts(nil), cs...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Check != out[j].Check {
			return out[i].Check < out[j].Check
		}
		return out[i].Version < out[j].Version
	})
	return out
}
