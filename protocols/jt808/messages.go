package jt808

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

// decoding is one message being decoded.
type decoding struct {
	s     *Session
	h     header
	id    string
	frame []byte
	recv  time.Time
	copy  []byte // the frame's copy shared by its signals
}

// newSignal starts a signal of the message: ts, or, for a message without
// a device time, the receive time of the message's first copy (its bytes
// include its serial number, so a resend keeps its time and key).
func (d *decoding) newSignal(ts time.Time) *signal.Signal {
	if ts.IsZero() {
		ts = d.s.dec.times.Stamp(d.id, d.frame, d.recv.Truncate(time.Microsecond))
	}
	if d.copy == nil {
		d.copy = append([]byte(nil), d.frame...)
	}
	sg := signal.New(d.id, ts)
	sg.Recv = d.recv
	sg.Protocol = Name
	sg.Frame = d.copy
	return &sg
}

func (d *decoding) run() ([]signal.Signal, error) {
	h := d.h
	if h.subpacket {
		// Long messages (media, batches) split into packages: each package
		// is acked and kept as a raw record; reassembly is not done.
		sg := d.raw()
		sg.SetAttr("package_total", int64(h.total))
		sg.SetAttr("package_index", int64(h.index))
		return []signal.Signal{*sg}, nil
	}
	switch h.id {
	case msgRegister, msgAuth, msgHeartbeat, msgLogout, msgTimezoneSync, msgTerminalResponse:
		return nil, nil
	case msgLocation:
		sg, err := d.location(h.body)
		if err != nil {
			return nil, err
		}
		return []signal.Signal{*sg}, nil
	case msgLocationQuery:
		if len(h.body) < 2 {
			return nil, fmt.Errorf("%w: %d body bytes", plugins.ErrMalformed, len(h.body))
		}
		sg, err := d.location(h.body[2:])
		if err != nil {
			return nil, err
		}
		sg.SetAttr("reply_serial", int64(binary.BigEndian.Uint16(h.body)))
		return []signal.Signal{*sg}, nil
	case msgLocationBatch, msgLocationBatch2:
		return d.batch()
	case msgLocation2, msgLocationBlind:
		sg, err := d.location2()
		if err != nil {
			return nil, err
		}
		return []signal.Signal{*sg}, nil
	case msgTransparent:
		sg, err := d.transparent()
		if err != nil {
			return nil, err
		}
		return []signal.Signal{*sg}, nil
	case msgTextResponse:
		if len(h.body) >= 2 && len(h.body)%2 == 0 {
			sg := d.newSignal(time.Time{})
			sg.SetAttr("reply_serial", int64(binary.BigEndian.Uint16(h.body)))
			sg.SetAttr("result", strings.TrimSpace(utf16be(h.body[2:])))
			return []signal.Signal{*sg}, nil
		}
	}
	return []signal.Signal{*d.raw()}, nil
}

// raw keeps a message this decoder does not interpret (a vendor message, a
// command reply) as a record at the receive time with its id and body, so
// nothing well-formed is dropped.
func (d *decoding) raw() *signal.Signal {
	sg := d.newSignal(time.Time{})
	sg.SetAttr("time_source", "server")
	sg.SetAttr("msg_id", fmt.Sprintf("%04x", d.h.id))
	sg.SetAttr("body", hex.EncodeToString(d.h.body))
	return sg
}

func utf16be(b []byte) string {
	r := make([]rune, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := rune(binary.BigEndian.Uint16(b[i:]))
		if c == 0 {
			break
		}
		if !utf8.ValidRune(c) {
			c = utf8.RuneError
		}
		r = append(r, c)
	}
	return string(r)
}

// bcdTime reads a BCD YYMMDDhhmmss in loc. All zeros (no time since boot)
// is the zero time.
func bcdTime(b []byte, loc *time.Location) (time.Time, error) {
	var v [6]int
	zero := true
	for i := 0; i < 6; i++ {
		hi, lo := int(b[i]>>4), int(b[i]&0x0F)
		if hi > 9 || lo > 9 {
			return time.Time{}, fmt.Errorf("%w: time %x is not BCD", plugins.ErrMalformed, b[:6])
		}
		v[i] = hi*10 + lo
		if v[i] != 0 {
			zero = false
		}
	}
	if zero {
		return time.Time{}, nil
	}
	if v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 59 {
		return time.Time{}, fmt.Errorf("%w: time %x is no date", plugins.ErrMalformed, b[:6])
	}
	return time.Date(2000+v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], 0, loc).UTC(), nil
}

const locationBase = 28 // alarm, status, lat, lon, alt, speed, course, time

// location decodes a location information body (0x0200, and each item of
// a batch): the basic block, then the additional-information TLVs.
func (d *decoding) location(b []byte) (*signal.Signal, error) {
	if len(b) < locationBase {
		return nil, fmt.Errorf("%w: location of %d bytes, want at least %d", plugins.ErrMalformed, len(b), locationBase)
	}
	alarm := binary.BigEndian.Uint32(b)
	status := binary.BigEndian.Uint32(b[4:])
	ts, err := bcdTime(b[22:28], d.s.tz)
	if err != nil {
		return nil, err
	}
	sg := d.newSignal(ts)
	if ts.IsZero() {
		sg.SetAttr("time_source", "server")
	}
	lat := float64(binary.BigEndian.Uint32(b[8:])) / 1e6
	lon := float64(binary.BigEndian.Uint32(b[12:])) / 1e6
	if status&0x04 != 0 {
		lat = -lat
	}
	if status&0x08 != 0 {
		lon = -lon
	}
	fix := status&0x02 != 0
	sg.Valid = signal.FlagOf(fix)
	if fix || lat != 0 || lon != 0 {
		sg.Lat, sg.Lon = lat, lon
		sg.Alt = float64(int16(binary.BigEndian.Uint16(b[16:])))
		sg.Speed = float64(binary.BigEndian.Uint16(b[18:])) / 10
		sg.Heading = float64(binary.BigEndian.Uint16(b[20:]))
	}
	sg.SetAttr("alarm_bits", int64(alarm))
	sg.SetAttr("status_bits", int64(status))
	sg.SetAttr("ignition", status&0x01 != 0)
	if err := d.extras(sg, b[locationBase:]); err != nil {
		return nil, err
	}
	return sg, nil
}

// extras decodes the additional-information items (id, length, value).
// Standard ids and the common OBD extras 0x80–0x8E are mapped; any other
// item is kept as attr x<id> (hex). An item running past the body is kept
// as x<id> with the bytes that are there and flagged extras_truncated:
// firmwares pad or cut their vendor blocks, and the basic block is sound.
func (d *decoding) extras(sg *signal.Signal, b []byte) error {
	for len(b) > 0 {
		if len(b) < 2 {
			sg.SetAttr("extras_truncated", true)
			return nil
		}
		id, n := b[0], int(b[1])
		if 2+n > len(b) {
			sg.SetAttr("extras_truncated", true)
			sg.SetAttr(fmt.Sprintf("x%02x", id), hex.EncodeToString(b[2:]))
			return nil
		}
		v := b[2 : 2+n]
		b = b[2+n:]
		if !d.extra(sg, id, v) {
			sg.SetAttr(fmt.Sprintf("x%02x", id), hex.EncodeToString(v))
		}
	}
	return nil
}

func u(v []byte) uint64 {
	var x uint64
	for _, c := range v {
		x = x<<8 | uint64(c)
	}
	return x
}

// extra maps one known item; false leaves it to the caller as raw hex.
func (d *decoding) extra(sg *signal.Signal, id byte, v []byte) bool {
	apply := func(val obd2.Value, err error) bool {
		if err != nil {
			return false
		}
		val.Apply(sg)
		return true
	}
	n := len(v)
	switch {
	case id == 0x01 && n == 4: // mileage, 1/10 km
		sg.Odometer = float64(u(v)) / 10
	case id == 0x02 && n == 2: // fuel, 1/10 L
		sg.SetAttr("fuel_l", float64(u(v))/10)
	case id == 0x03 && n == 2: // speed from the tachograph, 1/10 km/h
		sg.SetAttr("tacho_speed", float64(u(v))/10)
	case id == 0x04 && n == 2:
		sg.SetAttr("alarm_event_id", int64(u(v)))
	case id == 0x25 && n == 4:
		sg.SetAttr("vehicle_signals", int64(u(v)))
	case id == 0x2A && n == 2:
		sg.SetAttr("io_status", int64(u(v)))
	case id == 0x2B && n == 4:
		sg.SetAttr("analog_ad0", int64(u(v)&0xFFFF))
		sg.SetAttr("analog_ad1", int64(u(v)>>16))
	case id == 0x30 && n == 1:
		sg.SetAttr("rssi", int64(v[0]))
	case id == 0x31 && n == 1:
		sg.Sats = float64(v[0])
	// OBD extras as OBD dongles on JT/T 808 send them (already scaled).
	case id == 0x80 && n == 1:
		return apply(obd2.Scaled(0x0D, float64(v[0])))
	case id == 0x81 && n == 2:
		return apply(obd2.Scaled(0x0C, float64(u(v))))
	case id == 0x82 && n == 2:
		return apply(obd2.Scaled(0x42, float64(u(v))/10))
	case id == 0x83 && n == 1 && v[0] <= 100:
		return apply(obd2.Scaled(0x04, float64(v[0])))
	case id == 0x84 && n == 1:
		return apply(obd2.Decode(0x05, v))
	case id == 0x85 && n == 2:
		sg.SetAttr("fuel_consumption", int64(u(v)))
	case id == 0x86 && n == 1:
		return apply(obd2.Decode(0x0F, v))
	case id == 0x87 && n == 2:
		sg.SetAttr("intake_flow", int64(u(v)))
	case id == 0x88 && n == 1:
		return apply(obd2.Decode(0x0B, v))
	case id == 0x89 && n == 1 && v[0] <= 100:
		return apply(obd2.Scaled(0x11, float64(v[0])))
	case id == 0x8B && n == 17 && utf8.Valid(v):
		sg.SetAttr("vin", string(v))
	case id == 0x8C && n == 4:
		return apply(obd2.Scaled(0xA6, float64(u(v))/10))
	case id == 0x8D && n == 2:
		sg.SetAttr("trip_km", int64(u(v)))
	case id == 0x8E && n == 1 && v[0] <= 100:
		return apply(obd2.Scaled(0x2F, float64(v[0])))
	default:
		return false
	}
	return true
}

// batch decodes 0x0704 (count, type, then items with a 2-byte length) and
// the vendor 0x0210 (items with a 1-byte length; a 7-byte body is a
// battery level and a time instead).
func (d *decoding) batch() ([]signal.Signal, error) {
	b := d.h.body
	if d.h.id == msgLocationBatch2 && len(b) == 7 {
		ts, err := bcdTime(b[1:], d.s.tz)
		if err != nil {
			return nil, err
		}
		sg := d.newSignal(ts)
		if ts.IsZero() {
			sg.SetAttr("time_source", "server")
		}
		sg.SetAttr("battery_level", int64(b[0]))
		return []signal.Signal{*sg}, nil
	}
	archive := false
	lenSize := 1
	if d.h.id == msgLocationBatch {
		if len(b) < 3 {
			return nil, fmt.Errorf("%w: batch of %d bytes", plugins.ErrMalformed, len(b))
		}
		archive = b[2] == 1
		b = b[3:]
		lenSize = 2
	}
	var out []signal.Signal
	for len(b) > 0 {
		if len(b) < lenSize {
			return nil, fmt.Errorf("%w: %d bytes after item %d", plugins.ErrMalformed, len(b), len(out))
		}
		n := int(b[0])
		if lenSize == 2 {
			n = int(binary.BigEndian.Uint16(b))
		}
		b = b[lenSize:]
		if n > len(b) {
			return nil, fmt.Errorf("%w: item %d of %d bytes, %d left", plugins.ErrMalformed, len(out), n, len(b))
		}
		sg, err := d.location(b[:n])
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", len(out), err)
		}
		if archive {
			sg.SetAttr("archive", true)
		}
		out = append(out, *sg)
		b = b[n:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty batch", plugins.ErrMalformed)
	}
	return out, nil
}

func bcdInt(b []byte, digits int) (int, bool) {
	v := 0
	for i := 0; i < digits; i++ {
		c := b[i/2]
		if i%2 == 0 {
			c >>= 4
		}
		c &= 0x0F
		if c > 9 {
			return 0, false
		}
		v = v*10 + int(c)
	}
	return v, true
}

// location2 decodes the vendor location reports 0x5501 (live) and 0x5502
// (stored, sent later) of JT701-style locks: a JT600 binary location (BCD
// DDMMYY hhmmss UTC, BCD ddmm.mmmm coordinates, BCD speed, course / 2),
// then rssi, satellites, odometer, battery, cell, product, status, alarm,
// and TLVs.
func (d *decoding) location2() (*signal.Signal, error) {
	b := d.h.body
	if len(b) < 35 {
		return nil, fmt.Errorf("%w: location of %d bytes, want at least 35", plugins.ErrMalformed, len(b))
	}
	var t [6]int
	for i := range t {
		v, ok := bcdInt(b[i:], 2)
		if !ok {
			return nil, fmt.Errorf("%w: time %x is not BCD", plugins.ErrMalformed, b[:6])
		}
		t[i] = v
	}
	if t[1] < 1 || t[1] > 12 || t[0] < 1 || t[0] > 31 || t[3] > 23 || t[4] > 59 || t[5] > 59 {
		return nil, fmt.Errorf("%w: time %x is no date", plugins.ErrMalformed, b[:6])
	}
	ts := time.Date(2000+t[2], time.Month(t[1]), t[0], t[3], t[4], t[5], 0, time.UTC)
	latRaw, ok1 := bcdInt(b[6:], 8)
	lonRaw, ok2 := bcdInt(b[10:], 9)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%w: coordinates %x are not BCD", plugins.ErrMalformed, b[6:15])
	}
	flags := b[14]
	conv := func(raw int) float64 { return float64(raw/1000000) + float64(raw%1000000)/10000/60 }
	lat, lon := conv(latRaw), conv(lonRaw)
	if flags&0x02 == 0 {
		lat = -lat
	}
	if flags&0x04 == 0 {
		lon = -lon
	}
	speed, ok := bcdInt(b[15:], 2)
	if !ok {
		return nil, fmt.Errorf("%w: speed %x is not BCD", plugins.ErrMalformed, b[15])
	}
	sg := d.newSignal(ts)
	sg.Lat, sg.Lon = lat, lon
	sg.Valid = signal.FlagOf(flags&0x01 != 0)
	sg.Speed = float64(speed)
	sg.Heading = float64(b[16]) * 2
	sg.SetAttr("rssi", int64(b[17]))
	sg.Sats = float64(b[18])
	sg.Odometer = float64(binary.BigEndian.Uint32(b[19:]))
	if bat := b[23]; bat <= 100 {
		sg.SetAttr("battery_level", int64(bat))
	} else if bat == 0xAA || bat == 0xAB {
		sg.SetAttr("charge", true)
	}
	sg.SetAttr("cell_id", int64(binary.BigEndian.Uint32(b[24:])))
	sg.SetAttr("lac", int64(binary.BigEndian.Uint16(b[28:])))
	sg.SetAttr("product", int64(b[30]))
	sg.SetAttr("status_bits", int64(binary.BigEndian.Uint16(b[31:])))
	sg.SetAttr("alarm_bits", int64(binary.BigEndian.Uint16(b[33:])))
	if d.h.id == msgLocationBlind {
		sg.SetAttr("archive", true)
	}
	rest := b[35:]
	for len(rest) >= 2 {
		id, n := rest[0], int(rest[1])
		if 2+n > len(rest) {
			sg.SetAttr("extras_truncated", true)
			break
		}
		v := rest[2 : 2+n]
		switch {
		case id == 0x02 && n == 2:
			sg.Alt = float64(int16(binary.BigEndian.Uint16(v)))
		case id == 0x0C && n == 6:
			sg.SetAttr("tilt", fmt.Sprintf("[%d,%d,%d]", int16(binary.BigEndian.Uint16(v)), int16(binary.BigEndian.Uint16(v[2:])), int16(binary.BigEndian.Uint16(v[4:]))))
		default:
			sg.SetAttr(fmt.Sprintf("x%02x", id), hex.EncodeToString(v))
		}
		rest = rest[2+n:]
	}
	return sg, nil
}

// transparent decodes 0x0900 (transparent data). Type 0xF0 (OBD boxes:
// time, archive flag, vehicle type, a sub-message, then status and
// coordinates) and 0xFF (time and a fix) carry positions; any other type is
// kept as a raw record.
func (d *decoding) transparent() (*signal.Signal, error) {
	b := d.h.body
	if len(b) < 1 {
		return nil, fmt.Errorf("%w: empty transparent data", plugins.ErrMalformed)
	}
	switch b[0] {
	case 0xF0:
		return d.transparentF0(b[1:])
	case 0xFF:
		if len(b) < 1+6+14 {
			return nil, fmt.Errorf("%w: 0xff data of %d bytes", plugins.ErrMalformed, len(b))
		}
		ts, err := bcdTime(b[1:], d.s.tz)
		if err != nil {
			return nil, err
		}
		if ts.IsZero() {
			return d.raw(), nil
		}
		sg := d.newSignal(ts)
		sg.Valid = signal.True
		sg.Lat = float64(int32(binary.BigEndian.Uint32(b[7:]))) / 1e6
		sg.Lon = float64(int32(binary.BigEndian.Uint32(b[11:]))) / 1e6
		sg.Alt = float64(int16(binary.BigEndian.Uint16(b[15:])))
		sg.Speed = float64(binary.BigEndian.Uint16(b[17:])) / 10
		sg.Heading = float64(binary.BigEndian.Uint16(b[19:]))
		return sg, nil
	}
	sg := d.raw()
	sg.SetAttr("transparent_type", int64(b[0]))
	return sg, nil
}

func (d *decoding) transparentF0(b []byte) (*signal.Signal, error) {
	if len(b) < 9 {
		return nil, fmt.Errorf("%w: 0xf0 data of %d bytes", plugins.ErrMalformed, len(b))
	}
	ts, err := bcdTime(b, d.s.tz)
	if err != nil {
		return nil, err
	}
	if ts.IsZero() {
		return d.raw(), nil
	}
	sg := d.newSignal(ts)
	if b[6] > 0 {
		sg.SetAttr("archive", true)
	}
	sg.SetAttr("vehicle_type", int64(b[7]))
	sub := b[8]
	sg.SetAttr("obd_message", int64(sub))
	p := b[9:]
	short := fmt.Errorf("%w: 0xf0/%02x data ends early", plugins.ErrMalformed, sub)
	switch sub {
	case 0x01: // data stream: count, items (id u16, length, value)
		if len(p) < 1 {
			return nil, short
		}
		count := int(p[0])
		p = p[1:]
		for i := 0; i < count; i++ {
			if len(p) < 3 || 3+int(p[2]) > len(p) {
				return nil, short
			}
			id, v := binary.BigEndian.Uint16(p), p[3:3+int(p[2])]
			p = p[3+len(v):]
			d.obdItem(sg, id, v)
		}
	case 0x02: // fault codes: count, systems (id u32, code count, codes)
		if len(p) < 2 {
			return nil, short
		}
		count := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		var codes []string
		for i := 0; i < count; i++ {
			if len(p) < 6 {
				return nil, short
			}
			n := int(binary.BigEndian.Uint16(p[4:]))
			p = p[6:]
			for j := 0; j < n; j++ {
				if len(p) < 10 || 10+int(binary.BigEndian.Uint16(p[8:])) > len(p) {
					return nil, short
				}
				l := int(binary.BigEndian.Uint16(p[8:]))
				codes = append(codes, trimText(p[10:10+l]))
				p = p[10+l:]
			}
		}
		obd2.AddDTCs(sg, codes...)
	case 0x03: // alarms: count, items (id, length, value)
		if len(p) < 1 {
			return nil, short
		}
		count := int(p[0])
		p = p[1:]
		var ids []byte
		for i := 0; i < count; i++ {
			if len(p) < 2 || 2+int(p[1]) > len(p) {
				return nil, short
			}
			ids = append(ids, p[0])
			p = p[2+int(p[1]):]
		}
		sg.SetAttr("obd_alarms", hex.EncodeToString(ids))
	default:
		sg.SetAttr("body", hex.EncodeToString(b))
		return sg, nil
	}
	// Status and coordinates follow sub-messages 01, 02, 03.
	if len(p) < 12 {
		return nil, fmt.Errorf("%w: 0xf0/%02x without coordinates", plugins.ErrMalformed, sub)
	}
	status := binary.BigEndian.Uint32(p)
	lat := float64(binary.BigEndian.Uint32(p[4:])) / 1e6
	lon := float64(binary.BigEndian.Uint32(p[8:])) / 1e6
	if status&0x04 != 0 {
		lat = -lat
	}
	if status&0x08 != 0 {
		lon = -lon
	}
	fix := status&0x02 != 0
	sg.Valid = signal.FlagOf(fix)
	if fix || lat != 0 || lon != 0 {
		sg.Lat, sg.Lon = lat, lon
	}
	sg.SetAttr("status_bits", int64(status))
	sg.SetAttr("ignition", status&0x01 != 0)
	return sg, nil
}

func trimText(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == 0 || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	if !utf8.Valid(b) {
		return hex.EncodeToString(b)
	}
	return string(b)
}

// obdItem maps one 0xF0/01 data-stream item (see README).
func (d *decoding) obdItem(sg *signal.Signal, id uint16, v []byte) {
	apply := func(val obd2.Value, err error) {
		if err == nil {
			val.Apply(sg)
		}
	}
	n := len(v)
	x := float64(u(v))
	switch {
	case (id == 0x0102 || id == 0x0528 || id == 0x0546) && n == 4: // 1/10 km
		sg.Odometer = x / 10
	case id == 0x052D && n == 1:
		apply(obd2.Decode(0x05, v))
	case id == 0x0530 && n == 2:
		apply(obd2.Scaled(0x42, x/1000))
	case id == 0x0535 && n == 2:
		apply(obd2.Scaled(0x0D, x/10))
	case id == 0x0536 && n == 2:
		apply(obd2.Scaled(0x0C, x))
	case id == 0x052B && n == 1 && x <= 100:
		apply(obd2.Scaled(0x2F, x))
	case (id == 0x0547 || id == 0x0548) && n == 1 && x <= 100:
		apply(obd2.Scaled(0x11, x))
	case (id == 0x0105 || id == 0x052C) && n == 4:
		sg.SetAttr("fuel_used", x/100)
	case id == 0xFEEC && utf8.Valid(v):
		sg.SetAttr("vin", trimText(v))
	case n == 1 || n == 2 || n == 4:
		sg.SetAttr(fmt.Sprintf("io_%04x", id), int64(x))
	default:
		sg.SetAttr(fmt.Sprintf("io_%04x", id), hex.EncodeToString(v))
	}
}
