package freematics

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
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

func newSession(d *Decoder, tr plugins.Transport, opts map[string]string) *Session {
	return d.NewSession(plugins.SessionConfig{Transport: tr, MaxFrame: 4096, Options: plugins.MustDecodeOptions(d, opts), Logger: hclog.NewNullLogger()}).(*Session)
}

// withChecksum completes "HEADER#BODY" with its checksum.
func withChecksum(msg string) []byte { return AppendChecksum([]byte(msg)) }

func TestChecksumCorpus(t *testing.T) {
	// The Freematics checksum over frames captured from devices; the last
	// four corpus frames were edited upstream and carry stale checksums.
	tests := []struct {
		frame string
		err   error
	}{
		{"UCFLFAYM#EV=4,TS=373624,ID=UCFLFAYM,SSI=-79,VIN=WAUZZZ8K9CA123456*D7", nil},
		{"UCFLFAYM#0:33770,24:300,82:53.000000,*F9", nil},
		{"M0ZR4X0#0:204391,11:140221,10:8445000,A:49.215920,B:18.737755,C:410,D:0,E:208,24:1252,20:0;0;0,82:47*B5", nil},
		{"1#EV=2,TS=1871902,ID=ESP32305C06C40A24*AC", nil},
		{"M0ZR4X0#0:566624,24:1246,20:0;0;0*D", plugins.ErrChecksum},
		{"M0ZR4X0#DF=4208,SSI=-71,EV=1,TS=20866,ID=M0ZR4X0*9E", plugins.ErrChecksum},
		{"M0ZR4X0#0:566624,24:1246,20:0;0;0*16", nil},
		{"M0ZR4X0#0:566624,24:1246,20:0;0;0", plugins.ErrMalformed},
		{"M0ZR4X0#0:566624*XYZ", plugins.ErrMalformed},
		{"#0:1*" + "1", plugins.ErrChecksum},
		{"0:1*9B", plugins.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.frame, func(t *testing.T) {
			_, _, err := split([]byte(tt.frame))
			if tt.err == nil && err != nil || tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("split error = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestDecodeRecords(t *testing.T) {
	nan := math.NaN()
	type want struct {
		ts                            string
		lat, lon, alt, speed, heading float64
		sats, voltage, rpm, coolant   float64
		load, throttle                float64
		attrs                         map[string]any
	}
	tests := []struct {
		name  string
		login string // sent first in the same session, when set
		frame []byte
		want  []want
	}{
		{
			name:  "gps record with date and time",
			frame: []byte("M0ZR4X0#0:204391,11:140221,10:8445000,A:49.215920,B:18.737755,C:410,D:0,E:208,24:1252,20:0;0;0,82:47*B5"),
			want: []want{{ts: "2021-02-14T08:44:50Z", lat: 49.215920, lon: 18.737755, alt: 410, speed: 0, heading: 208,
				sats: nan, voltage: 12.52, rpm: nan, coolant: nan, load: nan, throttle: nan,
				attrs: map[string]any{"tick_ms": int64(204391), "acc_x": 0.0, "acc_y": 0.0, "acc_z": 0.0, "device_temp_c": 4.7}}},
		},
		{
			// Corpus frame with OBD values (checksum recomputed: the upstream
			// test edited the frame and kept a stale one). OBD PIDs come
			// scaled: 10C rpm, 10D km/h, 105 coolant, 104 load, 111 throttle.
			name:  "obd values after login",
			login: "0#EV=1,TS=60000,ID=ID1C6606C40A24",
			frame: withChecksum("1#0:68338,10D:79,30:1010,105:199,10C:4375,104:56,111:62,20:0;-1;95,10:6454200,11:251126,A:-32.727482,B:150.150301,C:159,D:0,F:5,24:1250"),
			want: []want{{ts: "2026-11-25T06:45:42Z", lat: -32.727482, lon: 150.150301, alt: 159, speed: 0, heading: nan,
				sats: 5, voltage: 12.5, rpm: 4375, coolant: 199, load: 56, throttle: 62,
				attrs: map[string]any{"tick_ms": int64(68338), "trip_distance": 1010.0, "obd_0d_speed_kmh": 79.0,
					"acc_x": 0.0, "acc_y": -1.0, "acc_z": 95.0}}},
		},
		{
			// Two records with GPS time of day but no date: the day is the
			// one nearest to the tick time (login TS=100000 ms at recv).
			name:  "gps time without date",
			login: "0#EV=1,TS=100000,ID=ID1C6606C40A24",
			frame: []byte("1#0:102560,20:0;0;0,24:425,10:4285580,A:-35.803696,B:175.748413,C:0.22,D:0.41,F:5,0:103174,20:0;0;0,24:423,10:4285660,A:-35.803696,B:175.748413,C:0.22,D:0.41,F:5,30:88193792*21"),
			want: []want{
				{ts: "2026-11-25T04:28:55.8Z", lat: -35.803696, lon: 175.748413, alt: 0.22, speed: 0.41, heading: nan, sats: 5, voltage: 4.25,
					rpm: nan, coolant: nan, load: nan, throttle: nan,
					attrs: map[string]any{"tick_ms": int64(102560), "acc_x": 0.0, "acc_y": 0.0, "acc_z": 0.0}},
				{ts: "2026-11-25T04:28:56.6Z", lat: -35.803696, lon: 175.748413, alt: 0.22, speed: 0.41, heading: nan, sats: 5, voltage: 4.23,
					rpm: nan, coolant: nan, load: nan, throttle: nan,
					attrs: map[string]any{"tick_ms": int64(103174), "acc_x": 0.0, "acc_y": 0.0, "acc_z": 0.0, "trip_distance": 88193792.0}},
			},
		},
		{
			// No GPS time: the device tick against the login (TS=40000 ms
			// received at recv).
			name:  "tick times from login",
			login: "0#EV=1,TS=40000,ID=ID1C6606C40A24",
			frame: []byte("1#0:49244,20:0;0;0,24:423,0:50779,20:0;0;0,24:425,30:32924444*38"),
			want: []want{
				{ts: "2026-11-25T12:00:09.244Z", lat: nan, lon: nan, alt: nan, speed: nan, heading: nan, sats: nan, voltage: 4.23,
					rpm: nan, coolant: nan, load: nan, throttle: nan,
					attrs: map[string]any{"tick_ms": int64(49244), "acc_x": 0.0, "acc_y": 0.0, "acc_z": 0.0}},
				{ts: "2026-11-25T12:00:10.779Z", lat: nan, lon: nan, alt: nan, speed: nan, heading: nan, sats: nan, voltage: 4.25,
					rpm: nan, coolant: nan, load: nan, throttle: nan,
					attrs: map[string]any{"tick_ms": int64(50779), "acc_x": 0.0, "acc_y": 0.0, "acc_z": 0.0, "trip_distance": 32924444.0}},
			},
		},
		{
			name:  "device id header, trailing comma, no time: receive time",
			frame: []byte("UCFLFAYM#0:33770,24:300,82:53.000000,*F9"),
			want: []want{{ts: "2026-11-25T12:00:00Z", lat: nan, lon: nan, alt: nan, speed: nan, heading: nan, sats: nan, voltage: 3,
				rpm: nan, coolant: nan, load: nan, throttle: nan,
				attrs: map[string]any{"tick_ms": int64(33770), "device_temp_c": 5.3}}},
		},
		{
			name:  "equals separator, unknown key kept",
			frame: withChecksum("M0ZR4X0#0=1000,11=010125,10=00000000,A=1.5,B=2.5,90=abc,1FF=7"),
			want: []want{{ts: "2025-01-01T00:00:00Z", lat: 1.5, lon: 2.5, alt: nan, speed: nan, heading: nan, sats: nan, voltage: nan,
				rpm: nan, coolant: nan, load: nan, throttle: nan,
				attrs: map[string]any{"tick_ms": int64(1000), "key_90": "abc", "obd_ff": 7.0}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(&Decoder{}, plugins.UDP, nil)
			if tt.login != "" {
				if _, err := s.Decode(withChecksum(tt.login), recv); err != nil {
					t.Fatalf("login: %v", err)
				}
			}
			frame := append([]byte(nil), tt.frame...)
			res, err := s.Decode(frame, recv)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(res.Signals) != len(tt.want) {
				t.Fatalf("got %d signals, want %d", len(res.Signals), len(tt.want))
			}
			for i := range frame {
				frame[i] = 'x'
			}
			for i, w := range tt.want {
				g := res.Signals[i]
				if got := g.TS.Format(time.RFC3339Nano); got != w.ts {
					t.Errorf("signal %d ts = %s, want %s", i, got, w.ts)
				}
				for _, c := range []struct {
					name      string
					got, want float64
				}{{"lat", g.Lat, w.lat}, {"lon", g.Lon, w.lon}, {"alt", g.Alt, w.alt}, {"speed", g.Speed, w.speed},
					{"heading", g.Heading, w.heading}, {"sats", g.Sats, w.sats}, {"voltage", g.Voltage, w.voltage},
					{"rpm", g.RPM, w.rpm}, {"coolant", g.Coolant, w.coolant}, {"engine_load", g.EngineLoad, w.load},
					{"throttle", g.Throttle, w.throttle}} {
					if !(math.IsNaN(c.got) && math.IsNaN(c.want)) && math.Abs(c.got-c.want) > 1e-9 {
						t.Errorf("signal %d %s = %v, want %v", i, c.name, c.got, c.want)
					}
				}
				if !reflect.DeepEqual(g.Attrs, w.attrs) {
					t.Errorf("signal %d attrs = %v, want %v", i, g.Attrs, w.attrs)
				}
				if g.Protocol != Name || g.DeviceID == "" || !g.Recv.Equal(recv) {
					t.Errorf("signal %d protocol %q device %q recv %v", i, g.Protocol, g.DeviceID, g.Recv)
				}
				if !bytes.Equal(g.Frame, tt.frame) {
					t.Errorf("signal %d frame = %q, want a copy of the input", i, g.Frame)
				}
			}
		})
	}
}

func TestEvents(t *testing.T) {
	d := &Decoder{}
	s := newSession(d, plugins.UDP, nil)

	// Login: the reply carries the assigned feed id, the event, the
	// datagram count and the server's Unix time, with a checksum, exactly as
	// the Freematics Hub server writes it.
	res, err := s.Decode([]byte("0#EV=1,TS=23930,ID=ID1C6606C40A24,SK=TEST_SERVER_KEY*49"), recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 0 || res.DeviceID != "ID1C6606C40A24" {
		t.Errorf("login result = %+v", res)
	}
	want := string(withChecksum("100#EV=1,RX=1,TM=1795608000"))
	if string(res.Ack) != want {
		t.Errorf("login ack = %q, want %q", res.Ack, want)
	}
	if _, _, err := split(res.Ack); err != nil {
		t.Errorf("login ack does not verify: %v", err)
	}

	// Data by feed id, first one gets a sync reply, the next within 15 s none.
	res, err = s.Decode(withChecksum("100#0:24000,24:1200"), recv.Add(16*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 1 || res.Signals[0].DeviceID != "ID1C6606C40A24" {
		t.Fatalf("data by feed id = %+v", res.Signals)
	}
	if got, want := res.Signals[0].TS, recv.Add(70*time.Millisecond); !got.Equal(want) {
		t.Errorf("tick time = %v, want %v", got, want)
	}
	if want := string(withChecksum("100#EV=3,RX=2,TM=1795608016")); string(res.Ack) != want {
		t.Errorf("sync ack = %q, want %q", res.Ack, want)
	}
	res, err = s.Decode(withChecksum("100#0:25000,24:1200"), recv.Add(20*time.Second))
	if err != nil || res.Ack != nil {
		t.Errorf("second data: ack %q err %v, want no ack", res.Ack, err)
	}

	// A new session (new UDP source port) still knows feed 100.
	s2 := newSession(d, plugins.UDP, nil)
	res, err = s2.Decode(withChecksum("100#0:26000,24:1200"), recv)
	if err != nil || len(res.Signals) != 1 || res.Signals[0].DeviceID != "ID1C6606C40A24" {
		t.Errorf("feed id in new session: %+v, %v", res, err)
	}

	// Event with data: a record at the receive time; ACK (6) gets no reply.
	res, err = s.Decode([]byte("UCFLFAYM#EV=4,TS=373624,ID=UCFLFAYM,SSI=-79,VIN=WAUZZZ8K9CA123456*D7"), recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signals) != 1 || res.Signals[0].Attrs["vin"] != "WAUZZZ8K9CA123456" || res.Signals[0].Attrs["rssi"] != int64(-79) {
		t.Errorf("reconnect with VIN = %+v", res.Signals)
	}
	if !strings.HasPrefix(string(res.Ack), "101#EV=4,") {
		t.Errorf("reconnect ack = %q, want feed 101", res.Ack)
	}
	res, err = s.Decode(withChecksum("101#EV=6,TK=3,MSG=OK"), recv)
	if err != nil || res.Ack != nil || len(res.Signals) != 1 || res.Signals[0].Attrs["result"] != "OK" {
		t.Errorf("command ack: %+v, %v", res, err)
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
		{"unknown feed id", nil, nil, withChecksum("7#0:1000,24:1200"), plugins.ErrNoDevice},
		{"bad checksum", nil, nil, []byte("M0ZR4X0#0:566624,24:1246,20:0;0;0*D"), plugins.ErrChecksum},
		{"wrong server key", map[string]string{"server_key": "secret"}, nil, withChecksum("0#EV=1,TS=1,ID=DEV12345,SK=guess"), plugins.ErrUnauthorized},
		{"not allowed", nil, func(string) bool { return false }, withChecksum("DEV12345#0:1,24:1"), plugins.ErrUnauthorized},
		{"bad number", nil, nil, withChecksum("DEV12345#0:1,A:north"), plugins.ErrMalformed},
		{"bad key", nil, nil, withChecksum("DEV12345#0:1,ZZ:1"), plugins.ErrMalformed},
		{"bad triple", nil, nil, withChecksum("DEV12345#0:1,20:1;2"), plugins.ErrMalformed},
		{"event without number", nil, nil, withChecksum("DEV12345#EV=,ID=DEV12345"), plugins.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&Decoder{}).NewSession(plugins.SessionConfig{Transport: plugins.UDP, MaxFrame: 4096, Options: plugins.MustDecodeOptions(&Decoder{}, tt.opts), AllowDevice: tt.allow})
			res, err := s.Decode(tt.frame, recv)
			if !errors.Is(err, tt.err) {
				t.Errorf("error = %v, want %v", err, tt.err)
			}
			if len(res.Signals) != 0 {
				t.Errorf("rejected frame produced %d signals", len(res.Signals))
			}
		})
	}
	s := newSession(&Decoder{}, plugins.UDP, map[string]string{"server_key": "secret"})
	if _, err := s.Decode(withChecksum("0#EV=1,TS=1,ID=DEV12345,SK=secret"), recv); err != nil {
		t.Errorf("login with the right key: %v", err)
	}
}

func TestFrameTCP(t *testing.T) {
	s := newSession(&Decoder{}, plugins.TCP, nil)
	line := append(withChecksum("DEV12345#0:1,24:1200"), '\r', '\n')
	stream := append(append([]byte(nil), line...), line...)
	for i := range len(line) - 1 {
		if n, err := s.Frame(stream[:i]); n != 0 || err != nil {
			t.Fatalf("Frame(prefix %d) = %d, %v", i, n, err)
		}
	}
	if n, err := s.Frame(stream); n != len(line) || err != nil {
		t.Fatalf("Frame(stream) = %d, %v; want %d", n, err, len(line))
	}
	res, err := s.Decode(stream[:len(line)], recv)
	if err != nil || len(res.Signals) != 1 {
		t.Fatalf("Decode(line) = %+v, %v", res, err)
	}
	if want := string(withChecksum("100#EV=3,RX=1,TM=1795608000")) + "\n"; string(res.Ack) != want {
		t.Errorf("TCP sync reply = %q, want %q (a line)", res.Ack, want)
	}
	if _, err := s.Frame(bytes.Repeat([]byte("A"), 4096)); !errors.Is(err, plugins.ErrTooLarge) {
		t.Errorf("Frame(no newline in MaxFrame) error = %v", err)
	}
}

func TestCorpusGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "traccar.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = replay.Run(&Decoder{}, bytes.NewReader(in), &out, replay.Options{Transport: plugins.UDP, Now: func() time.Time { return recv }})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "traccar.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("replay output differs from %s (run with -update after checking):\n%s", golden, out.String())
	}
	decoded, rejected := 0, 0
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		if strings.Contains(line, `"error"`) {
			rejected++
		} else {
			decoded++
		}
	}
	// 8 of 12 corpus frames are accepted (2 logins/logouts give no record);
	// the 4 edited upstream frames fail their checksum.
	if decoded != 9 || rejected != 4 {
		t.Errorf("decoded %d signals, rejected %d frames; want 9 and 4", decoded, rejected)
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := []byte("M0ZR4X0#0:204391,11:140221,10:8445000,A:49.215920,B:18.737755,C:410,D:0,E:208,24:1252,20:0;0;0,82:47*B5")
	s := newSession(&Decoder{}, plugins.UDP, nil)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := s.Decode(frame, recv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

var _ = signal.New

func conformanceFrames(suffix string) [][]byte {
	var out [][]byte
	for _, f := range [][]byte{
		withChecksum("0#EV=1,TS=23930,ID=ID1C6606C40A24"),
		[]byte("M0ZR4X0#0:204391,11:140221,10:8445000,A:49.215920,B:18.737755,C:410,D:0,E:208,24:1252,20:0;0;0,82:47*B5"),
		withChecksum("100#0:68338,10D:79,30:1010,105:199,10C:4375,104:56,111:62,20:0;-1;95,10:6454200,11:251126,A:-32.727482,B:150.150301,C:159,D:0,F:5,24:1250"),
		withChecksum("100#0:69338,10:6454300,11:251126,A:-32.727,B:150.15,0:70338,10:6454400,11:251126,A:-32.728,B:150.151"),
		// No device time: an event record stamped by the server, and a
		// record timed by its tick; resends must keep their keys too.
		withChecksum("ID1C6606C40A24#EV=4,TS=80000,ID=ID1C6606C40A24,SSI=-79"),
		withChecksum("100#0:81000,24:1251"),
	} {
		out = append(out, append(f, suffix...))
	}
	return out
}

func TestConformance(t *testing.T) {
	t.Run("udp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Transport: plugins.UDP, Frames: conformanceFrames("")})
	})
	t.Run("tcp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Transport: plugins.TCP, Frames: conformanceFrames("\r\n")})
	})
}
