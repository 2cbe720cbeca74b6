package signal

import (
	"math"
	"time"
)

// Field is a canonical numeric or time field, numbered as in the WASM rule
// ABI v1 (DESIGN.md §4). The numbering is a public contract: never reorder.
type Field int

// Canonical field indexes of rule ABI v1.
const (
	FieldTS Field = iota
	FieldRecv
	FieldLat
	FieldLon
	FieldAlt
	FieldSpeed
	FieldHeading
	FieldSats
	FieldHDOP
	FieldRPM
	FieldCoolant
	FieldFuel
	FieldVoltage
	FieldOdometer
	FieldEngineLoad
	FieldThrottle
	FieldPrevTS
	FieldPrevLat
	FieldPrevLon
	FieldPrevOdometer
	NumFields
)

var fieldNames = [NumFields]string{
	"ts", "recv", "lat", "lon", "alt", "speed", "heading", "sats", "hdop",
	"rpm", "coolant", "fuel", "voltage", "odometer", "engine_load", "throttle",
	"prev_ts", "prev_lat", "prev_lon", "prev_odometer",
}

// String returns the canonical name of the field.
func (f Field) String() string {
	if f < 0 || f >= NumFields {
		return "invalid"
	}
	return fieldNames[f]
}

// IsTime reports whether the field is a time (i64 Unix milliseconds in the
// rule ABI) rather than an f64.
func (f Field) IsTime() bool { return f == FieldTS || f == FieldRecv || f == FieldPrevTS }

// FieldByName returns the field with the canonical name; ok is false for an
// unknown name.
func FieldByName(name string) (Field, bool) {
	for i, n := range fieldNames {
		if n == name {
			return Field(i), true
		}
	}
	return 0, false
}

// NoTime is the i64 value of an absent time in the rule ABI.
const NoTime = math.MinInt64

// Number returns a numeric field of the record (NaN when absent). Times and
// prev_* fields are not numbers of the record itself: Number returns NaN for
// them.
func (s *Signal) Number(f Field) float64 {
	switch f {
	case FieldLat:
		return s.Lat
	case FieldLon:
		return s.Lon
	case FieldAlt:
		return s.Alt
	case FieldSpeed:
		return s.Speed
	case FieldHeading:
		return s.Heading
	case FieldSats:
		return s.Sats
	case FieldHDOP:
		return s.HDOP
	case FieldRPM:
		return s.RPM
	case FieldCoolant:
		return s.Coolant
	case FieldFuel:
		return s.Fuel
	case FieldVoltage:
		return s.Voltage
	case FieldOdometer:
		return s.Odometer
	case FieldEngineLoad:
		return s.EngineLoad
	case FieldThrottle:
		return s.Throttle
	}
	return math.NaN()
}

// SetNumber sets a numeric field of the record; it ignores time and prev_*
// fields.
func (s *Signal) SetNumber(f Field, v float64) {
	switch f {
	case FieldLat:
		s.Lat = v
	case FieldLon:
		s.Lon = v
	case FieldAlt:
		s.Alt = v
	case FieldSpeed:
		s.Speed = v
	case FieldHeading:
		s.Heading = v
	case FieldSats:
		s.Sats = v
	case FieldHDOP:
		s.HDOP = v
	case FieldRPM:
		s.RPM = v
	case FieldCoolant:
		s.Coolant = v
	case FieldFuel:
		s.Fuel = v
	case FieldVoltage:
		s.Voltage = v
	case FieldOdometer:
		s.Odometer = v
	case FieldEngineLoad:
		s.EngineLoad = v
	case FieldThrottle:
		s.Throttle = v
	}
}

// UnixMilli returns t in Unix milliseconds, or NoTime for the zero time.
func UnixMilli(t time.Time) int64 {
	if t.IsZero() {
		return NoTime
	}
	return t.UnixMilli()
}
