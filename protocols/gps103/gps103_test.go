package gps103

import (
	"bufio"
	"encoding/hex"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
	"github.com/fleetcore/fleetcore/signal"
)

var update = flag.Bool("update", false, "rewrite golden files")

var recv = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newSession(dec *Decoder, allow func(string) bool) *Session {
	return dec.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096, AllowDevice: allow, Logger: hclog.NewNullLogger()}).(*Session)
}

func decode(t *testing.T, frame string) plugins.Result {
	t.Helper()
	res, err := newSession(&Decoder{}, nil).Decode([]byte(frame), recv)
	if err != nil {
		t.Fatalf("Decode(%q): %v", frame, err)
	}
	if err := plugins.CheckSignals(res.Signals); err != nil {
		t.Fatalf("Decode(%q): %v", frame, err)
	}
	return res
}

func one(t *testing.T, frame string) signal.Signal {
	t.Helper()
	res := decode(t, frame)
	if len(res.Signals) != 1 {
		t.Fatalf("Decode(%q): %d signals, want 1", frame, len(res.Signals))
	}
	return res.Signals[0]
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-5 }

// TestPositions checks fix time, validity and coordinates (the two exact
// fixes the Traccar corpus asserts, and the time-zone and hemisphere
// variants).
func TestPositions(t *testing.T) {
	tests := []struct {
		name, frame string
		ts          string
		valid       signal.Flag
		lat, lon    float64
	}{
		{"corpus seq 43", "imei:359710045559474,tracker,151030080103,,F,000101.000,A,5443.3834,N,02512.9071,E,0.00,0;", "2015-10-30T00:01:01Z", signal.True, 54.72306, 25.21512},
		{"corpus seq 45", "imei:865328021058861,tracker,151027041419,,F,011531.000,A,6020.2979,N,02506.1940,E,0.49,113.30,,0,0,0.0%,,;", "2015-10-27T01:15:31Z", signal.True, 60.3383, 25.10323},
		{"zone ahead of UTC across midnight", "imei:359769031878322,tracker,1602160718,2,F,221811.000,A,1655.2193,S,14546.6722,E,0.00,,", "2016-02-15T22:18:11Z", signal.True, -16.92032, 145.77787},
		{"zone behind UTC", "imei:864035050002451,tracker,201223064947,,F,064947,A,1935.70640,N,09859.94436,W,0.025,;", "2020-12-23T06:49:47Z", signal.True, 19.59511, -98.99907},
		{"hemisphere first", "imei:353552045403597,tracker,150420050648,53.0,F,0.0,A,N,5306.64155,E,00700.77848,0.0,,1.0,;", "2015-04-20T05:06:48Z", signal.True, 53.11069, 7.01297},
		{"no fix", "imei:359587016817564,tracker,1301251602,,F,080251.000,V,0000.0000,N,00000.0000,E,0.00,", "2013-01-25T08:02:51Z", signal.False, math.NaN(), math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := one(t, tt.frame)
			if got := s.TS.Format(time.RFC3339); got != tt.ts {
				t.Errorf("ts = %s, want %s", got, tt.ts)
			}
			same := func(a, b float64) bool { return near(a, b) || (math.IsNaN(a) && math.IsNaN(b)) }
			if s.Valid != tt.valid || !same(s.Lat, tt.lat) || !same(s.Lon, tt.lon) {
				t.Errorf("valid, lat, lon = %v, %v, %v; want %v, %v, %v", s.Valid, s.Lat, s.Lon, tt.valid, tt.lat, tt.lon)
			}
			if s.DeviceID == "" || s.Protocol != Name || !s.Recv.Equal(recv) {
				t.Errorf("device %q protocol %q recv %v", s.DeviceID, s.Protocol, s.Recv)
			}
		})
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		name, frame string
		check       func(t *testing.T, s signal.Signal)
	}{
		{"speed course altitude and tail", "imei:353451044508750,001,0809231929,13554900601,F,055403.000,A,2233.1870,N,11354.3067,E,10.00,30.1,65.43,1,0,10.5%,0.0%,28;", func(t *testing.T, s signal.Signal) {
			if !near(s.Speed, 18.52) || !near(s.Heading, 30.1) || !near(s.Alt, 65.43) {
				t.Errorf("speed, heading, alt = %v, %v, %v", s.Speed, s.Heading, s.Alt)
			}
			want := map[string]any{"ignition": true, "door": false, "fuel1": 10.5, "fuel2": 0.0, "temp1": int64(28), "event": "001"}
			for k, v := range want {
				if s.Attrs[k] != v {
					t.Errorf("attr %s = %#v, want %#v", k, s.Attrs[k], v)
				}
			}
		}},
		{"temperature event", "imei:868683026321020,T:+11,181217080050,,F,080047.000,A,3227.3057,N,11649.4754,W,0.00,0,,0,0,0.00%,,+11;", func(t *testing.T, s signal.Signal) {
			if s.Attrs["alarm"] != "temperature" || s.Attrs["temp1"] != int64(11) {
				t.Errorf("attrs %v", s.Attrs)
			}
		}},
		{"DTC record", "imei:353451044508750,DTC,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,30.1,,1,0,10.5%,P0021,;", func(t *testing.T, s signal.Signal) {
			if len(s.DTCs) != 1 || s.DTCs[0] != "P0021" || s.Attrs["alarm"] != "fault" {
				t.Errorf("dtcs %v attrs %v", s.DTCs, s.Attrs)
			}
		}},
		{"oil sensor layout kept raw", "imei:353451044508750,oil1,0809231929,,F,055403.000,A,2233.1870,N,11354.3067,E,0.00,,,,51.6,41.7,;", func(t *testing.T, s signal.Signal) {
			if s.Attrs["extra"] != ",51.6,41.7," || s.Attrs["alarm"] != "fuel_leak" {
				t.Errorf("attrs %v", s.Attrs)
			}
		}},
		{"OBD report", "imei:359710048977327,OBD,180301094003,5000000,0.00,7.50,98,18,68.63%,55,25.10%,1368,14.24,P0301 U1108,,,;", func(t *testing.T, s signal.Signal) {
			if s.TS.Format(time.RFC3339) != "2018-03-01T09:40:03Z" {
				t.Errorf("ts %v", s.TS)
			}
			if s.RPM != 1368 || s.Speed != 18 || s.Coolant != 55 || !near(s.EngineLoad, 68.63) || !near(s.Throttle, 25.1) || !near(s.Voltage, 14.24) || s.Odometer != 5000 {
				t.Errorf("rpm %v speed %v coolant %v load %v throttle %v voltage %v odometer %v", s.RPM, s.Speed, s.Coolant, s.EngineLoad, s.Throttle, s.Voltage, s.Odometer)
			}
			if len(s.DTCs) != 2 || s.DTCs[0] != "P0301" || s.DTCs[1] != "U1108" {
				t.Errorf("dtcs %v", s.DTCs)
			}
			if s.Attrs["engine_hours"] != 98.0 || s.Attrs["fuel_consumption"] != 7.5 {
				t.Errorf("attrs %v", s.Attrs)
			}
		}},
		{"OBD without coolant", "imei:862106025092216,OBD,170612165656,196043,,145803.9,,000,0.0%,+,0.0%,00000,12.6,,,,;", func(t *testing.T, s signal.Signal) {
			if !math.IsNaN(s.Coolant) || s.RPM != 0 {
				t.Errorf("coolant %v rpm %v", s.Coolant, s.RPM)
			}
		}},
		{"cell record, server time", "imei:359710049075097,help me,,,L,,,113b,,558f,,,,,0,0,,,", func(t *testing.T, s signal.Signal) {
			if !s.TS.Equal(recv) || s.Attrs["time_source"] != "server" || s.Attrs["lac"] != int64(0x113b) || s.Attrs["cid"] != int64(0x558f) || s.Attrs["alarm"] != "sos" {
				t.Errorf("ts %v attrs %v", s.TS, s.Attrs)
			}
			if !math.IsNaN(s.Lat) {
				t.Errorf("lat %v", s.Lat)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, one(t, tt.frame)) })
	}
}

func TestAcks(t *testing.T) {
	tests := []struct {
		frame, ack string
		signals    int
	}{
		{"##,imei:359586015829802,A;", "LOAD", 0},
		{"359586015829802;", "ON", 0},
		{"imei:359586015829802,tracker,1302110948,,F,144807.000,A,0805.6615,S,07859.9763,W,0.00,,;", "", 1},
		{"imei:100000000000000,help me,1004171910,,F,010203.000,A,0102.0003,N,00102.0003,E,1.02,;", "**,imei:100000000000000,E;", 1},
		{"359769031878322imei:359769031878322,tracker,1602160718,2,F,221811.000,A,1655.2193,S,14546.6722,E,0.00,,;", "ON", 1},
	}
	for _, tt := range tests {
		t.Run(tt.frame, func(t *testing.T) {
			res := decode(t, tt.frame)
			if string(res.Ack) != tt.ack || len(res.Signals) != tt.signals || res.DeviceID == "" {
				t.Errorf("ack %q, %d signals, device %q; want %q, %d", res.Ack, len(res.Signals), res.DeviceID, tt.ack, tt.signals)
			}
		})
	}
}

// TestRejections: a field that is present but does not parse makes the
// frame ErrMalformed with the field named.
func TestRejections(t *testing.T) {
	tests := []struct {
		frame string
		want  error
		field string
	}{
		{"imei:359586015829802,tracker,1302110948,,F,144807.000,A,08x5.6615,S,07859.9763,W,0.00,,;", plugins.ErrMalformed, "latitude"},
		{"imei:359586015829802,tracker,1302110948,,F,144807.000,A,9505.6615,S,07859.9763,W,0.00,,;", plugins.ErrMalformed, "latitude"},
		{"imei:359586015829802,tracker,1302110948,,F,144807.000,A,0805.6615,S,07859.9763,W,fast,,;", plugins.ErrMalformed, "speed"},
		{"imei:359586015829802,tracker,1302110948,,F,144807.000,A,0805.6615,S,07859.9763,W,0.00,NaN,;", plugins.ErrMalformed, "course"},
		{"imei:359586015829802,tracker,1313110948,,F,144807.000,A,0805.6615,S,07859.9763,W,0.00,,;", plugins.ErrMalformed, "local time"},
		{"imei:359586015829802,tracker,99,,F,144807.000,A,0805.6615,S,07859.9763,W,0.00,,;", plugins.ErrMalformed, "local time"},
		{"imei:359586015829802,tracker,1302110948,,F,144807.000,X,0805.6615,S,07859.9763,W,0.00,,;", plugins.ErrMalformed, "validity"},
		{"imei:359586015829802,tracker,1302110948,,Q,;", plugins.ErrMalformed, "fix field"},
		{"imei:35958601582980X,tracker,1302110948,,F,144807.000,A,0805.6615,S,07859.9763,W,0.00,,;", plugins.ErrMalformed, "imei"},
		{"imei:359710048977327,OBD,180301094003,5000000,0.00,0.00,98,18,68.63%,55,25.10%,?,14.24,,,,;", plugins.ErrMalformed, "rpm"},
		{"imei:359710048977327,OBD,1803010940,5000000,0.00,0.00,98,18,68.63%,55,25.10%,1,14.24,,,,;", plugins.ErrMalformed, "OBD time"},
		{"imei:359710049075097,help me,,,L,,,11zb,,558f,,,", plugins.ErrMalformed, "lac"},
		{"imei:359586015829802,vr1,0123456789abcdef;", plugins.ErrUnsupported, "photo"},
		{"imei:359586015829802,tracker,1302110948,,F,144807.000,A,0805.6615,S,07859.9763,W,0.00,,*", plugins.ErrUnsupported, "form"},
		{"hello;", plugins.ErrMalformed, "imei"},
	}
	for _, tt := range tests {
		t.Run(tt.frame, func(t *testing.T) {
			res, err := newSession(&Decoder{}, nil).Decode([]byte(tt.frame), recv)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.field) || len(res.Signals) > 0 {
				t.Errorf("err %v, %d signals; want %v naming %q", err, len(res.Signals), tt.want, tt.field)
			}
			if err != nil && strings.Count(err.Error(), "decoding") != 1 {
				t.Errorf("error %q: want one -ing prefix", err)
			}
		})
	}
	t.Run("not allowed", func(t *testing.T) {
		s := newSession(&Decoder{}, func(id string) bool { return id == "1" })
		if _, err := s.Decode([]byte("##,imei:359586015829802,A;"), recv); !errors.Is(err, plugins.ErrUnauthorized) {
			t.Errorf("err %v, want ErrUnauthorized", err)
		}
	})
}

func TestFrame(t *testing.T) {
	s := newSession(&Decoder{}, nil)
	tests := []struct {
		in   string
		n    int
		want error
	}{
		{"##,imei:359586015829802,A;359586015829802;", 26, nil},
		{"359586015829802;", 16, nil},
		{"imei:359586015829802,tracker,1302110948,,L,;\r\n", 44, nil},
		{"\r\nimei:", 2, nil},
		{"imei:359586015829802,tracker", 0, nil},
		{"imei:123451234512345,L,*imei:", 24, nil},
		{"imei:1,tracker\n", 15, nil},
		{"xyz;", 0, plugins.ErrMalformed},
		{"imei:" + strings.Repeat("1", 5000), 0, plugins.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 30)], func(t *testing.T) {
			n, err := s.Frame([]byte(tt.in))
			if n != tt.n || !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Frame = %d, %v; want %d, %v", n, err, tt.n, tt.want)
			}
		})
	}
}

// TestServerTimedResend: a record without device time, resent on a new
// connection within the window, keeps its timestamp and key.
func TestServerTimedResend(t *testing.T) {
	dec := &Decoder{}
	frame := []byte("imei:359710049075097,help me,,,L,,,113b,,558f,,,,,0,0,,,;")
	a, err := newSession(dec, nil).Decode(frame, recv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newSession(dec, nil).Decode(frame, recv.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a.Signals[0].Key() != b.Signals[0].Key() {
		t.Errorf("keys differ: %v, %v", a.Signals[0].Key(), b.Signals[0].Key())
	}
	c, err := newSession(dec, nil).Decode(frame, recv.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c.Signals[0].TS.Equal(a.Signals[0].TS) {
		t.Errorf("a copy after the window kept the first time %v", a.Signals[0].TS)
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, &Decoder{}, recv, *update,
		plugintest.GoldenCase{In: "traccar.txt", Golden: "traccar.golden.jsonl", Hex: false, OK: 55, Bad: 0},
		plugintest.GoldenCase{In: "conversation/input.hex", Golden: "conversation/expected.jsonl", Hex: true, OK: 4, Bad: 0},
	)
}

// conversation reads testdata/conversation/input.hex.
func conversation(t testing.TB) [][]byte {
	f, err := os.Open(filepath.Join("testdata", "conversation", "input.hex"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var frames [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
	}
	return frames
}

func TestConformance(t *testing.T) {
	frames := conversation(t)
	t.Run("tcp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: frames})
	})
	t.Run("udp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Transport: plugins.UDP, Frames: frames})
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct{ name, frame string }{
		{"tracker", "imei:359710049090138,tracker,160629022948,,F,182949.000,A,4043.8839,N,11328.8029,W,65.26,271.82,,1,0,31.37%,51442,;"},
		{"obd", "imei:359710049090138,OBD,160629022949,51442,0.00,15.88,5632,122,40.39%,95,0.00%,2101,13.80,,,,;"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := newSession(&Decoder{}, nil)
			frame := []byte(c.frame)
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, err := s.Decode(frame, recv); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
