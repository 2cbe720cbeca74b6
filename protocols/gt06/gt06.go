// Package gt06 decodes the Concox GT06 binary protocol and the many clones
// that speak it (GT06N, GT02, GT800, JM01, GK310, JC100/JC400 dashcams,
// VL103, AZ735, X1, Wanway, SinoTrack, ...). See README.md for the packet
// kinds, the field mapping and the ack behaviour.
package gt06

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "gt06"

// DefaultPort is the conventional GT06 port.
const DefaultPort = 5023

const (
	defaultMaxFrame = 64 << 10
	startShort      = 0x78 // 0x7878: 1-byte length
	startLong       = 0x79 // 0x7979: 2-byte length
	minLength       = 5    // protocol number + serial (2) + CRC (2)
	pingLen         = 6    // 78 78 01 <protocol> 0D 0A
)

// Decoder is the GT06 protocol. The zero value is ready to use.
//
// It is shared by every session of every GT06 listener: it remembers the
// receive time it gave each packet without a device time (heartbeats,
// status and information packets, command replies), keyed by the packet's
// bytes, serial number included, so that a resend of the packet gets the
// same time and key (plugins.ServerTimes).
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
		Description: "Concox GT06 and clones: 0x7878/0x7979 framing, CRC-ITU, login, GPS/LBS/status/alarm/info packets",
		Options:     []plugins.Option{optDeviceTime, optModel},
	}
}

// NewSession starts one connection's state. The device is unknown until its
// login packet (0x01) arrives; data packets before it are ErrNoDevice.
//
// Listener option device_time = "utc" ignores the time zone a login packet
// declares (for firmwares that declare one but report UTC anyway). Listener
// option model names the device model of the listener's trackers (for
// example "LW4G-4B", "NT20", "XT40", "VL103", "SEEWORLD", "R11", "QH302R"):
// some models reuse a protocol number with their own layout or alarm codes,
// which the bytes alone do not tell apart (see README.md).
func (dec *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Session{
		dec:      dec,
		cfg:      cfg,
		log:      log.Named(Name),
		utcClock: optDeviceTime.Get(cfg.Options) == "utc",
		model:    strings.ToUpper(strings.TrimSpace(optModel.Get(cfg.Options))),
	}
}

// The listener options (see README "Time" and "Model variants").
var (
	optDeviceTime = plugins.EnumOption{
		Name: "device_time", Default: "declared", Values: []string{"declared", "utc"},
		Doc: "`declared`: device times are local to the time zone the login declares; `utc`: ignore it, for firmwares that report UTC regardless",
	}
	optModel = plugins.StringOption{
		Name: "model", MaxLen: 64,
		Doc: "the device model (case-insensitive) for packets whose layout depends on it, like Traccar's `modelOverride`",
	}
)

// Session is one GT06 connection.
type Session struct {
	dec *Decoder
	cfg plugins.SessionConfig
	log hclog.Logger
	// imei is the device id from the login packet.
	imei string
	// tz is the device clock's offset from UTC declared in the login
	// packet; device times are converted to UTC with it.
	tz time.Duration
	// utcClock: ignore the declared time zone (option device_time = "utc").
	utcClock bool
	// model is the listener option model, upper case ("" when unset).
	model string
}

// Model families whose packets differ from the common layout.
var (
	// ntModels send 0x22/0x25 with a location source, the terminal's IMEI
	// and a device time before the GPS block, and a status tail.
	ntModels = []string{"NT11", "NT20", "NT26", "NT40", "NT46", "VL100", "XT40"}
	// vlModels send 0x36 as a location packet and use their own alarm
	// codes.
	vlModels = []string{"VL103", "LL303", "VL512", "G18"}
)

func (s *Session) modelLW() bool { return strings.HasPrefix(s.model, "LW") }
func (s *Session) modelSW() bool { return s.model == "SEEWORLD" }
func (s *Session) modelNT() bool { return slices.Contains(ntModels, s.model) }
func (s *Session) modelVL() bool { return slices.Contains(vlModels, s.model) }

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID returns the IMEI from the login packet, or "" before it.
func (s *Session) DeviceID() string { return s.imei }

// Frame returns the length of the packet at the start of buf: start bits,
// length, content, stop bits 0x0D0A. A wrong start, a length below the
// minimum or missing stop bits is ErrMalformed; a length beyond MaxFrame is
// ErrTooLarge. The CRC is checked by Decode so the frame can be quarantined
// whole.
func (s *Session) Frame(buf []byte) (int, error) {
	n, err := frameLen(buf, s.cfg.MaxFrame)
	if err != nil {
		return 0, fmt.Errorf("framing gt06 packet: %w", err)
	}
	return n, nil
}

func frameLen(buf []byte, max int) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	if buf[0] != startShort && buf[0] != startLong {
		return 0, fmt.Errorf("%w: start byte 0x%02x, want 0x7878 or 0x7979", plugins.ErrMalformed, buf[0])
	}
	if len(buf) < 2 {
		return 0, nil
	}
	if buf[1] != buf[0] {
		return 0, fmt.Errorf("%w: start bits 0x%02x%02x, want 0x7878 or 0x7979", plugins.ErrMalformed, buf[0], buf[1])
	}
	var length, total int
	if buf[0] == startShort {
		if len(buf) < 3 {
			return 0, nil
		}
		length = int(buf[2])
		total = 2 + 1 + length + 2
	} else {
		if len(buf) < 4 {
			return 0, nil
		}
		length = int(binary.BigEndian.Uint16(buf[2:]))
		total = 2 + 2 + length + 2
	}
	if length == 1 && buf[0] == startShort {
		// 78 78 01 <protocol> 0D 0A: the serial-less, CRC-less keep-alive
		// some clones send. Framed (so the connection stays up), decoded
		// to nothing.
		if len(buf) < pingLen {
			return 0, nil
		}
		if buf[4] != 0x0D || buf[5] != 0x0A {
			return 0, fmt.Errorf("%w: length 1 without stop bits", plugins.ErrMalformed)
		}
		return pingLen, nil
	}
	if length < minLength {
		return 0, fmt.Errorf("%w: length %d below the minimum %d", plugins.ErrMalformed, length, minLength)
	}
	if max > 0 && total > max {
		return 0, fmt.Errorf("%w: packet of %d bytes exceeds %d", plugins.ErrTooLarge, total, max)
	}
	if len(buf) < total {
		return 0, nil
	}
	if buf[total-2] != 0x0D || buf[total-1] != 0x0A {
		return 0, fmt.Errorf("%w: stop bits 0x%02x%02x at offset %d, want 0x0d0a (length field %d)",
			plugins.ErrMalformed, buf[total-2], buf[total-1], total-2, length)
	}
	return total, nil
}

// packet is a checked frame split into its parts.
type packet struct {
	long    bool   // 0x7979 framing
	proto   byte   // protocol number
	content []byte // information content
	serial  uint16 // information serial number
}

func parsePacket(frame []byte, max int) (packet, error) {
	n, err := frameLen(frame, max)
	if err != nil {
		return packet{}, err
	}
	if n == 0 || n != len(frame) {
		if n == 0 {
			return packet{}, fmt.Errorf("%w: truncated packet of %d bytes", plugins.ErrMalformed, len(frame))
		}
		return packet{}, fmt.Errorf("%w: %d trailing bytes after the packet", plugins.ErrMalformed, len(frame)-n)
	}
	hl := 3
	long := frame[0] == startLong
	if long {
		hl = 4
	}
	body := frame[2 : n-4] // length .. serial, what the CRC covers
	want := binary.BigEndian.Uint16(frame[n-4:])
	if got := CRC(body); got != want {
		return packet{}, fmt.Errorf("%w: CRC-ITU 0x%04x, packet says 0x%04x", plugins.ErrChecksum, got, want)
	}
	return packet{
		long:    long,
		proto:   frame[hl],
		content: frame[hl+1 : n-6],
		serial:  binary.BigEndian.Uint16(frame[n-6:]),
	}, nil
}

// Response builds the server's response packet: same framing kind,
// protocol number, optional content, the packet's serial and the CRC.
func Response(long bool, proto byte, content []byte, serial uint16) []byte {
	n := 1 + len(content) + 2 + 2
	var b []byte
	if long {
		b = make([]byte, 0, 4+n+2)
		b = append(b, startLong, startLong)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	} else {
		b = make([]byte, 0, 3+n+2)
		b = append(b, startShort, startShort, byte(n))
	}
	b = append(b, proto)
	b = append(b, content...)
	b = binary.BigEndian.AppendUint16(b, serial)
	b = binary.BigEndian.AppendUint16(b, CRC(b[2:]))
	return append(b, 0x0D, 0x0A)
}

// Decode checks the frame's CRC and decodes it. A login packet sets the
// session's device; every other packet needs it (ErrNoDevice otherwise).
// The ack is the protocol's response packet; it is written once the
// frame's signal is durable.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) == pingLen && frame[0] == startShort && frame[1] == startShort && frame[2] == 1 && frame[4] == 0x0D && frame[5] == 0x0A {
		// The keep-alive has no serial to echo and no content: no signal,
		// no response.
		return plugins.Result{DeviceID: s.imei}, nil
	}
	p, err := parsePacket(frame, s.cfg.MaxFrame)
	if err != nil {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding gt06 packet: %w", err)
	}
	if p.proto == msgLogin && !p.long {
		return s.login(p)
	}
	if s.imei == "" {
		return plugins.Result{}, fmt.Errorf("decoding gt06 packet 0x%02x: %w: no login packet yet", p.proto, plugins.ErrNoDevice)
	}
	d := &decoding{s: s, p: p, frame: frame, recv: recv.UTC()}
	res, err := d.run()
	res.DeviceID = s.imei
	if err != nil {
		return res, fmt.Errorf("decoding gt06 packet 0x%02x: %w", p.proto, err)
	}
	return res, nil
}

func (s *Session) login(p packet) (plugins.Result, error) {
	if len(p.content) < 8 {
		return plugins.Result{}, fmt.Errorf("decoding gt06 login: %w: %d content bytes, want at least 8", plugins.ErrMalformed, len(p.content))
	}
	id, ok := bcdDigits(p.content[:8])
	if !ok {
		return plugins.Result{}, fmt.Errorf("decoding gt06 login: %w: terminal id %x is not BCD", plugins.ErrMalformed, p.content[:8])
	}
	if len(id) == 16 && id[0] == '0' {
		id = id[1:] // 15-digit IMEI padded with a leading zero
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(id) {
		return plugins.Result{DeviceID: id}, fmt.Errorf("decoding gt06 login: %w: %s", plugins.ErrUnauthorized, id)
	}
	// Optional: type identification (2 bytes), then time zone and
	// language (2 bytes): bits 15..4 the offset as hhmm, bit 3 set = west.
	if len(p.content) >= 12 {
		ext := binary.BigEndian.Uint16(p.content[10:])
		hhmm := int(ext >> 4)
		off := time.Duration(hhmm/100)*time.Hour + time.Duration(hhmm%100)*time.Minute
		if ext&0x08 != 0 {
			off = -off
		}
		if off > -15*time.Hour && off < 15*time.Hour && !s.utcClock {
			s.tz = off
		}
	}
	if s.imei != "" && s.imei != id {
		s.log.Warn("device changed its id on one connection", "from", s.imei, "to", id)
	}
	s.imei = id
	return plugins.Result{DeviceID: id, Ack: Response(false, msgLogin, nil, p.serial)}, nil
}

func bcdDigits(b []byte) (string, bool) {
	out := make([]byte, 0, 2*len(b))
	for _, x := range b {
		hi, lo := x>>4, x&0x0F
		if hi > 9 || lo > 9 {
			return "", false
		}
		out = append(out, '0'+hi, '0'+lo)
	}
	return string(out), true
}

// newSignal starts the frame's signal with the device id, the protocol, a
// copy of the frame and its time: ts, or, for a packet without a device
// time, the receive time of the packet's first copy. The packet's bytes
// include its serial number, so a resend (the same serial) gets the same
// time and key, and the next packet (the next serial) its own.
func (d *decoding) newSignal(ts time.Time) *signal.Signal {
	if ts.IsZero() {
		ts = d.s.dec.times.Stamp(d.s.imei, d.frame, d.recv.Truncate(time.Microsecond))
	}
	sg := signal.New(d.s.imei, ts)
	sg.Recv = d.recv
	sg.Protocol = Name
	sg.Frame = append([]byte(nil), d.frame...)
	return &sg
}
