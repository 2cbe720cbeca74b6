package api

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/internal/testenv"
	"github.com/fleetcore/fleetcore/signal"
)

type positionsPage struct {
	Positions []struct {
		DeviceID   string     `json:"device_id"`
		Protocol   string     `json:"protocol"`
		TS         time.Time  `json:"ts"`
		Lat        float64    `json:"lat"`
		Lon        float64    `json:"lon"`
		Speed      *float64   `json:"speed_kmh"`
		Heading    *float64   `json:"heading"`
		Valid      *bool      `json:"valid"`
		Score      *float64   `json:"score"`
		LastSeen   *time.Time `json:"last_seen"`
		AgeSeconds *int64     `json:"age_seconds"`
	} `json:"positions"`
	NextCursor *string `json:"next_cursor"`
}

func (p positionsPage) ids() []string {
	var out []string
	for _, x := range p.Positions {
		out = append(out, x.DeviceID)
	}
	return out
}

type trackBody struct {
	DeviceID string    `json:"device_id"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Points   []struct {
		TS      time.Time `json:"ts"`
		Lat     float64   `json:"lat"`
		Lon     float64   `json:"lon"`
		Speed   *float64  `json:"speed_kmh"`
		Valid   *bool     `json:"valid"`
		Verdict string    `json:"verdict"`
		Reasons []struct {
			Rule, Reason, Status string
		} `json:"reasons"`
	} `json:"points"`
	Total      int        `json:"total"`
	Simplified bool       `json:"simplified"`
	Truncated  bool       `json:"truncated"`
	NextFrom   *time.Time `json:"next_from"`
}

func (t trackBody) verdicts() map[string]int {
	m := map[string]int{}
	for _, p := range t.Points {
		m[p.Verdict]++
	}
	return m
}

func TestIntegrationPositions(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, "")

	var all positionsPage
	get(t, ts.URL, "/api/positions", "", 200, &all)
	want := []string{devHealthy, devNoFix, devClock, devDuplicate, devGappy, devJunk}
	sort.Strings(want)
	if got := all.ids(); strings.Join(got, ",") != strings.Join(want, ",") || all.NextCursor != nil {
		t.Fatalf("positions %v (next %v), want %v", got, all.NextCursor, want)
	}
	for _, p := range all.Positions {
		if p.Score == nil || p.LastSeen == nil || p.AgeSeconds == nil || *p.AgeSeconds < 0 || p.Protocol != "teltonika" {
			t.Fatalf("position %+v lacks score, last_seen, age or protocol", p)
		}
		switch p.DeviceID {
		case devHealthy:
			// The newest of 300 fixes, one a minute, moving north.
			if math.Abs(p.Lat-(54.68+299e-4)) > 1e-9 || p.Lon != 25.28 || *p.Score != 100 || p.Valid == nil || !*p.Valid ||
				p.Speed == nil || *p.Speed != 42 || p.Heading != nil || !p.TS.Equal(sd.base.Add(299*time.Minute)) {
				t.Fatalf("healthy device %+v", p)
			}
			if age := time.Since(*p.LastSeen).Seconds(); math.Abs(age-float64(*p.AgeSeconds)) > 5 {
				t.Fatalf("age %d s for last_seen %s", *p.AgeSeconds, p.LastSeen)
			}
		case devNoFix, devJunk:
			if p.Lat != 0 || p.Lon != 0 || *p.Score >= 100 {
				t.Fatalf("faulty device %+v", p)
			}
		}
	}

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"bbox=25,54,26,55", []string{devClock, devHealthy, devDuplicate, devGappy}},
		{"bbox=-1,-1,1,1", []string{devNoFix, devJunk}},
		{"bbox=" + url.QueryEscape("170,-10,-170,10"), nil},  // across the antimeridian: nothing there
		{"bbox=" + url.QueryEscape("-10,-10,-170,60"), want}, // across it the long way round: everything
		{"bbox=" + url.QueryEscape("26,-10,-170,60"), nil},   // 26…180 and −180…−170: nothing
		{"q=8612", []string{devDuplicate, devGappy}},
		{"q=fmb920", []string{devJunk}},
		{"protocol=gt06", nil},
		{"protocol=teltonika&q=0424410&bbox=25,54,26,55", []string{devHealthy, devClock}},
	} {
		var p positionsPage
		get(t, ts.URL, "/api/positions?"+c.query, "", 200, &p)
		w := append([]string(nil), c.want...)
		sort.Strings(w)
		if strings.Join(p.ids(), ",") != strings.Join(w, ",") {
			t.Errorf("%s: %v, want %v", c.query, p.ids(), w)
		}
	}

	// Cursor paging visits every device once, in order.
	var seen []string
	cur := ""
	for i := 0; i < 10; i++ {
		var p positionsPage
		path := "/api/positions?limit=4"
		if cur != "" {
			path += "&cursor=" + cur
		}
		get(t, ts.URL, path, "", 200, &p)
		seen = append(seen, p.ids()...)
		if p.NextCursor == nil {
			break
		}
		cur = *p.NextCursor
	}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("paged %v, want %v", seen, want)
	}

	for _, c := range []struct{ query, word string }{
		{"bbox=1,2,3", "bbox"},
		{"bbox=0,10,1,5", "bbox"},
		{"bbox=0,0,181,1", "bbox"},
		{"limit=abc", "limit"},
		{"limit=0", "limit"},
		{"limit=10001", "limit"},
		{"cursor=xyz", "cursor"},
		{"sort=score", "sort"},
	} {
		body := get(t, ts.URL, "/api/positions?"+c.query, "", 400, nil)
		if !strings.Contains(string(body), c.word) {
			t.Errorf("%s: %s does not name %s", c.query, body, c.word)
		}
	}
}

func TestIntegrationTrack(t *testing.T) {
	testenv.Integration(t)
	sd := seedFleet(t)
	ts, _ := newTestServer(t, sd, "")
	end := sd.base.Add(5 * time.Hour)
	rng := fmt.Sprintf("from=%d&to=%d", sd.base.Unix(), end.Unix())

	// The device that lost its fix half way: 150 fixes passed, 150 failed
	// gps.zero_island, each with the rule's reason.
	var tr trackBody
	get(t, ts.URL, "/api/devices/"+devNoFix+"/track?"+rng, "", 200, &tr)
	if tr.DeviceID != devNoFix || tr.Total != 300 || len(tr.Points) != 300 || tr.Simplified || tr.Truncated ||
		!tr.From.Equal(sd.base) || !tr.To.Equal(end) {
		t.Fatalf("track: total %d, %d points, simplified %v, truncated %v, %s–%s", tr.Total, len(tr.Points), tr.Simplified, tr.Truncated, tr.From, tr.To)
	}
	if v := tr.verdicts(); v["pass"] != 150 || v["fail"] != 150 || v["unchecked"] != 0 {
		t.Fatalf("verdicts %v", v)
	}
	for i, p := range tr.Points {
		if i > 0 && p.TS.Before(tr.Points[i-1].TS) {
			t.Fatalf("points out of order at %d", i)
		}
		failed := p.Lat == 0 && p.Lon == 0
		if failed != (p.Verdict == "fail") {
			t.Fatalf("point %d at (%v,%v) has verdict %s", i, p.Lat, p.Lon, p.Verdict)
		}
		if failed && (len(p.Reasons) != 1 || p.Reasons[0].Rule != "gps.zero_island" || p.Reasons[0].Status != "fail" ||
			!strings.Contains(p.Reasons[0].Reason, "(0,0)")) {
			t.Fatalf("failed point %d reasons %+v", i, p.Reasons)
		}
		if !failed && len(p.Reasons) != 0 {
			t.Fatalf("passed point %d reasons %+v", i, p.Reasons)
		}
	}

	// Simplified for a zoom level: the straight northbound stretch shrinks
	// to its ends, and not one failed fix is dropped.
	var z trackBody
	get(t, ts.URL, "/api/devices/"+devNoFix+"/track?zoom=12&"+rng, "", 200, &z)
	if !z.Simplified || z.Total != 300 || len(z.Points) >= 160 || z.verdicts()["fail"] != 150 {
		t.Fatalf("zoom 12: simplified %v, total %d, %d points, verdicts %v", z.Simplified, z.Total, len(z.Points), z.verdicts())
	}
	var h trackBody
	get(t, ts.URL, "/api/devices/"+devHealthy+"/track?zoom=3&"+rng, "", 200, &h)
	if !h.Simplified || len(h.Points) != 2 || !h.Points[0].TS.Equal(sd.base) || !h.Points[1].TS.Equal(sd.base.Add(299*time.Minute)) {
		t.Fatalf("healthy track at zoom 3: %d points %+v", len(h.Points), h.Points)
	}

	// A fix stored after the rules' watermark is unchecked.
	late := signal.New(devHealthy, sd.base.Add(5*time.Hour+time.Minute))
	late.Recv, late.Protocol, late.Path, late.Lat, late.Lon, late.Valid = late.TS, "teltonika", signal.PathDirect, 54.7, 25.3, signal.True
	if _, err := sd.st.WriteSignals(context.Background(), []signal.Signal{late}); err != nil {
		t.Fatal(err)
	}
	// Default range: the day up to the device's newest record.
	get(t, ts.URL, "/api/devices/"+devHealthy+"/track", "", 200, &h)
	if h.Total != 301 || h.verdicts()["unchecked"] != 1 || h.Points[300].Verdict != "unchecked" || !h.To.After(late.TS) {
		t.Fatalf("default range: total %d, verdicts %v, to %s", h.Total, h.verdicts(), h.To)
	}

	// limit bounds the fixes read; the answer says where to go on.
	var lim trackBody
	get(t, ts.URL, "/api/devices/"+devNoFix+"/track?limit=100&"+rng, "", 200, &lim)
	if !lim.Truncated || lim.Total != 100 || len(lim.Points) != 100 || lim.NextFrom == nil || !lim.NextFrom.Equal(sd.base.Add(100*time.Minute)) {
		t.Fatalf("limit 100: truncated %v, total %d, next_from %v", lim.Truncated, lim.Total, lim.NextFrom)
	}

	// Trips: the device that lost its fix drove one trip (speed 42 all
	// along); half its fixes passed, and its trusted distance is the
	// northbound line of the 150 passed fixes, not the jump to (0,0).
	var trips struct {
		Trips []Trip `json:"trips"`
		Stops []Stop `json:"stops"`
	}
	get(t, ts.URL, "/api/devices/"+devNoFix+"/trips?"+rng, "", 200, &trips)
	if len(trips.Trips) != 1 || len(trips.Stops) != 0 {
		t.Fatalf("trips %+v stops %+v", trips.Trips, trips.Stops)
	}
	trip := trips.Trips[0]
	if trip.Fixes != 300 || trip.PassedShare != 0.5 || trip.MaxSpeedKMH != 42 || trip.DurationSeconds != 299*60 ||
		!trip.Start.Equal(sd.base) || math.Abs(trip.TrustedDistanceM-haversine(54.68, 25.28, 54.68+149e-4, 25.28)) > 0.2 ||
		trip.DistanceM < 6_000_000 {
		t.Fatalf("trip %+v", trip)
	}
	get(t, ts.URL, "/api/devices/"+devHealthy+"/trips?from="+url.QueryEscape(sd.base.Format(time.RFC3339))+"&to=abc", "", 400, nil)

	for _, p := range []string{"track", "trips"} {
		get(t, ts.URL, "/api/devices/no-such-device/"+p, "", 404, nil)
	}
	for _, c := range []struct{ query, word string }{
		{"zoom=23", "zoom"},
		{"zoom=x", "zoom"},
		{"limit=abc", "limit"},
		{"from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "from"},
		{"from=yesterday", "from"},
		{"kind=bogus", "kind"},
	} {
		body := get(t, ts.URL, "/api/devices/"+devNoFix+"/track?"+c.query, "", 400, nil)
		if !strings.Contains(string(body), c.word) {
			t.Errorf("%s: %s does not name %s", c.query, body, c.word)
		}
	}
}
