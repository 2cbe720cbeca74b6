package signal

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func validSignal() Signal {
	s := New("356307042441013", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s.Recv = time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	s.Protocol = "teltonika"
	s.Lat, s.Lon, s.Speed = 54.7, 25.3, 42
	s.DTCs = []string{"P0301"}
	s.SetAttr("io239", 1)
	s.Frame = []byte("frame")
	return s
}

// attrsOfJSONSize returns attributes whose JSON text (as checkAttrs counts
// it) is exactly n bytes: one string value padded to size.
func attrsOfJSONSize(n int) map[string]any {
	// {"k":"…"} is 8 bytes around the value, plus the separator checkAttrs
	// counts for every key.
	const overhead = len(`{"k":""}`) + 1
	m := map[string]any{}
	rest := n - overhead
	i := 0
	for rest > MaxAttrStringBytes {
		k := fmt.Sprintf("k%04d", i)
		m[k] = strings.Repeat("v", MaxAttrStringBytes)
		rest -= MaxAttrStringBytes + len(k) + 6 // quotes, colon, comma, quotes
		i++
	}
	m["k"] = strings.Repeat("v", rest)
	return m
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Signal)
		want string // "" = valid; else a substring of the error
	}{
		{"valid", func(*Signal) {}, ""},

		// device_id
		{"no device", func(s *Signal) { s.DeviceID = "" }, "no device id"},
		{"device id of 128 bytes", func(s *Signal) { s.DeviceID = strings.Repeat("d", 128) }, ""},
		{"device id of 129 bytes", func(s *Signal) { s.DeviceID = strings.Repeat("d", 129) }, "device_id of 129 bytes exceeds 128"},
		{"device id of 6000 bytes", func(s *Signal) { s.DeviceID = strings.Repeat("x", 6000) }, "device_id of 6000 bytes exceeds 128"},
		{"NUL in device", func(s *Signal) { s.DeviceID = "35\x0063" }, `device_id "35\x0063" contains a NUL character`},
		{"bad UTF-8 in device", func(s *Signal) { s.DeviceID = "\xff\xfe" }, `device_id "\xff\xfe" is not valid UTF-8`},

		// ts and recv
		{"ts at the epoch", func(s *Signal) { s.TS = MinTime }, ""},
		{"ts 1980 (GPS epoch, reset clock)", func(s *Signal) { s.TS = time.Date(1980, 1, 6, 0, 0, 0, 0, time.UTC) }, ""},
		{"ts 2000 (reset clock)", func(s *Signal) { s.TS = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }, ""},
		{"ts 1 µs before the epoch", func(s *Signal) { s.TS = MinTime.Add(-time.Microsecond) }, "ts 1969-12-31T23:59:59.999999Z outside [1970-01-01T00:00:00Z, 2100-01-01T00:00:00Z)"},
		{"ts -1 s (Unix timestamp -1)", func(s *Signal) { s.TS = time.Unix(-1, 0).UTC() }, "ts 1969-12-31T23:59:59Z outside"},
		{"ts zero (absent)", func(s *Signal) { s.TS = time.Time{} }, "ts 0001-01-01T00:00:00Z outside"},
		{"ts last µs of 2099", func(s *Signal) { s.TS = EndTime.Add(-time.Microsecond) }, ""},
		{"ts 2100", func(s *Signal) { s.TS = EndTime }, "ts 2100-01-01T00:00:00Z outside"},
		{"ts year 9999", func(s *Signal) { s.TS = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) }, "ts 9999-12-31T23:59:59Z outside"},
		{"huge device time", func(s *Signal) { s.TS = time.UnixMilli(1 << 62) }, "ts "},
		{"recv not set yet", func(s *Signal) { s.Recv = time.Time{} }, ""},
		{"recv before the epoch", func(s *Signal) { s.Recv = time.Unix(-1, 0) }, "recv 1969-12-31T23:59:59Z outside"},
		{"recv 2100", func(s *Signal) { s.Recv = EndTime }, "recv 2100-01-01T00:00:00Z outside"},

		// protocol, path, valid
		{"protocol empty (set by the gateway)", func(s *Signal) { s.Protocol = "" }, ""},
		{"protocol of 64 bytes", func(s *Signal) { s.Protocol = strings.Repeat("p", 64) }, ""},
		{"protocol of 65 bytes", func(s *Signal) { s.Protocol = strings.Repeat("p", 65) }, "protocol of 65 bytes exceeds 64"},
		{"bad UTF-8 in protocol", func(s *Signal) { s.Protocol = "x\xc3" }, "protocol \"x\\xc3\" is not valid UTF-8"},
		{"decoder_version of 128 bytes", func(s *Signal) { s.DecoderVersion = strings.Repeat("v", 128) }, ""},
		{"decoder_version of 129 bytes", func(s *Signal) { s.DecoderVersion = strings.Repeat("v", 129) }, "decoder_version of 129 bytes exceeds 128"},
		{"NUL in decoder_version", func(s *Signal) { s.DecoderVersion = "1.0\x00" }, `decoder_version "1.0\x00" contains a NUL character`},
		{"path spool", func(s *Signal) { s.Path = PathSpool }, ""},
		{"path unknown", func(s *Signal) { s.Path = "elsewhere" }, `path "elsewhere" is not direct, failover or spool`},
		{"valid true", func(s *Signal) { s.Valid = True }, ""},
		{"valid 7", func(s *Signal) { s.Valid = 7 }, "valid is 7, not a flag"},

		// dtcs
		{"NUL in DTC", func(s *Signal) { s.DTCs = []string{"P0\x00"} }, `dtcs[0] "P0\x00" contains a NUL character`},
		{"bad UTF-8 in DTC", func(s *Signal) { s.DTCs = []string{"P0301", "\xc0"} }, `dtcs[1] "\xc0" is not valid UTF-8`},
		{"DTC of 32 bytes", func(s *Signal) { s.DTCs = []string{strings.Repeat("P", 32)} }, ""},
		{"DTC of 33 bytes", func(s *Signal) { s.DTCs = []string{strings.Repeat("P", 33)} }, "dtcs[0] of 33 bytes exceeds 32"},
		{"256 DTCs", func(s *Signal) { s.DTCs = make([]string, 256) }, ""},
		{"257 DTCs", func(s *Signal) { s.DTCs = make([]string, 257) }, "257 dtcs exceed 256"},

		// attrs
		{"attrs of every allowed type", func(s *Signal) {
			s.Attrs = map[string]any{"f": 1.5, "i": int64(math.MinInt64), "s": "x", "b": true, "n": nil}
		}, ""},
		{"attr key of 64 bytes", func(s *Signal) { s.SetAttr(strings.Repeat("k", 64), 1) }, ""},
		{"attr key of 65 bytes", func(s *Signal) { s.SetAttr(strings.Repeat("k", 65), 1) }, "attrs key of 65 bytes exceeds 64"},
		{"NUL in attr key", func(s *Signal) { s.SetAttr("a\x00", 1) }, `attrs key "a\x00" contains a NUL character`},
		{"bad UTF-8 in attr key", func(s *Signal) { s.SetAttr("a\xff", 1) }, `attrs key "a\xff" is not valid UTF-8`},
		{"attr string at the cap", func(s *Signal) { s.SetAttr("s", strings.Repeat("v", MaxAttrStringBytes)) }, ""},
		{"attr string beyond the cap", func(s *Signal) { s.SetAttr("s", strings.Repeat("v", MaxAttrStringBytes+1)) }, `attrs["s"] of 131073 bytes exceeds 131072`},
		{"NUL in attr string", func(s *Signal) { s.SetAttr("s", "a\x00b") }, `attrs["s"] "a\x00b" contains a NUL character`},
		{"bad UTF-8 in attr string", func(s *Signal) { s.SetAttr("s", "\xed\xa0\x80") }, `attrs["s"] "\xed\xa0\x80" is not valid UTF-8`},
		{"NaN attr", func(s *Signal) { s.SetAttr("f", math.NaN()) }, `attrs["f"] is NaN: JSON holds only finite numbers`},
		{"+Inf attr", func(s *Signal) { s.SetAttr("f", math.Inf(1)) }, `attrs["f"] is +Inf`},
		{"largest finite attr", func(s *Signal) { s.SetAttr("f", math.MaxFloat64) }, ""},
		{"attr of another type", func(s *Signal) { s.Attrs["b"] = []byte{1} }, `attrs["b"] is a []uint8: want float64, int64, string, bool or nil`},
		{"attr int (not int64)", func(s *Signal) { s.Attrs["i"] = 3 }, `attrs["i"] is a int`},
		{"1024 attrs", func(s *Signal) {
			for i := range MaxAttrs - 1 {
				s.SetAttr(fmt.Sprint("a", i), int64(i))
			}
		}, ""},
		{"1025 attrs", func(s *Signal) {
			for i := range MaxAttrs {
				s.SetAttr(fmt.Sprint("a", i), int64(i))
			}
		}, "1025 attrs exceed 1024"},
		{"attrs JSON at the cap", func(s *Signal) { s.Attrs = attrsOfJSONSize(MaxAttrsBytes) }, ""},
		{"attrs JSON beyond the cap", func(s *Signal) { s.Attrs = attrsOfJSONSize(MaxAttrsBytes + 1) }, "attrs of 262145 bytes as JSON exceed 262144"},
		{"escapes count in the attrs size", func(s *Signal) {
			s.Attrs = attrsOfJSONSize(MaxAttrsBytes)
			s.Attrs["k"] = s.Attrs["k"].(string)[1:] + "\n" // as many bytes, one more in JSON
		}, "attrs of 262145 bytes as JSON exceed 262144"},

		// frame
		{"frame at the cap", func(s *Signal) { s.Frame = make([]byte, MaxFrameBytes) }, ""},
		{"frame beyond the cap", func(s *Signal) { s.Frame = make([]byte, MaxFrameBytes+1) }, "frame of 16777217 bytes exceeds 16777216"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validSignal()
			tc.mod(&s)
			err := s.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check() = nil, want an error with %q", tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check() = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestCheckNumbers walks every numeric field's domain: both ends are
// accepted, the next representable value beyond each end, ±Inf and a huge
// value are refused with the field's name, and NaN (absent) passes.
func TestCheckNumbers(t *testing.T) {
	for f := FieldLat; f <= FieldThrottle; f++ {
		d, ok := DomainOf(f)
		if !ok {
			t.Fatalf("%s has no domain", f)
		}
		cases := []struct {
			name string
			v    float64
			ok   bool
		}{
			{"absent", math.NaN(), true},
			{"min", d.Min, true},
			{"max", d.Max, true},
			{"below min", math.Nextafter(d.Min, math.Inf(-1)), false},
			{"above max", math.Nextafter(d.Max, math.Inf(1)), false},
			{"1e308", 1e308, false},
			{"-1e308", -1e308, false},
			{"+Inf", math.Inf(1), false},
			{"-Inf", math.Inf(-1), false},
		}
		for _, tc := range cases {
			t.Run(f.String()+"/"+tc.name, func(t *testing.T) {
				s := validSignal()
				s.SetNumber(f, tc.v)
				err := s.Check()
				if tc.ok {
					if err != nil {
						t.Fatalf("Check() = %v, want nil", err)
					}
					return
				}
				want := fmt.Sprintf("%s %s outside [%s, %s]", f, formatNumber(tc.v), formatNumber(d.Min), formatNumber(d.Max))
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
					t.Fatalf("Check() = %v, want an ErrInvalid with %q", err, want)
				}
			})
		}
	}
}

// TestCheckDomains pins the documented domains, so a change to one is a
// change to this test and to the README table.
func TestCheckDomains(t *testing.T) {
	want := map[Field][2]float64{
		FieldLat: {-90, 90}, FieldLon: {-180, 180}, FieldAlt: {-12000, 100000},
		FieldSpeed: {0, 2000}, FieldHeading: {0, 360}, FieldSats: {0, 255}, FieldHDOP: {0, 1000},
		FieldRPM: {0, 65535}, FieldCoolant: {-273.15, 1000}, FieldFuel: {0, 100},
		FieldVoltage: {0, 1000}, FieldOdometer: {0, 1e8}, FieldEngineLoad: {0, 100}, FieldThrottle: {0, 100},
	}
	for f := FieldLat; f <= FieldThrottle; f++ {
		d, _ := DomainOf(f)
		if w := want[f]; d.Min != w[0] || d.Max != w[1] {
			t.Errorf("%s domain [%g, %g], want [%g, %g]", f, d.Min, d.Max, w[0], w[1])
		}
		if d.Reason == "" {
			t.Errorf("%s domain has no reason", f)
		}
		if l := Limits[f.String()]; l.Kind != KindNumber || l.Domain != d {
			t.Errorf("Limits[%q] = %+v, want the number domain %+v", f, l, d)
		}
	}
	for _, f := range []Field{FieldTS, FieldRecv, FieldPrevTS, FieldPrevLat} {
		if _, ok := DomainOf(f); ok {
			t.Errorf("DomainOf(%s) ok, want no domain", f)
		}
	}
}

// TestCheckMessagesAreStorable: the reason is stored as text in the
// quarantine table, so it must itself be valid UTF-8 without NUL, and it
// must not carry a huge value.
func TestCheckMessagesAreStorable(t *testing.T) {
	for _, mod := range []func(*Signal){
		func(s *Signal) { s.DeviceID = strings.Repeat("\xff\x00", 60) },
		func(s *Signal) { s.SetAttr("k", strings.Repeat("\x00", 5000)) },
		func(s *Signal) { s.Path = strings.Repeat("\xfe", 5000) },
	} {
		s := validSignal()
		mod(&s)
		err := s.Check()
		if err == nil {
			t.Fatal("Check() = nil")
		}
		if msg := err.Error(); !strings.ContainsRune(msg, '…') || strings.IndexByte(msg, 0) >= 0 || len(msg) > 200 || !isUTF8(msg) {
			t.Fatalf("message %q is not short storable text", msg)
		}
	}
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "?") == s }

// TestLimitsCoverEveryCap: every kind has the caps it needs, every entry a
// reason.
func TestLimitsCoverEveryCap(t *testing.T) {
	for col, l := range Limits {
		if l.Reason == "" {
			t.Errorf("%s: no reason", col)
		}
		if l.SetBy != "" && col != "path" && col != "recv" {
			continue
		}
		switch l.Kind {
		case KindText, KindBytes:
			if l.MaxBytes <= 0 {
				t.Errorf("%s: %s without MaxBytes", col, l.Kind)
			}
		case KindTime:
			if !l.From.Before(l.To) {
				t.Errorf("%s: empty time range", col)
			}
		case KindTextList:
			if l.MaxItems <= 0 || l.MaxItemBytes <= 0 {
				t.Errorf("%s: text list without caps", col)
			}
		case KindAttrs:
			if l.MaxItems <= 0 || l.MaxItemBytes <= 0 || l.MaxKeyBytes <= 0 || l.MaxBytes <= 0 {
				t.Errorf("%s: attrs without caps", col)
			}
		case KindNumber:
			if !(l.Domain.Min < l.Domain.Max) {
				t.Errorf("%s: empty domain", col)
			}
		case KindFlag, KindInt:
		default:
			t.Errorf("%s: kind %d", col, l.Kind)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	s := validSignal()
	for i := range 20 {
		s.SetAttr(fmt.Sprint("io", i), int64(i))
	}
	s.SetAttr("vin", "WAUZZZ8K9CA123456")
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Check(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSetAttrTypesPassCheck: every Go number type a decoder may hand to
// SetAttr ends up as a type Check accepts.
func TestSetAttrTypesPassCheck(t *testing.T) {
	for _, v := range []any{int(-1), int8(-1), int16(-1), int32(-1), int64(-1), uint(1), uint8(1), uint16(1),
		uint32(1), uint64(math.MaxUint64), float32(1.5), 1.5, "s", true, nil} {
		s := validSignal()
		s.SetAttr("v", v)
		if err := s.Check(); err != nil {
			t.Errorf("SetAttr(%T): %v", v, err)
		}
	}
}

// FuzzCheck: Check never panics, its message is always storable text, and
// a record it accepts has a canonical JSON form.
func FuzzCheck(f *testing.F) {
	f.Add("356307042441013", "teltonika", "P0301", "io1", "v", int64(1700000000000), 54.7, 25.3, 100.0)
	f.Add("", "\xff", "\x00", "a\x00", "\xed\xa0\x80", int64(-1), math.Inf(1), math.NaN(), -1.0)
	f.Fuzz(func(t *testing.T, dev, proto, dtc, key, val string, ms int64, lat, lon, num float64) {
		s := New(dev, time.UnixMilli(ms))
		s.Protocol = proto
		s.Lat, s.Lon, s.Speed, s.Coolant = lat, lon, num, num
		s.DTCs = []string{dtc}
		s.SetAttr(key, val)
		s.SetAttr(key+"n", num)
		err := s.Check()
		if err != nil {
			if msg := err.Error(); !isUTF8(msg) || strings.IndexByte(msg, 0) >= 0 || !errors.Is(err, ErrInvalid) {
				t.Fatalf("message %q", msg)
			}
			return
		}
		if _, err := s.MarshalJSON(); err != nil {
			t.Fatalf("accepted record does not marshal: %v", err)
		}
	})
}
