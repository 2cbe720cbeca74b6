// Package acme is the worked example of a fleetcore protocol decoder: the
// (fictional) ACME AT-1 tracker's binary protocol. It is small on purpose
// and complete on purpose: framing with a length field, a checksum, a login,
// a batch of records, a heartbeat, acks, MaxFrame, the allow-list, and the
// errors a gateway expects. Copy this folder to start a new decoder; the
// README walks through it step by step.
package acme

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id: lowercase, the folder's name.
const Name = "acme"

// DefaultPort is the port ACME devices are configured with out of the box.
const DefaultPort = 5200

// Frame layout (big-endian):
//
//	start   2  0xAC 0x3E
//	version 1  1
//	type    1  message type (below); acks set bit 7
//	length  2  payload length
//	payload n
//	crc     2  CRC-16/CCITT-FALSE over version..payload
const (
	start0, start1 = 0xAC, 0x3E
	version        = 1
	headerLen      = 6
	trailerLen     = 2
	minFrame       = headerLen + trailerLen
)

// Message types.
const (
	TypeHello     = 0x01 // payload: 15 ASCII digits, the IMEI
	TypeRecords   = 0x02 // payload: seq u16, count u8, count × 22-byte record
	TypeHeartbeat = 0x03 // payload: empty
	ackBit        = 0x80
)

// recordLen is the size of one record:
//
//	time     u32  Unix seconds, UTC
//	lat, lon i32  1e-7 degree
//	alt      i16  m
//	speed    u16  0.1 km/h
//	heading  u16  0.1 degree
//	sats     u8
//	flags    u8   bit 0 fix valid, bit 1 ignition
//	voltage  u16  mV, external supply; 0xFFFF = not measured
const recordLen = 22

const defaultMaxFrame = 64 << 10

// Decoder is the ACME protocol. It holds no state (sessions do), so one
// value serves every connection. The zero value is ready to use.
type Decoder struct{}

// The interface guard: the build fails if Decoder stops being a decoder.
var _ plugins.Decoder = (*Decoder)(nil)

// init registers the decoder; protocols/all imports this package.
func init() { plugins.Register(&Decoder{}) }

// Info describes the decoder to the registry, config validation and docs.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP},
		DefaultPort: DefaultPort,
		Description: "ACME AT-1 (worked example): binary frames, CRC-16, hello, record batches, heartbeat",
	}
}

// NewSession starts one connection's state. It does no I/O.
func (*Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Session{cfg: cfg, log: log.Named(Name)}
}

// Session is one TCP connection: it remembers the IMEI from the hello.
type Session struct {
	cfg  plugins.SessionConfig
	log  hclog.Logger
	imei string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID is the IMEI from the hello, "" before it; the gateway uses it to
// label rejected frames.
func (s *Session) DeviceID() string { return s.imei }

// Frame tells the gateway how long the first frame in buf is: 0 = need more
// bytes, an error = these bytes can never be a frame (the connection is
// closed). It must not allocate what the length field claims, and must
// fail (not wait) once a claimed length exceeds MaxFrame.
func (s *Session) Frame(buf []byte) (int, error) {
	n, err := s.frameLen(buf)
	if err != nil {
		return 0, fmt.Errorf("framing acme frame: %w", err)
	}
	return n, nil
}

// frameLen is Frame without its phrase: Frame and Decode each say once
// which step failed.
func (s *Session) frameLen(buf []byte) (int, error) {
	if len(buf) >= 1 && buf[0] != start0 || len(buf) >= 2 && buf[1] != start1 {
		return 0, fmt.Errorf("%w: start bytes %x", plugins.ErrMalformed, buf[:min(2, len(buf))])
	}
	if len(buf) >= 3 && buf[2] != version {
		return 0, fmt.Errorf("%w: version %d", plugins.ErrMalformed, buf[2])
	}
	if len(buf) < headerLen {
		return 0, nil
	}
	total := headerLen + int(binary.BigEndian.Uint16(buf[4:])) + trailerLen
	if total > s.cfg.MaxFrame {
		return 0, fmt.Errorf("%w: %d bytes, cap %d", plugins.ErrTooLarge, total, s.cfg.MaxFrame)
	}
	if len(buf) < total {
		return 0, nil
	}
	return total, nil
}

// Decode turns one complete frame into signals and the ack. The frame is
// only valid during the call: every signal gets its own copy.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	typ, payload, err := s.check(frame)
	if err != nil {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding acme frame: %w", err)
	}
	switch typ {
	case TypeHello:
		return s.hello(payload)
	case TypeHeartbeat:
		if s.imei == "" {
			return plugins.Result{}, fmt.Errorf("decoding acme heartbeat: %w", plugins.ErrNoDevice)
		}
		// Nothing to store; no signals means the ack is written at once.
		return plugins.Result{DeviceID: s.imei, Ack: AppendFrame(nil, TypeHeartbeat|ackBit, nil)}, nil
	case TypeRecords:
		if s.imei == "" {
			return plugins.Result{}, fmt.Errorf("decoding acme records: %w", plugins.ErrNoDevice)
		}
		return s.records(frame, payload, recv)
	}
	return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding acme frame: %w: message type 0x%02x", plugins.ErrUnsupported, typ)
}

// check validates the whole frame (Decode may be handed a stored frame
// without Frame having seen it) and returns its type and payload.
func (s *Session) check(frame []byte) (byte, []byte, error) {
	n, err := s.frameLen(frame)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 || n != len(frame) {
		return 0, nil, fmt.Errorf("%w: %d bytes are not exactly one frame", plugins.ErrMalformed, len(frame))
	}
	body := frame[2 : n-trailerLen]
	if got, want := CRC16(body), binary.BigEndian.Uint16(frame[n-trailerLen:]); got != want {
		return 0, nil, fmt.Errorf("%w: CRC 0x%04x, frame says 0x%04x", plugins.ErrChecksum, got, want)
	}
	return frame[3], frame[headerLen : n-trailerLen], nil
}

func (s *Session) hello(payload []byte) (plugins.Result, error) {
	if len(payload) != 15 {
		return plugins.Result{}, fmt.Errorf("decoding acme hello: %w: IMEI of %d bytes", plugins.ErrMalformed, len(payload))
	}
	for _, c := range payload {
		if c < '0' || c > '9' {
			return plugins.Result{}, fmt.Errorf("decoding acme hello: %w: IMEI %q is not digits", plugins.ErrMalformed, payload)
		}
	}
	imei := string(payload)
	if s.imei != "" && s.imei != imei {
		s.log.Warn("device changed its IMEI on one connection", "from", s.imei, "to", imei)
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(imei) {
		return plugins.Result{DeviceID: imei}, fmt.Errorf("decoding acme hello: %w: %s", plugins.ErrUnauthorized, imei)
	}
	s.imei = imei
	return plugins.Result{DeviceID: imei, Ack: AppendFrame(nil, TypeHello|ackBit, nil)}, nil
}

func (s *Session) records(frame, payload []byte, recv time.Time) (plugins.Result, error) {
	if len(payload) < 3 {
		return plugins.Result{}, fmt.Errorf("decoding acme records: %w: payload of %d bytes", plugins.ErrMalformed, len(payload))
	}
	seq := binary.BigEndian.Uint16(payload)
	count := int(payload[2])
	if want := 3 + count*recordLen; len(payload) != want {
		return plugins.Result{}, fmt.Errorf("decoding acme records: %w: %d records need %d payload bytes, got %d",
			plugins.ErrMalformed, count, want, len(payload))
	}
	raw := append([]byte(nil), frame...) // one copy shared by the frame's signals
	sigs := make([]signal.Signal, 0, count)
	for i := range count {
		r := payload[3+i*recordLen : 3+(i+1)*recordLen]
		sg := signal.New(s.imei, time.Unix(int64(binary.BigEndian.Uint32(r[0:])), 0))
		sg.Recv = recv.UTC()
		sg.Protocol = Name
		sg.Frame = raw
		sg.Lat = float64(int32(binary.BigEndian.Uint32(r[4:]))) / 1e7
		sg.Lon = float64(int32(binary.BigEndian.Uint32(r[8:]))) / 1e7
		sg.Alt = float64(int16(binary.BigEndian.Uint16(r[12:])))
		sg.Speed = float64(binary.BigEndian.Uint16(r[14:])) / 10
		sg.Heading = float64(binary.BigEndian.Uint16(r[16:])) / 10
		sg.Sats = float64(r[18])
		flags := r[19]
		sg.Valid = signal.FlagOf(flags&0x01 != 0)
		sg.SetAttr("ignition", flags&0x02 != 0)
		if mv := binary.BigEndian.Uint16(r[20:]); mv != 0xFFFF {
			sg.Voltage = float64(mv) / 1000
		}
		// A position outside the field's domain (|lat| > 90) is left to
		// signal.Check, which the gateway runs on every record: the frame is
		// refused with the reason. A possible but implausible one (0, 0) is
		// stored, and the quality rules label it.
		sigs = append(sigs, sg)
	}
	// The ack names the batch's sequence number; the gateway writes it
	// only after every signal above is durable.
	ack := AppendFrame(nil, TypeRecords|ackBit, binary.BigEndian.AppendUint16(nil, seq))
	return plugins.Result{Signals: sigs, Ack: ack, DeviceID: s.imei}, nil
}

// AppendFrame appends a complete frame of the given type and payload to
// dst: what the device sends, and what the server acks with.
func AppendFrame(dst []byte, typ byte, payload []byte) []byte {
	dst = append(dst, start0, start1, version, typ)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(payload)))
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint16(dst, CRC16(dst[len(dst)-len(payload)-4:]))
}

// CRC16 is CRC-16/CCITT-FALSE: polynomial 0x1021, init 0xFFFF, no
// reflection, no final XOR.
func CRC16(b []byte) uint16 {
	c := uint16(0xFFFF)
	for _, x := range b {
		c ^= uint16(x) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
	}
	return c
}
