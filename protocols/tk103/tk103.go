// Package tk103 decodes the TK103 protocol of Xexun/Coban TK102/TK103
// clones and many Chinese trackers: `(` + device id + four-character command
// + data + `)`, in the classic packed form (`(027043709600BR00…)`) and the
// comma-separated form (`(864768011069660,DW30,…)`).
package tk103

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id.
const Name = "tk103"

// Decoder is the TK103 decoder; its zero value is ready to use. It is
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
		DefaultPort: 5002,
		Description: "TK103 and clones: (id + command + data) messages, BP05 login (AP05), BP00 handshake (AP01HSO)",
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
)

// DeviceID is the device seen last on the connection.
func (s *Session) DeviceID() string { return s.dev }

// Frame returns the first message: '(' up to the first ')' that is not
// inside a `$…$` text (command results quote free text that may hold
// parentheses). Line ends between messages are frames of their own.
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	switch buf[0] {
	case '\r', '\n':
		n := 0
		for n < len(buf) && (buf[n] == '\r' || buf[n] == '\n') {
			n++
		}
		return n, nil
	case '(':
	default:
		return 0, fmt.Errorf("framing tk103: %w: byte 0x%02x cannot start a message", plugins.ErrMalformed, buf[0])
	}
	if n := frameEnd(buf, s.cfg.MaxFrame); n > 0 {
		return n, nil
	}
	if len(buf) >= s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing tk103: %w: no ')' within %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
	}
	return 0, nil
}

// frameEnd is the length of the message starting at buf[0] ('('), 0 when
// its end is not within the first limit bytes.
func frameEnd(buf []byte, limit int) int {
	quoted := false
	for i := 1; i < len(buf) && i < limit; i++ {
		switch buf[i] {
		case '$':
			quoted = !quoted
		case ')':
			if !quoted {
				return i + 1
			}
		}
	}
	return 0
}

// Decode decodes one message (a TCP frame or a UDP datagram).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res, err := s.decode(frame, recv)
	if err != nil {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding tk103 message: %w", err)
	}
	res.DeviceID = s.dev
	return res, nil
}

// message is a parsed envelope.
type message struct {
	id, cmd, data string
	comma         bool // the comma-separated form
}

func isCommand(c string) bool {
	if len(c) != 4 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		return false
	}
	for _, b := range []byte(c[2:]) {
		if !(b >= '0' && b <= '9') && !(b >= 'A' && b <= 'Z') {
			return false
		}
	}
	return true
}

// parseEnvelope splits "(<id><cmd><data>)" and "(<id>,<cmd>,<data>)".
func parseEnvelope(body string) (message, error) {
	// Comma form: a numeric id, a comma, the command and a comma.
	if c := strings.IndexByte(body, ','); c > 0 && len(body) > c+5 && body[c+5] == ',' && isCommand(body[c+1:c+5]) && digitsOnly(body[:c]) {
		return message{id: body[:c], cmd: body[c+1 : c+5], data: body[c+6:], comma: true}, nil
	}
	// Classic: a 12-character id (digits or letters) and the command…
	if len(body) >= 16 && isCommand(body[12:16]) {
		return message{id: body[:12], cmd: body[12:16], data: body[16:]}, nil
	}
	// …or a numeric id of another length.
	for i := 0; i < len(body) && i <= 20; i++ {
		if body[i] < '0' || body[i] > '9' {
			if i >= 8 && len(body) >= i+4 && isCommand(body[i:i+4]) {
				return message{id: body[:i], cmd: body[i : i+4], data: body[i+4:]}, nil
			}
			break
		}
	}
	return message{}, fmt.Errorf("%w: no device id and command in %q", plugins.ErrMalformed, clip(body))
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func digitsOnly(v string) bool { return v != "" && strings.Trim(v, "0123456789") == "" }

func (s *Session) decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > s.cfg.MaxFrame {
		return plugins.Result{}, fmt.Errorf("%w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	msg := bytes.TrimRight(frame, "\r\n")
	if len(bytes.TrimLeft(msg, "\r\n")) == 0 {
		return plugins.Result{}, nil
	}
	if msg[0] != '(' || msg[len(msg)-1] != ')' || frameEnd(msg, len(msg)+1) != len(msg) {
		return plugins.Result{}, fmt.Errorf("%w: not one (…) message", plugins.ErrMalformed)
	}
	m, err := parseEnvelope(string(msg[1 : len(msg)-1]))
	if err != nil {
		return plugins.Result{}, err
	}
	if err := s.setDevice(m.id); err != nil {
		return plugins.Result{}, err
	}
	var res plugins.Result
	if !m.comma {
		switch m.cmd {
		case "BP00": // handshake: answered, nothing to store
			return plugins.Result{Ack: []byte("(" + m.id + "AP01HSO)")}, nil
		case "BP05": // login, usually with a position
			res.Ack = []byte("(" + m.id + "AP05)")
		}
	}
	var sig signal.Signal
	switch {
	case m.cmd == "ZC20":
		sig, err = s.battery(m, frame)
	case m.cmd == "BZ00":
		sig, err = s.network(m, frame, recv)
	case m.cmd == "ZC03":
		sig, err = s.commandResult(m, frame)
	case strings.HasPrefix(m.cmd, "DW5"):
		sig, err = s.lbsWifi(m, frame)
	case m.cmd == "BV00":
		sig, err = s.vin(m, frame, recv)
	case m.comma:
		sig, err = s.commaLocation(m, frame)
	default:
		sig, err = s.classicLocation(m, frame, recv)
	}
	if err != nil {
		return plugins.Result{}, err
	}
	sig.Recv = recv
	res.Signals = []signal.Signal{sig}
	return res, nil
}

const maxDeviceID = 32

func (s *Session) setDevice(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty device id", plugins.ErrNoDevice)
	}
	if len(id) > maxDeviceID {
		return fmt.Errorf("%w: device id of %d bytes", plugins.ErrMalformed, len(id))
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9') && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') {
			return fmt.Errorf("%w: device id %q is not alphanumeric", plugins.ErrMalformed, clip(id))
		}
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

func (s *Session) serverSignal(frame []byte, recv time.Time) signal.Signal {
	sig := s.newSignal(s.serverTime(frame, recv), frame)
	sig.SetAttr("time_source", "server")
	return sig
}

// civil builds a UTC time, refusing out-of-range parts.
func civil(y, mo, d, h, mi, sec int) (time.Time, bool) {
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	if t.Year() != y || int(t.Month()) != mo || t.Day() != d || t.Hour() != h || t.Minute() != mi || t.Second() != sec {
		return time.Time{}, false
	}
	return t, true
}

func two(v string, i int) int { n, _ := strconv.Atoi(v[i : i+2]); return n }

// dmyHMS parses the comma form's ddmmyy and hhmmss.
func dmyHMS(date, clock string) (time.Time, error) {
	if len(date) != 6 || !digitsOnly(date) || len(clock) != 6 || !digitsOnly(clock) {
		return time.Time{}, fmt.Errorf("%w: date and time %q %q are not ddmmyy hhmmss", plugins.ErrMalformed, clip(date), clip(clock))
	}
	t, ok := civil(2000+two(date, 4), two(date, 2), two(date, 0), two(clock, 0), two(clock, 2), two(clock, 4))
	if !ok {
		return time.Time{}, fmt.Errorf("%w: date and time %s %s out of range", plugins.ErrMalformed, date, clock)
	}
	return t, nil
}

// coordinate parses (d)ddmm.mmmm followed by its hemisphere letter.
func coordinate(name, v, hemis string, limit float64) (float64, error) {
	v = strings.TrimLeft(v, " ")
	if len(v) < 2 || !strings.ContainsRune(hemis, rune(v[len(v)-1])) {
		return 0, fmt.Errorf("%w: %s %q has no hemisphere", plugins.ErrMalformed, name, clip(v))
	}
	hemi, v := v[len(v)-1], v[:len(v)-1]
	whole, frac, ok := strings.Cut(v, ".")
	if !ok || len(whole) < 2 || !digitsOnly(whole) || !digitsOnly(frac) {
		return 0, fmt.Errorf("%w: %s %q is not (d)ddmm.mmmm", plugins.ErrMalformed, name, clip(v))
	}
	deg := 0
	if len(whole) > 2 {
		deg, _ = strconv.Atoi(whole[:len(whole)-2])
	}
	mins, _ := strconv.ParseFloat(v[len(whole)-2:], 64)
	c := float64(deg) + mins/60
	if mins >= 60 || c > limit {
		return 0, fmt.Errorf("%w: %s %q out of range", plugins.ErrMalformed, name, v)
	}
	if hemi == hemis[1] {
		c = -c
	}
	return c, nil
}

// number parses an optional decimal field: empty is absent.
func number(name, v string) (float64, bool, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return math.NaN(), false, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || strings.ContainsAny(v, "xXpPeEiInN_") {
		return 0, false, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(v))
	}
	return f, true, nil
}

// setFix stores the validity and position; 0,0 without a fix is the
// devices' "no position" marker and stays absent.
func setFix(sig *signal.Signal, valid byte, lat, lon float64) {
	sig.Valid = signal.FlagOf(valid == 'A')
	if valid == 'V' && lat == 0 && lon == 0 {
		return
	}
	sig.Lat, sig.Lon = lat, lon
}

// alarms of the comma form's commands.
var commandAlarms = map[string]string{
	"ZC11": "movement", "DW31": "movement", "DW51": "movement",
	"ZC12": "low_battery", "DW32": "low_battery", "DW52": "low_battery",
	"ZC13": "power_cut", "DW33": "power_cut", "DW53": "power_cut",
	"ZC17": "removing", "DW37": "removing", "DW57": "removing",
	"ZC25": "sos", "DW3E": "sos", "DW5E": "sos",
	"ZC26": "tampering", "DW3F": "tampering", "DW5F": "tampering",
	"ZC27": "low_power", "DW40": "low_power", "DW60": "low_power",
}

var commandIgnition = map[string]bool{
	"ZC15": true, "DW35": true, "DW55": true, "ZC29": true, "DW42": true, "DW62": true,
	"ZC16": false, "DW36": false, "DW56": false,
}

func commandAttrs(sig *signal.Signal, cmd string) {
	sig.SetAttr("command", cmd)
	if a, ok := commandAlarms[cmd]; ok {
		sig.SetAttr("alarm", a)
	}
	if on, ok := commandIgnition[cmd]; ok {
		sig.SetAttr("ignition", on)
	}
}

// commaLocation decodes (<id>,<cmd>,ddmmyy,A|V,lat,lon,speed,hhmmss,course[,…]).
func (s *Session) commaLocation(m message, frame []byte) (signal.Signal, error) {
	f := strings.Split(m.data, ",")
	if len(f) < 7 {
		return signal.Signal{}, fmt.Errorf("%w: %s location of %d fields, want at least 7", plugins.ErrUnsupported, m.cmd, len(f))
	}
	ts, err := dmyHMS(f[0], f[5])
	if err != nil {
		return signal.Signal{}, err
	}
	if f[1] != "A" && f[1] != "V" {
		return signal.Signal{}, fmt.Errorf("%w: validity %q is neither A nor V", plugins.ErrMalformed, clip(f[1]))
	}
	lat, err := coordinate("latitude", f[2], "NS", 90)
	if err != nil {
		return signal.Signal{}, err
	}
	lon, err := coordinate("longitude", f[3], "EW", 180)
	if err != nil {
		return signal.Signal{}, err
	}
	sig := s.newSignal(ts, frame)
	setFix(&sig, f[1][0], lat, lon)
	if sig.Speed, _, err = number("speed", f[4]); err != nil { // km/h
		return signal.Signal{}, err
	}
	if len(f) > 6 {
		if sig.Heading, _, err = number("course", f[6]); err != nil {
			return signal.Signal{}, err
		}
	}
	if len(f) > 7 {
		sig.SetAttr("extra", strings.Join(f[7:], ","))
	}
	commandAttrs(&sig, m.cmd)
	return sig, nil
}

// locationStart finds the packed location block in classic data: six
// date digits, A or V, then a latitude. It returns the index of the date.
func locationStart(d string) int {
	for j := 6; j < len(d); j++ {
		if d[j] != 'A' && d[j] != 'V' {
			continue
		}
		if !digitsOnly(d[j-6 : j]) {
			continue
		}
		k := j + 1
		for k < len(d) && d[k] == ' ' {
			k++
		}
		n := k
		for n < len(d) && d[n] >= '0' && d[n] <= '9' {
			n++
		}
		if n-k >= 2 && n < len(d) && d[n] == '.' {
			return j - 6
		}
	}
	return -1
}

var bo01Alarms = map[byte]string{'1': "accident", '2': "sos", '3': "vibration", '4': "low_speed", '5': "overspeed", '6': "geofence_exit"}

var bq81Alarms = map[string]string{"0": "low_battery", "1": "overspeed", "2": "idle", "3": "acceleration", "4": "braking", "5": "temperature"}

// classicLocation decodes the packed form: [prefix] yymmdd A|V
// ddmm.mmmm N|S dddmm.mmmm E|W speed(≤5) hhmmss course [status] …
func (s *Session) classicLocation(m message, frame []byte, recv time.Time) (signal.Signal, error) {
	d := m.data
	j := locationStart(d)
	if j < 0 {
		if m.cmd == "BP05" {
			// A login without a position: the IMEI and the cells it sees.
			sig := s.serverSignal(frame, recv)
			sig.SetAttr("command", m.cmd)
			imei, rest, _ := strings.Cut(d, ",")
			if digitsOnly(imei) {
				sig.SetAttr("imei", imei)
			}
			if rest != "" {
				sig.SetAttr("extra", rest)
			}
			return sig, nil
		}
		return signal.Signal{}, fmt.Errorf("%w: command %s without a location", plugins.ErrUnsupported, m.cmd)
	}
	prefix, loc := d[:j], d[j:]
	date := loc[:6]
	valid := loc[6]
	rest := strings.TrimLeft(loc[7:], " ")
	i := strings.IndexAny(rest, "NS")
	if i < 0 {
		return signal.Signal{}, fmt.Errorf("%w: latitude without hemisphere", plugins.ErrMalformed)
	}
	lat, err := coordinate("latitude", rest[:i+1], "NS", 90)
	if err != nil {
		return signal.Signal{}, err
	}
	rest = strings.TrimLeft(strings.TrimPrefix(rest[i+1:], ","), " ")
	i = strings.IndexAny(rest, "EW")
	if i < 0 {
		return signal.Signal{}, fmt.Errorf("%w: longitude without hemisphere", plugins.ErrMalformed)
	}
	lon, err := coordinate("longitude", rest[:i+1], "EW", 180)
	if err != nil {
		return signal.Signal{}, err
	}
	rest = strings.TrimPrefix(rest[i+1:], ",")
	// Speed: up to five characters of digits, '.' and spaces, then the
	// time of day; the longest speed that leaves a valid time wins.
	var speed float64
	var clock string
	found := false
	for n := min(5, len(rest)); n >= 1 && !found; n-- {
		sp := rest[:n]
		if strings.Trim(sp, "0123456789. ") != "" || len(rest) < n+6 {
			continue
		}
		v, ok, err := number("speed", sp)
		if err != nil || !ok {
			continue
		}
		c := rest[n : n+6]
		if digitsOnly(c) && two(c, 0) < 24 && two(c, 2) < 60 && two(c, 4) < 60 {
			speed, clock, rest, found = v, c, rest[n+6:], true
		}
	}
	if !found {
		return signal.Signal{}, fmt.Errorf("%w: no speed and time of day after the position", plugins.ErrMalformed)
	}
	ts, ok := civil(2000+two(date, 0), two(date, 2), two(date, 4), two(clock, 0), two(clock, 2), two(clock, 4))
	if !ok {
		return signal.Signal{}, fmt.Errorf("%w: date %s (yymmdd) out of range", plugins.ErrMalformed, date)
	}
	sig := s.newSignal(ts, frame)
	setFix(&sig, valid, lat, lon)
	sig.Speed = speed // km/h
	rest = strings.TrimPrefix(rest, ",")
	// Course: six characters, or a decimal number.
	if len(rest) >= 6 && strings.Trim(rest[:6], "0123456789. ") == "" && strings.Contains(rest[:6], ".") {
		if sig.Heading, _, err = number("course", rest[:6]); err != nil {
			return signal.Signal{}, err
		}
		rest = rest[6:]
	} else {
		n := 0
		for n < len(rest) && (rest[n] >= '0' && rest[n] <= '9' || rest[n] == '.') {
			n++
		}
		if n > 0 {
			if sig.Heading, _, err = number("course", rest[:n]); err != nil {
				return signal.Signal{}, err
			}
			rest = rest[n:]
		}
	}
	rest = strings.TrimPrefix(rest, ",")
	if status(&sig, rest) {
		rest = rest[strings.IndexByte(rest, 'L'):]
		n := 1
		for n < len(rest) && isHexDigit(rest[n]) {
			n++
		}
		rest = rest[n:]
	}
	if rest != "" {
		sig.SetAttr("extra", rest)
	}
	sig.SetAttr("command", m.cmd)
	switch m.cmd {
	case "BO01":
		if prefix == "" {
			return signal.Signal{}, fmt.Errorf("%w: BO01 without an alarm type", plugins.ErrMalformed)
		}
		if a, ok := bo01Alarms[prefix[0]]; ok {
			sig.SetAttr("alarm", a)
		} else {
			sig.SetAttr("alarm_code", prefix[:1])
		}
	case "BQ81":
		if f := strings.Split(prefix, ","); len(f) >= 3 && f[1] == "ALARM" {
			if a, ok := bq81Alarms[f[2]]; ok {
				sig.SetAttr("alarm", a)
			} else {
				sig.SetAttr("alarm_code", f[2])
			}
		}
	case "BP05":
		if digitsOnly(prefix) {
			sig.SetAttr("imei", prefix)
		}
	default:
		if prefix != "" {
			sig.SetAttr("data", prefix)
		}
	}
	return sig, nil
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f'
}

// status decodes the eight status characters and the odometer that follow
// the course in BR00/BP05 records: charge, ignition, three hex masks
// (inputs, outputs, door, sensors), three hex digits of fuel, then 'L'
// and the odometer in hex metres. false when rest does not have that form.
func status(sig *signal.Signal, rest string) bool {
	if len(rest) < 10 || rest[8] != 'L' || !isHexDigit(rest[9]) {
		return false
	}
	st := rest[:8]
	if (st[0] != '0' && st[0] != '1') || (st[1] != '0' && st[1] != '1') {
		return false
	}
	for i := 2; i < 8; i++ {
		if !isHexDigit(st[i]) {
			return false
		}
	}
	n := 9
	for n < len(rest) && isHexDigit(rest[n]) {
		n++
	}
	odo, err := strconv.ParseUint(rest[9:n], 16, 64)
	if err != nil {
		return false
	}
	h := func(c byte) uint64 { v, _ := strconv.ParseUint(string(c), 16, 8); return v }
	m1, m2 := h(st[2]), h(st[3])
	fuel, _ := strconv.ParseUint(st[5:8], 16, 16)
	sig.SetAttr("charge", st[0] == '0')
	sig.SetAttr("ignition", st[1] == '1')
	sig.SetAttr("in2", m1&1 != 0)
	sig.SetAttr("panic", m1&2 != 0)
	sig.SetAttr("out2", m1&4 != 0)
	sig.SetAttr("blocked", m1&8 != 0)
	sig.SetAttr("door", m2&8 != 0)
	sig.SetAttr("io", st[2:5])
	sig.SetAttr("fuel_level", int64(fuel))
	sig.Odometer = float64(odo) / 1000
	return true
}

// battery decodes (<id>,ZC20,ddmmyy,hhmmss,level,battery,power,installed).
func (s *Session) battery(m message, frame []byte) (signal.Signal, error) {
	f := strings.Split(m.data, ",")
	if len(f) < 5 {
		return signal.Signal{}, fmt.Errorf("%w: ZC20 of %d fields, want at least 5", plugins.ErrMalformed, len(f))
	}
	ts, err := dmyHMS(f[0], f[1])
	if err != nil {
		return signal.Signal{}, err
	}
	sig := s.newSignal(ts, frame)
	sig.SetAttr("command", m.cmd)
	ints := make([]int64, 3)
	for i, name := range []string{"battery level", "battery voltage", "power voltage"} {
		v, err := strconv.ParseInt(f[2+i], 10, 32)
		if err != nil || v < 0 {
			return signal.Signal{}, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(f[2+i]))
		}
		ints[i] = v
	}
	if lvl, ok := map[int64]int64{6: 100, 5: 80, 4: 50, 3: 20, 2: 10}[ints[0]]; ok {
		sig.SetAttr("battery_level", lvl)
	} else if ints[0] != 255 {
		sig.SetAttr("battery_level_code", ints[0])
	}
	if ints[1] != 65535 {
		sig.SetAttr("battery_v", float64(ints[1])/100)
	}
	if ints[2] != 65535 {
		sig.Voltage = float64(ints[2]) / 10
	}
	return sig, nil
}

// network decodes (<id>BZ00,mcc,mnc,lac,cid,…): cells in hex, no time.
func (s *Session) network(m message, frame []byte, recv time.Time) (signal.Signal, error) {
	f := strings.Split(strings.TrimPrefix(m.data, ","), ",")
	if len(f) < 4 {
		return signal.Signal{}, fmt.Errorf("%w: BZ00 of %d fields, want at least 4", plugins.ErrMalformed, len(f))
	}
	sig := s.serverSignal(frame, recv)
	sig.SetAttr("command", m.cmd)
	for i, name := range []string{"mcc", "mnc", "lac", "cid"} {
		base := 10
		if i >= 2 {
			base = 16
		}
		v, err := strconv.ParseUint(f[i], base, 32)
		if err != nil {
			return signal.Signal{}, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(f[i]))
		}
		sig.SetAttr(name, int64(v))
	}
	if len(f) > 4 {
		sig.SetAttr("extra", strings.Join(f[4:], ","))
	}
	return sig, nil
}

// commandResult decodes (<id>,ZC03,ddmmyy,hhmmss,$text$).
func (s *Session) commandResult(m message, frame []byte) (signal.Signal, error) {
	f := strings.SplitN(m.data, ",", 3)
	if len(f) < 3 {
		return signal.Signal{}, fmt.Errorf("%w: ZC03 of %d fields, want 3", plugins.ErrMalformed, len(f))
	}
	ts, err := dmyHMS(f[0], f[1])
	if err != nil {
		return signal.Signal{}, err
	}
	sig := s.newSignal(ts, frame)
	sig.SetAttr("command", m.cmd)
	sig.SetAttr("result", strings.Trim(f[2], "$"))
	return sig, nil
}

// lbsWifi decodes (<id>,DW5x,mcc,mnc,lac,cid,n,(mac*rssi*x,)…ddmmyy,hhmmss).
func (s *Session) lbsWifi(m message, frame []byte) (signal.Signal, error) {
	f := strings.Split(m.data, ",")
	if len(f) < 7 {
		return signal.Signal{}, fmt.Errorf("%w: %s of %d fields, want at least 7", plugins.ErrMalformed, m.cmd, len(f))
	}
	ts, err := dmyHMS(f[len(f)-2], f[len(f)-1])
	if err != nil {
		return signal.Signal{}, err
	}
	sig := s.newSignal(ts, frame)
	commandAttrs(&sig, m.cmd)
	for i, name := range []string{"mcc", "mnc", "lac", "cid", "wifi_count"} {
		v, err := strconv.ParseUint(f[i], 10, 32)
		if err != nil {
			return signal.Signal{}, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(f[i]))
		}
		sig.SetAttr(name, int64(v))
	}
	if aps := f[5 : len(f)-2]; len(aps) > 0 {
		sig.SetAttr("wifi", strings.Join(aps, ","))
	}
	return sig, nil
}

// vin decodes (<id>BV00<17-character VIN>).
func (s *Session) vin(m message, frame []byte, recv time.Time) (signal.Signal, error) {
	if len(m.data) != 17 {
		return signal.Signal{}, fmt.Errorf("%w: VIN of %d characters, want 17", plugins.ErrMalformed, len(m.data))
	}
	sig := s.serverSignal(frame, recv)
	sig.SetAttr("command", m.cmd)
	sig.SetAttr("vin", m.data)
	return sig, nil
}
