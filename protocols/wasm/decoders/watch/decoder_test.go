package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcore/fleetcore/protocols/wasm/sdk"
)

// Native tests: the decoder through the SDK's native Module, on the same
// bytes the host exchanges.

const recvMs = 1767225600000 // 2026-01-01T00:00:00Z

func module(t testing.TB) *sdk.Module {
	t.Helper()
	m := sdk.Registered()
	if m == nil {
		t.Fatal("no decoder registered")
	}
	return m
}

// decodeWith runs fc_decode on a frame with the given state and options.
func decodeWith(t testing.TB, state []byte, opts map[string]string, frame string) sdk.Result {
	t.Helper()
	m := module(t)
	o, err := sdk.OptionsJSON(m.Meta(), opts)
	if err != nil {
		t.Fatal(err)
	}
	in := sdk.Input{Transport: sdk.TCP, RecvMs: recvMs, MaxFrame: 65536, Options: o, State: state, Data: []byte(frame)}
	res, err := sdk.ParseResult(m.Decode(in.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func decode(t testing.TB, frame string) sdk.Result { return decodeWith(t, nil, nil, frame) }

func frameLen(t testing.TB, buf string, max int) (int32, string) {
	t.Helper()
	m := module(t)
	o, _ := sdk.OptionsJSON(m.Meta(), nil)
	n := m.Frame(sdk.Input{Transport: sdk.TCP, MaxFrame: max, Options: o, Data: []byte(buf)}.Encode())
	return n, string(m.Error())
}

func TestFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		buf  string
		max  int
		want int32
	}{
		{"empty", "", 1024, 0},
		{"whole", "[SG*1*0002*LK]", 1024, 14},
		{"two frames", "[SG*1*0002*LK][SG*1*0002*LK]", 1024, 14},
		{"partial", "[SG*1*0002*L", 1024, 0},
		{"escaped bracket in binary content", "[ZJ*1*0001*0006*TK,}\x03\x01]", 1024, 23},
		{"not a bracket", "SG*1*0002*LK]", 1024, int32(sdk.CodeMalformed)},
		{"stray line end", "\r\n[SG*1*0002*LK]", 1024, int32(sdk.CodeMalformed)},
		{"cut frame", "[SG*1*0002*L[SG*1*0002*LK]", 1024, int32(sdk.CodeMalformed)},
		{"cut frame, no end yet", "[SG*1*0002*L[SG*1*00", 1024, int32(sdk.CodeMalformed)},
		{"too large", "[SG*1*0002*LKLKLKLKLKLKLK", 16, int32(sdk.CodeTooLarge)},
		{"end at the cap", "[SG*1*0002*LK]", 14, 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n, msg := frameLen(t, tc.buf, tc.max); n != tc.want {
				t.Errorf("Frame = %d (%s), want %d", n, msg, tc.want)
			}
		})
	}
}

func TestPosition(t *testing.T) {
	res := decode(t, "[3G*2104326058*00E9*UD_LTE,300621,135101,A,32.162652,N,34.888748,E,30.84,265.158,65.621,18,100,83,0,0,00000000,1,1,425,01,10223,8012811,100,3,ES4104,22:74:1d:39:64:ff,-46,metropoline-wifi,a8:3f:a1:e0:66:ba,-89,Egged.co.il,00:0c:42:51:cf:cd,-81,1.7055488]")
	if res.Status != 0 || len(res.Records) != 1 {
		t.Fatalf("status %d %s, %d records", res.Status, res.Message, len(res.Records))
	}
	if string(res.Device) != "2104326058" || string(res.State) != "\x012104326058" || !res.StateSet || len(res.Ack) != 0 {
		t.Errorf("device %q state %q set %v ack %q", res.Device, res.State, res.StateSet, res.Ack)
	}
	r := res.Records[0]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if r.TS != 1625061061000 || r.Valid != 2 || !near(r.Fields[sdk.FieldLat], 32.162652) || !near(r.Fields[sdk.FieldLon], 34.888748) {
		t.Errorf("ts %d valid %d lat %v lon %v", r.TS, r.Valid, r.Fields[sdk.FieldLat], r.Fields[sdk.FieldLon])
	}
	if r.Fields[sdk.FieldSpeed] != 30.84 || r.Fields[sdk.FieldHeading] != 265.158 || r.Fields[sdk.FieldAlt] != 65.621 || r.Fields[sdk.FieldSats] != 18 {
		t.Errorf("fields %v", r.Fields)
	}
	for k, v := range map[string]any{
		"rssi": int64(100), "battery_level": int64(83), "steps": int64(0), "tumbles": int64(0), "status": int64(0), "type": "UD_LTE",
		"mcc": int64(425), "mnc": int64(1), "cells": `[{"lac":10223,"cid":8012811,"rssi":100}]`,
		"wifi": `[{"mac":"22:74:1d:39:64:ff","rssi":-46},{"mac":"a8:3f:a1:e0:66:ba","rssi":-89},{"mac":"00:0c:42:51:cf:cd","rssi":-81}]`,
	} {
		if got := r.Attr(k); got != v {
			t.Errorf("attr %s = %#v, want %#v", k, got, v)
		}
	}
	if r.Attr("alarm") != nil || r.Attr("network") != nil {
		t.Errorf("alarm %v network %v", r.Attr("alarm"), r.Attr("network"))
	}
}

func TestPositionForms(t *testing.T) {
	for _, tc := range []struct {
		name     string
		frame    string
		lat, lon float64 // NaN: absent
		attrs    map[string]any
	}{
		{"south by sign, N letter", "[3G*6105117105*008D*UD2,210716,231601,V,-33.480366,N,-70.7630692,E,0.00,0.0,0.0,0,100,34,0,0,00000000,3,255,730,2,29731,54315,167,29731,54316,162,29731,54317,145]", -33.480366, -70.7630692, map[string]any{"mcc": int64(730)}},
		{"west by letter", "[SG*9059011020*0067*AL,240123,181628,V,54.427538,N,6.409275,W,0.00,0,0,0,19,90,0,0,00000000,1,1,234,10,55C0,3B882A2,132,,10]", 54.427538, -6.409275, map[string]any{"network": "1,1,234,10,55C0,3B882A2,132,,10"}},
		{"sign and letter agree", "[3G*2256002206*0079*UD2,100116,153723,A,38.000000,N,-9.000000,W,0.44,299.3,0.0,7,100,86,0,0,00000008,2,0,268,3,3010,51042,146,3010,51043,132]", 38, -9, nil},
		{"empty hemispheres", "[3G*9705141740*00C2*UD_LTE,260723,185105,V,10.5,,20.25,,0.00,0.0,0.0,0,100,67,0,0,00000000,0,0]", 10.5, 20.25, nil},
		{"no fix is no position", "[ZJ*014111001350304*0033*0064*UD,070318,020827,V,00.000000,N,000.000000,E,0,0,0,0,100,19,1000,50,00000000,1,255,460,0,9346,5223,42]", math.NaN(), math.NaN(), map[string]any{"steps": int64(1000), "tumbles": int64(50)}},
		{"padded longitude", "[3G*4700222306*0077*UD,120316,140610,V,48.779045,N, 9.1574736,E,0.00,0.0,0.0,0,25,83,0,0,00000000,2,255,262,1,21041,9067,121,21041,5981,116]", 48.779045, 9.1574736, nil},
		{"motion and low battery", "[SG*8800000015*0087*AL,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,0011,4,1,460,0,9360,4082,131,9360,4092,148,9360,4091,143,9360,4153,141]", 22.571707, 113.8613968, map[string]any{"alarm": "low_battery", "motion": true, "status": int64(0x11)}},
		{"fall down", "[3G*1*0000*AL_LTE,170525,214118,A,1,N,1,E,0,0,0,0,0,22,0,0,00200000]", 1, 1, map[string]any{"alarm": "fall_down"}},
		{"all-zero time: server time", "[3G*1*0000*UD,000000,000000,V,0,N,0,E,0,0,0,0,0,22,0,0,00000000]", math.NaN(), math.NaN(), map[string]any{"time_source": "server", "device_time": "000000 000000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := decode(t, tc.frame)
			if res.Status != 0 || len(res.Records) != 1 {
				t.Fatalf("status %d %s, %d records", res.Status, res.Message, len(res.Records))
			}
			r := res.Records[0]
			for _, c := range []struct {
				f    sdk.Field
				want float64
			}{{sdk.FieldLat, tc.lat}, {sdk.FieldLon, tc.lon}} {
				got, present := r.Fields[c.f], r.Mask&(1<<c.f) != 0
				if math.IsNaN(c.want) {
					if present {
						t.Errorf("field %d = %v, want absent", c.f, got)
					}
				} else if !present || math.Abs(got-c.want) > 1e-9 {
					t.Errorf("field %d = %v (present %v), want %v", c.f, got, present, c.want)
				}
			}
			for k, v := range tc.attrs {
				if got := r.Attr(k); got != v {
					t.Errorf("attr %s = %#v, want %#v", k, got, v)
				}
			}
		})
	}
}

func TestAcks(t *testing.T) {
	for _, tc := range []struct{ frame, ack string }{
		{"[SG*9081000548*0009*LK,0,100]", "[SG*9081000548*0002*LK]"},
		{"[3G*1234567890*0002*LK]", "[3G*1234567890*0002*LK]"},
		{"[ZJ*357653059860416*0007*000c*LK]", "[ZJ*357653059860416*0007*0002*LK]"},
		{"[3G*1*0004*INIT]", "[3G*1*0006*INIT,1]"},
		{"[3G*1*0004*TKQ2]", "[3G*1*0004*TKQ2]"},
		{"[3G*6907919734*003e*AL_LTE,170525,214118,V,0,N,0,E,0,0,0,0,0,22,0,0,00010000,0,0,0]", "[3G*6907919734*0002*AL]"},
		{"[3G*358839237678820*0122*ALCUSTOMER1,251120,081821,V,0.0,N,0.0,E,2.58,317.462,35.147,14,100,2,11089,0,00100008,0,0]", "[3G*358839237678820*0002*AL]"},
		{"[SG*1*0010*UD,220414,134652,A,22.5,N,113.8,E,0.1,0.0,100,7,60,90,1000,50,0000]", ""},
		{"[CS*8800000015*0008*PULSE,72]", ""},
	} {
		res := decode(t, tc.frame)
		if res.Status != 0 || string(res.Ack) != tc.ack {
			t.Errorf("%s: status %d %s, ack %q, want %q", tc.frame, res.Status, res.Message, res.Ack, tc.ack)
		}
	}
}

func TestLinkAndHealth(t *testing.T) {
	for _, tc := range []struct {
		frame string
		attrs map[string]any // nil: no record
	}{
		{"[3G*4700186508*000B*LK,0,10,100]", map[string]any{"steps": int64(0), "tumbles": int64(10), "battery_level": int64(100)}},
		{"[SG*9081000548*0009*LK,0,100]", nil},
		{"[3G*6005412902*0008*heart,71]", map[string]any{"heart_rate": int64(71)}},
		{"[CS*8800000015*0008*PULSE,72]", map[string]any{"heart_rate": int64(72)}},
		{"[3G*4700609403*0013*bphrt,120,79,73,,,,]", map[string]any{"pressure_high": int64(120), "pressure_low": int64(79), "heart_rate": int64(73)}},
		{"[ZJ*357653059860416*0007*000c*BLOOD,109,68]", map[string]any{"pressure_high": int64(109), "pressure_low": int64(68)}},
		{"[3G*2104326058*000E*btemp2,1,35.29]", map[string]any{"temp1": 35.29}},
		{"[3G*2104326058*000E*btemp2,0,0]", nil},
		{"[3G*9705141740*000B*oxygen,0,98]", map[string]any{"blood_oxygen": 98.0}},
	} {
		res := decode(t, tc.frame)
		if res.Status != 0 {
			t.Errorf("%s: status %d %s", tc.frame, res.Status, res.Message)
			continue
		}
		if tc.attrs == nil {
			if len(res.Records) != 0 {
				t.Errorf("%s: %d records, want none", tc.frame, len(res.Records))
			}
			continue
		}
		if len(res.Records) != 1 {
			t.Errorf("%s: %d records, want 1", tc.frame, len(res.Records))
			continue
		}
		r := res.Records[0]
		if r.Mask&1 != 0 || r.Attr("time_source") != "server" {
			t.Errorf("%s: want a server-timed record, mask %b", tc.frame, r.Mask)
		}
		for k, v := range tc.attrs {
			if got := r.Attr(k); got != v {
				t.Errorf("%s: attr %s = %#v, want %#v", tc.frame, k, got, v)
			}
		}
	}
}

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		frame string
		code  sdk.Code
		msg   string
	}{
		{"SG*1*0002*LK]", sdk.CodeMalformed, "enclosed"},
		{"[S*1*0002*LK]", sdk.CodeMalformed, "manufacturer"},
		{"[sg*1*0002*LK]", sdk.CodeMalformed, "manufacturer"},
		{"[SG**0002*LK]", sdk.CodeMalformed, "device id"},
		{"[SG*12345678901234567890123456789012345*0002*LK]", sdk.CodeMalformed, "device id"},
		{"[SG*1*002*LK]", sdk.CodeMalformed, "length field"},
		{"[SG*1*00G2*LK]", sdk.CodeMalformed, "length field"},
		{"[SG*1*0002]", sdk.CodeMalformed, "no '*'"},
		{"[SG*1*0002*]", sdk.CodeMalformed, "message type"},
		{"[SG*1*0002*L K]", sdk.CodeMalformed, "message type"},
		{"[SG*1*0002*CONFIG,1]", sdk.CodeUnsupported, `"CONFIG"`},
		{"[SG*1*0010*UD,220414,134652,A,22.5,N]", sdk.CodeMalformed, "16"},
		{"[SG*1*0010*UD,220414,134652,X,22.5,N,113.8,E,0.1,0.0,100,7,60,90,1000,50,0000]", sdk.CodeMalformed, "validity"},
		{"[SG*1*0010*UD,220414,134652,A,92.5,N,113.8,E,0.1,0.0,100,7,60,90,1000,50,0000]", sdk.CodeMalformed, "latitude"},
		{"[SG*1*0010*UD,220414,134652,A,22.5,Q,113.8,E,0.1,0.0,100,7,60,90,1000,50,0000]", sdk.CodeMalformed, "hemisphere"},
		{"[SG*1*0010*UD,220414,134652,A,22.5,N,1e2,E,0.1,0.0,100,7,60,90,1000,50,0000]", sdk.CodeMalformed, "longitude"},
		{"[SG*1*0010*UD,220414,134652,A,22.5,N,113.8,E,-1,0.0,100,7,60,90,1000,50,0000]", sdk.CodeMalformed, "speed"},
		{"[SG*1*0010*UD,220414,134652,A,22.5,N,113.8,E,1,361,100,7,60,90,1000,50,0000]", sdk.CodeMalformed, "course"},
		{"[SG*1*0010*UD,220414,134652,A,22.5,N,113.8,E,1,36,100,x,60,90,1000,50,0000]", sdk.CodeMalformed, "sats"},
		{"[SG*1*0010*UD,220414,134652,A,22.5,N,113.8,E,1,36,100,7,60,90,1000,50,XYZ]", sdk.CodeMalformed, "status"},
		{"[SG*1*0010*UD,2204,134652,A,22.5,N,113.8,E,1,36,100,7,60,90,1000,50,0]", sdk.CodeMalformed, "date"},
		{"[SG*1*0010*UD,220414,134652,A,22.5,N,113.8\x01,E,1,36,100,7,60,90,1000,50,0]", sdk.CodeMalformed, "control byte"},
		{"[SG*1*0010*UD,220414,134652,A,22.5,N,113.8}\x09,E,1,36,100,7,60,90,1000,50,0]", sdk.CodeMalformed, "escape"},
		{"[SG*1*0009*LK,x,1,100]", sdk.CodeMalformed, "steps"},
		{"[3G*1*0008*heart,abc]", sdk.CodeMalformed, "heart rate"},
		{"[3G*1*0008*heart]", sdk.CodeMalformed, "without a value"},
		{"[3G*1*0008*BLOOD,120]", sdk.CodeMalformed, "systolic"},
		{"[3G*1*0008*btemp2,1,99]", sdk.CodeMalformed, "body temperature"},
		{"[3G*1*0008*oxygen,1,140]", sdk.CodeMalformed, "blood oxygen"},
		{"[ZJ*1*0034*0025*JXTK,0,f,1,6,#!AMR]", sdk.CodeUnsupported, "part 1/6 of f"},
		{"[ZJ*1*0034*0025*JXTK,0,f,7,6,#!AMR]", sdk.CodeMalformed, "part"},
		{"[ZJ*1*0034*0025*JXTK,0]", sdk.CodeMalformed, "header fields"},
		{"[3G*1*0025*TK,#!AMR]", sdk.CodeUnsupported, "voice message"},
		{"[3G*1*0025*img,1,221120085515,jpg]", sdk.CodeUnsupported, "picture"},
	} {
		res := decode(t, tc.frame)
		if res.Status != tc.code || !strings.Contains(res.Message, tc.msg) {
			t.Errorf("%q: status %d %q, want %d containing %q", tc.frame, res.Status, res.Message, tc.code, tc.msg)
		}
		if len(res.Records) != 0 || len(res.Ack) != 0 || res.StateSet {
			t.Errorf("%q: a refusal kept records %d ack %q state %v", tc.frame, len(res.Records), res.Ack, res.StateSet)
		}
	}
}

func TestMediaAck(t *testing.T) {
	ack := map[string]string{"media": "ack"}
	res := decodeWith(t, nil, ack, "[ZJ*789468050042692*0034*0025*JXTK,0,watch_7_1,1,6,#!AMR}\x03}\x01]")
	if res.Status != 0 || string(res.Ack) != "[ZJ*789468050042692*0034*0007*JXTKR,1]" || len(res.Records) != 0 {
		t.Errorf("JXTK: status %d %s ack %q records %d", res.Status, res.Message, res.Ack, len(res.Records))
	}
	res = decodeWith(t, nil, ack, "[3G*1*0025*TK,#!AMR]")
	if res.Status != 0 || len(res.Ack) != 0 || len(res.Records) != 0 {
		t.Errorf("TK: status %d %s ack %q", res.Status, res.Message, res.Ack)
	}
}

func TestState(t *testing.T) {
	// Same device as the state: no device or state output.
	res := decodeWith(t, []byte("\x011234567890"), nil, "[3G*1234567890*0002*LK]")
	if res.Status != 0 || len(res.Device) != 0 || res.StateSet {
		t.Errorf("same device: status %d device %q state set %v", res.Status, res.Device, res.StateSet)
	}
	// Another device on the connection: it becomes the session's device.
	res = decodeWith(t, []byte("\x011234567890"), nil, "[3G*999*0002*LK]")
	if string(res.Device) != "999" || string(res.State) != "\x01999" || !res.StateSet {
		t.Errorf("new device: device %q state %q", res.Device, res.State)
	}
	// A state from elsewhere (wrong version byte) is rewritten.
	res = decodeWith(t, []byte("\x021234567890"), nil, "[3G*1234567890*0002*LK]")
	if string(res.Device) != "1234567890" || !res.StateSet {
		t.Errorf("foreign state: device %q", res.Device)
	}
}

// TestCorpusCaptures decodes every watch capture of the shared corpus
// natively and checks that no position falls back to the raw network
// attr except the SG captures whose cell ids are hex (README), so a
// parser change that loses cells shows here.
func TestCorpusCaptures(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "..", "..", "..", "shared", "testdata", "traccar-frames-2.jsonl"))
	if err != nil {
		t.Fatalf("the capture corpus: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n, raw := 0, 0
	for sc.Scan() {
		var r struct {
			Protocol, Encoding, Payload string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Protocol != "watch" || r.Encoding != "text" {
			continue
		}
		n++
		res := decode(t, r.Payload)
		if res.Status != 0 {
			t.Errorf("%s: status %d %s", r.Payload, res.Status, res.Message)
			continue
		}
		for _, rec := range res.Records {
			if rec.Attr("network") != nil {
				raw++
				if !strings.HasPrefix(r.Payload, "[SG*9059011020*") {
					t.Errorf("%s: network not decoded: %v", r.Payload, rec.Attr("network"))
				}
			}
		}
	}
	if n != 37 || raw != 2 {
		t.Errorf("%d text captures, %d with a raw network; want 37 and 2", n, raw)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("[3G*2104326058*00E9*UD_LTE,300621,135101,A,32.162652,N,34.888748,E,30.84,265.158,65.621,18,100,83,0,0,00000000,1,1,425,01,10223,8012811,100,3,ES4104,22:74:1d:39:64:ff,-46,x,a8:3f:a1:e0:66:ba,-89,y,00:0c:42:51:cf:cd,-81,1.7]"))
	f.Add([]byte("[ZJ*357653059860416*0007*000c*BLOOD,109,68]"))
	f.Add([]byte("[SG*9081000548*0009*LK,0,100]"))
	b, _ := hex.DecodeString("5b5a4a2a312a303033342a303032352a4a58544b2c302c662c312c362c7d037d015d")
	f.Add(b)
	m := module(f)
	opts, _ := sdk.OptionsJSON(m.Meta(), nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		n := m.Frame(sdk.Input{Transport: sdk.TCP, MaxFrame: 4096, Options: opts, Data: data}.Encode())
		if n < 0 && sdk.Code(n) == sdk.CodeABI || int(n) > len(data) {
			t.Fatalf("Frame = %d on %q: %s", n, data, m.Error())
		}
		res, err := sdk.ParseResult(m.Decode(sdk.Input{Transport: sdk.TCP, MaxFrame: 4096, Options: opts, Data: data}.Encode()))
		if err != nil {
			t.Fatalf("output: %v", err)
		}
		if res.Status == sdk.CodeABI {
			t.Fatalf("ABI failure on %q: %s", data, res.Message)
		}
	})
}
