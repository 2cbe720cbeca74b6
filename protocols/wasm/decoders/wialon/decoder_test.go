package main

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/protocols/wasm/sdk"
)

// Native tests: the parsing functions and the decoder through the SDK's
// native Module, on the same bytes the host exchanges.

func TestCRC16(t *testing.T) {
	if got := CRC16("123456789"); got != 0xBB3D { // CRC-16/ARC check value
		t.Errorf("CRC16(123456789) = %04X, want BB3D", got)
	}
	// The corpus's 2.0 short data packet.
	if got := CRC16("300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;"); got != 0x7A01 {
		t.Errorf("CRC16 = %04X, want 7A01", got)
	}
}

var (
	st11 = state{version: v11, imei: "123456789012345"}
	st20 = state{version: v20, imei: "42001300083"}
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		st     state
		line   string
		ack    string
		device string
		n      int // records
	}{
		{"1.1 login", state{}, "#L#123456789012345;test", "#AL#1\r\n", "123456789012345", 0},
		{"1.1 login without password", state{}, "#L#352094080000000", "#AL#1\r\n", "352094080000000", 0},
		{"2.0 login", state{}, "#L#2.0;42001300083;NA;" + crcOf("2.0;42001300083;NA;"), "#AL#1\r\n", "42001300083", 0},
		{"ping", st11, "#P#", "#AP#\r\n", "", 0},
		{"ping before login", state{}, "#P#", "#AP#\r\n", "", 0},
		{"short data", st11, "#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4", "#ASD#1\r\n", "", 1},
		{"short data 2.0", st20, "#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A01", "#ASD#1\r\n", "", 1},
		{"data", st11, "#D#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4;0.0;0;0;14.77,0.02,3.6;NA;count1:1:564,fuel:2:45.8,hw:3:V4.5", "#AD#1\r\n", "", 1},
		{"data 2.0 with 0x CRC", st20, "#D#NA;NA;5429.681944502211763;N;02654.60403650999069;E;NA;NA;NA;NA;NA;NA;NA;1.0;NA;m1:1:9196679,d1:1:15397,t1:1:20,b1:1:162,fuel1:2:21588.0,pv1:2:35.98,finish:1:1;0x9b0", "#AD#1\r\n", "", 1},
		{"UDP 2.0 packet naming the device", state{}, "2.0;99999999#D#101118;061143;0756.0930;N;12338.6403;E;18.223;99.766;-4.000;10;0.800;NA;NA;NA;NA;101_521347:1:521249,101_521126:1:6593598,101_521127:1:774780,101_521072_21.1:1:0,101_521072_21.2:1:71353;F24A", "#AD#1\r\n", "99999999", 1},
		{"UDP 1.1 packet naming the device", state{}, "99999999#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4", "#ASD#1\r\n", "99999999", 1},
		{"black box", st11, "#B#080914;073235;5027.50625;N;03026.19321;E;0.700;0.000;NA;4;NA;NA;NA;;NA;Батарея:3:100 %|080914;073420;5027.50845;N;03026.18854;E;1.996;292.540;NA;4;NA;NA;NA;;NA;Батарея:3:100 %", "#AB#2\r\n", "", 2},
		{"black box 2.0", st20, "#B#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4|270413;205701;5544.6025;N;03739.6834;E;1;2;3;4|" + crcOf("270413;205601;5544.6025;N;03739.6834;E;1;2;3;4|270413;205701;5544.6025;N;03739.6834;E;1;2;3;4|"), "#AB#2\r\n", "", 2},
		{"message to the driver", st11, "#M#need fuel", "#AM#1\r\n", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := decode(tc.st, tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if res.ack != tc.ack || res.device != tc.device || len(res.records) != tc.n {
				t.Errorf("ack %q device %q records %d; want %q %q %d", res.ack, res.device, len(res.records), tc.ack, tc.device, tc.n)
			}
		})
	}
}

func TestRecordFields(t *testing.T) {
	res, err := decode(st11, "#D#270413;205601;5544.6025;N;03739.6834;W;1;2;3;4;0.9;5;6;14.77,0.02;AB45DF01145;count1:1:564,fuel:2:45.8,hw:3:V4.5,motion:3:false,temp:3:18,Батарея:3:100 %,a.b-c:1:x")
	if err != nil {
		t.Fatal(err)
	}
	r := res.records[0]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !r.hasTS || r.ts != 1367096161000 || !near(r.lat, 55.743375) || !near(r.lon, -37.66139) {
		t.Errorf("ts %v %d lat %v lon %v", r.hasTS, r.ts, r.lat, r.lon)
	}
	if r.speed != 1 || r.course != 2 || r.alt != 3 || r.sats != 4 || r.valid != 1 || r.hdop != 0.9 {
		t.Errorf("speed %v course %v alt %v sats %v valid %v hdop %v", r.speed, r.course, r.alt, r.sats, r.valid, r.hdop)
	}
	if !r.hasInputs || r.inputs != 5 || r.outputs != 6 || r.driverID != "AB45DF01145" {
		t.Errorf("inputs %v outputs %v driver %q", r.inputs, r.outputs, r.driverID)
	}
	want := map[string]value{
		"adc1": {kind: 'f', f: 14.77}, "adc2": {kind: 'f', f: 0.02},
		"count1": {kind: 'i', i: 564}, "fuel": {kind: 'f', f: 45.8}, "hw": {kind: 's', s: "V4.5"},
		"motion": {kind: 'b', b: false}, "temp": {kind: 'f', f: 18},
		"xd091d0b0d182d0b0d180d0b5d18f": {kind: 's', s: "100 %"}, "a_b_c": {kind: 's', s: "x"},
	}
	if len(r.attrs) != len(want) {
		t.Errorf("%d attrs, want %d: %+v", len(r.attrs), len(want), r.attrs)
	}
	for _, a := range r.attrs {
		w, ok := want[a.name]
		if !ok || w.kind != a.kind || w.i != a.i || w.f != a.f || w.s != a.s || w.b != a.b {
			t.Errorf("attr %s = %+v, want %+v", a.name, a, w)
		}
	}
	// No time, no position: absent, never 0,0 or the zero time.
	res, err = decode(st11, "#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;SOS:1:0")
	if err != nil {
		t.Fatal(err)
	}
	if r := res.records[0]; r.hasTS || !math.IsNaN(r.lat) || !math.IsNaN(r.lon) || r.valid != -1 {
		t.Errorf("absent values: %+v", r)
	}
}

func TestParamOverflow(t *testing.T) {
	var p []string
	for i := 0; i < 100; i++ {
		p = append(p, "p"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+string(rune('a'+i/26))+":1:1")
	}
	res, err := decode(st11, "#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;"+strings.Join(p, ","))
	if err != nil {
		t.Fatal(err)
	}
	r := res.records[0]
	if len(r.attrs) > maxAttrs-4 {
		t.Errorf("%d attrs, cap %d", len(r.attrs), maxAttrs)
	}
	if last := r.attrs[len(r.attrs)-1]; last.name != "params_more" || !strings.HasSuffix(last.s, p[99]) {
		t.Errorf("overflow attr %+v", last)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		st     state
		line   string
		kind   kind
		answer string
	}{
		{"2.0 login CRC (the corpus's edited capture)", state{}, "#L#2.0;42001300083;;CE45", kChecksum, "#AL#10\r\n"},
		{"login without id", state{}, "#L#;pass", kMalformed, "#AL#0\r\n"},
		{"2.0 login of 3 fields", state{}, "#L#2.0;1;0000", kMalformed, "#AL#0\r\n"},
		{"short data CRC", st20, "#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A02", kChecksum, "#ASD#13\r\n"},
		{"data CRC", st20, "#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;;1234", kChecksum, "#AD#16\r\n"},
		{"data CRC not hex", st20, "#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;;zz", kMalformed, "#AD#-1\r\n"},
		{"black box CRC", st20, "#B#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA|0000", kChecksum, "#AB#\r\n"},
		{"data before login", state{}, "#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;", kNoDevice, ""},
		{"black box before login", state{}, "#B#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA", kNoDevice, ""},
		{"field count", st11, "#D#NA;NA;NA", kMalformed, "#AD#-1\r\n"},
		{"time", st11, "#SD#320413;205601;5544.6025;N;03739.6834;E;1;2;3;4", kMalformed, "#ASD#0\r\n"},
		{"date without time", st11, "#SD#270413;NA;5544.6025;N;03739.6834;E;1;2;3;4", kMalformed, "#ASD#0\r\n"},
		{"hemisphere", st11, "#SD#270413;205601;5544.6025;X;03739.6834;E;1;2;3;4", kMalformed, "#ASD#10\r\n"},
		{"latitude beyond 90", st11, "#SD#270413;205601;9144.6025;N;03739.6834;E;1;2;3;4", kMalformed, "#ASD#10\r\n"},
		{"latitude not a number", st11, "#SD#270413;205601;55a4.6025;N;03739.6834;E;1;2;3;4", kMalformed, "#ASD#10\r\n"},
		{"speed", st11, "#SD#270413;205601;5544.6025;N;03739.6834;E;fast;2;3;4", kMalformed, "#ASD#11\r\n"},
		{"speed NaN", st11, "#SD#270413;205601;5544.6025;N;03739.6834;E;NaN;2;3;4", kMalformed, "#ASD#11\r\n"},
		{"course beyond 360", st11, "#SD#270413;205601;5544.6025;N;03739.6834;E;1;361;3;4", kMalformed, "#ASD#11\r\n"},
		{"satellites", st11, "#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;-4", kMalformed, "#ASD#12\r\n"},
		{"inputs", st11, "#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;x;NA;;NA;", kMalformed, "#AD#13\r\n"},
		{"adc", st11, "#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;1,x;NA;", kMalformed, "#AD#14\r\n"},
		{"param type", st11, "#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;a:4:1", kMalformed, "#AD#15\r\n"},
		{"param without value", st11, "#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;a:1", kMalformed, "#AD#15\r\n"},
		{"black box message", st11, "#B#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA|NA;NA", kMalformed, "#AB#0\r\n"},
		{"unknown type", st11, "#QQ#x", kUnsupported, ""},
		{"no type", st11, "#D", kMalformed, ""},
		{"lower-case type", st11, "#d#x", kMalformed, ""},
		{"bad prefix version", state{}, "2.x;1#P#", kMalformed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(tc.st, tc.line)
			var f *failure
			if !errors.As(err, &f) {
				t.Fatalf("err = %v, want a failure", err)
			}
			if f.kind != tc.kind || f.answer != tc.answer {
				t.Errorf("kind %d answer %q (%v); want %d %q", f.kind, f.answer, f.msg, tc.kind, tc.answer)
			}
		})
	}
}

// module runs the registered decoder natively, as the host would.
func module(t *testing.T) *sdk.Module {
	t.Helper()
	m := sdk.Registered()
	if m == nil {
		t.Fatal("no decoder registered")
	}
	return m
}

func TestFrame(t *testing.T) {
	m := module(t)
	frame := func(data string, max int) int32 {
		return m.Frame(sdk.Input{Transport: sdk.TCP, MaxFrame: max, Data: []byte(data)}.Encode())
	}
	for _, tc := range []struct {
		data string
		max  int
		want int32
	}{
		{"#L#1;2\r\n#P#\r\n", 4096, 8},
		{"#L#1;2\r", 4096, 0},
		{"", 4096, 0},
		{"2.0;1#P#\r\n", 4096, 10},
		{"\x00#P#\r\n", 4096, int32(sdk.CodeMalformed)},
		{"#P#\x00\r\n", 4096, int32(sdk.CodeMalformed)},
		{"#D#" + strings.Repeat("1", 100), 64, int32(sdk.CodeTooLarge)},
	} {
		if got := frame(tc.data, tc.max); got != tc.want {
			t.Errorf("Frame(%q) = %d, want %d (%s)", tc.data, got, tc.want, m.Error())
		}
	}
}

// TestModuleState: the login's state blob is returned, and a later call
// with it decodes data; a refused login returns its negative answer.
func TestModuleState(t *testing.T) {
	m := module(t)
	call := func(st []byte, line string) sdk.Result {
		t.Helper()
		out, err := sdk.ParseResult(m.Decode(sdk.Input{Transport: sdk.TCP, RecvMs: 1767225600000, MaxFrame: 4096, Options: []byte("{}"), State: st, Data: []byte(line)}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	login := call(nil, "#L#2.0;42001300083;NA;"+crcOf("2.0;42001300083;NA;")+"\r\n")
	if login.Status != 0 || !login.StateSet || string(login.Device) != "42001300083" || string(login.Ack) != "#AL#1\r\n" {
		t.Fatalf("login: %+v", login)
	}
	data := call(login.State, "#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A01\r\n")
	if data.Status != 0 || len(data.Records) != 1 || string(data.Ack) != "#ASD#1\r\n" || data.StateSet {
		t.Fatalf("data: %+v", data)
	}
	if ts := data.Records[0].TS; ts != 1727710965000 {
		t.Errorf("ts %d", ts)
	}
	bad := call(nil, "#L#2.0;42001300083;;CE45\r\n")
	if bad.Status != sdk.CodeChecksum || string(bad.Reject) != "#AL#10\r\n" || bad.StateSet {
		t.Errorf("bad login: %+v", bad)
	}
	none := call(nil, "#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A01\r\n")
	if none.Status != sdk.CodeNoDevice {
		t.Errorf("data without login: %+v", none)
	}
}

// FuzzDecode: no input panics, and every record decode returns fits the
// ABI (attr names, string sizes, counts).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"#L#123456789012345;test", "#L#2.0;42001300083;;CE45", "#P#",
		"#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4",
		"#D#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4;0.0;0;0;14.77,0.02,3.6;NA;count1:1:564,fuel:2:45.8,hw:3:V4.5",
		"#B#080914;073235;5027.50625;N;03026.19321;E;0.700;0.000;NA;4;NA;NA;NA;;NA;Батарея:3:100 %|080914;073420;5027.50845;N;03026.18854;E;1.996;292.540;NA;4;NA;NA;NA;;NA;",
		"2.0;99999999#D#101118;061143;0756.0930;N;12338.6403;E;18.223;99.766;-4.000;10;0.800;NA;NA;NA;NA;101_521347:1:521249;F24A",
		"#M#hello",
	} {
		f.Add(byte(1), s)
		f.Add(byte(2), s)
	}
	f.Fuzz(func(t *testing.T, version byte, line string) {
		res, err := decode(state{version: version%3 + 0, imei: "1"}, line)
		if err != nil {
			var fl *failure
			if !errors.As(err, &fl) {
				t.Fatalf("error %v is not a failure", err)
			}
			return
		}
		if len(res.records) > maxRecords {
			t.Fatalf("%d records", len(res.records))
		}
		for _, r := range res.records {
			if len(r.attrs) > maxAttrs-4 {
				t.Fatalf("%d attrs", len(r.attrs))
			}
			for _, a := range r.attrs {
				if a.name == "" || len(a.name) > 64 || strings.Trim(a.name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" || len(a.s) > maxString {
					t.Fatalf("attr %+v breaks the ABI", a)
				}
				if a.kind == 'f' && (math.IsNaN(a.f) || math.IsInf(a.f, 0)) {
					t.Fatalf("attr %+v not finite", a)
				}
			}
			for _, v := range []float64{r.lat, r.lon, r.speed, r.course, r.alt, r.sats, r.hdop} {
				if math.IsInf(v, 0) {
					t.Fatalf("record %+v has an infinite value", r)
				}
			}
		}
	})
}

// BenchmarkDecodeNative: the same data packet as host_test.go's
// BenchmarkDecode through the SDK's native module (no WebAssembly), for
// the WASM/native ratio measured in one run.
func BenchmarkDecodeNative(b *testing.B) {
	m := sdk.Registered()
	st := state{version: v11, imei: "123456789012345"}.bytes()
	in := sdk.Input{Transport: sdk.TCP, RecvMs: 1767225600000, MaxFrame: 4096, Options: []byte("{}"), State: st,
		Data: []byte("#D#151216;135910;5321.1466;N;04441.7929;E;87;156;265.000000;12;1.000000;241;NA;NA;NA;odo:2:0.000000,total_fuel:1:430087,can_fls:1:201,can_taho:1:11623,can_mileage:1:140367515\r\n")}.Encode()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if out, err := sdk.ParseResult(m.Decode(in)); err != nil || out.Status != 0 {
			b.Fatal(err, out.Status)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
