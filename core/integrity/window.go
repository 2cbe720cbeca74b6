package integrity

import (
	"math"
	"sort"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

// Record is what the score needs of one stored signal.
type Record struct {
	TS    time.Time // device time
	Recv  time.Time // server receive time
	Lat   float64   // NaN when absent
	Lon   float64   // NaN when absent
	Valid signal.Flag
}

// GPS classifies a record's fix: checked reports whether the record carries
// any GPS information, bad whether the fix is flagged invalid or sits on
// "zero island" (|lat| and |lon| below 0.0001°, what receivers without a fix
// report).
func (r Record) GPS() (checked, bad bool) {
	hasPos := !math.IsNaN(r.Lat) && !math.IsNaN(r.Lon)
	if !hasPos && !r.Valid.Known() {
		return false, false
	}
	if r.Valid == signal.False {
		return true, true
	}
	if hasPos && math.Abs(r.Lat) < zeroIsland && math.Abs(r.Lon) < zeroIsland {
		return true, true
	}
	return true, false
}

const zeroIsland = 0.0001

// WindowStats are the built-in measurements of one hour of device time.
// Durations are in milliseconds.
type WindowStats struct {
	Hour    time.Time // start of the hour (UTC)
	Records int64
	// Missing counts records that the expected interval says should have
	// arrived in gaps longer than 1.5 intervals (gaps longer than IdleAfter
	// are idle time, not missing data).
	Missing    int64
	MaxGapMS   int64 // longest gap between consecutive records, idle gaps excluded
	IntervalMS int64 // the expected reporting interval used
	// Lag is recv − ts. Timely records have |lag| ≤ the clock drift limit;
	// late ones arrived later than that, early ones carry a device time
	// further than that in the future.
	Timely, Late, Early             int64
	LagMedianMS, LagMinMS, LagMaxMS int64
	// GPS: records with GPS information, those with a bad fix, the device
	// time the trailing run of bad fixes started (zero when the last checked
	// fix is good) and whether every checked fix was bad.
	GPSChecked, GPSBad int64
	GPSBadSince        time.Time
	GPSAllBad          bool
	// Dup counts records that share their device time with an earlier
	// record of the same device (same time, different content).
	Dup             int64
	FirstTS, LastTS time.Time
}

// IdleAfter is the gap after which a device counts as idle (parked,
// switched off) rather than losing data: an hour, or 60 intervals for
// devices that report less often than once a minute.
func IdleAfter(intervalMS int64) int64 {
	return max(3_600_000, 60*intervalMS)
}

// GapAlertAfter is the gap that raises a reporting-gap alert: 10 expected
// intervals, at least 5 minutes.
func GapAlertAfter(intervalMS int64) int64 {
	return max(300_000, 10*intervalMS)
}

// DefaultIntervalMS is assumed when neither configured nor learnable.
const DefaultIntervalMS = 60_000

// LearnInterval is the device's expected reporting interval: the lower
// median of the gaps of at least one second between consecutive device
// times (sorted). Shorter gaps are records of one burst (devices that
// sample several positions and send them together at the same instant), so
// they say nothing about how often the device reports. One second when
// every gap is shorter; DefaultIntervalMS with fewer than two records.
func LearnInterval(ts []time.Time) int64 {
	s := append([]time.Time(nil), ts...)
	sort.Slice(s, func(i, j int) bool { return s[i].Before(s[j]) })
	var gaps []int64
	positive := false
	for i := 1; i < len(s); i++ {
		g := s[i].Sub(s[i-1]).Milliseconds()
		positive = positive || g > 0
		if g >= 1000 {
			gaps = append(gaps, g)
		}
	}
	switch {
	case len(gaps) > 0:
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		return gaps[(len(gaps)-1)/2]
	case positive:
		return 1000
	}
	return DefaultIntervalMS
}

// Aggregate measures one hour of a device's records. prev is the device
// time of the device's last record before the hour (zero when none), so
// the first gap is measured too. Records may come in any order; records
// outside the hour are ignored.
func Aggregate(hour time.Time, prev time.Time, recs []Record, intervalMS, driftLimitMS int64) WindowStats {
	hour = hour.UTC().Truncate(time.Hour)
	s := make([]Record, 0, len(recs))
	for _, r := range recs {
		if !r.TS.Before(hour) && r.TS.Before(hour.Add(time.Hour)) {
			s = append(s, r)
		}
	}
	sortRecords(s)
	if intervalMS <= 0 {
		intervalMS = DefaultIntervalMS
	}
	w := WindowStats{Hour: hour, Records: int64(len(s)), IntervalMS: intervalMS}
	if len(s) == 0 {
		return w
	}
	w.FirstTS, w.LastTS = s[0].TS.UTC(), s[len(s)-1].TS.UTC()
	idle := IdleAfter(intervalMS)
	lags := make([]int64, len(s))
	last := prev
	for i, r := range s {
		if !last.IsZero() {
			gap := r.TS.Sub(last).Milliseconds()
			if i > 0 && r.TS.Equal(last) {
				w.Dup++
			}
			if gap <= idle {
				w.MaxGapMS = max(w.MaxGapMS, gap)
				if gap*2 > intervalMS*3 {
					w.Missing += (gap+intervalMS/2)/intervalMS - 1
				}
			}
		}
		last = r.TS
		lag := r.Recv.Sub(r.TS).Milliseconds()
		lags[i] = lag
		switch {
		case lag > driftLimitMS:
			w.Late++
		case lag < -driftLimitMS:
			w.Early++
		default:
			w.Timely++
		}
		if checked, bad := r.GPS(); checked {
			w.GPSChecked++
			if bad {
				w.GPSBad++
				if w.GPSBadSince.IsZero() {
					w.GPSBadSince = r.TS.UTC()
				}
			} else {
				w.GPSBadSince = time.Time{}
			}
		}
	}
	w.GPSAllBad = w.GPSChecked > 0 && w.GPSBad == w.GPSChecked
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	w.LagMinMS, w.LagMaxMS, w.LagMedianMS = lags[0], lags[len(lags)-1], lags[(len(lags)-1)/2]
	return w
}

// sortRecords orders by device time, then receive time, then position, so
// the result never depends on arrival order.
func sortRecords(s []Record) {
	sort.Slice(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if !a.TS.Equal(b.TS) {
			return a.TS.Before(b.TS)
		}
		if !a.Recv.Equal(b.Recv) {
			return a.Recv.Before(b.Recv)
		}
		if a.Lat != b.Lat {
			return a.Lat < b.Lat || math.IsNaN(b.Lat) && !math.IsNaN(a.Lat)
		}
		if a.Lon != b.Lon {
			return a.Lon < b.Lon || math.IsNaN(b.Lon) && !math.IsNaN(a.Lon)
		}
		return a.Valid < b.Valid
	})
}

// Windows groups a device's records by hour of device time and aggregates
// each hour; the expected interval is intervalMS when positive, otherwise
// learned from all the records. It is what the database layer does hour by
// hour, in one call (tests, simulations).
func Windows(recs []Record, intervalMS, driftLimitMS int64) []WindowStats {
	if len(recs) == 0 {
		return nil
	}
	if intervalMS <= 0 {
		ts := make([]time.Time, len(recs))
		for i, r := range recs {
			ts[i] = r.TS
		}
		intervalMS = LearnInterval(ts)
	}
	byHour := map[time.Time][]Record{}
	for _, r := range recs {
		h := r.TS.UTC().Truncate(time.Hour)
		byHour[h] = append(byHour[h], r)
	}
	hours := make([]time.Time, 0, len(byHour))
	for h := range byHour {
		hours = append(hours, h)
	}
	sort.Slice(hours, func(i, j int) bool { return hours[i].Before(hours[j]) })
	out := make([]WindowStats, 0, len(hours))
	var prev time.Time
	for _, h := range hours {
		w := Aggregate(h, prev, byHour[h], intervalMS, driftLimitMS)
		out = append(out, w)
		prev = w.LastTS
	}
	return out
}
