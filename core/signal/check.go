package signal

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalid is wrapped by Check's errors.
var ErrInvalid = errors.New("invalid signal")

var (
	minTS = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTS = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// Check reports whether the record can be stored and written back as
// canonical JSON: a device id, a device time between the years 1 and 9999,
// and text fields that are valid UTF-8 without NUL characters (Postgres
// refuses both in text columns, which would fail the whole batch the record
// is in). The gateway rejects a frame whose records fail it, so one device's
// garbage never holds up another device's data.
func (s *Signal) Check() error {
	if s.DeviceID == "" {
		return fmt.Errorf("%w: no device id", ErrInvalid)
	}
	if err := checkText("device_id", s.DeviceID); err != nil {
		return err
	}
	if s.TS.Before(minTS) || s.TS.After(maxTS) {
		return fmt.Errorf("%w: device time %s outside the years 0001–9999", ErrInvalid, s.TS.UTC().Format("2006-01-02T15:04:05Z07:00"))
	}
	if err := checkText("protocol", s.Protocol); err != nil {
		return err
	}
	for _, d := range s.DTCs {
		if err := checkText("dtcs", d); err != nil {
			return err
		}
	}
	return nil
}

func checkText(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL character", ErrInvalid, field)
	}
	return nil
}
