package tk103

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
// fixes the Traccar corpus asserts, and the other layouts).
func TestPositions(t *testing.T) {
	tests := []struct {
		name, frame string
		ts          string
		valid       signal.Flag
		lat, lon    float64
	}{
		{"corpus seq 35", "(088047365460BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)", "2015-10-24T05:51:48Z", signal.True, -25.92255, 28.92222},
		{"corpus seq 52", "(352606090042050,BP05,240414,A,4527.3513N,00909.9758E,4.80,112825,155.49)", "2014-04-24T11:28:25Z", signal.True, 45.45586, 9.16626},
		{"login with imei", "(088047365460BP05354188047365460150929A3258.1754S02755.4323E009.4193927301.9000000000L00000000)", "2015-09-29T19:39:27Z", signal.True, -32.96959, 27.92387},
		{"15-digit id", "(357593060760397BP02,G,2,170304A6015.7466N01101.8460E001.609445591.048,7)", "2017-03-04T09:44:55Z", signal.True, 60.26244, 11.03077},
		{"11-digit id", "(01602009983BR00160830V1855.7022S4817.8731W000.0002729000.0010000000L00000000)", "2016-08-30T00:27:29Z", signal.False, -18.92837, -48.29789},
		{"degrees-less longitude", "(868822040452227,DW3B,150421,A,4154.51607N,45.78950E,0.050,103142,0.000,595.200,7,0)", "2021-04-15T10:31:42Z", signal.True, 41.90860, 0.76316},
		{"no fix", "(352606090042050,BP05,240414,V,0000.0000N,00000.0000E,000.0,193133,000.0)", "2014-04-24T19:31:33Z", signal.False, math.NaN(), math.NaN()},
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
		{"status and odometer", "(019358704260BR00180725A2300.0957N07235.2748E032.412092187.58001100166L000D9779)", func(t *testing.T, s signal.Signal) {
			if !near(s.Speed, 32.4) || !near(s.Heading, 87.58) || s.Odometer != 0xD9779/1000.0 {
				t.Errorf("speed %v heading %v odometer %v", s.Speed, s.Heading, s.Odometer)
			}
			want := map[string]any{"charge": true, "ignition": true, "in2": true, "fuel_level": int64(0x166), "command": "BR00"}
			for k, v := range want {
				if s.Attrs[k] != v {
					t.Errorf("attr %s = %#v, want %#v", k, s.Attrs[k], v)
				}
			}
		}},
		{"BO01 alarm", "(013666666666BO012110925A1234.5678N01234.5678W000.0025948118.7200000000L000024DE)", func(t *testing.T, s signal.Signal) {
			if s.Attrs["alarm"] != "sos" || s.TS.Format(time.RFC3339) != "2011-09-25T02:59:48Z" {
				t.Errorf("ts %v attrs %v", s.TS, s.Attrs)
			}
		}},
		{"BQ81 alarm", "(044027395704BQ81,ALARM,1,164,151101A2238.5237N11349.4571E0.7031241010.0000,00000000)", func(t *testing.T, s signal.Signal) {
			if s.Attrs["alarm"] != "overspeed" || !near(s.Speed, 0.703) || s.TS.Format(time.RFC3339) != "2015-11-01T12:41:01Z" {
				t.Errorf("ts %v speed %v attrs %v", s.TS, s.Speed, s.Attrs)
			}
		}},
		{"battery", "(013632651491,ZC20,040613,040137,6,421,112,0)", func(t *testing.T, s signal.Signal) {
			if s.TS.Format(time.RFC3339) != "2013-06-04T04:01:37Z" || s.Attrs["battery_level"] != int64(100) || s.Attrs["battery_v"] != 4.21 || !near(s.Voltage, 11.2) {
				t.Errorf("ts %v voltage %v attrs %v", s.TS, s.Voltage, s.Attrs)
			}
		}},
		{"battery unknown markers", "(864755555555555,ZC20,131117,223706,255,65535,65535,255)", func(t *testing.T, s signal.Signal) {
			if !math.IsNaN(s.Voltage) || s.Attrs["battery_v"] != nil || s.Attrs["battery_level"] != nil {
				t.Errorf("voltage %v attrs %v", s.Voltage, s.Attrs)
			}
		}},
		{"network, server time", "(087073104337BZ00,740,000,3bf7,0425,3bf7,0bf5)", func(t *testing.T, s signal.Signal) {
			if !s.TS.Equal(recv) || s.Attrs["time_source"] != "server" || s.Attrs["mcc"] != int64(740) || s.Attrs["lac"] != int64(0x3bf7) || s.Attrs["cid"] != int64(0x425) {
				t.Errorf("ts %v attrs %v", s.TS, s.Attrs)
			}
		}},
		{"command result with parentheses", "(864555555555555,ZC03,191117,234207,$Check interval is set to 240 minute(s).$)", func(t *testing.T, s signal.Signal) {
			if s.Attrs["result"] != "Check interval is set to 240 minute(s)." || s.TS.Format(time.RFC3339) != "2017-11-19T23:42:07Z" {
				t.Errorf("ts %v attrs %v", s.TS, s.Attrs)
			}
		}},
		{"wifi", "(013632651491,DW50,460,0,0,6,2,aa:bb:cc:dd:ee:ff*-8*0,aa:bb:cc:dd:ee:ff*-8*0,040613,040137)", func(t *testing.T, s signal.Signal) {
			if s.Attrs["wifi_count"] != int64(2) || s.Attrs["wifi"] != "aa:bb:cc:dd:ee:ff*-8*0,aa:bb:cc:dd:ee:ff*-8*0" || s.TS.Format(time.RFC3339) != "2013-06-04T04:01:37Z" {
				t.Errorf("ts %v attrs %v", s.TS, s.Attrs)
			}
		}},
		{"vin", "(027023361470BV005J6RW2H53HL066029)", func(t *testing.T, s signal.Signal) {
			if s.Attrs["vin"] != "5J6RW2H53HL066029" || !s.TS.Equal(recv) {
				t.Errorf("ts %v attrs %v", s.TS, s.Attrs)
			}
		}},
		{"comma-form alarm", "(864768011069660,ZC17,250517,A,3211.7118N,03452.8086E,0.68,115525,208.19,64.50,9)", func(t *testing.T, s signal.Signal) {
			if s.Attrs["alarm"] != "removing" || s.Attrs["extra"] != "64.50,9" || !near(s.Heading, 208.19) {
				t.Errorf("heading %v attrs %v", s.Heading, s.Attrs)
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
		{"(027044702512BP00027044702512HSO01A4)", "(027044702512AP01HSO)", 0},
		{"(013632782450BP05000013632782450120803V0000.0000N00000.0000E000.0174654000.0000000000L00000000)", "(013632782450AP05)", 1},
		{"(027045009305BP05355227045009305,{413,2,30073,16724},01000000)", "(027045009305AP05)", 1},
		{"(088047365460BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)", "", 1},
		{"(352606090042050,BP05,240414,A,4527.3513N,00909.9758E,4.80,112825,155.49)", "", 1},
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
		{"(088047365460BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3", plugins.ErrMalformed, "message"},
		{"(088047365460BR00151024A9555.3531S02855.3329E004.7055148276.1701000000L00009AA3)", plugins.ErrMalformed, "latitude"},
		{"(088047365460BR00151024A2555.3531S02855.3329X004.7055148276.1701000000L00009AA3)", plugins.ErrMalformed, "longitude"},
		{"(088047365460BR00151324A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)", plugins.ErrMalformed, "date"},
		{"(088047365460BR00151024A2555.3531S02855.3329E004.7995148276.1701000000L00009AA3)", plugins.ErrMalformed, "time of day"},
		{"(352606090042050,BP05,240414,A,4527.3513N,00909.9758E,fast,112825,155.49)", plugins.ErrMalformed, "speed"},
		{"(352606090042050,BP05,240414,A,4527.3513N,00909.9758E,4.80,112825,north)", plugins.ErrMalformed, "course"},
		{"(352606090042050,BP05,241314,A,4527.3513N,00909.9758E,4.80,112825,155.49)", plugins.ErrMalformed, "date"},
		{"(352606090042050,BP05,240414,X,4527.3513N,00909.9758E,4.80,112825,155.49)", plugins.ErrMalformed, "validity"},
		{"(013632651491,ZC20,040613,040137,6,4x1,112,0)", plugins.ErrMalformed, "battery voltage"},
		{"(087073104337BZ00,740,000,zz,0425)", plugins.ErrMalformed, "lac"},
		{"(027023361470BV005J6RW2H53HL0660)", plugins.ErrMalformed, "VIN"},
		{"(013632651491BO01)", plugins.ErrUnsupported, "BO01"},
		{"(027028258309BQ86,0,05550c21b10d1d0f431008bd114c0ea5078400010007a100423932,161117005322,01000001)", plugins.ErrUnsupported, "BQ86"},
		{"(hello)", plugins.ErrMalformed, "command"},
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
		if _, err := s.Decode([]byte("(027044702512BP00027044702512HSO01A4)"), recv); !errors.Is(err, plugins.ErrUnauthorized) {
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
		{"(864755555555555,ZC20,131117,223706,6,394,65535,255)(8647", 52, nil},
		{"(86475555555,ZC03,191117,234421,$)Notice: 1)$)(864", 46, nil},
		{"(86475555555,ZC03,191117,234421,$)Notice: 1))(864", 0, nil},
		{"\r\n(", 2, nil},
		{"(027044702512BP00", 0, nil},
		{"garbage(", 0, plugins.ErrMalformed},
		{"(" + strings.Repeat("1", 5000), 0, plugins.ErrTooLarge},
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
	frame := []byte("(027023361470BV005J6RW2H53HL066029)")
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
		plugintest.GoldenCase{In: "traccar.txt", Golden: "traccar.golden.jsonl", Hex: false, OK: 41, Bad: 4},
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
		{"BR00", "(088047365460BR00151024A2555.3531S02855.3329E004.7055148276.1701000000L00009AA3)"},
		{"comma", "(864768010869060,DW30,050117,A,5135.82713N,00001.17918E,0.089,154745,000.0,43.40,12)"},
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
