package signal

import (
	"errors"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	ok := New("356307042441013", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ok.Protocol = "teltonika"
	ok.DTCs = []string{"P0301"}
	cases := []struct {
		name  string
		mod   func(*Signal)
		valid bool
	}{
		{"valid", func(*Signal) {}, true},
		{"year 1", func(s *Signal) { s.TS = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC) }, true},
		{"year 9999", func(s *Signal) { s.TS = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) }, true},
		{"year 0 after offset", func(s *Signal) { s.TS = time.Date(0, 12, 31, 23, 0, 0, 0, time.UTC) }, false},
		{"year 10000", func(s *Signal) { s.TS = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
		{"huge device time", func(s *Signal) { s.TS = time.UnixMilli(1 << 62) }, false},
		{"no device", func(s *Signal) { s.DeviceID = "" }, false},
		{"NUL in device", func(s *Signal) { s.DeviceID = "35\x0063" }, false},
		{"bad UTF-8 in device", func(s *Signal) { s.DeviceID = "\xff\xfe" }, false},
		{"NUL in DTC", func(s *Signal) { s.DTCs = []string{"P0\x00"} }, false},
		{"bad UTF-8 in protocol", func(s *Signal) { s.Protocol = "x\xc3" }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			s.DTCs = append([]string(nil), ok.DTCs...)
			tc.mod(&s)
			err := s.Check()
			if (err == nil) != tc.valid {
				t.Fatalf("Check() = %v, want valid=%v", err, tc.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}
