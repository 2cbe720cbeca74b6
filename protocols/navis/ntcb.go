package navis

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// reader reads little-endian values; the first read past the end sets err
// and every later read returns zero.
type reader struct {
	b   []byte
	p   int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.p+n > len(r.b) {
		r.err = fmt.Errorf("%w: record truncated: %d bytes wanted at offset %d of %d", plugins.ErrMalformed, n, r.p, len(r.b))
		return nil
	}
	b := r.b[r.p : r.p+n]
	r.p += n
	return b
}

func (r *reader) left() int { return len(r.b) - r.p }

func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) i8() int8 { return int8(r.u8()) }

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) i16() int16 { return int16(r.u16()) }

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) i32() int32 { return int32(r.u32()) }

func (r *reader) f32() float32 { return math.Float32frombits(r.u32()) }

func (r *reader) skip(n int) { r.take(n) }

// NTCB telemetry formats (the first byte, or a 0 byte and a 16-bit number).
const (
	f10 = 0x01
	f20 = 0x02
	f30 = 0x03
	f40 = 0x04
	f50 = 0x05
	f51 = 0x15
	f52 = 0x25
	f60 = 0x06
)

func isFormat(f int, fs ...int) bool {
	for _, x := range fs {
		if f == x {
			return true
		}
	}
	return false
}

// ntcbTime reads the 6-byte time of NTCB records: hour, minute, second,
// day, month counted from 0, year of the century. All zero: no time.
func ntcbTime(r *reader, what string) (time.Time, error) {
	b := r.take(6)
	if b == nil {
		return time.Time{}, r.err
	}
	if b[0]|b[1]|b[2]|b[3]|b[4]|b[5] == 0 {
		return time.Time{}, nil
	}
	h, mi, s, day, mon, y := int(b[0]), int(b[1]), int(b[2]), int(b[3]), int(b[4])+1, 2000+int(b[5])
	t := time.Date(y, time.Month(mon), day, h, mi, s, 0, time.UTC)
	if h > 23 || mi > 59 || s > 59 || mon > 12 || day < 1 || t.Day() != day || b[5] > 99 {
		return time.Time{}, fmt.Errorf("%w: %s %02d:%02d:%02d day %d month %d year %d", plugins.ErrMalformed, what, h, mi, s, day, b[4], b[5])
	}
	return t, nil
}

// inDomain reports whether v is finite and inside field's domain.
func inDomain(field signal.Field, v float64) bool {
	d, _ := signal.DomainOf(field)
	return !math.IsNaN(v) && !math.IsInf(v, 0) && d.Contains(v)
}

// coordinate checks a latitude or longitude against its domain.
func coordinate(v float64, field signal.Field, what string) (float64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) || !inDomain(field, v) {
		return 0, fmt.Errorf("%w: %s %v", plugins.ErrMalformed, what, v)
	}
	return v, nil
}

// ntcbRecord decodes one telemetry record of a *>T or *>A message. It
// returns the record and its index (acked by *<T).
func (d *decoding) ntcbRecord(r *reader) (*signal.Signal, uint32, error) {
	var format int
	if r.left() > 0 && r.b[r.p] == 0 {
		format = int(r.u16())
	} else {
		format = int(r.u8())
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	if !isFormat(format, f10, f20, f30, f40, f50, f51, f52, f60) {
		return nil, 0, fmt.Errorf("%w: telemetry format 0x%02x (known: F1.0–F6.0)", plugins.ErrUnsupported, format)
	}
	attrs := map[string]any{"format": int64(format)}
	index := r.u32()
	attrs["index"] = int64(index)
	attrs["event"] = int64(r.u16())
	eventTime, err := ntcbTime(r, "event time")
	if err != nil {
		return nil, 0, err
	}
	armed := r.u8()
	if isFormat(format, f60) {
		attrs["armed"] = armed&1 != 0
		if armed&2 != 0 {
			attrs["alarm"] = "general"
		}
	} else {
		attrs["armed"] = int64(armed & 0x7F)
		if armed&0x80 != 0 {
			attrs["alarm"] = "general"
		}
	}
	attrs["status"] = int64(r.u8())
	attrs["rssi"] = int64(r.u8())
	sats := math.NaN()
	switch {
	case isFormat(format, f10, f20, f30):
		attrs["output"] = int64(r.u16())
	case isFormat(format, f50, f51, f52):
		ext := r.u8()
		attrs["output"] = int64(ext & 0x03)
		sats = float64(ext >> 2)
	case isFormat(format, f40, f60):
		attrs["output"] = int64(r.u8() & 0x0F)
	}
	switch {
	case isFormat(format, f10, f20, f30, f40):
		attrs["input"] = int64(r.u16())
	default:
		attrs["input"] = int64(r.u8())
	}
	voltage := float64(r.u16()) * 0.001
	attrs["battery_v"] = float64(r.u16()) * 0.001
	if isFormat(format, f10, f20, f30) {
		attrs["temp1"] = int64(r.i16())
	}
	if isFormat(format, f10, f20, f50, f51, f52, f60) {
		attrs["adc1"] = int64(r.u16())
		attrs["adc2"] = int64(r.u16())
	}
	if isFormat(format, f60) {
		attrs["adc3"] = int64(r.u16())
	}
	if isFormat(format, f20, f50, f51, f52, f60) {
		attrs["counter1"] = int64(r.u32())
		attrs["counter2"] = int64(r.u32())
	}
	rpm := math.NaN()
	if isFormat(format, f60) {
		r.skip(28) // fuel level sensors: not decoded
		for i := 1; i <= 4; i++ {
			attrs[fmt.Sprintf("temp%d", i)] = int64(r.i8())
		}
		attrs["axle_weight"] = int64(r.i32())
		// 0xFFFF: no tachometer; kept as rpm_raw.
		if v := r.u16(); v == 0xFFFF {
			attrs["rpm_raw"] = int64(v)
		} else {
			rpm = float64(v)
		}
	}
	sg := d.newSignalLater()
	sg.Voltage, sg.RPM, sg.Sats = voltage, rpm, sats
	ts := eventTime
	if isFormat(format, f20, f50, f51, f52, f60) {
		nav := r.u8()
		sg.Valid = signal.FlagOf(nav&2 != 0)
		if isFormat(format, f60) {
			sg.Sats = float64(nav >> 2)
		}
		fix, err := ntcbTime(r, "fix time")
		if err != nil {
			return nil, 0, err
		}
		var lat, lon float64
		if isFormat(format, f60) {
			lat, lon = float64(r.i32())/600000, float64(r.i32())/600000
			sg.Alt = float64(r.i32()) * 0.1
		} else {
			lat, lon = float64(r.f32())/math.Pi*180, float64(r.f32())/math.Pi*180
		}
		speed := float64(r.f32())
		course := float64(r.u16())
		odo := float64(r.f32())
		dist := float64(r.f32())
		r.skip(4) // segment times
		if r.err != nil {
			return nil, 0, r.err
		}
		if !(nav&2 == 0 && lat == 0 && lon == 0) {
			if sg.Lat, err = coordinate(lat, signal.FieldLat, "latitude"); err != nil {
				return nil, 0, err
			}
			if sg.Lon, err = coordinate(lon, signal.FieldLon, "longitude"); err != nil {
				return nil, 0, err
			}
		}
		if err := setSpeedEtc(sg, speed, course, odo, dist); err != nil {
			return nil, 0, err
		}
		if !fix.IsZero() {
			ts = fix
		}
	}
	if isFormat(format, f51, f52) {
		r.skip(15) // vendor counters: not decoded
	}
	if isFormat(format, f40, f52) {
		for i := 1; i <= 4; i++ {
			attrs[fmt.Sprintf("temp%d", i)] = int64(r.i8())
		}
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	for k, v := range attrs {
		sg.SetAttr(k, v)
	}
	d.finish(sg, ts)
	return sg, index, nil
}

// setSpeedEtc sets speed (km/h), heading and odometer (km) and the trip
// distance attr, refusing values no device can mean.
func setSpeedEtc(sg *signal.Signal, speed, course, odo, dist float64) error {
	for _, c := range []struct {
		v     float64
		field signal.Field
		what  string
		dst   *float64
	}{
		{speed, signal.FieldSpeed, "speed", &sg.Speed},
		{course, signal.FieldHeading, "course", &sg.Heading},
		{odo, signal.FieldOdometer, "odometer", &sg.Odometer},
	} {
		if math.IsNaN(c.v) || math.IsInf(c.v, 0) || !inDomain(c.field, c.v) {
			return fmt.Errorf("%w: %s %v", plugins.ErrMalformed, c.what, c.v)
		}
		*c.dst = c.v
	}
	if math.IsNaN(dist) || math.IsInf(dist, 0) || dist < 0 {
		return fmt.Errorf("%w: trip distance %v", plugins.ErrMalformed, dist)
	}
	sg.SetAttr("trip_km", dist)
	return nil
}

// newSignalLater starts a record whose time is set by finish once the
// record is read.
func (d *decoding) newSignalLater() *signal.Signal {
	sg := signal.New(d.s.id, time.Time{})
	return &sg
}

// finish stamps a record started with newSignalLater: device time ts, or
// the server time of the message when the record carries none.
func (d *decoding) finish(sg *signal.Signal, ts time.Time) {
	if ts.IsZero() {
		ts = d.s.dec.times.Stamp(d.s.id, d.frame, d.recv.Truncate(time.Microsecond))
		sg.SetAttr("time_source", "server")
	}
	if d.copy == nil {
		d.copy = append([]byte(nil), d.frame...)
	}
	sg.TS = ts
	sg.DeviceID = d.s.id
	sg.Recv = d.recv
	sg.Protocol = Name
	sg.Frame = d.copy
}
