package gl200

import (
	"bytes"
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
	"github.com/fleetcore/fleetcore/plugins/replay"
	"github.com/fleetcore/fleetcore/signal"
)

var update = flag.Bool("update", false, "rewrite golden files")

var recv = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newSession(tr plugins.Transport, opts map[string]string) *Session {
	return (&Decoder{}).NewSession(plugins.SessionConfig{Transport: tr, MaxFrame: 4096, Options: plugins.MustDecodeOptions(&Decoder{}, opts), Logger: hclog.NewNullLogger()}).(*Session)
}

func decode(t *testing.T, msg string, opts map[string]string) plugins.Result {
	t.Helper()
	res, err := newSession(plugins.UDP, opts).Decode([]byte(msg), recv)
	if err != nil {
		t.Fatalf("Decode(%q): %v", msg, err)
	}
	return res
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6 }

const (
	fri2  = "+RESP:GTFRI,020102,135790246811220,,0,0,2,1,4.3,92,70.0,121.354335,31.222073,20090214013254,0460,0000,18d8,6141,00,0,4.3,92,70.0,121.354335,31.222073,20090101000000,0460,0000,18d8,6141,00,,20090214093254,11F0$"
	friGV = "+RESP:GTFRI,060100,135790246811220,,,00,1,1,4.3,92,70.0,121.354335,31.222073,20090214013254,0460,0000,18d8,6141,00,2000.0,12345:12:34,,,80,210100,,,,20090214093254,11F0$"
	obd   = "+RESP:GTOBD,1F0109,864251020135483,4T1BE46KX7U018210,gv500,0,78FFFF,4T1BE46KX7U018210,1,13411,981B81C0,787,3,43,,921,463,1,10,0300030103030304001200310351035203530354,20,55,,1286,0,6.5,74,21.6,3.379710,6.529714,20150813074824,0621,0030,51C0,A2B3,00,0.0,20150813074828,A7E9$"
	can   = "+RESP:GTCAN,4B0201,867995030004314,,00,1,C07FFFFF,,2,H982769,30263.00,1266,69,82,H0,P69.20,,0,2037.40,243.93,45.56,74.33,13115,,C00,,0,,,0,68.3,99,42.5,-69.099503,18.445614,20190417233605,0370,0002,5A3D,EB42,00,20190417183607,BD76$"
	inf   = "+RESP:GTINF,C20113,869653060997976,,1A,89464278206103756482,19,0,11,12295,13985,4.25,0,0,,,20241104220934,0,0,,00,00,,,20241104162009,06D6$"
	hbd   = "+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$"
)

// TestValues checks the values of representative reports field by field.
func TestValues(t *testing.T) {
	t.Run("GTFRI with two fixes", func(t *testing.T) {
		res := decode(t, fri2, nil)
		if len(res.Signals) != 2 || res.DeviceID != "135790246811220" || string(res.Ack) != "+SACK:11F0$" {
			t.Fatalf("got %d signals, device %q, ack %q", len(res.Signals), res.DeviceID, res.Ack)
		}
		a, b := res.Signals[0], res.Signals[1]
		if !a.TS.Equal(time.Date(2009, 2, 14, 1, 32, 54, 0, time.UTC)) || !b.TS.Equal(time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("ts = %v, %v", a.TS, b.TS)
		}
		if !near(a.Lat, 31.222073) || !near(a.Lon, 121.354335) || a.Speed != 4.3 || a.Heading != 92 || a.Alt != 70 || a.HDOP != 1 || a.Valid != signal.True {
			t.Errorf("first fix: %+v", a)
		}
		if a.Attrs["mcc"] != int64(460) || a.Attrs["lac"] != int64(0x18d8) || a.Attrs["cell_id"] != int64(0x6141) || a.Attrs["report"] != "GTFRI" || a.Attrs["count"] != nil {
			t.Errorf("attrs: %v", a.Attrs)
		}
		if b.Valid != signal.False || !math.IsNaN(b.HDOP) {
			t.Errorf("second fix (accuracy 0): valid %v hdop %v", b.Valid, b.HDOP)
		}
	})
	t.Run("GTFRI of the GV series: mileage, hours, battery, status", func(t *testing.T) {
		s := decode(t, friGV, nil).Signals[0]
		if s.Odometer != 2000 || s.Attrs["battery_level"] != int64(80) || s.Attrs["device_status"] != "210100" || s.Attrs["ignition"] != true || s.Attrs["motion"] != false {
			t.Errorf("odometer %v attrs %v", s.Odometer, s.Attrs)
		}
		if h, _ := s.Attrs["engine_hours"].(float64); !near(h, 12345+12.0/60+34.0/3600) {
			t.Errorf("engine_hours = %v", s.Attrs["engine_hours"])
		}
	})
	t.Run("+BUFF is marked buffered", func(t *testing.T) {
		s := decode(t, strings.Replace(friGV, "+RESP", "+BUFF", 1), nil).Signals[0]
		if s.Attrs["buffered"] != true {
			t.Errorf("attrs %v", s.Attrs)
		}
		if _, ok := decode(t, friGV, nil).Signals[0].Attrs["buffered"]; ok {
			t.Error("+RESP marked buffered")
		}
	})
	t.Run("GTOBD through obd2", func(t *testing.T) {
		s := decode(t, obd, nil).Signals[0]
		if s.RPM != 787 || s.Coolant != 43 || s.Throttle != 20 || s.EngineLoad != 55 || !near(s.Voltage, 13.411) || s.Speed != 6.5 {
			t.Errorf("rpm %v coolant %v throttle %v load %v voltage %v speed %v", s.RPM, s.Coolant, s.Throttle, s.EngineLoad, s.Voltage, s.Speed)
		}
		if s.Attrs["vin"] != "4T1BE46KX7U018210" || s.Attrs["mil"] != true || s.Attrs["dtc_count"] != int64(10) || s.Attrs["obd_0d_speed_kmh"] != float64(3) {
			t.Errorf("attrs %v", s.Attrs)
		}
		want := "P0300 P0301 P0303 P0304 P0012 P0031 P0351 P0352 P0353 P0354"
		if got := strings.Join(s.DTCs, " "); got != want {
			t.Errorf("dtcs = %s, want %s", got, want)
		}
	})
	t.Run("GTCAN", func(t *testing.T) {
		s := decode(t, can, nil).Signals[0]
		if s.RPM != 1266 || s.Coolant != 82 || s.Fuel != 69.2 || !near(s.Odometer, 98276.9) || s.Speed != 68.3 {
			t.Errorf("rpm %v coolant %v fuel %v odometer %v speed %v", s.RPM, s.Coolant, s.Fuel, s.Odometer, s.Speed)
		}
		if s.Attrs["engine_hours"] != 2037.4 || s.Attrs["fuel_used"] != 30263.0 || s.Attrs["obd_0d_speed_kmh"] != float64(69) {
			t.Errorf("attrs %v", s.Attrs)
		}
	})
	t.Run("GTINF at the send time", func(t *testing.T) {
		s := decode(t, inf, nil).Signals[0]
		if !s.TS.Equal(time.Date(2024, 11, 4, 16, 20, 9, 0, time.UTC)) || !math.IsNaN(s.Lat) || s.Attrs["time_source"] != "send_time" {
			t.Errorf("ts %v lat %v attrs %v", s.TS, s.Lat, s.Attrs)
		}
		if !near(s.Voltage, 12.295) || s.Attrs["power2"] != 13.985 || s.Attrs["battery_v"] != 4.25 || s.Attrs["iccid"] != "89464278206103756482" {
			t.Errorf("voltage %v attrs %v", s.Voltage, s.Attrs)
		}
	})
	t.Run("alarms and ignition", func(t *testing.T) {
		for msg, want := range map[string]map[string]any{
			"+RESP:GTPFA,F50201,866425030235982,GL300M,20190208124849,0BD4$": {"alarm": "power_off"},
			"+RESP:GTHBM,BD0214,869409069481243,cv100,,12,1,1,5.6,344,274.7,-1.601826,6.666228,20250114094616,0620,0001,3EE8,00016E04,,,20250114094616,20250114094616,2862$": {"alarm": "hard_cornering"},
			"+RESP:GTIGF,6E0202,868589060169789,ra79,145,1,0.0,83,532.2,-70.616413,-33.393457,20240610201937,0730,0001,333A,00CFA301,01,12,,0.0,20240610201938,3AE9$":        {"ignition": false},
		} {
			s := decode(t, msg, nil).Signals[0]
			for k, v := range want {
				if s.Attrs[k] != v {
					t.Errorf("%s: %s = %v, want %v", msg[:11], k, s.Attrs[k], v)
				}
			}
		}
	})
}

// TestAck checks the replies: the heartbeat always (unless off), reports
// only in SACK mode.
func TestAck(t *testing.T) {
	tests := []struct {
		name, msg, ack, want string
	}{
		{"heartbeat", hbd, "", "+SACK:GTHBD,1A0401,11F0$"},
		{"heartbeat, ack off", hbd, "off", ""},
		{"report, default (SACK mode)", friGV, "", "+SACK:11F0$"},
		{"report, heartbeat only", friGV, "heartbeat", ""},
		{"command ack, SACK mode", "+ACK:GTGEO,1A0102,135790246811220,,0,0008,20100310172830,11F0$", "all", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts map[string]string
			if tt.ack != "" {
				opts = map[string]string{"ack": tt.ack}
			}
			res := decode(t, tt.msg, opts)
			if string(res.Ack) != tt.want {
				t.Errorf("ack = %q, want %q", res.Ack, tt.want)
			}
			if tt.msg == hbd && len(res.Signals) != 0 {
				t.Errorf("heartbeat gave %d signals", len(res.Signals))
			}
		})
	}
}

// TestRejected checks that broken messages are refused with the right
// sentinel and no signal.
func TestRejected(t *testing.T) {
	tests := []struct {
		name, msg string
		want      error
	}{
		{"garbage", "hello$", plugins.ErrMalformed},
		{"bad header", "+RESP:XXFRI,020102,135790246811220,,20090214093254,11F0$", plugins.ErrMalformed},
		{"bad version", "+RESP:GTFRI,zz,135790246811220,,20090214093254,11F0$", plugins.ErrMalformed},
		{"bad send time", "+RESP:GTINF,020102,135790246811220,,41,20091314093254,11F0$", plugins.ErrMalformed},
		{"latitude out of range", "+RESP:GTFRI,020102,135790246811220,,0,0,1,1,4.3,92,70.0,121.354335,91.222073,20090214013254,0460,0000,18d8,6141,00,,20090214093254,11F0$", plugins.ErrMalformed},
		{"speed not a number", "+RESP:GTFRI,020102,135790246811220,,0,0,1,1,x,92,70.0,121.354335,31.222073,20090214013254,0460,0000,18d8,6141,00,,20090214093254,11F0$", plugins.ErrMalformed},
		{"GNSS time impossible", "+RESP:GTFRI,020102,135790246811220,,0,0,1,1,4.3,92,70.0,121.354335,31.222073,20091399013254,0460,0000,18d8,6141,00,,20090214093254,11F0$", plugins.ErrMalformed},
		{"no version, no position", "+RESP:GTINF,359464030073766,8938003990320469804f,18,99,100,1,0,+2.00,0,20131018084015,00EE,0103090402$", plugins.ErrUnsupported},
		{"NUL inside", "+RESP:GTINF,020102,1357902468\x0011220,,20090214093254,11F0$", plugins.ErrMalformed},
		{"datagram without $", strings.TrimSuffix(hbd, "$"), plugins.ErrMalformed},
		{"binary shorter than its header", "+RSP\x01\x00\x00\x00\x00\x00\x0d\x00\x00", plugins.ErrMalformed},
		{"binary with a wrong length", "+RSP\x01\x00\x00\x00\x00\x00\x20\x00\x00", plugins.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newSession(plugins.UDP, nil).Decode([]byte(tt.msg), recv)
			if !errors.Is(err, tt.want) || len(res.Signals) != 0 {
				t.Errorf("err %v with %d signals, want %v", err, len(res.Signals), tt.want)
			}
		})
	}
	t.Run("device not allowed", func(t *testing.T) {
		s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: 4096, AllowDevice: func(string) bool { return false }, Options: plugins.MustDecodeOptions(&Decoder{}, nil)})
		if _, err := s.Decode([]byte(friGV), recv); !errors.Is(err, plugins.ErrUnauthorized) {
			t.Errorf("err %v, want ErrUnauthorized", err)
		}
	})
}

// TestFrame checks the TCP framer.
func TestFrame(t *testing.T) {
	tests := []struct {
		name string
		buf  string
		n    int
		err  error
	}{
		{"text to $", fri2 + "+ACK", len(fri2), nil},
		{"text ended by a line end", "+RESP:GTFRI,1A0401,x\r\n", len("+RESP:GTFRI,1A0401,x"), nil},
		{"line ends", "\r\n+RESP", 2, nil},
		{"partial header", "+RE", 0, nil},
		{"+ACK needs its fifth byte", "+ACK", 0, nil},
		{"no $ yet", "+RESP:GTFRI,1A0401", 0, nil},
		{"binary by length", "+RSP\x01\x00\x00\x00\x00\x00\x0d\x00\x00+RSP", 13, nil},
		{"binary ack by length", "+ACK\x01\x00\x08\x00", 8, nil},
		{"binary, length short of its header", "+RSP\x01\x00\x00\x00\x00\x00\x02", 0, plugins.ErrMalformed},
		{"binary beyond max_frame", "+RSP\x01\x00\x00\x00\x00\xff\xff", 0, plugins.ErrTooLarge},
		{"garbage", "GET / HTTP/1.1", 0, plugins.ErrMalformed},
		{"garbage byte", "\x00", 0, plugins.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := newSession(plugins.TCP, nil).Frame([]byte(tt.buf))
			if n != tt.n || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("Frame = %d, %v; want %d, %v", n, err, tt.n, tt.err)
			}
		})
	}
	t.Run("text beyond max_frame", func(t *testing.T) {
		if _, err := newSession(plugins.TCP, nil).Frame([]byte("+RESP:" + strings.Repeat("1", 5000))); !errors.Is(err, plugins.ErrTooLarge) {
			t.Errorf("err %v, want ErrTooLarge", err)
		}
	})
}

// TestCorpusGolden replays every Traccar capture (testdata/traccar.txt)
// and compares with the reviewed output.
func TestCorpusGolden(t *testing.T) {
	in, err := os.Open(filepath.Join("testdata", "traccar.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	if _, err := replay.Decode(&Decoder{}, in, &out, replay.Options{Now: func() time.Time { return recv }}); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "traccar.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading %s (run with -update to create): %v", golden, err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("replay differs from %s (check, then -update):\n%s", golden, out.String())
	}
}

func TestConformance(t *testing.T) {
	frames := [][]byte{[]byte(hbd), []byte(fri2), []byte(friGV), []byte(obd), []byte(can), []byte(inf)}
	frames = append(frames, binarySeeds()...)
	oversized := [][]byte{[]byte("+RSP\x01\x00\x00\x00\x00\xff\xff")}
	t.Run("tcp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: frames, Oversized: oversized, MaxFrame: 4096, Options: map[string]string{"ack": "all"}})
	})
	t.Run("udp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: frames, Transport: plugins.UDP})
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct{ name, msg string }{{"GTFRI", friGV}, {"GTCAN", can}, {"binaryRSP", string(rspFRI("+RSP"))}} {
		b.Run(c.name, func(b *testing.B) {
			s := newSession(plugins.TCP, nil)
			frame := []byte(c.msg)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := s.Decode(frame, recv); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
