package rules_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/checks-wasm/rules"
	"github.com/fleetcore/fleetcore/checks-wasm/sdk"
	"github.com/fleetcore/fleetcore/plugins/wasmrule"
)

const week = 7 * 24 * time.Hour

var tables = map[string][]ruleCase{
	"gps.range": {
		{"lat 45 lon 120", sig(0, "lat", 45.0, "lon", 120.0), nil, pass},
		{"lat 90", sig(0, "lat", 90.0, "lon", 0.0), nil, pass},
		{"lat 90.0001", sig(0, "lat", 90.0001, "lon", 0.0), nil, fail(1)},
		{"lat -90.0001", sig(0, "lat", -90.0001, "lon", 0.0), nil, fail(1)},
		{"lon 180", sig(0, "lat", 0.0, "lon", 180.0), nil, pass},
		{"lon -180", sig(0, "lat", 0.0, "lon", -180.0), nil, pass},
		{"lon 180.0001", sig(0, "lat", 0.0, "lon", 180.0001), nil, fail(2)},
		{"lat 100 is not judged by the lon bound", sig(0, "lat", 100.0, "lon", 0.0), nil, fail(1)},
		{"lon 150 is not judged by the lat bound", sig(0, "lat", 10.0, "lon", 150.0), nil, pass},
		{"both out: latitude first", sig(0, "lat", 91.0, "lon", 181.0), nil, fail(1)},
		{"infinite lat", sig(0, "lat", math.Inf(1), "lon", 0.0), nil, fail(1)}, // non-finite is outside
		{"only lon", sig(0, "lon", 200.0), nil, fail(2)},
		{"absent", sig(0), nil, na},
	},
	"gps.zero_island": {
		{"null island", sig(0, "lat", 0.0, "lon", 0.0), nil, fail(1)},
		{"near", sig(0, "lat", -0.00005, "lon", 0.00005), nil, fail(1)},
		{"gulf of guinea", sig(0, "lat", 0.5, "lon", 0.5), nil, pass},
		{"greenwich", sig(0, "lat", 51.4779, "lon", 0.0), nil, pass},
		{"lat only", sig(0, "lat", 0.0), nil, na},
	},
	"time.future": {
		{"now", sig(0), nil, pass},
		{"4 min ahead", sig(240), nil, pass},
		{"5 min ahead", sig(300), nil, pass},
		{"5 min 1 ms ahead", sig(300.001), nil, fail(1)},
		{"a year ahead", sig(365 * 86400), nil, fail(1)},
		{"in the past", sig(-3600), nil, pass},
		{"no ts", sig(0, "ts", time.Time{}), nil, na},
	},
	"time.stale": {
		{"fresh", sig(-10), nil, pass},
		{"29 days", sig(-29 * 86400), nil, pass},
		{"31 days", sig(-31 * 86400), nil, warn(2)},
		{"exactly 1024 weeks", sig(0, "ts", now.Add(-1024*week)), nil, fail(1)},
		{"1024 weeks minus 10 days", sig(0, "ts", now.Add(-1024*week+10*24*time.Hour)), nil, fail(1)},
		{"1024 weeks = 619315200 s", sig(-619315200), nil, fail(1)},
		{"year 1999", sig(0, "ts", time.Date(1999, 8, 22, 0, 0, 0, 0, time.UTC)), nil, fail(3)},
		{"future", sig(3600), nil, pass},
		{"no ts", sig(0, "ts", time.Time{}), nil, na},
	},
	"gps.teleport": {
		{"first fix", sig(0, "lat", 45.0, "lon", 7.0), nil, na},
		{"city driving", sig(10, "lat", 45.001, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"motorway 130 km/h", sig(60, "lat", 45.0195, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"100 km in 10 min", sig(600, "lat", 45.9, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), fail(1)},
		{"across the globe", sig(3600, "lat", -33.9, "lon", 151.2), p(sig(0, "lat", 48.8, "lon", 2.3)), fail(1)},
		{"jitter at high rate", sig(0.1, "lat", 45.0015, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"same time, 5 km apart", sig(0, "lat", 45.045, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), fail(2)},
		{"prev without position", sig(10, "lat", 45.0, "lon", 7.0), p(sig(0)), na},
		{"correct fix after (0,0)", sig(5, "lat", 45.0, "lon", 7.0, "sats", 9.0), p(sig(0, "lat", 0.0, "lon", 0.0)), na},
		{"(0,0) after a fix", sig(5, "lat", 0.0, "lon", 0.0, "sats", 0.0), p(sig(0, "lat", 45.0, "lon", 7.0)), na},
		{"jump from one satellite", sig(600, "lat", 45.9, "lon", 7.0, "sats", 1.0), p(sig(0, "lat", 45.0, "lon", 7.0)), na},
		{"jump with nine satellites", sig(600, "lat", 45.9, "lon", 7.0, "sats", 9.0), p(sig(0, "lat", 45.0, "lon", 7.0)), fail(1)},
	},
	"gps.speed_consistency": {
		// 0.001° of latitude is 111.2 m: in 5 s that is 80 km/h.
		{"consistent", sig(5, "lat", 45.001, "lon", 7.0, "speed", 75.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"standing", sig(5, "lat", 45.0, "lon", 7.0, "speed", 0.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"braking to a stop", sig(5, "lat", 45.0002, "lon", 7.0, "speed", 0.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"frozen at 60 km/h", sig(5, "lat", 45.0, "lon", 7.0, "speed", 60.0), p(sig(0, "lat", 45.0, "lon", 7.0)), fail(1)},
		{"speed 0 at 80 km/h", sig(5, "lat", 45.001, "lon", 7.0, "speed", 0.0), p(sig(0, "lat", 45.0, "lon", 7.0)), fail(2)},
		{"spike to 240", sig(5, "lat", 45.001, "lon", 7.0, "speed", 240.0), p(sig(0, "lat", 45.0, "lon", 7.0)), fail(3)},
		{"motorway, a little off", sig(5, "lat", 45.0017, "lon", 7.0, "speed", 110.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"teleport: not this rule's", sig(5, "lat", 46.0, "lon", 7.0, "speed", 60.0), p(sig(0, "lat", 45.0, "lon", 7.0)), na},
		{"a minute and more", sig(61, "lat", 45.0, "lon", 7.0, "speed", 60.0), p(sig(0, "lat", 45.0, "lon", 7.0)), na},
		{"one satellite", sig(5, "lat", 45.0, "lon", 7.0, "speed", 60.0, "sats", 1.0), p(sig(0, "lat", 45.0, "lon", 7.0)), na},
		{"after (0,0)", sig(5, "lat", 45.0, "lon", 7.0, "speed", 60.0), p(sig(0, "lat", 0.0, "lon", 0.0)), na},
		{"first fix", sig(0, "lat", 45.0, "lon", 7.0, "speed", 60.0), nil, na},
	},
	"time.gap": {
		{"5 s later", sig(5, "lat", 45.001, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"10 min, 11 km on", sig(600, "lat", 45.1, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), warn(1)},
		{"10 min, parked", sig(600, "lat", 45.0, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"4 min, 5 km on", sig(240, "lat", 45.045, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"overnight", sig(36000, "lat", 45.1, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), na},
		{"first record", sig(0, "lat", 45.0, "lon", 7.0), nil, na},
	},
	"gps.poor_fix": {
		{"good", sig(0, "sats", 10.0, "hdop", 0.8), nil, pass},
		{"no sats", sig(0, "sats", 0.0, "hdop", 0.8), nil, fail(1)},
		{"3 sats", sig(0, "sats", 3.0, "hdop", 1.5), nil, warn(3)},
		{"4 sats", sig(0, "sats", 4.0), nil, pass},
		{"hdop 25", sig(0, "sats", 9.0, "hdop", 25.0), nil, fail(2)},
		{"hdop 6", sig(0, "sats", 9.0, "hdop", 6.0), nil, warn(4)},
		{"2 sats beats hdop", sig(0, "sats", 2.0, "hdop", 30.0), nil, fail(1)},
		{"hdop 30 beats 3 sats", sig(0, "sats", 3.0, "hdop", 30.0), nil, fail(2)},
		{"absent", sig(0), nil, na},
	},
	"obd.plausibility": {
		{"driving", sig(0, "rpm", 2200.0, "coolant", 92.0, "voltage", 14.2, "ignition", true), nil, pass},
		{"parked", sig(0, "rpm", 0.0, "voltage", 12.4, "ignition", false), nil, pass},
		{"rpm with ignition off", sig(0, "rpm", 800.0, "ignition", false), nil, warn(4)},
		{"rpm with ignition as 0", sig(0, "rpm", 800.0, "ignition", int64(0)), nil, warn(4)},
		{"rpm, ignition unknown", sig(0, "rpm", 800.0), nil, pass},
		{"rpm 16383.75 (OBD max)", sig(0, "rpm", 16383.75), nil, fail(1)},
		{"coolant -41", sig(0, "coolant", -41.0), nil, fail(2)},
		{"coolant 150", sig(0, "coolant", 150.0), nil, pass},
		{"voltage 0", sig(0, "voltage", 0.0), nil, fail(3)},
		{"voltage 32", sig(0, "voltage", 32.0), nil, pass},
		{"voltage 32.1", sig(0, "voltage", 32.1), nil, fail(3)},
		{"envelope beats ignition", sig(0, "rpm", 12000.0, "ignition", false), nil, fail(1)},
		{"no OBD values", sig(0, "lat", 1.0, "ignition", true), nil, na},
	},
	"odometer.backwards": {
		{"forward", sig(0, "odometer", 12345.6), p(sig(-60, "odometer", 12344.0)), pass},
		{"0.1 km back (rounding)", sig(0, "odometer", 12343.9), p(sig(-60, "odometer", 12344.0)), pass},
		{"0.2 km back", sig(0, "odometer", 12343.8), p(sig(-60, "odometer", 12344.0)), fail(1)},
		{"reset to 0", sig(0, "odometer", 0.0), p(sig(-60, "odometer", 12344.0)), fail(1)},
		{"no previous", sig(0, "odometer", 5.0), nil, na},
		{"previous without odometer", sig(0, "odometer", 5.0), p(sig(-60)), na},
	},
	"dup.burst": {
		{"next record", sig(1, "lat", 45.0, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), pass},
		{"same time and place", sig(0, "lat", 45.0, "lon", 7.0, "speed", 3.0), p(sig(0, "lat", 45.0, "lon", 7.0)), warn(1)},
		{"same time, no position", sig(0, "rpm", 900.0), p(sig(0, "rpm", 800.0)), warn(1)},
		{"same time, other place", sig(0, "lat", 45.01, "lon", 7.0), p(sig(0, "lat", 45.0, "lon", 7.0)), fail(2)},
		{"same time, position only on one", sig(0, "lat", 45.0, "lon", 7.0), p(sig(0)), fail(2)},
		{"first record", sig(0, "lat", 45.0, "lon", 7.0), nil, na},
	},
}

// TestBuiltinRuleTables runs each rule's table as one batch through the
// host on the compiled module and natively, and compares both with the
// expected verdicts.
func TestBuiltinRuleTables(t *testing.T) {
	for _, br := range rules.All() {
		name := br.Meta.Name
		cases, ok := tables[name]
		if !ok {
			t.Errorf("no table for %s", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			r := load(t, name)
			in := make([]wasmrule.Input, len(cases))
			for i, c := range cases {
				in[i] = wasmrule.Input{Signal: c.sig, Prev: c.prev, Now: now}
			}
			got, err := r.Check(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range cases {
				if got[i] != c.want {
					t.Errorf("%s: wasm %+v, want %+v", c.name, got[i], c.want)
				}
				nv := br.Check(toSDK(in[i]))
				if nv.Status != sdk.Status(c.want.Status) || nv.Reason != c.want.Reason {
					t.Errorf("%s: native %+v, want %+v", c.name, nv, c.want)
				}
			}
		})
	}
}

// TestGPSRangeWorkedExample is the ABI.md example end to end.
func TestGPSRangeWorkedExample(t *testing.T) {
	r := load(t, "gps.range")
	a, b := sig(0, "lat", 45.0, "lon", 120.0), sig(0, "lat", 90.0001, "lon", 0.0)
	got, err := r.Check(context.Background(), []wasmrule.Input{{Signal: a, Now: now}, {Signal: b, Now: now}})
	if err != nil || got[0] != pass || got[1] != fail(1) {
		t.Fatalf("got %v, %v", got, err)
	}
}

// TestLargeBatch: a batch larger than the host's batch size and larger
// than the SDK's first buffer.
func TestLargeBatch(t *testing.T) {
	r := load(t, "gps.range")
	in := make([]wasmrule.Input, 5000)
	for i := range in {
		in[i] = wasmrule.Input{Signal: sig(float64(i), "lat", float64(i%200)-100, "lon", 0.0), Now: now}
	}
	got, err := r.Check(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		lat := float64(i%200) - 100
		want := pass
		if lat < -90 || lat > 90 {
			want = fail(1)
		}
		if v != want {
			t.Fatalf("signal %d (lat %v): %+v", i, lat, v)
		}
	}
}

// TestMetaJSONIsValid: the SDK's hand-written JSON parses in the host for
// every built-in rule, without building.
func TestMetaJSONIsValid(t *testing.T) {
	for _, br := range rules.All() {
		if _, err := wasmrule.ParseMeta([]byte(br.Meta.JSON())); err != nil {
			t.Errorf("%s: %v\n%s", br.Meta.Name, err, br.Meta.JSON())
		}
	}
}
