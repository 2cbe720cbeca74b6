// Package meiligao decodes the GPRS protocol of Meiligao (Meitrack's
// earlier brand) trackers and their clones: VT300, VT310, VT400, GT30,
// GT60, TK218 and others. A frame is `$$`, a 16-bit length of the whole
// frame, the device id (7 bytes BCD), a 16-bit command, the data, a
// CRC-16 and CRLF; positions are GPRMC sentences with `|`-separated
// extras.
package meiligao

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id.
const Name = "meiligao"

// DefaultPort is Traccar's port for the protocol.
const DefaultPort = 5009

// Commands (device → server unless noted).
const (
	cmdHeartbeat      = 0x0001
	cmdServer         = 0x0002
	cmdLogin          = 0x5000
	cmdLoginResponse  = 0x4000 // server → device
	cmdPosition       = 0x9955
	cmdPositionLogged = 0x9016
	cmdAlarm          = 0x9999
	cmdRFID           = 0x9966
	cmdRetransmission = 0x6688
	cmdPositionImage  = 0x9977
	cmdOBD            = 0x9901
	cmdOBDTotals      = 0x9902
	cmdDTC            = 0x9903
	cmdUploadPhoto    = 0x0800
	cmdPhotoData      = 0x9988
	cmdUploadComplete = 0x0f80
)

// minFrame is $$ + length + id + command + CRC + CRLF.
const minFrame = 2 + 2 + 7 + 2 + 2 + 2

// Decoder is the Meiligao decoder; its zero value is ready to use. It is
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
		Description: "Meiligao VT300/VT310/VT400/GT30/GT60/TK218: $$ + length + BCD id + command + GPRMC data + CRC-16, login and heartbeat answered",
	}
}

// NewSession starts a connection.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 64 << 10
	}
	return &Session{dec: d, cfg: cfg}
}

// Session is one connection (or UDP source).
type Session struct {
	dec *Decoder
	cfg plugins.SessionConfig
	dev string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID is the device seen last on the connection.
func (s *Session) DeviceID() string { return s.dev }

// Frame returns the first frame: `$$` and as many bytes as its length
// field (the whole frame) says, which must end with CRLF.
func (s *Session) Frame(buf []byte) (int, error) {
	for i := 0; i < len(buf) && i < 2; i++ {
		if buf[i] != '$' {
			return 0, fmt.Errorf("framing meiligao: %w: byte 0x%02x at %d, want '$$'", plugins.ErrMalformed, buf[i], i)
		}
	}
	if len(buf) < 4 {
		return 0, nil
	}
	n := int(binary.BigEndian.Uint16(buf[2:4]))
	if n < minFrame {
		return 0, fmt.Errorf("framing meiligao: %w: length field %d, at least %d", plugins.ErrMalformed, n, minFrame)
	}
	if n > s.cfg.MaxFrame {
		return 0, fmt.Errorf("framing meiligao: %w: length field %d, cap %d", plugins.ErrTooLarge, n, s.cfg.MaxFrame)
	}
	if len(buf) < n {
		return 0, nil
	}
	if buf[n-2] != '\r' || buf[n-1] != '\n' {
		return 0, fmt.Errorf("framing meiligao: %w: no CRLF at the end announced by the length field (%d)", plugins.ErrMalformed, n)
	}
	return n, nil
}

// Decode decodes one frame (a TCP frame or a UDP datagram).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res, err := s.decode(frame, recv)
	if err != nil {
		return plugins.Result{DeviceID: s.dev}, fmt.Errorf("decoding meiligao frame: %w", err)
	}
	res.DeviceID = s.dev
	return res, nil
}

// crcCCITT is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not
// reflected), the checksum of Meiligao's protocol document.
func crcCCITT(b []byte) uint16 {
	crc := uint16(0xffff)
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// crcX25 is CRC-16/X-25 (poly 0x1021 reflected, init and xorout 0xFFFF),
// which some firmware sends instead.
func crcX25(b []byte) uint16 {
	crc := uint16(0xffff)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8408
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// deviceID decodes the BCD id: digits up to the first 0xF nibble.
func deviceID(b []byte) (string, error) {
	var sb strings.Builder
	for _, c := range b {
		for _, d := range []byte{c >> 4, c & 0xf} {
			if d == 0xf {
				if sb.Len() == 0 {
					return "", fmt.Errorf("%w: empty device id", plugins.ErrNoDevice)
				}
				return sb.String(), nil
			}
			if d > 9 {
				return "", fmt.Errorf("%w: device id % x is not BCD", plugins.ErrMalformed, b)
			}
			sb.WriteByte('0' + d)
		}
	}
	return sb.String(), nil
}

func (s *Session) setDevice(id string) error {
	if id != s.dev && s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(id) {
		return fmt.Errorf("%w: %s", plugins.ErrUnauthorized, id)
	}
	s.dev = id
	return nil
}

// response builds `@@` + length + id + command + data + CRC-16/CCITT-FALSE
// + CRLF.
func response(id []byte, cmd uint16, data []byte) []byte {
	n := 2 + 2 + len(id) + 2 + len(data) + 2 + 2
	b := make([]byte, 0, n)
	b = append(b, '@', '@', byte(n>>8), byte(n))
	b = append(b, id...)
	b = append(b, byte(cmd>>8), byte(cmd))
	b = append(b, data...)
	crc := crcCCITT(b)
	return append(b, byte(crc>>8), byte(crc), '\r', '\n')
}

func (s *Session) decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > s.cfg.MaxFrame {
		return plugins.Result{}, fmt.Errorf("%w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	if len(frame) < minFrame || frame[0] != '$' || frame[1] != '$' {
		return plugins.Result{}, fmt.Errorf("%w: %d bytes do not start a frame", plugins.ErrMalformed, len(frame))
	}
	if n := int(binary.BigEndian.Uint16(frame[2:4])); n != len(frame) {
		return plugins.Result{}, fmt.Errorf("%w: length field %d, the frame has %d bytes", plugins.ErrMalformed, n, len(frame))
	}
	if !bytes.HasSuffix(frame, []byte("\r\n")) {
		return plugins.Result{}, fmt.Errorf("%w: no CRLF at the end", plugins.ErrMalformed)
	}
	body := frame[:len(frame)-4]
	sum := binary.BigEndian.Uint16(frame[len(frame)-4:])
	if crcCCITT(body) != sum && crcX25(body) != sum {
		return plugins.Result{}, fmt.Errorf("%w: CRC %04x, CRC-16/CCITT-FALSE of the frame is %04x", plugins.ErrChecksum, sum, crcCCITT(body))
	}
	rawID := frame[4:11]
	id, err := deviceID(rawID)
	if err != nil {
		return plugins.Result{}, err
	}
	if err := s.setDevice(id); err != nil {
		return plugins.Result{}, err
	}
	cmd := binary.BigEndian.Uint16(frame[11:13])
	data := frame[13 : len(frame)-4]
	switch cmd {
	case cmdLogin:
		return plugins.Result{Ack: response(rawID, cmdLoginResponse, []byte{0x01})}, nil
	case cmdHeartbeat:
		return plugins.Result{Ack: response(rawID, cmdHeartbeat, []byte{0x01})}, nil
	case cmdServer, cmdUploadPhoto, cmdPhotoData, cmdUploadComplete:
		return plugins.Result{}, fmt.Errorf("%w: command %04x (server address request or photo transfer)", plugins.ErrUnsupported, cmd)
	}
	sigs, err := s.message(cmd, data, frame, recv)
	if err != nil {
		return plugins.Result{}, err
	}
	for i := range sigs {
		sigs[i].Recv = recv
	}
	return plugins.Result{Signals: sigs}, nil
}

func (s *Session) newSignal(ts time.Time, frame []byte) signal.Signal {
	sig := signal.New(s.dev, ts)
	sig.Protocol = Name
	sig.Frame = append([]byte(nil), frame...)
	return sig
}

// serverSignal is a record without a device time (OBD and DTC reports):
// the receive time to the second, the first copy's for a resend within
// the window. The frames carry no sequence number: an identical frame
// within the window is taken as a resend.
func (s *Session) serverSignal(frame []byte, recv time.Time) signal.Signal {
	sig := s.newSignal(s.dec.times.Stamp(s.dev, frame, recv.UTC().Truncate(time.Second)), frame)
	sig.SetAttr("time_source", "server")
	return sig
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
