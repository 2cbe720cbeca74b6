// Package gps103 decodes the Coban GPS103/TK103-2 text protocol (GPS102,
// GPS103, GPS104, TK103-2B, TK106 and their clones): `##,imei:…,A;` logins
// answered LOAD, bare-IMEI heartbeats answered ON, `imei:…,<event>,…;`
// position records and `imei:…,OBD,…;` OBD-II reports.
package gps103

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id.
const Name = "gps103"

const knotKMH = 1.852

// maxDeviceID bounds an IMEI (15 digits in practice).
const maxDeviceID = 32

// Decoder is the GPS103 decoder; its zero value is ready to use. It is
// shared by every session: it remembers the receive time it gave records
// without a device time (see plugins.ServerTimes).
type Decoder struct {
	times plugins.ServerTimes
}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP, plugins.UDP},
		DefaultPort: 5001,
		Description: "Coban GPS103/TK103-2 text: imei:…; records, ## login (LOAD), heartbeat (ON), OBD reports",
	}
}

// NewSession starts a connection.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 10
	}
	return &Session{dec: d, cfg: cfg}
}

// Session is one connection (or UDP source).
type Session struct {
	dec *Decoder
	cfg plugins.SessionConfig
	dev string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
	_ plugins.EOFFramer        = (*Session)(nil)
)

// DeviceID is the device seen last on the connection.
func (s *Session) DeviceID() string { return s.dev }

// isDelim reports the bytes that end a message: ';' (records, logins,
// heartbeats), '*' (the alternative record form) and a line end.
func isDelim(c byte) bool { return c == ';' || c == '*' || c == '\n' }

// Frame returns the first message, up to and including its delimiter;
// line ends between messages are frames of their own (they decode to
// nothing).
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	switch c := buf[0]; {
	case c == '\r' || c == '\n':
		n := 0
		for n < len(buf) && (buf[n] == '\r' || buf[n] == '\n') {
			n++
		}
		return n, nil
	case c == '#' || c == 'i' || (c >= '0' && c <= '9'):
	default:
		return 0, fmt.Errorf("framing gps103: %w: byte 0x%02x cannot start a message", plugins.ErrMalformed, c)
	}
	limit := buf
	if len(limit) > s.cfg.MaxFrame {
		limit = limit[:s.cfg.MaxFrame]
	}
	for i, c := range limit {
		if isDelim(c) {
			return i + 1, nil
		}
	}
	if len(buf) >= s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing gps103: %w: no delimiter within %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
	}
	return 0, nil
}

// FrameAtEOF takes the bytes left at the end of a replayed input as one
// last message (a capture without its delimiter).
func (s *Session) FrameAtEOF(buf []byte) (int, error) {
	if len(buf) > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing gps103: %w: %d bytes without delimiter", plugins.ErrTooLarge, len(buf))
	}
	return len(buf), nil
}

// Decode decodes one message (a TCP frame or a UDP datagram).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res, err := s.decode(frame, recv)
	if err != nil {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding gps103 message: %w", err)
	}
	res.DeviceID = s.dev
	return res, nil
}

func (s *Session) decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > s.cfg.MaxFrame {
		return plugins.Result{}, fmt.Errorf("%w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	if s.cfg.Transport == plugins.UDP && len(frame) > 0 && !isDelim(frame[len(frame)-1]) {
		// A datagram holds whole messages: one without its delimiter was
		// cut.
		return plugins.Result{}, fmt.Errorf("%w: datagram does not end with ';', '*' or a line end", plugins.ErrMalformed)
	}
	msg := bytes.TrimRight(frame, "\r\n")
	alternative := bytes.HasSuffix(msg, []byte("*"))
	msg = bytes.TrimSuffix(bytes.TrimSuffix(msg, []byte(";")), []byte("*"))
	if len(msg) == 0 {
		return plugins.Result{}, nil
	}
	text := string(msg)
	// A login: "##,imei:<imei>,A" (and the short forms Traccar takes as
	// one: any message naming the IMEI in at most 30 bytes).
	if i := strings.Index(text, "imei:"); i >= 0 && len(text) <= 30 {
		imei, _, _ := strings.Cut(text[i+len("imei:"):], ",")
		if err := s.setDevice(imei); err != nil {
			return plugins.Result{}, err
		}
		return plugins.Result{Ack: []byte("LOAD")}, nil
	}
	var ack []byte
	if c := text[0]; c >= '0' && c <= '9' {
		// A heartbeat: the bare IMEI, answered ON; some firmware puts a
		// record right after it.
		ack = []byte("ON")
		i := strings.Index(text, "imei:")
		if i < 0 {
			if err := s.setDevice(text); err != nil {
				return plugins.Result{}, err
			}
			return plugins.Result{Ack: ack}, nil
		}
		text = text[i:]
	}
	if !strings.HasPrefix(text, "imei:") {
		return plugins.Result{}, fmt.Errorf("%w: message %q starts with neither imei: nor ##", plugins.ErrMalformed, clip(text))
	}
	f := strings.Split(text, ",")
	if len(f) < 3 {
		return plugins.Result{}, fmt.Errorf("%w: record of %d fields", plugins.ErrMalformed, len(f))
	}
	if err := s.setDevice(f[0][len("imei:"):]); err != nil {
		return plugins.Result{}, err
	}
	var (
		sig signal.Signal
		err error
	)
	switch {
	case strings.HasPrefix(f[1], "vr") || strings.HasPrefix(f[1], "vt"):
		return plugins.Result{}, fmt.Errorf("%w: photo transfer %q", plugins.ErrUnsupported, clip(f[1]))
	case alternative:
		return plugins.Result{}, fmt.Errorf("%w: the '*'-ended record form", plugins.ErrUnsupported)
	case f[1] == "OBD":
		sig, err = s.obd(f, frame)
	default:
		sig, err = s.regular(f, frame, recv)
	}
	if err != nil {
		return plugins.Result{}, err
	}
	sig.Recv = recv
	if f[1] == "help me" {
		// The SOS is confirmed to the device, which otherwise repeats it.
		ack = append(ack, "**,imei:"+s.dev+",E;"...)
	}
	return plugins.Result{Signals: []signal.Signal{sig}, Ack: ack}, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func (s *Session) setDevice(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty imei", plugins.ErrNoDevice)
	}
	if len(id) > maxDeviceID || strings.Trim(id, "0123456789") != "" {
		return fmt.Errorf("%w: imei %q is not a number of at most %d digits", plugins.ErrMalformed, clip(id), maxDeviceID)
	}
	if id != s.dev && s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(id) {
		return fmt.Errorf("%w: %s", plugins.ErrUnauthorized, id)
	}
	s.dev = id
	return nil
}

func (s *Session) newSignal(ts time.Time, frame []byte) signal.Signal {
	sig := signal.New(s.dev, ts)
	sig.Protocol = Name
	sig.Frame = append([]byte(nil), frame...)
	return sig
}

// serverTime is the time of a record that carries none: the receive time
// to the second, or the first copy's for a resend within the window. The
// protocol has no sequence number: an identical message within the window
// is taken as a resend (README "Resends").
func (s *Session) serverTime(frame []byte, recv time.Time) time.Time {
	return s.dec.times.Stamp(s.dev, bytes.TrimRight(frame, "\r\n"), recv.UTC().Truncate(time.Second))
}

// alarms maps the event word of a record to fleetcore's alarm names.
var alarms = map[string]string{
	"help me": "sos", "low battery": "low_battery", "stockade": "geofence", "move": "movement",
	"speed": "overspeed", "door alarm": "door", "ac alarm": "power_cut", "accident alarm": "accident",
	"sensor alarm": "vibration", "bonnet alarm": "bonnet", "footbrake alarm": "foot_brake", "DTC": "fault",
}

func digitsOnly(v string) bool {
	return v != "" && strings.Trim(v, "0123456789") == ""
}

var timeSeparators = strings.NewReplacer("/", "", ":", "", " ", "")

// localTime parses the record's local date and time: yymmddhhmm[ss]
// (slashes, colons and a space allowed between the parts).
func localTime(v string) (t time.Time, ok bool) {
	v = timeSeparators.Replace(v)
	if !digitsOnly(v) || (len(v) != 10 && len(v) != 12) {
		return time.Time{}, false
	}
	n := func(i int) int { x, _ := strconv.Atoi(v[i : i+2]); return x }
	sec := 0
	if len(v) == 12 {
		sec = n(10)
	}
	return civil(2000+n(0), n(2), n(4), n(6), n(8), sec)
}

// civil builds a UTC time, refusing out-of-range parts (no normalisation).
func civil(y, mo, d, h, mi, sec int) (time.Time, bool) {
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	if t.Year() != y || int(t.Month()) != mo || t.Day() != d || t.Hour() != h || t.Minute() != mi || t.Second() != sec {
		return time.Time{}, false
	}
	return t, true
}

// utcClock parses the GPS time field hhmmss[.sss].
func utcClock(v string) (h, m, sec int, ok bool) {
	whole, frac, _ := strings.Cut(v, ".")
	if len(whole) != 6 || !digitsOnly(whole) || (frac != "" && !digitsOnly(frac)) {
		return 0, 0, 0, false
	}
	h, _ = strconv.Atoi(whole[0:2])
	m, _ = strconv.Atoi(whole[2:4])
	sec, _ = strconv.Atoi(whole[4:6])
	return h, m, sec, h < 24 && m < 60 && sec < 60
}

// number parses an optional decimal field: empty is absent.
func number(name, v string) (float64, bool, error) {
	if v == "" {
		return math.NaN(), false, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || strings.ContainsAny(v, "xXpPeEiInN_") {
		return 0, false, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(v))
	}
	return f, true, nil
}

// coordinate parses (d)ddmm.mmmm with its hemisphere; an empty hemisphere
// counts as north/east, as Traccar takes it.
func coordinate(name, v, hemi string, limit float64) (float64, error) {
	whole, frac, ok := strings.Cut(v, ".")
	if !ok || len(whole) < 3 || !digitsOnly(whole) || !digitsOnly(frac) {
		return 0, fmt.Errorf("%w: %s %q is not (d)ddmm.mmmm", plugins.ErrMalformed, name, clip(v))
	}
	deg, _ := strconv.Atoi(whole[:len(whole)-2])
	mins, _ := strconv.ParseFloat(v[len(whole)-2:], 64)
	c := float64(deg) + mins/60
	if mins >= 60 || c > limit {
		return 0, fmt.Errorf("%w: %s %q out of range", plugins.ErrMalformed, name, v)
	}
	if hemi == "S" || hemi == "W" {
		c = -c
	}
	return c, nil
}

// regular decodes imei:<imei>,<event>,<local time>,<rfid/phone>,F|L,…
func (s *Session) regular(f []string, frame []byte, recv time.Time) (signal.Signal, error) {
	event := f[1]
	local, localOK := localTime(f[2])
	if !localOK && f[2] != "" && !digitsOnly(f[2]) {
		return signal.Signal{}, fmt.Errorf("%w: local time %q is not yymmddhhmm[ss]", plugins.ErrMalformed, clip(f[2]))
	}
	get := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	var sig signal.Signal
	switch get(4) {
	case "L": // no fix: the serving cell (lac and cid in hex)
		sig = s.newSignal(s.serverTime(frame, recv), frame)
		sig.SetAttr("time_source", "server")
		if f[2] != "" {
			sig.SetAttr("device_time_local", f[2])
		}
		for _, c := range []struct {
			name string
			i    int
		}{{"lac", 7}, {"cid", 9}} {
			if v := get(c.i); v != "" {
				n, err := strconv.ParseUint(v, 16, 32)
				if err != nil {
					return signal.Signal{}, fmt.Errorf("%w: %s %q is not hex", plugins.ErrMalformed, c.name, clip(v))
				}
				sig.SetAttr(c.name, int64(n))
			}
		}
	case "F":
		var err error
		if sig, err = s.fix(f, local, localOK, frame); err != nil {
			return signal.Signal{}, err
		}
	default:
		return signal.Signal{}, fmt.Errorf("%w: fix field %q is neither F nor L", plugins.ErrMalformed, clip(get(4)))
	}
	_, known := alarms[event]
	if known {
		sig.SetAttr("alarm", alarms[event])
	}
	switch {
	case event == "acc on" || event == "acc off":
		known = true
		sig.SetAttr("ignition", event == "acc on")
	case strings.HasPrefix(event, "T:"):
		known = true
		sig.SetAttr("alarm", "temperature")
		t, ok, err := number("temperature", event[2:])
		if err != nil {
			return signal.Signal{}, err
		}
		if _, have := sig.Attrs["temp1"]; ok && !have {
			sig.SetAttr("temp1", t)
		}
	case strings.HasPrefix(event, "oil"):
		known = true
		sig.SetAttr("alarm", "fuel_leak")
		if v, ok := strings.CutPrefix(event, "oil "); ok {
			l, _, err := number("oil level", v)
			if err != nil {
				return signal.Signal{}, err
			}
			sig.SetAttr("fuel_level", l)
		}
	case event == "rfid":
		if get(3) != "" {
			sig.SetAttr("driver_id", get(3))
		}
	}
	if !known && event != "tracker" && event != "" {
		sig.SetAttr("event", event)
	}
	return sig, nil
}

// fix decodes the F form: utc time, validity, position, speed, course,
// altitude and the optional ignition, door, fuel and temperature fields.
func (s *Session) fix(f []string, local time.Time, localOK bool, frame []byte) (signal.Signal, error) {
	get := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	if !localOK {
		return signal.Signal{}, fmt.Errorf("%w: local time %q is not yymmddhhmm[ss]", plugins.ErrMalformed, clip(f[2]))
	}
	ts := local
	zoneKnown := false
	if h, m, sec, ok := utcClock(get(5)); ok {
		// The record gives local date and time (to the minute) and the GPS
		// UTC time of day: their difference is the zone offset.
		delta := (local.Hour()-h)*60 + local.Minute() - m
		switch {
		case delta <= -12*60:
			delta += 24 * 60
		case delta > 12*60:
			delta -= 24 * 60
		}
		ts = local.Add(time.Duration(sec-local.Second())*time.Second - time.Duration(delta)*time.Minute)
		zoneKnown = true
	}
	sig := s.newSignal(ts, frame)
	if !zoneKnown {
		// No UTC time of day: the device's local time is all there is.
		sig.SetAttr("time_source", "device_local")
		if get(5) != "" {
			sig.SetAttr("utc_time_raw", get(5))
		}
	}
	switch get(6) {
	case "A":
		sig.Valid = signal.True
	case "V":
		sig.Valid = signal.False
	default:
		return signal.Signal{}, fmt.Errorf("%w: validity %q is neither A nor V", plugins.ErrMalformed, clip(get(6)))
	}
	i := 7
	coord := func(name, hemis string, limit float64, emptyHemi bool) (float64, error) {
		var v, hemi string
		if h := get(i); h != "" && strings.Contains(hemis, h) {
			hemi, v = h, get(i+1)
			i += 2
		} else {
			v = get(i)
			i++
			if h := get(i); (h != "" && strings.Contains(hemis, h)) || (emptyHemi && h == "") {
				hemi = h
				i++
			}
		}
		return coordinate(name, v, hemi, limit)
	}
	lat, err := coord("latitude", "NS", 90, false)
	if err != nil {
		return signal.Signal{}, err
	}
	lon, err := coord("longitude", "EW", 180, true)
	if err != nil {
		return signal.Signal{}, err
	}
	if !(sig.Valid == signal.False && lat == 0 && lon == 0) {
		sig.Lat, sig.Lon = lat, lon // 0,0 without a fix is the "no position" marker
	}
	for _, n := range []struct {
		name  string
		set   func(float64)
		scale float64
	}{
		{"speed", func(v float64) { sig.Speed = v }, knotKMH},
		{"course", func(v float64) { sig.Heading = v }, 1},
		{"altitude", func(v float64) { sig.Alt = v }, 1},
	} {
		v, ok, err := number(n.name, get(i))
		if err != nil {
			return signal.Signal{}, err
		}
		if ok {
			n.set(v * n.scale)
		}
		i++
	}
	if i < len(f) {
		tail := f[i:]
		if !standardTail(&sig, tail, f[1] == "DTC") {
			// A layout of its own (the oil sensor alarms, firmware
			// variants): kept as sent.
			sig.SetAttr("extra", strings.Join(tail, ","))
		}
	}
	return sig, nil
}

// standardTail decodes [ignition, door, fuel1 %, fuel2 % (a DTC in a DTC
// record), temperature] when every present field fits; false leaves sig
// unchanged.
func standardTail(sig *signal.Signal, t []string, dtc bool) bool {
	if len(t) > 5 {
		for _, v := range t[5:] {
			if v != "" {
				return false
			}
		}
	}
	get := func(i int) string {
		if i < len(t) {
			return t[i]
		}
		return ""
	}
	type kv struct {
		k string
		v any
	}
	var out []kv
	var dtcs []string
	for i, name := range []string{"ignition", "door"} {
		switch get(i) {
		case "":
		case "0", "1":
			out = append(out, kv{name, get(i) == "1"})
		default:
			return false
		}
	}
	for i, name := range []string{"fuel1", "fuel2"} {
		v := get(2 + i)
		if v == "" {
			continue
		}
		if name == "fuel2" && dtc {
			dtcs = append(dtcs, v)
			continue
		}
		n, ok, err := number(name, strings.TrimSuffix(v, "%"))
		if err != nil || !ok {
			return false
		}
		out = append(out, kv{name, n})
	}
	if v := get(4); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return false
		}
		out = append(out, kv{"temp1", n})
	}
	for _, p := range out {
		sig.SetAttr(p.k, p.v)
	}
	obd2.AddDTCs(sig, dtcs...)
	return true
}

// obd decodes imei:<imei>,OBD,yymmddhhmmss,odometer,fuel instant,fuel
// average,hours,speed,load%,coolant,throttle%,rpm,battery,dtcs…
func (s *Session) obd(f []string, frame []byte) (signal.Signal, error) {
	if len(f) < 14 {
		return signal.Signal{}, fmt.Errorf("%w: OBD record of %d fields, want at least 14", plugins.ErrMalformed, len(f))
	}
	ts, ok := localTime(f[2])
	if !ok || len(f[2]) != 12 {
		return signal.Signal{}, fmt.Errorf("%w: OBD time %q is not yymmddhhmmss", plugins.ErrMalformed, clip(f[2]))
	}
	sig := s.newSignal(ts, frame)
	// The report's clock is the device's local time (the zone is not in
	// the record), taken as sent, as Traccar does.
	sig.SetAttr("time_source", "device_local")
	odo, ok, err := number("odometer", f[3])
	if err != nil {
		return signal.Signal{}, err
	}
	if ok {
		sig.Odometer = odo / 1000 // metres, as Traccar reads it
	}
	for _, a := range []struct {
		name, field string
		i           int
	}{{"fuel_instant", "instant fuel", 4}, {"fuel_consumption", "average fuel", 5}, {"engine_hours", "hours", 6}} {
		v, ok, err := number(a.field, f[a.i])
		if err != nil {
			return signal.Signal{}, err
		}
		if ok {
			sig.SetAttr(a.name, v)
		}
	}
	for _, p := range []struct {
		pid   byte
		name  string
		i     int
		empty string // a value that means "none"
	}{
		{0x0D, "speed", 7, ""}, {0x04, "engine load", 8, ""}, {0x05, "coolant", 9, "+"},
		{0x11, "throttle", 10, ""}, {0x0C, "rpm", 11, ""}, {0x42, "battery", 12, ""},
	} {
		raw := strings.TrimSuffix(f[p.i], "%")
		if raw == p.empty || raw == "-" {
			continue
		}
		v, ok, err := number(p.name, raw)
		if err != nil {
			return signal.Signal{}, err
		}
		if !ok {
			continue
		}
		val, err := obd2.Scaled(p.pid, v)
		if err != nil {
			return signal.Signal{}, fmt.Errorf("%w: %s: %v", plugins.ErrMalformed, p.name, err)
		}
		val.Apply(&sig)
	}
	for _, c := range f[13:] {
		for _, code := range strings.Fields(c) {
			obd2.AddDTCs(&sig, code)
		}
	}
	return sig, nil
}
