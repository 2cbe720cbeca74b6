package h02

import (
	"bufio"
	"bytes"
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

func newSession(opts map[string]string) *Session {
	return (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096, Options: plugins.MustDecodeOptions(&Decoder{}, opts), Logger: hclog.NewNullLogger()}).(*Session)
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeOne(t *testing.T, frame []byte) signal.Signal {
	t.Helper()
	res, err := newSession(nil).Decode(frame, recv)
	if err != nil {
		t.Fatalf("Decode(%q): %v", frame, err)
	}
	if len(res.Signals) != 1 {
		t.Fatalf("Decode(%q): %d signals", frame, len(res.Signals))
	}
	return res.Signals[0]
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-5 }

// TestCorpusExpectations checks every value the Traccar corpus asserts for
// H02 (fix time, validity, coordinates within 1e-5°, attributes).
func TestCorpusExpectations(t *testing.T) {
	tests := []struct {
		name     string
		frame    []byte
		ts       string
		valid    signal.Flag
		lat, lon float64
	}{
		{"V8", []byte("*HQ,9001000002,V8,213945,A,3542.2043,N,38.6508,W,0.00,170,221025,FBFFF9FF,0,0,0,0,22,31,126,0#"), "2025-10-22T21:39:45Z", signal.True, 35.7034, -0.64418},
		{"V1", []byte("*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#"), "2015-12-22T16:45:49Z", signal.True, 9.93978, -84.11178},
		{"empty validity", []byte("*HQ,355488020119695,V1,050418,,2827.61232,N,07703.84822,E,0.00,0,031015,FFFEFBFF#"), "2015-10-03T05:04:18Z", signal.False, 28.46021, 77.06414},
		{"negative degrees form", []byte("*HQ,1451316409,V1,030149,A,-23-29.0095,S,-46-51.5852,W,2.4,065,070315,FFFFFFFF#"), "2015-03-07T03:01:49Z", signal.True, -23.48349, -46.85975},
		{"binary 45", unhex(t, "24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f"), "2015-08-31T21:53:21Z", signal.True, 4.69898, -74.06971},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := decodeOne(t, tt.frame)
			if got := s.TS.Format(time.RFC3339); got != tt.ts {
				t.Errorf("ts = %s, want %s", got, tt.ts)
			}
			if s.Valid != tt.valid || !near(s.Lat, tt.lat) || !near(s.Lon, tt.lon) {
				t.Errorf("valid, lat, lon = %v, %v, %v; want %v, %v, %v", s.Valid, s.Lat, s.Lon, tt.valid, tt.lat, tt.lon)
			}
		})
	}
	attrs := []struct {
		frame []byte
		key   string
		want  any
	}{
		{[]byte("*HQ,135790246811220,HTBT,100#"), "battery_level", int64(100)},
		{[]byte("*HQ,2705171109,V1,213324,A,5002.5849,N,01433.7822,E,0.00,000,140613,FFFFFFFF#"), "status", int64(4294967295)},
		{unhex(t, "2441091144271222470112142233983006114026520e000000fffffbffff0014060000000001cc00262b0f170a"), "status", int64(4294966271)},
		{[]byte("*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#"), "status", int64(4294966271)},
		{[]byte("*HQ,5226073533,SMS,ST906(70SACD)_TQ_V_2.0 2024/06/07\nID:5226073533\nIP:1.2.3.4 5013\nUT:30,30,300\nVOLT:12.9V\nAPN:internet.example.com\nGPS:A-24-23\nGSM:26#"),
			"result", "ST906(70SACD)_TQ_V_2.0 2024/06/07\nID:5226073533\nIP:1.2.3.4 5013\nUT:30,30,300\nVOLT:12.9V\nAPN:internet.example.com\nGPS:A-24-23\nGSM:26"},
	}
	for _, tt := range attrs {
		t.Run(tt.key, func(t *testing.T) {
			if got := decodeOne(t, tt.frame).Attrs[tt.key]; got != tt.want {
				t.Errorf("attr %s = %#v, want %#v", tt.key, got, tt.want)
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	// Values worked out by hand from the frames.
	t.Run("binary short", func(t *testing.T) {
		// $ 4106011660 | 124543 | 131116 | 5035 3130 | bat 06 | 00431 8210 e | speed 000, course 000 | status fffffbff | ff0024
		s := decodeOne(t, unhex(t, "2441060116601245431311165035313006004318210e000000fffffbffff0024"))
		if s.DeviceID != "4106011660" || s.TS != time.Date(2016, 11, 13, 12, 45, 43, 0, time.UTC) ||
			!near(s.Lat, 50+35.3130/60) || !near(s.Lon, 4+31.8210/60) || s.Speed != 0 || s.Heading != 0 || s.Valid != signal.True {
			t.Errorf("signal = %+v", s)
		}
		if s.Attrs["battery_level"] != int64(100) || s.Attrs["extra"] != "ff0024" || s.Attrs["ignition"] != false {
			t.Errorf("attrs = %v", s.Attrs)
		}
	})
	t.Run("binary long id, speed in knots", func(t *testing.T) {
		s := decodeOne(t, unhex(t, "2435248308419329301047591808172627335900074412294e024138feffffffff01120064ba73005ecc"))
		if s.DeviceID != "352483084193293" || !near(s.Speed, 24*1.852) || s.Heading != 138 || !near(s.Lat, 26+27.3359/60) || !near(s.Lon, 74+41.2294/60) {
			t.Errorf("signal = %+v", s)
		}
	})
	t.Run("odometer tail", func(t *testing.T) {
		s := decodeOne(t, []byte("*HQ,2130510938,V1,012632,A,0520.0663,N,10028.6324,E,0.286,023,100317,FFFFDFFF,69129336,0,100.0,18,5141,5A20#"))
		if s.Odometer != 69129.336 || s.Alt != 18 || s.Attrs["lac"] != int64(0x5141) || s.Attrs["cid"] != int64(0x5A20) || s.Attrs["fuel_level"] != 100.0 {
			t.Errorf("signal = %+v", s)
		}
	})
	t.Run("V4 command response", func(t *testing.T) {
		s := decodeOne(t, []byte("*TH,2020916012,V4,S1,OK,pass_word,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFD#"))
		if s.Attrs["result"] != "S1,OK,pass_word,130305" || s.TS != time.Date(2002, 9, 22, 5, 3, 16, 0, time.UTC) || s.Attrs["alarm"] != "sos" {
			t.Errorf("signal = %+v", s)
		}
	})
	t.Run("battery before date", func(t *testing.T) {
		s := decodeOne(t, []byte("*HQ,4210209006,V1,054048,A,2828.2297,N,07733.4332,E,000.5,047,4,080918,EEE7FBDF,4261193,0#"))
		if s.Attrs["battery_level"] != int64(4) || s.TS != time.Date(2018, 9, 8, 5, 40, 48, 0, time.UTC) || s.Attrs["io1"] != "4261193" {
			t.Errorf("signal = %+v", s)
		}
	})
	t.Run("NBR cells", func(t *testing.T) {
		s := decodeOne(t, []byte("*HQ,7401004662,NBR,160453,234,10,0,2,21580,27766,-67,21580,27766,-67,291019,FFFFFBFF,6#"))
		if s.Attrs["mcc"] != int64(234) || s.Attrs["mnc"] != int64(10) || s.Attrs["cells"] != `[{"lac":21580,"cid":27766,"rssi":-67},{"lac":21580,"cid":27766,"rssi":-67}]` {
			t.Errorf("attrs = %v", s.Attrs)
		}
	})
	t.Run("NBR with seconds past 59 keeps data at receive time", func(t *testing.T) {
		s := decodeOne(t, []byte("*HQ,1400046168,NBR,160169,460,0,1,4,9338,3692,150,9338,3691,145,9338,3690,140,9338,3692,139,180813,FFFFFBFF#"))
		if !s.TS.Equal(recv) || s.Attrs["time_source"] != "server" || s.Attrs["device_time"] != "160169 180813" {
			t.Errorf("signal = %+v", s)
		}
	})
	t.Run("unknown type kept", func(t *testing.T) {
		s := decodeOne(t, []byte("*HQ,8401016597,BASE,152609,0,0,0,0,211014,FFFFFFFF#"))
		if s.Attrs["type"] != "BASE" || s.TS != time.Date(2014, 10, 21, 15, 26, 9, 0, time.UTC) || s.Attrs["data"] != "152609,0,0,0,0,211014,FFFFFFFF" {
			t.Errorf("signal = %+v", s)
		}
	})
}

func TestAcks(t *testing.T) {
	tests := []struct {
		name  string
		opts  map[string]string
		frame string
		ack   string
	}{
		{"V1 confirmed", nil, "*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF#", "*HQ,4210051415,V4,V1,20261125120000#"},
		{"heartbeat echoed", nil, "*HQ,135790246811220,HTBT,100#", "*HQ,135790246811220,HTBT#"},
		{"bare heartbeat echoed", nil, "*HQ,135790246811220,HTBT#", "*HQ,135790246811220,HTBT#"},
		{"NBR confirmed", nil, "*HQ,7401004662,NBR,160453,234,10,0,2,21580,27766,-67,21580,27766,-67,291019,FFFFFBFF,6#", "*HQ,7401004662,V4,NBR,20261125120000#"},
		{"V5 no reply", nil, "*HQ,9180271064,V5,091233,V,2348.8912,N,09021.3302,E,000.00,000,051219,FFFFBBFF,470,01,21019,2033,2921283#", ""},
		{"ack off", map[string]string{"ack": "off"}, "*HQ,135790246811220,HTBT,100#", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newSession(tt.opts).Decode([]byte(tt.frame), recv)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Ack) != tt.ack {
				t.Errorf("ack = %q, want %q", res.Ack, tt.ack)
			}
		})
	}
	res, err := newSession(nil).Decode(unhex(t, "2441060116601245431311165035313006004318210e000000fffffbffff0024"), recv)
	if err != nil || res.Ack != nil {
		t.Errorf("binary record: ack %q, err %v; want no reply", res.Ack, err)
	}
}

func TestRejections(t *testing.T) {
	tests := []struct {
		name  string
		opts  map[string]string
		allow func(string) bool
		frame []byte
		err   error
	}{
		{"garbage", nil, nil, []byte("hello#"), plugins.ErrMalformed},
		{"short binary", nil, nil, unhex(t, "2441060116601245431311"), plugins.ErrMalformed},
		{"binary not BCD", nil, nil, unhex(t, "24410601166012454313111650353130060043182A0e000000fffffbffff0024"), plugins.ErrMalformed},
		{"binary bad date", nil, nil, unhex(t, "2441060116601245430013165035313006004318210e000000fffffbffff0024"), plugins.ErrMalformed},
		{"binary length differs from option", map[string]string{"binary_length": "45"}, nil, unhex(t, "2441060116601245431311165035313006004318210e000000fffffbffff0024"), plugins.ErrMalformed},
		{"X record", nil, nil, unhex(t, "5800009814991024031101175540227006012321670c000095fffffbffff0033"), plugins.ErrUnsupported},
		{"not allowed", nil, func(string) bool { return false }, []byte("*HQ,135790246811220,HTBT,100#"), plugins.ErrUnauthorized},
		{"no id", nil, nil, []byte("*HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#"), plugins.ErrNoDevice},
		{"text without fields", nil, nil, []byte("*HQ#"), plugins.ErrMalformed},
		{"V4 without position", nil, nil, []byte("*HQ,1,V4,S1,OK#"), plugins.ErrMalformed},
		{"NBR bad count", nil, nil, []byte("*HQ,1,NBR,160453,234,10,0,99,1,2,3,291019,FFFFFBFF#"), plugins.ErrMalformed},
		{"NBR overflowing count", nil, nil, []byte("*HQ,1,NBR,160453,234,10,0,6148914691236517206,1,2,3,291019,FFFFFBFF#"), plugins.ErrMalformed},
		{"V3 overflowing count", nil, nil, []byte("*HQ,1,V3,002339,62160,4611686018427387904,1,2,3,4,02A1,0,X,010104,EFE7FBFF#"), plugins.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096, Options: plugins.MustDecodeOptions(&Decoder{}, tt.opts), AllowDevice: tt.allow})
			res, err := s.Decode(tt.frame, recv)
			if !errors.Is(err, tt.err) {
				t.Errorf("error = %v, want %v", err, tt.err)
			}
			if len(res.Signals) != 0 {
				t.Errorf("rejected frame produced signals")
			}
		})
	}
}

// TestFrameSplit runs the Traccar frame-splitter cases: the first frame of
// each raw stream.
func TestFrameSplit(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "frame-split.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		n++
		stream, first, _ := strings.Cut(line, " ")
		t.Run(first[:16], func(t *testing.T) {
			s := newSession(nil)
			in := unhex(t, stream)
			got, err := s.Frame(in)
			if err != nil {
				t.Fatalf("Frame: %v", err)
			}
			if want := unhex(t, first); !bytes.Equal(in[:got], want) {
				t.Errorf("first frame = %x, want %x", in[:got], want)
			}
		})
	}
	if n != 10 {
		t.Errorf("ran %d frame-split cases, want 10", n)
	}
}

func TestFrameBinaryLength(t *testing.T) {
	short := unhex(t, "2441060116601245431311165035313006004318210e000000fffffbffff0024")
	long := unhex(t, "24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f")
	text := []byte("*HQ,4106011660,V1,124552,A,5035.3129,N,00431.8211,E,000.20,000,131116,FFFFBFFF#")
	tests := []struct {
		name   string
		opts   map[string]string
		stream []byte
		want   []int
	}{
		{"45-byte records back to back", nil, bytes.Join([][]byte{long, long, long}, nil), []int{45, 45, 45}},
		{"32 then text", nil, append(append([]byte(nil), short...), text...), []int{32, len(text)}},
		{"text, crlf, 45", nil, bytes.Join([][]byte{text, []byte("\r\n"), long}, nil), []int{len(text), 2, 45}},
		{"configured 45, byte by byte", map[string]string{"binary_length": "45"}, bytes.Join([][]byte{long, long}, nil), []int{45, 45}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(tt.opts)
			var got []int
			if tt.opts != nil {
				// Feed byte by byte: a configured length never frames early.
				buf := []byte{}
				for _, c := range tt.stream {
					buf = append(buf, c)
					n, err := s.Frame(buf)
					if err != nil {
						t.Fatal(err)
					}
					if n > 0 {
						got = append(got, n)
						buf = buf[n:]
					}
				}
			} else {
				for data := tt.stream; len(data) > 0; {
					n, err := s.Frame(data)
					if err != nil || n == 0 {
						t.Fatalf("Frame = %d, %v at %d bytes left", n, err, len(data))
					}
					got = append(got, n)
					data = data[n:]
				}
			}
			if !equalInts(got, tt.want) {
				t.Errorf("frames %v, want %v", got, tt.want)
			}
		})
	}
	// Without a following byte a lone 45-byte record is framed by its exact
	// length; a shorter non-matching buffer waits.
	s := newSession(nil)
	if n, err := s.Frame(long[:40]); n != 0 || err != nil {
		t.Errorf("Frame(40 bytes) = %d, %v; want wait", n, err)
	}
	if n, err := s.Frame(long); n != 45 || err != nil {
		t.Errorf("Frame(45 bytes) = %d, %v", n, err)
	}
	if _, err := s.Frame(bytes.Repeat([]byte{0x99}, 60)); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("Frame('$'-less garbage) error = %v", err)
	}
	if _, err := s.Frame(append([]byte{'$'}, bytes.Repeat([]byte{0x11}, 60)...)); !errors.Is(err, plugins.ErrMalformed) {
		t.Errorf("Frame(60 bytes without a boundary) error = %v", err)
	}
	if _, err := s.Frame(append([]byte("*HQ,"), bytes.Repeat([]byte("1"), 5000)...)); !errors.Is(err, plugins.ErrTooLarge) {
		t.Errorf("Frame(text without #) error = %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCorpusGolden(t *testing.T) {
	plugintest.Golden(t, &Decoder{}, recv, *update,
		plugintest.GoldenCase{In: "traccar-text.txt", Golden: "traccar-text.golden.jsonl", Hex: false, OK: 72, Bad: 0},
		plugintest.GoldenCase{In: "traccar-binary.hex", Golden: "traccar-binary.golden.jsonl", Hex: true, OK: 15, Bad: 0},
	)
}

func TestConformance(t *testing.T) {
	text := [][]byte{
		[]byte("*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#"),
		[]byte("*HQ,4210051415,NBR,160453,234,10,0,2,21580,27766,-67,21580,27766,-67,291019,FFFFFBFF,6#"),
		[]byte("*HQ,4210051415,V1,164609,A,0956.3870,N,08406.7070,W,010.00,090,221215,FFFFFBFF#"),
		// No device time: stamped by the server, and a resend on a new
		// session must reproduce the key.
		[]byte("*HQ,4210051415,HTBT,87#"),
		[]byte("*HQ,4210051415,V1,,V,,N,,E,0.00,0,,FFFFF7FF,f0,a,11a0,c0c6#"),
	}
	t.Run("text and 32-byte binary", func(t *testing.T) {
		frames := append(append([][]byte(nil), text...),
			unhex(t, "2442100514151646291512155634313006004318210e000000fffffbffff0024"),
			unhex(t, "2442100514151646391512155634313006004318210e000000fffffbffff0025"))
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: frames})
	})
	t.Run("45-byte binary, configured", func(t *testing.T) {
		frames := append(append([][]byte(nil), text...),
			unhex(t, "24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f"),
			unhex(t, "24410600082621533131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f"))
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: frames, Options: map[string]string{"binary_length": "45"}})
	})
	t.Run("udp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Transport: plugins.UDP, Frames: text})
	})
}

func BenchmarkDecodeText(b *testing.B) {
	frame := []byte("*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#")
	benchDecode(b, frame)
}

func BenchmarkDecodeBinary(b *testing.B) {
	benchDecode(b, unhex(b, "24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f"))
}

func benchDecode(b *testing.B, frame []byte) {
	s := newSession(nil)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := s.Decode(frame, recv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func TestFrameNoFalseBoundary(t *testing.T) {
	// A 45-byte record whose byte 32 is '*' must not be cut there while the
	// bytes after it cannot confirm a message start.
	long := unhex(t, "24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f")
	copy(long[32:], "*HQ")
	s := newSession(nil)
	for _, n := range []int{33, 34, 35, 40} {
		if got, err := s.Frame(long[:n]); got != 0 || err != nil {
			t.Errorf("Frame(%d bytes) = %d, %v; want wait", n, got, err)
		}
	}
	if got, err := s.Frame(long); got != 45 || err != nil {
		t.Errorf("Frame(45 bytes) = %d, %v", got, err)
	}
}
