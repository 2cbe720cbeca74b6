package signal

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrInvalid is wrapped by Check's errors.
var ErrInvalid = errors.New("invalid signal")

// Check reports whether the record can be stored and written back as
// canonical JSON, against the caps and domains of limits.go (the table
// Limits): a device id of at most MaxDeviceIDBytes, times in
// [MinTime, EndTime), finite numbers in their field's domain, text that is
// valid UTF-8 without NUL characters (Postgres refuses both in text and
// jsonb), bounded trouble codes, attributes and frame. A record that fails
// it would fail the whole batch it lands in, or is not a value of its
// field. The gateway rejects a frame whose records fail it (the frame is
// quarantined, never acked), so one device's garbage never holds up
// another device's data. The error names the field, the value and the
// limit.
func (s *Signal) Check() error {
	if s.DeviceID == "" {
		return fmt.Errorf("%w: no device id", ErrInvalid)
	}
	if err := checkText("device_id", s.DeviceID, MaxDeviceIDBytes); err != nil {
		return err
	}
	if err := checkTime("ts", s.TS); err != nil {
		return err
	}
	if !s.Recv.IsZero() {
		if err := checkTime("recv", s.Recv); err != nil {
			return err
		}
	}
	if err := checkText("protocol", s.Protocol, MaxProtocolBytes); err != nil {
		return err
	}
	if err := checkText("decoder_version", s.DecoderVersion, MaxDecoderVersionBytes); err != nil {
		return err
	}
	switch s.Path {
	case "", PathDirect, PathFailover, PathSpool:
	default:
		return fmt.Errorf("%w: path %s is not %s, %s or %s", ErrInvalid, clip(s.Path), PathDirect, PathFailover, PathSpool)
	}
	if s.Valid != Unknown && !s.Valid.Known() {
		return fmt.Errorf("%w: valid is %d, not a flag", ErrInvalid, s.Valid)
	}
	for f := FieldLat; f <= FieldThrottle; f++ {
		v := s.Number(f)
		if d := domains[f]; !d.Contains(v) {
			return fmt.Errorf("%w: %s %s outside [%s, %s]", ErrInvalid, f, formatNumber(v), formatNumber(d.Min), formatNumber(d.Max))
		}
	}
	if len(s.DTCs) > MaxDTCs {
		return fmt.Errorf("%w: %d dtcs exceed %d", ErrInvalid, len(s.DTCs), MaxDTCs)
	}
	for i, d := range s.DTCs {
		if len(d) > MaxDTCBytes {
			return fmt.Errorf("%w: dtcs[%d] of %d bytes exceeds %d", ErrInvalid, i, len(d), MaxDTCBytes)
		}
		if _, bad := scanText(d); bad != "" {
			return fmt.Errorf("%w: dtcs[%d] %s %s", ErrInvalid, i, clip(d), bad)
		}
	}
	if err := checkAttrs(s.Attrs); err != nil {
		return err
	}
	if len(s.Frame) > MaxFrameBytes {
		return fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrInvalid, len(s.Frame), MaxFrameBytes)
	}
	return nil
}

// checkText refuses text longer than max bytes, invalid UTF-8 and NUL.
func checkText(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrInvalid, field, len(v), max)
	}
	if _, bad := scanText(v); bad != "" {
		return fmt.Errorf("%w: %s %s %s", ErrInvalid, field, clip(v), bad)
	}
	return nil
}

func checkTime(field string, t time.Time) error {
	if t.Before(MinTime) || !t.Before(EndTime) {
		return fmt.Errorf("%w: %s %s outside [%s, %s)", ErrInvalid, field, formatTime(t), formatTime(MinTime), formatTime(EndTime))
	}
	return nil
}

// checkAttrs enforces the attribute caps and value types, and that the
// attributes fit MaxAttrsBytes as JSON text.
func checkAttrs(m map[string]any) error {
	if len(m) > MaxAttrs {
		return fmt.Errorf("%w: %d attrs exceed %d", ErrInvalid, len(m), MaxAttrs)
	}
	size := 2 // {}
	for k, v := range m {
		if len(k) > MaxAttrKeyBytes {
			return fmt.Errorf("%w: attrs key of %d bytes exceeds %d", ErrInvalid, len(k), MaxAttrKeyBytes)
		}
		n, bad := scanText(k)
		if bad != "" {
			return fmt.Errorf("%w: attrs key %s %s", ErrInvalid, clip(k), bad)
		}
		size += n + 2 // colon and comma
		switch x := v.(type) {
		case string:
			if len(x) > MaxAttrStringBytes {
				return fmt.Errorf("%w: attrs[%s] of %d bytes exceeds %d", ErrInvalid, clip(k), len(x), MaxAttrStringBytes)
			}
			n, bad := scanText(x)
			if bad != "" {
				return fmt.Errorf("%w: attrs[%s] %s %s", ErrInvalid, clip(k), clip(x), bad)
			}
			size += n
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("%w: attrs[%s] is %v: JSON holds only finite numbers", ErrInvalid, clip(k), x)
			}
			size += 24 // the longest float64 in JSON: -2.2250738585072014e-308
		case int64:
			size += 20 // the longest int64: -9223372036854775808
		case bool, nil:
			size += 5 // false, null and true at most
		default:
			return fmt.Errorf("%w: attrs[%s] is a %T: want float64, int64, string, bool or nil", ErrInvalid, clip(k), v)
		}
	}
	if size > MaxAttrsBytes {
		return fmt.Errorf("%w: attrs of %d bytes as JSON exceed %d", ErrInvalid, size, MaxAttrsBytes)
	}
	return nil
}

// scanText returns the length of v as a JSON string written by
// encoding/json (HTML-safe escapes: the longest form the store writes),
// quotes included, and what makes v unstorable ("" when nothing):
// invalid UTF-8 or a NUL character, which Postgres refuses in text and
// jsonb.
func scanText(v string) (jsonLen int, bad string) {
	n := 2
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			switch {
			case c == 0:
				return 0, "contains a NUL character"
			case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return 0, "is not valid UTF-8"
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n, ""
}

// clip quotes a value for an error message: at most 32 bytes of it, with
// invalid UTF-8 and control characters escaped, so the message itself is
// always storable text.
func clip(v string) string {
	const max = 32
	if len(v) <= max {
		return strconv.Quote(v)
	}
	return strconv.Quote(v[:max]) + "…"
}

func formatNumber(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}
