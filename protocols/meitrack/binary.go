package meitrack

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// epoch2000 is the origin of the binary forms' timestamps.
var epoch2000 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// maxBatch caps the records of one batch (the count field is 16 bits; a
// record is at least a few bytes, MaxFrame bounds the rest).
const maxBatch = 4096

// reader is a bounds-checked little-endian cursor.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("%w: %s: %d bytes wanted at offset %d, %d left", plugins.ErrMalformed, what, n, r.off, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(what string) uint8 {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

// ccRecord is the size of one CCC record (protocol version 1).
const ccRecord = 52

// batchC decodes CCC: version (2), record length (2), remaining cache (4),
// then fixed records of event, lat, lon, time, fix, sats, gsm, speed,
// course, hdop, altitude, odometer, runtime, mcc, mnc, lac, cid, io, adc,
// battery, power, geofence.
func (s *Session) batchC(m message, frame []byte) ([]signal.Signal, error) {
	r := &reader{b: m.data}
	r.u16("CCC version")
	size := int(r.u16("CCC record length"))
	r.u32("CCC remaining cache")
	if r.err != nil {
		return nil, r.err
	}
	if size < ccRecord {
		return nil, fmt.Errorf("%w: CCC record length %d, want at least %d", plugins.ErrMalformed, size, ccRecord)
	}
	left := len(m.data) - r.off
	if left == 0 || left%size != 0 {
		return nil, fmt.Errorf("%w: CCC records of %d bytes do not fill the %d bytes after the header", plugins.ErrMalformed, size, left)
	}
	n := left / size
	if n > maxBatch {
		return nil, fmt.Errorf("%w: %d CCC records, cap %d", plugins.ErrMalformed, n, maxBatch)
	}
	sigs := make([]signal.Signal, 0, n)
	for i := 0; i < n; i++ {
		rec := &reader{b: r.take(size, "CCC record")}
		event := rec.u8("event")
		lat := int32(rec.u32("latitude"))
		lon := int32(rec.u32("longitude"))
		secs := rec.u32("time")
		fix := rec.u8("fix")
		sats := rec.u8("satellites")
		gsm := rec.u8("gsm signal")
		speed := rec.u16("speed")
		course := rec.u16("course")
		hdop := rec.u16("hdop")
		alt := int16(rec.u16("altitude"))
		odo := rec.u32("odometer")
		runtime := rec.u32("runtime")
		mcc, mnc, lac, cid := rec.u16("mcc"), rec.u16("mnc"), rec.u16("lac"), rec.u16("cid")
		io := rec.u16("io")
		adc := rec.u16("adc1")
		bat := rec.u16("battery")
		pow := rec.u16("power")
		fence := rec.u32("geofence")
		if rec.err != nil {
			return nil, rec.err
		}
		sig := s.newSignal(epoch2000.Add(time.Duration(secs)*time.Second), frame)
		sig.Valid = signal.FlagOf(fix == 1)
		if fix == 1 || lat != 0 || lon != 0 {
			sig.Lat, sig.Lon = float64(lat)*1e-6, float64(lon)*1e-6
		}
		setEvent(&sig, int64(event))
		sig.SetAttr("command", "CCC")
		sig.Sats = float64(sats)
		sig.SetAttr("rssi", int64(gsm))
		sig.Speed = float64(speed)
		sig.Heading = float64(course)
		sig.HDOP = float64(hdop) * 0.1
		sig.Alt = float64(alt)
		sig.Odometer = float64(odo) / 1000
		sig.SetAttr("runtime", int64(runtime))
		sig.SetAttr("mcc", int64(mcc))
		sig.SetAttr("mnc", int64(mnc))
		sig.SetAttr("lac", int64(lac))
		sig.SetAttr("cid", int64(cid))
		sig.SetAttr("status", int64(io))
		sig.SetAttr("adc1", int64(adc))
		sig.SetAttr("battery_v", float64(bat)*0.01)
		sig.SetAttr("power_raw", int64(pow))
		sig.SetAttr("geofence", int64(fence))
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// batchE decodes CCE: remaining cache (4), record count (2), then records
// of length (2, counting from the index), index (2) and four groups of
// parameters with 1-, 2-, 4-byte and length-prefixed values; an id starting
// with 0xFE is two bytes (big-endian).
func (s *Session) batchE(m message, frame []byte, recv time.Time) ([]signal.Signal, error) {
	r := &reader{b: m.data}
	r.u32("CCE remaining cache")
	count := int(r.u16("CCE record count"))
	if r.err != nil {
		return nil, r.err
	}
	if count > maxBatch {
		return nil, fmt.Errorf("%w: %d CCE records, cap %d", plugins.ErrMalformed, count, maxBatch)
	}
	sigs := make([]signal.Signal, 0, count)
	for i := 0; i < count; i++ {
		size := int(r.u16("CCE record length"))
		body := r.take(size, "CCE record")
		if r.err != nil {
			return nil, r.err
		}
		rec := &reader{b: body}
		index := rec.u16("record index")
		p := &params{}
		for group := 0; group < 4; group++ {
			n := int(rec.u8("parameter count"))
			for j := 0; j < n && rec.err == nil; j++ {
				id := uint16(rec.u8("parameter id"))
				if id == 0xFE {
					id = id<<8 | uint16(rec.u8("parameter id"))
				}
				var raw []byte
				switch group {
				case 0:
					raw = rec.take(1, "1-byte parameter")
				case 1:
					raw = rec.take(2, "2-byte parameter")
				case 2:
					raw = rec.take(4, "4-byte parameter")
				default:
					raw = rec.take(int(rec.u8("parameter length")), "variable parameter")
				}
				if rec.err == nil {
					if err := p.set(group, id, raw); err != nil {
						return nil, fmt.Errorf("record %d: %w", i, err)
					}
				}
			}
		}
		if rec.err != nil {
			return nil, fmt.Errorf("record %d: %w", i, rec.err)
		}
		var sig signal.Signal
		if p.hasTime {
			sig = s.newSignal(p.ts, frame)
		} else {
			// No time in the record: the receive time, the same for a
			// resend of the same record (its bytes and index).
			sig = s.newSignal(s.serverTime(body, recv), frame)
			sig.SetAttr("time_source", "server")
		}
		p.apply(&sig)
		sig.SetAttr("command", "CCE")
		sig.SetAttr("index", int64(index))
		sigs = append(sigs, sig)
	}
	if r.off != len(r.b) {
		return nil, fmt.Errorf("%w: %d bytes after the %d CCE records", plugins.ErrMalformed, len(r.b)-r.off, count)
	}
	return sigs, nil
}

// params collects one CCE record's values.
type params struct {
	ts       time.Time
	hasTime  bool
	lat, lon float64
	hasLat   bool
	hasLon   bool
	valid    signal.Flag
	fields   []func(*signal.Signal)
	wifi     []string
	cells    int
}

func (p *params) do(f func(*signal.Signal)) { p.fields = append(p.fields, f) }

func (p *params) attr(name string, v any) {
	p.do(func(s *signal.Signal) { s.SetAttr(name, v) })
}

func (p *params) num(dst func(*signal.Signal) *float64, v float64) {
	p.do(func(s *signal.Signal) { *dst(s) = v })
}

func (p *params) apply(sig *signal.Signal) {
	sig.Valid = p.valid
	if p.hasLat && p.hasLon && (p.valid == signal.True || p.lat != 0 || p.lon != 0) {
		sig.Lat, sig.Lon = p.lat, p.lon
	}
	for _, f := range p.fields {
		f(sig)
	}
	if len(p.wifi) > 0 {
		sig.SetAttr("wifi", strings.Join(p.wifi, ","))
	}
}

func (p *params) set(group int, id uint16, b []byte) error {
	switch group {
	case 0:
		v := b[0]
		switch id {
		case 0x01:
			p.do(func(s *signal.Signal) { setEvent(s, int64(v)) })
		case 0x05:
			p.valid = signal.FlagOf(v > 0)
		case 0x06:
			p.num(func(s *signal.Signal) *float64 { return &s.Sats }, float64(v))
		case 0x07:
			p.attr("rssi", int64(v))
		case 0x14:
			p.attr("output", int64(v))
		case 0x15:
			p.attr("input", int64(v))
		case 0x47:
			if v > 0 {
				p.attr("lock", v == 2)
			}
		case 0x97:
			p.num(func(s *signal.Signal) *float64 { return &s.Throttle }, float64(v))
		case 0x9D:
			p.num(func(s *signal.Signal) *float64 { return &s.Fuel }, float64(v))
		case 0xFE69:
			p.attr("battery_level", int64(v))
		default:
			p.attr(paramName(id), int64(v))
		}
	case 1:
		u := binary.LittleEndian.Uint16(b)
		switch id {
		case 0x08:
			p.num(func(s *signal.Signal) *float64 { return &s.Speed }, float64(u))
		case 0x09:
			p.num(func(s *signal.Signal) *float64 { return &s.Heading }, float64(u))
		case 0x0A:
			p.num(func(s *signal.Signal) *float64 { return &s.HDOP }, float64(u)*0.1)
		case 0x0B:
			p.num(func(s *signal.Signal) *float64 { return &s.Alt }, float64(int16(u)))
		case 0x16:
			p.attr("adc1", float64(u)*0.01)
		case 0x17:
			p.attr("adc2", float64(u)*0.01)
		case 0x19:
			p.attr("battery_v", float64(u)*0.01)
		case 0x1A:
			p.num(func(s *signal.Signal) *float64 { return &s.Voltage }, float64(u)*0.01)
		case 0x29:
			p.num(func(s *signal.Signal) *float64 { return &s.Fuel }, float64(u)*0.01)
		case 0x40:
			p.do(func(s *signal.Signal) { setEvent(s, int64(u)) })
		case 0x91, 0x92:
			p.attr("obd_speed", int64(u))
		case 0x98:
			p.attr("fuel_used", int64(u))
		case 0x99:
			p.num(func(s *signal.Signal) *float64 { return &s.RPM }, float64(u))
		case 0x9C:
			p.num(func(s *signal.Signal) *float64 { return &s.Coolant }, float64(u))
		case 0x9F:
			p.attr("temp1", int64(u))
		case 0xC9:
			p.attr("fuel_consumption", int64(u))
		default:
			p.attr(paramName(id), int64(u))
		}
	case 2:
		u := binary.LittleEndian.Uint32(b)
		switch id {
		case 0x02:
			p.lat, p.hasLat = float64(int32(u))*1e-6, true
		case 0x03:
			p.lon, p.hasLon = float64(int32(u))*1e-6, true
		case 0x04:
			p.ts, p.hasTime = epoch2000.Add(time.Duration(u)*time.Second), true
		case 0x0C:
			p.num(func(s *signal.Signal) *float64 { return &s.Odometer }, float64(u)/1000)
		case 0x0D:
			p.attr("runtime", int64(u))
		case 0x25:
			p.attr("driver_id", strconv.FormatUint(uint64(u), 10))
		case 0x9B:
			p.attr("obd_odometer", int64(u))
		case 0xA0:
			p.attr("fuel_used", float64(u)*0.001)
		case 0xA2:
			p.attr("fuel_consumption", float64(u)*0.01)
		case 0xFEF4:
			p.attr("engine_hours", float64(u)/60) // minutes
		default:
			p.attr(paramName(id), int64(u))
		}
	default:
		return p.variable(id, b)
	}
	return nil
}

// paramName names a parameter fleetcore has no meaning for, so its value
// is kept: param_<id in hex>.
func paramName(id uint16) string { return fmt.Sprintf("param_%x", id) }

func (p *params) variable(id uint16, b []byte) error {
	r := &reader{b: b}
	switch {
	case id >= 0x1D && id <= 0x25:
		mac := r.take(6, "wifi mac")
		rssi := int16(r.u16("wifi rssi"))
		if r.err != nil {
			return r.err
		}
		p.wifi = append(p.wifi, fmt.Sprintf("%x:%x:%x:%x:%x:%x*%d", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], rssi))
	case id >= 0x0E && id <= 0x13 && id != 0x11:
		mcc, mnc, lac := r.u16("mcc"), r.u16("mnc"), r.u16("lac")
		cid := r.u32("cid")
		rssi := int16(r.u16("cell rssi"))
		if r.err != nil {
			return r.err
		}
		p.cells++
		if p.cells == 1 { // the serving cell
			p.attr("mcc", int64(mcc))
			p.attr("mnc", int64(mnc))
			p.attr("lac", int64(lac))
			p.attr("cid", int64(cid))
			p.attr("cell_rssi", int64(rssi))
		}
	case id >= 0x2A && id <= 0x31:
		r.u8("sensor label")
		t := int16(r.u16("temperature"))
		if r.err != nil {
			return r.err
		}
		p.attr("temp"+strconv.Itoa(int(id-0x2A)), float64(t)*0.01)
	case id == 0xFE31:
		proto := r.u8("alarm protocol")
		typ := r.u8("alarm type")
		if r.err != nil {
			return r.err
		}
		p.attr("alarm_type", int64(typ))
		if proto == 0x02 && len(b) > 3 {
			file := string(b[2:])
			if !printable(file) {
				return fmt.Errorf("%w: image file name is not printable", plugins.ErrMalformed)
			}
			if len(file) >= 8 && digitsOnly(file[:8]) {
				file = file[:4] + "-" + file[4:6] + "-" + file[6:8] + "/" + file
			}
			p.attr("image", file)
		}
	case id == 0xFE73:
		r.u8("tag version")
		name := r.take(int(r.u8("tag name length")), "tag name")
		r.take(6, "tag mac")
		bat := r.u8("tag battery")
		temp := int16(r.u16("tag temperature"))
		hum := int16(r.u16("tag humidity"))
		if r.err != nil {
			return r.err
		}
		if !printable(string(name)) {
			return fmt.Errorf("%w: tag name is not printable", plugins.ErrMalformed)
		}
		p.attr("tag_name", string(name))
		p.attr("tag_battery", int64(bat))
		p.attr("tag_temp", float64(temp)/256)
		p.attr("tag_humidity", float64(hum)/256)
	case id == 0xFEA8:
		for k := 1; k <= 3; k++ {
			present := r.u8("battery flag")
			level := r.u8("battery level")
			if r.err != nil {
				return r.err
			}
			if present > 0 {
				name := "battery_level"
				if k > 1 {
					name = "battery" + strconv.Itoa(k) + "_level"
				}
				p.attr(name, int64(level))
			}
		}
	case allFF(b):
		// 0xFF filler some firmware pads a record with: nothing to keep.
	default:
		// Network information (0x4B) and parameters fleetcore has no
		// meaning for: kept as hex.
		p.attr(paramName(id), fmt.Sprintf("%x", b))
	}
	return nil
}

func printable(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// allFF reports whether b is non-empty 0xFF filler.
func allFF(b []byte) bool {
	for _, c := range b {
		if c != 0xff {
			return false
		}
	}
	return len(b) > 0
}
