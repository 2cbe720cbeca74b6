package gt06

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
	"github.com/fleetcore/fleetcore/signal"
)

func TestCRC(t *testing.T) {
	tests := []struct {
		in   []byte
		want uint16
	}{
		{[]byte("123456789"), 0x906E}, // CRC-16/X-25 check value
		{mustHex("0d01012345678901234500 01"), 0x8CDD},
		{mustHex("05010001"), 0xD9DC}, // login response of the Concox document
	}
	for _, tt := range tests {
		if got := CRC(tt.in); got != tt.want {
			t.Errorf("CRC(%x) = %04x, want %04x", tt.in, got, tt.want)
		}
	}
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name    string
		frame   []byte
		allow   func(string) bool
		wantID  string
		wantAck string
		wantErr error
	}{
		{"document example", loginFrame, nil, "123456789012345", "787805010001d9dc0d0a", nil},
		{"IMEI with type and time zone", mustHex("787811010864717003664467100f190a0002c6d20d0a"), nil, "864717003664467", "", nil},
		{"refused by allow-list", loginFrame, func(string) bool { return false }, "", "", plugins.ErrUnauthorized},
		{"terminal id not BCD", Response(false, msgLogin, mustHex("a123456789012345"), 1), nil, "", "", plugins.ErrMalformed},
		{"terminal id too short", Response(false, msgLogin, mustHex("0123"), 1), nil, "", "", plugins.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{AllowDevice: tt.allow})
			frame := tt.frame
			res, err := s.Decode(frame, recvTime)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Decode error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if res.DeviceID != tt.wantID || s.(plugins.DeviceIdentifier).DeviceID() != tt.wantID {
				t.Errorf("device = %q, want %q", res.DeviceID, tt.wantID)
			}
			if len(res.Signals) != 0 {
				t.Errorf("login produced %d signals", len(res.Signals))
			}
			want := Response(false, msgLogin, nil, uint16(frame[len(frame)-6])<<8|uint16(frame[len(frame)-5]))
			if tt.wantAck != "" {
				want = mustHex(tt.wantAck)
			}
			if !bytes.Equal(res.Ack, want) {
				t.Errorf("ack = %x, want %x", res.Ack, want)
			}
		})
	}
}

func TestDataBeforeLogin(t *testing.T) {
	s := (&Decoder{}).NewSession(plugins.SessionConfig{})
	_, err := s.Decode(mustHex("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a"), recvTime)
	if !errors.Is(err, plugins.ErrNoDevice) {
		t.Fatalf("got %v, want ErrNoDevice", err)
	}
}

// TestDecode checks decoded values of real frames against values worked
// out by hand from the Concox layout (and, where Traccar asserts them, its
// test values).
func TestDecode(t *testing.T) {
	nan := math.NaN()
	type want struct {
		ts                  string
		lat, lon, speed, hd float64
		sats                float64
		valid               signal.Flag
		voltage, odometer   float64
		attrs               map[string]any
		ack                 string // "" = the standard response, "-" = none
		model               string // listener option model
	}
	tests := []struct {
		name  string
		frame string
		want  want
	}{
		{"0x12 GPS+LBS (Traccar fix assertion)", "78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a",
			want{ts: "2015-10-20T14:21:11Z", lat: 54.945346666666666, lon: 24.017622222222222, speed: 0, hd: 0, sats: 5, valid: signal.True,
				voltage: nan, odometer: nan, attrs: map[string]any{"mcc": int64(246), "mnc": int64(1), "lac": int64(110), "cell_id": int64(21978)}}},
		{"0x12 with mileage", "78782312" + "0f081b121d37cb01c8e2cc08afd3c020d50201940701d600a119" + "0041ee10" + "0576d1470d0a",
			want{ts: "2015-08-27T18:29:55Z", lat: 16.634708888888888, lon: 80.96707555555555, speed: 32, hd: 258, sats: 11, valid: signal.True,
				voltage: nan, odometer: 4320.784, attrs: map[string]any{"mcc": int64(404)}}},
		{"0x10 GPS only, south-west", "787819100e010903230ec803ae32a60653cded00180000020072feb70d0a",
			want{ts: "2014-01-09T03:35:14Z", lat: -34.30437666666667, lon: -58.975278333333335, speed: 0, hd: 0, sats: 8, valid: signal.True, voltage: nan, odometer: nan}},
		{"0x16 alarm: overspeed", "787825161108191102" + "08d402f264dc08289a4058d4c70901944600d300c0954606040600014057e90d0a",
			want{ts: "2017-08-25T17:02:08Z", lat: 27.466646666666666, lon: 76.04369777777778, speed: 88, hd: 199, sats: 4, valid: signal.True, voltage: nan, odometer: nan,
				attrs: map[string]any{"alarm": "overspeed", "ignition": true, "charging": true, "voltage_level": int64(6), "battery_level": int64(100), "gsm_signal": int64(4)}}},
		{"0x13 status/heartbeat", "78780a13c40604000201298f5b0d0a",
			want{lat: nan, lon: nan, speed: nan, hd: nan, sats: nan, voltage: nan, odometer: nan,
				attrs: map[string]any{"status": int64(0xc4), "blocked": true, "charging": true, "ignition": false, "gps_tracking": true, "voltage_level": int64(6), "gsm_signal": int64(4)}}},
		{"0x28 LBS only: position absent", "78783b2810010d02020201cc00287d001f713e287d001f7231287d001e232d287d001f4018000000000000000000000000000000000000ff00020005b14b0d0a",
			want{ts: "2016-01-13T02:02:02Z", lat: nan, lon: nan, speed: nan, hd: nan, sats: nan, voltage: nan, odometer: nan,
				attrs: map[string]any{"mcc": int64(460), "mnc": int64(0), "lac": int64(10365), "cell_id": int64(8049), "cells": int64(4)}}},
		{"0x95 alarm: hard acceleration", "78780c95130a0209321c90000112800d0a",
			want{ts: "2019-10-02T09:50:28Z", lat: nan, lon: nan, speed: nan, hd: nan, sats: nan, voltage: nan, odometer: nan,
				attrs: map[string]any{"alarm": "hard_acceleration", "alarm_code": int64(0x90)}}},
		{"0x7979 0x94 external voltage", "79790008940000ed0289d6860d0a",
			want{lat: nan, lon: nan, speed: nan, hd: nan, sats: nan, voltage: 2.37, odometer: nan, ack: "-"}},
		{"0x7979 0x94 ICCID", "79790020940a035985708236675805200502187214018966051912408052452f000355560d0a",
			want{lat: nan, lon: nan, speed: nan, hd: nan, sats: nan, voltage: nan, odometer: nan, ack: "-",
				attrs: map[string]any{"iccid": "8966051912408052452"}}},
		{"0x7979 0x21 current position text", "7979007121000000000143757272656e7420706f736974696f6e214c61743a4e35342e3733393333322c4c6f6e3a4532352e3237333237302c436f757273653a3132362e35332c53706565643a302e303030302c4461746554696d653a323031372d30352d3236202031303a32373a3437000bbee30d0a",
			want{ts: "2017-05-26T10:27:47Z", lat: 54.739332, lon: 25.27327, speed: 0, hd: 126.53, sats: nan, valid: signal.True, voltage: nan, odometer: nan, ack: "-"}},
		// Model variants. Values worked out from the layouts in README.md.
		{"0x22 NT family, found without the model option",
			"78783c22" + "01" + "0357789648774484" + "180c06142038" + "180c06142038cb03313ee4061fe98300185e" + "09000000000000000" + "0" +
				"46" + "0984" + "28" + "4c" + "00" + "02" + "000000" + "000171" + "01d6f35d0d0a",
			want{ts: "2024-12-06T20:32:56Z", lat: -29.755006666666667, lon: -57.08593944444444, speed: 0, hd: 94, sats: 11, valid: signal.True,
				voltage: 24.36, odometer: 0, attrs: map[string]any{"battery": 4.0, "engine_hours": 6.15, "gsm_signal": int64(76), "location_source": int64(1)}}},
		{"0x36 Jimi 4G status modules", "787817360005040002003201010018020192006a015f0324aeaf0d0a",
			want{lat: nan, lon: nan, speed: nan, hd: nan, sats: nan, voltage: nan, odometer: nan,
				attrs: map[string]any{"startup_status": int64(1), "battery_level": int64(95), "gsm_signal": int64(4), "language": int64(2)}}},
		{"0x16 alarm 0x19 on an LW model: hard acceleration", "78782516180516150812c804b50ee80880e40805dcf909012e000000986633460604190106c393490d0a",
			want{model: "LW4G-4B", ts: "2024-05-22T21:08:18Z", lat: 43.874831111111114, lon: -79.25817333333333, speed: 5, hd: 249, sats: 8, valid: signal.True, voltage: nan, odometer: nan,
				attrs: map[string]any{"alarm": "hard_acceleration", "alarm_code": int64(0x19)}}},
		{"0x16 alarm 0x19 elsewhere: low battery", "78782516180516150812c804b50ee80880e40805dcf909012e000000986633460604190106c393490d0a",
			want{ts: "2024-05-22T21:08:18Z", lat: 43.874831111111114, lon: -79.25817333333333, speed: 5, hd: 249, sats: 8, valid: signal.True, voltage: nan, odometer: nan,
				attrs: map[string]any{"alarm": "low_battery"}}},
		{"0x13 on an LW model: supply voltage in the last two bytes", "78780a13560604f0830ccf986f0d0a",
			want{model: "LW4G-4B", lat: nan, lon: nan, speed: nan, hd: nan, sats: nan, voltage: 13.100000000000001, odometer: nan,
				attrs: map[string]any{"battery_level": int64(100), "gsm_signal": int64(4)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := loggedInModel(t, tt.want.model)
			frame := mustHex(tt.frame)
			res, err := s.Decode(frame, recvTime)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(res.Signals) != 1 {
				t.Fatalf("got %d signals, want 1", len(res.Signals))
			}
			g, w := res.Signals[0], tt.want
			wantTS := recvTime
			if w.ts != "" {
				wantTS, _ = time.Parse(time.RFC3339, w.ts)
			}
			if !g.TS.Equal(wantTS) {
				t.Errorf("ts = %v, want %v", g.TS, wantTS)
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{{"lat", g.Lat, w.lat}, {"lon", g.Lon, w.lon}, {"speed", g.Speed, w.speed}, {"heading", g.Heading, w.hd},
				{"sats", g.Sats, w.sats}, {"voltage", g.Voltage, w.voltage}, {"odometer", g.Odometer, w.odometer}} {
				if math.IsNaN(f.want) != math.IsNaN(f.got) || (!math.IsNaN(f.want) && math.Abs(f.got-f.want) > 1e-9) {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
			if g.Valid != w.valid {
				t.Errorf("valid = %v, want %v", g.Valid, w.valid)
			}
			for k, v := range w.attrs {
				if g.Attrs[k] != v {
					t.Errorf("attr %s = %#v, want %#v", k, g.Attrs[k], v)
				}
			}
			if g.DeviceID != "123456789012345" || g.Protocol != Name || !bytes.Equal(g.Frame, frame) || !g.Recv.Equal(recvTime) {
				t.Errorf("device/protocol/frame/recv not set: %q %q %x %v", g.DeviceID, g.Protocol, g.Frame, g.Recv)
			}
			switch w.ack {
			case "-":
				if res.Ack != nil {
					t.Errorf("ack = %x, want none", res.Ack)
				}
			default:
				p, _ := parsePacket(frame, 0)
				if want := Response(p.long, p.proto, nil, p.serial); !bytes.Equal(res.Ack, want) {
					t.Errorf("ack = %x, want %x", res.Ack, want)
				}
			}
		})
	}
}

func TestTimeZoneFromLogin(t *testing.T) {
	tests := []struct {
		name string
		opts map[string]string
		want time.Time
	}{
		{"declared UTC-4 applied", nil, time.Date(2015, 10, 20, 18, 21, 11, 0, time.UTC)},
		{"device_time = utc", map[string]string{"device_time": "utc"}, time.Date(2015, 10, 20, 14, 21, 11, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{Options: plugins.MustDecodeOptions(&Decoder{}, tt.opts)})
			// Extension 0x190a: offset 4:00, bit 3 set = west (UTC-4).
			if _, err := s.Decode(mustHex("787811010864717003664467100f190a0002c6d20d0a"), recvTime); err != nil {
				t.Fatal(err)
			}
			res, err := s.Decode(mustHex("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a"), recvTime)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Signals[0].TS.Equal(tt.want) {
				t.Errorf("ts = %v, want %v", res.Signals[0].TS, tt.want)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	res, err := loggedIn(t).Decode(mustHex("787801080d0a"), recvTime)
	if err != nil || len(res.Signals) != 0 || res.Ack != nil {
		t.Errorf("keep-alive: %+v, %v; want nothing", res, err)
	}
}

func TestTimeRequest(t *testing.T) {
	res, err := loggedIn(t).Decode(mustHex("7878058a000688290d0a"), recvTime)
	if err != nil {
		t.Fatal(err)
	}
	want := Response(false, msgTimeRequest, []byte{26, 11, 25, 12, 0, 0}, 6)
	if !bytes.Equal(res.Ack, want) || len(res.Signals) != 0 {
		t.Errorf("ack = %x, want %x; %d signals", res.Ack, want, len(res.Signals))
	}
}

func TestFrame(t *testing.T) {
	login := loginFrame
	pos := mustHex("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a")
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    int
		wantErr error
	}{
		{"empty", nil, 0, 0, nil},
		{"one start byte", login[:1], 0, 0, nil},
		{"header only", login[:3], 0, 0, nil},
		{"all but the last byte", login[:len(login)-1], 0, 0, nil},
		{"exact", login, 0, len(login), nil},
		{"two packets", append(append([]byte{}, login...), pos...), 0, len(login), nil},
		{"0x7979", mustHex("79790008940000ed0289d6860d0a"), 0, 14, nil},
		{"garbage start", []byte("GET / HTTP/1.1\r\n"), 0, 0, plugins.ErrMalformed},
		{"mixed start bits", mustHex("7879"), 0, 0, plugins.ErrMalformed},
		{"keep-alive of some clones", mustHex("787801080d0a"), 0, 6, nil},
		{"length 1 without stop bits", mustHex("787801080d0b"), 0, 0, plugins.ErrMalformed},
		{"length below minimum", mustHex("787803080d0a0000"), 0, 0, plugins.ErrMalformed},
		{"stop bits wrong", mustHex("78780d01012345678901234500018cdd0d0b"), 0, 0, plugins.ErrMalformed},
		{"0x7979 beyond MaxFrame", mustHex("7979ffff"), 1024, 0, plugins.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{MaxFrame: tt.max})
			n, err := s.Frame(tt.in)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Frame error = %v, want %v", err, tt.wantErr)
			}
			if n != tt.want {
				t.Errorf("Frame = %d, want %d", n, tt.want)
			}
		})
	}
}

func TestBadCRC(t *testing.T) {
	frame := mustHex("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a")
	frame[10] ^= 0x01
	res, err := loggedIn(t).Decode(frame, recvTime)
	if !errors.Is(err, plugins.ErrChecksum) {
		t.Fatalf("got %v, want ErrChecksum", err)
	}
	if res.Ack != nil || len(res.Signals) != 0 {
		t.Errorf("a rejected frame must not ack or yield signals: %+v", res)
	}
}

// conformanceFrames are a login and data packets as one device session
// sends them: most carry device time; the 0x13 status/heartbeat does not
// (its resend keeps its key by its bytes and serial number).
var conformanceFrames = []string{
	"78780d01012345678901234500018cdd0d0a",
	"78780a13c40604000201298f5b0d0a",
	"78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a",
	"787819100e010903230ec803ae32a60653cded00180000020072feb70d0a",
	"787825161108191102" + "08d402f264dc08289a4058d4c70901944600d300c0954606040600014057e90d0a",
	"78783b2810010d02020201cc00287d001f713e287d001f7231287d001e232d287d001f4018000000000000000000000000000000000000ff00020005b14b0d0a",
	"797900a87000000001020035000100003300125d62bf3a0800e804b5994308814a87001d5d00340006115d62bf29000011000a012e0262000000000000000100080353760100" +
		"0129800002000803102608593397620003000a8901260852293397626600180002017d002b000116002c00045d6278ea0009000108000a00010b002800010b002e00040000f0c1002a00010000290004000000be0030000a000100b4000a00b402d00006c5490d0a",
}

func TestConformance(t *testing.T) {
	var frames [][]byte
	for _, f := range conformanceFrames {
		frames = append(frames, mustHex(f))
	}
	plugintest.Run(t, &Decoder{}, plugintest.Cases{
		Frames:    frames,
		Oversized: [][]byte{mustHex("7979ffff"), mustHex("797900010d0a")},
	})
}

func BenchmarkDecode(b *testing.B) {
	var frames [][]byte
	for _, f := range conformanceFrames[1:] {
		frames = append(frames, mustHex(f))
	}
	s := loggedIn(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Decode(frames[i%len(frames)], recvTime); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// TestStatus2Forms checks that a Jimi 0x36 status packet whose first bytes
// happen to read as a date is not taken for the VL103 location form, and
// that the VL form is found by the model option.
func TestStatus2Forms(t *testing.T) {
	// terminal info 0x46, level 5, GSM 4, alarm 0, language 2 (reads as
	// 2046-05-04 00:02:00), modules 0x0032, 0x0018, 0x006A and a 20-byte
	// module 0x0099.
	jimi := mustHex("4605040002" + "00320101" + "0018020192" + "006a015f" + "009914" + "0000000000000000000000000000000000000000")
	vl := mustHex("190c1d0f1724cf026cc9140c367d4000940001cc0025ef0540e88c01000000000064051428000006c3000001453f9201")
	tests := []struct {
		name    string
		model   string
		content []byte
		want    map[string]any
		wantLat bool
	}{
		{"Jimi modules", "", jimi, map[string]any{"startup_status": int64(1), "battery_level": int64(95), "gsm_signal": int64(4)}, false},
		{"VL103 found by its shape", "", vl, map[string]any{"driver_id": "c3000001453f9201", "battery": 4.0}, true},
		{"VL103 by model", "VL103", vl, map[string]any{"driver_id": "c3000001453f9201", "cell_id": int64(0x0540e88c)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := loggedInModel(t, tt.model).Decode(Response(false, msgStatus2, tt.content, 9), recvTime)
			if err != nil || len(res.Signals) != 1 {
				t.Fatalf("Decode = %d signals, %v", len(res.Signals), err)
			}
			g := res.Signals[0]
			if got := !math.IsNaN(g.Lat); got != tt.wantLat {
				t.Errorf("position present = %v, want %v (lat %v)", got, tt.wantLat, g.Lat)
			}
			for k, v := range tt.want {
				if g.Attrs[k] != v {
					t.Errorf("attr %s = %#v, want %#v", k, g.Attrs[k], v)
				}
			}
		})
	}
}
