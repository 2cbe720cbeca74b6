package meiligao

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

const knotsToKMH = 1.852

// alarms maps the 0x9999 alarm codes to alarm names.
var alarms = map[byte]string{
	0x01: "sos", 0x10: "low_battery", 0x11: "overspeed", 0x12: "movement", 0x13: "geofence_enter",
	0x14: "accident", 0x50: "power_off", 0x53: "gps_antenna_cut", 0x72: "braking", 0x73: "acceleration",
}

// maxRecords caps a retransmission's record count (one byte anyway).
const maxRecords = 255

func (s *Session) message(cmd uint16, data, frame []byte, recv time.Time) ([]signal.Signal, error) {
	switch cmd {
	case cmdPosition, cmdPositionLogged, cmdAlarm, cmdPositionImage:
		var pre func(*signal.Signal)
		switch cmd {
		case cmdAlarm:
			if len(data) < 1 {
				return nil, fmt.Errorf("%w: alarm without its code", plugins.ErrMalformed)
			}
			code := data[0]
			data = data[1:]
			pre = func(sig *signal.Signal) {
				sig.SetAttr("alarm_code", int64(code))
				if a, ok := alarms[code]; ok {
					sig.SetAttr("alarm", a)
				}
				switch {
				case code >= 0x02 && code <= 0x05:
					sig.SetAttr("in"+strconv.Itoa(int(code)), true)
				case code >= 0x32 && code <= 0x35:
					sig.SetAttr("in"+strconv.Itoa(int(code-0x30)), false)
				}
			}
		case cmdPositionLogged:
			if len(data) < 6 {
				return nil, fmt.Errorf("%w: logged position without its 6-byte prefix", plugins.ErrMalformed)
			}
			data = data[6:]
			pre = func(sig *signal.Signal) { sig.SetAttr("archive", true) }
		case cmdPositionImage:
			if len(data) < 2 {
				return nil, fmt.Errorf("%w: position image without its index", plugins.ErrMalformed)
			}
			idx := data[0]
			data = data[2:]
			pre = func(sig *signal.Signal) { sig.SetAttr("image_index", int64(idx)) }
		}
		sig, err := s.regular(string(data), frame)
		if err != nil {
			return nil, err
		}
		if pre != nil {
			pre(&sig)
		}
		return []signal.Signal{sig}, nil
	case cmdRFID:
		sig, err := s.rfid(data, frame)
		if err != nil {
			return nil, err
		}
		return []signal.Signal{sig}, nil
	case cmdRetransmission:
		return s.retransmission(data, frame)
	case cmdOBD:
		sig, err := s.obd(string(data), frame, recv)
		if err != nil {
			return nil, err
		}
		return []signal.Signal{sig}, nil
	case cmdOBDTotals:
		sig, err := s.obdTotals(string(data), frame, recv)
		if err != nil {
			return nil, err
		}
		return []signal.Signal{sig}, nil
	case cmdDTC:
		sig := s.serverSignal(frame, recv)
		sig.SetAttr("command", "dtc")
		for _, c := range strings.FieldsFunc(string(data), func(r rune) bool { return r == ',' || r == ' ' }) {
			if !printable(c) || len(c) > 32 {
				return nil, fmt.Errorf("%w: DTC %q", plugins.ErrMalformed, clip(c))
			}
			obd2.AddDTCs(&sig, c)
		}
		return []signal.Signal{sig}, nil
	}
	return nil, fmt.Errorf("%w: command %04x", plugins.ErrUnsupported, cmd)
}

func printable(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func digits(v string) bool { return v != "" && strings.Trim(v, "0123456789") == "" }

func isHex(v string) bool { return v != "" && strings.Trim(v, "0123456789abcdefABCDEF") == "" }

// number parses an optional decimal: empty is absent.
func number(name, v string) (float64, bool, error) {
	if v == "" {
		return math.NaN(), false, nil
	}
	if strings.Trim(v, "0123456789.-") != "" {
		return 0, false, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(v))
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(v))
	}
	return f, true, nil
}

// coordinate parses (d)ddmm.mmmm and its hemisphere.
func coordinate(name, v, hemi string, limit float64) (float64, error) {
	whole, frac, ok := strings.Cut(v, ".")
	if !ok || len(whole) < 3 || !digits(whole) || !digits(frac) || len(hemi) != 1 {
		return 0, fmt.Errorf("%w: %s %q %q is not (d)ddmm.mmmm and a hemisphere", plugins.ErrMalformed, name, clip(v), clip(hemi))
	}
	deg, _ := strconv.Atoi(whole[:len(whole)-2])
	mins, _ := strconv.ParseFloat(v[len(whole)-2:], 64)
	c := float64(deg) + mins/60
	if mins >= 60 || c > limit {
		return 0, fmt.Errorf("%w: %s %q out of range", plugins.ErrMalformed, name, v)
	}
	switch hemi {
	case "N", "E":
	case "S", "W":
		c = -c
	default:
		return 0, fmt.Errorf("%w: %s hemisphere %q", plugins.ErrMalformed, name, clip(hemi))
	}
	return c, nil
}

// year maps a two-digit year: 80–99 are 1980–1999 (GPS receivers' "no
// date yet" defaults), the rest 2000–2079.
func year(yy int) int {
	if yy >= 80 {
		return 1900 + yy
	}
	return 2000 + yy
}

func civil(y, mo, d, h, mi, sec, ms int) (time.Time, bool) {
	t := time.Date(y, time.Month(mo), d, h, mi, sec, ms*int(time.Millisecond), time.UTC)
	if t.Year() != y || int(t.Month()) != mo || t.Day() != d || t.Hour() != h || t.Minute() != mi || t.Second() != sec {
		return time.Time{}, false
	}
	return t, true
}

// fixTime parses hhmmss[.sss] and ddmmyy.
func fixTime(clock, date string) (time.Time, error) {
	c, frac, _ := strings.Cut(clock, ".")
	if len(c) != 6 || !digits(c) || len(date) != 6 || !digits(date) || (frac != "" && !digits(frac)) {
		return time.Time{}, fmt.Errorf("%w: time and date %q %q are not hhmmss ddmmyy", plugins.ErrMalformed, clip(clock), clip(date))
	}
	two := func(s string, i int) int { n, _ := strconv.Atoi(s[i : i+2]); return n }
	ms := 0
	if frac != "" {
		f, _ := strconv.ParseFloat("0."+frac, 64)
		ms = int(f * 1000)
	}
	t, ok := civil(year(two(date, 4)), two(date, 2), two(date, 0), two(c, 0), two(c, 2), two(c, 4), ms)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: time and date %s %s out of range", plugins.ErrMalformed, clock, date)
	}
	return t, nil
}

// regular decodes a GPRMC sentence with extras:
// hhmmss.sss,A|V,ddmm.mmmm,N|S,dddmm.mmmm,E|W,speed kn,course,ddmmyy[,…]
// [*cs]|hdop|altitude|state|adc,…|cell|rssi|odometer hex|sats|driver
// (or …|adc,…|odometer decimal|rfid).
func (s *Session) regular(sentence string, frame []byte) (signal.Signal, error) {
	if !printable(sentence) {
		return signal.Signal{}, fmt.Errorf("%w: position sentence is not text", plugins.ErrMalformed)
	}
	head, tail, _ := strings.Cut(sentence, "|")
	f := strings.Split(head, ",")
	if len(f) < 9 {
		return signal.Signal{}, fmt.Errorf("%w: GPRMC sentence of %d fields, want at least 9", plugins.ErrMalformed, len(f))
	}
	date := f[8]
	if len(date) > 6 {
		date = date[:6]
	}
	ts, err := fixTime(f[0], date)
	if err != nil {
		return signal.Signal{}, err
	}
	if f[1] != "A" && f[1] != "V" {
		return signal.Signal{}, fmt.Errorf("%w: validity %q is neither A nor V", plugins.ErrMalformed, clip(f[1]))
	}
	lat, err := coordinate("latitude", f[2], f[3], 90)
	if err != nil {
		return signal.Signal{}, err
	}
	lon, err := coordinate("longitude", f[4], f[5], 180)
	if err != nil {
		return signal.Signal{}, err
	}
	sig := s.newSignal(ts, frame)
	sig.Valid = signal.FlagOf(f[1] == "A")
	if f[1] == "A" || lat != 0 || lon != 0 { // 0,0 without a fix: no position
		sig.Lat, sig.Lon = lat, lon
	}
	speed, ok, err := number("speed", f[6])
	if err != nil {
		return signal.Signal{}, err
	}
	if ok {
		sig.Speed = speed * knotsToKMH
	}
	if sig.Heading, _, err = number("course", f[7]); err != nil {
		return signal.Signal{}, err
	}
	if tail != "" {
		if err := extras(&sig, strings.Split(tail, "|")); err != nil {
			return signal.Signal{}, err
		}
	}
	return sig, nil
}

// extras decodes the `|` fields after the sentence.
func extras(sig *signal.Signal, t []string) error {
	get := func(i int) string {
		if i < len(t) {
			return t[i]
		}
		return ""
	}
	var err error
	if sig.HDOP, _, err = number("hdop", get(0)); err != nil {
		return err
	}
	if sig.Alt, _, err = number("altitude", get(1)); err != nil {
		return err
	}
	if st := get(2); st != "" {
		if len(st) != 4 || !isHex(st) {
			return fmt.Errorf("%w: io state %q is not four hex digits", plugins.ErrMalformed, clip(st))
		}
		v, _ := strconv.ParseUint(st, 16, 16)
		for i := 0; i < 5; i++ {
			sig.SetAttr("out"+strconv.Itoa(i+1), v>>i&1 == 1)
			sig.SetAttr("in"+strconv.Itoa(i+1), v>>(i+8)&1 == 1)
		}
	}
	if a := get(3); a != "" {
		for i, x := range strings.Split(a, ",") {
			if len(x) != 4 || !isHex(x) || i >= 8 {
				return fmt.Errorf("%w: adc values %q are not up to eight 4-digit hex numbers", plugins.ErrMalformed, clip(a))
			}
			v, _ := strconv.ParseUint(x, 16, 16)
			sig.SetAttr("adc"+strconv.Itoa(i+1), int64(v))
		}
	}
	rest := t[min(4, len(t)):]
	switch {
	case len(rest) > 0 && len(rest[0]) >= 16 && len(rest[0]) <= 20 && isHex(rest[0]):
		sig.SetAttr("cell", rest[0])
		hexField := func(i int, name string, set func(v uint64)) error {
			if i >= len(rest) || rest[i] == "" {
				return nil
			}
			v, err := strconv.ParseUint(rest[i], 16, 32)
			if err != nil {
				return fmt.Errorf("%w: %s %q is not hexadecimal", plugins.ErrMalformed, name, clip(rest[i]))
			}
			set(v)
			return nil
		}
		if err := hexField(1, "rssi", func(v uint64) { sig.SetAttr("rssi", int64(v)) }); err != nil {
			return err
		}
		if err := hexField(2, "odometer", func(v uint64) { sig.Odometer = float64(v) / 1000 }); err != nil {
			return err
		}
		if err := hexField(3, "satellites", func(v uint64) { sig.Sats = float64(v) }); err != nil {
			return err
		}
		if len(rest) > 4 && rest[4] != "" {
			sig.SetAttr("driver_id", strings.Join(rest[4:], "|"))
		}
	case len(rest) > 0 && len(rest[0]) <= 9 && digits(rest[0]):
		v, _ := strconv.ParseUint(rest[0], 10, 32)
		sig.Odometer = float64(v) / 1000
		if len(rest) > 1 && rest[1] != "" {
			sig.SetAttr("rfid", strings.Join(rest[1:], "|"))
		}
	case len(rest) > 0:
		sig.SetAttr("extra", strings.Join(rest, "|"))
	}
	return nil
}

// rfid decodes 0x9966: fifteen 32-bit card numbers, then
// |hhmmss,ddmmyy,lat,N|S,lon,E|W.
func (s *Session) rfid(data, frame []byte) (signal.Signal, error) {
	if len(data) < 60 {
		return signal.Signal{}, fmt.Errorf("%w: RFID report of %d bytes, want 60 card bytes and a position", plugins.ErrMalformed, len(data))
	}
	text := string(data[60:])
	f := strings.Split(strings.TrimPrefix(text, "|"), ",")
	if !strings.HasPrefix(text, "|") || len(f) != 6 {
		return signal.Signal{}, fmt.Errorf("%w: RFID position %q is not |hhmmss,ddmmyy,lat,N,lon,E", plugins.ErrMalformed, clip(text))
	}
	ts, err := fixTime(f[0], f[1])
	if err != nil {
		return signal.Signal{}, err
	}
	lat, err := coordinate("latitude", f[2], f[3], 90)
	if err != nil {
		return signal.Signal{}, err
	}
	lon, err := coordinate("longitude", f[4], f[5], 180)
	if err != nil {
		return signal.Signal{}, err
	}
	sig := s.newSignal(ts, frame)
	sig.Valid = signal.True
	sig.Lat, sig.Lon = lat, lon
	for i := 0; i < 15; i++ {
		if card := binary.BigEndian.Uint32(data[4*i:]); card != 0 {
			c := fmt.Sprintf("%010d", card)
			sig.SetAttr("card"+strconv.Itoa(i+1), c)
			sig.SetAttr("driver_id", c)
		}
	}
	return sig, nil
}

// retransmission decodes 0x6688: a count, then per record an alarm byte
// and a position sentence, records separated by '\'.
func (s *Session) retransmission(data, frame []byte) ([]signal.Signal, error) {
	if len(data) < 1 {
		return nil, fmt.Errorf("%w: retransmission without its count", plugins.ErrMalformed)
	}
	n := int(data[0])
	rest := data[1:]
	sigs := make([]signal.Signal, 0, min(n, maxRecords))
	for i := 0; i < n; i++ {
		if len(rest) < 1 {
			return nil, fmt.Errorf("%w: retransmission announces %d records, holds %d", plugins.ErrMalformed, n, i)
		}
		code := rest[0]
		rest = rest[1:]
		sentence := rest
		if j := bytes.IndexByte(rest, '\\'); j >= 0 {
			sentence, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		sig, err := s.regular(string(sentence), frame)
		if err != nil {
			return nil, fmt.Errorf("retransmitted record %d: %w", i, err)
		}
		sig.SetAttr("archive", true)
		sig.SetAttr("alarm_code", int64(code))
		if a, ok := alarms[code]; ok {
			sig.SetAttr("alarm", a)
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// obd decodes 0x9901: battery,rpm,speed,throttle,load,coolant,instant
// fuel,average fuel,range,odometer,trip fuel,total fuel,DTC count,hard
// accelerations,hard brakings. It carries no time.
func (s *Session) obd(text string, frame []byte, recv time.Time) (signal.Signal, error) {
	f := strings.Split(text, ",")
	if len(f) != 15 {
		return signal.Signal{}, fmt.Errorf("%w: OBD report of %d fields, want 15", plugins.ErrMalformed, len(f))
	}
	sig := s.serverSignal(frame, recv)
	sig.SetAttr("command", "obd")
	vals := make([]float64, 15)
	names := []string{"battery", "rpm", "obd speed", "throttle", "engine load", "coolant", "instant fuel", "average fuel", "driving range", "odometer", "trip fuel", "total fuel", "dtc count", "hard accelerations", "hard brakings"}
	for i, name := range names {
		v, ok, err := number(name, f[i])
		if err != nil {
			return signal.Signal{}, err
		}
		if !ok {
			return signal.Signal{}, fmt.Errorf("%w: %s is empty", plugins.ErrMalformed, name)
		}
		vals[i] = v
	}
	for _, p := range []struct {
		pid byte
		i   int
	}{{0x42, 0}, {0x0C, 1}, {0x0D, 2}, {0x11, 3}, {0x04, 4}, {0x05, 5}} {
		val, err := obd2.Scaled(p.pid, vals[p.i])
		if err != nil {
			return signal.Signal{}, fmt.Errorf("%w: %s: %v", plugins.ErrMalformed, names[p.i], err)
		}
		val.Apply(&sig)
	}
	sig.SetAttr("fuel_consumption", vals[6])
	sig.SetAttr("average_fuel_consumption", vals[7])
	sig.SetAttr("driving_range", vals[8])
	sig.Odometer = vals[9]
	sig.SetAttr("trip_fuel_consumption", vals[10])
	sig.SetAttr("fuel_used", vals[11])
	sig.SetAttr("dtc_count", int64(vals[12]))
	sig.SetAttr("hard_acceleration_count", int64(vals[13]))
	sig.SetAttr("hard_braking_count", int64(vals[14]))
	return sig, nil
}

// obdTotals decodes 0x9902: ignitions,driving time,idling time,average hot
// start time,average speed,highest speed,highest rpm,hard accelerations,
// hard brakings.
func (s *Session) obdTotals(text string, frame []byte, recv time.Time) (signal.Signal, error) {
	f := strings.Split(text, ",")
	names := []string{"total_ignitions", "total_driving_time", "total_idling_time", "average_hot_start_time", "average_speed", "highest_speed", "highest_rpm", "total_hard_accelerations", "total_hard_brakings"}
	if len(f) != len(names) {
		return signal.Signal{}, fmt.Errorf("%w: OBD totals of %d fields, want %d", plugins.ErrMalformed, len(f), len(names))
	}
	sig := s.serverSignal(frame, recv)
	sig.SetAttr("command", "obd_totals")
	for i, name := range names {
		v, ok, err := number(name, f[i])
		if err != nil {
			return signal.Signal{}, err
		}
		if ok {
			sig.SetAttr(name, v)
		}
	}
	return sig, nil
}
