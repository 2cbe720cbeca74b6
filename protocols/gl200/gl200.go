// Package gl200 decodes the Queclink @Track protocol of the GL/GV/GT/GB
// series (GL200, GL300, GL500, GV55, GV65, GV200, GV300, GV350, GV500,
// GV600, GT501, …): text reports `+RESP:GTxxx,…$`, buffered history
// `+BUFF:GTxxx,…$` and acknowledgements `+ACK:GTxxx,…$`. The binary form
// is framed by its length field; its position reports (`+RSP`, `+BSP`,
// `+EVT`, `+BVT`) are decoded after the layout Traccar reads (binary.go),
// the other binary messages are refused as unsupported (see README).
//
// Layouts differ by model and firmware, so the decoder does not keep one
// field table per report and version: it finds the GNSS blocks of a report
// by their shape (…,accuracy,speed,azimuth,altitude,longitude,latitude,
// UTC time,mcc,mnc,lac,cell,…), which every position report shares, and
// reads the report-specific values (OBD, CAN, INF, alarms) by report type,
// falling back to the protocol version's device type where layouts differ.
package gl200

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id.
const Name = "gl200"

// Decoder is the @Track decoder; its zero value is ready to use. Every
// @Track message carries the device's send time, so no record needs the
// server's clock.
type Decoder struct{}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

var optAck = plugins.EnumOption{
	Name: "ack", Default: "all", Values: []string{"all", "heartbeat", "off"},
	Doc: "`all` answers every `+RESP`/`+BUFF` report with `+SACK:<count>$` once it is durable (Queclink's SACK mode) and `+ACK:GTHBD` with `+SACK:GTHBD,<version>,<count>$`; `heartbeat` answers only the heartbeat (Traccar's default); `off` sends nothing",
}

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP, plugins.UDP},
		DefaultPort: 5004,
		Description: "Queclink @Track (GL200/GL300/GV300/GV500…): +RESP/+BUFF/+ACK text reports, binary +RSP/+BSP/+EVT/+BVT position reports",
		Options:     []plugins.Option{optAck},
	}
}

// NewSession starts a connection (or a UDP source).
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 10
	}
	return &Session{cfg: cfg, ack: optAck.Get(cfg.Options)}
}

// Session is one connection.
type Session struct {
	cfg plugins.SessionConfig
	ack string
	dev string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
	_ plugins.EOFFramer        = (*Session)(nil)
)

// DeviceID is the device seen last on the connection.
func (s *Session) DeviceID() string { return s.dev }

var textHeads = []string{"+RESP:", "+BUFF:", "+ACK:"}

// binaryLengthAt gives, per binary header, the offset and size of its
// length field (the whole message's length).
var binaryLengthAt = map[string][2]int{
	"+RSP": {9, 2}, "+BSP": {9, 2}, "+EVT": {9, 2}, "+BVT": {9, 2},
	"+INF": {7, 2}, "+BNF": {7, 2},
	"+HBD": {5, 1}, "+ACK": {6, 1},
	"+CRD": {6, 2}, "+BRD": {6, 2}, "+LGN": {6, 2},
}

// kind tells what buf starts with: 't' text, 'b' binary, 0 unknown yet,
// or an error.
func kind(buf []byte) (byte, error) {
	for _, h := range textHeads {
		if len(buf) >= len(h) && string(buf[:len(h)]) == h {
			return 't', nil
		}
	}
	if len(buf) >= 4 {
		if _, ok := binaryLengthAt[string(buf[:4])]; ok && (string(buf[:4]) != "+ACK" || len(buf) >= 5) {
			return 'b', nil
		}
	}
	for _, h := range textHeads {
		if len(buf) < len(h) && string(buf) == h[:len(buf)] {
			return 0, nil
		}
	}
	for h := range binaryLengthAt {
		if len(buf) < len(h) && string(buf) == h[:len(buf)] {
			return 0, nil
		}
	}
	return 0, fmt.Errorf("framing gl200: %w: %q cannot start an @Track message", plugins.ErrMalformed, buf[:min(len(buf), 6)])
}

// Frame frames TCP input: a text message up to and including '$' (old
// firmware ends some reports with a line end instead), a binary message by
// its length field, and line ends between messages as frames of their own.
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if buf[0] == '\r' || buf[0] == '\n' {
		n := 0
		for n < len(buf) && (buf[n] == '\r' || buf[n] == '\n') {
			n++
		}
		return n, nil
	}
	k, err := kind(buf)
	switch {
	case err != nil:
		return 0, err
	case k == 0:
		return 0, nil
	case k == 'b':
		return s.frameBinary(buf)
	}
	limit := buf[:min(len(buf), s.cfg.MaxFrame)]
	if i := bytes.IndexAny(limit, "$\r\n"); i >= 0 {
		if limit[i] == '$' {
			return i + 1, nil
		}
		return i, nil
	}
	if len(buf) >= s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing gl200 text: %w: no '$' within %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
	}
	return 0, nil
}

// FrameAtEOF takes a text report whose '$' is missing (captures of old
// firmware) as ended by the end of the input.
func (s *Session) FrameAtEOF(buf []byte) (int, error) {
	if k, err := kind(buf); err == nil && k == 't' {
		return len(buf), nil
	}
	return 0, nil
}

func (s *Session) frameBinary(buf []byte) (int, error) {
	at := binaryLengthAt[string(buf[:4])]
	if len(buf) < at[0]+at[1] {
		return 0, nil
	}
	var n int
	if at[1] == 1 {
		n = int(buf[at[0]])
	} else {
		n = int(binary.BigEndian.Uint16(buf[at[0]:]))
	}
	if n < at[0]+at[1] {
		return 0, fmt.Errorf("framing gl200 binary: %w: length %d shorter than its header", plugins.ErrMalformed, n)
	}
	if n > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing gl200 binary: %w: length %d, cap %d", plugins.ErrTooLarge, n, s.cfg.MaxFrame)
	}
	if len(buf) < n {
		return 0, nil
	}
	return n, nil
}

// Hand-written matchers for the checks run on every field (regexps cost
// a quarter of the decode time).
type matcher func(string) bool

func (m matcher) MatchString(v string) bool { return m(v) }

func allOf(v string, ok func(c byte) bool) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !ok(v[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool { return isDigit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f') }
func isUpperHex(c byte) bool { return isDigit(c) || (c >= 'A' && c <= 'F') }

var (
	reHex    = matcher(func(v string) bool { return allOf(v, isHexDigit) })
	reDigits = matcher(func(v string) bool { return allOf(v, isDigit) })
	// reCoord: -?[0-9]{1,3}\.[0-9]+
	reCoord = matcher(func(v string) bool {
		v = strings.TrimPrefix(v, "-")
		i := strings.IndexByte(v, '.')
		return i >= 1 && i <= 3 && allOf(v[:i], isDigit) && allOf(v[i+1:], isDigit)
	})
	reStatus   = matcher(func(v string) bool { return len(v) == 6 && allOf(v, isUpperHex) })
	reDeviceID = regexp.MustCompile(`^[0-9A-Za-z]{6,20}$`)
	reVIN      = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`)
	reHours    = regexp.MustCompile(`^([0-9]{1,6}):([0-9]{2}):([0-9]{2})$`)
	reMileage  = regexp.MustCompile(`^[0-9]+\.[0-9]$`)
	reMAC      = regexp.MustCompile(`^[0-9A-Fa-f]{12}$`)
	reSensorID = regexp.MustCompile(`^[0-9A-Fa-f]{16}$`)
	reTemp     = regexp.MustCompile(`^[0-9A-Fa-f]{4}$`)
	reICCID    = regexp.MustCompile(`^[0-9A-Fa-f]{19,20}$`)
)

// Decode decodes one message (a TCP frame or a UDP datagram).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res := plugins.Result{DeviceID: s.dev}
	if len(frame) > s.cfg.MaxFrame {
		return res, fmt.Errorf("decoding gl200 message: %w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	body := bytes.TrimRight(frame, "\r\n ")
	if len(body) == 0 {
		return res, nil
	}
	k, err := kind(body)
	if err != nil {
		return res, fmt.Errorf("decoding gl200 message: %w", unwrapFraming(err))
	}
	switch k {
	case 0:
		return res, fmt.Errorf("decoding gl200 message: %w: truncated header", plugins.ErrMalformed)
	case 'b':
		n, err := s.frameBinary(body)
		if err == nil && n != len(frame) && n != len(body) {
			err = fmt.Errorf("%w: length field says %d bytes, the message has %d", plugins.ErrMalformed, n, len(frame))
		}
		if err != nil {
			return res, fmt.Errorf("decoding gl200 binary message: %w", unwrapFraming(err))
		}
		sigs, dev, err := s.decodeBinary(frame[:n], frame)
		if dev != "" {
			res.DeviceID = dev
		}
		if err == nil {
			err = plugins.CheckSignals(sigs)
		}
		if err != nil {
			return res, fmt.Errorf("decoding gl200 binary message: %w", err)
		}
		for i := range sigs {
			sigs[i].Recv = recv
		}
		res.Signals = sigs
		return res, nil
	}
	if s.cfg.Transport == plugins.UDP && body[len(body)-1] != '$' {
		// Over TCP a line end may end a report of old firmware; a datagram
		// without its '$' cannot be told from a truncated one.
		return res, fmt.Errorf("decoding gl200 message: %w: datagram does not end with '$'", plugins.ErrMalformed)
	}
	text := string(bytes.TrimSuffix(body, []byte("$")))
	if strings.ContainsAny(text, "$\x00") || !isPrintable(text) {
		return res, fmt.Errorf("decoding gl200 message: %w: control bytes or '$' inside the message", plugins.ErrMalformed)
	}
	sigs, ack, dev, err := s.decodeText(text, frame)
	res.DeviceID = s.dev
	if dev != "" {
		res.DeviceID = dev
	}
	if err == nil {
		// A value outside its field's domain (an RPM of 70000, a voltage
		// below zero) refuses the frame here, naming the field.
		err = plugins.CheckSignals(sigs)
	}
	if err != nil {
		return res, fmt.Errorf("decoding gl200 message: %w", err)
	}
	for i := range sigs {
		sigs[i].Recv = recv
	}
	res.Signals, res.Ack = sigs, ack
	return res, nil
}

// unwrapFraming drops the framing prefix of an error reused by Decode.
func unwrapFraming(err error) error {
	for _, e := range []error{plugins.ErrMalformed, plugins.ErrTooLarge} {
		if strings.Contains(err.Error(), e.Error()) {
			msg := err.Error()
			if i := strings.Index(msg, e.Error()); i >= 0 {
				return fmt.Errorf("%w%s", e, msg[i+len(e.Error()):])
			}
		}
	}
	return err
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// message is a split text message.
type message struct {
	head    string // RESP, BUFF or ACK
	typ     string // FRI, HBD, …
	version string // protocol version, "" when the message carries none
	devType string // the version's device type
	f       []string
	first   int // index of the first field after the device name
	send    time.Time
	sendIdx int
	count   string
}

func (s *Session) decodeText(text string, frame []byte) ([]signal.Signal, []byte, string, error) {
	f := strings.Split(text, ",")
	head, typ, ok := strings.Cut(f[0], ":")
	if !ok || !strings.HasPrefix(typ, "GT") || len(typ) != 5 || len(f) < 4 {
		return nil, nil, "", fmt.Errorf("%w: header %q", plugins.ErrMalformed, f[0])
	}
	m := &message{head: strings.TrimPrefix(head, "+"), typ: typ[2:], f: f}
	var dev string
	switch {
	case reHex.MatchString(f[1]) && (len(f[1]) == 6 || len(f[1]) == 10):
		m.version, dev, m.first = f[1], f[2], 4
		m.devType = f[1][:2]
		if len(f[1]) == 10 {
			m.devType = f[1][:6]
		}
	case reDigits.MatchString(f[1]) && len(f[1]) >= 14:
		dev, m.first = f[1], 2 // old firmware: no protocol version
	default:
		return nil, nil, "", fmt.Errorf("%w: protocol version %q", plugins.ErrMalformed, f[1])
	}
	if !reDeviceID.MatchString(dev) {
		return nil, nil, "", fmt.Errorf("%w: device id %q", plugins.ErrMalformed, dev)
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(dev) {
		return nil, nil, dev, fmt.Errorf("%w: device %s", plugins.ErrUnauthorized, dev)
	}
	s.dev = dev
	// The last fields: send time and count (old firmware leaves out the
	// count, or sends the time to the minute).
	n := len(f)
	last := f[n-1]
	m.sendIdx = n - 1
	if len(last) == 4 && reHex.MatchString(last) {
		m.count, m.sendIdx = last, n-2
	}
	if m.sendIdx < m.first-1 {
		return nil, nil, dev, fmt.Errorf("%w: no send time", plugins.ErrMalformed)
	}
	// An empty send time (seen on buffered reports) leaves the GNSS time
	// as the only clock; a report with neither is refused below.
	if v := f[m.sendIdx]; v != "" {
		st, err := parseTime(v)
		if err != nil {
			if m.version == "" {
				return nil, nil, dev, fmt.Errorf("%w: GT%s without protocol version and send time: layout unknown", plugins.ErrUnsupported, m.typ)
			}
			return nil, nil, dev, fmt.Errorf("%w: send time %q", plugins.ErrMalformed, v)
		}
		m.send = st
	}

	if m.head == "ACK" {
		if m.send.IsZero() {
			return nil, nil, dev, fmt.Errorf("%w: acknowledgement without send time", plugins.ErrMalformed)
		}
		return s.decodeAck(m, dev, frame)
	}
	if m.head != "RESP" && m.head != "BUFF" {
		return nil, nil, dev, fmt.Errorf("%w: header %q", plugins.ErrMalformed, f[0])
	}
	blocks, err := m.blocks()
	if err != nil {
		return nil, nil, dev, err
	}
	if m.version == "" && len(blocks) == 0 {
		return nil, nil, dev, fmt.Errorf("%w: GT%s without protocol version and without position: layout unknown", plugins.ErrUnsupported, m.typ)
	}
	if m.send.IsZero() && len(blocks) == 0 {
		return nil, nil, dev, fmt.Errorf("%w: GT%s without send time or GNSS time", plugins.ErrMalformed, m.typ)
	}
	base := signal.New(dev, m.send)
	base.Protocol = Name
	base.Frame = append([]byte(nil), frame...)
	m.common(&base)
	if err := m.specific(&base, blocks); err != nil {
		return nil, nil, dev, err
	}
	var ack []byte
	if s.ack == "all" && m.count != "" {
		ack = []byte("+SACK:" + m.count + "$")
	}
	if len(blocks) == 0 {
		base.SetAttr("time_source", "send_time")
		m.applyOBD(&base)
		return []signal.Signal{base}, ack, dev, nil
	}
	out := make([]signal.Signal, 0, len(blocks))
	for _, b := range blocks {
		sg := base
		sg.Attrs = make(map[string]any, len(base.Attrs)+8)
		for k, v := range base.Attrs {
			sg.Attrs[k] = v
		}
		sg.DTCs = append([]string(nil), base.DTCs...)
		b.apply(&sg)
		m.applyOBD(&sg)
		out = append(out, sg)
	}
	return out, ack, dev, nil
}

func (s *Session) decodeAck(m *message, dev string, frame []byte) ([]signal.Signal, []byte, string, error) {
	if m.typ == "HBD" {
		// The heartbeat: answered, stored nowhere.
		if s.ack == "off" || m.version == "" || m.count == "" {
			return nil, nil, dev, nil
		}
		return nil, []byte("+SACK:GTHBD," + m.version + "," + m.count + "$"), dev, nil
	}
	// A command acknowledgement: kept as a record (what the device
	// answered to which command).
	sg := signal.New(dev, m.send)
	sg.Protocol = Name
	sg.Frame = append([]byte(nil), frame...)
	m.common(&sg)
	sg.SetAttr("time_source", "send_time")
	sg.SetAttr("command", "GT"+m.typ)
	if m.sendIdx > m.first {
		sg.SetAttr("result", strings.Join(m.f[m.first:m.sendIdx], ","))
	}
	return []signal.Signal{sg}, nil, dev, nil
}

func parseTime(v string) (time.Time, error) {
	layout := "20060102150405"
	if len(v) == 12 {
		layout = "200601021504"
	}
	t, err := time.Parse(layout, v)
	if err != nil || len(v) != len(layout) || !reDigits.MatchString(v) {
		return time.Time{}, fmt.Errorf("time %q", v)
	}
	if t.Before(signal.MinTime) || !t.Before(signal.EndTime) {
		return time.Time{}, fmt.Errorf("time %q outside [%d, %d)", v, signal.MinTime.Year(), signal.EndTime.Year())
	}
	return t, nil
}

// common sets the attrs every message carries.
func (m *message) common(sg *signal.Signal) {
	sg.SetAttr("report", "GT"+m.typ)
	if m.head == "BUFF" {
		sg.SetAttr("buffered", true)
	}
	if m.version != "" {
		sg.SetAttr("protocol_version", m.version)
		sg.SetAttr("device_type", m.devType)
	}
	if m.first == 4 && m.f[3] != "" {
		if reVIN.MatchString(m.f[3]) {
			sg.SetAttr("vin", m.f[3])
		} else {
			sg.SetAttr("device_name", m.f[3])
		}
	}
	// The count number is a transmission counter, not part of the
	// record: a resend with a new count must keep the record's key.
}

// block is one GNSS fix of a report.
type block struct {
	at                         int // index of the UTC time field
	ts                         time.Time
	lat, lon, alt, speed, head float64
	hdop                       float64
	mcc, mnc, lac, cell        int64
	hasCell                    bool
}

// blocks finds the GNSS blocks: a UTC time preceded by latitude and
// longitude (and, before them, altitude, azimuth, speed, accuracy).
func (m *message) blocks() ([]block, error) {
	f := m.f
	var out []block
	for i := m.first + 2; i < len(f); i++ {
		if i == m.sendIdx || len(f[i]) != 14 || !reDigits.MatchString(f[i]) || !reCoord.MatchString(f[i-1]) || !reCoord.MatchString(f[i-2]) {
			continue
		}
		b := block{at: i, alt: math.NaN(), speed: math.NaN(), head: math.NaN(), hdop: math.NaN()}
		var err error
		if b.ts, err = parseTime(f[i]); err != nil {
			return nil, fmt.Errorf("%w: GNSS time %q", plugins.ErrMalformed, f[i])
		}
		b.lat, _ = strconv.ParseFloat(f[i-1], 64)
		b.lon, _ = strconv.ParseFloat(f[i-2], 64)
		if !inDomain(signal.FieldLat, b.lat) || !inDomain(signal.FieldLon, b.lon) {
			return nil, fmt.Errorf("%w: position %s,%s out of range", plugins.ErrMalformed, f[i-1], f[i-2])
		}
		for _, p := range []struct {
			idx   int
			name  string
			dst   *float64
			field signal.Field
		}{{i - 3, "altitude", &b.alt, signal.FieldAlt}, {i - 4, "azimuth", &b.head, signal.FieldHeading}, {i - 5, "speed", &b.speed, signal.FieldSpeed}} {
			if p.idx < m.first || f[p.idx] == "" {
				continue
			}
			v, err := strconv.ParseFloat(f[p.idx], 64)
			if err != nil || !inDomain(p.field, v) {
				return nil, fmt.Errorf("%w: %s %q", plugins.ErrMalformed, p.name, f[p.idx])
			}
			*p.dst = v
		}
		if j := i - 6; j >= m.first {
			if v, err := strconv.ParseFloat(f[j], 64); err == nil && inDomain(signal.FieldHDOP, v) {
				b.hdop = v
			}
		}
		if i+4 < m.sendIdx && len(f[i+1]) >= 3 && len(f[i+1]) <= 4 && reDigits.MatchString(f[i+1]) {
			mcc, e1 := strconv.ParseInt(f[i+1], 10, 32)
			mnc, e2 := strconv.ParseInt(f[i+2], 10, 32)
			lac, e3 := strconv.ParseInt(f[i+3], 16, 64)
			cell, e4 := strconv.ParseInt(f[i+4], 16, 64)
			if e1 == nil && e2 == nil && e3 == nil && e4 == nil {
				b.mcc, b.mnc, b.lac, b.cell, b.hasCell = mcc, mnc, lac, cell, true
			}
		}
		out = append(out, b)
	}
	return out, nil
}

func (b block) apply(sg *signal.Signal) {
	sg.TS = b.ts
	sg.Lat, sg.Lon, sg.Alt, sg.Speed, sg.Heading = b.lat, b.lon, b.alt, b.speed, b.head
	if !math.IsNaN(b.hdop) {
		// Queclink: GNSS accuracy 0 means no fix, 1…50 is the HDOP.
		sg.Valid = signal.FlagOf(b.hdop > 0)
		if b.hdop > 0 {
			sg.HDOP = b.hdop
		}
	}
	if b.hasCell {
		sg.SetAttr("mcc", b.mcc)
		sg.SetAttr("mnc", b.mnc)
		sg.SetAttr("lac", b.lac)
		sg.SetAttr("cell_id", b.cell)
	}
	sg.SetAttr("time_source", "gnss")
}

// alarms maps report types to the alarm they raise.
var alarms = map[string]string{
	"SOS": "sos", "PNA": "power_on", "PFA": "power_off", "MPN": "power_restored",
	"MPF": "power_cut", "BPL": "low_battery", "SPD": "overspeed", "TOW": "tow",
	"JDR": "jamming", "JDS": "jamming", "CRA": "accident", "STC": "charging_stopped",
	"PNL": "power_off", "DOG": "watchdog", "FLA": "fuel_leak",
}

func atoiOK(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

func (m *message) field(i int) string {
	if i < m.first || i >= m.sendIdx {
		return ""
	}
	return m.f[i]
}

// specific sets the values of one report type.
func (m *message) specific(sg *signal.Signal, blocks []block) error {
	if a, ok := alarms[m.typ]; ok {
		sg.SetAttr("alarm", a)
	}
	switch m.typ {
	case "IGN", "VGN":
		sg.SetAttr("ignition", true)
	case "IGF", "VGF":
		sg.SetAttr("ignition", false)
	case "HBM":
		if rt := m.field(5); len(rt) == 2 {
			switch rt[1] {
			case '0':
				sg.SetAttr("alarm", "hard_braking")
			case '1':
				sg.SetAttr("alarm", "hard_acceleration")
			case '2':
				sg.SetAttr("alarm", "hard_cornering")
			}
		}
	case "DAT":
		if len(m.f) > 12 {
			sg.SetAttr("data", m.field(7))
		} else if d := m.field(4); d != "" {
			sg.SetAttr("data", d)
		}
	case "DTT":
		if d := m.field(m.sendIdx - 1); d != "" {
			sg.SetAttr("data", d)
		}
	case "DAR":
		if v, ok := atoiOK(m.field(4)); ok {
			sg.SetAttr("warning_type", v)
		}
	case "BAA", "BID":
		for i := m.first; i+1 < m.sendIdx; i++ {
			if reMAC.MatchString(m.f[i]) {
				sg.SetAttr("accessory_mac", m.f[i])
				if mv, ok := atoiOK(m.f[i+1]); ok {
					sg.SetAttr("accessory_voltage", float64(mv)/1000)
				}
				break
			}
		}
	case "INF":
		m.inf(sg)
	case "STR", "CTN":
		if m.devType == "40" || m.devType == "44" {
			if v, ok := atoiOK(m.field(8)); ok && v >= 0 && v <= 100 {
				sg.SetAttr("battery_level", v)
			}
		}
	case "ERI":
		if mask, err := strconv.ParseUint(m.field(4), 16, 32); err == nil && mask&0x02 != 0 && len(blocks) > 0 {
			m.oneWire(sg, blocks[len(blocks)-1].at)
		}
	}
	if len(blocks) > 0 {
		m.tail(sg, blocks[len(blocks)-1].at)
	}
	return nil
}

// lastFieldBattery are device types whose position reports end with the
// backup battery percentage before the send time (GL200, GL300, GL500,
// GT501 and relatives).
var lastFieldBattery = map[string]bool{"02": true, "07": true, "11": true, "1A": true, "21": true, "2C": true, "42": true}

var lastFieldReports = map[string]bool{"FRI": true, "RTL": true, "NMR": true, "SOS": true, "PNL": true, "GEO": true, "SPD": true, "TOW": true, "LBC": true}

// tail reads what follows the last GNSS block: the mileage, hour meter,
// backup battery percentage and device status of the GV series, or the
// battery percentage of the GL series.
func (m *message) tail(sg *signal.Signal, at int) {
	start := at + 5
	for i := start; i < m.sendIdx; i++ {
		if !reStatus.MatchString(m.f[i]) {
			continue
		}
		prev := m.f[i-1]
		bat, ok := atoiOK(prev)
		if prev != "" && (!ok || bat < 0 || bat > 100) {
			continue
		}
		if ok {
			sg.SetAttr("battery_level", bat)
		}
		st, _ := strconv.ParseUint(m.f[i], 16, 32)
		sg.SetAttr("device_status", m.f[i])
		switch st >> 20 {
		case 1:
			sg.SetAttr("ignition", false)
		case 2:
			sg.SetAttr("ignition", true)
		}
		switch (st >> 16) & 0xF {
		case 1:
			sg.SetAttr("motion", false)
		case 2:
			sg.SetAttr("motion", true)
		}
		sg.SetAttr("inputs", int64((st>>8)&0xFF))
		sg.SetAttr("outputs", int64(st&0xFF))
		for j := start; j < i; j++ {
			if reMileage.MatchString(m.f[j]) {
				if km, err := strconv.ParseFloat(m.f[j], 64); err == nil && inDomain(signal.FieldOdometer, km) {
					sg.Odometer = km
				}
				break
			}
		}
		break
	}
	for i := at + 1; i < m.sendIdx; i++ {
		if strings.IndexByte(m.f[i], ':') < 0 {
			continue
		}
		if h := reHours.FindStringSubmatch(m.f[i]); h != nil {
			hh, _ := strconv.ParseFloat(h[1], 64)
			mm, _ := strconv.ParseFloat(h[2], 64)
			ss, _ := strconv.ParseFloat(h[3], 64)
			sg.SetAttr("engine_hours", hh+mm/60+ss/3600)
			break
		}
	}
	if _, ok := sg.Attrs["battery_level"]; !ok && lastFieldBattery[m.devType] && lastFieldReports[m.typ] && m.sendIdx-1 > at {
		if v, ok := atoiOK(m.f[m.sendIdx-1]); ok && v >= 0 && v <= 100 {
			sg.SetAttr("battery_level", v)
		}
	}
}

// oneWire reads the 1-wire temperature sensors of a GTERI report: a
// 16-hex-digit sensor id, type 1 (temperature) and a signed 1/16 °C value.
func (m *message) oneWire(sg *signal.Signal, at int) {
	n := 0
	for i := at + 1; i+2 < m.sendIdx; i++ {
		if reSensorID.MatchString(m.f[i]) && m.f[i+1] == "1" {
			n++
			if reTemp.MatchString(m.f[i+2]) {
				v, _ := strconv.ParseUint(m.f[i+2], 16, 16)
				sg.SetAttr(fmt.Sprintf("temp%d", n), float64(int16(v))*0.0625)
			}
			sg.SetAttr(fmt.Sprintf("temp%d_id", n), m.f[i])
		}
	}
}

// inf reads GTINF: ICCID, then signal strength, BER, external power
// supply flag, its voltage (mV), a second supply (mV) and the backup
// battery voltage.
func (m *message) inf(sg *signal.Signal) {
	k := -1
	for i := m.first; i <= m.first+2 && i < m.sendIdx; i++ {
		if reICCID.MatchString(m.f[i]) {
			k = i
			break
		}
	}
	if k < 0 {
		return
	}
	sg.SetAttr("iccid", m.f[k])
	if v, ok := atoiOK(m.field(k + 1)); ok {
		sg.SetAttr("rssi", v)
	}
	if v, ok := atoiOK(m.field(k + 4)); ok && v >= 1000 && inDomain(signal.FieldVoltage, float64(v)/1000) {
		sg.Voltage = float64(v) / 1000
	}
	if v, ok := atoiOK(m.field(k + 5)); ok && v >= 1000 {
		sg.SetAttr("power2", float64(v)/1000)
	}
	if v, err := strconv.ParseFloat(m.field(k+6), 64); err == nil && strings.Contains(m.field(k+6), ".") && v >= 0 && v < 10 {
		sg.SetAttr("battery_v", v)
	}
}

// applyOBD adds the OBD (GTOBD) and CAN (GTCAN) values; called after the
// GNSS block so that the GNSS speed keeps the speed field.
func (m *message) applyOBD(sg *signal.Signal) {
	switch m.typ {
	case "OBD":
		m.obd(sg)
	case "CAN":
		m.can(sg)
	}
}

func scaled(sg *signal.Signal, pid byte, v float64) {
	if val, err := obd2.Scaled(pid, v); err == nil {
		val.Apply(sg)
	}
}

func num(v string) (float64, bool) {
	if v == "" || strings.EqualFold(v, "nan") {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
}

// obd reads GTOBD (GV500): device name, report type, OBD report mask, then one field
// per mask bit 0–15: VIN, connected, power voltage (mV), supported PIDs,
// RPM, speed, coolant, fuel consumption, distance since DTCs cleared,
// distance with MIL on, MIL, DTC count, DTCs, throttle, load, fuel level.
func (m *message) obd(sg *signal.Signal) {
	// Field 3 holds the VIN, field 4 the device name.
	mask, err := strconv.ParseUint(m.field(m.first+2), 16, 32)
	if err != nil {
		return
	}
	i := m.first + 3
	for bit := 0; bit < 16; bit++ {
		if mask&(1<<bit) == 0 {
			continue
		}
		v := m.field(i)
		i++
		if v == "" {
			continue
		}
		x, isNum := num(v)
		switch bit {
		case 0:
			if reVIN.MatchString(v) {
				sg.SetAttr("vin", v)
			}
		case 1:
			sg.SetAttr("obd_connected", v == "1")
		case 2:
			if isNum {
				scaled(sg, obd2.PIDModuleVoltage, x/1000)
			}
		case 3:
			sg.SetAttr("supported_pids", v)
		case 4:
			if isNum {
				scaled(sg, obd2.PIDRPM, x)
			}
		case 5:
			if isNum {
				scaled(sg, obd2.PIDSpeed, x)
			}
		case 6:
			if isNum {
				scaled(sg, obd2.PIDCoolant, x)
			}
		case 7:
			if isNum {
				sg.SetAttr("fuel_consumption", x)
			}
		case 8:
			if isNum {
				scaled(sg, obd2.PIDDistanceCleared, x)
			}
		case 9:
			if isNum {
				scaled(sg, obd2.PIDDistanceMIL, x)
			}
		case 10:
			sg.SetAttr("mil", v == "1")
		case 11:
			if isNum {
				sg.SetAttr("dtc_count", int64(x))
			}
		case 12:
			if len(v)%4 == 0 && reHex.MatchString(v) {
				words := make([]uint16, 0, len(v)/4)
				for j := 0; j+4 <= len(v); j += 4 {
					w, _ := strconv.ParseUint(v[j:j+4], 16, 16)
					words = append(words, uint16(w))
				}
				obd2.AddDTCs(sg, obd2.DTCWords(words)...)
			}
		case 13:
			if isNum && x >= 0 && x <= 100 {
				scaled(sg, obd2.PIDThrottle, x)
			}
		case 14:
			if isNum && x >= 0 && x <= 100 {
				scaled(sg, obd2.PIDEngineLoad, x)
			}
		case 15:
			if isNum && x >= 0 && x <= 100 {
				scaled(sg, obd2.PIDFuelLevel, x)
			}
		}
	}
}

// can reads GTCAN (CAN100 / GV-series CAN bus): report type, CAN state,
// CAN report mask, then one field per mask bit 0–21 (VIN, ignition key,
// total distance, total fuel used, RPM, speed, coolant, fuel consumption,
// fuel level, range, accelerator pedal, engine hours, driving time, idle
// time, idle fuel, axle weight, tachograph, indicators, lights, doors,
// vehicle overspeed time, engine overspeed time).
func (m *message) can(sg *signal.Signal) {
	mask, err := strconv.ParseUint(m.field(m.first+2), 16, 32)
	if err != nil {
		return
	}
	i := m.first + 3
	for bit := 0; bit < 22; bit++ {
		if mask&(1<<bit) == 0 {
			continue
		}
		v := m.field(i)
		i++
		if v == "" {
			continue
		}
		x, isNum := num(v)
		switch bit {
		case 0:
			if reVIN.MatchString(v) {
				sg.SetAttr("vin", v)
			}
		case 1:
			sg.SetAttr("ignition_key", v)
		case 2:
			// Total distance: "H" + hectometres, else km.
			if h, ok := strings.CutPrefix(v, "H"); ok {
				if d, ok := num(h); ok {
					scaled(sg, obd2.PIDOdometer, d/10)
				}
			} else if isNum {
				scaled(sg, obd2.PIDOdometer, x)
			}
		case 3:
			if isNum {
				sg.SetAttr("fuel_used", x)
			}
		case 4:
			if isNum {
				scaled(sg, obd2.PIDRPM, x)
			}
		case 5:
			if isNum {
				scaled(sg, obd2.PIDSpeed, x)
			}
		case 6:
			if isNum {
				scaled(sg, obd2.PIDCoolant, x)
			}
		case 7:
			sg.SetAttr("fuel_consumption", v)
		case 8:
			// Fuel level: "P" + percent or "L" + litres.
			if p, ok := strings.CutPrefix(v, "P"); ok {
				if x, ok := num(p); ok && x >= 0 && x <= 100 {
					scaled(sg, obd2.PIDFuelLevel, x)
				}
			} else if l, ok := strings.CutPrefix(v, "L"); ok {
				if x, ok := num(l); ok {
					sg.SetAttr("fuel_litres", x)
				}
			}
		case 10:
			if isNum {
				sg.SetAttr("accelerator_pedal", x)
			}
		case 11:
			if isNum {
				sg.SetAttr("engine_hours", x)
			}
		case 12:
			if isNum {
				sg.SetAttr("driving_hours", x)
			}
		case 13:
			if isNum {
				sg.SetAttr("idle_hours", x)
			}
		}
	}
}

func inDomain(f signal.Field, v float64) bool {
	d, ok := signal.DomainOf(f)
	return ok && d.Contains(v)
}
