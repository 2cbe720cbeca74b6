package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"
)

// Trip detection (GET /api/devices/{id}/trips), after Traccar's report
// rules: a device moves when its speed (reported, or derived from two
// fixes when it reports none) is at least tripMinSpeedKMH and its
// ignition (attrs.ignition, which the decoders normalise to a boolean) is
// not off. A trip ends when the ignition goes off, when the device has
// stood still for tripMinStop, or at a gap in the data of more than
// tripMaxGap; the still time inside a trip is its idle time. The time
// between two trips (or before the first / after the last, within the
// range) that lasts at least tripMinStop is a stop.
const (
	tripMinSpeedKMH = 5.0
	tripMinStop     = 5 * time.Minute
	tripMaxGap      = 30 * time.Minute
	// maxTripsListed bounds the trips and the stops of one answer.
	maxTripsListed = 10_000
)

// Trip is one trip of GET /api/devices/{id}/trips.
type Trip struct {
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	StartLat  *float64  `json:"start_lat"`
	StartLon  *float64  `json:"start_lon"`
	EndLat    *float64  `json:"end_lat"`
	EndLon    *float64  `json:"end_lon"`
	DistanceM float64   `json:"distance_m"`
	// TrustedDistanceM joins only the fixes the rules passed: a failed or
	// unchecked fix is skipped, the line goes from the passed fix before
	// it to the passed fix after it.
	TrustedDistanceM float64 `json:"trusted_distance_m"`
	DurationSeconds  int64   `json:"duration_seconds"`
	// MaxSpeedKMH is over the fixes no rule failed.
	MaxSpeedKMH float64 `json:"max_speed_kmh"`
	IdleSeconds int64   `json:"idle_seconds"`
	Fixes       int     `json:"fixes"`
	PassedShare float64 `json:"passed_share"` // fixes the rules passed, 0…1
}

// Stop is one stop of GET /api/devices/{id}/trips.
type Stop struct {
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	Lat             *float64  `json:"lat"`
	Lon             *float64  `json:"lon"`
	DurationSeconds int64     `json:"duration_seconds"`
}

// tripFix is one record as trip detection reads it.
type tripFix struct {
	ts       time.Time
	lat, lon float64 // NaN without a usable position
	speed    float64 // NaN when not reported
	ignition int     // -1 off, 0 unknown, 1 on
	verdict  string
}

func (f *tripFix) hasPos() bool { return !math.IsNaN(f.lat) }

// tripAcc accumulates a run of fixes: a trip, or the still tail of one
// that joins it if the device moves again.
type tripAcc struct {
	first, last             *tripFix
	firstPos, lastPos       *tripFix
	firstPassed, lastPassed *tripFix
	dist, trusted, maxSpeed float64
	fixes, passed           int
}

func (a *tripAcc) add(f *tripFix) {
	if a.first == nil {
		a.first = f
	}
	a.last = f
	a.fixes++
	if f.verdict == verdictPass {
		a.passed++
	}
	if f.verdict != verdictFail && !math.IsNaN(f.speed) && f.speed > a.maxSpeed {
		a.maxSpeed = f.speed
	}
	if !f.hasPos() {
		return
	}
	if a.lastPos != nil {
		a.dist += haversine(a.lastPos.lat, a.lastPos.lon, f.lat, f.lon)
	}
	if a.firstPos == nil {
		a.firstPos = f
	}
	a.lastPos = f
	if f.verdict == verdictPass {
		if a.lastPassed != nil {
			a.trusted += haversine(a.lastPassed.lat, a.lastPassed.lon, f.lat, f.lon)
		}
		if a.firstPassed == nil {
			a.firstPassed = f
		}
		a.lastPassed = f
	}
}

// join appends b (which follows a) to a, the line between them included.
func (a *tripAcc) join(b *tripAcc) {
	if b.first == nil {
		return
	}
	if a.lastPos != nil && b.firstPos != nil {
		a.dist += haversine(a.lastPos.lat, a.lastPos.lon, b.firstPos.lat, b.firstPos.lon)
	}
	if a.lastPassed != nil && b.firstPassed != nil {
		a.trusted += haversine(a.lastPassed.lat, a.lastPassed.lon, b.firstPassed.lat, b.firstPassed.lon)
	}
	a.dist, a.trusted, a.maxSpeed = a.dist+b.dist, a.trusted+b.trusted, math.Max(a.maxSpeed, b.maxSpeed)
	a.fixes, a.passed = a.fixes+b.fixes, a.passed+b.passed
	if a.first == nil {
		a.first = b.first
	}
	a.last = b.last
	if a.firstPos == nil {
		a.firstPos = b.firstPos
	}
	if b.lastPos != nil {
		a.lastPos = b.lastPos
	}
	if a.firstPassed == nil {
		a.firstPassed = b.firstPassed
	}
	if b.lastPassed != nil {
		a.lastPassed = b.lastPassed
	}
}

// tripDetector is the state machine over a device's fixes in time order.
type tripDetector struct {
	trips []Trip
	stops []Stop
	// In a trip: trip holds it up to its last moving fix, tail the still
	// fixes since, idle the still time already joined to it.
	inTrip     bool
	trip, tail *tripAcc
	idle       time.Duration
	// Out of a trip: the still period from stopFrom to stopLast (nil when
	// none is open).
	stopFrom, stopLast *tripFix
	prev, prevPos      *tripFix
}

// tripGapMoved: after a gap in the data, a device that reappears farther
// than this from where it went silent moved in between (the gap is no
// stop).
const tripGapMoved = 500.0

// speedOf is the reported speed, or the speed from the previous fix with a
// position when none is reported.
func (d *tripDetector) speedOf(f *tripFix) float64 {
	if !math.IsNaN(f.speed) {
		return f.speed
	}
	if f.hasPos() && d.prevPos != nil {
		if dt := f.ts.Sub(d.prevPos.ts).Hours(); dt > 0 {
			return haversine(d.prevPos.lat, d.prevPos.lon, f.lat, f.lon) / 1000 / dt
		}
	}
	return 0
}

func (d *tripDetector) add(f *tripFix) {
	if d.prev != nil && f.ts.Sub(d.prev.ts) > tripMaxGap {
		// A gap in the data ends a trip where the data ends; it is a stop
		// only if the device reappears where it went silent.
		if d.inTrip {
			d.endTrip(d.trip.last)
		}
		if d.stopFrom != nil && d.prevPos != nil && f.hasPos() &&
			haversine(d.prevPos.lat, d.prevPos.lon, f.lat, f.lon) > tripGapMoved {
			d.closeStop(d.stopLast.ts)
		}
	}
	moving := f.ignition >= 0 && d.speedOf(f) >= tripMinSpeedKMH
	d.prev = f
	if f.hasPos() {
		d.prevPos = f
	}
	if !d.inTrip {
		if !moving {
			if d.stopFrom == nil {
				d.stopFrom = f
			}
			d.stopLast = f
			return
		}
		d.closeStop(f.ts)
		d.inTrip, d.trip, d.tail, d.idle = true, &tripAcc{}, &tripAcc{}, 0
		d.trip.add(f)
		return
	}
	if moving {
		if d.tail.first != nil {
			d.idle += f.ts.Sub(d.trip.last.ts)
			d.trip.join(d.tail)
			d.tail = &tripAcc{}
		}
		d.trip.add(f)
		return
	}
	d.tail.add(f)
	switch {
	case f.ignition < 0:
		// Ignition off: the standing time before it was idle, the trip
		// ends here and the stop begins.
		d.idle += f.ts.Sub(d.trip.last.ts)
		d.trip.join(d.tail)
		d.tail = &tripAcc{}
		d.endTrip(f)
	case f.ts.Sub(d.trip.last.ts) >= tripMinStop:
		// Still for long enough: the trip ended at its last moving fix.
		d.endTrip(d.trip.last)
	}
}

// endTrip closes the trip at d.trip.last; the stop begins at stopAt and
// holds the still fixes of the tail.
func (d *tripDetector) endTrip(stopAt *tripFix) {
	a := d.trip
	if len(d.trips) < maxTripsListed {
		t := Trip{Start: a.first.ts, End: a.last.ts, DistanceM: round1(a.dist), TrustedDistanceM: round1(a.trusted),
			DurationSeconds: int64(a.last.ts.Sub(a.first.ts).Seconds()), MaxSpeedKMH: round1(a.maxSpeed),
			IdleSeconds: int64(d.idle.Seconds()), Fixes: a.fixes}
		if a.fixes > 0 {
			t.PassedShare = math.Round(float64(a.passed)/float64(a.fixes)*10000) / 10000
		}
		if a.firstPos != nil {
			t.StartLat, t.StartLon = ptr(a.firstPos.lat), ptr(a.firstPos.lon)
			t.EndLat, t.EndLon = ptr(a.lastPos.lat), ptr(a.lastPos.lon)
		}
		d.trips = append(d.trips, t)
	}
	d.inTrip = false
	d.stopFrom, d.stopLast = stopAt, stopAt
	if d.tail.last != nil {
		d.stopLast = d.tail.last
	}
	d.trip, d.tail = nil, nil
}

// closeStop records the still period that ends at end if it lasted at
// least tripMinStop.
func (d *tripDetector) closeStop(end time.Time) {
	from, last := d.stopFrom, d.stopLast
	d.stopFrom, d.stopLast = nil, nil
	if from == nil || end.Sub(from.ts) < tripMinStop || len(d.stops) >= maxTripsListed {
		return
	}
	st := Stop{Start: from.ts, End: end, DurationSeconds: int64(end.Sub(from.ts).Seconds())}
	switch {
	case from.hasPos():
		st.Lat, st.Lon = ptr(from.lat), ptr(from.lon)
	case last != nil && last.hasPos():
		st.Lat, st.Lon = ptr(last.lat), ptr(last.lon)
	}
	d.stops = append(d.stops, st)
}

// finish closes an open trip or stop at the end of the data.
func (d *tripDetector) finish() {
	if d.inTrip {
		d.endTrip(d.trip.last)
	}
	if d.stopLast != nil {
		d.closeStop(d.stopLast.ts)
	}
}

func ptr(f float64) *float64 { return &f }

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// haversine is the great-circle distance in metres.
func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371008.8
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// trips is GET /api/devices/{id}/trips: the device's records in the range
// are read in one pass, in time order, and never held all at once.
func (s *Server) trips(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	q, err := params(r, "from", "to")
	if err != nil {
		s.fail(w, err)
		return
	}
	from, to, err := timeRange(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	if !s.deviceOr404(w, r, id) {
		return
	}
	from, to, err = s.defaultRange(r.Context(), id, q.Get("from") != "", q.Get("to") != "", from, to)
	if err != nil {
		s.fail(w, err)
		return
	}
	d, err := s.detectTrips(r.Context(), id, from, to)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": id, "from": from, "to": to,
		"trips": nonNil(d.trips), "stops": nonNil(d.stops)})
}

// defaultRange fills in a range that was not given: to just after the
// device's newest record, from a day before to.
func (s *Server) defaultRange(ctx context.Context, id string, hasFrom, hasTo bool, from, to time.Time) (time.Time, time.Time, error) {
	if !hasTo {
		newest, err := s.newestTS(ctx, id)
		if err != nil {
			return from, to, err
		}
		to = newest.Add(time.Microsecond) // Postgres keeps microseconds: the newest record is inside
		if newest.IsZero() {
			to = time.Now().UTC()
		}
	}
	if !hasFrom {
		from = to.Add(-defaultTrackSpan)
	} else if from.After(to) {
		return from, to, badRequest{"from must not be after to (to defaults to just after the device's newest record)"}
	}
	return from, to, nil
}

func (s *Server) detectTrips(ctx context.Context, id string, from, to time.Time) (*tripDetector, error) {
	covered, err := s.evaluatedRanges(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.deps.DB.Query(ctx, `SELECT s.id, s.ts, s.lat, s.lon, s.speed, s.valid, s.attrs->>'ignition',
			EXISTS (SELECT 1 FROM findings f WHERE f.signal_id = s.id AND f.status = 'fail' AND NOT f.shadow)
		FROM signals s WHERE s.device_id = $1 AND s.ts >= $2 AND s.ts < $3 ORDER BY s.ts, s.id`, id, from, to)
	if err != nil {
		return nil, fmt.Errorf("detecting trips: %w", err)
	}
	defer rows.Close()
	d := &tripDetector{}
	for rows.Next() {
		var sid int64
		var lat, lon, speed *float64
		var valid *bool
		var ign *string
		var failed bool
		f := &tripFix{}
		if err := rows.Scan(&sid, &f.ts, &lat, &lon, &speed, &valid, &ign, &failed); err != nil {
			return nil, fmt.Errorf("detecting trips: %w", err)
		}
		f.ts, f.lat, f.lon, f.speed = f.ts.UTC(), math.NaN(), math.NaN(), fl(finite(speed))
		if lat != nil && lon != nil && finite(lat) != nil && finite(lon) != nil && (valid == nil || *valid) {
			f.lat, f.lon = *lat, *lon
		}
		if ign != nil {
			switch *ign {
			case "true", "1":
				f.ignition = 1
			case "false", "0":
				f.ignition = -1
			}
		}
		switch {
		case failed:
			f.verdict = verdictFail
		case covered(sid):
			f.verdict = verdictPass
		default:
			f.verdict = verdictUnchecked
		}
		d.add(f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("detecting trips: %w", err)
	}
	d.finish()
	return d, nil
}
