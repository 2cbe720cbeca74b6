package sdk_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/protocols/wasm/sdk"
)

// The test decoder: frames are "<len byte><kind byte><payload>".
//
//	kind 'L' login: payload is the device id (ack "OK", state = id)
//	kind 'P' position: payload is 8-byte ts ms, then a record is built
//	kind 'E' error: payload[0] is the code to return (1..6), or 0 = no sentinel
//	kind 'X' panic
//	kind 'B' ABI mistake: a bad attr name
var (
	optMode  = sdk.EnumOption{Name: "mode", Values: []string{"a", "b"}, Default: "a", Help: "mode"}
	optTZ    = sdk.IntOption{Name: "tz", Default: 0, Min: -720, Max: 840, Help: "minutes"}
	optScale = sdk.FloatOption{Name: "scale", Default: 1.5, Help: "factor"}
	optAck   = sdk.BoolOption{Name: "ack", Default: true, Help: "ack"}
	optTag   = sdk.StringOption{Name: "tag", Default: "x", Help: "tag"}
)

type testDecoder struct{}

func (testDecoder) Frame(c *sdk.Call, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	n := int(buf[0])
	if n < 2 {
		return 0, sdk.Errorf(sdk.ErrMalformed, "length %d", n)
	}
	if n > c.MaxFrame() {
		return 0, sdk.Errorf(sdk.ErrTooLarge, "%d bytes, cap %d", n, c.MaxFrame())
	}
	if len(buf) >= 2 && buf[1] == 'X' {
		panic("framer bug")
	}
	if len(buf) < n {
		return 0, nil
	}
	return n, nil
}

var sentinelByCode = []error{nil, sdk.ErrMalformed, sdk.ErrChecksum, sdk.ErrTooLarge, sdk.ErrUnauthorized, sdk.ErrNoDevice, sdk.ErrUnsupported}

func (testDecoder) Decode(c *sdk.Call, f []byte, out *sdk.Output) error {
	if len(f) < 2 || int(f[0]) != len(f) {
		return sdk.Errorf(sdk.ErrMalformed, "frame of %d bytes", len(f))
	}
	p := f[2:]
	switch f[1] {
	case 'L':
		out.SetDeviceBytes(p)
		out.SetState(p)
		if optAck.Get(c) {
			out.AckString("OK")
		}
	case 'P':
		if len(c.State()) == 0 {
			return sdk.Errorf(sdk.ErrNoDevice, "position before login")
		}
		ts := int64(binary.LittleEndian.Uint64(p))
		r := out.Record().Time(ts + optTZ.Get(c)*60000).Lat(54.5).Lon(25.25).Speed(42 * optScale.Get(c)).Valid(true)
		r.Heading(math.NaN()) // absent
		r.I64("event", 7).F64("temp", -1.25).Bool("ign", true).String("mode", optMode.Get(c)).String("tag", optTag.Get(c))
		r.Hex("raw", p[:2]).Bytes("dev", c.State())
		r.I64("event", 8) // replaces
		r.DTC("P0301").DTC("P0301").DTC("C0123")
		r.OBDRaw(0x0C, []byte{0x1A, 0xF8}).OBDScaled(0x05, 90)
		r.ServerTimeSeconds()            // no effect: the record has a device time
		out.Record().ServerTimeSeconds() // an empty record, stamped to the second
		out.AckByte(1)
	case 'E':
		if p[0] == 0 {
			return errors.New("plain error")
		}
		out.RejectString("NO")
		out.AckString("dropped")
		out.Record().Lat(1)
		return fmt.Errorf("decoding: %w", sdk.Errorf(sentinelByCode[p[0]], "code %d", p[0]))
	case 'X':
		panic("decoder bug")
	case 'B':
		out.Record().I64("Bad-Name", 1)
	case 'C':
		out.Close()
		out.SetState(nil)
	case 'S':
		out.SetState(bytes.Repeat([]byte{1}, 300))
	default:
		return sdk.Errorf(sdk.ErrUnsupported, "kind %q", f[1])
	}
	return nil
}

var testMeta = sdk.Meta{
	Name: "test_go", Version: "1.0.0", Description: "SDK test decoder",
	Transports: []sdk.Transport{sdk.TCP, sdk.UDP}, DefaultPort: 5999, MaxFrame: 200,
	StateVersion: 1, StateMax: 256,
	Options: []sdk.Option{optMode, optTZ, optScale, optAck, optTag},
	Tests: []sdk.Test{{
		Name: "login", Options: map[string]string{"ack": "true"},
		Frames: []sdk.TestFrame{
			{Hex: "054c414243", Want: sdk.Want{AckHex: "4f4b", Device: "ABC", Signals: []map[string]any{}}},
			{Hex: "0345ff", Want: sdk.Want{Error: "malformed"}},
		},
	}},
}

func newModule(t testing.TB) *sdk.Module {
	t.Helper()
	m, err := sdk.NewModule(testMeta, testDecoder{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func input(t testing.TB, opts map[string]string, state, data []byte) []byte {
	t.Helper()
	o, err := sdk.OptionsJSON(testMeta, opts)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Input{Transport: sdk.TCP, RecvMs: 1767225600000, MaxFrame: 100, Options: o, State: state, Data: data}.Encode()
}

func decode(t *testing.T, m *sdk.Module, opts map[string]string, state, frame []byte) sdk.Result {
	t.Helper()
	r, err := sdk.ParseResult(m.Decode(input(t, opts, state, frame)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func frame(kind byte, payload ...byte) []byte {
	return append([]byte{byte(2 + len(payload)), kind}, payload...)
}

func position(ts int64) []byte {
	return frame('P', binary.LittleEndian.AppendUint64(nil, uint64(ts))...)
}

func TestMetaJSON(t *testing.T) {
	m := newModule(t)
	var doc map[string]any
	if err := json.Unmarshal([]byte(m.MetaJSON()), &doc); err != nil {
		t.Fatalf("%v: %s", err, m.MetaJSON())
	}
	want := `{"name":"test_go","version":"1.0.0","abi":1,"description":"SDK test decoder","transports":["tcp","udp"],"default_port":5999,"max_frame":200,"state_version":1,"state_max":256,` +
		`"options":[{"name":"mode","type":"enum","default":"a","values":["a","b"],"help":"mode"},{"name":"tz","type":"int","default":0,"min":-720,"max":840,"help":"minutes"},` +
		`{"name":"scale","type":"float","default":1.5,"help":"factor"},{"name":"ack","type":"bool","default":true,"help":"ack"},{"name":"tag","type":"string","default":"x","help":"tag"}],` +
		`"tests":[{"name":"login","options":{"ack":"true"},"frames":[{"hex":"054c414243","want":{"ack_hex":"4f4b","device":"ABC","signals":[]}},{"hex":"0345ff","want":{"error":"malformed"}}]}]}`
	if m.MetaJSON() != want {
		t.Errorf("meta\n got %s\nwant %s", m.MetaJSON(), want)
	}
}

func TestMetaValidation(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*sdk.Meta)
		want string
	}{
		{"bad name", func(m *sdk.Meta) { m.Name = "Test-Go" }, `decoder name "Test-Go" is not [a-z0-9_]+`},
		{"long name", func(m *sdk.Meta) { m.Name = strings.Repeat("a", 33) }, "at most 32 bytes"},
		{"no version", func(m *sdk.Meta) { m.Version = "" }, `version "" is not a semantic version`},
		{"bad version", func(m *sdk.Meta) { m.Version = "1.0" }, `version "1.0" is not a semantic version`},
		{"version suffix", func(m *sdk.Meta) { m.Version = "1.0.0+" }, `version "1.0.0+" is not`},
		{"no help", func(m *sdk.Meta) { m.Options = []sdk.Option{sdk.BoolOption{Name: "b"}} }, `option "b": no help`},
		{"int32 range", func(m *sdk.Meta) {
			m.Options = []sdk.Option{sdk.IntOption{Name: "n", Default: 1 << 40, Help: "h"}}
		}, "outside the int32 range"},
		{"option name digit first", func(m *sdk.Meta) { m.Options = []sdk.Option{sdk.BoolOption{Name: "1b", Help: "h"}} }, "not snake_case"},
		{"no transport", func(m *sdk.Meta) { m.Transports = nil }, "no transports"},
		{"bad transport", func(m *sdk.Meta) { m.Transports = []sdk.Transport{"sctp"} }, `transport "sctp" is not tcp or udp`},
		{"port", func(m *sdk.Meta) { m.DefaultPort = 70000 }, "default port 70000"},
		{"port zero", func(m *sdk.Meta) { m.DefaultPort = 0 }, "default port 0 outside [1, 65535]"},
		{"negative state_max", func(m *sdk.Meta) { m.StateMax = -1 }, "none may be negative"},
		{"int default out of range", func(m *sdk.Meta) {
			m.Options = []sdk.Option{sdk.IntOption{Name: "n", Default: 5, Min: 10, Max: 20, Help: "h"}}
		}, `option "n": default 5 outside [10, 20]`},
		{"enum default", func(m *sdk.Meta) {
			m.Options = []sdk.Option{sdk.EnumOption{Name: "e", Values: []string{"a"}, Default: "b", Help: "h"}}
		}, `default "b" is not one of [a]`},
		{"dup option", func(m *sdk.Meta) { m.Options = []sdk.Option{optAck, optAck} }, `option "ack" declared twice`},
		{"bad option name", func(m *sdk.Meta) { m.Options = []sdk.Option{sdk.BoolOption{Name: "A"}} }, `option "A": name`},
		{"test error name", func(m *sdk.Meta) {
			m.Tests = []sdk.Test{{Name: "t", Frames: []sdk.TestFrame{{Hex: "00", Want: sdk.Want{Error: "crc"}}}}}
		}, `error "crc" is not malformed`},
		{"test hex", func(m *sdk.Meta) {
			m.Tests = []sdk.Test{{Name: "t", Frames: []sdk.TestFrame{{Hex: "0g"}}}}
		}, "frame 1: hex"},
		{"test hex and text", func(m *sdk.Meta) {
			m.Tests = []sdk.Test{{Name: "t", Frames: []sdk.TestFrame{{Hex: "00", Text: "x"}}}}
		}, "exactly one of Hex and Text"},
		{"test option undeclared", func(m *sdk.Meta) {
			m.Tests = []sdk.Test{{Name: "t", Options: map[string]string{"zz": "1"}, Frames: []sdk.TestFrame{{Hex: "00"}}}}
		}, `option "zz" is not declared`},
		{"test option bad value", func(m *sdk.Meta) {
			m.Tests = []sdk.Test{{Name: "t", Options: map[string]string{"tz": "900"}, Frames: []sdk.TestFrame{{Hex: "00"}}}}
		}, `option "tz": 900 outside [-720, 840]`},
		{"test transport", func(m *sdk.Meta) {
			m.Transports = []sdk.Transport{sdk.TCP}
			m.Tests = []sdk.Test{{Name: "t", Transport: sdk.UDP, Frames: []sdk.TestFrame{{Hex: "00"}}}}
		}, `transport "udp" is not one of the decoder's`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := testMeta
			c.mod(&m)
			_, err := sdk.NewModule(m, testDecoder{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestFrame(t *testing.T) {
	m := newModule(t)
	cases := []struct {
		name string
		data []byte
		want int32
		msg  string
	}{
		{"empty", nil, 0, ""},
		{"partial", []byte{5, 'L', 'A'}, 0, ""},
		{"whole", []byte{5, 'L', 'A', 'B', 'C', 9}, 5, ""},
		{"malformed", []byte{1}, -1, "malformed frame: length 1"},
		{"too large", []byte{150}, -3, "frame too large: 150 bytes, cap 100"},
		{"panic", []byte{3, 'X'}, int32(sdk.CodeABI), "panic in test_go Frame: framer bug"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := m.Frame(input(t, nil, nil, c.data))
			if got != c.want || string(m.Error()) != c.msg {
				t.Fatalf("Frame = %d %q, want %d %q", got, m.Error(), c.want, c.msg)
			}
		})
	}
	if got := m.Frame([]byte("FCI1 short")); got != int32(sdk.CodeABI) || !strings.Contains(string(m.Error()), "without the FCI1 header") {
		t.Fatalf("bad input: %d %q", got, m.Error())
	}
}

// frameBeyond returns more than it was given: an ABI mistake the SDK
// catches.
type frameBeyond struct{ testDecoder }

func (frameBeyond) Frame(_ *sdk.Call, buf []byte) (int, error) { return len(buf) + 1, nil }

func TestFrameBeyondBuffer(t *testing.T) {
	m, err := sdk.NewModule(testMeta, frameBeyond{})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Frame(input(t, nil, nil, []byte{1, 2})); got != int32(sdk.CodeABI) || string(m.Error()) != "sdk: Frame returned 3 with 2 bytes buffered" {
		t.Fatalf("got %d %q", got, m.Error())
	}
}

func TestDecodeLogin(t *testing.T) {
	m := newModule(t)
	r := decode(t, m, nil, nil, frame('L', 'A', 'B', 'C'))
	if r.Status != 0 || string(r.Device) != "ABC" || string(r.Ack) != "OK" || !r.StateSet || string(r.State) != "ABC" || len(r.Records) != 0 || r.Close {
		t.Fatalf("login: %+v", r)
	}
	r = decode(t, m, map[string]string{"ack": "false"}, nil, frame('L', 'A'))
	if len(r.Ack) != 0 {
		t.Fatalf("ack off: ack %q", r.Ack)
	}
	r = decode(t, m, nil, []byte("ABC"), frame('C'))
	if !r.Close || !r.StateSet || len(r.State) != 0 {
		t.Fatalf("close: %+v", r)
	}
}

func TestDecodeRecord(t *testing.T) {
	m := newModule(t)
	r := decode(t, m, map[string]string{"tz": "60", "mode": "b", "scale": "2", "tag": `q"é`}, []byte("ABC"), position(1767225600000))
	if r.Status != 0 || len(r.Records) != 2 || string(r.Ack) != "\x01" || r.StateSet || len(r.Device) != 0 {
		t.Fatalf("result %+v", r)
	}
	rec := r.Records[0]
	if rec.Mask != 1|1<<2|1<<3|1<<5 || rec.TS != 1767225600000+3600000 || rec.Fields[sdk.FieldLat] != 54.5 ||
		rec.Fields[sdk.FieldLon] != 25.25 || rec.Fields[sdk.FieldSpeed] != 84 || !math.IsNaN(rec.Fields[sdk.FieldHeading]) || rec.Valid != 2 {
		t.Fatalf("record %+v", rec)
	}
	// A replaced attribute moves to the end (the host keeps attrs as a map).
	wantAttrs := []sdk.Attr{{"temp", -1.25}, {"ign", true}, {"mode", "b"}, {"tag", `q"é`}, {"raw", "00a8"}, {"dev", "ABC"}, {"event", int64(8)}}
	if fmt.Sprint(rec.Attrs) != fmt.Sprint(wantAttrs) {
		t.Errorf("attrs %v, want %v", rec.Attrs, wantAttrs)
	}
	if fmt.Sprint(rec.DTCs) != "[P0301 C0123]" {
		t.Errorf("dtcs %v", rec.DTCs)
	}
	if len(rec.OBD) != 2 || rec.OBD[0].PID != 0x0C || !bytes.Equal(rec.OBD[0].Raw, []byte{0x1A, 0xF8}) || rec.OBD[0].Scaled ||
		rec.OBD[1].PID != 0x05 || !rec.OBD[1].Scaled || rec.OBD[1].Value != 90 {
		t.Errorf("obd %+v", rec.OBD)
	}
	if rec.Stamp != 0 {
		t.Errorf("stamp %d on a record with a device time", rec.Stamp)
	}
	if e := r.Records[1]; e.Mask != 0 || len(e.Attrs)+len(e.DTCs)+len(e.OBD) != 0 || e.Valid != 0 || e.Stamp != 1 {
		t.Errorf("empty record %+v", e)
	}
	// A second call reuses the buffers: nothing of the first leaks in.
	r = decode(t, m, nil, []byte("ABC"), frame('L', 'Z'))
	if len(r.Records) != 0 || string(r.Ack) != "OK" {
		t.Fatalf("after reuse: %+v", r)
	}
}

func TestDecodeErrors(t *testing.T) {
	m := newModule(t)
	for code := 1; code <= 6; code++ {
		r := decode(t, m, nil, []byte("ABC"), frame('E', byte(code)))
		if r.Status != sdk.Code(-code) || string(r.Reject) != "NO" || len(r.Ack) != 0 || len(r.Records) != 0 || r.StateSet {
			t.Errorf("code %d: %+v", code, r)
		}
		want := fmt.Sprintf("decoding: %s: code %d", sentinelByCode[code], code)
		if r.Message != want {
			t.Errorf("code %d: message %q, want %q", code, r.Message, want)
		}
	}
	cases := []struct {
		name  string
		frame []byte
		state []byte
		code  sdk.Code
		msg   string
	}{
		{"no device", position(1), nil, sdk.CodeNoDevice, "no device identification: position before login"},
		{"plain error", frame('E', 0), nil, sdk.CodeABI, "sdk: Decode returned an error wrapping no sdk sentinel: plain error"},
		{"panic", frame('X'), nil, sdk.CodeABI, "panic in test_go Decode: decoder bug"},
		{"bad attr name", frame('B'), nil, sdk.CodeABI, `sdk: test_go: record: attr name "Bad-Name" is not [a-z0-9_]+ of at most 64 bytes`},
		{"state too big", frame('S'), nil, sdk.CodeABI, "sdk: test_go: state of 300 bytes exceeds state_max 256"},
		{"unsupported", frame('?'), nil, sdk.CodeUnsupported, `unsupported frame: kind '?'`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := decode(t, m, nil, c.state, c.frame)
			if r.Status != c.code || r.Message != c.msg || len(r.Records) != 0 {
				t.Fatalf("got %d %q, want %d %q", r.Status, r.Message, c.code, c.msg)
			}
		})
	}
	// The module keeps working after a panic.
	if r := decode(t, m, nil, nil, frame('L', 'A')); r.Status != 0 || string(r.Device) != "A" {
		t.Fatalf("after panic: %+v", r)
	}
	r, err := sdk.ParseResult(m.Decode([]byte("nope")))
	if err != nil || r.Status != sdk.CodeABI || !strings.Contains(r.Message, "without the FCI1 header") {
		t.Fatalf("bad input: %+v %v", r, err)
	}
}

func TestErrorHelpers(t *testing.T) {
	err := fmt.Errorf("framing: %w", sdk.Errorf(sdk.ErrChecksum, "crc %04x, want %04x", 0x1234, 0x4321))
	if !errors.Is(err, sdk.ErrChecksum) || errors.Is(err, sdk.ErrMalformed) {
		t.Fatal("errors.Is")
	}
	if err.Error() != "framing: checksum mismatch: crc 1234, want 4321" {
		t.Fatal(err)
	}
	if sdk.CodeOf(err) != sdk.CodeChecksum || sdk.CodeOf(nil) != 0 || sdk.CodeOf(errors.New("x")) != sdk.CodeABI {
		t.Fatal("CodeOf")
	}
	if sdk.ErrorName(sdk.CodeTooLarge) != "too_large" || sdk.ErrorName(sdk.CodeABI) != "" {
		t.Fatal("ErrorName")
	}
}

func TestLongMessageClipped(t *testing.T) {
	m, err := sdk.NewModule(testMeta, longError{})
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, m, nil, nil, frame('L'))
	if len(r.Message) > sdk.MaxMessage || !strings.HasPrefix(r.Message, "malformed frame: ééé") || !utf8Valid(r.Message) {
		t.Fatalf("message of %d bytes: %q", len(r.Message), r.Message)
	}
}

type longError struct{ testDecoder }

func (longError) Decode(*sdk.Call, []byte, *sdk.Output) error {
	return sdk.Errorf(sdk.ErrMalformed, "%s", strings.Repeat("é", 400))
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestOptions(t *testing.T) {
	m := newModule(t)
	// Options the host sends are parsed by the SDK's own reader: keys
	// unknown to the decoder are skipped, absent ones take the default,
	// escapes are decoded.
	raw := `{ "ack" : false, "extra": [1], "mode":"b","scale":-2.5e1,"tag":"a\"\\\u00e9\ud83d\ude00","tz":-720 }`
	in := sdk.Input{Transport: sdk.UDP, RecvMs: 5, MaxFrame: 100, Options: []byte(raw), Data: frame('L', 'A')}.Encode()
	r, err := sdk.ParseResult(m.Decode(in))
	if err == nil && r.Status == 0 {
		t.Fatalf("an array value is not an option value; got %+v", r)
	}
	raw = strings.Replace(raw, `"extra": [1]`, `"extra": null, "more": "x"`, 1)
	var got []any
	probe := probeDecoder{f: func(c *sdk.Call) {
		got = []any{optAck.Get(c), optMode.Get(c), optScale.Get(c), optTag.Get(c), optTZ.Get(c), c.Transport(), c.RecvMs(), c.MaxFrame(),
			c.Bool("ack"), c.Int("tz"), c.Float("scale"), c.String("mode")}
	}}
	pm, err := sdk.NewModule(testMeta, probe)
	if err != nil {
		t.Fatal(err)
	}
	in = sdk.Input{Transport: sdk.UDP, RecvMs: 5, MaxFrame: 100, Options: []byte(raw), Data: []byte{1}}.Encode()
	if r, _ := sdk.ParseResult(pm.Decode(in)); r.Status != 0 {
		t.Fatalf("decode: %+v", r)
	}
	want := []any{false, "b", -25.0, "a\"\\é😀", int64(-720), sdk.UDP, int64(5), 100, false, int64(-720), -25.0, "b"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("options %v, want %v", got, want)
	}
	// No options bytes: defaults.
	in = sdk.Input{Transport: sdk.TCP, Data: []byte{1}}.Encode()
	pm.Decode(in)
	want = []any{true, "a", 1.5, "x", int64(0), sdk.TCP, int64(0), 0, true, int64(0), 1.5, "a"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("defaults %v, want %v", got, want)
	}
	// Reading an undeclared option or one of another type is an ABI error
	// naming it, for that call.
	for _, c := range []struct {
		f    func(c *sdk.Call)
		want string
	}{
		{func(c *sdk.Call) { c.Bool("nope") }, `option "nope" is not declared`},
		{func(c *sdk.Call) { c.Int("ack") }, `option "ack" is a bool option, read as int`},
		{func(c *sdk.Call) { c.String("tz") }, `option "tz" is a int option, read as string`},
	} {
		pm, _ := sdk.NewModule(testMeta, probeDecoder{f: c.f})
		r, _ := sdk.ParseResult(pm.Decode(in))
		if r.Status != sdk.CodeABI || !strings.Contains(r.Message, c.want) {
			t.Errorf("got %d %q, want %q", r.Status, r.Message, c.want)
		}
	}
	for _, bad := range []string{`[1]`, `{"tz":"x"}`, `{"ack":1}`, `{"tz":1.5}`, `{"tz":1} x`, `{"tz":1,}`, `{"mode":"a`} {
		in := sdk.Input{Options: []byte(bad), Data: []byte{1}}.Encode()
		if r, _ := sdk.ParseResult(pm.Decode(in)); r.Status != sdk.CodeABI {
			t.Errorf("options %s: status %d", bad, r.Status)
		}
	}
}

type probeDecoder struct {
	testDecoder
	f func(c *sdk.Call)
}

func (p probeDecoder) Decode(c *sdk.Call, _ []byte, _ *sdk.Output) error {
	p.f(c)
	return nil
}

func TestOptionsJSON(t *testing.T) {
	b, err := sdk.OptionsJSON(testMeta, map[string]string{"ack": "0", "tz": "-5", "tag": "a\"b"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ack":false,"mode":"a","scale":1.5,"tag":"a\"b","tz":-5}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	if _, err := sdk.OptionsJSON(testMeta, map[string]string{"mode": "c"}); err == nil || !strings.Contains(err.Error(), `"c" is not one of [a b]`) {
		t.Fatal(err)
	}
	if _, err := sdk.OptionsJSON(testMeta, map[string]string{"zz": "c"}); err == nil {
		t.Fatal("undeclared option accepted")
	}
}

func TestRecordLimits(t *testing.T) {
	cases := []struct {
		name string
		f    func(r *sdk.Record)
		want string
	}{
		{"long attr name", func(r *sdk.Record) { r.I64(strings.Repeat("a", 65), 1) }, "is not [a-z0-9_]+ of at most 64 bytes"},
		{"long string", func(r *sdk.Record) { r.String("s", strings.Repeat("v", 1025)) }, "attr s of 1025 bytes exceeds 1024"},
		{"long bytes", func(r *sdk.Record) { r.Bytes("s", make([]byte, 1025)) }, "attr s of 1025 bytes exceeds 1024"},
		{"long hex", func(r *sdk.Record) { r.Hex("s", make([]byte, 513)) }, "attr s of 1026 hex digits exceeds 1024"},
		{"NaN attr", func(r *sdk.Record) { r.F64("f", math.NaN()) }, "attr f is NaN"},
		{"Inf field", func(r *sdk.Record) { r.Lat(math.Inf(1)) }, "lat is +Inf"},
		{"field index", func(r *sdk.Record) { r.Set(sdk.Field(1), 1) }, "field 1 is not a canonical number field"},
		{"DTC long", func(r *sdk.Record) { r.DTC("P0301P0301P0301P0") }, "is not 1 to 16 bytes"},
		{"DTC binary", func(r *sdk.Record) { r.DTC("P\x00") }, "is not printable ASCII"},
		{"OBD raw long", func(r *sdk.Record) { r.OBDRaw(1, make([]byte, 256)) }, "OBD PID 01 data of 256 bytes exceeds 255"},
		{"OBD scaled NaN", func(r *sdk.Record) { r.OBDScaled(5, math.NaN()) }, "OBD PID 05 value NaN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, _ := sdk.NewModule(testMeta, recordDecoder{c.f})
			r, err := sdk.ParseResult(m.Decode(input(t, nil, nil, []byte{0})))
			if err != nil || r.Status != sdk.CodeABI || !strings.Contains(r.Message, c.want) {
				t.Fatalf("got %d %q %v, want %q", r.Status, r.Message, err, c.want)
			}
		})
	}
	// At the limits: accepted.
	m, _ := sdk.NewModule(testMeta, recordDecoder{func(r *sdk.Record) {
		r.I64(strings.Repeat("a", 64), 1).String("s", strings.Repeat("v", 1024)).DTC("P0301P0301P0301P").OBDRaw(1, make([]byte, 255)).Set(sdk.FieldThrottle, 100)
	}})
	r, err := sdk.ParseResult(m.Decode(input(t, nil, nil, []byte{0})))
	if err != nil || r.Status != 0 || len(r.Records[0].Attrs[1].Value.(string)) != 1024 || r.Records[0].Fields[sdk.FieldThrottle] != 100 {
		t.Fatalf("at the limits: %d %q %v", r.Status, r.Message, err)
	}
}

type recordDecoder struct{ f func(r *sdk.Record) }

func (recordDecoder) Frame(*sdk.Call, []byte) (int, error) { return 0, nil }
func (d recordDecoder) Decode(_ *sdk.Call, _ []byte, out *sdk.Output) error {
	d.f(out.Record())
	return nil
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "Register called twice") {
			t.Fatalf("recover = %v", p)
		}
	}()
	sdk.Register(testMeta, testDecoder{})
	if sdk.Registered() == nil {
		t.Fatal("not registered")
	}
	sdk.Register(testMeta, testDecoder{})
}

func TestParseResultStrict(t *testing.T) {
	m := newModule(t)
	good := append([]byte(nil), m.Decode(input(t, nil, []byte("ABC"), position(1)))...)
	if _, err := sdk.ParseResult(good); err != nil {
		t.Fatal(err)
	}
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0xFF
		_, _ = sdk.ParseResult(bad) // never panics
	}
	for n := range good {
		if _, err := sdk.ParseResult(good[:n]); err == nil {
			t.Fatalf("truncated to %d bytes accepted", n)
		}
	}
}

// TestSteadyStateAllocs: once the buffers have grown, framing and
// decoding a frame allocate nothing in the SDK (the decoder here
// allocates nothing either).
func TestSteadyStateAllocs(t *testing.T) {
	m := newModule(t)
	in := input(t, map[string]string{"tz": "60"}, []byte("ABC"), position(1767225600000))
	fin := input(t, nil, nil, position(1767225600000))
	m.Decode(in)
	m.Frame(fin)
	if n := testing.AllocsPerRun(200, func() { m.Decode(in) }); n != 0 {
		t.Errorf("Decode allocates %v times per frame", n)
	}
	if n := testing.AllocsPerRun(200, func() { m.Frame(fin) }); n != 0 {
		t.Errorf("Frame allocates %v times per frame", n)
	}
}

func FuzzModule(f *testing.F) {
	f.Add([]byte{5, 'L', 'A', 'B', 'C'}, []byte("ABC"), `{"tz":1}`)
	f.Add(position(1), []byte("ABC"), `{}`)
	f.Add([]byte{3, 'X', 0}, []byte(nil), `{"mode":"b"}`)
	f.Fuzz(func(t *testing.T, data, state []byte, opts string) {
		m := newModule(t)
		in := sdk.Input{Transport: sdk.TCP, MaxFrame: 100, Options: []byte(opts), State: state, Data: data}.Encode()
		if n := m.Frame(in); n > int32(len(data)) {
			t.Fatalf("Frame %d beyond %d bytes", n, len(data))
		}
		if _, err := sdk.ParseResult(m.Decode(in)); err != nil {
			t.Fatalf("the SDK wrote an output it cannot parse: %v", err)
		}
	})
}
