package suntech

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// bleMask is the fixed field set of BLE reports: model, firmware, date,
// time, latitude, longitude.
const bleMask = 1<<1 | 1<<2 | 1<<4 | 1<<5 | 1<<11 | 1<<12

func bit(mask int64, n uint) bool { return mask>>n&1 == 1 }

// universal decodes the universal text form: type;id;mask;… where each set
// bit of the hexadecimal mask puts one field in the report.
func (s *Session) universal(typ string, v []string, frame []byte, recv time.Time) (*signal.Signal, error) {
	f := &fields{v: v, i: 1}
	id, err := f.next("device id")
	if err != nil {
		return nil, err
	}
	if err := s.setDevice(id); err != nil {
		return nil, err
	}
	switch typ {
	case "RES":
		return s.result(id, v[2:], typ, frame, recv)
	case "STT", "ALT", "BLE", "UEX":
	case "ALV":
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: universal report type %q", plugins.ErrUnsupported, clip(typ))
	}
	mask := int64(bleMask)
	if typ != "BLE" {
		if mask, err = f.hex("field mask"); err != nil {
			return nil, err
		}
	}
	attrs := map[string]any{"type": typ}
	if bit(mask, 1) {
		if err := f.skip("model"); err != nil {
			return nil, err
		}
	}
	if bit(mask, 2) {
		if attrs["version_fw"], err = f.next("firmware version"); err != nil {
			return nil, err
		}
	}
	if bit(mask, 3) {
		if err := f.skip("archive"); err != nil { // real-time/stored flag: see README "Resends"
			return nil, err
		}
	}
	var sig *signal.Signal
	if bit(mask, 4) && bit(mask, 5) {
		ts, err := f.time()
		if err != nil {
			return nil, err
		}
		sig = s.newSignal(ts, frame)
	} else {
		sig = s.serverSignal(frame, recv)
	}
	for k, a := range attrs {
		sig.SetAttr(k, a)
	}
	for _, c := range []struct {
		bit  uint
		name string
		base int
	}{{6, "cid", 16}, {7, "mcc", 10}, {8, "mnc", 10}, {9, "lac", 16}, {10, "rssi", 10}} {
		if !bit(mask, c.bit) {
			continue
		}
		x, err := f.next(c.name)
		if err != nil {
			return nil, err
		}
		n, err := parseInt(c.name, x, c.base)
		if err != nil {
			return nil, err
		}
		sig.SetAttr(c.name, n)
	}
	if bit(mask, 11) {
		if sig.Lat, err = f.float("latitude"); err != nil {
			return nil, err
		}
	}
	if bit(mask, 12) {
		if sig.Lon, err = f.float("longitude"); err != nil {
			return nil, err
		}
	}
	if sig.Lat > 90 || sig.Lat < -90 || sig.Lon > 180 || sig.Lon < -180 {
		return nil, fmt.Errorf("%w: position %v,%v out of range", plugins.ErrMalformed, sig.Lat, sig.Lon)
	}
	if typ == "BLE" {
		sig.Valid = signal.True
		count, err := f.int("tag count")
		if err != nil {
			return nil, err
		}
		if count < 0 || int(count)*7 > f.left() {
			return nil, fmt.Errorf("%w: %d BLE tags in %d fields", plugins.ErrMalformed, count, f.left())
		}
		for i := 1; i <= int(count); i++ {
			p := "tag" + strconv.Itoa(i) + "_"
			rssi, err := f.int("tag rssi")
			if err != nil {
				return nil, err
			}
			_ = f.skip("tag rssi min")
			_ = f.skip("tag rssi max")
			tid, _ := f.next("tag id")
			samples, err := f.int("tag samples")
			if err != nil {
				return nil, err
			}
			major, err := f.int("tag major")
			if err != nil {
				return nil, err
			}
			minor, err := f.int("tag minor")
			if err != nil {
				return nil, err
			}
			sig.SetAttr(p+"rssi", rssi)
			sig.SetAttr(p+"id", tid)
			sig.SetAttr(p+"samples", samples)
			sig.SetAttr(p+"major", major)
			sig.SetAttr(p+"minor", minor)
		}
		rest(f, sig)
		return sig, nil
	}
	if bit(mask, 13) {
		if sig.Speed, err = f.float("speed"); err != nil {
			return nil, err
		}
	}
	if bit(mask, 14) {
		if sig.Heading, err = f.float("course"); err != nil {
			return nil, err
		}
	}
	if bit(mask, 15) {
		n, err := f.int("satellites")
		if err != nil {
			return nil, err
		}
		sig.Sats = float64(n)
	}
	if bit(mask, 16) {
		x, err := f.next("fix")
		if err != nil {
			return nil, err
		}
		sig.Valid = signal.FlagOf(x == "1")
	}
	if bit(mask, 17) {
		in, err := bits(f, "input state")
		if err != nil {
			return nil, err
		}
		sig.SetAttr("ignition", in&1 == 1)
		sig.SetAttr("input", in)
	}
	if bit(mask, 18) {
		out, err := bits(f, "output state")
		if err != nil {
			return nil, err
		}
		sig.SetAttr("output", out)
	}
	switch typ {
	case "ALT":
		if bit(mask, 19) {
			code, err := f.int("alert id")
			if err != nil {
				return nil, err
			}
			setAlert(sig, alerts, code)
		}
		for _, c := range []struct {
			bit  uint
			name string
		}{{20, "alert_modifier"}, {21, "alert_data"}} {
			if bit(mask, c.bit) {
				x, err := f.next(c.name)
				if err != nil {
					return nil, err
				}
				if x != "" {
					sig.SetAttr(c.name, x)
				}
			}
		}
	case "UEX":
		if err := serial(f, sig); err != nil {
			return nil, err
		}
	default:
		for _, c := range []struct {
			bit  uint
			name string
		}{{19, "mode"}, {20, "reason"}, {21, "index"}} {
			if bit(mask, c.bit) {
				n, err := f.int(c.name)
				if err != nil {
					return nil, err
				}
				sig.SetAttr(c.name, n)
			}
		}
	}
	if bit(mask, 22) && typ != "UEX" {
		_ = f.skip("reserved")
	}
	if bit(mask, 23) && typ != "UEX" {
		am, err := f.hex("assign mask")
		if err != nil {
			return nil, err
		}
		for i := uint(0); i <= 30; i++ {
			if bit(am, i) {
				x, err := f.next("assigned field")
				if err != nil {
					return nil, err
				}
				sig.SetAttr("assign"+strconv.Itoa(int(i)+1), x)
			}
		}
	} else if typ != "UEX" {
		// Fields after the masked ones are the device's assigned headers
		// in order.
		for n := 1; f.left() > 0; n++ {
			x, _ := f.next("assigned field")
			sig.SetAttr("assign"+strconv.Itoa(n), x)
		}
	}
	noFix(sig)
	rest(f, sig)
	return sig, nil
}

// bits reads an input/output state: eight '0'/'1' characters (bit 0 is
// the last character), or a decimal number.
func bits(f *fields, name string) (int64, error) {
	x, err := f.next(name)
	if err != nil {
		return 0, err
	}
	if len(x) == 8 && strings.Trim(x, "01") == "" {
		n, _ := strconv.ParseInt(x, 2, 64)
		return n, nil
	}
	return parseInt(name, x, 10)
}

// breader is a bounds-checked big-endian cursor.
type breader struct {
	b   []byte
	off int
	err error
}

func (r *breader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.err = fmt.Errorf("%w: %s: %d bytes wanted at offset %d, %d left", plugins.ErrMalformed, what, n, r.off, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *breader) u8(what string) uint8 {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *breader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *breader) u24(what string) uint32 {
	if b := r.take(3, what); b != nil {
		return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	}
	return 0
}

func (r *breader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// datetime reads y m d h m s bytes (year after 2000).
func (r *breader) datetime() (time.Time, error) {
	b := r.take(6, "date and time")
	if r.err != nil {
		return time.Time{}, r.err
	}
	t := time.Date(2000+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, time.UTC)
	if int(t.Month()) != int(b[1]) || t.Day() != int(b[2]) || t.Hour() != int(b[3]) || t.Minute() != int(b[4]) || t.Second() != int(b[5]) {
		return time.Time{}, fmt.Errorf("%w: date and time % x out of range", plugins.ErrMalformed, b)
	}
	return t, nil
}

// signedMagnitude is bit 31 the sign, the rest the value.
func signedMagnitude(u uint32) float64 {
	v := float64(u & 0x7fffffff)
	if u&0x80000000 != 0 {
		v = -v
	}
	return v
}

// binaryUniversal decodes 0x81 (status) and 0x82 (alert) reports: type,
// length, id (5 bytes shown in hex), a 24-bit field mask and the fields it
// sets, binary.
func (s *Session) binaryUniversal(frame []byte, recv time.Time) (*signal.Signal, error) {
	r := &breader{b: frame, off: 3}
	id := hex.EncodeToString(r.take(5, "device id"))
	mask := int64(r.u24("field mask"))
	if r.err != nil {
		return nil, r.err
	}
	if err := s.setDevice(id); err != nil {
		return nil, err
	}
	attrs := map[string]any{"type": fmt.Sprintf("%02X", frame[0])}
	if bit(mask, 1) {
		attrs["model"] = int64(r.u8("model"))
	}
	if bit(mask, 2) {
		v := r.take(3, "firmware version")
		if r.err == nil {
			attrs["version_fw"] = fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2])
		}
	}
	if bit(mask, 3) {
		r.u8("archive") // real-time/stored flag: see README "Resends"
	}
	var sig *signal.Signal
	if bit(mask, 4) && bit(mask, 5) {
		ts, err := r.datetime()
		if err != nil {
			return nil, err
		}
		sig = s.newSignal(ts, frame)
	} else {
		if r.err != nil {
			return nil, r.err
		}
		sig = s.serverSignal(frame, recv)
	}
	for k, a := range attrs {
		sig.SetAttr(k, a)
	}
	if bit(mask, 6) {
		sig.SetAttr("cid", int64(r.u32("cell id")))
	}
	if bit(mask, 7) {
		sig.SetAttr("mcc", int64(r.u16("mcc")))
	}
	if bit(mask, 8) {
		sig.SetAttr("mnc", int64(r.u16("mnc")))
	}
	if bit(mask, 9) {
		sig.SetAttr("lac", int64(r.u16("lac")))
	}
	if bit(mask, 10) {
		sig.SetAttr("rssi", int64(r.u8("rssi")))
	}
	if bit(mask, 11) {
		sig.Lat = signedMagnitude(r.u32("latitude")) / 1e6
	}
	if bit(mask, 12) {
		sig.Lon = signedMagnitude(r.u32("longitude")) / 1e6
	}
	if bit(mask, 13) {
		sig.Speed = float64(r.u16("speed")) / 100 // km/h
	}
	if bit(mask, 14) {
		sig.Heading = float64(r.u16("course")) / 100
	}
	if bit(mask, 15) {
		sig.Sats = float64(r.u8("satellites"))
	}
	if bit(mask, 16) {
		sig.Valid = signal.FlagOf(r.u8("fix") > 0)
	}
	if bit(mask, 17) {
		in := r.u8("input state")
		sig.SetAttr("ignition", in&1 == 1)
		sig.SetAttr("input", int64(in))
	}
	if bit(mask, 18) {
		sig.SetAttr("output", int64(r.u8("output state")))
	}
	alert := int64(0)
	if bit(mask, 19) {
		alert = int64(r.u8("alert id"))
		if frame[0] == 0x82 {
			setAlert(sig, alerts, alert)
		} else {
			sig.SetAttr("mode", alert)
		}
	}
	if bit(mask, 20) {
		sig.SetAttr("alert_modifier", int64(r.u16("alert modifier")))
	}
	if bit(mask, 21) && alert == 59 {
		sig.SetAttr("driver_id", hex.EncodeToString(r.take(8, "driver id")))
	}
	if r.err != nil {
		return nil, r.err
	}
	if sig.Lat > 90 || sig.Lat < -90 || sig.Lon > 180 || sig.Lon < -180 {
		return nil, fmt.Errorf("%w: position %v,%v out of range", plugins.ErrMalformed, sig.Lat, sig.Lon)
	}
	noFix(sig)
	if r.off < len(frame) {
		sig.SetAttr("extra", hex.EncodeToString(frame[r.off:]))
	}
	return sig, nil
}

// bcd reads n bytes of packed decimal digits.
func (r *breader) bcd(n int, what string) (int64, error) {
	b := r.take(n, what)
	if r.err != nil {
		return 0, r.err
	}
	v := int64(0)
	for _, c := range b {
		hi, lo := c>>4, c&0xf
		if hi > 9 || lo > 9 {
			return 0, fmt.Errorf("%w: %s byte 0x%02x is not packed decimal", plugins.ErrMalformed, what, c)
		}
		v = v*100 + int64(hi)*10 + int64(lo)
	}
	return v, nil
}

// compressed decodes the 0x02 report (type 0x10): id, model, software,
// time, cell, position in degrees + BCD millionths, speed and course in
// whole + BCD hundredths, flags (fix, hemispheres), odometer, power, io,
// event, then the HBM fields the hbm option announces.
func (s *Session) compressed(frame []byte, recv time.Time) (*signal.Signal, error) {
	r := &breader{b: frame, off: 3}
	if t := r.u8("report type"); r.err == nil && t != 0x10 {
		return nil, fmt.Errorf("%w: compressed report type 0x%02x", plugins.ErrUnsupported, t)
	}
	id := hex.EncodeToString(r.take(5, "device id"))
	if r.err != nil {
		return nil, r.err
	}
	if err := s.setDevice(id[:9]); err != nil {
		return nil, err
	}
	r.u8("model")
	sw := r.u16("software version")
	ts, err := r.datetime()
	if err != nil {
		return nil, err
	}
	sig := s.newSignal(ts, frame)
	sig.SetAttr("type", "02")
	sig.SetAttr("version_fw", int64(sw))
	sig.SetAttr("lac", int64(r.u16("lac")))
	sig.SetAttr("cid", int64(r.u8("cell id")))
	num := func(whole int, frac int, scale float64, what string) (float64, error) {
		var w int64
		if whole == 1 {
			w = int64(r.u8(what))
		} else {
			w = int64(r.u16(what))
		}
		f, err := r.bcd(frac, what)
		return float64(w) + float64(f)/scale, err
	}
	if sig.Lat, err = num(1, 3, 1e6, "latitude"); err != nil {
		return nil, err
	}
	if sig.Lon, err = num(1, 3, 1e6, "longitude"); err != nil {
		return nil, err
	}
	if sig.Speed, err = num(2, 1, 100, "speed"); err != nil {
		return nil, err
	}
	if sig.Heading, err = num(2, 1, 100, "course"); err != nil {
		return nil, err
	}
	flags := r.u8("flags")
	sig.Valid = signal.FlagOf(flags&0x80 != 0)
	if flags&0x40 != 0 {
		sig.Lat = -sig.Lat
	}
	if flags&0x20 != 0 {
		sig.Lon = -sig.Lon
	}
	sig.Odometer = float64(r.u32("odometer")) / 1000
	if sig.Voltage, err = num(1, 1, 100, "power voltage"); err != nil {
		return nil, err
	}
	io := r.u8("io state")
	sig.SetAttr("ignition", io&1 != 0)
	for i, name := range []string{"in1", "in2", "in3", "out1", "out2"} {
		sig.SetAttr(name, io>>(i+1)&1 != 0)
	}
	sig.SetAttr("event", int64(r.u8("event")))
	switch s.set.hbm {
	case 1:
		sig.SetAttr("engine_hours", float64(r.u32("hour meter"))/60)
		sig.SetAttr("battery_raw", int64(r.u16("battery")))
		r.u8("archive") // real-time/stored flag: see README "Resends"
	case 2:
		sig.SetAttr("cid", int64(r.u16("cell id")))
		sig.SetAttr("mcc", int64(r.u16("mcc")))
		sig.SetAttr("mnc", int64(r.u8("mnc")))
		sig.SetAttr("rssi", int64(int16(r.u16("rssi"))))
		sig.SetAttr("lac", int64(r.u16("lac")))
		r.u8("timing advance")
	}
	if r.err != nil {
		return nil, r.err
	}
	if sig.Lat > 90 || sig.Lat < -90 || sig.Lon > 180 || sig.Lon < -180 {
		return nil, fmt.Errorf("%w: position %v,%v out of range", plugins.ErrMalformed, sig.Lat, sig.Lon)
	}
	if r.off < len(frame) {
		sig.SetAttr("extra", hex.EncodeToString(frame[r.off:]))
	}
	return sig, nil
}
