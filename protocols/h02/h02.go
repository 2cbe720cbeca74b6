// Package h02 decodes the H02 protocol of Sinotrack ST-901/ST-906 and the
// many H02-compatible trackers: text messages `*HQ,<id>,<type>,...#` and
// fixed-length binary position records starting with '$'.
package h02

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id.
const Name = "h02"

// knotKMH converts knots (the unit of H02 speeds) to km/h.
const knotKMH = 1.852

// Binary record lengths seen from H02 devices: 32 (the original short
// record), 42 (15-digit id), 45 (with extra LBS/alarm bytes) and the
// vendor variants 46 and 48.
var binaryLengths = []int{32, 42, 45, 46, 48}

const (
	minBinary = 32
	maxBinary = 48
)

// Decoder is the H02 decoder; its zero value is ready to use. It is shared
// by every session of every H02 listener: it remembers the receive time it
// gave each record without a device time, so that a resend of the message
// gets the same time and key (see plugins.ServerTimes).
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
		DefaultPort: 5013,
		Description: "H02 (Sinotrack and compatibles): *HQ text messages and $ binary records",
		Options:     []plugins.Option{optBinaryLength, optAck},
	}
}

// The listener options (see NewSession).
var (
	optBinaryLength = plugins.IntOption{
		Name: "binary_length", Min: minBinary, Max: 1024, NoDefault: "auto-detect",
		Doc: "the length of `$` binary records on this listener (32, 42, 45, …)",
	}
	optAck = plugins.EnumOption{
		Name: "ack", Default: "on", Values: []string{"on", "off"},
		Doc: "`off` sends no replies; `on` replies as Traccar and the vendor servers do, after durability",
	}
)

// NewSession starts a connection. Listener options:
//   - binary_length: the length of '$' records on this listener (32, 42,
//     45, …); default auto-detection (see README).
//   - ack: "off" to send no replies (default on: replies as Traccar and the
//     vendor servers send them, after durability).
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 10
	}
	s := &Session{dec: d, cfg: cfg, ack: optAck.Get(cfg.Options) == "on"}
	if v, ok := optBinaryLength.Lookup(cfg.Options); ok {
		s.binLen, s.binFixed = v, true
	}
	return s
}

// Session is one connection.
type Session struct {
	dec      *Decoder
	cfg      plugins.SessionConfig
	ack      bool
	binLen   int  // binary record length, configured or learned
	binFixed bool // binLen was configured
	dev      string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID is the device seen last on the connection.
func (s *Session) DeviceID() string { return s.dev }

// Frame frames TCP input: a text message up to and including '#', a
// binary record by its length, and line ends between messages as frames of
// their own (they decode to nothing).
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	switch buf[0] {
	case '*':
		limit := buf
		if len(limit) > s.cfg.MaxFrame {
			limit = limit[:s.cfg.MaxFrame]
		}
		if i := bytes.IndexByte(limit, '#'); i >= 0 {
			return i + 1, nil
		}
		if len(buf) >= s.cfg.MaxFrame {
			return 0, fmt.Errorf("framing h02 text: %w: no '#' within %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
		}
		return 0, nil
	case '$':
		return s.frameBinary(buf)
	case 'X':
		if len(buf) < minBinary {
			return 0, nil
		}
		return minBinary, nil
	case '\r', '\n':
		n := 0
		for n < len(buf) && (buf[n] == '\r' || buf[n] == '\n') {
			n++
		}
		return n, nil
	}
	return 0, fmt.Errorf("framing h02: %w: byte 0x%02x cannot start a message", plugins.ErrMalformed, buf[0])
}

// frameBinary finds the length of a '$' record. A configured or learned
// length wins. Otherwise: a known length followed by the start of another
// message is certain (and learned for the connection); a buffer that holds
// exactly a known length is taken as one record (a device writes one record
// per packet); a shorter buffer waits for more.
func (s *Session) frameBinary(buf []byte) (int, error) {
	if s.binLen > 0 {
		if len(buf) < s.binLen {
			return 0, nil
		}
		return s.binLen, nil
	}
	for _, l := range binaryLengths {
		if len(buf) > l && startsMessage(buf[l:]) {
			s.binLen = l
			return l, nil
		}
	}
	for _, l := range binaryLengths {
		if len(buf) == l {
			return l, nil
		}
	}
	if len(buf) < maxBinary {
		return 0, nil
	}
	return 0, fmt.Errorf("framing h02 binary: %w: no known record length fits (set the binary_length option)", plugins.ErrMalformed)
}

// startsMessage reports whether b certainly starts an H02 message: "*XX,"
// or '$' followed by six BCD bytes (device id and hour). Too few bytes to
// tell is not evidence.
func startsMessage(b []byte) bool {
	switch {
	case b[0] == '*':
		return len(b) >= 4 && b[3] == ','
	case b[0] == '$':
		if len(b) < 7 {
			return false
		}
		for _, c := range b[1:7] {
			if !bcdOK(c) {
				return false
			}
		}
		return true
	}
	return false
}

// Decode decodes one message (a TCP frame or a UDP datagram).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > s.cfg.MaxFrame {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding h02 message: %w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	if len(frame) == 0 || len(bytes.Trim(frame, "\r\n")) == 0 {
		return plugins.Result{DeviceID: s.dev}, nil
	}
	var (
		res plugins.Result
		err error
	)
	switch frame[0] {
	case '*':
		res, err = s.decodeText(frame, recv)
	case '$':
		res, err = s.decodeBinary(frame, recv)
	case 'X':
		err = fmt.Errorf("%w: 'X' record (undocumented, not decoded)", plugins.ErrUnsupported)
	default:
		err = fmt.Errorf("%w: byte 0x%02x cannot start a message", plugins.ErrMalformed, frame[0])
	}
	if err != nil {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding h02 message: %w", err)
	}
	return res, nil
}

// maxDeviceID bounds a device id (the text id of an H02 message): the
// longest real ids are 15-digit IMEIs, and the store caps ids at 128 bytes.
const maxDeviceID = 128

func (s *Session) setDevice(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty device id", plugins.ErrNoDevice)
	}
	if len(id) > maxDeviceID {
		return fmt.Errorf("%w: device id of %d bytes, at most %d", plugins.ErrMalformed, len(id), maxDeviceID)
	}
	if id != s.dev && s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(id) {
		return fmt.Errorf("%w: %s", plugins.ErrUnauthorized, id)
	}
	s.dev = id
	return nil
}

func (s *Session) newSignal(ts time.Time, frame []byte, recv time.Time) signal.Signal {
	sig := signal.New(s.dev, ts)
	sig.Recv = recv
	sig.Protocol = Name
	sig.Frame = append([]byte(nil), frame...)
	return sig
}

// ---- binary ----

func bcdOK(b byte) bool { return b>>4 <= 9 && b&0xF <= 9 }

// bcd reads n digits starting at digit offset d (two digits per byte).
func bcd(b []byte, d, n int) (int, bool) {
	v := 0
	for i := d; i < d+n; i++ {
		x := b[i/2]
		if i%2 == 0 {
			x >>= 4
		} else {
			x &= 0xF
		}
		if x > 9 {
			return 0, false
		}
		v = v*10 + int(x)
	}
	return v, true
}

func (s *Session) decodeBinary(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) < minBinary {
		return plugins.Result{}, fmt.Errorf("%w: binary record of %d bytes, at least %d", plugins.ErrMalformed, len(frame), minBinary)
	}
	if s.binFixed && len(frame) != s.binLen {
		return plugins.Result{}, fmt.Errorf("%w: binary record of %d bytes, listener expects %d", plugins.ErrMalformed, len(frame), s.binLen)
	}
	idLen := 5
	if len(frame) == 42 {
		idLen = 8
	}
	idHex := hex.EncodeToString(frame[1 : 1+idLen])
	for _, c := range frame[1 : 1+idLen] {
		if !bcdOK(c) && idLen == 5 {
			return plugins.Result{}, fmt.Errorf("%w: device id %s is not BCD", plugins.ErrMalformed, idHex)
		}
	}
	if idLen == 8 {
		idHex = idHex[:15]
	}
	if err := s.setDevice(idHex); err != nil {
		return plugins.Result{}, err
	}
	b := frame[1+idLen:]
	// Digit offsets into b: time hhmmss 0–5, date ddmmyy 6–11, latitude
	// DDMMmmmm 12–19, battery byte 10, longitude DDDMMmmmm 22–30, flags
	// nibble 31, speed 32–34, course 35–37, status bytes 19–22.
	var vals [10]int
	for i, f := range [][2]int{{0, 2}, {2, 2}, {4, 2}, {6, 2}, {8, 2}, {10, 2}, {12, 8}, {22, 9}, {32, 3}, {35, 3}} {
		v, ok := bcd(b, f[0], f[1])
		if !ok {
			return plugins.Result{}, fmt.Errorf("%w: binary record field at digit %d is not BCD", plugins.ErrMalformed, f[0])
		}
		vals[i] = v
	}
	hh, mi, ss, dd, mo, yy := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
	ts, ok := makeTime(yy, mo, dd, hh, mi, ss)
	if !ok {
		return plugins.Result{}, fmt.Errorf("%w: binary record time %02d%02d%02d %02d%02d%02d", plugins.ErrMalformed, dd, mo, yy, hh, mi, ss)
	}
	lat := float64(vals[6]/1000000) + float64(vals[6]%1000000)/10000/60
	lon := float64(vals[7]/1000000) + float64(vals[7]%1000000)/10000/60
	flags := b[15] & 0x0F
	if flags&0x04 == 0 {
		lat = -lat
	}
	if flags&0x08 == 0 {
		lon = -lon
	}
	sig := s.newSignal(ts, frame, recv)
	sig.Lat, sig.Lon = lat, lon
	sig.Valid = signal.FlagOf(flags&0x02 != 0)
	sig.Speed = float64(vals[8]) * knotKMH
	sig.Heading = float64(vals[9])
	if lvl, ok := batteryLevel(b[10]); ok {
		sig.SetAttr("battery_level", lvl)
	}
	status := uint32(b[19])<<24 | uint32(b[20])<<16 | uint32(b[21])<<8 | uint32(b[22])
	setStatus(&sig, status)
	if extra := b[23:]; len(extra) > 0 {
		sig.SetAttr("extra", hex.EncodeToString(extra))
	}
	return plugins.Result{Signals: []signal.Signal{sig}, DeviceID: s.dev}, nil
}

// batteryLevel decodes the binary battery byte as Traccar does: 1–3 and
// 4–6 are coarse steps, 7–100 a percentage, 0xF1–0xF6 a 1–6 scale.
func batteryLevel(v byte) (int64, bool) {
	switch {
	case v == 0:
		return 0, false
	case v <= 3:
		return int64(v-1) * 10, true
	case v <= 6:
		return int64(v-1) * 20, true
	case v <= 100:
		return int64(v), true
	case v >= 0xF1 && v <= 0xF6:
		return int64(v - 0xF0), true
	}
	return 0, false
}

// setStatus records the status word (bits are active low) and what it
// says: ignition (bit 10 set) and the highest-priority alarm.
func setStatus(sig *signal.Signal, status uint32) {
	sig.SetAttr("status", int64(status))
	sig.SetAttr("ignition", status&(1<<10) != 0)
	bit := func(n uint) bool { return status&(1<<n) != 0 }
	switch {
	case !bit(0):
		sig.SetAttr("alarm", "vibration")
	case !bit(1) || !bit(18):
		sig.SetAttr("alarm", "sos")
	case !bit(2):
		sig.SetAttr("alarm", "overspeed")
	case !bit(19):
		sig.SetAttr("alarm", "power_cut")
	}
}

func makeTime(yy, mo, dd, hh, mi, ss int) (time.Time, bool) {
	if mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 59 {
		return time.Time{}, false
	}
	t := time.Date(2000+yy, time.Month(mo), dd, hh, mi, ss, 0, time.UTC)
	if t.Day() != dd {
		return time.Time{}, false
	}
	return t, true
}

// ---- text ----

func (s *Session) decodeText(frame []byte, recv time.Time) (plugins.Result, error) {
	text := string(bytes.TrimRight(frame, "\r\n"))
	if !strings.HasSuffix(text, "#") {
		return plugins.Result{}, fmt.Errorf("%w: text message without '#'", plugins.ErrMalformed)
	}
	body := text[1 : len(text)-1]
	f := strings.Split(body, ",")
	if len(f) < 3 || len(f[0]) != 2 {
		return plugins.Result{}, fmt.Errorf("%w: text message %q is not *XX,ID,TYPE,...#", plugins.ErrMalformed, truncate(text))
	}
	id, typ := strings.TrimSpace(f[1]), f[2]
	if id == "" && s.dev != "" {
		id = s.dev
	}
	if err := s.setDevice(id); err != nil {
		return plugins.Result{}, err
	}
	res := plugins.Result{DeviceID: s.dev}
	var sigs []signal.Signal
	var err error
	switch {
	case typ == "":
		return res, nil
	case typ == "HTBT" || typ == "V0":
		sigs, err = s.heartbeat(f, frame, recv)
		if s.ack {
			res.Ack = []byte("*HQ," + id + "," + typ + "#")
		}
	case typ == "NBR":
		sigs, err = s.lbs(f, frame, recv)
		if s.ack {
			res.Ack = []byte("*HQ," + id + ",V4,NBR," + recv.UTC().Format("20060102150405") + "#")
		}
	case typ == "LINK":
		sigs, err = s.link(f, frame, recv)
	case typ == "V3":
		sigs, err = s.v3(f, frame, recv)
	case strings.EqualFold(typ, "VP1"):
		sigs, err = s.vp1(f, frame, recv)
	case typ == "SMS":
		sig := s.newSignal(s.serverTime(frame, recv), frame, recv)
		sig.SetAttr("type", typ)
		sig.SetAttr("result", strings.Join(f[3:], ","))
		sigs = []signal.Signal{sig}
	case strings.HasPrefix(typ, "V"):
		sigs, err = s.position(f, frame, recv)
		if err == nil && typ == "V1" && s.ack {
			res.Ack = []byte("*HQ," + id + ",V4,V1," + recv.UTC().Format("20060102150405") + "#")
		}
	default:
		sigs, err = s.other(f, frame, recv)
	}
	if err != nil {
		return plugins.Result{}, err
	}
	res.Signals = sigs
	return res, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func isDigits(s string, n int) bool {
	if n > 0 && len(s) != n || s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if n > 0 && len(s) != n || s == "" {
		return false
	}
	_, err := strconv.ParseUint(s, 16, 64)
	return err == nil
}

// textTime combines hhmmss and ddmmyy; ok is false when either is missing
// or invalid.
func textTime(hms, dmy string) (time.Time, bool) {
	if !isDigits(hms, 6) || !isDigits(dmy, 6) {
		return time.Time{}, false
	}
	n := func(s string, i int) int { v, _ := strconv.Atoi(s[i : i+2]); return v }
	return makeTime(n(dmy, 4), n(dmy, 2), n(dmy, 0), n(hms, 0), n(hms, 2), n(hms, 4))
}

// coordinateField parses a coordinate field and its hemisphere: absent
// (ok false, no error) when the value is empty, or zero with no hemisphere
// letter (what devices without a fix send: "0.0000,0"); an error naming the
// field when it does not parse or is beyond limit degrees.
func coordinateField(name, v, hemi string, limit float64) (c float64, ok bool, err error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false, nil
	}
	if c, ok := coordinate(v, hemi); ok {
		if math.Abs(c) > limit {
			return 0, false, fmt.Errorf("%w: %s %s,%s is beyond ±%g°", plugins.ErrMalformed, name, v, hemi, limit)
		}
		return c, true, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f == 0 && hemi != "N" && hemi != "S" && hemi != "E" && hemi != "W" {
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("%w: %s %q,%q is not a coordinate", plugins.ErrMalformed, name, v, hemi)
}

// numberField parses an optional number: absent when empty, an error
// naming the field when it does not parse.
func numberField(name, v string) (float64, bool, error) {
	if strings.TrimSpace(v) == "" {
		return 0, false, nil
	}
	f, ok := parseNum(v)
	if !ok {
		return 0, false, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, v)
	}
	return f, true, nil
}

// intAttr sets an optional integer attribute: absent when empty, an error
// naming the field when it is not an integer.
func intAttr(sig *signal.Signal, name, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not an integer", plugins.ErrMalformed, name, v)
	}
	sig.SetAttr(name, i)
	return nil
}

// coordinate parses the H02 coordinate forms: DDDMM.mmmm, DDDMMmmmm
// (no point, four fraction digits) and -DD-MM.mmmm, with its hemisphere.
func coordinate(v, hemi string) (float64, bool) {
	v = strings.TrimSpace(v)
	neg := hemi == "S" || hemi == "W"
	if hemi != "N" && hemi != "S" && hemi != "E" && hemi != "W" || v == "" {
		return 0, false
	}
	var deg, min float64
	if strings.HasPrefix(v, "-") {
		d, m, ok := strings.Cut(v[1:], "-")
		if !ok {
			return 0, false
		}
		di, err1 := strconv.Atoi(d)
		mf, err2 := strconv.ParseFloat(m, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		deg, min = float64(di), mf
	} else {
		intPart, frac, hasPoint := strings.Cut(v, ".")
		if !hasPoint {
			if len(intPart) < 7 || !isDigits(intPart, 0) {
				return 0, false
			}
			intPart, frac = intPart[:len(intPart)-4], intPart[len(intPart)-4:]
		}
		if !isDigits(intPart, 0) || frac != "" && !isDigits(frac, 0) {
			return 0, false
		}
		if len(intPart) < 2 {
			intPart = "0" + intPart
		}
		d := intPart[:len(intPart)-2]
		if d == "" {
			d = "0"
		}
		di, _ := strconv.Atoi(d)
		mf, err := strconv.ParseFloat(intPart[len(intPart)-2:]+"."+frac+"0", 64)
		if err != nil {
			return 0, false
		}
		deg, min = float64(di), mf
	}
	if min >= 60 {
		return 0, false
	}
	c := deg + min/60
	if neg {
		c = -c
	}
	return c, true
}

func parseNum(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// position decodes the V-family position messages (V1, V2, V4, V5, V6, V8,
// V19, VI1, …):
//
//	*HQ,ID,V1,hhmmss,A,lat,N,lon,E,speed,course[,battery],ddmmyy[,sim,sim,sim],status[,...]#
//
// V4 (a command response) carries the command and its arguments before the
// time.
func (s *Session) position(f []string, frame []byte, recv time.Time) ([]signal.Signal, error) {
	i := 4 // index of the validity field
	if f[2] == "V4" {
		i = -1
		for j := 5; j+4 < len(f); j++ {
			if (f[j+2] == "N" || f[j+2] == "S") && (f[j+4] == "E" || f[j+4] == "W") {
				i = j
				break
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("%w: V4 message without a position", plugins.ErrMalformed)
		}
	}
	if len(f) < i+7 {
		return nil, fmt.Errorf("%w: %s message has %d fields, want at least %d", plugins.ErrMalformed, f[2], len(f), i+7)
	}
	sig := s.newSignal(time.Time{}, frame, recv)
	sig.SetAttr("type", f[2])
	if f[2] == "V4" {
		sig.SetAttr("result", strings.Join(f[3:i-1], ","))
	}
	hms := f[i-1]
	switch v := f[i]; {
	case v == "A":
		sig.Valid = signal.True
	case v == "V" || v == "B" || v == "":
		sig.Valid = signal.False
	case isDigits(v, 0):
		sig.Valid = signal.True // a coding scheme number instead of A/V
	default:
		return nil, fmt.Errorf("%w: %s validity %q is not A, V, B or a number", plugins.ErrMalformed, f[2], v)
	}
	lat, okLat, err := coordinateField("latitude", f[i+1], f[i+2], 90)
	if err != nil {
		return nil, err
	}
	lon, okLon, err := coordinateField("longitude", f[i+3], f[i+4], 180)
	if err != nil {
		return nil, err
	}
	if okLat != okLon {
		return nil, fmt.Errorf("%w: %s has a latitude or a longitude, not both (%s,%s %s,%s)", plugins.ErrMalformed, f[2], f[i+1], f[i+2], f[i+3], f[i+4])
	}
	if okLat {
		sig.Lat, sig.Lon = lat, lon
	}
	if v, ok, err := numberField("speed", f[i+5]); err != nil {
		return nil, err
	} else if ok {
		sig.Speed = v * knotKMH
	}
	if v, ok, err := numberField("course", f[i+6]); err != nil {
		return nil, err
	} else if ok {
		sig.Heading = v
	}
	// Then: [battery,] date, [three SIM fields,] status, tail.
	k := i + 7
	if k+1 < len(f) && !isDigits(f[k], 6) && isDigits(f[k+1], 6) {
		if err := intAttr(&sig, "battery_level", f[k]); err != nil {
			return nil, err
		}
		k++
	}
	dmy := ""
	switch {
	case k < len(f) && (isDigits(f[k], 6) || f[k] == ""):
		dmy = f[k]
		k++
	case k < len(f) && isDigits(f[k], 0) && !isHex(f[k], 8):
		// Digits where the date belongs, but not six of them (eight would
		// be a status word with no date before it).
		return nil, fmt.Errorf("%w: %s date %q is not ddmmyy", plugins.ErrMalformed, f[2], f[k])
	}
	// Without a fix devices send empty or zero time fields.
	if err := s.deviceTime(&sig, hms, dmy, frame, recv); err != nil {
		return nil, err
	}
	if k < len(f) && !isHex(f[k], 8) && k+3 < len(f) && isHex(f[k+3], 8) {
		sig.SetAttr("sim_info", strings.Join(f[k:k+3], ","))
		k += 3
	}
	if k < len(f) && isHex(f[k], 8) {
		st, _ := strconv.ParseUint(f[k], 16, 32)
		setStatus(&sig, uint32(st))
		k++
		tail := f[k:]
		if ext, ok := parseExtendedTail(tail); ok {
			sig.Odometer = ext.odometer / 1000 // meters
			sig.SetAttr("temp1", ext.temp)
			sig.SetAttr("fuel_level", ext.fuel)
			sig.Alt = float64(ext.alt)
			sig.SetAttr("lac", int64(ext.lac))
			sig.SetAttr("cid", int64(ext.cid))
		} else {
			for j, v := range tail {
				sig.SetAttr("io"+strconv.Itoa(j+1), strings.TrimSpace(v))
			}
		}
	} else if k < len(f) {
		for j, v := range f[k:] {
			sig.SetAttr("io"+strconv.Itoa(j+1), strings.TrimSpace(v))
		}
	}
	if !s.hasContent(&sig) {
		return nil, nil
	}
	return []signal.Signal{sig}, nil
}

var extendedPattern = [6]*regexp.Regexp{
	regexp.MustCompile(`^\d+$`), regexp.MustCompile(`^-?\d+$`), regexp.MustCompile(`^\d+\.\d+$`),
	regexp.MustCompile(`^-?\d+$`), regexp.MustCompile(`^[0-9A-Fa-f]+$`), regexp.MustCompile(`^[0-9A-Fa-f]+$`),
}

type extended struct {
	odometer, fuel float64
	temp, alt      int64
	lac, cid       uint64
}

// parseExtendedTail reads the fields after the status when they are
// odometer,temperature,fuel,altitude,lac,cid; ok is false for any other
// tail (kept as io fields), including numbers too large for their field.
func parseExtendedTail(t []string) (e extended, ok bool) {
	if len(t) != len(extendedPattern) {
		return e, false
	}
	for i, re := range extendedPattern {
		if !re.MatchString(t[i]) {
			return e, false
		}
	}
	var errs [6]error
	e.odometer, errs[0] = strconv.ParseFloat(t[0], 64)
	e.temp, errs[1] = strconv.ParseInt(t[1], 10, 32)
	e.fuel, errs[2] = strconv.ParseFloat(t[2], 64)
	e.alt, errs[3] = strconv.ParseInt(t[3], 10, 32)
	e.lac, errs[4] = strconv.ParseUint(t[4], 16, 32)
	e.cid, errs[5] = strconv.ParseUint(t[5], 16, 32)
	for _, err := range errs {
		if err != nil {
			return e, false
		}
	}
	if math.IsInf(e.odometer, 0) || math.IsInf(e.fuel, 0) {
		return e, false
	}
	return e, true
}

// hasContent is false for a record with neither a position nor a status:
// nothing to store.
func (s *Session) hasContent(sig *signal.Signal) bool {
	return !math.IsNaN(sig.Lat) || len(sig.Attrs) > 1
}

func (s *Session) heartbeat(f []string, frame []byte, recv time.Time) ([]signal.Signal, error) {
	if len(f) < 4 || strings.TrimSpace(f[3]) == "" {
		return nil, nil // a bare heartbeat: nothing to store
	}
	lvl, err := strconv.Atoi(strings.TrimSpace(f[3]))
	if err != nil {
		return nil, fmt.Errorf("%w: heartbeat battery %q", plugins.ErrMalformed, f[3])
	}
	sig := s.newSignal(s.serverTime(frame, recv), frame, recv)
	sig.SetAttr("type", f[2])
	sig.SetAttr("battery_level", lvl)
	return []signal.Signal{sig}, nil
}

type cell struct {
	LAC  int64 `json:"lac"`
	CID  int64 `json:"cid"`
	RSSI int64 `json:"rssi"`
}

func cellsAttr(cells []cell) string {
	b, _ := json.Marshal(cells)
	return string(b)
}

// deviceTime is hhmmss+ddmmyy when valid. A time field that is not empty
// and not six digits does not parse: the message is malformed. Empty
// fields (no fix yet) and six digits that make no time (all zeros since
// boot, seconds past 59 from some firmware) give the server time instead,
// and the record says so (attr time_source "server", the raw fields in
// device_time): the message's other data is still worth keeping.
func (s *Session) deviceTime(sig *signal.Signal, hms, dmy string, frame []byte, recv time.Time) error {
	if ts, ok := textTime(hms, dmy); ok {
		sig.TS = ts
		return nil
	}
	if hms != "" && !isDigits(hms, 6) {
		return fmt.Errorf("%w: time %q is not hhmmss", plugins.ErrMalformed, hms)
	}
	if dmy != "" && !isDigits(dmy, 6) {
		return fmt.Errorf("%w: date %q is not ddmmyy", plugins.ErrMalformed, dmy)
	}
	sig.TS = s.serverTime(frame, recv)
	sig.SetAttr("time_source", "server")
	if raw := strings.TrimSpace(hms + " " + dmy); raw != "" {
		sig.SetAttr("device_time", raw)
	}
	return nil
}

// serverTime is the time of a record that has none of its own: the receive
// time to the second, or, for a resend of the same message within the
// resend window, the time its first copy got. H02 messages carry no
// sequence number: an identical message within the window is taken as a
// resend (README "Resends").
func (s *Session) serverTime(frame []byte, recv time.Time) time.Time {
	return s.dec.times.Stamp(s.dev, bytes.TrimRight(frame, "\r\n"), recv.UTC().Truncate(time.Second))
}

// lbs decodes NBR: *HQ,ID,NBR,hhmmss,mcc,mnc,delay,count,(lac,cid,rssi)*,ddmmyy,status[,...]#
func (s *Session) lbs(f []string, frame []byte, recv time.Time) ([]signal.Signal, error) {
	if len(f) < 10 {
		return nil, fmt.Errorf("%w: NBR message has %d fields", plugins.ErrMalformed, len(f))
	}
	count, err := strconv.Atoi(f[7])
	if err != nil || count < 0 || count > len(f) || 8+3*count+1 >= len(f) {
		return nil, fmt.Errorf("%w: NBR cell count %q", plugins.ErrMalformed, f[7])
	}
	var cells []cell
	for j := range count {
		c := f[8+3*j : 11+3*j]
		lac, e1 := strconv.ParseInt(c[0], 10, 64)
		cid, e2 := strconv.ParseInt(c[1], 10, 64)
		rssi, e3 := strconv.ParseInt(c[2], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			return nil, fmt.Errorf("%w: NBR cell %q", plugins.ErrMalformed, strings.Join(c, ","))
		}
		cells = append(cells, cell{lac, cid, rssi})
	}
	k := 8 + 3*count
	sig := s.newSignal(time.Time{}, frame, recv)
	if err := s.deviceTime(&sig, f[3], f[k], frame, recv); err != nil {
		return nil, err
	}
	sig.SetAttr("type", "NBR")
	for _, a := range [][2]string{{"mcc", f[4]}, {"mnc", f[5]}} {
		if err := intAttr(&sig, a[0], a[1]); err != nil {
			return nil, err
		}
	}
	sig.SetAttr("cells", cellsAttr(cells))
	if isHex(f[k+1], 8) {
		st, _ := strconv.ParseUint(f[k+1], 16, 32)
		setStatus(&sig, uint32(st))
	}
	return []signal.Signal{sig}, nil
}

// link decodes LINK: *HQ,ID,LINK,hhmmss,rssi,sats,battery,steps,turnovers,ddmmyy,status#
func (s *Session) link(f []string, frame []byte, recv time.Time) ([]signal.Signal, error) {
	if len(f) < 11 {
		return nil, fmt.Errorf("%w: LINK message has %d fields", plugins.ErrMalformed, len(f))
	}
	sig := s.newSignal(time.Time{}, frame, recv)
	if err := s.deviceTime(&sig, f[3], f[9], frame, recv); err != nil {
		return nil, err
	}
	sig.SetAttr("type", "LINK")
	if v, ok, err := numberField("satellites", f[5]); err != nil {
		return nil, err
	} else if ok {
		sig.Sats = v
	}
	for _, a := range [][2]string{{"rssi", f[4]}, {"battery_level", f[6]}, {"steps", f[7]}, {"turnovers", f[8]}} {
		if err := intAttr(&sig, a[0], a[1]); err != nil {
			return nil, err
		}
	}
	if isHex(f[10], 8) {
		st, _ := strconv.ParseUint(f[10], 16, 32)
		setStatus(&sig, uint32(st))
	}
	return []signal.Signal{sig}, nil
}

// v3 decodes V3 (LBS): *HQ,ID,V3,hhmmss,mccmnc,count,(lac,cid,bsic,rssi)*,battery,reboot,X,ddmmyy,status#
func (s *Session) v3(f []string, frame []byte, recv time.Time) ([]signal.Signal, error) {
	if len(f) < 11 || len(f[4]) < 4 {
		return nil, fmt.Errorf("%w: V3 message has %d fields", plugins.ErrMalformed, len(f))
	}
	count, err := strconv.Atoi(f[5])
	if err != nil || count < 0 || count > len(f) || 6+4*count+4 >= len(f) {
		return nil, fmt.Errorf("%w: V3 cell count %q", plugins.ErrMalformed, f[5])
	}
	var cells []cell
	for j := range count {
		c := f[6+4*j : 10+4*j]
		lac, e1 := strconv.ParseInt(c[0], 10, 64)
		cid, e2 := strconv.ParseInt(c[1], 10, 64)
		if e1 != nil || e2 != nil {
			return nil, fmt.Errorf("%w: V3 cell %q", plugins.ErrMalformed, strings.Join(c, ","))
		}
		var rssi int64
		if r := strings.TrimSpace(c[3]); r != "" { // empty when not measured
			var err error
			if rssi, err = strconv.ParseInt(r, 10, 64); err != nil {
				return nil, fmt.Errorf("%w: V3 cell %q: rssi is not an integer", plugins.ErrMalformed, strings.Join(c, ","))
			}
		}
		cells = append(cells, cell{lac, cid, rssi})
	}
	k := 6 + 4*count
	sig := s.newSignal(time.Time{}, frame, recv)
	if err := s.deviceTime(&sig, f[3], f[k+3], frame, recv); err != nil {
		return nil, err
	}
	sig.SetAttr("type", "V3")
	if !isDigits(f[4], 0) {
		return nil, fmt.Errorf("%w: V3 mcc/mnc %q is not digits", plugins.ErrMalformed, f[4])
	}
	for _, a := range [][2]string{{"mcc", f[4][:3]}, {"mnc", f[4][3:]}} {
		if err := intAttr(&sig, a[0], a[1]); err != nil {
			return nil, err
		}
	}
	sig.SetAttr("cells", cellsAttr(cells))
	if v := strings.TrimSpace(f[k]); v != "" {
		b, err := strconv.ParseUint(v, 16, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: V3 battery %q is not hex", plugins.ErrMalformed, f[k])
		}
		sig.SetAttr("battery", int64(b))
	}
	if k+4 < len(f) && isHex(f[k+4], 8) {
		st, _ := strconv.ParseUint(f[k+4], 16, 32)
		setStatus(&sig, uint32(st))
	}
	return []signal.Signal{sig}, nil
}

// vp1 decodes VP1: *hq,ID,VP1,A,lat,N,lon,E,speed,course,ddmmyy# or the
// cell variant *hq,ID,VP1,V,mcc,mnc,lac,cid,rssiYlac,cid,rssi…#. It has no
// time of day: records are stamped with the receive time.
func (s *Session) vp1(f []string, frame []byte, recv time.Time) ([]signal.Signal, error) {
	if len(f) < 6 {
		return nil, fmt.Errorf("%w: VP1 message has %d fields", plugins.ErrMalformed, len(f))
	}
	sig := s.newSignal(s.serverTime(frame, recv), frame, recv)
	sig.SetAttr("type", "VP1")
	sig.SetAttr("time_source", "server")
	if (f[3] == "A" || f[3] == "B") && len(f) >= 11 {
		lat, ok1 := coordinate(f[4], f[5])
		lon, ok2 := coordinate(f[6], f[7])
		if !ok1 || !ok2 || math.Abs(lat) > 90 || math.Abs(lon) > 180 {
			return nil, fmt.Errorf("%w: VP1 coordinates %s,%s %s,%s", plugins.ErrMalformed, f[4], f[5], f[6], f[7])
		}
		sig.Lat, sig.Lon, sig.Valid = lat, lon, signal.True
		if v, ok, err := numberField("speed", f[8]); err != nil {
			return nil, err
		} else if ok {
			sig.Speed = v * knotKMH
		}
		if v, ok, err := numberField("course", f[9]); err != nil {
			return nil, err
		} else if ok {
			sig.Heading = v
		}
		sig.SetAttr("date", f[10])
		return []signal.Signal{sig}, nil
	}
	for _, a := range [][2]string{{"mcc", f[4]}, {"mnc", f[5]}} {
		if err := intAttr(&sig, a[0], a[1]); err != nil {
			return nil, err
		}
	}
	var cells []cell
	for c := range strings.SplitSeq(strings.Join(f[6:], ","), "Y") {
		p := strings.Split(c, ",")
		if len(p) != 3 {
			return nil, fmt.Errorf("%w: VP1 cell %q", plugins.ErrMalformed, c)
		}
		lac, e1 := strconv.ParseInt(p[0], 10, 64)
		cid, e2 := strconv.ParseInt(p[1], 10, 64)
		rssi, e3 := strconv.ParseInt(p[2], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			return nil, fmt.Errorf("%w: VP1 cell %q", plugins.ErrMalformed, c)
		}
		cells = append(cells, cell{lac, cid, rssi})
	}
	sig.SetAttr("cells", cellsAttr(cells))
	return []signal.Signal{sig}, nil
}

// other keeps a message of a type this decoder does not interpret (BASE,
// BS, XT, …) as a record: its type and raw fields, the device time when
// the message has hhmmss and ddmmyy fields, and the status word.
func (s *Session) other(f []string, frame []byte, recv time.Time) ([]signal.Signal, error) {
	rest := f[3:]
	var ts time.Time
	for j := 0; j+1 < len(rest) && ts.IsZero(); j++ {
		if !isDigits(rest[j], 6) {
			continue
		}
		for k := j + 1; k < len(rest); k++ {
			if t, ok := textTime(rest[j], rest[k]); ok {
				ts = t
				break
			}
		}
	}
	src := "device"
	if ts.IsZero() {
		ts, src = s.serverTime(frame, recv), "server"
	}
	sig := s.newSignal(ts, frame, recv)
	sig.SetAttr("type", f[2])
	sig.SetAttr("data", strings.Join(rest, ","))
	sig.SetAttr("time_source", src)
	return []signal.Signal{sig}, nil
}
