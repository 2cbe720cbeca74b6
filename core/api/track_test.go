package api

import (
	"math"
	"math/rand"
	"testing"
	"time"
)

// TestSimplify checks Douglas–Peucker on a random walk at every zoom:
// ends and fixes with findings are kept, every dropped fix lies within
// the tolerance of the kept line around it, and a deeper zoom keeps at
// least as many fixes.
func TestSimplify(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	pts := make([]TrackPoint, 5000)
	lat, lon := 54.68, 25.28
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range pts {
		lat += (rng.Float64() - 0.3) * 2e-4
		lon += (rng.Float64() - 0.5) * 3e-4
		pts[i] = TrackPoint{TS: t0.Add(time.Duration(i) * time.Second), Lat: lat, Lon: lon, Verdict: verdictPass, Reasons: []TrackReason{}}
		if i%397 == 5 {
			pts[i].Verdict, pts[i].Reasons = verdictFail, []TrackReason{{Rule: "gps.jump", Reason: "jump", Status: "fail"}}
		}
	}
	prev := 0
	for zoom := 0; zoom <= maxZoom; zoom++ {
		kept := simplify(pts, zoom)
		if !kept[0].TS.Equal(pts[0].TS) || !kept[len(kept)-1].TS.Equal(pts[len(pts)-1].TS) {
			t.Fatalf("zoom %d: ends dropped", zoom)
		}
		if len(kept) < prev {
			t.Fatalf("zoom %d keeps %d fixes, zoom %d kept %d", zoom, len(kept), zoom-1, prev)
		}
		prev = len(kept)
		scale := 256 * math.Pow(2, float64(zoom))
		k := 0
		fails := 0
		for i, p := range pts {
			if k < len(kept) && kept[k].TS.Equal(p.TS) {
				if kept[k].Verdict == verdictFail {
					fails++
				}
				k++
				continue
			}
			if p.Verdict == verdictFail {
				t.Fatalf("zoom %d: failed fix %d dropped", zoom, i)
			}
			a, b := mercator(kept[k-1].Lat, kept[k-1].Lon, scale), mercator(kept[k].Lat, kept[k].Lon, scale)
			if d := segDist(mercator(p.Lat, p.Lon, scale), a, b); d > trackTolerancePx+1e-9 {
				t.Fatalf("zoom %d: dropped fix %d lies %.2f px off the line", zoom, i, d)
			}
		}
		if fails != 13 {
			t.Fatalf("zoom %d: %d failed fixes kept, want 13", zoom, fails)
		}
		t.Logf("zoom %2d: %4d of %d fixes", zoom, len(kept), len(pts))
	}
	if prev < 4000 {
		t.Fatalf("zoom %d keeps only %d of %d fixes of a random walk", maxZoom, prev, len(pts))
	}
}
