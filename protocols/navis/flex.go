package navis

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// flexFieldSizes are the sizes in bytes of the FLEX fields by number (0 =
// field 1 of the Navtelecom tables): 69 fields in FLEX 1.0, 122 in 2.0, 255
// in 3.0. A record holds the fields the negotiated bit field selects, in
// this order.
var flexFieldSizes = [255]uint8{
	4, 2, 4, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 2, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 4, 4, 2, 2,
	4, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 2, 1, 4, 2, 2, 2, 2, 2, 1, 1, 1, 2, 4, 2, 1, 8, 2, 1,
	16, 4, 2, 4, 37, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 6, 12, 24, 48, 1, 1, 2, 1, 4, 4, 1, 4, 2,
	6, 2, 6, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1, 2, 3,
	2, 1, 1, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 2, 4, 4, 4, 2, 4, 2, 2,
	4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 6, 3, 1, 2, 2, 1, 4, 5, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
	4, 4, 8, 8, 8,
}

// FLEX versions (protocol and structure) and the field count each allows.
var flexVersions = map[byte]int{0x0A: 69, 0x14: 122, 0x1E: 255}

// flexBest is the version offered when a device asks for one this decoder
// does not know.
const flexBest = 0x1E

// flexSet is a negotiated FLEX field set.
type flexSet struct {
	fields []uint8 // numbers of the selected fields, ascending
	size   int     // bytes of one record
}

// negotiate takes *>FLEX: 0xB0, protocol version, structure version, the
// number of bits and the bit field (most significant bit first: field 1).
// It answers *<FLEX with the versions it accepts; from then on the
// connection's FLEX messages carry exactly the selected fields.
func (d *decoding) negotiate(h ntcbHeader, b []byte) (plugins.Result, error) {
	if len(b) < 3 {
		return plugins.Result{}, fmt.Errorf("%w: *>FLEX of %d bytes", plugins.ErrMalformed, len(b))
	}
	if b[0] != 0xB0 {
		return plugins.Result{}, fmt.Errorf("%w: *>FLEX protocol 0x%02x, want 0xb0 (FLEX)", plugins.ErrUnsupported, b[0])
	}
	proto, strct := b[1], b[2]
	_, okP := flexVersions[proto]
	max, okS := flexVersions[strct]
	if !okP || !okS {
		// Offer the newest version this decoder knows: the device
		// negotiates again or gives up; no field set yet.
		d.s.flex = nil
		return plugins.Result{Ack: ntcbReply(h, []byte{'*', '<', 'F', 'L', 'E', 'X', 0xB0, flexBest, flexBest})}, nil
	}
	if len(b) < 4 {
		return plugins.Result{}, fmt.Errorf("%w: *>FLEX without the bit count", plugins.ErrMalformed)
	}
	n := int(b[3])
	if n > max {
		return plugins.Result{}, fmt.Errorf("%w: *>FLEX selects from %d fields, structure version 0x%02x has %d", plugins.ErrMalformed, n, strct, max)
	}
	mask := b[4:]
	if want := (n + 7) / 8; len(mask) != want {
		return plugins.Result{}, fmt.Errorf("%w: *>FLEX bit field of %d bytes, %d bits need %d", plugins.ErrMalformed, len(mask), n, want)
	}
	set := &flexSet{}
	for i := 0; i < n; i++ {
		if mask[i/8]&(0x80>>(i%8)) != 0 {
			set.fields = append(set.fields, uint8(i))
			set.size += int(flexFieldSizes[i])
		}
	}
	if set.size == 0 {
		return plugins.Result{}, fmt.Errorf("%w: *>FLEX selects no field", plugins.ErrMalformed)
	}
	d.s.flex = set
	return plugins.Result{Ack: ntcbReply(h, []byte{'*', '<', 'F', 'L', 'E', 'X', 0xB0, proto, strct})}, nil
}

// flexLength is the length of the FLEX message at the start of buf, 0 when
// more bytes are needed to know it.
func (s *Session) flexLength(buf []byte) (int, error) {
	if len(buf) < 2 {
		return 0, nil
	}
	if s.flex == nil {
		return 0, fmt.Errorf("%w: FLEX message ~%c before a *>FLEX negotiation on this connection", plugins.ErrUnsupported, buf[1])
	}
	size := s.flex.size
	switch buf[1] {
	case 'A': // ~A count records crc
		if len(buf) < 3 {
			return 0, nil
		}
		if buf[2] == 0 {
			return 0, fmt.Errorf("%w: ~A with 0 records", plugins.ErrMalformed)
		}
		return 3 + int(buf[2])*size + 1, nil
	case 'T': // ~T event-index record crc
		return 2 + 4 + size + 1, nil
	case 'C': // ~C record crc
		return 2 + size + 1, nil
	case 'X': // ~X event-index length package crc
		if len(buf) < 8 {
			return 0, nil
		}
		return 8 + int(binary.LittleEndian.Uint16(buf[6:])) + 1, nil
	case 'E': // ~E count (length package)… crc
		if len(buf) < 3 {
			return 0, nil
		}
		count := int(buf[2])
		if count == 0 {
			return 0, fmt.Errorf("%w: ~E with 0 packages", plugins.ErrMalformed)
		}
		p := 3
		for i := 0; i < count; i++ {
			if len(buf) < p+2 {
				if p+2 > s.cfg.MaxFrame {
					return 0, fmt.Errorf("%w: ~E beyond %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
				}
				return 0, nil
			}
			p += 2 + int(binary.LittleEndian.Uint16(buf[p:]))
		}
		return p + 1, nil
	}
	return 0, fmt.Errorf("%w: FLEX message type ~%s", plugins.ErrUnsupported, printable(buf[1:2]))
}

func (s *Session) frameFlex(buf []byte) (int, error) {
	n, err := s.flexLength(buf)
	if err != nil || n == 0 {
		if err != nil {
			err = fmt.Errorf("framing navis FLEX message: %w", err)
		}
		return 0, err
	}
	if n > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing navis FLEX message: %w: %d bytes, cap %d", plugins.ErrTooLarge, n, s.cfg.MaxFrame)
	}
	if len(buf) < n {
		return 0, nil
	}
	return n, nil
}

// flexMessage decodes a FLEX message: ~A (records), ~T (one record with its
// event index), ~C (the current state), ~E and ~X (FLEX 2.0 extended
// packages), each ending with a CRC-8 of everything before it.
func (d *decoding) flexMessage() (plugins.Result, error) {
	f := d.frame
	if d.s.id == "" {
		return plugins.Result{}, fmt.Errorf("%w: FLEX message before the *>S handshake", plugins.ErrNoDevice)
	}
	n, err := d.s.flexLength(f)
	if err != nil {
		return plugins.Result{}, err
	}
	if n == 0 || n != len(f) {
		return plugins.Result{}, fmt.Errorf("%w: FLEX message ~%s of %d bytes, its header and the field set say %d", plugins.ErrMalformed, printable(f[1:min(2, len(f))]), len(f), n)
	}
	if got, want := CRC8(f[:len(f)-1]), f[len(f)-1]; got != want {
		return plugins.Result{}, fmt.Errorf("%w: FLEX CRC-8 0x%02x, message says 0x%02x", plugins.ErrChecksum, got, want)
	}
	typ := f[1]
	body := f[2 : len(f)-1]
	r := reader{b: body}
	ack := []byte{'~', typ}
	var sigs []signal.Signal
	switch typ {
	case 'A', 'E':
		count := int(r.u8())
		for i := 0; i < count; i++ {
			var sg *signal.Signal
			if typ == 'A' {
				sg, _, err = d.flexRecord(&r)
			} else {
				sg, _, err = d.flexPackage(&r)
			}
			if err != nil {
				return plugins.Result{}, fmt.Errorf("~%c record %d of %d: %w", typ, i+1, count, err)
			}
			sigs = append(sigs, *sg)
		}
		ack = append(ack, byte(count))
	case 'T', 'C', 'X':
		if typ != 'C' {
			r.skip(4) // event index
		}
		var sg *signal.Signal
		var index uint32
		if typ == 'X' {
			sg, index, err = d.flexPackage(&r)
		} else {
			sg, index, err = d.flexRecord(&r)
		}
		if err != nil {
			return plugins.Result{}, fmt.Errorf("~%c: %w", typ, err)
		}
		sigs = append(sigs, *sg)
		ack = binary.LittleEndian.AppendUint32(ack, index)
	}
	if r.err != nil {
		return plugins.Result{}, r.err
	}
	if r.left() != 0 {
		return plugins.Result{}, fmt.Errorf("%w: ~%c has %d bytes after its records", plugins.ErrMalformed, typ, r.left())
	}
	return plugins.Result{Signals: sigs, Ack: append(ack, CRC8(ack))}, nil
}

// flexRecord decodes one record of the negotiated fields. It returns the
// record and its index (field 1).
func (d *decoding) flexRecord(r *reader) (*signal.Signal, uint32, error) {
	sg := d.newSignalLater()
	var index uint32
	var eventTime, fix time.Time
	var status, input, output int64
	var lat, lon = math.NaN(), math.NaN()
	valid := -1
	for _, i := range d.s.flex.fields {
		switch i {
		case 0:
			index = r.u32()
			sg.SetAttr("index", int64(index))
		case 1:
			sg.SetAttr("event", int64(r.u16()))
		case 2:
			if t := r.u32(); t != 0 {
				eventTime = time.Unix(int64(t), 0).UTC()
			}
		case 3:
			armed := r.u8()
			sg.SetAttr("armed", armed&1 != 0)
			if armed&2 != 0 {
				sg.SetAttr("alarm", "general")
			}
		case 4:
			status = int64(r.u8())
			sg.SetAttr("status", status)
		case 5:
			sg.SetAttr("status", status&0xFF|int64(r.u8())<<8)
		case 6:
			sg.SetAttr("rssi", int64(r.u8()))
		case 7:
			nav := r.u8()
			valid = int(nav>>1) & 1
			sg.Sats = float64(nav >> 2)
		case 8:
			if t := r.u32(); t != 0 {
				fix = time.Unix(int64(t), 0).UTC()
			}
		case 9:
			lat = float64(r.i32()) / 600000
		case 10:
			lon = float64(r.i32()) / 600000
		case 11:
			sg.Alt = float64(r.i32()) * 0.1
		case 12:
			v := float64(r.f32())
			if r.err == nil && !inDomain(signal.FieldSpeed, v) {
				return nil, 0, fmt.Errorf("%w: speed %v km/h", plugins.ErrMalformed, v)
			}
			sg.Speed = v
		case 13:
			v := float64(r.u16())
			if !inDomain(signal.FieldHeading, v) {
				return nil, 0, fmt.Errorf("%w: course %v", plugins.ErrMalformed, v)
			}
			sg.Heading = v
		case 14:
			v := float64(r.f32())
			if r.err == nil && !inDomain(signal.FieldOdometer, v) {
				return nil, 0, fmt.Errorf("%w: odometer %v km", plugins.ErrMalformed, v)
			}
			sg.Odometer = v
		case 15:
			v := float64(r.f32())
			if r.err == nil && (math.IsNaN(v) || math.IsInf(v, 0) || v < 0) {
				return nil, 0, fmt.Errorf("%w: trip distance %v km", plugins.ErrMalformed, v)
			}
			sg.SetAttr("trip_km", v)
		case 18:
			sg.Voltage = float64(r.u16()) * 0.001
		case 19:
			sg.SetAttr("battery_v", float64(r.u16())*0.001)
		case 20, 21, 22, 23, 24, 25, 26, 27:
			sg.SetAttr(fmt.Sprintf("adc%d", i-19), int64(r.u16()))
		case 28:
			input = int64(r.u8())
			sg.SetAttr("input", input)
		case 29:
			sg.SetAttr("input", input&0xFF|int64(r.u8())<<8)
		case 30:
			output = int64(r.u8())
			sg.SetAttr("output", output)
		case 31:
			sg.SetAttr("output", output&0xFF|int64(r.u8())<<8)
		case 36:
			sg.SetAttr("engine_hours", float64(r.u32())/3600)
		case 44, 45, 46, 47, 48, 49, 50, 51:
			sg.SetAttr(fmt.Sprintf("temp%d", i-43), int64(r.i8()))
		case 68:
			sg.SetAttr("can_speed", int64(r.u8()))
		case 69:
			var n int64
			for _, c := range r.take(8) {
				n += int64(c)
			}
			sg.SetAttr("sats_visible", n)
		case 70:
			sg.HDOP = float64(r.u8()) * 0.1
			sg.SetAttr("pdop", float64(r.u8())*0.1)
		default:
			r.skip(int(flexFieldSizes[i]))
		}
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	if valid >= 0 {
		sg.Valid = signal.FlagOf(valid == 1)
	}
	// A receiver without a fix sends 0,0: absent, never a position.
	if !(valid != 1 && lat == 0 && lon == 0) {
		var err error
		if !math.IsNaN(lat) {
			if sg.Lat, err = coordinate(lat, signal.FieldLat, "latitude"); err != nil {
				return nil, 0, err
			}
		}
		if !math.IsNaN(lon) {
			if sg.Lon, err = coordinate(lon, signal.FieldLon, "longitude"); err != nil {
				return nil, 0, err
			}
		}
	}
	if !math.IsNaN(sg.Alt) && !inDomain(signal.FieldAlt, sg.Alt) {
		return nil, 0, fmt.Errorf("%w: altitude %v m", plugins.ErrMalformed, sg.Alt)
	}
	ts := fix
	if ts.IsZero() {
		ts = eventTime
	}
	d.finish(sg, ts)
	return sg, index, nil
}

// flexPackage decodes one FLEX 2.0 extended package (~E, ~X): its length
// (the bytes after it), the structure version, the length of the static
// part and the static part (index, event, event time, navigation state,
// fix time, latitude, longitude, altitude, speed, course, odometer); the
// rest of the package is not decoded.
func (d *decoding) flexPackage(r *reader) (*signal.Signal, uint32, error) {
	n := int(r.u16())
	p := reader{b: r.take(n)}
	if r.err != nil {
		return nil, 0, r.err
	}
	p.u8() // structure version
	static := int(p.u8())
	if p.err == nil && static < 37 {
		return nil, 0, fmt.Errorf("%w: extended package with a static part of %d bytes, want at least 37", plugins.ErrMalformed, static)
	}
	sg := d.newSignalLater()
	index := p.u32()
	sg.SetAttr("index", int64(index))
	sg.SetAttr("event", int64(p.u16()))
	eventTime := p.u32()
	nav := p.u8()
	sg.Valid = signal.FlagOf(nav&2 != 0)
	sg.Sats = float64(nav >> 2)
	fix := p.u32()
	lat, lon := float64(p.i32())/600000, float64(p.i32())/600000
	sg.Alt = float64(p.i32()) * 0.1
	speed := float64(p.f32())
	course := float64(p.u16())
	odo := float64(p.f32())
	p.skip(static - 37)
	if p.err != nil {
		return nil, 0, p.err
	}
	if !(nav&2 == 0 && lat == 0 && lon == 0) {
		var err error
		if sg.Lat, err = coordinate(lat, signal.FieldLat, "latitude"); err != nil {
			return nil, 0, err
		}
		if sg.Lon, err = coordinate(lon, signal.FieldLon, "longitude"); err != nil {
			return nil, 0, err
		}
	}
	if !inDomain(signal.FieldAlt, sg.Alt) {
		return nil, 0, fmt.Errorf("%w: altitude %v m", plugins.ErrMalformed, sg.Alt)
	}
	for _, c := range []struct {
		v     float64
		field signal.Field
		what  string
		dst   *float64
	}{{speed, signal.FieldSpeed, "speed", &sg.Speed}, {course, signal.FieldHeading, "course", &sg.Heading}, {odo, signal.FieldOdometer, "odometer", &sg.Odometer}} {
		if !inDomain(c.field, c.v) {
			return nil, 0, fmt.Errorf("%w: %s %v", plugins.ErrMalformed, c.what, c.v)
		}
		*c.dst = c.v
	}
	var ts time.Time
	switch {
	case fix != 0:
		ts = time.Unix(int64(fix), 0).UTC()
	case eventTime != 0:
		ts = time.Unix(int64(eventTime), 0).UTC()
	}
	d.finish(sg, ts)
	return sg, index, nil
}
