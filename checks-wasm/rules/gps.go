package rules

import (
	"math"

	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
)

// Fixed reference instant for the self-tests: 2026-01-01T00:00:00Z.
const refMs = 1767225600000

// GPSRange fails a latitude outside [-90, 90] (reason 1) or a longitude
// outside [-180, 180] (reason 2), each against its own bound. Non-finite
// values are outside. Latitude is checked first.
var GPSRange = sdk.Rule{
	Meta: sdk.Meta{
		Name: "gps.range", Version: "1.0.0", Dimension: "validity", Severity: "critical",
		Fields:  []string{"lat", "lon"},
		Reasons: map[uint16]string{1: "latitude outside [-90, 90]", 2: "longitude outside [-180, 180]"},
		Tests: []sdk.Test{
			{Name: "inside", In: map[string]float64{"lat": 45, "lon": 120}, Want: sdk.StatusPass},
			{Name: "lat 90 passes", In: map[string]float64{"lat": 90, "lon": 0}, Want: sdk.StatusPass},
			{Name: "lat -90 passes", In: map[string]float64{"lat": -90, "lon": 0}, Want: sdk.StatusPass},
			{Name: "lat 90.0001 fails", In: map[string]float64{"lat": 90.0001, "lon": 0}, Want: sdk.StatusFail, Reason: 1},
			{Name: "lon 180 passes", In: map[string]float64{"lat": 0, "lon": 180}, Want: sdk.StatusPass},
			{Name: "lon -180.5 fails", In: map[string]float64{"lat": 0, "lon": -180.5}, Want: sdk.StatusFail, Reason: 2},
			{Name: "lat 120 within the lon bound still fails", In: map[string]float64{"lat": 120, "lon": 10}, Want: sdk.StatusFail, Reason: 1},
			{Name: "absent", In: map[string]float64{}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if !sdk.Has(s.Lat) && !sdk.Has(s.Lon) {
			return sdk.NotApplicable()
		}
		if sdk.Has(s.Lat) && !(s.Lat >= -90 && s.Lat <= 90) {
			return sdk.Fail(1)
		}
		if sdk.Has(s.Lon) && !(s.Lon >= -180 && s.Lon <= 180) {
			return sdk.Fail(2)
		}
		return sdk.Pass()
	},
}

// GPSZeroIsland fails a position within 0.0001° (about 11 m) of (0, 0):
// trackers without a fix often report zeros.
var GPSZeroIsland = sdk.Rule{
	Meta: sdk.Meta{
		Name: "gps.zero_island", Version: "1.0.0", Dimension: "validity", Severity: "warning",
		Fields:  []string{"lat", "lon"},
		Reasons: map[uint16]string{1: "position at (0, 0): the device reported no fix as zeros"},
		Tests: []sdk.Test{
			{Name: "zero", In: map[string]float64{"lat": 0, "lon": 0}, Want: sdk.StatusFail, Reason: 1},
			{Name: "near zero", In: map[string]float64{"lat": 0.00009, "lon": -0.00009}, Want: sdk.StatusFail, Reason: 1},
			{Name: "equator only", In: map[string]float64{"lat": 0, "lon": 32.5}, Want: sdk.StatusPass},
			{Name: "meridian only", In: map[string]float64{"lat": 51.47, "lon": 0}, Want: sdk.StatusPass},
			{Name: "just outside", In: map[string]float64{"lat": 0.0002, "lon": 0}, Want: sdk.StatusPass},
			{Name: "lon absent", In: map[string]float64{"lat": 0}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if !sdk.Has(s.Lat) || !sdk.Has(s.Lon) {
			return sdk.NotApplicable()
		}
		if math.Abs(s.Lat) < 0.0001 && math.Abs(s.Lon) < 0.0001 {
			return sdk.Fail(1)
		}
		return sdk.Pass()
	},
}

// Teleport thresholds.
const (
	TeleportMaxKmh  = 300.0 // fastest plausible road vehicle
	TeleportMinKm   = 0.2   // jumps shorter than this are GPS jitter
	TeleportStillKm = 1.0   // a jump this long with no time elapsed fails
	earthRadiusKm   = 6371.0088
	degToRad        = math.Pi / 180
)

// HaversineKm is the great-circle distance between two positions in km.
func HaversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	p1, p2 := lat1*degToRad, lat2*degToRad
	dp, dl := (lat2-lat1)*degToRad, (lon2-lon1)*degToRad
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(a)))
}

// GPSTeleport fails a fix whose implied speed from the previous fix of the
// same device is above TeleportMaxKmh (reason 1), or that moved more than
// TeleportStillKm with no device time elapsed (reason 2). Jumps under
// TeleportMinKm are jitter and pass. Since 1.1.0 it honours fix validity:
// a record or a previous record at (0, 0) (gps.zero_island's no-fix
// zeros), or a record from fewer than 3 satellites (gps.poor_fix), is not
// a fix to measure a jump from or to: not applicable. Before, the correct
// fix right after a (0, 0) record failed as a jump back, so one invalid fix
// cost two failures and opened a teleport alert.
var GPSTeleport = sdk.Rule{
	Meta: sdk.Meta{
		Name: "gps.teleport", Version: "1.1.0", Dimension: "consistency", Severity: "warning",
		Fields: []string{"ts", "lat", "lon", "sats", "prev_ts", "prev_lat", "prev_lon"},
		Reasons: map[uint16]string{
			1: "implied speed from the previous fix above 300 km/h",
			2: "moved more than 1 km with no time elapsed since the previous fix",
		},
		Tests: []sdk.Test{
			// 1° of latitude is 111.2 km: in 1 h that is 111 km/h, in 10 min 667 km/h.
			{Name: "plausible", In: map[string]float64{"ts": refMs + 3600_000, "lat": 46, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusPass},
			{Name: "too fast", In: map[string]float64{"ts": refMs + 600_000, "lat": 46, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusFail, Reason: 1},
			{Name: "jump with no time", In: map[string]float64{"ts": refMs, "lat": 45.02, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusFail, Reason: 2},
			{Name: "jitter", In: map[string]float64{"ts": refMs + 100, "lat": 45.001, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusPass},
			{Name: "no previous", In: map[string]float64{"ts": refMs, "lat": 45, "lon": 7}, Want: sdk.StatusNotApplicable},
			{Name: "after a zero fix", In: map[string]float64{"ts": refMs + 5000, "lat": 45, "lon": 7, "prev_ts": refMs, "prev_lat": 0, "prev_lon": 0}, Want: sdk.StatusNotApplicable},
			{Name: "zero fix", In: map[string]float64{"ts": refMs + 5000, "lat": 0, "lon": 0, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusNotApplicable},
			{Name: "two satellites", In: map[string]float64{"ts": refMs + 600_000, "lat": 46, "lon": 7, "sats": 2, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusNotApplicable},
			{Name: "too fast with a fix", In: map[string]float64{"ts": refMs + 600_000, "lat": 46, "lon": 7, "sats": 9, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusFail, Reason: 1},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if s.TS == sdk.NoTime || s.PrevTS == sdk.NoTime || !sdk.Has(s.Lat) || !sdk.Has(s.Lon) ||
			!sdk.Has(s.PrevLat) || !sdk.Has(s.PrevLon) {
			return sdk.NotApplicable()
		}
		if zeroFix(s.Lat, s.Lon) || zeroFix(s.PrevLat, s.PrevLon) || (sdk.Has(s.Sats) && s.Sats < 3) {
			return sdk.NotApplicable()
		}
		km := HaversineKm(s.PrevLat, s.PrevLon, s.Lat, s.Lon)
		if km < TeleportMinKm {
			return sdk.Pass()
		}
		dt := s.TS - s.PrevTS
		if dt < 0 {
			return sdk.NotApplicable() // prev is by device time: cannot happen
		}
		if dt == 0 {
			if km > TeleportStillKm {
				return sdk.Fail(2)
			}
			return sdk.Pass()
		}
		if km/(float64(dt)/3_600_000) > TeleportMaxKmh {
			return sdk.Fail(1)
		}
		return sdk.Pass()
	},
}

// GPSPoorFix judges whether satellites and HDOP allow a usable fix: fewer
// than 3 satellites fail (reason 1), exactly 3 (2D fix only) warn (reason
// 3); HDOP above 20 fails (reason 2), above 5 warns (reason 4). Failures
// win over warnings, satellites over HDOP.
var GPSPoorFix = sdk.Rule{
	Meta: sdk.Meta{
		Name: "gps.poor_fix", Version: "1.0.0", Dimension: "validity", Severity: "warning",
		Fields: []string{"sats", "hdop"},
		Reasons: map[uint16]string{
			1: "fewer than 3 satellites: no fix is possible",
			2: "HDOP above 20: position unusable",
			3: "only 3 satellites: 2D fix",
			4: "HDOP above 5: poor precision",
		},
		Tests: []sdk.Test{
			{Name: "good", In: map[string]float64{"sats": 9, "hdop": 0.9}, Want: sdk.StatusPass},
			{Name: "two sats", In: map[string]float64{"sats": 2, "hdop": 1}, Want: sdk.StatusFail, Reason: 1},
			{Name: "three sats", In: map[string]float64{"sats": 3}, Want: sdk.StatusWarn, Reason: 3},
			{Name: "hdop 20 warns", In: map[string]float64{"sats": 8, "hdop": 20}, Want: sdk.StatusWarn, Reason: 4},
			{Name: "hdop 20.5 fails", In: map[string]float64{"sats": 8, "hdop": 20.5}, Want: sdk.StatusFail, Reason: 2},
			{Name: "hdop 5 passes", In: map[string]float64{"hdop": 5}, Want: sdk.StatusPass},
			{Name: "absent", In: map[string]float64{}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if !sdk.Has(s.Sats) && !sdk.Has(s.HDOP) {
			return sdk.NotApplicable()
		}
		switch {
		case sdk.Has(s.Sats) && s.Sats < 3:
			return sdk.Fail(1)
		case sdk.Has(s.HDOP) && s.HDOP > 20:
			return sdk.Fail(2)
		case sdk.Has(s.Sats) && s.Sats < 4:
			return sdk.Warn(3)
		case sdk.Has(s.HDOP) && s.HDOP > 5:
			return sdk.Warn(4)
		}
		return sdk.Pass()
	},
}

// zeroFix is gps.zero_island's test: within 0.0001° of (0, 0).
func zeroFix(lat, lon float64) bool { return math.Abs(lat) < 0.0001 && math.Abs(lon) < 0.0001 }

// Speed consistency thresholds.
const (
	SpeedMovingKmh   = 30.0  // a reported speed this high means the vehicle moves
	SpeedStillKmh    = 3.0   // a reported speed below this means it stands
	SpeedMaxGapMs    = 60000 // fixes further apart than this average too much
	SpeedMinGapMs    = 2000  // closer fixes: position jitter dominates
	SpeedMismatchKmh = 40.0  // allowed |reported − implied| at least
)

// GPSSpeedConsistency compares the reported speed with the speed implied
// by the distance from the previous fix (2 s to 60 s before): reason 1, the
// vehicle reports at least 30 km/h but moved less than a tenth of that (a
// frozen position, or firmware repeating its last fix with new times);
// reason 2, it reports standing (< 3 km/h) while the fixes moved at 30 km/h
// or more; reason 3, the two differ by more than 40 km/h and by more than
// half the larger (a speed spike no vehicle can reach in the interval).
// Not applicable without both fixes, at (0, 0), from fewer than 3
// satellites, outside 2–60 s, or when the implied speed is a teleport's
// (gps.teleport judges those).
var GPSSpeedConsistency = sdk.Rule{
	Meta: sdk.Meta{
		Name: "gps.speed_consistency", Version: "1.0.0", Dimension: "consistency", Severity: "warning",
		Fields: []string{"ts", "lat", "lon", "speed", "sats", "prev_ts", "prev_lat", "prev_lon"},
		Reasons: map[uint16]string{
			1: "reports at least 30 km/h but the position has not moved since the previous fix",
			2: "reports standing still while the fixes moved at 30 km/h or more",
			3: "reported speed differs from the speed implied by the distance from the previous fix by more than 40 km/h and half",
		},
		Tests: []sdk.Test{
			// 0.001° of latitude is 111 m: in 5 s that is 80 km/h.
			{Name: "consistent", In: map[string]float64{"ts": refMs + 5000, "lat": 45.001, "lon": 7, "speed": 78, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusPass},
			{Name: "frozen at speed", In: map[string]float64{"ts": refMs + 5000, "lat": 45, "lon": 7, "speed": 60, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusFail, Reason: 1},
			{Name: "standing but moving", In: map[string]float64{"ts": refMs + 5000, "lat": 45.001, "lon": 7, "speed": 0, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusFail, Reason: 2},
			{Name: "spike", In: map[string]float64{"ts": refMs + 5000, "lat": 45.001, "lon": 7, "speed": 240, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusFail, Reason: 3},
			{Name: "long gap", In: map[string]float64{"ts": refMs + 600_000, "lat": 45, "lon": 7, "speed": 60, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusNotApplicable},
			{Name: "no speed", In: map[string]float64{"ts": refMs + 5000, "lat": 45, "lon": 7, "prev_ts": refMs, "prev_lat": 45, "prev_lon": 7}, Want: sdk.StatusNotApplicable},
		},
	},
	Check: func(s sdk.Signal) sdk.Verdict {
		if s.TS == sdk.NoTime || s.PrevTS == sdk.NoTime || !sdk.Has(s.Lat) || !sdk.Has(s.Lon) || !sdk.Has(s.Speed) ||
			!sdk.Has(s.PrevLat) || !sdk.Has(s.PrevLon) {
			return sdk.NotApplicable()
		}
		if zeroFix(s.Lat, s.Lon) || zeroFix(s.PrevLat, s.PrevLon) || (sdk.Has(s.Sats) && s.Sats < 3) {
			return sdk.NotApplicable()
		}
		dt := s.TS - s.PrevTS
		if dt < SpeedMinGapMs || dt > SpeedMaxGapMs {
			return sdk.NotApplicable()
		}
		implied := HaversineKm(s.PrevLat, s.PrevLon, s.Lat, s.Lon) / (float64(dt) / 3_600_000)
		if implied > TeleportMaxKmh {
			return sdk.NotApplicable()
		}
		r := s.Speed
		switch {
		case r >= SpeedMovingKmh && implied < r/10:
			return sdk.Fail(1)
		case r < SpeedStillKmh && implied >= SpeedMovingKmh:
			return sdk.Fail(2)
		case math.Abs(r-implied) > math.Max(SpeedMismatchKmh, math.Max(r, implied)/2):
			return sdk.Fail(3)
		}
		return sdk.Pass()
	},
}
