package main

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/fleetcore/fleetcore/protocols/wasm/sdk"
)

// knotKMH converts knots (the unit of H02 speeds) to km/h.
const knotKMH = 1.852

// Binary record lengths seen from H02 devices: 32 (the original short
// record), 42 (15-digit id), 45 (with extra LBS/alarm bytes) and the
// vendor variants 46 and 48.
var binaryLengths = [...]int{32, 42, 45, 46, 48}

const (
	minBinary       = 32
	maxBinary       = 48
	defaultMaxFrame = 64 << 10
	// maxDeviceID bounds a device id: the longest real ids are 15-digit
	// IMEIs, and the store caps ids at 128 bytes.
	maxDeviceID = 128
)

// decoder is the protocol; what a connection remembers is in the state
// blob (see session).
type decoder struct{}

// session is the state blob read at the start of a call.
type session struct {
	binLen int    // the binary record length last decoded (0: none)
	dev    string // the device seen last on the connection
}

func readState(c *sdk.Call) session {
	st := c.State()
	if len(st) == 0 {
		return session{}
	}
	// A view of the state bytes (valid during the call, like the frame).
	dev := st[1:]
	return session{binLen: int(st[0]), dev: unsafe.String(unsafe.SliceData(dev), len(dev))}
}

// save writes the state blob when it changed.
func (s session) save(c *sdk.Call, out *sdk.Output) {
	old := c.State()
	if len(old) == 1+len(s.dev) && int(old[0]) == s.binLen&0xFF && string(old[1:]) == s.dev {
		return
	}
	var buf [1 + maxDeviceID]byte
	buf[0] = byte(s.binLen)
	n := copy(buf[1:], s.dev)
	out.SetState(buf[:1+n])
}

func maxFrame(c *sdk.Call) int {
	if n := c.MaxFrame(); n > 0 {
		return n
	}
	return defaultMaxFrame
}

// Frame frames TCP input: a text message up to and including '#', a
// binary record by its length, and line ends between messages as frames of
// their own (they decode to nothing).
func (decoder) Frame(c *sdk.Call, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	switch buf[0] {
	case '*':
		limit := buf
		if mf := maxFrame(c); len(limit) > mf {
			limit = limit[:mf]
		}
		if i := bytes.IndexByte(limit, '#'); i >= 0 {
			return i + 1, nil
		}
		if len(buf) >= maxFrame(c) {
			return 0, sdk.Errorf(sdk.ErrTooLarge, "framing h02 text: no '#' within %d bytes", maxFrame(c))
		}
		return 0, nil
	case '$':
		return frameBinary(c, buf)
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
	return 0, sdk.Errorf(sdk.ErrMalformed, "framing h02: byte 0x%02x cannot start a message", buf[0])
}

// frameBinary finds the length of a '$' record. A configured length wins.
// Otherwise: a known length followed by the start of another message is
// certain; a buffer that holds exactly a known length is taken as one
// record (a device writes one record per packet); a shorter buffer waits
// for more; else the length of the last binary record decoded on the
// connection, when there is one.
func frameBinary(c *sdk.Call, buf []byte) (int, error) {
	if l := int(optBinaryLength.Get(c)); l > 0 {
		if len(buf) < l {
			return 0, nil
		}
		return l, nil
	}
	for _, l := range binaryLengths {
		if len(buf) > l && startsMessage(buf[l:]) {
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
	if l := readState(c).binLen; l > 0 {
		return l, nil
	}
	return 0, sdk.Errorf(sdk.ErrMalformed, "framing h02 binary: no known record length fits (set the binary_length option)")
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

// call is one Decode: the call, its output and the session state.
type call struct {
	c     *sdk.Call
	out   *sdk.Output
	s     session
	frame []byte
}

// Decode decodes one message (a TCP frame or a UDP datagram).
func (decoder) Decode(c *sdk.Call, frame []byte, out *sdk.Output) error {
	if len(frame) > maxFrame(c) {
		return sdk.Errorf(sdk.ErrTooLarge, "decoding h02 message: %d bytes, cap %d", len(frame), maxFrame(c))
	}
	if len(frame) == 0 || len(bytes.Trim(frame, "\r\n")) == 0 {
		return nil
	}
	k := &call{c: c, out: out, s: readState(c), frame: frame}
	var err error
	switch frame[0] {
	case '*':
		err = k.decodeText()
	case '$':
		err = k.decodeBinary()
	case 'X':
		err = sdk.Errorf(sdk.ErrUnsupported, "'X' record (undocumented, not decoded)")
	default:
		err = sdk.Errorf(sdk.ErrMalformed, "byte 0x%02x cannot start a message", frame[0])
	}
	if err != nil {
		return err
	}
	k.s.save(c, out)
	return nil
}

func (k *call) setDevice(id string) error {
	if id == "" {
		return sdk.Errorf(sdk.ErrNoDevice, "decoding h02 message: empty device id")
	}
	if len(id) > maxDeviceID {
		return sdk.Errorf(sdk.ErrMalformed, "decoding h02 message: device id of %d bytes, at most %d", len(id), maxDeviceID)
	}
	k.s.dev = id
	k.out.SetDevice(id)
	return nil
}

// serverTime marks a record without a time of its own: the host stamps it
// with the receive time to the second (the first copy's, for a resend of
// the same message within the resend window; H02 messages carry no
// sequence number, so an identical message is taken as a resend).
func serverTime(r *sdk.Record) { r.ServerTimeSeconds() }

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

const hexDigits = "0123456789abcdef"

func (k *call) decodeBinary() error {
	frame := k.frame
	if len(frame) < minBinary {
		return sdk.Errorf(sdk.ErrMalformed, "decoding h02 message: binary record of %d bytes, at least %d", len(frame), minBinary)
	}
	if l := int(optBinaryLength.Get(k.c)); l > 0 && len(frame) != l {
		return sdk.Errorf(sdk.ErrMalformed, "decoding h02 message: binary record of %d bytes, listener expects %d", len(frame), l)
	}
	idLen := 5
	if len(frame) == 42 {
		idLen = 8
	}
	var idBuf [16]byte
	for i, c := range frame[1 : 1+idLen] {
		idBuf[2*i], idBuf[2*i+1] = hexDigits[c>>4], hexDigits[c&15]
		if !bcdOK(c) && idLen == 5 {
			return sdk.Errorf(sdk.ErrMalformed, "decoding h02 message: device id %x is not BCD", frame[1:1+idLen])
		}
	}
	id := idBuf[:2*idLen]
	if idLen == 8 {
		id = id[:15]
	}
	if err := k.setDevice(string(id)); err != nil {
		return err
	}
	b := frame[1+idLen:]
	// Digit offsets into b: time hhmmss 0–5, date ddmmyy 6–11, latitude
	// DDMMmmmm 12–19, battery byte 10, longitude DDDMMmmmm 22–30, flags
	// nibble 31, speed 32–34, course 35–37, status bytes 19–22.
	var vals [10]int
	for i, f := range [...][2]int{{0, 2}, {2, 2}, {4, 2}, {6, 2}, {8, 2}, {10, 2}, {12, 8}, {22, 9}, {32, 3}, {35, 3}} {
		v, ok := bcd(b, f[0], f[1])
		if !ok {
			return sdk.Errorf(sdk.ErrMalformed, "decoding h02 message: binary record field at digit %d is not BCD", f[0])
		}
		vals[i] = v
	}
	hh, mi, ss, dd, mo, yy := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
	ts, ok := makeTime(yy, mo, dd, hh, mi, ss)
	if !ok {
		return sdk.Errorf(sdk.ErrMalformed, "decoding h02 message: binary record time %02d%02d%02d %02d%02d%02d", dd, mo, yy, hh, mi, ss)
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
	r := k.out.Record().Time(ts).Lat(lat).Lon(lon).Valid(flags&0x02 != 0).
		Speed(float64(vals[8]) * knotKMH).Heading(float64(vals[9]))
	if lvl, ok := batteryLevel(b[10]); ok {
		r.I64("battery_level", lvl)
	}
	status := uint32(b[19])<<24 | uint32(b[20])<<16 | uint32(b[21])<<8 | uint32(b[22])
	setStatus(r, status)
	if extra := b[23:]; len(extra) > 0 {
		r.Hex("extra", extra)
	}
	k.s.binLen = len(frame)
	return nil
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
func setStatus(r *sdk.Record, status uint32) {
	r.I64("status", int64(status))
	r.Bool("ignition", status&(1<<10) != 0)
	bit := func(n uint) bool { return status&(1<<n) != 0 }
	switch {
	case !bit(0):
		r.String("alarm", "vibration")
	case !bit(1) || !bit(18):
		r.String("alarm", "sos")
	case !bit(2):
		r.String("alarm", "overspeed")
	case !bit(19):
		r.String("alarm", "power_cut")
	}
}

// makeTime is the Unix ms of a date and time of 20yy, ok false when it is
// not a valid time.
func makeTime(yy, mo, dd, hh, mi, ss int) (int64, bool) {
	if mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 59 {
		return 0, false
	}
	t := time.Date(2000+yy, time.Month(mo), dd, hh, mi, ss, 0, time.UTC)
	if t.Day() != dd {
		return 0, false
	}
	return t.UnixMilli(), true
}

// ---- text ----

// fieldBuf is the scratch slice a text message is split into, reused by
// every call of this instance (calls on one instance never overlap, and
// nothing of a call survives it).
var fieldBuf []string

// split cuts s at every sep into fieldBuf, as strings.Split does.
func split(s string, sep byte) []string {
	f := fieldBuf[:0]
	for {
		i := strings.IndexByte(s, sep)
		if i < 0 {
			break
		}
		f = append(f, s[:i])
		s = s[i+1:]
	}
	f = append(f, s)
	fieldBuf = f
	return f
}

func (k *call) decodeText() error {
	trimmed := bytes.TrimRight(k.frame, "\r\n")
	// A view of the frame, not a copy: the frame is valid during the call
	// and the SDK copies every string it is given at once, so no string
	// outlives the bytes.
	text := unsafe.String(unsafe.SliceData(trimmed), len(trimmed))
	if !strings.HasSuffix(text, "#") {
		return sdk.Errorf(sdk.ErrMalformed, "decoding h02 message: text message without '#'")
	}
	body := text[1 : len(text)-1]
	f := split(body, ',')
	if len(f) < 3 || len(f[0]) != 2 {
		return sdk.Errorf(sdk.ErrMalformed, "decoding h02 message: text message %q is not *XX,ID,TYPE,...#", truncate(text))
	}
	id, typ := strings.TrimSpace(f[1]), f[2]
	if id == "" && k.s.dev != "" {
		id = k.s.dev
	}
	if err := k.setDevice(id); err != nil {
		return err
	}
	ack := optAck.Get(k.c) == "on"
	var err error
	switch {
	case typ == "":
		return nil
	case typ == "HTBT" || typ == "V0":
		err = k.heartbeat(f)
		if err == nil && ack {
			k.ack(id, typ)
		}
	case typ == "NBR":
		err = k.lbs(f)
		if err == nil && ack {
			k.ack(id, "V4", "NBR", k.recvStamp())
		}
	case typ == "LINK":
		err = k.link(f)
	case typ == "V3":
		err = k.v3(f)
	case strings.EqualFold(typ, "VP1"):
		err = k.vp1(f)
	case typ == "SMS":
		r := k.out.Record().String("type", typ).String("result", strings.Join(f[3:], ","))
		serverTime(r)
	case strings.HasPrefix(typ, "V"):
		err = k.position(f)
		if err == nil && typ == "V1" && ack {
			k.ack(id, "V4", "V1", k.recvStamp())
		}
	default:
		err = k.other(f)
	}
	if err != nil {
		return sdk.Errorf(sdk.ErrMalformed, "decoding h02 message: %v", err)
	}
	return nil
}

// ack writes "*HQ,<id>,<fields…>#".
func (k *call) ack(id string, fields ...string) {
	k.out.AckString("*HQ,")
	k.out.AckString(id)
	for _, f := range fields {
		k.out.AckByte(',')
		k.out.AckString(f)
	}
	k.out.AckByte('#')
}

// recvStamp is the receive time as yyyyMMddHHmmss (UTC), in a scratch
// buffer valid until the next call (the ack copies it). Written by hand:
// time.Format costs tens of µs in a wasm guest.
func (k *call) recvStamp() string {
	t := time.UnixMilli(k.c.RecvMs()).UTC()
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	b := stampBuf[:0]
	b = appendDigits(b, y, 4)
	for _, v := range [...]int{int(mo), d, h, mi, sec} {
		b = appendDigits(b, v, 2)
	}
	stampBuf = b
	return unsafe.String(unsafe.SliceData(b), len(b))
}

var stampBuf = make([]byte, 0, 16)

// appendDigits appends v as n decimal digits, zero-padded.
func appendDigits(b []byte, v, n int) []byte {
	var d [8]byte
	for i := n - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:n]...)
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
func textTime(hms, dmy string) (int64, bool) {
	if !isDigits(hms, 6) || !isDigits(dmy, 6) {
		return 0, false
	}
	n := func(s string, i int) int { v, _ := strconv.Atoi(s[i : i+2]); return v }
	return makeTime(n(dmy, 4), n(dmy, 2), n(dmy, 0), n(hms, 0), n(hms, 2), n(hms, 4))
}

// errField is a field that does not parse; decodeText wraps it with
// ErrMalformed.
type errField string

func (e errField) Error() string { return string(e) }

func fieldErrorf(format string, args ...any) error {
	return errField(fmt.Sprintf(format, args...))
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
			return 0, false, fieldErrorf("%s %s,%s is beyond ±%g°", name, v, hemi, limit)
		}
		return c, true, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f == 0 && hemi != "N" && hemi != "S" && hemi != "E" && hemi != "W" {
		return 0, false, nil
	}
	return 0, false, fieldErrorf("%s %q,%q is not a coordinate", name, v, hemi)
}

// numberField parses an optional number: absent when empty, an error
// naming the field when it does not parse.
func numberField(name, v string) (float64, bool, error) {
	if strings.TrimSpace(v) == "" {
		return 0, false, nil
	}
	f, ok := parseNum(v)
	if !ok {
		return 0, false, fieldErrorf("%s %q is not a number", name, v)
	}
	return f, true, nil
}

// intAttr sets an optional integer attribute: absent when empty, an error
// naming the field when it is not an integer.
func intAttr(r *sdk.Record, name, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fieldErrorf("%s %q is not an integer", name, v)
	}
	r.I64(name, i)
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

// ioNames are the names of the raw trailing fields io1…io64.
var ioNames = func() (t [64]string) {
	for i := range t {
		t[i] = "io" + strconv.Itoa(i+1)
	}
	return t
}()

func ioName(j int) string {
	if j < len(ioNames) {
		return ioNames[j]
	}
	return "io" + strconv.Itoa(j+1)
}

// position decodes the V-family position messages (V1, V2, V4, V5, V6, V8,
// V19, VI1, …):
//
//	*HQ,ID,V1,hhmmss,A,lat,N,lon,E,speed,course[,battery],ddmmyy[,sim,sim,sim],status[,...]#
//
// V4 (a command response) carries the command and its arguments before the
// time.
func (k *call) position(f []string) error {
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
			return fieldErrorf("V4 message without a position")
		}
	}
	if len(f) < i+7 {
		return fieldErrorf("%s message has %d fields, want at least %d", f[2], len(f), i+7)
	}
	start := k.out.NumRecords()
	r := k.out.Record()
	r.String("type", f[2])
	if f[2] == "V4" {
		r.String("result", strings.Join(f[3:i-1], ","))
	}
	hms := f[i-1]
	switch v := f[i]; {
	case v == "A":
		r.Valid(true)
	case v == "V" || v == "B" || v == "":
		r.Valid(false)
	case isDigits(v, 0):
		r.Valid(true) // a coding scheme number instead of A/V
	default:
		return fieldErrorf("%s validity %q is not A, V, B or a number", f[2], v)
	}
	lat, okLat, err := coordinateField("latitude", f[i+1], f[i+2], 90)
	if err != nil {
		return err
	}
	lon, okLon, err := coordinateField("longitude", f[i+3], f[i+4], 180)
	if err != nil {
		return err
	}
	if okLat != okLon {
		return fieldErrorf("%s has a latitude or a longitude, not both (%s,%s %s,%s)", f[2], f[i+1], f[i+2], f[i+3], f[i+4])
	}
	if okLat {
		r.Lat(lat).Lon(lon)
	}
	if v, ok, err := numberField("speed", f[i+5]); err != nil {
		return err
	} else if ok {
		r.Speed(v * knotKMH)
	}
	if v, ok, err := numberField("course", f[i+6]); err != nil {
		return err
	} else if ok {
		r.Heading(v)
	}
	// Then: [battery,] date, [three SIM fields,] status, tail.
	j := i + 7
	if j+1 < len(f) && !isDigits(f[j], 6) && isDigits(f[j+1], 6) {
		if err := intAttr(r, "battery_level", f[j]); err != nil {
			return err
		}
		j++
	}
	dmy := ""
	switch {
	case j < len(f) && (isDigits(f[j], 6) || f[j] == ""):
		dmy = f[j]
		j++
	case j < len(f) && isDigits(f[j], 0) && !isHex(f[j], 8):
		// Digits where the date belongs, but not six of them (eight would
		// be a status word with no date before it).
		return fieldErrorf("%s date %q is not ddmmyy", f[2], f[j])
	}
	// Without a fix devices send empty or zero time fields.
	if err := deviceTime(r, hms, dmy); err != nil {
		return err
	}
	if j < len(f) && !isHex(f[j], 8) && j+3 < len(f) && isHex(f[j+3], 8) {
		r.String("sim_info", strings.Join(f[j:j+3], ","))
		j += 3
	}
	if j < len(f) && isHex(f[j], 8) {
		st, _ := strconv.ParseUint(f[j], 16, 32)
		setStatus(r, uint32(st))
		j++
		tail := f[j:]
		if ext, ok := parseExtendedTail(tail); ok {
			r.Odometer(ext.odometer / 1000) // meters
			r.I64("temp1", ext.temp)
			r.F64("fuel_level", ext.fuel)
			r.Alt(float64(ext.alt))
			r.I64("lac", int64(ext.lac))
			r.I64("cid", int64(ext.cid))
		} else {
			for n, v := range tail {
				r.String(ioName(n), strings.TrimSpace(v))
			}
		}
	} else if j < len(f) {
		for n, v := range f[j:] {
			r.String(ioName(n), strings.TrimSpace(v))
		}
	}
	// A record with neither a position nor a status: nothing to store.
	if math.IsNaN(r.Get(sdk.FieldLat)) && r.NumAttrs() <= 1 {
		k.out.TruncateRecords(start)
	}
	return nil
}

type extended struct {
	odometer, fuel float64
	temp, alt      int64
	lac, cid       uint64
}

// The forms of the extended tail's fields (the native decoder's regular
// expressions ^\d+$, ^-?\d+$, ^\d+\.\d+$, ^-?\d+$, hex, hex).
func digits(s string) bool { return isDigits(s, 0) }

func signedDigits(s string) bool { return digits(strings.TrimPrefix(s, "-")) }

func decimal(s string) bool {
	a, b, ok := strings.Cut(s, ".")
	return ok && digits(a) && digits(b)
}

func hexDigitsOnly(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

var extendedForms = [6]func(string) bool{digits, signedDigits, decimal, signedDigits, hexDigitsOnly, hexDigitsOnly}

// parseExtendedTail reads the fields after the status when they are
// odometer,temperature,fuel,altitude,lac,cid; ok is false for any other
// tail (kept as io fields), including numbers too large for their field.
func parseExtendedTail(t []string) (e extended, ok bool) {
	if len(t) != len(extendedForms) {
		return e, false
	}
	for i, form := range extendedForms {
		if !form(t[i]) {
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

func (k *call) heartbeat(f []string) error {
	if len(f) < 4 || strings.TrimSpace(f[3]) == "" {
		return nil // a bare heartbeat: nothing to store
	}
	lvl, err := strconv.Atoi(strings.TrimSpace(f[3]))
	if err != nil {
		return fieldErrorf("heartbeat battery %q", f[3])
	}
	r := k.out.Record().String("type", f[2]).I64("battery_level", int64(lvl))
	serverTime(r)
	return nil
}

type cell struct{ lac, cid, rssi int64 }

// cellsAttr renders cells as the native decoder's JSON
// ([{"lac":…,"cid":…,"rssi":…}], null when there are none).
func cellsAttr(cells []cell) string {
	if cells == nil {
		return "null"
	}
	b := make([]byte, 0, 2+len(cells)*40)
	b = append(b, '[')
	for i, c := range cells {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"lac":`...)
		b = strconv.AppendInt(b, c.lac, 10)
		b = append(b, `,"cid":`...)
		b = strconv.AppendInt(b, c.cid, 10)
		b = append(b, `,"rssi":`...)
		b = strconv.AppendInt(b, c.rssi, 10)
		b = append(b, '}')
	}
	return string(append(b, ']'))
}

// deviceTime is hhmmss+ddmmyy when valid. A time field that is not empty
// and not six digits does not parse: the message is malformed. Empty
// fields (no fix yet) and six digits that make no time (all zeros since
// boot, seconds past 59 from some firmware) give the server time instead,
// and the record says so (attr time_source "server", the raw fields in
// device_time): the message's other data is still worth keeping.
func deviceTime(r *sdk.Record, hms, dmy string) error {
	if ts, ok := textTime(hms, dmy); ok {
		r.Time(ts)
		return nil
	}
	if hms != "" && !isDigits(hms, 6) {
		return fieldErrorf("time %q is not hhmmss", hms)
	}
	if dmy != "" && !isDigits(dmy, 6) {
		return fieldErrorf("date %q is not ddmmyy", dmy)
	}
	serverTime(r)
	r.String("time_source", "server")
	if raw := strings.TrimSpace(hms + " " + dmy); raw != "" {
		r.String("device_time", raw)
	}
	return nil
}

// lbs decodes NBR: *HQ,ID,NBR,hhmmss,mcc,mnc,delay,count,(lac,cid,rssi)*,ddmmyy,status[,...]#
func (k *call) lbs(f []string) error {
	if len(f) < 10 {
		return fieldErrorf("NBR message has %d fields", len(f))
	}
	count, err := strconv.Atoi(f[7])
	if err != nil || count < 0 || count > len(f) || 8+3*count+1 >= len(f) {
		return fieldErrorf("NBR cell count %q", f[7])
	}
	var cells []cell
	for j := range count {
		c := f[8+3*j : 11+3*j]
		lac, e1 := strconv.ParseInt(c[0], 10, 64)
		cid, e2 := strconv.ParseInt(c[1], 10, 64)
		rssi, e3 := strconv.ParseInt(c[2], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			return fieldErrorf("NBR cell %q", strings.Join(c, ","))
		}
		cells = append(cells, cell{lac, cid, rssi})
	}
	j := 8 + 3*count
	r := k.out.Record()
	if err := deviceTime(r, f[3], f[j]); err != nil {
		return err
	}
	r.String("type", "NBR")
	for _, a := range [...][2]string{{"mcc", f[4]}, {"mnc", f[5]}} {
		if err := intAttr(r, a[0], a[1]); err != nil {
			return err
		}
	}
	r.String("cells", cellsAttr(cells))
	if isHex(f[j+1], 8) {
		st, _ := strconv.ParseUint(f[j+1], 16, 32)
		setStatus(r, uint32(st))
	}
	return nil
}

// link decodes LINK: *HQ,ID,LINK,hhmmss,rssi,sats,battery,steps,turnovers,ddmmyy,status#
func (k *call) link(f []string) error {
	if len(f) < 11 {
		return fieldErrorf("LINK message has %d fields", len(f))
	}
	r := k.out.Record()
	if err := deviceTime(r, f[3], f[9]); err != nil {
		return err
	}
	r.String("type", "LINK")
	if v, ok, err := numberField("satellites", f[5]); err != nil {
		return err
	} else if ok {
		r.Sats(v)
	}
	for _, a := range [...][2]string{{"rssi", f[4]}, {"battery_level", f[6]}, {"steps", f[7]}, {"turnovers", f[8]}} {
		if err := intAttr(r, a[0], a[1]); err != nil {
			return err
		}
	}
	if isHex(f[10], 8) {
		st, _ := strconv.ParseUint(f[10], 16, 32)
		setStatus(r, uint32(st))
	}
	return nil
}

// v3 decodes V3 (LBS): *HQ,ID,V3,hhmmss,mccmnc,count,(lac,cid,bsic,rssi)*,battery,reboot,X,ddmmyy,status#
func (k *call) v3(f []string) error {
	if len(f) < 11 || len(f[4]) < 4 {
		return fieldErrorf("V3 message has %d fields", len(f))
	}
	count, err := strconv.Atoi(f[5])
	if err != nil || count < 0 || count > len(f) || 6+4*count+4 >= len(f) {
		return fieldErrorf("V3 cell count %q", f[5])
	}
	var cells []cell
	for j := range count {
		c := f[6+4*j : 10+4*j]
		lac, e1 := strconv.ParseInt(c[0], 10, 64)
		cid, e2 := strconv.ParseInt(c[1], 10, 64)
		if e1 != nil || e2 != nil {
			return fieldErrorf("V3 cell %q", strings.Join(c, ","))
		}
		var rssi int64
		if rs := strings.TrimSpace(c[3]); rs != "" { // empty when not measured
			var err error
			if rssi, err = strconv.ParseInt(rs, 10, 64); err != nil {
				return fieldErrorf("V3 cell %q: rssi is not an integer", strings.Join(c, ","))
			}
		}
		cells = append(cells, cell{lac, cid, rssi})
	}
	j := 6 + 4*count
	r := k.out.Record()
	if err := deviceTime(r, f[3], f[j+3]); err != nil {
		return err
	}
	r.String("type", "V3")
	if !isDigits(f[4], 0) {
		return fieldErrorf("V3 mcc/mnc %q is not digits", f[4])
	}
	for _, a := range [...][2]string{{"mcc", f[4][:3]}, {"mnc", f[4][3:]}} {
		if err := intAttr(r, a[0], a[1]); err != nil {
			return err
		}
	}
	r.String("cells", cellsAttr(cells))
	if v := strings.TrimSpace(f[j]); v != "" {
		b, err := strconv.ParseUint(v, 16, 32)
		if err != nil {
			return fieldErrorf("V3 battery %q is not hex", f[j])
		}
		r.I64("battery", int64(b))
	}
	if j+4 < len(f) && isHex(f[j+4], 8) {
		st, _ := strconv.ParseUint(f[j+4], 16, 32)
		setStatus(r, uint32(st))
	}
	return nil
}

// vp1 decodes VP1: *hq,ID,VP1,A,lat,N,lon,E,speed,course,ddmmyy# or the
// cell variant *hq,ID,VP1,V,mcc,mnc,lac,cid,rssiYlac,cid,rssi…#. It has no
// time of day: records are stamped with the receive time.
func (k *call) vp1(f []string) error {
	if len(f) < 6 {
		return fieldErrorf("VP1 message has %d fields", len(f))
	}
	r := k.out.Record().String("type", "VP1").String("time_source", "server")
	serverTime(r)
	if (f[3] == "A" || f[3] == "B") && len(f) >= 11 {
		lat, ok1 := coordinate(f[4], f[5])
		lon, ok2 := coordinate(f[6], f[7])
		if !ok1 || !ok2 || math.Abs(lat) > 90 || math.Abs(lon) > 180 {
			return fieldErrorf("VP1 coordinates %s,%s %s,%s", f[4], f[5], f[6], f[7])
		}
		r.Lat(lat).Lon(lon).Valid(true)
		if v, ok, err := numberField("speed", f[8]); err != nil {
			return err
		} else if ok {
			r.Speed(v * knotKMH)
		}
		if v, ok, err := numberField("course", f[9]); err != nil {
			return err
		} else if ok {
			r.Heading(v)
		}
		r.String("date", f[10])
		return nil
	}
	for _, a := range [...][2]string{{"mcc", f[4]}, {"mnc", f[5]}} {
		if err := intAttr(r, a[0], a[1]); err != nil {
			return err
		}
	}
	var cells []cell
	for c := range strings.SplitSeq(strings.Join(f[6:], ","), "Y") {
		p := strings.Split(c, ",")
		if len(p) != 3 {
			return fieldErrorf("VP1 cell %q", c)
		}
		lac, e1 := strconv.ParseInt(p[0], 10, 64)
		cid, e2 := strconv.ParseInt(p[1], 10, 64)
		rssi, e3 := strconv.ParseInt(p[2], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			return fieldErrorf("VP1 cell %q", c)
		}
		cells = append(cells, cell{lac, cid, rssi})
	}
	r.String("cells", cellsAttr(cells))
	return nil
}

// other keeps a message of a type this decoder does not interpret (BASE,
// BS, XT, …) as a record: its type and raw fields, the device time when
// the message has hhmmss and ddmmyy fields, and the status word.
func (k *call) other(f []string) error {
	rest := f[3:]
	var ts int64
	found := false
	for j := 0; j+1 < len(rest) && !found; j++ {
		if !isDigits(rest[j], 6) {
			continue
		}
		for n := j + 1; n < len(rest); n++ {
			if t, ok := textTime(rest[j], rest[n]); ok {
				ts, found = t, true
				break
			}
		}
	}
	r := k.out.Record()
	src := "device"
	if found {
		r.Time(ts)
	} else {
		serverTime(r)
		src = "server"
	}
	r.String("type", f[2]).String("data", strings.Join(rest, ",")).String("time_source", src)
	return nil
}
