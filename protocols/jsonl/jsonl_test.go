package jsonl

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

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/plugins/plugintest"
	"github.com/fleetcore/fleetcore/plugins/replay"
	"github.com/fleetcore/fleetcore/signal"
)

var update = flag.Bool("update", false, "rewrite golden files")

var recv = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newSession(max int) *Session {
	return Decoder{}.NewSession(plugins.SessionConfig{Transport: plugins.TCP, MaxFrame: max}).(*Session)
}

func validLines(t testing.TB) [][]byte {
	b, err := os.ReadFile(filepath.Join("testdata", "valid.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for line := range bytes.SplitAfterSeq(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) > 0 {
			out = append(out, line)
		}
	}
	return out
}

func TestDecodeFields(t *testing.T) {
	s := newSession(4096)
	lines := validLines(t)
	var sigs []signal.Signal
	for i, line := range lines {
		res, err := s.Decode(line, recv)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if want := `{"ok": ` + string(rune('0'+i+1)) + "}\n"; string(res.Ack) != want {
			t.Errorf("line %d ack = %q, want %q", i+1, res.Ack, want)
		}
		if len(res.Signals) != 1 {
			t.Fatalf("line %d: %d signals", i+1, len(res.Signals))
		}
		sigs = append(sigs, res.Signals...)
	}
	a, b, c, d := sigs[0], sigs[1], sigs[2], sigs[3]
	if a.DeviceID != "sim-0001" || !a.TS.Equal(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)) || a.Lat != 52.52 ||
		a.Lon != 13.405 || a.Speed != 42.5 || a.Heading != 90 || a.Sats != 9 || a.HDOP != 0.9 || a.Valid != signal.True ||
		!math.IsNaN(a.RPM) || a.Protocol != Name || !a.Recv.Equal(recv) {
		t.Errorf("line 1 = %+v", a)
	}
	if !b.TS.Equal(time.Date(2026, 11, 25, 10, 0, 1, 250e6, time.UTC)) || b.RPM != 1850 || b.Coolant != 88 || b.Fuel != 61.5 ||
		b.Voltage != 13.9 || b.Odometer != 120345.6 || b.EngineLoad != 35.3 || b.Throttle != 18 ||
		!reflect.DeepEqual(b.DTCs, []string{"P0301", "P0420"}) {
		t.Errorf("line 2 = %+v", b)
	}
	if want := map[string]any{"io239": int64(1), "driver": "anna", "temp_c": 21.5, "ignition": true}; !reflect.DeepEqual(b.Attrs, want) {
		t.Errorf("line 2 attrs = %#v, want %#v", b.Attrs, want)
	}
	if c.TS.Location() != time.UTC || c.TS.Hour() != 9 || c.Valid != signal.False || c.Alt != 35 ||
		c.Protocol != Name || c.Attrs["source_protocol"] != "teltonika" {
		t.Errorf("line 3 = %+v", c)
	}
	if want := map[string]any{"nested": `{"a":1}`, "big": int64(9007199254740993)}; !reflect.DeepEqual(d.Attrs, want) {
		t.Errorf("line 4 attrs = %#v, want %#v", d.Attrs, want)
	}
	if !bytes.Equal(d.Frame, lines[3]) {
		t.Errorf("frame = %q, want the line", d.Frame)
	}
}

func TestRejected(t *testing.T) {
	tests := []struct {
		name, line, msg string
	}{
		{"bad json", `{"device_id": "a", "ts": `, "incomplete JSON object"},
		{"syntax", `{"device_id" "a"}`, "invalid JSON"},
		{"unknown key", `{"device_id":"a","ts":"2026-11-25T10:00:00Z","latitude":1}`, `unknown field "latitude"`},
		{"missing device", `{"ts":"2026-11-25T10:00:00Z"}`, "device_id is required"},
		{"missing ts", `{"device_id":"a"}`, "ts is required"},
		{"bad ts", `{"device_id":"a","ts":"yesterday"}`, "parsing time"},
		{"wrong type", `{"device_id":"a","ts":"2026-11-25T10:00:00Z","lat":"52.1"}`, "field lat"},
		{"two objects", `{"device_id":"a","ts":"2026-11-25T10:00:00Z"} {"device_id":"b","ts":"2026-11-25T10:00:00Z"}`, "one JSON object per line"},
		{"array", `[{"device_id":"a"}]`, "cannot unmarshal array"},
		{"null", `null`, "device_id is required"},
		{"empty dtc", `{"device_id":"a","ts":"2026-11-25T10:00:00Z","dtcs":[""]}`, "dtcs[0] is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(4096)
			res, err := s.Decode([]byte(tt.line+"\n"), recv)
			if !errors.Is(err, plugins.ErrMalformed) {
				t.Fatalf("error = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			if len(res.Signals) != 0 || res.Ack != nil {
				t.Errorf("rejected line produced %+v", res)
			}
			reply := s.Reject(err)
			var back map[string]string
			if !bytes.HasPrefix(reply, []byte(`{"error": "`)) || !bytes.HasSuffix(reply, []byte("}\n")) {
				t.Errorf("reject reply = %q", reply)
			}
			if uerr := jsonUnmarshal(reply, &back); uerr != nil || back["error"] != err.Error() {
				t.Errorf("reject reply %q does not round-trip: %v", reply, uerr)
			}
		})
	}
}

func TestBlankLinesAndSequence(t *testing.T) {
	s := newSession(4096)
	lines := validLines(t)
	for _, in := range [][]byte{[]byte("\n"), []byte("  \r\n"), lines[0], []byte("\n"), lines[1]} {
		res, err := s.Decode(in, recv)
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(in)) == 0 && (res.Ack != nil || len(res.Signals) != 0) {
			t.Errorf("blank line got %+v", res)
		}
		if bytes.Equal(in, lines[1]) && string(res.Ack) != "{\"ok\": 2}\n" {
			t.Errorf("second record ack = %q", res.Ack)
		}
	}
}

func TestUnauthorized(t *testing.T) {
	s := Decoder{}.NewSession(plugins.SessionConfig{MaxFrame: 4096, AllowDevice: func(id string) bool { return id == "sim-0002" }})
	res, err := s.Decode(validLines(t)[0], recv)
	if !errors.Is(err, plugins.ErrUnauthorized) || !res.Close || len(res.Signals) != 0 {
		t.Errorf("not allowed device: %+v, %v", res, err)
	}
}

func TestFrame(t *testing.T) {
	s := newSession(64)
	tests := []struct {
		in   string
		n    int
		err  error
		name string
	}{
		{`{"a":1}` + "\n" + `{"b"`, 8, nil, "first line"},
		{`{"a":1}`, 0, nil, "partial"},
		{strings.Repeat("x", 63) + "\n", 64, nil, "exactly MaxFrame"},
		{strings.Repeat("x", 64) + "\n", 0, plugins.ErrTooLarge, "over MaxFrame"},
		{strings.Repeat("x", 64), 0, plugins.ErrTooLarge, "MaxFrame without newline"},
	}
	for _, tt := range tests {
		n, err := s.Frame([]byte(tt.in))
		if n != tt.n || !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("%s: Frame = %d, %v; want %d, %v", tt.name, n, err, tt.n, tt.err)
		}
	}
}

func TestReplayGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "valid.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	// replay strips the line end: put it back as the \n escape text mode
	// understands, so TCP framing sees whole lines.
	in = bytes.ReplaceAll(in, []byte("}\n"), []byte("}\\n\n"))
	var out bytes.Buffer
	if err := replay.Run(Decoder{}, bytes.NewReader(in), &out, replay.Options{Now: func() time.Time { return recv }}); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "valid.golden.jsonl")
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
		t.Errorf("replay differs from %s:\n%s", golden, out.String())
	}
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, Decoder{}, plugintest.Cases{Frames: validLines(t)})
}

func BenchmarkDecode(b *testing.B) {
	line := validLines(b)[1]
	s := newSession(4096)
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := s.Decode(line, recv); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// TestDecoderVersionIgnored: a line of `fleetcore decode -wasm` output
// carries decoder_version; jsonl accepts it and leaves the version to the
// gateway (the record is jsonl's), with the record hash of the line
// without it.
func TestDecoderVersionIgnored(t *testing.T) {
	const line = `{"device_id":"sim-1","ts":"2026-11-25T10:00:00Z","lat":1`
	with, err := newSession(4096).Decode([]byte(line+`,"decoder_version":"1.0.0+sha256:0123456789ab"}`+"\n"), recv)
	if err != nil {
		t.Fatal(err)
	}
	without, err := newSession(4096).Decode([]byte(line+"}\n"), recv)
	if err != nil {
		t.Fatal(err)
	}
	a, b := with.Signals[0], without.Signals[0]
	if a.DecoderVersion != "" || a.RecordHash() != b.RecordHash() || a.Protocol != Name {
		t.Errorf("with decoder_version: %+v, without: %+v", a, b)
	}
}

// fastCases are lines in the scanner's shape and just outside it.
var fastCases = []string{
	`{"device_id":"sim-1","ts":"2026-11-25T10:00:00.000Z","lat":52.5200000,"lon":13.4050000,"alt":35,"speed":42.5,"heading":90,"sats":9,"valid":true,"odometer":120345.600,"voltage":13.90}`,
	`{"device_id":"a","ts":"2026-11-25T10:00:00+01:00","attrs":{"i":-0,"f":1.5e3,"big":12345678901234567890,"s":"x","b":false},"dtcs":[],"protocol":"gt06","recv":"2026-11-25T10:00:00Z","path":"spool","decoder_version":"v"}`,
	`{ "device_id" : "a" , "ts" : "2026-11-25T10:00:00Z" , "dtcs" : [ "P0301" , "" ] }`,
	`{"device_id":"a","ts":"2026-11-25T10:00:00Z","lat":1,"lat":2,"attrs":{"x":1},"attrs":{"y":2}}`,
	`{"device_id":"","ts":"2026-11-25T10:00:00Z"}`,
	`{"device_id":"a"}`,
	`{"device_id":"a","ts":"0000-01-01T00:30:00+01:00"}`,
	`{"device_id":"a","ts":"2026-11-25T10:00:00Z","sats":1e400}`,
	`{"device_id":"a","ts":"2026-11-25T10:00:00Z","attrs":{"x":1e400}}`,
	`{"device_id":"a\u00e9","ts":"2026-11-25T10:00:00Z"}`,
	`{"Device_ID":"a","ts":"2026-11-25T10:00:00Z"}`,
	`{"device_id":"a","ts":"2026-11-25T10:00:00Z","lat":null}`,
	`{"device_id":"a","ts":"2026-11-25T10:00:00Z","lat":01}`,
	`{"device_id":"a","ts":"2026-11-25T10:00:00Z"} {}`,
	`{}`,
}

func TestFastPathTakenAndSameAsEncodingJSON(t *testing.T) {
	for i, l := range fastCases {
		var p parsed
		if !parseFast([]byte(l), &p) {
			if i < 7 {
				t.Errorf("case %d not taken by the scanner: %s", i, l)
			}
			continue
		}
		if i >= 7 && i != len(fastCases)-1 {
			t.Errorf("case %d taken by the scanner, want encoding/json: %s", i, l)
		}
		fast, ferr := p.check()
		slow, serr := slowParse([]byte(l))
		if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
			t.Errorf("case %d: fast error %v, encoding/json error %v", i, ferr, serr)
		} else if ferr == nil && !sameSignal(fast, slow) {
			t.Errorf("case %d:\nfast %+v\njson %+v", i, fast, slow)
		}
	}
}

func TestDecodeAllocations(t *testing.T) {
	line := []byte(fastCases[0] + "\n")
	s := newSession(4096)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.Decode(line, recv); err != nil {
			t.Fatal(err)
		}
	})
	// The signal slice, the frame copy, the device id, the ack: was 50
	// with a json.Decoder per line.
	if allocs > 6 {
		t.Fatalf("%.0f allocations per line, want at most 6", allocs)
	}
}
