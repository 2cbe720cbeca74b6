// Package meitrack decodes the GPRS protocol of Meitrack trackers (MVT100,
// MVT340, MVT380, MVT600, MVT800, T1, T3, T311, T333, T355, T366, T622,
// TC68, MT90, P88L, …): `$$<flag><length>,<IMEI>,<command>,<data>*<sum>\r\n`
// with a byte-sum checksum and a length field, the text position reports
// AAA/AFF and the binary batch forms CCC and CCE, acked `@@<flag><length>,
// <IMEI>,CCC|CCE,<count>*<sum>\r\n` so the device deletes them from its
// cache.
package meitrack

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id.
const Name = "meitrack"

// DefaultPort is Traccar's port for the protocol.
const DefaultPort = 5020

// optModel is the device model: it fixes how the hexadecimal battery and
// power fields of the AAA report scale to volts (Meitrack's protocol
// documents differ per model; Traccar keys the same table on the model).
var optModel = plugins.EnumOption{
	Name:    "model",
	Default: "auto",
	Values:  []string{"auto", "MVT340", "MVT380", "MT90", "T1", "T3", "MVT100", "MVT600", "MVT800", "TC68", "TC68S", "T311", "T322X", "T333", "T355"},
	Doc:     "device model, for the scale of the hexadecimal battery/power fields of AAA reports (auto: kept raw as battery_raw/power_raw)",
}

// optAckCCE answers CCE batches like CCC ones. Meitrack's documents found
// describe the CCC confirmation; CCE firmware is taken to follow it (a
// device that does not expect the reply ignores it).
var optAckCCE = plugins.BoolOption{
	Name: "ack_cce", Default: true,
	Doc: "confirm CCE batches with @@…,CCE,<count>*<sum> as CCC ones are (false: CCE batches get no reply, as in Traccar)",
}

// Decoder is the Meitrack decoder; its zero value is ready to use. It is
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
		Description: "Meitrack GPRS protocol: $$ text reports (AAA, AFF) and binary batches (CCC, CCE, acked with the count), byte-sum checksum",
		Options:     []plugins.Option{optModel, optAckCCE},
	}
}

// NewSession starts a connection.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 10
	}
	return &Session{dec: d, cfg: cfg, model: optModel.Get(cfg.Options), ackCCE: optAckCCE.Get(cfg.Options)}
}

// Session is one connection (or UDP source).
type Session struct {
	dec    *Decoder
	cfg    plugins.SessionConfig
	model  string
	ackCCE bool
	dev    string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
	_ plugins.EOFFramer        = (*Session)(nil)
)

// DeviceID is the device seen last on the connection.
func (s *Session) DeviceID() string { return s.dev }

// maxLengthDigits bounds the length field: 6 digits is more than any cap.
const maxLengthDigits = 6

// header parses `$$<flag><length>,` at the start of buf. It returns the
// frame's total length (the length field counts from the comma after it
// through the CRLF), 0 when buf is too short to tell, or an error.
func header(buf []byte) (total int, err error) {
	for i := 0; i < len(buf) && i < 2; i++ {
		if buf[i] != '$' {
			return 0, fmt.Errorf("%w: byte 0x%02x at %d, want '$$'", plugins.ErrMalformed, buf[i], i)
		}
	}
	if len(buf) < 3 {
		return 0, nil
	}
	if buf[2] < 0x21 || buf[2] > 0x7e {
		return 0, fmt.Errorf("%w: flag byte 0x%02x is not printable", plugins.ErrMalformed, buf[2])
	}
	n := 0
	for i := 3; i < len(buf); i++ {
		c := buf[i]
		switch {
		case c >= '0' && c <= '9':
			if i-3 >= maxLengthDigits {
				return 0, fmt.Errorf("%w: length field of more than %d digits", plugins.ErrMalformed, maxLengthDigits)
			}
			n = n*10 + int(c-'0')
		case c == ',' && i > 3:
			if n < 5 { // ",<cmd>*XX" at the least
				return 0, fmt.Errorf("%w: length %d", plugins.ErrMalformed, n)
			}
			return i + n, nil
		default:
			return 0, fmt.Errorf("%w: byte 0x%02x in the length field", plugins.ErrMalformed, c)
		}
	}
	return 0, nil
}

// Frame returns the first message: `$$`, flag, the length field and as
// many bytes as it announces. CR/LF between messages are frames of their
// own (they decode to nothing).
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
	total, err := header(buf)
	if err != nil {
		return 0, fmt.Errorf("framing meitrack: %w", err)
	}
	if total > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing meitrack: %w: length field announces %d bytes, cap %d", plugins.ErrTooLarge, total, s.cfg.MaxFrame)
	}
	if total == 0 || len(buf) < total {
		return 0, nil
	}
	return total, nil
}

// FrameAtEOF takes the bytes left at the end of replayed input as one last
// message when they are one whole message that lost its CRLF (captures
// copied from logs usually have). The gateway never calls it.
func (s *Session) FrameAtEOF(buf []byte) (int, error) {
	total, err := header(buf)
	if err != nil || total == 0 {
		return 0, err
	}
	if len(buf) == total-2 && len(buf) >= 3 && buf[len(buf)-3] == '*' {
		return len(buf), nil
	}
	return 0, nil
}

// Decode decodes one message (a TCP frame or a UDP datagram).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res, err := s.decode(frame, recv)
	if err != nil {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding meitrack message: %w", err)
	}
	res.DeviceID = s.dev
	return res, nil
}

// message is a checked envelope.
type message struct {
	flag byte
	imei string
	cmd  string
	data []byte // after "<cmd>," up to the '*' (binary for CCC/CCE)
	body []byte // the message without its CRLF (the checksum's fingerprint)
}

// checksum is the byte sum, modulo 256, of b as two uppercase hex digits.
func checksum(b []byte) string {
	var sum byte
	for _, c := range b {
		sum += c
	}
	return fmt.Sprintf("%02X", sum)
}

// parseEnvelope checks the length, the CRLF and the checksum and splits
// the header fields.
func parseEnvelope(frame []byte) (message, error) {
	total, err := header(frame)
	if err != nil {
		return message{}, err
	}
	body := frame
	switch {
	case total == 0:
		return message{}, fmt.Errorf("%w: truncated header", plugins.ErrMalformed)
	case len(frame) == total && bytes.HasSuffix(frame, []byte("\r\n")):
		body = frame[:len(frame)-2]
	case len(frame) == total-2 && !bytes.HasSuffix(frame, []byte("\r\n")):
		// A capture that lost its CRLF (replay only, see FrameAtEOF).
	default:
		return message{}, fmt.Errorf("%w: length field announces %d bytes, the message has %d", plugins.ErrMalformed, total, len(frame))
	}
	if len(body) < 3 || body[len(body)-3] != '*' {
		return message{}, fmt.Errorf("%w: no *checksum before the CRLF", plugins.ErrMalformed)
	}
	want := string(body[len(body)-2:])
	if got := checksum(body[:len(body)-2]); got != want && got != upper(want) {
		return message{}, fmt.Errorf("%w: checksum %s, the byte sum is %s", plugins.ErrChecksum, want, got)
	}
	m := message{flag: frame[2], body: body}
	rest := body[bytes.IndexByte(body, ',')+1 : len(body)-3]
	i := bytes.IndexByte(rest, ',')
	if i < 0 {
		return message{}, fmt.Errorf("%w: no command after the IMEI", plugins.ErrMalformed)
	}
	m.imei = string(rest[:i])
	rest = rest[i+1:]
	if len(rest) < 3 || (len(rest) > 3 && rest[3] != ',') {
		return message{}, fmt.Errorf("%w: command %q is not three characters", plugins.ErrMalformed, clip(string(rest)))
	}
	m.cmd = string(rest[:3])
	if len(rest) > 3 {
		m.data = rest[4:]
	}
	return m, nil
}

func upper(s string) string { return string(bytes.ToUpper([]byte(s))) }

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

const maxDeviceID = 32

func (s *Session) setDevice(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty IMEI", plugins.ErrNoDevice)
	}
	if len(id) > maxDeviceID {
		return fmt.Errorf("%w: IMEI of %d bytes", plugins.ErrMalformed, len(id))
	}
	for _, c := range []byte(id) {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: IMEI %q is not decimal", plugins.ErrMalformed, clip(id))
		}
	}
	if id != s.dev && s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(id) {
		return fmt.Errorf("%w: %s", plugins.ErrUnauthorized, id)
	}
	s.dev = id
	return nil
}

func (s *Session) decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > s.cfg.MaxFrame {
		return plugins.Result{}, fmt.Errorf("%w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	if len(bytes.Trim(frame, "\r\n")) == 0 {
		return plugins.Result{}, nil
	}
	m, err := parseEnvelope(frame)
	if err != nil {
		return plugins.Result{}, err
	}
	if err := s.setDevice(m.imei); err != nil {
		return plugins.Result{}, err
	}
	var sigs []signal.Signal
	var res plugins.Result
	switch m.cmd {
	case "AAA", "AFF":
		sig, err := s.report(m, frame)
		if err != nil {
			return plugins.Result{}, err
		}
		sigs = []signal.Signal{sig}
	case "CCC":
		if sigs, err = s.batchC(m, frame); err != nil {
			return plugins.Result{}, err
		}
		res.Ack = ack(m.flag, m.imei, "CCC", strconv.Itoa(len(sigs)))
	case "CCE":
		if sigs, err = s.batchE(m, frame, recv); err != nil {
			return plugins.Result{}, err
		}
		if s.ackCCE {
			res.Ack = ack(m.flag, m.imei, "CCE", strconv.Itoa(len(sigs)))
		}
	case "AAC":
		// The device asks whether the server is there; answered, nothing
		// to store.
		return plugins.Result{Ack: ack('z', m.imei, "AAC", "1")}, nil
	case "D82":
		sig := s.newSignal(s.serverTime(m.body, recv), frame)
		sig.SetAttr("time_source", "server")
		sig.SetAttr("command", m.cmd)
		sig.SetAttr("result", m.cmd+","+string(m.data))
		sigs = []signal.Signal{sig}
	default:
		return plugins.Result{}, fmt.Errorf("%w: command %s", plugins.ErrUnsupported, m.cmd)
	}
	for i := range sigs {
		sigs[i].Recv = recv
	}
	res.Signals = sigs
	return res, nil
}

// ack builds `@@<flag><length>,<imei>,<cmd>,<arg>*<sum>\r\n`.
func ack(flag byte, imei, cmd, arg string) []byte {
	rest := "," + imei + "," + cmd + "," + arg + "*XX\r\n"
	b := []byte("@@" + string(flag) + strconv.Itoa(len(rest)) + rest)
	sum := checksum(b[:len(b)-4])
	copy(b[len(b)-4:], sum)
	return b
}

func (s *Session) newSignal(ts time.Time, frame []byte) signal.Signal {
	sig := signal.New(s.dev, ts)
	sig.Protocol = Name
	sig.Frame = append([]byte(nil), frame...)
	return sig
}

// serverTime is the time of a record that carries none: the receive time
// to the second, or the first copy's for a resend within the window.
func (s *Session) serverTime(fingerprint []byte, recv time.Time) time.Time {
	return s.dec.times.Stamp(s.dev, fingerprint, recv.UTC().Truncate(time.Second))
}

// civil builds a UTC time, refusing out-of-range parts.
func civil(y, mo, d, h, mi, sec int) (time.Time, bool) {
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	if t.Year() != y || int(t.Month()) != mo || t.Day() != d || t.Hour() != h || t.Minute() != mi || t.Second() != sec {
		return time.Time{}, false
	}
	return t, true
}
