// Package obddongle decodes the binary protocol of the "OBD dongle"
// trackers Traccar calls ObdDongle: 0x5555 + index + 15-digit IMEI + type
// + length + content + checksum + 0xAAAA, an MQTT-like exchange (CONNECT
// answered by CONNACK, PUBLISH of a GPS record answered by PUBACK). See
// README.md.
package obddongle

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "obddongle"

// DefaultPort is Traccar's port for the protocol.
const DefaultPort = 5093

const (
	defaultMaxFrame = 1099 // Traccar's frame limit
	headerLen       = 22   // 5555, index, IMEI, type, length
	trailerLen      = 3    // checksum, AAAA
	imeiLen         = 15
)

// Message types.
const (
	msgConnect    = 0x01
	msgConnack    = 0x02
	msgPublish    = 0x03
	msgPuback     = 0x04
	msgPingreq    = 0x0C
	msgDisconnect = 0x0E
)

// Decoder is the ObdDongle protocol. The zero value is ready to use.
type Decoder struct{}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP},
		DefaultPort: DefaultPort,
		Description: "OBD dongles (Traccar's ObdDongle): 0x5555…0xAAAA frames, CONNECT/CONNACK, GPS PUBLISH/PUBACK",
	}
}

// NewSession starts one connection's state.
func (dec *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Session{cfg: cfg, log: log.Named(Name)}
}

// Session is one connection.
type Session struct {
	cfg  plugins.SessionConfig
	log  hclog.Logger
	imei string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID returns the IMEI of the last frame decoded, or "".
func (s *Session) DeviceID() string { return s.imei }

// Frame returns the length of the frame at the start of buf: header
// 0x5555, the content length at offset 20, 0xAAAA after the checksum.
func (s *Session) Frame(buf []byte) (int, error) {
	n, err := frameLen(buf, s.cfg.MaxFrame)
	if err != nil {
		return 0, fmt.Errorf("framing obddongle frame: %w", err)
	}
	return n, nil
}

func frameLen(buf []byte, max int) (int, error) {
	for i := 0; i < 2 && i < len(buf); i++ {
		if buf[i] != 0x55 {
			return 0, fmt.Errorf("%w: header byte %d is 0x%02x, want 0x5555", plugins.ErrMalformed, i, buf[i])
		}
	}
	if len(buf) < headerLen {
		return 0, nil
	}
	total := headerLen + int(binary.BigEndian.Uint16(buf[20:])) + trailerLen
	if max > 0 && total > max {
		return 0, fmt.Errorf("%w: frame of %d bytes exceeds %d", plugins.ErrTooLarge, total, max)
	}
	if len(buf) < total {
		return 0, nil
	}
	if buf[total-2] != 0xAA || buf[total-1] != 0xAA {
		return 0, fmt.Errorf("%w: bytes 0x%02x%02x after the content (length field %d), want 0xAAAA",
			plugins.ErrMalformed, buf[total-2], buf[total-1], total-headerLen-trailerLen)
	}
	return total, nil
}

// Response builds a server frame: header, the device's index and IMEI,
// type, content, a zero checksum (as Traccar writes it) and 0xAAAA.
func Response(index uint16, imei []byte, typ byte, content []byte) []byte {
	b := make([]byte, 0, headerLen+len(content)+trailerLen)
	b = append(b, 0x55, 0x55)
	b = binary.BigEndian.AppendUint16(b, index)
	b = append(b, imei...)
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(content)))
	b = append(b, content...)
	return append(b, 0, 0xAA, 0xAA)
}

// Decode checks the frame's length and trailer and decodes it. The
// checksum byte is not checked: its algorithm is not documented, and
// Traccar writes 0 in its own replies (see README.md).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res, err := s.decode(frame, recv)
	res.DeviceID = s.imei
	if err != nil {
		return res, fmt.Errorf("decoding obddongle frame: %w", err)
	}
	return res, nil
}

func (s *Session) decode(frame []byte, recv time.Time) (plugins.Result, error) {
	n, err := frameLen(frame, s.cfg.MaxFrame)
	if err != nil {
		return plugins.Result{}, err
	}
	if n == 0 {
		return plugins.Result{}, fmt.Errorf("%w: truncated frame of %d bytes", plugins.ErrMalformed, len(frame))
	}
	if n != len(frame) {
		return plugins.Result{}, fmt.Errorf("%w: %d bytes after the frame (length field %d)", plugins.ErrMalformed, len(frame)-n, n-headerLen-trailerLen)
	}
	index := binary.BigEndian.Uint16(frame[2:])
	rawIMEI := frame[4 : 4+imeiLen]
	for _, c := range rawIMEI {
		if c < '0' || c > '9' {
			return plugins.Result{}, fmt.Errorf("%w: IMEI %q is not 15 digits", plugins.ErrMalformed, rawIMEI)
		}
	}
	imei := string(rawIMEI)
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(imei) {
		return plugins.Result{}, fmt.Errorf("%w: %s", plugins.ErrUnauthorized, imei)
	}
	s.imei = imei
	typ := frame[19]
	content := frame[headerLen : n-trailerLen]
	switch typ {
	case msgConnect:
		return plugins.Result{Ack: Response(index, rawIMEI, msgConnack, []byte{1, 0, 0, 0, 0, 0, 0})}, nil
	case msgPingreq:
		return plugins.Result{}, nil
	case msgDisconnect:
		return plugins.Result{Close: true}, nil
	case msgPublish:
		sg, err := publish(imei, content)
		if err != nil {
			return plugins.Result{}, err
		}
		sg.Recv = recv.UTC()
		sg.Frame = append([]byte(nil), frame...)
		if dom, ok := signal.DomainOf(signal.FieldSpeed); ok && !dom.Contains(sg.Speed) {
			return plugins.Result{}, fmt.Errorf("%w: speed %v km/h outside %v..%v", plugins.ErrMalformed, sg.Speed, dom.Min, dom.Max)
		}
		return plugins.Result{
			Signals: []signal.Signal{sg},
			Ack:     Response(index, rawIMEI, msgPuback, []byte{content[0], content[1]}),
		}, nil
	}
	return plugins.Result{}, fmt.Errorf("%w: message type 0x%02x", plugins.ErrUnsupported, typ)
}

// publishLen is the GPS record of a PUBLISH: type major and minor, event
// id, time, flags, longitude (5 bytes), latitude (3), speed and course (3).
const publishLen = 19

func publish(imei string, c []byte) (signal.Signal, error) {
	if len(c) < publishLen {
		return signal.Signal{}, fmt.Errorf("%w: PUBLISH content of %d bytes, want at least %d", plugins.ErrMalformed, len(c), publishLen)
	}
	ts := time.Unix(int64(binary.BigEndian.Uint32(c[3:])), 0).UTC()
	if !ts.Before(signal.EndTime) {
		return signal.Signal{}, fmt.Errorf("%w: time %d beyond 2099", plugins.ErrMalformed, binary.BigEndian.Uint32(c[3:]))
	}
	flags := c[7]
	lon := float64(uint32(c[9]&1)<<24|uint32(c[10])<<16|uint32(c[11])<<8|uint32(c[12])) / 100000
	lat := float64(uint32(c[13])<<16|uint32(c[14])<<8|uint32(c[15])) / 100000
	if flags&0x20 == 0 {
		lon = -lon
	}
	if flags&0x10 == 0 {
		lat = -lat
	}
	if lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return signal.Signal{}, fmt.Errorf("%w: position %v,%v out of range", plugins.ErrMalformed, lat, lon)
	}
	sc := uint32(c[16])<<16 | uint32(c[17])<<8 | uint32(c[18])
	course := float64(sc & 0x3FF)
	if course > 360 {
		return signal.Signal{}, fmt.Errorf("%w: course %v out of range", plugins.ErrMalformed, course)
	}
	sg := signal.New(imei, ts)
	sg.Protocol = Name
	sg.Lat, sg.Lon = lat, lon
	sg.Speed = float64(sc>>10) / 10 * 1.609344 // 0.1 mph → km/h
	sg.Heading = course
	sg.Valid = signal.FlagOf(flags&0x40 == 0)
	sg.Sats = float64(flags & 0x0F)
	sg.SetAttr("event", int64(c[2]))
	sg.SetAttr("type", fmt.Sprintf("%02x%02x", c[0], c[1]))
	return sg, nil
}
