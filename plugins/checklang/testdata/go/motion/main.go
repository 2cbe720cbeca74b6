// Command motion is the hand-written Go equivalent of
// testdata/equiv.motion.check.hcl (the equivalence test of
// plugins/checklang builds it for wasip1). It spells out the check
// language's semantics by hand: absent values are NaN, a comparison with
// NaN is false (!= included), times are Unix ms as float64.
package main

import (
	"math"

	"github.com/fleetcore/fleetcore/checks-wasm/rules"
	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
)

// t converts a time column to the language's number (NaN when absent).
func t(ms int64) float64 {
	if ms == sdk.NoTime {
		return math.NaN()
	}
	return float64(ms)
}

func missing(x float64) bool { return x != x }

// ne is the language's !=: false when either side is missing.
func ne(a, b float64) bool { return a < b || a > b }

// wmin and wmax are WebAssembly's f64.min/max: NaN when either is NaN.
func wmin(a, b float64) float64 {
	if missing(a) || missing(b) {
		return math.NaN()
	}
	return math.Min(a, b)
}

func wmax(a, b float64) float64 {
	if missing(a) || missing(b) {
		return math.NaN()
	}
	return math.Max(a, b)
}

func init() {
	sdk.Register(sdk.Rule{
		Meta: sdk.Meta{
			Name: "equiv.motion", Version: "1.0.0", Dimension: "consistency", Severity: "critical",
			Fields: []string{"ts", "recv", "lat", "lon", "speed", "heading", "rpm", "fuel", "odometer",
				"prev_ts", "prev_lat", "prev_lon", "prev_odometer"},
			Attrs: []string{"ignition"},
			Reasons: map[uint16]string{
				1: "position out of range or implied speed above 300 km/h",
				2: "implausible motion, engine or time values",
			},
		},
		Check: func(s sdk.Signal) sdk.Verdict {
			if missing(s.Lat) || missing(s.Lon) {
				return sdk.NotApplicable()
			}
			ts, recv, prevTS, now := t(s.TS), t(s.Recv), t(s.PrevTS), t(s.NowMs)
			dt := (ts - prevTS) / 1000
			dist := math.NaN() // distance_m() is missing between non-positions
			if math.Abs(s.Lat) <= 90 && math.Abs(s.PrevLat) <= 90 && math.Abs(s.Lon) <= 180 && math.Abs(s.PrevLon) <= 180 {
				dist = rules.HaversineKm(s.PrevLat, s.PrevLon, s.Lat, s.Lon) * 1000
			}
			if !(-90 <= s.Lat && s.Lat <= 90) || math.Abs(s.Lon) > 180 || (dt > 0 && dist/dt*3.6 > 300) {
				return sdk.Fail(1)
			}
			ignition := s.Attr(0)
			if (s.Speed > 5 && ignition == 0) ||
				(now-ts)/1000 > 3600 ||
				wmax(s.RPM, 0)/60 > 100 ||
				-s.Heading < -360 ||
				(ne(ts-recv, 0) && missing(s.Fuel)) ||
				wmin(s.Odometer-s.PrevOdometer, 1000) < 0 {
				return sdk.Warn(2)
			}
			return sdk.Pass()
		},
	})
}

func main() {}
