package rules

import (
	"math"

	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
)

// Time thresholds in milliseconds.
const (
	FutureToleranceMs = 5 * 60_000          // device clocks may run this far ahead
	StaleAfterMs      = 30 * 24 * 3_600_000 // older than this is stale
	GPSWeekRolloverMs = 619_315_200_000     // 1024 weeks
	RolloverWindowMs  = 30 * 24 * 3_600_000 // ± around 1024 weeks
	Year2000Ms        = 946_684_800_000
	dayMs             = 24 * 3_600_000
)

// TimeFuture fails a device time more than FutureToleranceMs ahead of the
// host's clock.
var TimeFuture = sdk.Rule{
	Meta: sdk.Meta{
		Name: "time.future", Version: "1.0.0", Dimension: "timeliness", Severity: "warning",
		Fields:  []string{"ts"},
		Reasons: map[uint16]string{1: "device time more than 5 minutes ahead of the server clock"},
		Tests: []sdk.Test{
			{Name: "now", NowMs: refMs, In: map[string]float64{"ts": refMs}, Want: sdk.StatusPass},
			{Name: "past", NowMs: refMs, In: map[string]float64{"ts": refMs - dayMs}, Want: sdk.StatusPass},
			{Name: "at tolerance", NowMs: refMs, In: map[string]float64{"ts": refMs + FutureToleranceMs}, Want: sdk.StatusPass},
			{Name: "1 ms beyond", NowMs: refMs, In: map[string]float64{"ts": refMs + FutureToleranceMs + 1}, Want: sdk.StatusFail, Reason: 1},
			{Name: "absent", NowMs: refMs, In: map[string]float64{}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if s.TS == sdk.NoTime || s.NowMs == sdk.NoTime {
			return sdk.NotApplicable()
		}
		if s.TS-s.NowMs > FutureToleranceMs {
			return sdk.Fail(1)
		}
		return sdk.Pass()
	},
}

// TimeStale fails a device time about 1024 weeks behind the host's clock
// (GPS week-number rollover, reason 1) or before 2000 (clock never set,
// reason 3), and warns on one older than StaleAfterMs (reason 2).
var TimeStale = sdk.Rule{
	Meta: sdk.Meta{
		Name: "time.stale", Version: "1.0.0", Dimension: "timeliness", Severity: "warning",
		Fields: []string{"ts"},
		Reasons: map[uint16]string{
			1: "device time about 1024 weeks behind: GPS week-number rollover",
			2: "device time more than 30 days behind the server clock",
			3: "device time before 2000: clock not set",
		},
		Tests: []sdk.Test{
			{Name: "fresh", NowMs: refMs, In: map[string]float64{"ts": refMs - 60_000}, Want: sdk.StatusPass},
			{Name: "29 days", NowMs: refMs, In: map[string]float64{"ts": refMs - 29*dayMs}, Want: sdk.StatusPass},
			{Name: "31 days", NowMs: refMs, In: map[string]float64{"ts": refMs - 31*dayMs}, Want: sdk.StatusWarn, Reason: 2},
			{Name: "rollover", NowMs: refMs, In: map[string]float64{"ts": refMs - GPSWeekRolloverMs}, Want: sdk.StatusFail, Reason: 1},
			{Name: "rollover plus a day", NowMs: refMs, In: map[string]float64{"ts": refMs - GPSWeekRolloverMs + dayMs}, Want: sdk.StatusFail, Reason: 1},
			{Name: "epoch", NowMs: refMs, In: map[string]float64{"ts": 0}, Want: sdk.StatusFail, Reason: 3},
			{Name: "future is not stale", NowMs: refMs, In: map[string]float64{"ts": refMs + dayMs}, Want: sdk.StatusPass},
			{Name: "absent", NowMs: refMs, In: map[string]float64{}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if s.TS == sdk.NoTime || s.NowMs == sdk.NoTime {
			return sdk.NotApplicable()
		}
		behind := s.NowMs - s.TS
		switch {
		case behind >= GPSWeekRolloverMs-RolloverWindowMs && behind <= GPSWeekRolloverMs+RolloverWindowMs:
			return sdk.Fail(1)
		case s.TS < Year2000Ms:
			return sdk.Fail(3)
		case behind > StaleAfterMs:
			return sdk.Warn(2)
		}
		return sdk.Pass()
	},
}

// OBD envelopes.
const (
	MaxRPM     = 10000.0
	MinCoolant = -40.0
	MaxCoolant = 150.0
	MinVoltage = 6.0
	MaxVoltage = 32.0
)

// OBDPlausibility fails engine values outside physical envelopes: rpm
// outside [0, 10000] (reason 1), coolant outside [-40, 150] °C (reason 2),
// supply voltage outside [6, 32] V (reason 3); it warns on rpm above zero
// while the ignition attribute says off (reason 4). The ignition attribute
// is 0 for off and any other number for on.
var OBDPlausibility = sdk.Rule{
	Meta: sdk.Meta{
		Name: "obd.plausibility", Version: "1.0.0", Dimension: "validity", Severity: "warning",
		Fields: []string{"rpm", "coolant", "voltage"},
		Attrs:  []string{"ignition"},
		Reasons: map[uint16]string{
			1: "rpm outside [0, 10000]",
			2: "coolant temperature outside [-40, 150] °C",
			3: "supply voltage outside [6, 32] V",
			4: "engine turning (rpm > 0) with the ignition off",
		},
		Tests: []sdk.Test{
			{Name: "idle", In: map[string]float64{"rpm": 800, "coolant": 90, "voltage": 14.1}, Attrs: map[string]float64{"ignition": 1}, Want: sdk.StatusPass},
			{Name: "rpm 10000 passes", In: map[string]float64{"rpm": 10000}, Want: sdk.StatusPass},
			{Name: "rpm 10001 fails", In: map[string]float64{"rpm": 10001}, Want: sdk.StatusFail, Reason: 1},
			{Name: "negative rpm", In: map[string]float64{"rpm": -1}, Want: sdk.StatusFail, Reason: 1},
			{Name: "coolant 151", In: map[string]float64{"coolant": 151}, Want: sdk.StatusFail, Reason: 2},
			{Name: "coolant -40 passes", In: map[string]float64{"coolant": -40}, Want: sdk.StatusPass},
			{Name: "voltage 5.9", In: map[string]float64{"voltage": 5.9}, Want: sdk.StatusFail, Reason: 3},
			{Name: "voltage 24 truck", In: map[string]float64{"voltage": 27.6}, Want: sdk.StatusPass},
			{Name: "rpm with ignition off", In: map[string]float64{"rpm": 750}, Attrs: map[string]float64{"ignition": 0}, Want: sdk.StatusWarn, Reason: 4},
			{Name: "rpm 0 with ignition off", In: map[string]float64{"rpm": 0}, Attrs: map[string]float64{"ignition": 0}, Want: sdk.StatusPass},
			{Name: "absent", In: map[string]float64{}, Attrs: map[string]float64{"ignition": 1}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if !sdk.Has(s.RPM) && !sdk.Has(s.Coolant) && !sdk.Has(s.Voltage) {
			return sdk.NotApplicable()
		}
		if sdk.Has(s.RPM) && !(s.RPM >= 0 && s.RPM <= MaxRPM) {
			return sdk.Fail(1)
		}
		if sdk.Has(s.Coolant) && !(s.Coolant >= MinCoolant && s.Coolant <= MaxCoolant) {
			return sdk.Fail(2)
		}
		if sdk.Has(s.Voltage) && !(s.Voltage >= MinVoltage && s.Voltage <= MaxVoltage) {
			return sdk.Fail(3)
		}
		if ign := s.Attr(0); sdk.Has(s.RPM) && s.RPM > 0 && ign == 0 {
			return sdk.Warn(4)
		}
		return sdk.Pass()
	},
}

// OdometerToleranceKm absorbs rounding between consecutive readings.
const OdometerToleranceKm = 0.1

// OdometerBackwards fails an odometer that decreased by more than
// OdometerToleranceKm since the same device's previous signal.
var OdometerBackwards = sdk.Rule{
	Meta: sdk.Meta{
		Name: "odometer.backwards", Version: "1.0.0", Dimension: "consistency", Severity: "warning",
		Fields:  []string{"odometer", "prev_odometer"},
		Reasons: map[uint16]string{1: "odometer decreased by more than 0.1 km since the previous signal"},
		Tests: []sdk.Test{
			{Name: "forward", In: map[string]float64{"odometer": 1000.5, "prev_odometer": 1000}, Want: sdk.StatusPass},
			{Name: "same", In: map[string]float64{"odometer": 1000, "prev_odometer": 1000}, Want: sdk.StatusPass},
			{Name: "rounding", In: map[string]float64{"odometer": 999.95, "prev_odometer": 1000}, Want: sdk.StatusPass},
			{Name: "backwards", In: map[string]float64{"odometer": 999.8, "prev_odometer": 1000}, Want: sdk.StatusFail, Reason: 1},
			{Name: "reset", In: map[string]float64{"odometer": 0, "prev_odometer": 52000}, Want: sdk.StatusFail, Reason: 1},
			{Name: "no previous", In: map[string]float64{"odometer": 10}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if !sdk.Has(s.Odometer) || !sdk.Has(s.PrevOdometer) {
			return sdk.NotApplicable()
		}
		if s.PrevOdometer-s.Odometer > OdometerToleranceKm+1e-9 { // 1e-9: float rounding of the difference
			return sdk.Fail(1)
		}
		return sdk.Pass()
	},
}

// DupBurst flags a record whose device time equals its predecessor's. The
// database already drops exact resends (same record hash), so what remains
// is a burst of near-duplicates: same time and same position (or no
// position) warns as a duplicate (reason 1); same time but a different
// position fails as two conflicting records (reason 2). Positions count as
// the same within 1e-6°.
var DupBurst = sdk.Rule{
	Meta: sdk.Meta{
		Name: "dup.burst", Version: "1.0.0", Dimension: "uniqueness", Severity: "warning",
		Fields: []string{"ts", "lat", "lon", "prev_ts", "prev_lat", "prev_lon"},
		Reasons: map[uint16]string{
			1: "duplicate: same device time and position as the previous record",
			2: "conflict: same device time as the previous record but another position",
		},
		Tests: []sdk.Test{
			{Name: "next second", In: map[string]float64{"ts": refMs + 1000, "lat": 45, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusPass},
			{Name: "duplicate", In: map[string]float64{"ts": refMs, "lat": 45, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusWarn, Reason: 1},
			{Name: "duplicate without position", In: map[string]float64{"ts": refMs, "prev_ts": refMs}, Want: sdk.StatusWarn, Reason: 1},
			{Name: "conflict", In: map[string]float64{"ts": refMs, "lat": 45.1, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusFail, Reason: 2},
			{Name: "first record", In: map[string]float64{"ts": refMs, "lat": 45, "lon": 7}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if s.TS == sdk.NoTime || s.PrevTS == sdk.NoTime {
			return sdk.NotApplicable()
		}
		if s.TS != s.PrevTS {
			return sdk.Pass()
		}
		if samePos(s.Lat, s.PrevLat) && samePos(s.Lon, s.PrevLon) {
			return sdk.Warn(1)
		}
		return sdk.Fail(2)
	},
}

func samePos(a, b float64) bool {
	if !sdk.Has(a) || !sdk.Has(b) {
		return !sdk.Has(a) && !sdk.Has(b)
	}
	return math.Abs(a-b) < 1e-6
}

// Reporting gap thresholds.
const (
	GapMinMs     = 5 * 60_000 // a shorter silence is not a gap
	GapMovedKm   = 1.0        // the vehicle moved at least this far meanwhile
	GapMaxIdleMs = 6 * 3600_000
)

// TimeGap warns on the first record after more than 5 minutes without one
// while the vehicle moved more than 1 km (reason 1): it drove on and the
// records of the gap are missing. A vehicle that reappears where it
// stopped was parked, and a silence over 6 hours is the device switched
// off: not applicable. Needs both positions (not at (0, 0)).
var TimeGap = sdk.Rule{
	Meta: sdk.Meta{
		Name: "time.gap", Version: "1.0.0", Dimension: "completeness", Severity: "warning",
		Fields: []string{"ts", "lat", "lon", "prev_ts", "prev_lat", "prev_lon"},
		Reasons: map[uint16]string{
			1: "first record after more than 5 minutes without one while the vehicle moved more than 1 km",
		},
		Tests: []sdk.Test{
			{Name: "regular", In: map[string]float64{"ts": refMs + 5000, "lat": 45.001, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusPass},
			{Name: "gap while driving", In: map[string]float64{"ts": refMs + 600_000, "lat": 45.1, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusWarn, Reason: 1},
			{Name: "parked", In: map[string]float64{"ts": refMs + 600_000, "lat": 45.0001, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusPass},
			{Name: "switched off overnight", In: map[string]float64{"ts": refMs + 10*3600_000, "lat": 45.1, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusNotApplicable},
			{Name: "after a zero fix", In: map[string]float64{"ts": refMs + 600_000, "lat": 45.1, "lon": 7, "prev_ts": refMs, "prev_lat": 0, "prev_lon": 0}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if s.TS == sdk.NoTime || s.PrevTS == sdk.NoTime || !sdk.Has(s.Lat) || !sdk.Has(s.Lon) ||
			!sdk.Has(s.PrevLat) || !sdk.Has(s.PrevLon) || zeroFix(s.Lat, s.Lon) || zeroFix(s.PrevLat, s.PrevLon) {
			return sdk.NotApplicable()
		}
		dt := s.TS - s.PrevTS
		if dt > GapMaxIdleMs {
			return sdk.NotApplicable()
		}
		if dt > GapMinMs && HaversineKm(s.PrevLat, s.PrevLon, s.Lat, s.Lon) > GapMovedKm {
			return sdk.Warn(1)
		}
		return sdk.Pass()
	},
}
