package meitrack

import (
	"bufio"
	"encoding/hex"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
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

func decode(t *testing.T, frame []byte, opts map[string]string) plugins.Result {
	t.Helper()
	res, err := newSession(&Decoder{}, nil, opts).Decode(frame, recv)
	if err != nil {
		t.Fatalf("Decode(%q): %v", frame, err)
	}
	if err := plugins.CheckSignals(res.Signals); err != nil {
		t.Fatalf("Decode(%q): %v", frame, err)
	}
	return res
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
	sc.Buffer(make([]byte, 64<<10), 1<<20)
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

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6 }

// withSum frames a message body ("$$A…*") with its checksum and CRLF.
func withSum(body string) []byte {
	return []byte(body + checksum([]byte(body)) + "\r\n")
}

// frame builds a valid message from ",<imei>,<cmd>,<data>" with flag 'Q'.
func frame(rest string) []byte {
	n := len(rest) + 5 // "*XX\r\n"
	return withSum("$$Q" + strconv.Itoa(n) + rest + "*")
}

func TestReport(t *testing.T) {
	s := decode(t, withSum("$$D149,867047043162018,AAA,35,-1.264865,36.800705,211001105240,A,9,20,41.0,323,1,1697,1,0,000|00||,0000,4.33|12.96|1.92|2.72|2.69,0.000000|0|0.000000,*"), nil).Signals[0]
	if s.DeviceID != "867047043162018" || s.TS.Format(time.RFC3339) != "2021-10-01T10:52:40Z" || !near(s.Lat, -1.264865) || !near(s.Lon, 36.800705) || s.Valid != signal.True {
		t.Errorf("device %s ts %v pos %v,%v valid %v", s.DeviceID, s.TS, s.Lat, s.Lon, s.Valid)
	}
	if s.Sats != 9 || s.Speed != 41 || s.Heading != 323 || s.HDOP != 1 || s.Alt != 1697 || s.Odometer != 0.001 || !near(s.Voltage, 12.96) {
		t.Errorf("sats %v speed %v heading %v hdop %v alt %v odo %v voltage %v", s.Sats, s.Speed, s.Heading, s.HDOP, s.Alt, s.Odometer, s.Voltage)
	}
	want := map[string]any{"event": int64(35), "rssi": int64(20), "battery_v": 4.33, "mcc": int64(0), "mnc": int64(0), "input": int64(0), "output": int64(0), "event_data": "0.000000|0|0.000000", "command": "AAA"}
	for k, v := range want {
		if s.Attrs[k] != v {
			t.Errorf("attr %s = %#v, want %#v", k, s.Attrs[k], v)
		}
	}
	if _, ok := s.Attrs["lac"]; ok {
		t.Errorf("empty lac decoded: %v", s.Attrs)
	}
}

func TestReportHexAnalogAndTail(t *testing.T) {
	body := ",863835026871173,AAA,1,34.516428,10.470160,170915154043,A,9,12,68,74,0.9,9,1988259,525882,605|2|008C|0007B5A6,0200,0003|0000|0000|01A6|0571,00000001,,3,0A32,06FB2E|0100FF,360,511"
	for _, tt := range []struct {
		model        string
		battery, pow any
		voltage      float64
	}{
		{"", nil, int64(0x571), math.NaN()},
		{"T333", 4.22, nil, 13.93},
	} {
		opts := map[string]string{}
		if tt.model != "" {
			opts["model"] = tt.model
		}
		s := decode(t, frame(body), opts).Signals[0]
		if tt.model == "" {
			if s.Attrs["battery_raw"] != int64(0x1a6) || s.Attrs["power_raw"] != tt.pow || !math.IsNaN(s.Voltage) {
				t.Errorf("auto: attrs %v voltage %v", s.Attrs, s.Voltage)
			}
		} else if !near(s.Attrs["battery_v"].(float64), 4.22) || !near(s.Voltage, tt.voltage) {
			t.Errorf("%s: battery %v voltage %v", tt.model, s.Attrs["battery_v"], s.Voltage)
		}
		want := map[string]any{"alarm": "sos", "mcc": int64(605), "mnc": int64(2), "lac": int64(0x8c), "cid": int64(0x7b5a6), "input": int64(2), "output": int64(0),
			"adc1": int64(3), "fuel_level": 10.5, "temp6": -12.34, "temp1": 2.55, "data": "511", "event_data": "00000001"}
		for k, v := range want {
			if got, ok := s.Attrs[k].(float64); ok {
				if !near(got, v.(float64)) {
					t.Errorf("attr %s = %v, want %v", k, got, v)
				}
				continue
			}
			if s.Attrs[k] != v {
				t.Errorf("attr %s = %#v, want %#v", k, s.Attrs[k], v)
			}
		}
	}
}

func TestCCE(t *testing.T) {
	frames := conversation(t)
	res := decode(t, frames[1], nil)
	if len(res.Signals) != 1 {
		t.Fatalf("%d signals", len(res.Signals))
	}
	s := res.Signals[0]
	if s.TS.Format(time.RFC3339) != "2023-02-20T10:15:43Z" || !near(s.Lat, 22.510033) || !near(s.Lon, 114.05637) || s.Attrs["mcc"] != int64(460) || s.Attrs["battery_v"] != 4.13 || s.Attrs["lock"] != true {
		t.Errorf("ts %v pos %v,%v attrs %v", s.TS, s.Lat, s.Lon, s.Attrs)
	}
	if string(res.Ack) != "@@[27,864606044993987,CCE,1*"+checksum([]byte("@@[27,864606044993987,CCE,1*"))+"\r\n" {
		t.Errorf("ack %q", res.Ack)
	}
}

func TestCCEWithoutAck(t *testing.T) {
	res := decode(t, conversation(t)[1], map[string]string{"ack_cce": "false"})
	if len(res.Signals) != 1 || res.Ack != nil {
		t.Errorf("%d signals, ack %q", len(res.Signals), res.Ack)
	}
}

func TestCCC(t *testing.T) {
	frames := conversation(t)
	res := decode(t, frames[len(frames)-1], nil)
	if len(res.Signals) != 2 {
		t.Fatalf("%d signals", len(res.Signals))
	}
	s := res.Signals[1]
	if s.TS.Format(time.RFC3339) != "2025-05-08T06:13:50Z" || !near(s.Lat, 22.5127) || !near(s.Lon, 114.0571) || s.Valid != signal.True {
		t.Errorf("ts %v pos %v,%v valid %v", s.TS, s.Lat, s.Lon, s.Valid)
	}
	if s.Speed != 41 || s.Heading != 323 || !near(s.HDOP, 0.9) || s.Alt != 30 || s.Odometer != 1697.001 || s.Attrs["battery_v"] != 4.12 || s.Attrs["lac"] != int64(0x3ee4) {
		t.Errorf("speed %v heading %v hdop %v alt %v odo %v attrs %v", s.Speed, s.Heading, s.HDOP, s.Alt, s.Odometer, s.Attrs)
	}
	want := "@@Q27,864606044993987,CCC,2*"
	if string(res.Ack) != want+checksum([]byte(want))+"\r\n" {
		t.Errorf("ack %q", res.Ack)
	}
}

func TestAcks(t *testing.T) {
	res := decode(t, withSum("$$z27,861451040910625,AAC,1*"), nil)
	want := "@@z27,861451040910625,AAC,1*"
	if len(res.Signals) != 0 || string(res.Ack) != want+checksum([]byte(want))+"\r\n" || res.DeviceID != "861451040910625" {
		t.Errorf("AAC: %d signals, ack %q", len(res.Signals), res.Ack)
	}
	// The ack's length field counts the comma through the CRLF.
	a := ack('A', "123456789012345", "CCC", "12")
	if n, err := header(append([]byte("$$"), a[2:]...)); err != nil || n != len(a) {
		t.Errorf("ack %q frames as %d, %v", a, n, err)
	}
}

func TestServerTimedResult(t *testing.T) {
	dec := &Decoder{}
	f := frame(",864606044993987,D82,0")
	a, err := newSession(dec, nil, nil).Decode(f, recv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newSession(dec, nil, nil).Decode(f, recv.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if a.Signals[0].Attrs["result"] != "D82,0" || a.Signals[0].Attrs["time_source"] != "server" || a.Signals[0].Key() != b.Signals[0].Key() {
		t.Errorf("attrs %v; keys %v %v", a.Signals[0].Attrs, a.Signals[0].Key(), b.Signals[0].Key())
	}
}

func TestRejections(t *testing.T) {
	good := "$$D149,867047043162018,AAA,35,-1.264865,36.800705,211001105240,A,9,20,41.0,323,1,1697,1,0,000|00||,0000,4.33|12.96|1.92|2.72|2.69,0.000000|0|0.000000,*"
	tests := []struct {
		name  string
		frame []byte
		want  error
		field string
	}{
		{"bad sum", []byte(good + "00\r\n"), plugins.ErrChecksum, "checksum"},
		{"length", withSum(strings.Replace(good, "D149", "D150", 1)), plugins.ErrMalformed, "length"},
		{"latitude", withSum(strings.Replace(good, "-1.264865", "-1.2x4865", 1)), plugins.ErrMalformed, "latitude"},
		{"date", withSum(strings.Replace(good, "211001105240", "211301105240", 1)), plugins.ErrMalformed, "date"},
		{"validity", withSum(strings.Replace(good, ",A,9,", ",X,9,", 1)), plugins.ErrMalformed, "validity"},
		{"speed", withSum(strings.Replace(good, "41.0,", "4a.0,", 1)), plugins.ErrMalformed, "speed"},
		{"imei", frame(",86704704316201x,AAA,35"), plugins.ErrMalformed, "IMEI"},
		{"photo", frame(",353358017784062,D03,OK"), plugins.ErrUnsupported, "D03"},
		{"short report", frame(",353358017784062,AAA,35,1.0"), plugins.ErrMalformed, "fields"},
		{"CCE truncated", frame(",353358017784062,CCE,\x00\x00\x00\x00\x01\x00\x09\x00"), plugins.ErrMalformed, "CCE record"},
		{"CCC misaligned", frame(",353358017784062,CCC,\x01\x00\x34\x00\x00\x00\x00\x00\x01"), plugins.ErrMalformed, "CCC records"},
		{"garbage", []byte("hello"), plugins.ErrMalformed, "'$$'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newSession(&Decoder{}, nil, nil).Decode(tt.frame, recv)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.field) || len(res.Signals) > 0 {
				t.Errorf("err %v, %d signals; want %v naming %q", err, len(res.Signals), tt.want, tt.field)
			}
		})
	}
	t.Run("not allowed", func(t *testing.T) {
		s := newSession(&Decoder{}, func(id string) bool { return id == "1" }, nil)
		if _, err := s.Decode(withSum(good), recv); !errors.Is(err, plugins.ErrUnauthorized) {
			t.Errorf("err %v, want ErrUnauthorized", err)
		}
	})
}

func TestFrame(t *testing.T) {
	s := newSession(&Decoder{}, nil, nil)
	aac := string(withSum("$$z27,861451040910625,AAC,1*"))
	tests := []struct {
		in   string
		n    int
		want error
	}{
		{aac + "$$", len(aac), nil},
		{aac[:20], 0, nil},
		{"$", 0, nil},
		{"\r\n$$", 2, nil},
		{"$x", 0, plugins.ErrMalformed},
		{"$$A12a", 0, plugins.ErrMalformed},
		{"$$A1234567,", 0, plugins.ErrMalformed},
		{"$$A99999,", 0, plugins.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 20)], func(t *testing.T) {
			n, err := s.Frame([]byte(tt.in))
			if n != tt.n || !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Frame = %d, %v; want %d, %v", n, err, tt.n, tt.want)
			}
		})
	}
	if n, err := s.FrameAtEOF([]byte(aac[:len(aac)-2])); n != len(aac)-2 || err != nil {
		t.Errorf("FrameAtEOF = %d, %v", n, err)
	}
	if n, err := s.FrameAtEOF([]byte(aac[:len(aac)-4])); n != 0 || err != nil {
		t.Errorf("FrameAtEOF of a truncated message = %d, %v", n, err)
	}
}

func TestGolden(t *testing.T) {
	plugintest.Golden(t, &Decoder{}, recv, *update,
		plugintest.GoldenCase{In: "traccar.txt", Golden: "traccar.golden.jsonl", OK: 16, Bad: 8},
		plugintest.GoldenCase{In: "traccar-binary.hex", Golden: "traccar-binary.golden.jsonl", Hex: true, OK: 20, Bad: 1},
		plugintest.GoldenCase{In: "conversation/input.hex", Golden: "conversation/expected.jsonl", Hex: true, OK: 5, Bad: 0},
	)
}

func TestConformance(t *testing.T) {
	frames := conversation(t)
	t.Run("tcp", func(t *testing.T) {
		plugintest.Run(t, &Decoder{}, plugintest.Cases{Frames: frames, Oversized: [][]byte{[]byte("$$A999999,1234")}})
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
	}{{"AAA", frames[0]}, {"CCE", frames[1]}, {"CCC", frames[len(frames)-1]}} {
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

// TestResendInAnotherBatch: a CCC record resent in a later batch (another
// remaining-cache count, another place in the batch) keeps its key, so the
// store drops the copy.
func TestResendInAnotherBatch(t *testing.T) {
	frames := conversation(t)
	m, err := parseEnvelope(frames[len(frames)-1])
	if err != nil {
		t.Fatal(err)
	}
	hdr, recs := m.data[:8], m.data[8:]
	batch := func(remaining byte, rs ...[]byte) []byte {
		data := append([]byte(nil), hdr...)
		data[4] = remaining
		for _, r := range rs {
			data = append(data, r...)
		}
		return frame(",864606044993987,CCC," + string(data))
	}
	first := decode(t, batch(2, recs[:52], recs[52:]), nil).Signals[1]
	again := decode(t, batch(7, recs[52:]), nil).Signals[0]
	if first.Key() != again.Key() {
		t.Errorf("resent record: key %v, first copy %v", again.Key(), first.Key())
	}
}
