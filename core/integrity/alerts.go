package integrity

import (
	"fmt"
	"sort"
	"time"

	"github.com/fleetcore/fleetcore/core/config"
)

// Alert kinds.
const (
	KindScoreLow       = "score_low"       // score below enter_below for enter_windows windows
	KindGPSBroken      = "gps_broken"      // only invalid or (0,0) fixes for gps_broken_after
	KindClockDrift     = "clock_drift"     // device clock off by more than clock_drift_limit
	KindDuplicateStorm = "duplicate_storm" // many records repeating a device time
	KindReportingGap   = "reporting_gap"   // a gap of 10 expected intervals (≥ 5 min)
	KindTeleport       = "teleport"        // gps.teleport failed repeatedly in the newest hour
)

// Fast-path thresholds.
const (
	// DupStormMin and DupStormShare: a duplicate storm is at least this many
	// duplicate records, and at least 1/DupStormShare of the hour's records.
	DupStormMin, DupStormShare = 10, 5
	// TeleportMin is how many gps.teleport failures in the newest hour raise
	// a teleport alert.
	TeleportMin = 2
	// TeleportRule is the rule whose failures count as teleports.
	TeleportRule = "gps.teleport"
	// clockMinRecords: fewer records than this in the newest hour say
	// nothing about the device clock.
	clockMinRecords = 3
)

// Params are the score and alert settings.
type Params struct {
	EnterBelow, ClearAbove     int64 // points, 0..100
	EnterWindows, ClearWindows int
	GPSBrokenAfter             time.Duration
	ClockDriftLimit            time.Duration
	// ExpectedInterval is the configured reporting interval; 0 learns it
	// per device.
	ExpectedInterval time.Duration
}

// ParamsFrom reads the [integrity] block (validated, defaults applied).
func ParamsFrom(c *config.Integrity) Params {
	return Params{
		EnterBelow: int64(c.EnterBelow), ClearAbove: int64(c.ClearAbove),
		EnterWindows: c.EnterWindows, ClearWindows: c.ClearWindows,
		GPSBrokenAfter:   config.Duration(c.GPSBrokenAfter),
		ClockDriftLimit:  config.Duration(c.ClockDriftLimit),
		ExpectedInterval: config.Duration(c.ExpectedEvery),
	}
}

// DefaultParams are the config defaults.
func DefaultParams() Params { return ParamsFrom(config.Default().Integrity) }

// AlertState is an alert that should be open, with why.
type AlertState struct {
	Kind   string    `json:"kind"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"` // device time the condition started
}

func desiredAlerts(p Params, ws []Window, r Result) []AlertState {
	var out []AlertState
	add := func(kind string, since time.Time, format string, a ...any) {
		out = append(out, AlertState{Kind: kind, Since: since.UTC(), Reason: fmt.Sprintf(format, a...)})
	}
	if a, ok := scoreAlert(p, r); ok {
		out = append(out, a)
	}
	ws = ws[:currentWindow(ws)+1]
	newest := ws[len(ws)-1].Stats

	// GPS broken: the trailing run of bad fixes, across windows whose fixes
	// were all bad.
	if start := gpsBadSince(ws); !start.IsZero() {
		if d := newest.LastTS.Sub(start); d >= p.GPSBrokenAfter && p.GPSBrokenAfter > 0 {
			add(KindGPSBroken, start, "no valid GPS fix since %s (%s of device time; %d of %d fixes invalid or at (0,0) in the hour from %s)",
				start.UTC().Format("2006-01-02 15:04:05"), d.Truncate(time.Second), newest.GPSBad, newest.GPSChecked, newest.Hour.Format("15:04"))
		}
	}

	// Clock drift: the newest hour's median lag is beyond the limit and the
	// lags agree (a steady offset, not a backlog being delivered late).
	limit := p.ClockDriftLimit.Milliseconds()
	if newest.Records >= clockMinRecords && limit > 0 {
		off := newest.LagMedianMS
		switch {
		case off < -limit:
			// recv − ts = delivery delay − offset, and the delay is never
			// negative: the least lag (the record delivered soonest) is the
			// offset; the median mixes in how long records waited.
			add(KindClockDrift, newest.FirstTS, "device clock ahead by %s (least recv − ts %s, median %s over %d records in the hour from %s; limit %s)",
				ms(-newest.LagMinMS), ms(newest.LagMinMS), ms(off), newest.Records, newest.Hour.Format("15:04"), p.ClockDriftLimit)
		case off > limit && newest.LagMaxMS-newest.LagMinMS <= limit:
			add(KindClockDrift, newest.FirstTS, "device clock behind by %s (median recv − ts %s over %d records in the hour from %s; limit %s)",
				ms(off), ms(off), newest.Records, newest.Hour.Format("15:04"), p.ClockDriftLimit)
		}
	}

	// Duplicate storm and teleports: from the newest hour's checks.
	for _, c := range ws[len(ws)-1].Checks() {
		if c.Dimension == Uniqueness && c.Failed >= DupStormMin && c.Failed*DupStormShare >= c.Applicable {
			add(KindDuplicateStorm, newest.FirstTS, "%s failed on %d of %d records in the hour from %s",
				c.Check, c.Failed, c.Applicable, newest.Hour.Format("15:04"))
			break
		}
	}
	var teleports int64
	for _, c := range ws[len(ws)-1].Rules {
		if c.Check == TeleportRule {
			teleports += c.Failed
		}
	}
	if teleports >= TeleportMin {
		add(KindTeleport, newest.FirstTS, "%s failed on %d signals in the hour from %s",
			TeleportRule, teleports, newest.Hour.Format("15:04"))
	}

	// Reporting gap: the newest hour holds a gap of many intervals (idle
	// gaps excluded).
	if g := newest.MaxGapMS; g >= GapAlertAfter(newest.IntervalMS) {
		// The records missing in this gap (the rule of builtin.interval),
		// not the hour's total over every gap.
		inGap := int64(0)
		if iv := newest.IntervalMS; iv > 0 {
			inGap = max(0, (g+iv/2)/iv-1)
		}
		add(KindReportingGap, newest.FirstTS, "gap of %s between records in the hour from %s (expected every %s; %d records missing in it, %d in the hour)",
			ms(g), newest.Hour.Format("15:04"), ms(newest.IntervalMS), inGap, newest.Missing)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// currentWindow is the index of the newest window that holds a record not
// dated in the future: a few records with a wrong far-future date must not
// stand in for the device's present (they cost timeliness points). The fast
// paths and the clock offset look at it.
func currentWindow(ws []Window) int {
	for i := len(ws) - 1; i >= 0; i-- {
		if s := ws[i].Stats; s.Timely+s.Late > 0 {
			return i
		}
	}
	return len(ws) - 1
}

// scoreAlert runs the hysteresis over the score history: open after
// EnterWindows consecutive windows below EnterBelow, clear after
// ClearWindows consecutive windows above ClearAbove. The walk starts closed
// at the oldest window, so the outcome is a function of the history alone.
func scoreAlert(p Params, r Result) (AlertState, bool) {
	enter, clear := p.EnterBelow*100, p.ClearAbove*100
	k, m := max(1, p.EnterWindows), max(1, p.ClearWindows)
	open := false
	var bad, good int
	var since time.Time
	var runStart time.Time
	for _, pt := range r.History {
		switch {
		case pt.ScoreCenti < enter:
			if bad == 0 {
				runStart = pt.Hour
			}
			bad++
			good = 0
		case pt.ScoreCenti > clear:
			good++
			bad = 0
		default:
			bad, good = 0, 0
		}
		if !open && bad >= k {
			open, since = true, runStart
		}
		if open && good >= m {
			open = false
		}
	}
	if !open {
		return AlertState{}, false
	}
	reason := fmt.Sprintf("score %s below %d since %s", FormatCenti(r.ScoreCenti), p.EnterBelow, since.Format("2006-01-02 15:04"))
	if len(r.Losses) > 0 {
		reason += "; " + r.Losses[0].Reason
	}
	return AlertState{Kind: KindScoreLow, Since: since, Reason: reason}, true
}

// gpsBadSince returns when the trailing run of bad fixes started (zero when
// the newest checked fix is good). Windows without GPS data are skipped.
func gpsBadSince(ws []Window) time.Time {
	var start time.Time
	for i := len(ws) - 1; i >= 0; i-- {
		s := ws[i].Stats
		if s.GPSChecked == 0 {
			continue
		}
		if s.GPSBadSince.IsZero() {
			break
		}
		start = s.GPSBadSince
		if !s.GPSAllBad {
			break
		}
	}
	return start
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).String() }
