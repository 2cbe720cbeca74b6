package suntech

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

func newSession(dec *Decoder, allow func(string) bool, opts map[string]string) *Session {
	return dec.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: 4096, AllowDevice: allow,
		Options: plugins.MustDecodeOptions(dec, opts), Logger: hclog.NewNullLogger()}).(*Session)
}

func one(t *testing.T, frame string, opts map[string]string) signal.Signal {
	t.Helper()
	res, err := newSession(&Decoder{}, nil, opts).Decode([]byte(frame), recv)
	if err != nil {
		t.Fatalf("Decode(%q): %v", frame, err)
	}
	if err := plugins.CheckSignals(res.Signals); err != nil {
		t.Fatalf("Decode(%q): %v", frame, err)
	}
	if len(res.Signals) != 1 {
		t.Fatalf("Decode(%q): %d signals", frame, len(res.Signals))
	}
	return res.Signals[0]
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6 || math.IsNaN(a) && math.IsNaN(b) }

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

func TestPositions(t *testing.T) {
	tests := []struct {
		name, frame string
		opts        map[string]string
		ts          string
		valid       signal.Flag
		lat, lon    float64
		speed       float64
	}{
		{"SA200STT (corpus exact fix)", "SA200STT;317652;042;20120718;15:37:12;16d41;-15.618755;-056.083241;000.024;000.00;8;1;41548;12.17;100000;2;1979", nil, "2012-07-18T15:37:12Z", signal.True, -15.618755, -56.083241, 0.024},
		{"ST910 alert (corpus exact fix)", "ST910;Alert;123456;410;20141018;18:30:12;+37.478774;+126.889690;000.000;000.00;0;4.0;1;6002", nil, "2014-10-18T18:30:12Z", signal.False, 37.478774, 126.88969, 0},
		{"ST600 with cell", "ST600STT;008084783;20;419;20180308;18:00:36;0032cc3e;736;3;445c;41;-16.530023;-068.084267;018.640;267.99;10;1;11655;13.33;100000;2;0336;000061;4.5;0;0.00", nil, "2018-03-08T18:00:36Z", signal.True, -16.530023, -68.084267, 18.64},
		{"ST500 without cell", "ST500STT;205450135;07;843;20170816;23:24:45;+19.338432;-099.179817;000.283;000.00;6;1;141121;12.89;0;0;1;4659;002.795;0;001.891;611;4.0", nil, "2017-08-16T23:24:45Z", signal.True, 19.338432, -99.179817, 0.283},
		{"ST410", "ST410STT;007638094;426;01;24153;724;4;-65;365;0;24161;724;4;365;0;0;24162;724;4;365;0;0;24363;724;4;365;0;0;24151;724;4;365;0;0;24991;724;4;365;0;0;24373;724;4;365;0;0;3.98;1;0176;2;016;20200106;19:18:04;-15.571860;-056.062637;000.852;238.28;6;1;201", nil, "2020-01-06T19:18:04Z", signal.True, -15.57186, -56.062637, 0.852},
		{"ST910 protocol type 1", "ST910;Alert;485195;20170409;22:37:41;3be0133057;+24.882410;-107.509152;000.070;000.00;1;286734;72;02;295;05;-415;4912;255;10;10", map[string]string{"protocol_type": "1"}, "2017-04-09T22:37:41Z", signal.True, 24.88241, -107.509152, 0.07},
		{"universal STT", "STT;0560001616;BFFFFF;56;1.0.15;1;20200219;20:52:25;00008D6C;334;20;0925;24;+20.741764;-103.430364;0.00;0.00;19;1;00000001;00000000;2;1;1765;00008003;0.0;12.14;136598", nil, "2020-02-19T20:52:25Z", signal.True, 20.741764, -103.430364, 0},
		{"universal BLE", "BLE;1140000053;114;1.0.1;20211001;17:27:09;+28.433465;-82.565891;1;-43;-46;-41;ACB89523EF68;247;0;0", nil, "2021-10-01T17:27:09Z", signal.True, 28.433465, -82.565891, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := one(t, tt.frame, tt.opts)
			if got := s.TS.Format(time.RFC3339); got != tt.ts {
				t.Errorf("ts = %s, want %s", got, tt.ts)
			}
			if s.Valid != tt.valid || !near(s.Lat, tt.lat) || !near(s.Lon, tt.lon) || !near(s.Speed, tt.speed) {
				t.Errorf("valid, lat, lon, speed = %v, %v, %v, %v; want %v, %v, %v, %v", s.Valid, s.Lat, s.Lon, s.Speed, tt.valid, tt.lat, tt.lon, tt.speed)
			}
			if s.DeviceID == "" || s.Protocol != Name || !s.Recv.Equal(recv) {
				t.Errorf("device %q protocol %q recv %v", s.DeviceID, s.Protocol, s.Recv)
			}
		})
	}
}

func TestOptionsAndFields(t *testing.T) {
	tests := []struct {
		name, frame string
		opts        map[string]string
		want        map[string]any
	}{
		{"hbm 1: hours, battery, driver", "ST300STT;807469112;45;315;20231215;15:25:03;104147;-16.030168;-047.989150;000.000;000.00;19;1;8600;12.14;000010;1;0456;000373;4.1;1;01B54221010000;0", map[string]string{"hbm": "1"},
			map[string]any{"engine_hours": 373.0 / 60, "battery_v": 4.1, "archive": nil, "driver_id": "01B54221010000", "status": int64(1), "index": int64(456), "out1": true}},
		{"hbm 2: serving cell, no driver", "ST300STT;007878646;40;319H;20250521;21:52:14;54728;-30.021829;-051.204818;000.000;077.61;0;0;35310247;14.33;000000;1;1306;069596;4.1;1;23675;724;5;-75;1351;1", map[string]string{"hbm": "2", "protocol_type": "1"},
			map[string]any{"cid": int64(23675), "mcc": int64(724), "mnc": int64(5), "rssi": int64(-75), "lac": int64(1351), "driver_id": nil, "engine_hours": 69596.0 / 60}},
		{"hbm 1 with adc, rpm and temperatures", "ST300STT;807469112;45;315;20231215;15:25:03;104147;-16.030168;-047.989150;000.000;000.00;19;1;8600;12.14;000010;1;0456;000373;4.1;1;1.5;;2.5;1800;DRV1;1;1:21.5;2:;3:-4.0", map[string]string{"hbm": "1", "include_adc": "true", "include_rpm": "true", "include_temp": "true"},
			map[string]any{"adc1": 1.5, "adc3": 2.5, "driver_id": "DRV1", "temp1": 21.5, "temp3": -4.0}},
		{"no hbm: tail kept", "ST300ALT;007239104;40;313;20190112;01:07:16;c99139;+04.703287;-074.148897;000.000;189.72;21;1;425512;12.61;100000;33;003188;4.1;1", nil,
			map[string]any{"alert_id": int64(33), "extra": "003188;4.1;1", "ignition": true}},
		{"UEX fuel sensors", "ST600UEX;008728327;20;520;20190218;10:56:51;0bf1a893;334;20;2f19;18;+20.514195;-100.743597;000.015;000.00;9;1;3720808;12.89;000000;44;t_0=0D;N_0=0551.0;t_1=14;N_1=039F.0;Q_D=0B\r\n;9E;010440;4.1;1", nil,
			map[string]any{"temp0": int64(0x0d), "fuel0": int64(0x551), "fuel1": int64(0x39f), "fuel_level": float64(0x551 + 0x39f), "driving_quality": int64(0x0b)}},
		{"UEX CabAVL", "ST300UEX;109003241;08;1026;20190425;17:36:04;04402;+04.722553;-074.052583;000.020;000.00;10;1;0;12.04;010000;51;CabAVL\"CabMensaje,0,58.5,-1.0,,,FinMensaje\"FinAVL\r\n;B1;0000000000;4.1;1", nil,
			map[string]any{"fuel1": 58.5, "fuel_level": 58.5}},
		{"universal ALT assign mask", "ALT;0840037569;FFFFFF;84;1.0.6;0;20221228;11:33:05;00004490;724;11;05D3;33;-22.845935;-46.322000;0.00;0.00;18;0;00000001;00000000;99;;;;08E3800F;4.1;12.37;0;0;0;0;4;;;;", nil,
			map[string]any{"alert_id": int64(99), "assign1": "4.1", "assign2": "12.37", "assign28": "", "archive": nil}},
		{"universal ALT sos", "ALT;0950030205;3FFFFF;95;1.0.11;0;20221017;21:41:30;02F2F402;334;20;0F1D;45;+25.791061;-100.170745;0.00;0.00;18;1;00000101;00000000;42;2;", nil,
			map[string]any{"alarm": "sos", "input": int64(5), "ignition": true, "alert_modifier": "2"}},
		{"command result", "ST300CMD;Res;511848119;319H;Disable1", nil, map[string]any{"result": "319H;Disable1", "time_source": "server"}},
		{"universal result", "RES;4309999001;04;02;TEST", nil, map[string]any{"result": "04;02;TEST"}},
		{"travel report", "ST300HTE;100850001;04;248;20110101;00:13:52;167559;12.28;004005;0.0;1;0;3;3;0;-22.881018;-047.070831;-22.881018;-047.070831;000.000;000.000;0;0;3;0;0;0;01E04D44160000", nil, map[string]any{"driver_id": "01E04D44160000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := one(t, tt.frame, tt.opts)
			for k, v := range tt.want {
				got, ok := s.Attrs[k]
				if v == nil {
					if ok {
						t.Errorf("attr %s = %#v, want absent", k, got)
					}
					continue
				}
				if f, isF := v.(float64); isF {
					if g, _ := got.(float64); !near(g, f) {
						t.Errorf("attr %s = %#v, want %v", k, got, v)
					}
					continue
				}
				if got != v {
					t.Errorf("attr %s = %#v, want %#v", k, got, v)
				}
			}
		})
	}
}

func TestBinary(t *testing.T) {
	frames := conversation(t)
	s := one(t, string(frames[len(frames)-2]), nil)
	if s.DeviceID != "0580000055" || s.Attrs["driver_id"] != "1d00000113f3f801" || s.TS.Format(time.RFC3339) != "2020-02-04T16:41:57Z" {
		t.Errorf("0x82: device %s ts %v attrs %v", s.DeviceID, s.TS, s.Attrs)
	}
	z := one(t, string(frames[len(frames)-1]), nil)
	if z.DeviceID != "511340877" || z.TS.Format(time.RFC3339) != "2024-12-23T00:22:04Z" || !near(z.Lat, -12.063565) || !near(z.Lon, -45.793653) || z.Valid != signal.True {
		t.Errorf("0x02: device %s ts %v pos %v,%v valid %v", z.DeviceID, z.TS, z.Lat, z.Lon, z.Valid)
	}
}

func TestKeepAlive(t *testing.T) {
	res, err := newSession(&Decoder{}, nil, nil).Decode([]byte("SA200ALV;317652\r"), recv)
	if err != nil || len(res.Signals) != 0 || res.DeviceID != "317652" {
		t.Errorf("%v, %d signals, device %q", err, len(res.Signals), res.DeviceID)
	}
}

func TestRejections(t *testing.T) {
	good := "SA200STT;317652;042;20120718;15:37:12;16d41;-15.618755;-056.083241;000.024;000.00;8;1;41548;12.17;100000;2;1979"
	tests := []struct {
		name, frame string
		want        error
		field       string
	}{
		{"latitude", strings.Replace(good, "-15.618755", "-15.6x8755", 1), plugins.ErrMalformed, "latitude"},
		{"latitude range", strings.Replace(good, "-15.618755", "-95.618755", 1), plugins.ErrMalformed, "position"},
		{"date", strings.Replace(good, "20120718", "20121318", 1), plugins.ErrMalformed, "date"},
		{"speed", strings.Replace(good, "000.024", "fast", 1), plugins.ErrMalformed, "speed"},
		{"io", strings.Replace(good, "100000", "10x000", 1), plugins.ErrMalformed, "io state"},
		{"truncated", good[:60], plugins.ErrMalformed, "report ends"},
		{"cell", strings.Replace(good, "16d41", "16g41", 1), plugins.ErrMalformed, "cell id"},
		{"mask field", "STT;0560001616;BFFFFF;56;1.0.15;1;20200219;20:52:25;00008D6C;3x4;20", plugins.ErrMalformed, "mcc"},
		{"unknown type", "SA200XYZ;317652;042", plugins.ErrUnsupported, "XYZ"},
		{"crash report", "CRR;0910000063;1;1;0150;", plugins.ErrUnsupported, "crash"},
		{"error answer", "-Error", plugins.ErrUnsupported, "not a report"},
		{"binary length", string([]byte{0x81, 0x00, 0x10, 1, 2}), plugins.ErrMalformed, "length"},
		{"binary truncated", string([]byte{0x81, 0x00, 0x05, 0x05, 0x20, 0x00, 0x13, 0x38}), plugins.ErrMalformed, "field mask"},
		{"device id", "SA200STT;31-652;042", plugins.ErrMalformed, "device id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newSession(&Decoder{}, nil, nil).Decode([]byte(tt.frame), recv)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.field) || len(res.Signals) > 0 {
				t.Errorf("err %v, %d signals; want %v naming %q", err, len(res.Signals), tt.want, tt.field)
			}
		})
	}
	t.Run("not allowed", func(t *testing.T) {
		s := newSession(&Decoder{}, func(id string) bool { return id == "1" }, nil)
		if _, err := s.Decode([]byte(good), recv); !errors.Is(err, plugins.ErrUnauthorized) {
			t.Errorf("err %v, want ErrUnauthorized", err)
		}
	})
}

func TestFrame(t *testing.T) {
	s := newSession(&Decoder{}, nil, nil)
	tests := []struct {
		in   string
		n    int
		want error
	}{
		{"SA200ALV;317652\rSA2", 16, nil},
		{"\rSA2", 1, nil},
		{"SA200UEX;1;x\r\n;y\r", 17, nil},
		{"SA200ALV;317652\r", 16, nil},
		{"SA200ALV;317", 0, nil},
		{"\x81", 0, nil},
		{"\x81\x00", 0, nil},
		{"\x81\x00\x02ab", 5, nil},
		{"\x02\x00\x01ab", 5, nil},
		{"\x81\x01", 0, plugins.ErrMalformed},
		{"#garbage", 0, plugins.ErrMalformed},
		{"S" + strings.Repeat("A", 5000), 0, plugins.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 20)], func(t *testing.T) {
			n, err := s.Frame([]byte(tt.in))
			if n != tt.n || !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Frame = %d, %v; want %d, %v", n, err, tt.n, tt.want)
			}
		})
	}
}

// TestServerTimedResend: a result without device time, resent on a new
// connection within the window, keeps its timestamp and key.
func TestServerTimedResend(t *testing.T) {
	dec := &Decoder{}
	frame := []byte("RES;4309999001;04;02;TEST")
	a, err := newSession(dec, nil, nil).Decode(frame, recv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newSession(dec, nil, nil).Decode(frame, recv.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a.Signals[0].Key() != b.Signals[0].Key() {
		t.Errorf("keys differ: %v, %v", a.Signals[0].Key(), b.Signals[0].Key())
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, &Decoder{}, recv, *update,
		plugintest.GoldenCase{In: "traccar.txt", Golden: "traccar.golden.jsonl", OK: 54, Bad: 2},
		plugintest.GoldenCase{In: "traccar-binary.hex", Golden: "traccar-binary.golden.jsonl", Hex: true, OK: 5, Bad: 0},
		plugintest.GoldenCase{In: "conversation/input.hex", Golden: "conversation/expected.jsonl", Hex: true, OK: 7, Bad: 0},
	)
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
	frames := conversation(b)
	for _, c := range []struct {
		name  string
		frame []byte
	}{{"ST300STT", frames[2]}, {"universal", frames[3]}, {"binary81", frames[5]}} {
		b.Run(c.name, func(b *testing.B) {
			s := newSession(&Decoder{}, nil, nil)
			b.SetBytes(int64(len(c.frame)))
			for b.Loop() {
				if _, err := s.Decode(c.frame, recv); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
