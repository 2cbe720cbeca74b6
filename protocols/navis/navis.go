// Package navis decodes the Navtelecom protocols (Traccar's "navis"): NTCB,
// the binary protocol of the SIGNAL and SMART trackers (a 16-byte "@NTC"
// header with XOR checksums of header and data, the `*>S` handshake with
// the IMEI, `*>T` and `*>A` telemetry in the fixed formats F1.0–F6.0), and
// FLEX, whose field set the device and the server negotiate on each
// connection with `*>FLEX` and which then sends `~A`, `~T`, `~C`, `~E` and
// `~X` messages of exactly those fields with a CRC-8. See README.md.
package navis

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "navis"

// DefaultPort is Traccar's port for the protocol.
const DefaultPort = 5019

const (
	defaultMaxFrame = 64 << 10
	headerLen       = 16 // "@NTC", receiver u32, sender u32, length u16, data XOR, header XOR
	keepAlive       = 0x7F
	maxDeviceID     = 64
)

// Decoder is the Navtelecom protocol. The zero value is ready to use; it is
// shared by every session and keeps the server times of records without a
// device time (command replies) so that a resend keeps its key.
type Decoder struct {
	times plugins.ServerTimes
}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP},
		DefaultPort: DefaultPort,
		Description: "Navtelecom NTCB (@NTC header, XOR checksums, *>S handshake, *>T/*>A telemetry F1.0–F6.0) and FLEX 1.0/2.0/3.0 (*>FLEX negotiation per connection, ~A/~T/~C/~E/~X with CRC-8)",
	}
}

// NewSession starts one connection's state: no device and no FLEX field set
// until the device sends them.
func (dec *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Session{dec: dec, cfg: cfg, log: log.Named(Name)}
}

// Session is one Navtelecom connection.
type Session struct {
	dec *Decoder
	cfg plugins.SessionConfig
	log hclog.Logger
	id  string // the IMEI of the *>S handshake
	// flex is the field set negotiated with *>FLEX (nil before).
	flex *flexSet
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID returns the IMEI of the handshake, or "" before it.
func (s *Session) DeviceID() string { return s.id }

// XOR is the NTCB checksum: the XOR of every byte.
func XOR(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

// CRC8 is the FLEX checksum (CRC-8 with polynomial 0x31, initial value
// 0xFF, no reflection, no final XOR: the one EGTS uses).
func CRC8(b []byte) byte {
	crc := byte(0xFF)
	for _, c := range b {
		crc ^= c
		for i := 0; i < 8; i++ {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x31
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Frame returns the length of the message at the start of buf: a keepalive
// byte 0x7F, an NTCB message (header + its length field), or a FLEX message
// whose length follows from the field set negotiated on this connection.
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	switch buf[0] {
	case keepAlive:
		return 1, nil
	case '@':
		return s.frameNTCB(buf)
	case '~':
		return s.frameFlex(buf)
	}
	return 0, fmt.Errorf("framing navis message: %w: start byte 0x%02x, want '@' (NTCB), '~' (FLEX) or 0x7f", plugins.ErrMalformed, buf[0])
}

func (s *Session) frameNTCB(buf []byte) (int, error) {
	const pre = "@NTC"
	for i := 1; i < len(buf) && i < len(pre); i++ {
		if buf[i] != pre[i] {
			return 0, fmt.Errorf("framing navis NTCB message: %w: preamble %q, want %q", plugins.ErrMalformed, buf[:i+1], pre)
		}
	}
	if len(buf) < headerLen {
		return 0, nil
	}
	if got, want := XOR(buf[:headerLen-1]), buf[headerLen-1]; got != want {
		return 0, fmt.Errorf("framing navis NTCB message: %w: header XOR 0x%02x, header says 0x%02x", plugins.ErrChecksum, got, want)
	}
	n := headerLen + int(binary.LittleEndian.Uint16(buf[12:]))
	if n > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing navis NTCB message: %w: %d bytes, cap %d", plugins.ErrTooLarge, n, s.cfg.MaxFrame)
	}
	if len(buf) < n {
		return 0, nil
	}
	return n, nil
}

// Decode checks the message (header and data XOR, CRC-8, lengths) and
// decodes it. Acks are the protocol's: *<S, *<T with the record index, *<A
// with the record count, *<FLEX with the accepted versions, and the FLEX
// header with the index or count plus CRC-8.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) == 0 {
		return plugins.Result{DeviceID: s.id}, fmt.Errorf("decoding navis message: %w: empty frame", plugins.ErrMalformed)
	}
	d := &decoding{s: s, frame: frame, recv: recv.UTC()}
	var res plugins.Result
	var err error
	switch frame[0] {
	case keepAlive:
		if len(frame) != 1 {
			err = fmt.Errorf("%w: keepalive of %d bytes, want 1", plugins.ErrMalformed, len(frame))
		}
	case '@':
		res, err = d.ntcb()
	case '~':
		res, err = d.flexMessage()
	default:
		err = fmt.Errorf("%w: start byte 0x%02x", plugins.ErrMalformed, frame[0])
	}
	res.DeviceID = s.id
	if err != nil {
		return plugins.Result{DeviceID: s.id}, fmt.Errorf("decoding navis message: %w", err)
	}
	return res, nil
}

// decoding is one message being decoded.
type decoding struct {
	s     *Session
	frame []byte
	recv  time.Time
	copy  []byte
}

// newSignal starts a record of the message with the device time ts, or,
// when the message has none, the receive time of its first copy.
func (d *decoding) newSignal(ts time.Time) *signal.Signal {
	if ts.IsZero() {
		ts = d.s.dec.times.Stamp(d.s.id, d.frame, d.recv.Truncate(time.Microsecond))
	}
	if d.copy == nil {
		d.copy = append([]byte(nil), d.frame...)
	}
	sg := signal.New(d.s.id, ts)
	sg.Recv = d.recv
	sg.Protocol = Name
	sg.Frame = d.copy
	return &sg
}

// ntcbHeader is the header of an NTCB message.
type ntcbHeader struct {
	prefix           [4]byte
	receiver, sender uint32
}

// ntcbReply builds an NTCB message to the device: the header with receiver
// and sender swapped, the data length and both XORs, then the data.
func ntcbReply(h ntcbHeader, data []byte) []byte {
	out := make([]byte, 0, headerLen+len(data))
	out = append(out, h.prefix[:]...)
	out = binary.LittleEndian.AppendUint32(out, h.sender)
	out = binary.LittleEndian.AppendUint32(out, h.receiver)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(data)))
	out = append(out, XOR(data))
	out = append(out, XOR(out))
	return append(out, data...)
}

func (d *decoding) ntcb() (plugins.Result, error) {
	f := d.frame
	if len(f) < headerLen || string(f[:4]) != "@NTC" {
		return plugins.Result{}, fmt.Errorf("%w: NTCB message of %d bytes without an @NTC header", plugins.ErrMalformed, len(f))
	}
	if got, want := XOR(f[:headerLen-1]), f[headerLen-1]; got != want {
		return plugins.Result{}, fmt.Errorf("%w: NTCB header XOR 0x%02x, header says 0x%02x", plugins.ErrChecksum, got, want)
	}
	n := int(binary.LittleEndian.Uint16(f[12:]))
	if len(f) != headerLen+n {
		return plugins.Result{}, fmt.Errorf("%w: NTCB data of %d bytes, header says %d", plugins.ErrMalformed, len(f)-headerLen, n)
	}
	data := f[headerLen:]
	if got, want := XOR(data), f[14]; got != want {
		return plugins.Result{}, fmt.Errorf("%w: NTCB data XOR 0x%02x, header says 0x%02x", plugins.ErrChecksum, got, want)
	}
	var h ntcbHeader
	copy(h.prefix[:], f[:4])
	h.receiver = binary.LittleEndian.Uint32(f[4:])
	h.sender = binary.LittleEndian.Uint32(f[8:])
	if n == 0 {
		return plugins.Result{}, nil // keepalive
	}
	if n < 3 {
		return plugins.Result{}, fmt.Errorf("%w: NTCB data %q shorter than a command", plugins.ErrMalformed, data)
	}
	cmd := string(data[:3])
	switch {
	case cmd == "*>S":
		return d.handshake(h, data[3:])
	case len(data) >= 6 && string(data[:6]) == "*>FLEX":
		if d.s.id == "" {
			return plugins.Result{}, fmt.Errorf("%w: *>FLEX before the *>S handshake", plugins.ErrNoDevice)
		}
		return d.negotiate(h, data[6:])
	case cmd == "*>T", cmd == "*>A":
		if d.s.id == "" {
			return plugins.Result{}, fmt.Errorf("%w: %s before the *>S handshake", plugins.ErrNoDevice, cmd)
		}
		if cmd == "*>T" {
			return d.ntcbSingle(h, data[3:])
		}
		return d.ntcbArray(h, data[3:])
	case cmd[:2] == "*@":
		if d.s.id == "" {
			return plugins.Result{}, fmt.Errorf("%w: command reply before the *>S handshake", plugins.ErrNoDevice)
		}
		return d.commandReply(data)
	}
	return plugins.Result{}, fmt.Errorf("%w: NTCB command %q", plugins.ErrUnsupported, printable(data[:3]))
}

// handshake takes "*>S:<IMEI>": the device of the connection, answered *<S.
func (d *decoding) handshake(h ntcbHeader, rest []byte) (plugins.Result, error) {
	if len(rest) < 2 || rest[0] != ':' {
		return plugins.Result{}, fmt.Errorf("%w: *>S without ':<IMEI>'", plugins.ErrMalformed)
	}
	id := string(rest[1:])
	if len(id) > maxDeviceID {
		return plugins.Result{}, fmt.Errorf("%w: *>S device id of %d bytes, cap %d", plugins.ErrMalformed, len(id), maxDeviceID)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return plugins.Result{}, fmt.Errorf("%w: *>S device id %q is not printable ASCII", plugins.ErrMalformed, printable(rest[1:]))
		}
	}
	if d.s.cfg.AllowDevice != nil && !d.s.cfg.AllowDevice(id) {
		return plugins.Result{}, fmt.Errorf("%w: %s", plugins.ErrUnauthorized, id)
	}
	if d.s.id != "" && d.s.id != id {
		d.s.log.Warn("device changed its id on one connection", "from", d.s.id, "to", id)
		d.s.flex = nil
	}
	d.s.id = id
	return plugins.Result{Ack: ntcbReply(h, []byte("*<S"))}, nil
}

// commandReply takes "*@…", the device's answer to a command: a record with
// the text as attr result.
func (d *decoding) commandReply(data []byte) (plugins.Result, error) {
	if !utf8.Valid(data) {
		return plugins.Result{}, fmt.Errorf("%w: command reply is not UTF-8 text", plugins.ErrMalformed)
	}
	for _, c := range data {
		if c == 0 {
			return plugins.Result{}, fmt.Errorf("%w: command reply holds a NUL byte", plugins.ErrMalformed)
		}
	}
	sg := d.newSignal(time.Time{})
	sg.SetAttr("result", string(data))
	sg.SetAttr("time_source", "server")
	return plugins.Result{Signals: []signal.Signal{*sg}}, nil
}

func (d *decoding) ntcbSingle(h ntcbHeader, body []byte) (plugins.Result, error) {
	r := reader{b: body}
	sg, index, err := d.ntcbRecord(&r)
	if err != nil {
		return plugins.Result{}, fmt.Errorf("*>T: %w", err)
	}
	if r.left() != 0 {
		return plugins.Result{}, fmt.Errorf("%w: *>T has %d bytes after the record", plugins.ErrMalformed, r.left())
	}
	ack := binary.LittleEndian.AppendUint32([]byte("*<T"), index)
	return plugins.Result{Signals: []signal.Signal{*sg}, Ack: ntcbReply(h, ack)}, nil
}

func (d *decoding) ntcbArray(h ntcbHeader, body []byte) (plugins.Result, error) {
	r := reader{b: body}
	count := int(r.u8())
	if r.err != nil || count == 0 {
		return plugins.Result{}, fmt.Errorf("%w: *>A without records", plugins.ErrMalformed)
	}
	sigs := make([]signal.Signal, 0, count)
	for i := 0; i < count; i++ {
		sg, _, err := d.ntcbRecord(&r)
		if err != nil {
			return plugins.Result{}, fmt.Errorf("*>A record %d of %d: %w", i+1, count, err)
		}
		sigs = append(sigs, *sg)
	}
	if r.left() != 0 {
		return plugins.Result{}, fmt.Errorf("%w: *>A has %d bytes after %d records", plugins.ErrMalformed, r.left(), count)
	}
	return plugins.Result{Signals: sigs, Ack: ntcbReply(h, []byte{'*', '<', 'A', byte(count)})}, nil
}

// printable shows bytes for an error message: text as is, else hex.
func printable(b []byte) string {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return fmt.Sprintf("%x", b)
		}
	}
	return string(b)
}
