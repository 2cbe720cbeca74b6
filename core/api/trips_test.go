package api

import (
	"math"
	"testing"
	"time"
)

// TestTripDetector drives the detector through two trips: idling inside
// the first, ignition off ending it, a parked stop, a second trip with
// five failed fixes (a jump 5 km east at 300 km/h), and standing still
// with the ignition on until the stop time ends it.
func TestTripDetector(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	const step = 100.0 / 111194.93 // 100 m north along a meridian, in degrees (haversine's earth radius)
	lat := 54.0
	d := &tripDetector{}
	at := func(sec int, speed float64, ign int, verdict string, lon float64) {
		d.add(&tripFix{ts: t0.Add(time.Duration(sec) * time.Second), lat: lat, lon: lon, speed: speed, ignition: ign, verdict: verdict})
	}
	for s := 0; s <= 600; s += 10 { // A: 60 steps north
		if s > 0 {
			lat += step
		}
		at(s, 36, 1, verdictPass, 25)
	}
	for s := 610; s <= 720; s += 10 { // B: idling
		at(s, 0, 1, verdictPass, 25)
	}
	for s := 730; s <= 1030; s += 10 { // C: 31 steps north
		lat += step
		at(s, 36, 1, verdictPass, 25)
	}
	at(1040, 0, -1, verdictPass, 25) // ignition off
	stop1 := lat
	for s := 1340; s <= 2840; s += 300 { // parked
		at(s, 0, -1, verdictPass, 25)
	}
	for i, s := 0, 3000; s <= 3600; i, s = i+1, s+10 { // D: 60 steps north, 5 of them failed
		if i > 0 {
			lat += step
		}
		if i >= 20 && i < 25 {
			at(s, 300, 1, verdictFail, 25.08)
			continue
		}
		at(s, 36, 1, verdictPass, 25)
	}
	for s := 3610; s <= 4200; s += 10 { // E: still, ignition on
		at(s, 0, 1, verdictPass, 25)
	}
	d.finish()

	if len(d.trips) != 2 || len(d.stops) != 2 {
		t.Fatalf("%d trips %+v, %d stops %+v", len(d.trips), d.trips, len(d.stops), d.stops)
	}
	near := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	a, b := d.trips[0], d.trips[1]
	if !a.Start.Equal(t0) || !a.End.Equal(t0.Add(1040*time.Second)) || a.DurationSeconds != 1040 || a.IdleSeconds != 140 ||
		a.Fixes != 105 || a.PassedShare != 1 || a.MaxSpeedKMH != 36 {
		t.Errorf("trip 1 %+v", a)
	}
	near("trip 1 distance", a.DistanceM, 9100, 0.2)
	near("trip 1 trusted distance", a.TrustedDistanceM, 9100, 0.2)
	near("trip 1 end lat", *a.EndLat, stop1, 1e-9)
	if !b.Start.Equal(t0.Add(3000*time.Second)) || !b.End.Equal(t0.Add(3600*time.Second)) || b.IdleSeconds != 0 ||
		b.Fixes != 61 || b.PassedShare != math.Round(56.0/61*10000)/10000 || b.MaxSpeedKMH != 36 {
		t.Errorf("trip 2 %+v", b)
	}
	near("trip 2 trusted distance", b.TrustedDistanceM, 6000, 0.2)
	if b.DistanceM < 6000+2*5000 {
		t.Errorf("trip 2 distance %v does not include the jump", b.DistanceM)
	}
	s1, s2 := d.stops[0], d.stops[1]
	if !s1.Start.Equal(t0.Add(1040*time.Second)) || !s1.End.Equal(t0.Add(3000*time.Second)) || s1.DurationSeconds != 1960 ||
		s1.Lat == nil || math.Abs(*s1.Lat-stop1) > 1e-9 {
		t.Errorf("stop 1 %+v", s1)
	}
	if !s2.Start.Equal(t0.Add(3600*time.Second)) || !s2.End.Equal(t0.Add(4200*time.Second)) || s2.DurationSeconds != 600 {
		t.Errorf("stop 2 %+v", s2)
	}
}

// TestTripDetectorGaps: a gap in the data ends a trip; it is a stop when
// the device reappears where it went silent, and none when it moved.
func TestTripDetectorGaps(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	d := &tripDetector{}
	lat := 54.0
	drive := func(from, to int) {
		for s := from; s <= to; s += 10 {
			lat += 1e-3
			d.add(&tripFix{ts: t0.Add(time.Duration(s) * time.Second), lat: lat, lon: 25, speed: math.NaN(), verdict: verdictUnchecked})
		}
	}
	drive(0, 600)     // speed derived from the fixes: ~40 km/h
	drive(4200, 4800) // an hour later, 111 m on: it stood there
	lat += 0.1        // 11 km on after another hour: it drove
	drive(8400, 9000)
	d.finish()
	if len(d.trips) != 3 || len(d.stops) != 1 {
		t.Fatalf("%d trips %+v, %d stops %+v", len(d.trips), d.trips, len(d.stops), d.stops)
	}
	if st := d.stops[0]; !st.Start.Equal(t0.Add(600*time.Second)) || !st.End.Equal(t0.Add(4210*time.Second)) {
		t.Fatalf("stop %+v", st)
	}
	for i, tr := range d.trips {
		if want := []int{60, 60, 61}[i]; tr.Fixes != want || tr.PassedShare != 0 || tr.TrustedDistanceM != 0 || tr.MaxSpeedKMH != 0 {
			t.Fatalf("trip %+v", tr)
		}
	}
}
