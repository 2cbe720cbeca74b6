// Package suntech decodes the protocols of Suntech trackers: the ST300,
// ST340, ST500, ST600, SA200 `;`-separated text reports
// (`ST300STT;<id>;<model>;<fw>;<date>;<time>;…`), the ST4xx/ST9xx forms,
// the universal form with a field mask (`STT;<id>;<mask>;…`), and the
// binary 0x81/0x82 (universal, masked) and 0x02 (compressed) reports. The
// field layout of several forms depends on device settings (HBM, ADC,
// RPM, temperature, protocol type), given as typed listener options.
package suntech

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
const Name = "suntech"

// DefaultPort is Traccar's port for the protocol.
const DefaultPort = 5011

// The device settings that change the field layout.
var (
	optHBM = plugins.IntOption{
		Name: "hbm", Default: 0, Min: 0, Max: 2,
		Doc: "ST300/ST600 HBM (hour meter + battery) fields after the report: 0 none, 1 hours, battery, archive, driver; 2 also the serving cell",
	}
	optProtocolType = plugins.IntOption{
		Name: "protocol_type", Default: 0, Min: 0, Max: 1,
		Doc: "ST9xx report layout: 0 classic, 1 with a cell id after the time and the odometer after the fix (and no firmware field in alerts)",
	}
	optIncludeADC = plugins.BoolOption{
		Name: "include_adc", Doc: "with hbm: the report carries three ADC values after the archive flag",
	}
	optIncludeRPM = plugins.BoolOption{
		Name: "include_rpm", Doc: "with hbm: the report carries the engine rpm after the ADC values",
	}
	optAckType = plugins.IntOption{
		Name: "ack_type", Default: 1, Min: 0, Max: 3,
		Doc: "the device's UDP_ACK setting: which ST300-family and compressed reports are answered <model>ACK;<id> (0x15 + id): 0 none, 1 status, events, alerts and emergencies, 2 events, alerts and emergencies, 3 emergencies only",
	}
	optIncludeTemp = plugins.BoolOption{
		Name: "include_temp", Doc: "with hbm: the report carries three temperature sensors (id:value) after the driver id",
	}
)

// Decoder is the Suntech decoder; its zero value is ready to use. It is
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
		DefaultPort: DefaultPort,
		Description: "Suntech ST300/ST340/ST4xx/ST500/ST600/ST9xx/SA200: ';' text reports ended by CR, universal masked text, binary 0x81/0x82 and compressed 0x02",
		Options:     []plugins.Option{optHBM, optProtocolType, optIncludeADC, optIncludeRPM, optIncludeTemp, optAckType},
	}
}

// settings are a session's device settings.
type settings struct {
	hbm, protocolType, ack int
	adc, rpm, temp         bool
}

// NewSession starts a connection.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 10
	}
	return &Session{dec: d, cfg: cfg, set: settings{
		hbm: optHBM.Get(cfg.Options), protocolType: optProtocolType.Get(cfg.Options),
		adc: optIncludeADC.Get(cfg.Options), rpm: optIncludeRPM.Get(cfg.Options), temp: optIncludeTemp.Get(cfg.Options),
		ack: optAckType.Get(cfg.Options),
	}}
}

// Session is one connection (or UDP source).
type Session struct {
	dec *Decoder
	cfg plugins.SessionConfig
	set settings
	dev string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
	_ plugins.EOFFramer        = (*Session)(nil)
)

// DeviceID is the device seen last on the connection.
func (s *Session) DeviceID() string { return s.dev }

// binaryStart reports whether b starts a binary report type.
func binaryStart(b byte) bool { return b == 0x02 || b == 0x81 || b == 0x82 }

// Frame returns the first report. A binary report is its type byte, a
// zero byte and the rest of a 16-bit big-endian length (type + 2 +
// length bytes; the compressed 0x02 report one more). A text report runs
// up to and including its CR; a CR followed by LF is data (serial
// payloads of UEX reports hold CRLF), as Traccar splits them. A CR that is
// the last byte buffered ends the report at once (the device sends
// nothing more until it reports again).
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
	if binaryStart(buf[0]) {
		if len(buf) < 3 {
			if len(buf) == 2 && buf[1] != 0 {
				return 0, fmt.Errorf("framing suntech: %w: binary type 0x%02x without a zero length byte", plugins.ErrMalformed, buf[0])
			}
			return 0, nil
		}
		if buf[1] != 0 {
			return 0, fmt.Errorf("framing suntech: %w: binary type 0x%02x without a zero length byte", plugins.ErrMalformed, buf[0])
		}
		total := frameLen(buf[0], buf[2])
		if total > s.cfg.MaxFrame {
			return 0, fmt.Errorf("framing suntech: %w: length announces %d bytes, cap %d", plugins.ErrTooLarge, total, s.cfg.MaxFrame)
		}
		if len(buf) < total {
			return 0, nil
		}
		return total, nil
	}
	if !textStart(buf[0]) {
		return 0, fmt.Errorf("framing suntech: %w: byte 0x%02x cannot start a report", plugins.ErrMalformed, buf[0])
	}
	for i := 1; i < len(buf) && i < s.cfg.MaxFrame; i++ {
		if buf[i] != '\r' {
			continue
		}
		if i+1 < len(buf) && buf[i+1] == '\n' {
			continue
		}
		return i + 1, nil
	}
	if len(buf) >= s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing suntech: %w: no CR within %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
	}
	return 0, nil
}

// frameLen is a binary report's length: type, the 16-bit length and the
// bytes it counts; the compressed 0x02 report has one more, its footer.
func frameLen(typ, n byte) int {
	if typ == 0x02 {
		return 4 + int(n)
	}
	return 3 + int(n)
}

func textStart(b byte) bool { return b >= 'A' && b <= 'Z' || b == '-' }

// FrameAtEOF takes the text left at the end of replayed input as one last
// report (captures usually lost their CR). The gateway never calls it.
func (s *Session) FrameAtEOF(buf []byte) (int, error) {
	if len(buf) == 0 || binaryStart(buf[0]) || !textStart(buf[0]) {
		return 0, nil
	}
	return len(buf), nil
}

// Decode decodes one report (a TCP frame or a UDP datagram).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res, err := s.decode(frame, recv)
	if err != nil {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding suntech report: %w", err)
	}
	res.DeviceID = s.dev
	return res, nil
}

func (s *Session) decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > s.cfg.MaxFrame {
		return plugins.Result{}, fmt.Errorf("%w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	if len(bytes.Trim(frame, "\r\n")) == 0 {
		return plugins.Result{}, nil
	}
	var sig *signal.Signal
	var err error
	if binaryStart(frame[0]) {
		if len(frame) < 3 || frame[1] != 0 || frameLen(frame[0], frame[2]) != len(frame) {
			return plugins.Result{}, fmt.Errorf("%w: binary report of %d bytes does not match its length field", plugins.ErrMalformed, len(frame))
		}
		if frame[0] == 0x02 {
			sig, err = s.compressed(frame, recv)
		} else {
			sig, err = s.binaryUniversal(frame, recv)
		}
	} else {
		body := bytes.TrimSuffix(frame, []byte("\n"))
		if s.cfg.Transport == plugins.UDP && !bytes.HasSuffix(body, []byte("\r")) {
			return plugins.Result{}, fmt.Errorf("%w: datagram without its CR: cut", plugins.ErrMalformed)
		}
		text := string(bytes.TrimSuffix(body, []byte("\r")))
		sig, err = s.text(text, frame, recv)
	}
	if err != nil {
		return plugins.Result{}, err
	}
	if sig == nil { // a keep-alive: the device is known, nothing to store
		return plugins.Result{}, nil
	}
	sig.Recv = recv
	return plugins.Result{Signals: []signal.Signal{*sig}, Ack: s.ack(frame, sig)}, nil
}

// ack is the answer the device's ack_type asks for: `<model>ACK;<id>` CR
// for the ST300 family's text reports, 0x15 and the id bytes for
// compressed ones; nil for the forms whose ack fleetcore does not know
// (universal, ST4xx, ST9xx) and for reports the setting does not confirm.
func (s *Session) ack(frame []byte, sig *signal.Signal) []byte {
	typ, _ := sig.Attrs["type"].(string)
	level := 0 // the lowest ack_type that confirms the report
	switch typ {
	case "STT", "02":
		level = 1
	case "EVT", "ALT", "UEX":
		level = 2
	case "EMG":
		level = 3
	}
	if level == 0 || s.set.ack == 0 || s.set.ack > level {
		return nil
	}
	if typ == "02" {
		return append([]byte{0x15}, frame[4:9]...)
	}
	prefix, _, _ := bytes.Cut(frame, []byte(";"))
	if len(prefix) != 8 || bytes.HasPrefix(prefix, []byte("ST4")) || bytes.HasPrefix(prefix, []byte("ST9")) {
		return nil
	}
	return []byte(string(prefix[:5]) + "ACK;" + s.dev + "\r")
}

// text dispatches on the first field, as the device families differ.
func (s *Session) text(text string, frame []byte, recv time.Time) (*signal.Signal, error) {
	v := strings.Split(text, ";")
	prefix := v[0]
	switch {
	case len(v) < 2:
		return nil, fmt.Errorf("%w: %q is not a report", plugins.ErrUnsupported, clip(text))
	case prefix == "CRR":
		return nil, fmt.Errorf("%w: crash report (CRR)", plugins.ErrUnsupported)
	case len(prefix) < 5:
		return s.universal(prefix, v, frame, recv)
	case strings.HasSuffix(prefix, "HTE"):
		return s.travel(v, frame, recv)
	case strings.HasPrefix(prefix, "ST9"):
		return s.st9(v, frame)
	case strings.HasPrefix(prefix, "ST4"):
		return s.st4(v, frame, recv)
	default:
		return s.st300(prefix[:5], prefix[5:], v, frame, recv)
	}
}

// fields is a cursor over a report's fields that names what is missing.
type fields struct {
	v []string
	i int
}

func (f *fields) left() int { return len(f.v) - f.i }

func (f *fields) next(name string) (string, error) {
	if f.i >= len(f.v) {
		return "", fmt.Errorf("%w: report ends before the %s (field %d)", plugins.ErrMalformed, name, f.i+1)
	}
	f.i++
	return f.v[f.i-1], nil
}

func (f *fields) skip(name string) error { _, err := f.next(name); return err }

func (f *fields) float(name string) (float64, error) {
	v, err := f.next(name)
	if err != nil {
		return 0, err
	}
	return parseFloat(name, v)
}

func parseFloat(name, v string) (float64, error) {
	t := strings.TrimSpace(v)
	if t == "" || strings.Trim(t, "0123456789.+-") != "" {
		return 0, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(v))
	}
	x, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsInf(x, 0) {
		return 0, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(v))
	}
	return x, nil
}

func (f *fields) int(name string) (int64, error) {
	v, err := f.next(name)
	if err != nil {
		return 0, err
	}
	return parseInt(name, v, 10)
}

func parseInt(name, v string, base int) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(v), "+"), base, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a number", plugins.ErrMalformed, name, clip(v))
	}
	return n, nil
}

func (f *fields) hex(name string) (int64, error) {
	v, err := f.next(name)
	if err != nil {
		return 0, err
	}
	return parseInt(name, v, 16)
}

// time parses yyyymmdd and hh:mm:ss (UTC).
func (f *fields) time() (time.Time, error) {
	d, err := f.next("date")
	if err != nil {
		return time.Time{}, err
	}
	c, err := f.next("time")
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse("2006010215:04:05", d+c)
	if err != nil || len(d) != 8 {
		return time.Time{}, fmt.Errorf("%w: date and time %q %q are not yyyymmdd hh:mm:ss", plugins.ErrMalformed, clip(d), clip(c))
	}
	return t, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
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

func (s *Session) newSignal(ts time.Time, frame []byte) *signal.Signal {
	sig := signal.New(s.dev, ts)
	sig.Protocol = Name
	sig.Frame = append([]byte(nil), frame...)
	return &sig
}

// serverSignal is a record without a device time: the receive time to the
// second, the first copy's for a resend within the window. Reports carry
// no sequence number: an identical report within the window is taken as a
// resend (README "Resends").
func (s *Session) serverSignal(frame []byte, recv time.Time) *signal.Signal {
	ts := s.dec.times.Stamp(s.dev, bytes.TrimRight(frame, "\r\n"), recv.UTC().Truncate(time.Second))
	sig := s.newSignal(ts, frame)
	sig.SetAttr("time_source", "server")
	return sig
}

// position reads latitude and longitude (decimal degrees).
func position(f *fields, sig *signal.Signal) error {
	lat, err := f.float("latitude")
	if err != nil {
		return err
	}
	lon, err := f.float("longitude")
	if err != nil {
		return err
	}
	if math.Abs(lat) > 90 || math.Abs(lon) > 180 {
		return fmt.Errorf("%w: position %v,%v out of range", plugins.ErrMalformed, lat, lon)
	}
	sig.Lat, sig.Lon = lat, lon
	return nil
}

// noFix drops the 0,0 "no position" marker of reports without a fix.
func noFix(sig *signal.Signal) {
	if sig.Valid == signal.False && sig.Lat == 0 && sig.Lon == 0 {
		sig.Lat, sig.Lon = math.NaN(), math.NaN()
	}
}

// rest keeps the fields fleetcore does not interpret, as sent.
func rest(f *fields, sig *signal.Signal) {
	if f.left() > 0 {
		if r := strings.Join(f.v[f.i:], ";"); r != "" {
			sig.SetAttr("extra", r)
		}
	}
}
