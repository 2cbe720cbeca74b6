package sdk

import (
	"math"
	"sort"
	"strconv"
	"strings"
)

// ABIVersion is the rule ABI version the SDK implements.
const ABIVersion = 1

// NoTime is the value of an absent time (ts, recv, prev_ts).
const NoTime = math.MinInt64

// MaxAttrs is the most attributes a rule built with the SDK may declare.
const MaxAttrs = 16

// Canonical field indexes of rule ABI v1 (same numbering as signal).
const (
	FieldTS = iota
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

// FieldNames are the canonical field names by index.
var FieldNames = [NumFields]string{
	"ts", "recv", "lat", "lon", "alt", "speed", "heading", "sats", "hdop",
	"rpm", "coolant", "fuel", "voltage", "odometer", "engine_load", "throttle",
	"prev_ts", "prev_lat", "prev_lon", "prev_odometer",
}

// Signal is one signal as a rule sees it. Times are Unix milliseconds
// (NoTime when absent), every other value is NaN when absent. Only the
// fields the rule declares in Meta.Fields are filled; the others stay
// absent. Prev* are the same device's previous signal by device time.
type Signal struct {
	NowMs int64 // the host's clock for this batch; rules never read a clock

	TS, Recv int64

	Lat, Lon, Alt, Speed, Heading, Sats, HDOP float64
	RPM, Coolant, Fuel, Voltage, Odometer     float64
	EngineLoad, Throttle                      float64
	PrevTS                                    int64
	PrevLat, PrevLon, PrevOdometer            float64
	attrs                                     [MaxAttrs]float64
	nattrs                                    int
}

// Attr returns attribute i, in the order of Meta.Attrs (NaN when absent).
func (s *Signal) Attr(i int) float64 {
	if i < 0 || i >= s.nattrs {
		return math.NaN()
	}
	return s.attrs[i]
}

// SetAttr sets attribute i (for native tests of a rule's logic).
func (s *Signal) SetAttr(i int, v float64) {
	if i >= 0 && i < MaxAttrs {
		s.attrs[i] = v
		if i >= s.nattrs {
			s.nattrs = i + 1
		}
	}
}

// Absent returns a signal with every value absent.
func Absent() Signal {
	nan := math.NaN()
	s := Signal{NowMs: NoTime, TS: NoTime, Recv: NoTime, PrevTS: NoTime,
		Lat: nan, Lon: nan, Alt: nan, Speed: nan, Heading: nan, Sats: nan, HDOP: nan,
		RPM: nan, Coolant: nan, Fuel: nan, Voltage: nan, Odometer: nan, EngineLoad: nan, Throttle: nan,
		PrevLat: nan, PrevLon: nan, PrevOdometer: nan}
	for i := range s.attrs {
		s.attrs[i] = nan
	}
	return s
}

// Has reports whether v is present (not NaN).
func Has(v float64) bool { return v == v }

// Status is the outcome of a rule for one signal.
type Status uint8

// Statuses, as encoded in the verdict bytes.
const (
	StatusPass          Status = 0
	StatusWarn          Status = 1
	StatusFail          Status = 2
	StatusNotApplicable Status = 3
)

var statusNames = [...]string{"pass", "warn", "fail", "not_applicable"}

// String returns pass, warn, fail or not_applicable.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "invalid"
}

// Verdict is a status and, for warn and fail, a reason code (a key of
// Meta.Reasons).
type Verdict struct {
	Status Status
	Reason uint16
}

// Pass is the verdict of a signal that satisfies the rule.
func Pass() Verdict { return Verdict{} }

// Warn flags a suspicious signal with a reason code.
func Warn(reason uint16) Verdict { return Verdict{Status: StatusWarn, Reason: reason} }

// Fail flags a signal that breaks the rule with a reason code.
func Fail(reason uint16) Verdict { return Verdict{Status: StatusFail, Reason: reason} }

// NotApplicable says the rule cannot judge the signal (fields absent).
func NotApplicable() Verdict { return Verdict{Status: StatusNotApplicable} }

// Meta is the rule's metadata (ABI.md "Metadata").
type Meta struct {
	Name      string            // dotted name, e.g. gps.range
	Version   string            // semantic version
	Dimension string            // validity, completeness, timeliness, uniqueness or consistency
	Severity  string            // info, warning or critical
	Fields    []string          // canonical fields the rule reads
	Attrs     []string          // attribute names the rule reads, as f64 columns
	Reasons   map[uint16]string // reason code → text
	Tests     []Test            // self-tests the host runs before the rule goes live
}

// Test is one self-test case: one signal, the host's clock and the expected
// verdict.
type Test struct {
	Name   string
	NowMs  int64              // 0 when the rule does not read the clock
	In     map[string]float64 // canonical field → value; times in Unix ms
	Attrs  map[string]float64 // attribute → value
	Want   Status
	Reason uint16
}

// JSON renders the metadata as the ABI's JSON document.
func (m *Meta) JSON() string {
	var b strings.Builder
	b.WriteString(`{"name":`)
	b.WriteString(quote(m.Name))
	b.WriteString(`,"version":`)
	b.WriteString(quote(m.Version))
	b.WriteString(`,"dimension":`)
	b.WriteString(quote(m.Dimension))
	b.WriteString(`,"severity":`)
	b.WriteString(quote(m.Severity))
	b.WriteString(`,"fields":`)
	writeStrings(&b, m.Fields)
	b.WriteString(`,"attrs":`)
	writeStrings(&b, m.Attrs)
	b.WriteString(`,"reasons":{`)
	codes := make([]int, 0, len(m.Reasons))
	for c := range m.Reasons {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	for i, c := range codes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quote(strconv.Itoa(c)))
		b.WriteByte(':')
		b.WriteString(quote(m.Reasons[uint16(c)]))
	}
	b.WriteString(`}`)
	if len(m.Tests) > 0 {
		b.WriteString(`,"tests":[`)
		for i, t := range m.Tests {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"name":`)
			b.WriteString(quote(t.Name))
			if t.NowMs != 0 {
				b.WriteString(`,"now_ms":`)
				b.WriteString(strconv.FormatInt(t.NowMs, 10))
			}
			b.WriteString(`,"in":`)
			writeNumbers(&b, t.In)
			if len(t.Attrs) > 0 {
				b.WriteString(`,"attrs":`)
				writeNumbers(&b, t.Attrs)
			}
			b.WriteString(`,"want":`)
			b.WriteString(quote(t.Want.String()))
			b.WriteString(`,"reason":`)
			b.WriteString(strconv.Itoa(int(t.Reason)))
			b.WriteByte('}')
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.String()
}

func writeStrings(b *strings.Builder, ss []string) {
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quote(s))
	}
	b.WriteByte(']')
}

func writeNumbers(b *strings.Builder, m map[string]float64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteByte('{')
	n := 0
	for _, k := range keys {
		v := m[k]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue // absent: JSON has no NaN
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(quote(k))
		b.WriteByte(':')
		b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
	}
	b.WriteByte('}')
}

// quote renders s as a JSON string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
