// Package atrack decodes the ATrack protocol (AK1, AK7, AK11, AX7, AX9,
// AL1 and the other ATrack trackers): binary position reports ("@P",
// CRC-16/ARC, acknowledged with 0xFE 0x02, the unit id and the sequence
// number), their text form ("@P,<crc>,<len>,<seq>,<id>,…" one record per
// CRLF line), keep-alives, command replies ($OK, $ERROR, $INFO) and the
// custom report formats (%CI) as listener options. See README.md.
package atrack

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "atrack"

// DefaultPort is Traccar's port for the protocol.
const DefaultPort = 5044

const (
	defaultMaxFrame = 64 << 10
	keepAliveLen    = 12
	binHeaderLen    = 16 // prefix, CRC, length, sequence, unit id
	minRecordLen    = 40 // the fixed part of a binary record
	// noTemp is the temperature ATrack sends for a sensor that is not
	// connected (200.0 °C).
	noTemp = 2000
)

// Options: the device's report format, as configured on it.
var (
	optCustom = plugins.BoolOption{
		Name: "custom",
		Doc:  "reports carry the custom data of a %CI report format after the standard fields",
	}
	optForm = plugins.StringOption{
		Name: "form", MaxLen: 1024,
		Doc: "the custom report format (e.g. %MV%BV%SA) when the device does not send it in each report; implies custom",
	}
	optLongDate = plugins.BoolOption{
		Name: "long_date",
		Doc:  "binary reports carry dates as year, month, day, hour, minute, second instead of Unix seconds",
	}
)

// Decoder is the ATrack protocol. The zero value is ready to use.
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
		DefaultPort: DefaultPort,
		Description: "ATrack: binary @P reports (CRC-16/ARC, acked FE 02 + id + sequence), text @P reports, custom %CI formats, $INFO/$OK replies",
		Options:     []plugins.Option{optCustom, optForm, optLongDate},
	}
}

// NewSession starts one connection's state.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Session{dec: d, cfg: cfg, log: log.Named(Name)}
	s.form = optForm.Get(cfg.Options)
	s.custom = optCustom.Get(cfg.Options) || s.form != ""
	s.longDate = optLongDate.Get(cfg.Options)
	return s
}

// Session is one TCP connection or one UDP source (a datagram holds one
// frame).
type Session struct {
	dec      *Decoder
	cfg      plugins.SessionConfig
	log      hclog.Logger
	unit     string
	custom   bool
	form     string
	longDate bool
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
	_ plugins.EOFFramer        = (*Session)(nil)
)

// DeviceID is the unit id of the last accepted report ("" before one).
func (s *Session) DeviceID() string { return s.unit }

// Frame returns the length of the frame at the start of buf.
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	c := buf[0]
	if c != '@' && c != '$' && c != 0xFE && c >= 0x20 {
		return 0, fmt.Errorf("framing atrack report: %w: first byte 0x%02x", plugins.ErrMalformed, c)
	}
	if len(buf) < 3 {
		return 0, nil
	}
	switch {
	case buf[0] == 0xFE && buf[1] == 0x02:
		if len(buf) < keepAliveLen {
			return 0, nil
		}
		return keepAliveLen, nil
	case buf[0] == '$':
		return s.line(buf)
	case buf[2] == ',':
		return s.textLen(buf)
	}
	if len(buf) < 6 {
		return 0, nil
	}
	total := 6 + int(binary.BigEndian.Uint16(buf[4:6]))
	if total > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing atrack report: %w: %d bytes, cap %d", plugins.ErrTooLarge, total, s.cfg.MaxFrame)
	}
	if total < binHeaderLen {
		return 0, fmt.Errorf("framing atrack report: %w: length field %d is shorter than the header", plugins.ErrMalformed, total-6)
	}
	if len(buf) < total {
		return 0, nil
	}
	return total, nil
}

// line frames a reply line ending in CRLF.
func (s *Session) line(buf []byte) (int, error) {
	i := bytes.Index(buf, []byte("\r\n"))
	if i < 0 {
		if len(buf) > s.cfg.MaxFrame {
			return 0, fmt.Errorf("framing atrack reply: %w: no CRLF in %d bytes, cap %d", plugins.ErrTooLarge, len(buf), s.cfg.MaxFrame)
		}
		return 0, nil
	}
	return i + 2, nil
}

// textLen frames a text report: the length field (the third) counts the
// bytes after its own comma, the closing CRLF included.
func (s *Session) textLen(buf []byte) (int, error) {
	total, err := s.textTotal(buf)
	if err != nil || total == 0 {
		return 0, err
	}
	if len(buf) < total {
		return 0, nil
	}
	if buf[total-2] != '\r' || buf[total-1] != '\n' {
		return 0, fmt.Errorf("framing atrack text report: %w: the length field does not end the report at a CRLF", plugins.ErrMalformed)
	}
	return total, nil
}

// textTotal reads the length a text report's header announces (0 while
// the header is incomplete).
func (s *Session) textTotal(buf []byte) (int, error) {
	// prefix , crc , len ,
	c1 := 2
	c2 := indexFrom(buf, c1+1, ',', 8)
	if c2 < 0 {
		return s.needMore(buf, c1+8)
	}
	c3 := indexFrom(buf, c2+1, ',', 8)
	if c3 < 0 {
		return s.needMore(buf, c2+8)
	}
	n, err := strconv.Atoi(string(buf[c2+1 : c3]))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("framing atrack text report: %w: length field %q", plugins.ErrMalformed, buf[c2+1:c3])
	}
	total := c3 + n
	if total > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing atrack text report: %w: %d bytes, cap %d", plugins.ErrTooLarge, total, s.cfg.MaxFrame)
	}
	if total < c3+3 {
		return 0, fmt.Errorf("framing atrack text report: %w: length field %d is too short", plugins.ErrMalformed, n)
	}
	return total, nil
}

// FrameAtEOF takes a text report that lost its closing CRLF (a capture,
// a log line given to `fleetcore decode`) as ended by the end of the
// input, when its length field announces exactly those two bytes more.
// The gateway never calls it (see plugins.EOFFramer).
func (s *Session) FrameAtEOF(buf []byte) (int, error) {
	if missingCRLF(s, buf) {
		return len(buf), nil
	}
	return 0, nil
}

// missingCRLF reports a text report complete but for its closing CRLF.
func missingCRLF(s *Session, b []byte) bool {
	if len(b) < 3 || b[0] == '$' || b[0] == 0xFE || b[2] != ',' || bytes.HasSuffix(b, []byte("\r\n")) {
		return false
	}
	total, err := s.textTotal(b)
	return err == nil && total == len(b)+2
}

// needMore asks for more bytes while a field could still end within max.
func (s *Session) needMore(buf []byte, max int) (int, error) {
	if len(buf) >= max {
		return 0, fmt.Errorf("framing atrack text report: %w: header field too long", plugins.ErrMalformed)
	}
	return 0, nil
}

func indexFrom(b []byte, from int, c byte, max int) int {
	for i := from; i < len(b) && i < from+max; i++ {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// Decode decodes one frame.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res := plugins.Result{DeviceID: s.unit}
	raw := frame
	if missingCRLF(s, frame) {
		// Framed by FrameAtEOF: the CRC covers the CRLF the input lost.
		frame = append(frame[:len(frame):len(frame)], '\r', '\n')
	}
	// The frame is checked as Frame checks it (its error names that step).
	n, err := s.Frame(frame)
	if err != nil {
		return res, err
	}
	if n == 0 || n != len(frame) {
		return res, fmt.Errorf("decoding atrack frame: %w: its length says %d bytes, it has %d", plugins.ErrMalformed, n, len(frame))
	}
	var sigs []signal.Signal
	switch {
	case frame[0] == 0xFE && frame[1] == 0x02:
		// Keep-alive: FE 02, unit id, sequence; echoed back.
		if err := s.identify(strconv.FormatUint(binary.BigEndian.Uint64(frame[2:10]), 10)); err != nil {
			return plugins.Result{DeviceID: s.unit}, fmt.Errorf("decoding atrack keep-alive: %w", err)
		}
		return plugins.Result{DeviceID: s.unit, Ack: append([]byte(nil), frame...)}, nil
	case frame[0] == '$':
		sigs, err = s.reply(frame, recv)
	case frame[2] == ',':
		sigs, err = s.text(frame)
	default:
		sigs, res.Ack, err = s.binary(frame)
	}
	if err != nil {
		return plugins.Result{DeviceID: s.unit}, fmt.Errorf("decoding atrack report: %w", err)
	}
	res.DeviceID = s.unit
	raw = append([]byte(nil), raw...)
	recv = recv.UTC()
	for i := range sigs {
		sigs[i].DeviceID = s.unit
		sigs[i].Protocol = Name
		sigs[i].Recv = recv
		sigs[i].Frame = raw
	}
	res.Signals = sigs
	return res, nil
}

func (s *Session) identify(unit string) error {
	if unit == "" || !printable(unit) || len(unit) > signal.MaxDeviceIDBytes {
		return fmt.Errorf("%w: unit id %q", plugins.ErrMalformed, unit)
	}
	if unit == s.unit {
		return nil
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(unit) {
		s.log.Info("device refused", "unit", unit, "remote", s.cfg.RemoteAddr)
		return fmt.Errorf("%w: unit %s", plugins.ErrUnauthorized, unit)
	}
	s.unit = unit
	return nil
}

func printable(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7E {
			return false
		}
	}
	return true
}

// binary decodes a binary report: prefix (2), CRC-16/ARC of what follows
// the CRC (2), length (2), sequence (2), unit id (8), records. "@R" is a
// photo chunk, not stored.
func (s *Session) binary(frame []byte) ([]signal.Signal, []byte, error) {
	want := binary.BigEndian.Uint16(frame[2:4])
	if got := CRC16(frame[4:]); got != want {
		return nil, nil, fmt.Errorf("%w: CRC-16/ARC is 0x%04x, report says 0x%04x", plugins.ErrChecksum, got, want)
	}
	seq := frame[6:8]
	id := frame[8:16]
	if err := s.identify(strconv.FormatUint(binary.BigEndian.Uint64(id), 10)); err != nil {
		return nil, nil, err
	}
	ack := append(append([]byte{0xFE, 0x02}, id...), seq...)
	if frame[0] == '@' && frame[1] == 'R' {
		return nil, nil, fmt.Errorf("%w: photo chunk (@R) not stored", plugins.ErrUnsupported)
	}
	r := &reader{b: frame[binHeaderLen:]}
	var sigs []signal.Signal
	for r.left() >= minRecordLen {
		sig, stop := s.binaryRecord(r)
		if r.err != nil {
			return nil, nil, fmt.Errorf("reading record %d: %w", len(sigs)+1, r.err)
		}
		sigs = append(sigs, sig)
		if stop {
			break
		}
	}
	if len(sigs) == 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes hold no record", plugins.ErrMalformed, r.left())
	}
	if r.left() > 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes after %d records", plugins.ErrMalformed, r.left(), len(sigs))
	}
	return sigs, ack, nil
}

// reader reads big-endian values and remembers the first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.left() < n {
		r.err = fmt.Errorf("%w: data ends at byte %d, %d more needed at %d", plugins.ErrMalformed, len(r.b), n, r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) uint(n int) uint64 {
	var x uint64
	for _, c := range r.take(n) {
		x = x<<8 | uint64(c)
	}
	return x
}

// str reads a NUL-terminated string.
func (r *reader) str() string {
	if r.err != nil {
		return ""
	}
	i := bytes.IndexByte(r.b[r.off:], 0)
	if i < 0 {
		r.err = fmt.Errorf("%w: unterminated string at %d", plugins.ErrMalformed, r.off)
		return ""
	}
	v := r.b[r.off : r.off+i]
	r.off += i + 1
	if !printable(string(v)) {
		return hex.EncodeToString(v)
	}
	return string(v)
}

// binaryRecord reads one record; stop reports custom data the decoder
// could not read to its end (the rest of the report is kept raw on it).
func (s *Session) binaryRecord(r *reader) (signal.Signal, bool) {
	var ts time.Time
	sig := signal.New("", time.Time{})
	if s.longDate {
		d := r.take(7)
		r.take(14) // RTC and send times
		if d != nil {
			ts = time.Date(int(binary.BigEndian.Uint16(d)), time.Month(d[2]), int(d[3]), int(d[4]), int(d[5]), int(d[6]), 0, time.UTC)
			if d[2] < 1 || d[2] > 12 || d[3] < 1 || d[3] > 31 || d[4] > 23 || d[5] > 59 || d[6] > 59 {
				r.err = fmt.Errorf("%w: date %x", plugins.ErrMalformed, d)
			}
		}
	} else {
		ts = time.Unix(int64(r.uint(4)), 0)
		sig.SetAttr("rtc_time", int64(r.uint(4)))
		r.take(4) // send time
	}
	sig.TS = ts.UTC()
	lon := int32(r.uint(4))
	lat := int32(r.uint(4))
	setPosition(&sig, float64(lon)/1e6, float64(lat)/1e6)
	sig.Heading = float64(r.uint(2))
	sig.SetAttr("event", int64(r.uint(1)))
	sig.Odometer = float64(r.uint(4)) / 10
	sig.HDOP = float64(r.uint(2)) / 10
	sig.SetAttr("input", int64(r.uint(1)))
	sig.Speed = float64(r.uint(2))
	sig.SetAttr("output", int64(r.uint(1)))
	sig.SetAttr("adc1_v", float64(r.uint(2))/1000)
	if d := r.str(); d != "" {
		sig.SetAttr("driver_id", d)
	}
	setTemp(&sig, "temp1", int64(int16(r.uint(2))))
	setTemp(&sig, "temp2", int64(int16(r.uint(2))))
	if m := r.str(); m != "" {
		sig.SetAttr("message", m)
	}
	if r.err != nil || !s.custom {
		return sig, false
	}
	form := s.form
	if form == "" {
		f := strings.TrimSpace(r.str())
		if r.err != nil {
			return sig, false
		}
		if !strings.HasPrefix(f, "%CI") {
			r.err = fmt.Errorf("%w: custom data without a %%CI format (%q)", plugins.ErrMalformed, f)
			return sig, false
		}
		form = f[3:]
	}
	return sig, binaryCustom(&sig, r, form)
}

func setPosition(sig *signal.Signal, lon, lat float64) {
	sig.Lat, sig.Lon = lat, lon
	// The report has no fix flag: 0,0 is what the tracker sends before
	// its first fix.
	sig.Valid = signal.FlagOf(lat != 0 || lon != 0)
}

func setTemp(sig *signal.Signal, name string, v int64) {
	if v != noTemp {
		sig.SetAttr(name, float64(v)/10)
	}
}

// binarySizes are the sizes of the binary custom fields (ATrack's %
// codes); -1 marks a NUL-terminated string.
var binarySizes = map[string]int{
	"SA": 1, "MV": 2, "BV": 2, "GQ": 1, "CE": 4, "LC": 2, "CN": 4, "RL": 1,
	"PC": 4, "AT": 4, "RP": 2, "GS": 1, "DT": 1, "VN": -1, "MF": 2, "EL": 1,
	"TR": 1, "ET": 2, "FL": 1, "ML": 1, "FC": 4, "CI": -1, "AV1": 2, "NC": -1,
	"SM": 2, "GL": -1, "MA": -1, "PD": 1, "CD": -1, "CM": 8, "GN": 60, "GV": 6,
	"ME": 8, "IA": 1, "MP": 1,
}

// binaryCustom reads the custom fields of form. A code of unknown size
// stops the reading: the bytes from there to the end of the report are
// kept as attr custom_unparsed (hex) with the code in
// custom_unparsed_field, and stop is true.
func binaryCustom(sig *signal.Signal, r *reader, form string) (stop bool) {
	for _, code := range formCodes(form) {
		size, ok := binarySizes[code]
		if !ok {
			sig.SetAttr("custom_unparsed_field", code)
			sig.SetAttr("custom_unparsed", hex.EncodeToString(r.take(r.left())))
			return true
		}
		if size < 0 {
			v := r.str()
			if r.err == nil && v != "" {
				customText(sig, code, v)
			}
			continue
		}
		v := r.take(size)
		if v == nil {
			return false
		}
		var x uint64
		for _, c := range v {
			x = x<<8 | uint64(c)
		}
		if code == "GN" || code == "GV" {
			sig.SetAttr(attrName(code), hex.EncodeToString(v))
			continue
		}
		if allOnes(v) && size <= 2 {
			continue // not available
		}
		if err := customNumber(sig, code, float64(x)); err != nil && r.err == nil {
			r.err = err
		}
	}
	return false
}

func allOnes(v []byte) bool {
	for _, c := range v {
		if c != 0xFF {
			return false
		}
	}
	return true
}

// formCodes splits "%MV%BV%SA" (or "MV%BV%SA") into its codes.
func formCodes(form string) []string {
	var out []string
	for _, c := range strings.Split(strings.TrimPrefix(form, "%"), "%") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// attrName is the attribute of a custom code without a canonical field.
func attrName(code string) string {
	switch code {
	case "BV":
		return "battery_v"
	case "GQ":
		return "gsm_quality"
	case "CE":
		return "cell_id"
	case "LC":
		return "lac"
	case "PC":
		return "count1"
	case "GS":
		return "rssi"
	case "FC":
		return "fuel_consumption"
	case "AV1":
		return "adc1"
	case "CD":
		return "iccid"
	case "IA":
		return "intake_temp"
	case "MF":
		return "maf"
	case "ML":
		return "mil"
	case "PD":
		return "pending_code_status"
	case "SM":
		return "max_speed"
	case "RL":
		return "rxlev"
	case "MP":
		return "map_kpa"
	case "CM":
		return "imsi"
	case "ME":
		return "imei"
	case "VN":
		return "vin"
	case "GN":
		return "g_sensor"
	case "GV":
		return "g_force_max"
	case "NC":
		return "neighbor_cells"
	case "GL":
		return "google_link"
	case "MA":
		return "mac"
	}
	return "custom_" + strings.ToLower(code)
}

// canonical sets a canonical field, refusing a value outside its domain.
func canonical(sig *signal.Signal, f signal.Field, code string, v float64) error {
	if d, ok := signal.DomainOf(f); ok && !d.Contains(v) {
		return fmt.Errorf("%w: custom field %s gives %s %v, outside %v..%v", plugins.ErrMalformed, code, f, v, d.Min, d.Max)
	}
	sig.SetNumber(f, v)
	return nil
}

// obdCodes are the custom codes that carry an OBD-II PID's value in the
// PID's unit (the AX7/AK11 OBD readings): they go through protocols/obd2
// like every decoder's PIDs (canonical field, or the PID's attr name).
var obdCodes = map[string]byte{
	"RP": obd2.PIDRPM, "ET": obd2.PIDCoolant, "FL": obd2.PIDFuelLevel, "EL": obd2.PIDEngineLoad,
	"TR": obd2.PIDThrottle, "IA": 0x0F, "MP": 0x0B,
}

// customNumber stores one numeric custom field.
func customNumber(sig *signal.Signal, code string, v float64) error {
	if pid, ok := obdCodes[code]; ok {
		if p, known := obd2.Lookup(pid); known {
			if d, ok := signal.DomainOf(p.Field); ok && !d.Contains(v) {
				return fmt.Errorf("%w: custom field %s gives %s %v, outside %v..%v", plugins.ErrMalformed, code, p.Field, v, d.Min, d.Max)
			}
		}
		val, err := obd2.Scaled(pid, v)
		if err != nil {
			return fmt.Errorf("%w: custom field %s: %w", plugins.ErrMalformed, code, err)
		}
		val.Apply(sig)
		return nil
	}
	switch code {
	case "SA":
		return canonical(sig, signal.FieldSats, code, v)
	case "MV":
		return canonical(sig, signal.FieldVoltage, code, v/10)
	case "BV":
		sig.SetAttr("battery_v", v/10)
	case "AT":
		return canonical(sig, signal.FieldAlt, code, v)
	case "DT":
		sig.SetAttr("archive", v == 1)
	case "MT":
		sig.SetAttr("motion", v > 0)
	case "EH":
		sig.SetAttr("engine_hours", v/10)
	case "HA", "HB", "HC":
		if v > 0 {
			sig.SetAttr("alarm", map[string]string{"HA": "acceleration", "HB": "braking", "HC": "cornering"}[code])
		}
	case "CN":
		mccmnc := int64(v) % 100000
		sig.SetAttr("mcc", mccmnc/100)
		sig.SetAttr("mnc", mccmnc%100)
	default:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			sig.SetAttr(attrName(code), int64(v))
		} else {
			sig.SetAttr(attrName(code), v)
		}
	}
	return nil
}

// customText stores a text custom field (binary strings, text values of
// string codes).
func customText(sig *signal.Signal, code, v string) {
	switch code {
	case "CI":
		return // a format string in the data: nothing to store
	}
	sig.SetAttr(attrName(code), v)
}

// numericCode reports a code whose value is a number.
func numericCode(code string) bool {
	switch code {
	case "MT", "EH", "HA", "HB", "HC":
		return true
	}
	size, ok := binarySizes[code]
	return ok && size > 0 && !textCodes[code]
}

// textCodes are the custom codes whose text values are not numbers.
var textCodes = map[string]bool{"VN": true, "CD": true, "NC": true, "GL": true, "MA": true, "BC": true, "CM": true, "ME": true, "GN": true, "GV": true}

// text decodes a text report: prefix, CRC, length, sequence, unit id,
// then one record per CRLF-terminated line.
func (s *Session) text(frame []byte) ([]signal.Signal, error) {
	f := bytes.SplitN(frame, []byte(","), 6)
	if len(f) < 6 {
		return nil, fmt.Errorf("%w: text report with %d header fields", plugins.ErrMalformed, len(f))
	}
	want, err := strconv.ParseUint(string(f[1]), 16, 16)
	if err != nil {
		return nil, fmt.Errorf("%w: CRC field %q", plugins.ErrMalformed, f[1])
	}
	// The CRC covers everything from the comma after it.
	if got := CRC16(frame[len(f[0])+1+len(f[1]):]); uint64(got) != want {
		return nil, fmt.Errorf("%w: CRC-16/ARC is 0x%04x, report says 0x%04x", plugins.ErrChecksum, got, want)
	}
	seq, err := strconv.Atoi(string(f[3]))
	if err != nil {
		return nil, fmt.Errorf("%w: sequence field %q", plugins.ErrMalformed, f[3])
	}
	if err := s.identify(string(f[4])); err != nil {
		return nil, err
	}
	body := strings.TrimSuffix(string(f[5]), "\r\n")
	var sigs []signal.Signal
	for i, line := range strings.Split(body, "\r\n") {
		sig, err := s.textRecord(line)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i+1, err)
		}
		sig.SetAttr("sequence", seq)
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// textRecord decodes one text record: GPS time, RTC time, send time,
// longitude, latitude (1e-6°), heading, report id, odometer (0.1 km),
// HDOP (0.1), inputs, speed (km/h), outputs, analog input (mV), driver
// id, two temperatures (0.1 °C), a text message, then the custom data.
func (s *Session) textRecord(line string) (signal.Signal, error) {
	f := strings.SplitN(line, ",", 18)
	if len(f) < 16 {
		return signal.Signal{}, fmt.Errorf("%w: %d fields, want at least 16", plugins.ErrMalformed, len(f))
	}
	num := func(i int, name string) (int64, error) {
		v, err := strconv.ParseInt(strings.TrimSpace(f[i]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %s %q", plugins.ErrMalformed, name, f[i])
		}
		return v, nil
	}
	ts, err := parseTime(f[0])
	if err != nil {
		return signal.Signal{}, err
	}
	sig := signal.New("", ts)
	var vals [16]int64
	names := [...]string{3: "longitude", 4: "latitude", 5: "heading", 6: "report id", 8: "HDOP", 9: "inputs", 10: "speed", 11: "outputs", 12: "analog input", 14: "temperature 1", 15: "temperature 2"}
	for i, name := range names {
		if name == "" {
			continue
		}
		if vals[i], err = num(i, name); err != nil {
			return signal.Signal{}, err
		}
	}
	odo, err := strconv.ParseFloat(strings.TrimSpace(f[7]), 64)
	if err != nil || math.IsNaN(odo) || math.IsInf(odo, 0) {
		return signal.Signal{}, fmt.Errorf("%w: odometer %q", plugins.ErrMalformed, f[7])
	}
	setPosition(&sig, float64(vals[3])/1e6, float64(vals[4])/1e6)
	sig.Heading = float64(vals[5])
	sig.SetAttr("event", vals[6])
	sig.Odometer = odo / 10
	sig.HDOP = float64(vals[8]) / 10
	sig.SetAttr("input", vals[9])
	sig.Speed = float64(vals[10])
	sig.SetAttr("output", vals[11])
	sig.SetAttr("adc1_v", float64(vals[12])/1000)
	if d := strings.TrimSpace(f[13]); d != "" && d != "0" {
		sig.SetAttr("driver_id", d)
	}
	setTemp(&sig, "temp1", vals[14])
	setTemp(&sig, "temp2", vals[15])
	if len(f) > 16 {
		if m := strings.Trim(f[16], "\x1a "); m != "" {
			sig.SetAttr("message", m)
		}
	}
	if len(f) > 17 && s.custom {
		if err := s.textCustom(&sig, f[17]); err != nil {
			return signal.Signal{}, err
		}
	}
	return sig, nil
}

// parseTime reads a text report time: yyyyMMddHHmmss or Unix seconds.
func parseTime(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if len(v) >= 14 {
		t, err := time.Parse("20060102150405", v)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: time %q", plugins.ErrMalformed, v)
		}
		return t, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("%w: time %q", plugins.ErrMalformed, v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// textCustom reads the custom data of a text record: the format (%CI…)
// first unless the form option gives it, then one value per code.
func (s *Session) textCustom(sig *signal.Signal, data string) error {
	form := s.form
	if form == "" {
		i := strings.IndexByte(data, ',')
		head := data
		if i >= 0 {
			head, data = data[:i], data[i+1:]
		} else {
			data = ""
		}
		head = strings.Trim(head, "\x1a ")
		if !strings.HasPrefix(head, "%CI") {
			if head == "" && data == "" {
				return nil
			}
			return fmt.Errorf("%w: custom data without a %%CI format (%q)", plugins.ErrMalformed, head)
		}
		form = head[3:]
	}
	codes := formCodes(form)
	vals := strings.Split(data, ",")
	for i := 0; i < len(codes) && i < len(vals); i++ {
		code, v := codes[i], strings.TrimSpace(vals[i])
		if v == "" {
			continue
		}
		if textCodes[code] {
			if printable(v) {
				sig.SetAttr(attrName(code), v)
			}
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			if !numericCode(code) {
				// A code fleetcore does not know: kept as sent.
				if printable(v) {
					sig.SetAttr(attrName(code), v)
				}
				continue
			}
			return fmt.Errorf("%w: custom field %s %q", plugins.ErrMalformed, code, v)
		}
		if err := customNumber(sig, code, x); err != nil {
			return err
		}
	}
	return nil
}

// reply decodes a reply line: $INFO (unit id, model, firmware, IMEI,
// IMSI, ICCID, power, battery, satellites, GSM status, RSSI, …) or any
// other $ line (kept as attr result). It carries no device time: the
// receive time of its first copy (plugins.ServerTimes; a reply has no
// sequence number, so an identical one within the resend window is taken
// as a resend).
func (s *Session) reply(frame []byte, recv time.Time) ([]signal.Signal, error) {
	line := strings.TrimSpace(string(frame))
	if !printable(line) {
		return nil, fmt.Errorf("%w: reply %q is not text", plugins.ErrMalformed, line)
	}
	sig := signal.New("", time.Time{})
	if rest, ok := strings.CutPrefix(line, "$INFO="); ok {
		f := strings.Split(rest, ",")
		if len(f) < 11 {
			return nil, fmt.Errorf("%w: $INFO with %d fields", plugins.ErrMalformed, len(f))
		}
		if err := s.identify(f[0]); err != nil {
			return nil, err
		}
		sig.SetAttr("model", f[1])
		sig.SetAttr("version_fw", f[2])
		sig.SetAttr("imei", f[3])
		sig.SetAttr("imsi", f[4])
		sig.SetAttr("iccid", f[5])
		for i, k := range map[int]string{6: "power", 7: "battery", 8: "sats", 10: "rssi"} {
			v, err := strconv.Atoi(f[i])
			if err != nil {
				return nil, fmt.Errorf("%w: $INFO %s %q", plugins.ErrMalformed, k, f[i])
			}
			switch k {
			case "power":
				sig.Voltage = float64(v) / 10
			case "battery":
				sig.SetAttr("battery_v", float64(v)/10)
			case "sats":
				sig.Sats = float64(v)
			default:
				sig.SetAttr(k, v)
			}
		}
	} else {
		if s.unit == "" {
			return nil, fmt.Errorf("%w: reply %q before any report", plugins.ErrNoDevice, line)
		}
		sig.SetAttr("result", line)
	}
	sig.TS = s.dec.times.Stamp(s.unit, frame, recv.UTC().Truncate(time.Millisecond))
	sig.SetAttr("time_source", "server")
	return []signal.Signal{sig}, nil
}

// CRC16 is CRC-16/ARC: polynomial 0x8005 reflected (0xA001), initial
// value 0, no final xor.
func CRC16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc>>8 ^ crcTable[byte(crc)^c]
	}
	return crc
}

var crcTable = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
		t[i] = crc
	}
	return t
}()
