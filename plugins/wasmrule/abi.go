package wasmrule

import (
	"encoding/binary"
	"math"
	"strconv"
	"time"

	"github.com/fleetcore/fleetcore/signal"
)

// ABIVersion is the rule ABI version this host implements.
const ABIVersion = 1

// HeaderSize is the size of the batch header.
const HeaderSize = 64

// Magic is the first four bytes of a batch, "FCB1".
var Magic = [4]byte{'F', 'C', 'B', '1'}

// canonicalNaN is the one bit pattern the host writes for an absent f64, so
// that batch bytes are a pure function of the signals.
const canonicalNaN = 0x7ff8000000000000

// Status is a rule's verdict for one signal.
type Status uint8

// Statuses as encoded in the verdict bytes.
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
	return "invalid(" + strconv.Itoa(int(s)) + ")"
}

// ParseStatus parses a status name.
func ParseStatus(s string) (Status, bool) {
	for i, n := range statusNames {
		if n == s {
			return Status(i), true
		}
	}
	return 0, false
}

// Verdict is the outcome of a rule for one signal. Reason is a key of the
// rule's Meta.Reasons for warn and fail, 0 when passing.
type Verdict struct {
	Status Status
	Reason uint16
}

// Input is one signal to evaluate, with the same device's previous signal
// by device time (nil when there is none; only its TS, Lat, Lon and
// Odometer are read) and the host's clock (zero: the Host's Now).
type Input struct {
	Signal signal.Signal
	Prev   *signal.Signal
	Now    time.Time
}

// Chain turns signals into inputs, linking each to the previous signal of
// the same device in slice order (sort by device time first).
func Chain(signals []signal.Signal, now time.Time) []Input {
	last := make(map[string]int, 16)
	in := make([]Input, len(signals))
	for i := range signals {
		in[i] = Input{Signal: signals[i], Now: now}
		if j, ok := last[signals[i].DeviceID]; ok {
			in[i].Prev = &signals[j]
		}
		last[signals[i].DeviceID] = i
	}
	return in
}

// BatchSize returns the bytes a batch of n signals takes for the metadata:
// header, columns and verdicts.
func BatchSize(m *Meta, n int) int {
	return HeaderSize + 8*n*(len(m.fields)+len(m.Attrs)) + 4*n
}

func f64bits(v float64) uint64 {
	if v != v {
		return canonicalNaN
	}
	return math.Float64bits(v)
}

func timeBits(t time.Time) uint64 { return uint64(signal.UnixMilli(t)) }

func fieldBits(in *Input, f signal.Field) uint64 {
	switch f {
	case signal.FieldTS:
		return timeBits(in.Signal.TS)
	case signal.FieldRecv:
		return timeBits(in.Signal.Recv)
	case signal.FieldPrevTS:
		if in.Prev == nil {
			return timeBits(time.Time{})
		}
		return timeBits(in.Prev.TS)
	case signal.FieldPrevLat:
		if in.Prev == nil {
			return canonicalNaN
		}
		return f64bits(in.Prev.Lat)
	case signal.FieldPrevLon:
		if in.Prev == nil {
			return canonicalNaN
		}
		return f64bits(in.Prev.Lon)
	case signal.FieldPrevOdometer:
		if in.Prev == nil {
			return canonicalNaN
		}
		return f64bits(in.Prev.Odometer)
	}
	return f64bits(in.Signal.Number(f))
}

// AttrValue converts an attribute to the f64 a rule sees: numbers as they
// are, booleans as 1 or 0, numeric strings parsed, anything else NaN.
func AttrValue(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case int:
		return float64(x)
	case bool:
		if x {
			return 1
		}
		return 0
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return f
		}
	}
	return math.NaN()
}

// encodeBatch writes the header and columns of in into dst (at least
// BatchSize bytes) and zeroes the verdict area.
func encodeBatch(dst []byte, m *Meta, in []Input, nowMs int64) {
	n := len(in)
	le := binary.LittleEndian
	copy(dst[0:4], Magic[:])
	le.PutUint32(dst[4:], uint32(n))
	le.PutUint64(dst[8:], m.mask)
	le.PutUint64(dst[16:], uint64(nowMs))
	le.PutUint32(dst[24:], uint32(len(m.Attrs)))
	clear(dst[28:HeaderSize])
	off := HeaderSize
	for _, f := range m.fields {
		for i := range in {
			le.PutUint64(dst[off:], fieldBits(&in[i], f))
			off += 8
		}
	}
	for _, a := range m.Attrs {
		for i := range in {
			v := math.NaN()
			if x, ok := in[i].Signal.Attrs[a]; ok {
				v = AttrValue(x)
			}
			le.PutUint64(dst[off:], f64bits(v))
			off += 8
		}
	}
	clear(dst[off : off+4*n])
}

// EncodeBatch returns the batch bytes the host hands a rule with this
// metadata for in, with the verdict area zeroed: the bytes of ABI.md.
func EncodeBatch(m *Meta, in []Input, now time.Time) []byte {
	b := make([]byte, BatchSize(m, len(in)))
	encodeBatch(b, m, in, signal.UnixMilli(now))
	return b
}

// decodeVerdicts reads n verdicts from src and returns how many are warn or
// fail; an unknown status or undeclared reason is an error kind.
func decodeVerdicts(src []byte, m *Meta, out []Verdict) (int, Kind, string) {
	bad := 0
	for i := range out {
		w := binary.LittleEndian.Uint32(src[4*i:])
		v := Verdict{Status: Status(w & 0xff), Reason: uint16(w >> 16)}
		switch v.Status {
		case StatusPass, StatusNotApplicable:
		case StatusWarn, StatusFail:
			bad++
			if _, ok := m.Reasons[v.Reason]; !ok {
				return 0, KindBadVerdict, "signal " + strconv.Itoa(i) + ": reason " + strconv.Itoa(int(v.Reason)) + " is not declared in reasons"
			}
		default:
			return 0, KindBadVerdict, "signal " + strconv.Itoa(i) + ": status " + strconv.Itoa(int(v.Status)) + " out of range 0..3"
		}
		out[i] = v
	}
	return bad, 0, ""
}
