// Package jt808 decodes JT/T 808 (2011, 2013 and 2019), the Chinese
// national protocol for vehicle terminals spoken by most Chinese trackers,
// dashcams and OBD boxes (Traccar's "huabao"/"jt808" decoders). See
// README.md for the framing, the messages, the field mapping and the acks.
package jt808

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "jt808"

// DefaultPort is Traccar's port for the protocol ("huabao").
const DefaultPort = 5015

const (
	defaultMaxFrame = 64 << 10
	delim           = 0x7E
	escape          = 0x7D
	// minUnescaped is the shortest message: id (2), properties (2),
	// phone (6), serial (2), checksum (1).
	minUnescaped = 13
)

// Message ids.
const (
	msgTerminalResponse = 0x0001
	msgHeartbeat        = 0x0002
	msgLogout           = 0x0003
	msgRegister         = 0x0100
	msgAuth             = 0x0102
	msgParamsResponse   = 0x0104
	msgAttrsResponse    = 0x0107
	msgLocation         = 0x0200
	msgLocationQuery    = 0x0201
	msgLocationBatch2   = 0x0210
	msgEventReport      = 0x0301
	msgQuestionAnswer   = 0x0302
	msgControlResponse  = 0x0500
	msgLocationBatch    = 0x0704
	msgMediaResponse    = 0x0805
	msgTransparent      = 0x0900
	msgTimezoneSync     = 0x1007
	msgTextResponse     = 0x1300
	msgLocation2        = 0x5501
	msgLocationBlind    = 0x5502

	msgGeneralResponse  = 0x8001
	msgGeneralResponse2 = 0x4401
	msgRegisterResponse = 0x8100
)

// noGeneralResponse are terminal messages that answer a platform request
// (or get their own reply): the platform sends no 0x8001 for them.
var noGeneralResponse = map[uint16]bool{
	msgTerminalResponse: true, msgRegister: true, msgParamsResponse: true,
	msgAttrsResponse: true, msgLocationQuery: true, msgQuestionAnswer: true,
	msgControlResponse: true, msgMediaResponse: true, msgTextResponse: true,
	msgLocation2: true, msgLocationBlind: true,
}

// Decoder is the JT/T 808 protocol. The zero value is ready to use.
//
// It is shared by every session of every jt808 listener: it remembers the
// receive time it gave each message without a device time (vendor and
// command-reply messages kept as raw records, text replies), keyed by the
// message's bytes, serial number included, so that a resend gets the same
// time and key (plugins.ServerTimes).
type Decoder struct {
	times plugins.ServerTimes
}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

var optTimeOffset = plugins.DurationOption{
	Name: "time_offset", Default: 8 * time.Hour, Max: 14 * time.Hour,
	Doc: "the offset from UTC of the BCD device times (the standard says GMT+8, Beijing time); `0s` for firmwares that report UTC",
}

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP, plugins.UDP},
		DefaultPort: DefaultPort,
		Description: "JT/T 808 2011/2013/2019: 0x7E framing with 0x7D escaping, XOR checksum, register/auth/heartbeat, location 0x0200 with TLVs, batches 0x0704/0x0210, transparent 0x0900",
		Options:     []plugins.Option{optTimeOffset},
	}
}

// NewSession starts one connection's state. JT/T 808 names the device (its
// BCD phone number) in every message, so there is no login to wait for.
func (dec *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Session{
		dec: dec,
		cfg: cfg,
		log: log.Named(Name),
		tz:  time.FixedZone("device", int(optTimeOffset.Get(cfg.Options)/time.Second)),
	}
}

// Session is one JT/T 808 connection (or UDP source).
type Session struct {
	dec *Decoder
	cfg plugins.SessionConfig
	log hclog.Logger
	tz  *time.Location
	// id is the device id of the last message.
	id string
	// serial is the platform's message serial number for its replies.
	serial uint16
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID returns the device id of the last message, or "" before one.
func (s *Session) DeviceID() string { return s.id }

// Frame returns the length of the message at the start of buf: from a 0x7E
// to the next 0x7E, escaped bytes included. Traccar's JT/T 808 framer also
// takes "(…)" text replies of some locks on the same port; so does this one.
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	var end byte
	switch buf[0] {
	case delim:
		end = delim
	case '(':
		end = ')'
	default:
		return 0, fmt.Errorf("framing jt808 message: %w: start byte 0x%02x, want 0x7e", plugins.ErrMalformed, buf[0])
	}
	lim := len(buf)
	if lim > s.cfg.MaxFrame {
		lim = s.cfg.MaxFrame
	}
	for i := 1; i < lim; i++ {
		if buf[i] == end {
			if end == delim && i == 1 {
				return 0, fmt.Errorf("framing jt808 message: %w: empty message 7e7e", plugins.ErrMalformed)
			}
			return i + 1, nil
		}
	}
	if len(buf) >= s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing jt808 message: %w: no closing delimiter within %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
	}
	return 0, nil
}

// Unescape undoes the transmission escaping of a message's content (the
// bytes between the delimiters): 7D 02 → 7E, 7D 01 → 7D. Any other byte
// after 7D, a trailing 7D or a raw 7E is an error.
func Unescape(b []byte) ([]byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case delim:
			return nil, fmt.Errorf("%w: unescaped 0x7e at offset %d", plugins.ErrMalformed, i+1)
		case escape:
			if i+1 >= len(b) {
				return nil, fmt.Errorf("%w: 0x7d at the end of the message", plugins.ErrMalformed)
			}
			switch b[i+1] {
			case 0x01:
				out = append(out, escape)
			case 0x02:
				out = append(out, delim)
			default:
				return nil, fmt.Errorf("%w: escape 7d %02x at offset %d", plugins.ErrMalformed, b[i+1], i+1)
			}
			i++
		default:
			out = append(out, b[i])
		}
	}
	return out, nil
}

// Escape applies the transmission escaping to a message's content.
func Escape(dst, b []byte) []byte {
	for _, c := range b {
		switch c {
		case delim:
			dst = append(dst, escape, 0x02)
		case escape:
			dst = append(dst, escape, 0x01)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// Checksum is the XOR of every byte (header and body, unescaped).
func Checksum(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

// header is a checked message split into its parts.
type header struct {
	id        uint16
	props     uint16
	version   int    // 2019 protocol version, -1 for 2011/2013
	phone     []byte // the BCD terminal phone number as sent (6 or 10 bytes)
	serial    uint16
	shortSer  bool // 0x5501/0x5502: a 1-byte serial
	subpacket bool
	total     uint16 // packages (subpacket)
	index     uint16 // this package's number (subpacket)
	body      []byte
}

const (
	propLength    = 0x03FF
	propEncrypted = 0x1C00
	propSubpacket = 0x2000
	propVersion   = 0x4000
	propReserved  = 0x8000
)

// parseMessage checks a whole frame (delimiters, escaping, checksum,
// length) and splits it.
func parseMessage(frame []byte) (header, error) {
	if len(frame) < 2 || frame[0] != delim || frame[len(frame)-1] != delim {
		return header{}, fmt.Errorf("%w: a message starts and ends with 0x7e", plugins.ErrMalformed)
	}
	m, err := Unescape(frame[1 : len(frame)-1])
	if err != nil {
		return header{}, err
	}
	if len(m) < minUnescaped-1 {
		return header{}, fmt.Errorf("%w: %d bytes, want at least %d", plugins.ErrMalformed, len(m), minUnescaped)
	}
	if got, want := Checksum(m[:len(m)-1]), m[len(m)-1]; got != want {
		return header{}, fmt.Errorf("%w: XOR 0x%02x, message says 0x%02x", plugins.ErrChecksum, got, want)
	}
	m = m[:len(m)-1]
	h := header{id: binary.BigEndian.Uint16(m), props: binary.BigEndian.Uint16(m[2:]), version: -1}
	// The vendor reports 0x5501/0x5502 use property bits 10–15 for their
	// own flags: only their length (bits 0–9) is the standard's.
	h.shortSer = h.id == msgLocation2 || h.id == msgLocationBlind
	p := 4
	phoneLen := 6
	if h.props&propVersion != 0 && !h.shortSer {
		if len(m) < p+1 {
			return header{}, fmt.Errorf("%w: no version byte", plugins.ErrMalformed)
		}
		h.version = int(m[p])
		p++
		phoneLen = 10
	}
	serLen := 2
	if h.shortSer {
		serLen = 1
	}
	h.subpacket = h.props&propSubpacket != 0 && !h.shortSer
	hl := p + phoneLen + serLen
	if h.subpacket {
		hl += 4
	}
	if len(m) < hl {
		return header{}, fmt.Errorf("%w: header of %d bytes, message of %d", plugins.ErrMalformed, hl, len(m))
	}
	h.phone = m[p : p+phoneLen]
	p += phoneLen
	if h.shortSer {
		h.serial = uint16(m[p])
	} else {
		h.serial = binary.BigEndian.Uint16(m[p:])
	}
	p += serLen
	if h.subpacket {
		h.total, h.index = binary.BigEndian.Uint16(m[p:]), binary.BigEndian.Uint16(m[p+2:])
		p += 4
	}
	h.body = m[p:]
	if n := int(h.props & propLength); n != len(h.body) {
		return header{}, fmt.Errorf("%w: body length %d, properties say %d", plugins.ErrMalformed, len(h.body), n)
	}
	return h, nil
}

// DeviceID turns a terminal phone number into the device id: its BCD
// digits without leading zeros (as Traccar looks devices up first). A phone
// field that is not BCD carries an IMEI as a binary number (some GT06-style
// firmwares): then the 14 digits of that number plus their Luhn digit.
func DeviceID(phone []byte) string {
	var b strings.Builder
	bcd := true
	for _, x := range phone {
		if x>>4 > 9 || x&0x0F > 9 {
			bcd = false
			break
		}
		b.WriteByte('0' + x>>4)
		b.WriteByte('0' + x&0x0F)
	}
	if bcd {
		id := strings.TrimLeft(b.String(), "0")
		if id == "" {
			id = "0"
		}
		return id
	}
	var v uint64
	for _, x := range phone[len(phone)-6:] {
		v = v<<8 | uint64(x)
	}
	digits := strconv.FormatUint(v, 10)
	return digits + strconv.Itoa(luhn(digits))
}

func luhn(digits string) int {
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return (10 - sum%10) % 10
}

// Response builds a platform message: 0x7E, id, properties (the body
// length; the version flag and byte when version ≥ 0), the terminal's phone
// as it sent it, the platform serial, body, XOR, 0x7E, escaped.
func Response(id uint16, version int, phone []byte, serial uint16, body []byte) []byte {
	m := make([]byte, 0, 17+len(body))
	m = binary.BigEndian.AppendUint16(m, id)
	props := uint16(len(body)) & propLength
	if version >= 0 {
		props |= propVersion
	}
	m = binary.BigEndian.AppendUint16(m, props)
	if version >= 0 {
		m = append(m, byte(version))
	}
	m = append(m, phone...)
	m = binary.BigEndian.AppendUint16(m, serial)
	m = append(m, body...)
	m = append(m, Checksum(m))
	out := make([]byte, 0, len(m)+8)
	out = append(out, delim)
	out = Escape(out, m)
	return append(out, delim)
}

// GeneralResponse is the platform general response 0x8001 to a message:
// its serial, its id and result 0 (success).
func GeneralResponse(version int, phone []byte, platformSerial, serial, id uint16) []byte {
	body := binary.BigEndian.AppendUint16(nil, serial)
	body = binary.BigEndian.AppendUint16(body, id)
	body = append(body, 0)
	return Response(msgGeneralResponse, version, phone, platformSerial, body)
}

// RegisterResponse is the reply 0x8100 to a registration: its serial,
// result 0 and the authentication code (the device id).
func RegisterResponse(version int, phone []byte, platformSerial, serial uint16, auth string) []byte {
	body := binary.BigEndian.AppendUint16(nil, serial)
	body = append(body, 0)
	body = append(body, auth...)
	return Response(msgRegisterResponse, version, phone, platformSerial, body)
}

// Decode checks the frame (escaping, checksum, length) and decodes it. The
// ack (0x8001, 0x8100 or the vendor 0x4401) is written once the frame's
// signals are durable.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > 0 && frame[0] == '(' {
		return s.decodeText(frame, recv)
	}
	h, err := parseMessage(frame)
	if err != nil {
		return plugins.Result{DeviceID: s.id}, fmt.Errorf("decoding jt808 message: %w", err)
	}
	id := DeviceID(h.phone)
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(id) {
		return plugins.Result{DeviceID: id}, fmt.Errorf("decoding jt808 message 0x%04x: %w: %s", h.id, plugins.ErrUnauthorized, id)
	}
	if s.id != "" && s.id != id {
		s.log.Warn("device changed its id on one connection", "from", s.id, "to", id)
	}
	s.id = id
	if h.props&propEncrypted != 0 && !h.shortSer {
		return plugins.Result{DeviceID: id}, fmt.Errorf("decoding jt808 message 0x%04x: %w: encrypted body (properties 0x%04x)", h.id, plugins.ErrUnsupported, h.props)
	}
	d := &decoding{s: s, h: h, id: id, frame: frame, recv: recv.UTC()}
	sigs, err := d.run()
	if err != nil {
		return plugins.Result{DeviceID: id}, fmt.Errorf("decoding jt808 message 0x%04x: %w", h.id, err)
	}
	return plugins.Result{DeviceID: id, Signals: sigs, Ack: s.ack(h)}, nil
}

// ack is the platform's reply to a message, or nil.
func (s *Session) ack(h header) []byte {
	var a []byte
	switch {
	case h.id == msgRegister:
		a = RegisterResponse(h.version, h.phone, s.serial, h.serial, DeviceID(h.phone))
	case h.shortSer:
		// The vendor location reports 0x5501/0x5502 ask for their own
		// short response (0x4401: id and result, a 1-byte serial) with
		// the reserved property bit 15.
		if h.props&propReserved == 0 {
			return nil
		}
		body := binary.BigEndian.AppendUint16(nil, h.id)
		body = append(body, 0)
		m := make([]byte, 0, 16)
		m = binary.BigEndian.AppendUint16(m, msgGeneralResponse2)
		m = binary.BigEndian.AppendUint16(m, uint16(len(body)))
		m = append(m, h.phone...)
		m = append(m, byte(s.serial))
		m = append(m, body...)
		m = append(m, Checksum(m))
		a = Escape([]byte{delim}, m)
		a = append(a, delim)
	case noGeneralResponse[h.id]:
		return nil
	default:
		a = GeneralResponse(h.version, h.phone, s.serial, h.serial, h.id)
	}
	s.serial++
	return a
}

// decodeText takes a "(…)" reply some locks send on the JT/T 808
// connection: a record with the text as attr result, for the device of the
// connection's earlier messages.
func (s *Session) decodeText(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) < 2 || frame[len(frame)-1] != ')' {
		return plugins.Result{DeviceID: s.id}, fmt.Errorf("decoding jt808 text reply: %w: no closing ')'", plugins.ErrMalformed)
	}
	if s.id == "" {
		return plugins.Result{}, fmt.Errorf("decoding jt808 text reply: %w: no JT/T 808 message named the device yet", plugins.ErrNoDevice)
	}
	d := &decoding{s: s, id: s.id, frame: frame, recv: recv.UTC()}
	sg := d.newSignal(time.Time{})
	sg.SetAttr("result", string(frame))
	return plugins.Result{DeviceID: s.id, Signals: []signal.Signal{*sg}}, nil
}
