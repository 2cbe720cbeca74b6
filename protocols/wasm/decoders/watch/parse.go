package main

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/protocols/wasm/sdk"
)

// Caps of the decoder (README "Caps").
const (
	maxID      = 32 // bytes of a device id
	maxType    = 16 // bytes of a message type
	maxFields  = 256
	maxCells   = 16 // cells decoded into the "cells" attr
	maxWifi    = 16 // access points decoded into the "wifi" attr
	stateV1    = 1  // first byte of the state blob
	networkCap = sdk.MaxAttrString
)

// message is one framed message, split: [maker*id*(index*)length*content].
type message struct {
	maker  string // "3G", "SG", "CS", "ZJ", …
	id     string
	index  string // ZJ's extra field ("" when absent)
	length int    // the length field (hex); see README "Length field"
	typ    string // content up to the first ','
	body   []byte // content after the first ',' (still escaped; nil when none)
	hasArg bool   // a ',' follows the type
}

// parseMessage splits a frame as the framer returned it ("[" … "]").
func parseMessage(frame []byte) (message, error) {
	var m message
	if len(frame) < 2 || frame[0] != '[' || frame[len(frame)-1] != ']' {
		return m, sdk.Errorf(sdk.ErrMalformed, "frame not enclosed in [ ]")
	}
	rest := frame[1 : len(frame)-1]
	next := func(what string) ([]byte, error) {
		i := bytes.IndexByte(rest, '*')
		if i < 0 {
			return nil, sdk.Errorf(sdk.ErrMalformed, "no '*' after the %s", what)
		}
		f := rest[:i]
		rest = rest[i+1:]
		return f, nil
	}
	maker, err := next("manufacturer")
	if err != nil {
		return m, err
	}
	if len(maker) != 2 || !isUpperAlnum(maker) {
		return m, sdk.Errorf(sdk.ErrMalformed, "manufacturer %q, want two characters A-Z 0-9", clip(maker))
	}
	id, err := next("device id")
	if err != nil {
		return m, err
	}
	if len(id) == 0 || len(id) > maxID || !isAlnum(id) {
		return m, sdk.Errorf(sdk.ErrMalformed, "device id %q, want 1-%d letters or digits", clip(id), maxID)
	}
	lf, err := next("length")
	if err != nil {
		return m, err
	}
	if !isHex4(lf) {
		return m, sdk.Errorf(sdk.ErrMalformed, "length field %q, want 4 hex digits", clip(lf))
	}
	// ZJ: [ZJ*id*index*length*content]. An index is 4 hex digits followed
	// by another 4 hex digits and a '*' (as Traccar tells them apart).
	if len(rest) >= 5 && rest[4] == '*' && isHex4(rest[:4]) {
		m.index = string(lf)
		lf = rest[:4]
		rest = rest[5:]
	}
	n, _ := strconv.ParseUint(string(lf), 16, 16)
	m.length = int(n)
	m.maker, m.id = string(maker), string(id)
	typ := rest
	if i := bytes.IndexByte(rest, ','); i >= 0 {
		typ, m.body, m.hasArg = rest[:i], rest[i+1:], true
	}
	if len(typ) == 0 || len(typ) > maxType || !isTypeName(typ) {
		return m, sdk.Errorf(sdk.ErrMalformed, "message type %q, want 1-%d letters, digits or '_'", clip(typ), maxType)
	}
	m.typ = string(typ)
	return m, nil
}

// fields splits a text body on its (unescaped) commas and unescapes each
// field. Control bytes are refused: a text message holds none.
func fields(body []byte, hasArg bool) ([]string, error) {
	if !hasArg {
		return nil, nil
	}
	out := make([]string, 0, 24)
	for {
		i := bytes.IndexByte(body, ',')
		f := body
		if i >= 0 {
			f = body[:i]
		}
		if len(out) == maxFields {
			return nil, sdk.Errorf(sdk.ErrMalformed, "more than %d fields", maxFields)
		}
		s, err := unescape(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if i < 0 {
			return out, nil
		}
		body = body[i+1:]
	}
}

// unescape undoes the devices' escapes: '}' followed by 1-5 stands for
// } [ ] , * (the framer relies on them: a raw ']' ends the frame).
func unescape(f []byte) (string, error) {
	if bytes.IndexByte(f, '}') < 0 {
		for _, c := range f {
			if c < 0x20 || c == 0x7f {
				return "", sdk.Errorf(sdk.ErrMalformed, "control byte 0x%02x in a text message", c)
			}
		}
		return string(f), nil
	}
	b := make([]byte, 0, len(f))
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c < 0x20 || c == 0x7f {
			return "", sdk.Errorf(sdk.ErrMalformed, "control byte 0x%02x in a text message", c)
		}
		if c != '}' {
			b = append(b, c)
			continue
		}
		if i+1 >= len(f) || f[i+1] < 1 || f[i+1] > 5 {
			return "", sdk.Errorf(sdk.ErrMalformed, "escape '}' not followed by 0x01-0x05")
		}
		i++
		b = append(b, "}[],*"[f[i]-1])
	}
	return string(b), nil
}

// position is a decoded UD/AL/WT message.
type position struct {
	tsMs        int64
	hasTS       bool
	deviceTime  string // raw date and time when they make no time
	valid       bool
	lat, lon    float64
	hasFix      bool // lat/lon present (0,0 without a fix is no position)
	speed       float64
	course      float64
	alt         float64
	hasSpeed    bool
	hasCourse   bool
	hasAlt      bool
	ints        [5]int64 // sats, rssi, battery_level, steps, tumbles
	hasInt      [5]bool
	status      uint32
	cells       string // JSON, "" when none
	mcc, mnc    int64
	hasMCC      bool
	wifi        string // JSON, "" when none
	network     string // the raw cell/wifi fields when they do not parse
	networkCut  bool
	alarm       string
	motion      bool
	messageType string
}

var intNames = [5]string{"sats", "rssi", "battery_level", "steps", "tumbles"}

// parsePosition decodes date,time,A/V,lat,N/S,lon,E/W,speed,course,alt,
// sats,rssi,battery,steps,tumbles,status[,cells and wifi…].
func parsePosition(typ string, f []string) (position, error) {
	p := position{messageType: typ}
	if len(f) < 16 {
		return p, sdk.Errorf(sdk.ErrMalformed, "%s with %d fields, want at least 16 (date … status)", typ, len(f))
	}
	if ts, ok := deviceTime(f[0], f[1]); ok {
		p.tsMs, p.hasTS = ts, true
	} else {
		if !isDigits(f[0], 6) || !isDigits(f[1], 6) {
			return p, sdk.Errorf(sdk.ErrMalformed, "%s date/time %q,%q, want ddmmyy,hhmmss", typ, clipS(f[0]), clipS(f[1]))
		}
		p.deviceTime = f[0] + " " + f[1] // all zeros before the first fix
	}
	switch f[2] {
	case "A":
		p.valid = true
	case "V":
	default:
		return p, sdk.Errorf(sdk.ErrMalformed, "%s validity %q, want A or V", typ, clipS(f[2]))
	}
	lat, err := coordinate(typ, "latitude", f[3], f[4], "N", "S", 90)
	if err != nil {
		return p, err
	}
	lon, err := coordinate(typ, "longitude", f[5], f[6], "E", "W", 180)
	if err != nil {
		return p, err
	}
	p.lat, p.lon, p.hasFix = lat, lon, lat != 0 || lon != 0
	if p.speed, p.hasSpeed, err = optFloat(typ, "speed", f[7], 0, 2000); err != nil {
		return p, err
	}
	if p.course, p.hasCourse, err = optFloat(typ, "course", f[8], 0, 360); err != nil {
		return p, err
	}
	if p.alt, p.hasAlt, err = optFloat(typ, "altitude", f[9], -12000, 100000); err != nil {
		return p, err
	}
	for i := range intNames {
		s := strings.TrimSpace(f[10+i])
		if s == "" {
			continue
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 || v > 1<<40 {
			return p, sdk.Errorf(sdk.ErrMalformed, "%s %s %q, want a non-negative integer", typ, intNames[i], clipS(s))
		}
		p.ints[i], p.hasInt[i] = v, true
	}
	st := strings.TrimSpace(f[15])
	if st != "" {
		v, err := strconv.ParseUint(st, 16, 32)
		if err != nil {
			return p, sdk.Errorf(sdk.ErrMalformed, "%s status %q, want up to 8 hex digits", typ, clipS(st))
		}
		p.status = uint32(v)
	}
	p.alarm = alarm(p.status)
	p.motion = p.status&(1<<4) != 0
	if len(f) > 16 {
		p.parseNetwork(f[16:])
	}
	return p, nil
}

// alarm is the alarm a status word reports (the first set bit in this
// order, as Traccar reads it), "" for none.
func alarm(st uint32) string {
	for _, a := range []struct {
		bit  uint
		name string
	}{
		{0, "low_battery"}, {1, "geofence_exit"}, {2, "geofence_enter"}, {14, "power_cut"},
		{16, "sos"}, {17, "low_battery"}, {18, "geofence_exit"}, {19, "geofence_enter"},
		{20, "removing"}, {21, "fall_down"}, {22, "fall_down"},
	} {
		if st&(1<<a.bit) != 0 {
			return a.name
		}
	}
	return ""
}

// parseNetwork decodes the cell and wifi fields: cell count, timing advance,
// mcc, mnc, (lac, cid, rssi)×count, wifi count, (name, mac, rssi)×count;
// anything after is not decoded. Fields that do not follow this layout
// are kept as the raw "network" attr instead (the position is still good).
func (p *position) parseNetwork(f []string) {
	raw := func() {
		s := strings.Join(f, ",")
		if len(s) > networkCap {
			s, p.networkCut = clipUTF8(s, networkCap), true
		}
		p.network = s
		p.cells, p.wifi, p.hasMCC = "", "", false
	}
	i := 0
	num := func() (int64, bool) {
		if i >= len(f) {
			return 0, false
		}
		s := strings.TrimSpace(f[i])
		i++
		if s == "" {
			return 0, true
		}
		v, err := strconv.ParseInt(s, 10, 64)
		return v, err == nil && v >= -1<<40 && v <= 1<<40
	}
	n, ok := num()
	if !ok || n < 0 || n > maxCells {
		raw()
		return
	}
	if _, ok := num(); !ok { // timing advance
		raw()
		return
	}
	if n > 0 {
		mcc, ok1 := num()
		mnc, ok2 := num()
		if !ok1 || !ok2 {
			raw()
			return
		}
		p.mcc, p.mnc, p.hasMCC = mcc, mnc, true
		b := []byte{'['}
		for k := int64(0); k < n; k++ {
			lac, ok1 := num()
			cid, ok2 := num()
			rssi, ok3 := num()
			if !ok1 || !ok2 || !ok3 {
				raw()
				return
			}
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"lac":`...)
			b = strconv.AppendInt(b, lac, 10)
			b = append(b, `,"cid":`...)
			b = strconv.AppendInt(b, cid, 10)
			b = append(b, `,"rssi":`...)
			b = strconv.AppendInt(b, rssi, 10)
			b = append(b, '}')
		}
		p.cells = string(append(b, ']'))
	}
	if i >= len(f) || strings.TrimSpace(f[i]) == "" {
		return
	}
	w, ok := num()
	if !ok || w < 0 || w > maxWifi {
		raw()
		return
	}
	if w == 0 {
		return
	}
	b := []byte{'['}
	for k := int64(0); k < w; k++ {
		if i+3 > len(f) {
			raw()
			return
		}
		mac := strings.TrimSpace(f[i+1])
		if !isMAC(mac) {
			raw()
			return
		}
		i += 2
		rssi, ok := num()
		if !ok {
			raw()
			return
		}
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"mac":"`...)
		b = append(b, strings.ToLower(mac)...)
		b = append(b, `","rssi":`...)
		b = strconv.AppendInt(b, rssi, 10)
		b = append(b, '}')
	}
	p.wifi = string(append(b, ']'))
}

// emit writes the position as a record.
func (p *position) emit(o *sdk.Output) {
	r := o.Record()
	if p.hasTS {
		r.Time(p.tsMs)
	} else {
		r.ServerTimeSeconds().String("time_source", "server").String("device_time", p.deviceTime)
	}
	r.Valid(p.valid)
	if p.hasFix {
		r.Lat(p.lat).Lon(p.lon)
	}
	if p.hasSpeed {
		r.Speed(p.speed)
	}
	if p.hasCourse {
		r.Heading(p.course)
	}
	if p.hasAlt {
		r.Alt(p.alt)
	}
	for i, name := range intNames {
		if !p.hasInt[i] {
			continue
		}
		if i == 0 {
			r.Sats(float64(p.ints[i]))
			continue
		}
		r.I64(name, p.ints[i])
	}
	r.String("type", p.messageType).I64("status", int64(p.status))
	if p.alarm != "" {
		r.String("alarm", p.alarm)
	}
	if p.motion {
		r.Bool("motion", true)
	}
	if p.hasMCC {
		r.I64("mcc", p.mcc).I64("mnc", p.mnc)
	}
	if p.cells != "" {
		r.String("cells", p.cells)
	}
	if p.wifi != "" {
		r.String("wifi", p.wifi)
	}
	if p.network != "" {
		r.String("network", p.network)
		if p.networkCut {
			r.Bool("network_truncated", true)
		}
	}
}

// deviceTime reads ddmmyy,hhmmss as UTC Unix ms; ok false when the fields
// make no time (all zeros before the first fix, a month 13, …).
func deviceTime(dmy, hms string) (int64, bool) {
	if !isDigits(dmy, 6) || !isDigits(hms, 6) {
		return 0, false
	}
	d, mo, y := atoi2(dmy[0:]), atoi2(dmy[2:]), atoi2(dmy[4:])
	h, mi, s := atoi2(hms[0:]), atoi2(hms[2:]), atoi2(hms[4:])
	if d < 1 || d > 31 || mo < 1 || mo > 12 || h > 23 || mi > 59 || s > 59 {
		return 0, false
	}
	t := time.Date(2000+y, time.Month(mo), d, h, mi, s, 0, time.UTC)
	if t.Day() != d { // 31 April
		return 0, false
	}
	return t.UnixMilli(), true
}

// coordinate reads degrees with a hemisphere letter. Either a minus sign
// or the southern/western letter makes it negative; an empty letter is
// the northern/eastern one.
func coordinate(typ, what, v, hem, pos, neg string, lim float64) (float64, error) {
	s := strings.TrimSpace(v)
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || s == "" || strings.ContainsAny(s, "eEnNiI") {
		return 0, sdk.Errorf(sdk.ErrMalformed, "%s %s %q, want decimal degrees", typ, what, clipS(v))
	}
	switch hem {
	case neg:
		if x > 0 {
			x = -x
		}
	case pos, "":
	default:
		return 0, sdk.Errorf(sdk.ErrMalformed, "%s %s hemisphere %q, want %s or %s", typ, what, clipS(hem), pos, neg)
	}
	if x < -lim || x > lim {
		return 0, sdk.Errorf(sdk.ErrMalformed, "%s %s %v outside ±%v", typ, what, x, lim)
	}
	return x, nil
}

// optFloat reads an optional number in [lo, hi].
func optFloat(typ, what, v string, lo, hi float64) (float64, bool, error) {
	s := strings.TrimSpace(v)
	if s == "" {
		return 0, false, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "eEnNiI") || x < lo || x > hi {
		return 0, false, sdk.Errorf(sdk.ErrMalformed, "%s %s %q, want a number in [%v, %v]", typ, what, clipS(v), lo, hi)
	}
	return x, true, nil
}

func atoi2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHex4(b []byte) bool {
	if len(b) != 4 {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func isUpperAlnum(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func isAlnum(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func isTypeName(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// isMAC: six hex pairs separated by ':'.
func isMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < 17; i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// clip shortens a value quoted in an error message.
func clip(b []byte) string { return clipS(string(b)) }

func clipS(s string) string {
	if len(s) > 40 {
		return clipUTF8(s, 40) + "…"
	}
	return s
}

func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
