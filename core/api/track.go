package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"
)

// Bounds of GET /api/devices/{id}/track: limit is how many fixes one
// answer reads (its memory); beyond, the answer says truncated and where
// the next range starts.
const (
	defaultTrackLimit = 50_000
	maxTrackLimit     = 500_000
	// defaultTrackSpan is the range when from is not given: the day before
	// to (or before the device's newest record).
	defaultTrackSpan = 24 * time.Hour
	maxZoom          = 22
	// trackTolerancePx is the simplification tolerance: a fix closer than
	// this to the line through its kept neighbours, at the zoom's scale,
	// is dropped.
	trackTolerancePx = 1.0
)

// Verdicts of a track point.
const (
	verdictPass      = "pass"      // every rule that judged it passed (warnings are listed in reasons)
	verdictFail      = "fail"      // a rule failed it
	verdictUnchecked = "unchecked" // no active rule has evaluated it yet
)

// TrackReason is one rule's finding on a fix.
type TrackReason struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	Status string `json:"status"` // warn or fail
}

// TrackPoint is one fix of GET /api/devices/{id}/track.
type TrackPoint struct {
	TS      time.Time     `json:"ts"`
	Lat     float64       `json:"lat"`
	Lon     float64       `json:"lon"`
	Speed   *float64      `json:"speed_kmh"`
	Valid   *bool         `json:"valid"`
	Verdict string        `json:"verdict"`
	Reasons []TrackReason `json:"reasons"`
	id      int64
}

// Track is GET /api/devices/{id}/track.
type Track struct {
	DeviceID   string       `json:"device_id"`
	From       time.Time    `json:"from"`
	To         time.Time    `json:"to"`
	Points     []TrackPoint `json:"points"`
	Total      int          `json:"total"` // fixes read, before simplification
	Simplified bool         `json:"simplified"`
	Zoom       *int         `json:"zoom,omitempty"`
	// Truncated: the range holds more than limit fixes; NextFrom is the
	// device time of the first one left out (ask again from there).
	Truncated bool       `json:"truncated"`
	NextFrom  *time.Time `json:"next_from,omitempty"`
}

func (s *Server) track(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	q, err := params(r, "from", "to", "zoom", "limit")
	if err != nil {
		s.fail(w, err)
		return
	}
	from, to, err := timeRange(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	limit, err := intParam(q, "limit", defaultTrackLimit, 1, maxTrackLimit)
	if err != nil {
		s.fail(w, err)
		return
	}
	var zoom *int
	if q.Get("zoom") != "" {
		z, err := intParam(q, "zoom", 0, 0, maxZoom)
		if err != nil {
			s.fail(w, err)
			return
		}
		zoom = &z
	}
	if !s.deviceOr404(w, r, id) {
		return
	}
	from, to, err = s.defaultRange(r.Context(), id, q.Get("from") != "", q.Get("to") != "", from, to)
	if err != nil {
		s.fail(w, err)
		return
	}
	t, err := s.loadTrack(r.Context(), id, from, to, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	if zoom != nil {
		t.Zoom = zoom
		kept := simplify(t.Points, *zoom)
		t.Simplified = len(kept) < len(t.Points)
		t.Points = kept
	}
	writeJSON(w, http.StatusOK, t)
}

// loadTrack reads the fixes with a position in [from, to) in device time
// order, at most limit, with each fix's verdict: the findings of active
// (not shadow) rules on it, and whether an active rule has evaluated it
// (its id lies within a rule version's watermark).
func (s *Server) loadTrack(ctx context.Context, id string, from, to time.Time, limit int) (*Track, error) {
	t := &Track{DeviceID: id, From: from, To: to, Points: []TrackPoint{}}
	rows, err := s.deps.DB.Query(ctx, `SELECT id, ts, lat, lon, speed, valid FROM signals
		WHERE device_id = $1 AND ts >= $2 AND ts < $3 AND lat IS NOT NULL AND lon IS NOT NULL
			AND lat <> 'NaN' AND lon <> 'NaN'
		ORDER BY ts, id LIMIT $4`, id, from, to, limit+1)
	if err != nil {
		return nil, fmt.Errorf("loading track: %w", err)
	}
	for rows.Next() {
		var p TrackPoint
		if err := rows.Scan(&p.id, &p.TS, &p.Lat, &p.Lon, &p.Speed, &p.Valid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("loading track: %w", err)
		}
		p.TS, p.Speed, p.Reasons, p.Verdict = p.TS.UTC(), finite(p.Speed), []TrackReason{}, verdictUnchecked
		t.Points = append(t.Points, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading track: %w", err)
	}
	if len(t.Points) > limit {
		next := t.Points[limit].TS
		t.Points, t.Truncated, t.NextFrom = t.Points[:limit], true, &next
	}
	t.Total = len(t.Points)
	if len(t.Points) == 0 {
		return t, nil
	}
	covered, err := s.evaluatedRanges(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]int, len(t.Points))
	for i := range t.Points {
		byID[t.Points[i].id] = i
		if covered(t.Points[i].id) {
			t.Points[i].Verdict = verdictPass
		}
	}
	last := t.Points[len(t.Points)-1].TS
	frows, err := s.deps.DB.Query(ctx, `SELECT signal_id, rule, reason_text, status FROM findings
		WHERE device_id = $1 AND ts >= $2 AND ts <= $3 AND NOT shadow ORDER BY signal_id, rule, rule_version`, id, from, last)
	if err != nil {
		return nil, fmt.Errorf("loading track findings: %w", err)
	}
	defer frows.Close()
	for frows.Next() {
		var sid int64
		var f TrackReason
		if err := frows.Scan(&sid, &f.Rule, &f.Reason, &f.Status); err != nil {
			return nil, fmt.Errorf("loading track findings: %w", err)
		}
		i, ok := byID[sid]
		if !ok {
			continue // a fix without position, or one beyond the limit
		}
		p := &t.Points[i]
		p.Reasons = append(p.Reasons, f)
		if f.Status == "fail" {
			p.Verdict = verdictFail
		} else if p.Verdict == verdictUnchecked {
			p.Verdict = verdictPass
		}
	}
	if err := frows.Err(); err != nil {
		return nil, fmt.Errorf("loading track findings: %w", err)
	}
	return t, nil
}

// evaluatedRanges returns whether an active rule version has evaluated
// the signal with a given id: its watermark covers (start_id, last_id].
func (s *Server) evaluatedRanges(ctx context.Context) (func(int64) bool, error) {
	rows, err := s.deps.DB.Query(ctx, `SELECT start_id, last_id FROM rule_watermarks WHERE NOT shadow AND last_id > start_id`)
	if err != nil {
		return nil, fmt.Errorf("loading rule watermarks: %w", err)
	}
	defer rows.Close()
	var ranges [][2]int64
	for rows.Next() {
		var a, b int64
		if err := rows.Scan(&a, &b); err != nil {
			return nil, fmt.Errorf("loading rule watermarks: %w", err)
		}
		ranges = append(ranges, [2]int64{a, b})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading rule watermarks: %w", err)
	}
	return func(id int64) bool {
		for _, r := range ranges {
			if id > r[0] && id <= r[1] {
				return true
			}
		}
		return false
	}, nil
}

// simplify drops fixes that add nothing visible at a zoom level
// (Douglas–Peucker on Web Mercator pixel coordinates, tolerance
// trackTolerancePx). The first and last fix and every fix with a
// finding (failed or warned) are always kept: the track simplifies
// between them, never across them.
func simplify(pts []TrackPoint, zoom int) []TrackPoint {
	if len(pts) < 3 {
		return pts
	}
	scale := 256 * math.Pow(2, float64(zoom))
	xy := make([][2]float64, len(pts))
	for i, p := range pts {
		xy[i] = mercator(p.Lat, p.Lon, scale)
	}
	keep := make([]bool, len(pts))
	keep[0], keep[len(pts)-1] = true, true
	anchor := 0
	for i := 1; i < len(pts); i++ {
		if i == len(pts)-1 || len(pts[i].Reasons) > 0 {
			keep[i] = true
			douglasPeucker(xy, keep, anchor, i, trackTolerancePx)
			anchor = i
		}
	}
	out := make([]TrackPoint, 0, len(pts)/4+2)
	for i, p := range pts {
		if keep[i] {
			out = append(out, p)
		}
	}
	return out
}

// douglasPeucker marks in keep the points between a and b (both kept)
// farther than tol from the simplified line, iteratively.
func douglasPeucker(xy [][2]float64, keep []bool, a, b int, tol float64) {
	type span struct{ a, b int }
	stack := []span{{a, b}}
	for len(stack) > 0 {
		sp := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if sp.b-sp.a < 2 {
			continue
		}
		far, dmax := -1, tol
		for i := sp.a + 1; i < sp.b; i++ {
			if d := segDist(xy[i], xy[sp.a], xy[sp.b]); d > dmax {
				far, dmax = i, d
			}
		}
		if far < 0 {
			continue
		}
		keep[far] = true
		stack = append(stack, span{sp.a, far}, span{far, sp.b})
	}
}

// segDist is the distance from p to the segment a–b.
func segDist(p, a, b [2]float64) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	if dx == 0 && dy == 0 {
		return math.Hypot(p[0]-a[0], p[1]-a[1])
	}
	t := ((p[0]-a[0])*dx + (p[1]-a[1])*dy) / (dx*dx + dy*dy)
	t = math.Max(0, math.Min(1, t))
	return math.Hypot(p[0]-(a[0]+t*dx), p[1]-(a[1]+t*dy))
}

// mercator projects to Web Mercator pixels at a scale (256·2^zoom).
func mercator(lat, lon, scale float64) [2]float64 {
	const maxLat = 85.05112878
	lat = math.Max(-maxLat, math.Min(maxLat, lat))
	s := math.Sin(lat * math.Pi / 180)
	x := (lon + 180) / 360 * scale
	y := (0.5 - math.Log((1+s)/(1-s))/(4*math.Pi)) * scale
	return [2]float64{x, y}
}
