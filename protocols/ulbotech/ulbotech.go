// Package ulbotech decodes the Ulbotech tracker protocol (T300/T301/T361
// OBD and vehicle trackers): binary frames between 0xF8 bytes (0xF7
// escaping, CRC-16/XMODEM) with a header (version, type, BCD IMEI, device
// time) and TLV data blocks (GPS, cell, status, odometer, ADC, OBD-II PIDs
// and DTCs, fuel, driver behaviour, CAN, J1708, VIN, RFID, event), and the
// text form "*TS01,<imei>[,<hhmmss><ddmmyy>,<reply>]#". See README.md.
package ulbotech

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/fleetcore/fleetcore/plugins"
	"github.com/fleetcore/fleetcore/protocols/obd2"
	"github.com/fleetcore/fleetcore/signal"
)

// Name is the registry id of the decoder.
const Name = "ulbotech"

// DefaultPort is Traccar's port for Ulbotech.
const DefaultPort = 5072

const (
	defaultMaxFrame = 64 << 10
	frameMark       = 0xF8 // start and end of a binary frame
	escapeMark      = 0xF7 // F7 00 = F7, F7 0F = F8
	textStart       = '*'
	textEnd         = '#'
	// headerLen is version, type, IMEI (8), time (4) after the start mark.
	headerLen = 1 + 1 + 8 + 4
	// minBinary is start, header, CRC (2), end.
	minBinary = 1 + headerLen + 2 + 1
	// epoch2000 is 2000-01-01T00:00:00Z, the origin of device times.
	epoch2000 = 946684800
)

// TLV types of the binary frame.
const (
	tlvGPS       = 0x01
	tlvLBS       = 0x02
	tlvStatus    = 0x03
	tlvOdometer  = 0x04
	tlvADC       = 0x05
	tlvGeofence  = 0x06
	tlvOBD       = 0x07
	tlvFuel      = 0x08
	tlvOBDAlarm  = 0x09
	tlvHarsh     = 0x0A
	tlvCAN       = 0x0B // 2-byte length
	tlvJ1708     = 0x0C
	tlvVIN       = 0x0D
	tlvRFID      = 0x0E
	tlvEvent     = 0x10
	hdopInvalid  = 9999
	obdModeData  = 0x01
	obdModeCodes = 0x03
)

// Decoder is the Ulbotech protocol. The zero value is ready to use; it
// keeps no state shared between sessions (every data frame carries its
// device time).
type Decoder struct{}

var _ plugins.Decoder = (*Decoder)(nil)

func init() { plugins.Register(&Decoder{}) }

// Info describes the decoder.
func (*Decoder) Info() plugins.Info {
	return plugins.Info{
		Name:        Name,
		Transports:  []plugins.Transport{plugins.TCP, plugins.UDP},
		DefaultPort: DefaultPort,
		Description: "Ulbotech: 0xF8 binary frames (GPS, LBS, status, ADC, OBD-II PIDs and DTCs, …) and *TS01 text",
	}
}

// NewSession starts one connection's (TCP) or datagram source's (UDP)
// state.
func (d *Decoder) NewSession(cfg plugins.SessionConfig) plugins.Session {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = defaultMaxFrame
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Session{cfg: cfg, log: log.Named(Name)}
}

// Session is one connection or datagram source.
type Session struct {
	cfg  plugins.SessionConfig
	log  hclog.Logger
	imei string
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID is the IMEI of the last frame ("" before the first).
func (s *Session) DeviceID() string { return s.imei }

// Frame returns the length of the frame at the start of buf: a binary
// frame from 0xF8 to the next 0xF8, or a text frame from '*' to '#'.
//
// A device escapes 0xF8 inside a frame (F7 0F), so the first 0xF8 after the
// start ends the frame. Captures taken after unescaping (Traccar's tests)
// may hold a bare 0xF8 inside: when the first candidate fails its CRC and a
// later 0xF8 already in buf closes a frame whose CRC holds, that longer
// frame is taken. Otherwise the first candidate is refused (ErrChecksum or
// ErrMalformed): Frame never waits for bytes beyond a candidate end.
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	switch buf[0] {
	case frameMark:
		first := -1
		for i := 1; i < len(buf); i++ {
			if i+1 > s.cfg.MaxFrame {
				return 0, fmt.Errorf("framing ulbotech frame: %w: no end mark within %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
			}
			if buf[i] != frameMark {
				continue
			}
			if first < 0 {
				if i == 1 {
					// F8 F8: an end mark followed by a start; skip the
					// stray end as a malformed frame of one byte.
					return 0, fmt.Errorf("framing ulbotech frame: %w: empty frame", plugins.ErrMalformed)
				}
				first = i + 1
				if crcOK(buf[:i+1]) {
					return first, nil
				}
				continue
			}
			if crcOK(buf[:i+1]) {
				return i + 1, nil
			}
		}
		if first > 0 {
			_, err := frameBody(buf[1 : first-1])
			return 0, fmt.Errorf("framing ulbotech frame: %w", err)
		}
		return 0, nil
	case textStart:
		if i := bytes.IndexByte(buf, textEnd); i >= 0 {
			return i + 1, nil
		}
		if len(buf) >= s.cfg.MaxFrame {
			return 0, fmt.Errorf("framing ulbotech text: %w: no '#' within %d bytes", plugins.ErrTooLarge, s.cfg.MaxFrame)
		}
		return 0, nil
	default:
		return 0, fmt.Errorf("framing ulbotech: %w: start byte 0x%02x", plugins.ErrMalformed, buf[0])
	}
}

// crcOK reports whether frame (F8 … F8) holds a frame whose CRC holds.
func crcOK(frame []byte) bool {
	_, err := frameBody(frame[1 : len(frame)-1])
	return err == nil
}

// frameBody returns the bytes between the marks, unescaped, after checking
// the CRC-16/XMODEM of all but the last two against those two. A device
// escapes 0xF7 and 0xF8 inside a frame; captures taken after unescaping
// (Traccar's tests) hold them bare. So when the unescaped bytes fail, the
// bytes as they are are tried: taken only if their CRC holds.
func frameBody(inner []byte) ([]byte, error) {
	body, err := unescape(inner)
	if err == nil {
		if err = checkCRC(body); err == nil {
			return body, nil
		}
	}
	if len(body) != len(inner) || !bytes.Equal(body, inner) {
		if checkCRC(inner) == nil {
			return inner, nil
		}
	}
	return nil, err
}

func checkCRC(body []byte) error {
	if len(body) < headerLen+2 {
		return fmt.Errorf("%w: %d bytes between the marks", plugins.ErrMalformed, len(body))
	}
	n := len(body) - 2
	if got, want := CRC16XModem(body[:n]), binary.BigEndian.Uint16(body[n:]); got != want {
		return fmt.Errorf("%w: CRC-16/XMODEM is 0x%04x, frame says 0x%04x", plugins.ErrChecksum, got, want)
	}
	return nil
}

// unescape undoes F7 00 → F7 and F7 0F → F8.
func unescape(b []byte) ([]byte, error) {
	if bytes.IndexByte(b, escapeMark) < 0 {
		return b, nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != escapeMark {
			out = append(out, c)
			continue
		}
		if i+1 >= len(b) {
			return nil, fmt.Errorf("%w: escape byte at the end of the frame", plugins.ErrMalformed)
		}
		i++
		switch b[i] {
		case 0x00:
			out = append(out, escapeMark)
		case 0x0F:
			out = append(out, frameMark)
		default:
			return nil, fmt.Errorf("%w: escape sequence F7 %02X", plugins.ErrMalformed, b[i])
		}
	}
	return out, nil
}

// Decode decodes one frame (TCP) or datagram (UDP).
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	if len(frame) > s.cfg.MaxFrame {
		return plugins.Result{DeviceID: s.imei}, fmt.Errorf("decoding ulbotech frame: %w: %d bytes, cap %d", plugins.ErrTooLarge, len(frame), s.cfg.MaxFrame)
	}
	if len(frame) > 0 && frame[0] == textStart {
		return s.decodeText(frame, recv)
	}
	return s.decodeBinary(frame, recv)
}

func (s *Session) decodeBinary(frame []byte, recv time.Time) (plugins.Result, error) {
	res := plugins.Result{DeviceID: s.imei}
	if len(frame) < minBinary || frame[0] != frameMark || frame[len(frame)-1] != frameMark {
		return res, fmt.Errorf("decoding ulbotech frame: %w: %d bytes not enclosed in F8 marks", plugins.ErrMalformed, len(frame))
	}
	body, err := frameBody(frame[1 : len(frame)-1])
	if err != nil {
		return res, fmt.Errorf("decoding ulbotech frame: %w", err)
	}
	n := len(body) - 2
	imei, err := bcdIMEI(body[2:10])
	if err != nil {
		return res, fmt.Errorf("decoding ulbotech frame: %w", err)
	}
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(imei) {
		return plugins.Result{DeviceID: imei}, fmt.Errorf("decoding ulbotech frame: %w: %s", plugins.ErrUnauthorized, imei)
	}
	s.imei = imei
	res.DeviceID = imei
	secs := binary.BigEndian.Uint32(body[10:14]) & 0x7FFFFFFF
	sig := signal.New(imei, time.Unix(epoch2000+int64(secs), 0).UTC())
	sig.SetAttr("version", int64(body[0]))
	sig.SetAttr("type", int64(body[1]))
	if err := decodeTLVs(&sig, body[headerLen:n]); err != nil {
		return res, fmt.Errorf("decoding ulbotech frame: %w", err)
	}
	sig.Protocol = Name
	sig.Recv = recv.UTC()
	sig.Frame = append([]byte(nil), frame...)
	res.Signals = []signal.Signal{sig}
	res.Ack = binaryAck(body)
	return res, nil
}

// binaryAck is the reply Traccar sends to every binary frame, byte for
// byte: F8, 01 (GPS), FE, the first two bytes of the unescaped frame (its
// start mark and version), CRC-16/XMODEM of the four bytes after the start
// mark, F8. See README "Ack".
func binaryAck(body []byte) []byte {
	ack := []byte{frameMark, 0x01, 0xFE, frameMark, body[0]}
	ack = binary.BigEndian.AppendUint16(ack, CRC16XModem(ack[1:5]))
	return append(ack, frameMark)
}

// bcdIMEI reads the 8-byte BCD device id; the first of its 16 digits is a
// pad.
func bcdIMEI(b []byte) (string, error) {
	h := hex.EncodeToString(b)
	for i := 0; i < len(h); i++ {
		if h[i] < '0' || h[i] > '9' {
			return "", fmt.Errorf("%w: IMEI %s is not BCD", plugins.ErrMalformed, h)
		}
	}
	return h[1:], nil
}

// tlvReader walks the data blocks.
type tlvReader struct {
	b   []byte
	off int
}

func decodeTLVs(sig *signal.Signal, b []byte) error {
	r := &tlvReader{b: b}
	for r.off < len(b) {
		typ := b[r.off]
		r.off++
		var n int
		if typ == tlvCAN {
			if len(b)-r.off < 2 {
				return fmt.Errorf("%w: block 0x%02x without its length", plugins.ErrMalformed, typ)
			}
			n = int(binary.BigEndian.Uint16(b[r.off:]))
			r.off += 2
		} else {
			if r.off >= len(b) {
				return fmt.Errorf("%w: block 0x%02x without its length", plugins.ErrMalformed, typ)
			}
			n = int(b[r.off])
			r.off++
		}
		if len(b)-r.off < n {
			return fmt.Errorf("%w: block 0x%02x of %d bytes, %d left", plugins.ErrMalformed, typ, n, len(b)-r.off)
		}
		v := b[r.off : r.off+n]
		r.off += n
		if err := decodeTLV(sig, typ, v); err != nil {
			return fmt.Errorf("block 0x%02x: %w", typ, err)
		}
	}
	return nil
}

func short(typ byte, v []byte, need int) error {
	if len(v) < need {
		return fmt.Errorf("%w: block 0x%02x holds %d bytes, needs %d", plugins.ErrMalformed, typ, len(v), need)
	}
	return nil
}

func u16(v []byte) int64 { return int64(binary.BigEndian.Uint16(v)) }
func u32(v []byte) int64 { return int64(binary.BigEndian.Uint32(v)) }

func decodeTLV(sig *signal.Signal, typ byte, v []byte) error {
	switch typ {
	case tlvGPS:
		if err := short(typ, v, 14); err != nil {
			return err
		}
		lat := float64(int32(binary.BigEndian.Uint32(v))) / 1e6
		lon := float64(int32(binary.BigEndian.Uint32(v[4:]))) / 1e6
		if lat < -90 || lat > 90 || lon < -180 || lon > 180 {
			return fmt.Errorf("%w: position %v, %v out of range", plugins.ErrMalformed, lat, lon)
		}
		sig.Lat, sig.Lon = lat, lon
		sig.Speed = float64(u16(v[8:]))
		course := float64(u16(v[10:]))
		if course > 360 {
			return fmt.Errorf("%w: course %v", plugins.ErrMalformed, course)
		}
		sig.Heading = course
		hdop := u16(v[12:])
		sig.Valid = signal.FlagOf(hdop < hdopInvalid)
		if hdop < hdopInvalid {
			sig.HDOP = float64(hdop) / 100
		} else {
			sig.SetAttr("hdop_raw", hdop)
		}
	case tlvLBS:
		if err := short(typ, v, 9); err != nil {
			return err
		}
		sig.SetAttr("mcc", u16(v))
		sig.SetAttr("mnc", u16(v[2:]))
		sig.SetAttr("lac", u16(v[4:]))
		if len(v) == 11 {
			sig.SetAttr("cid", u32(v[6:]))
			sig.SetAttr("rssi", -int64(v[10]))
		} else {
			sig.SetAttr("cid", u16(v[6:]))
			sig.SetAttr("rssi", -int64(v[8]))
		}
	case tlvStatus:
		if err := short(typ, v, 4); err != nil {
			return err
		}
		status := u16(v)
		sig.SetAttr("status", status)
		sig.SetAttr("ignition", status&(1<<9) != 0)
		alarm := u16(v[2:])
		sig.SetAttr("alarm_bits", alarm)
		if a := alarmName(alarm); a != "" {
			sig.SetAttr("alarm", a)
		}
	case tlvOdometer:
		if err := short(typ, v, 4); err != nil {
			return err
		}
		sig.Odometer = float64(u32(v)) / 1000 // metres
	case tlvADC:
		for i := 0; i+1 < len(v); i += 2 {
			w := u16(v[i:])
			id, x := w>>12, float64(w&0x0FFF)
			switch id {
			case 0:
				if volts := x*110/4096 - 10; volts >= 0 {
					sig.Voltage = volts
				} else {
					// Below the scale's zero (-10 V): no supply voltage to
					// report as the canonical field; kept as sent.
					sig.SetAttr("power_v", volts)
				}
			case 1:
				sig.SetAttr("temp1", x*180/4096-55)
			case 2:
				sig.SetAttr("battery_voltage", x*110/4096-10)
			case 3:
				sig.SetAttr("adc1", x*110/4096-10)
			default:
				sig.SetAttr("io"+strconv.FormatInt(id, 10), int64(x))
			}
		}
	case tlvGeofence:
		if err := short(typ, v, 8); err != nil {
			return err
		}
		sig.SetAttr("geofence_in", u32(v))
		sig.SetAttr("geofence_alarm", u32(v[4:]))
	case tlvOBD, tlvOBDAlarm:
		return decodeOBD(sig, v)
	case tlvFuel:
		if err := short(typ, v, 4); err != nil {
			return err
		}
		sig.SetAttr("fuel_consumption", float64(u32(v))/10000)
	case tlvHarsh:
		if err := short(typ, v, 1); err != nil {
			return err
		}
		for i, name := range harshNames {
			if v[0]&(1<<i) != 0 {
				sig.SetAttr(name, true)
			}
		}
	case tlvCAN:
		sig.SetAttr("can", hex.EncodeToString(v))
	case tlvJ1708:
		return decodeJ1708(sig, v)
	case tlvVIN:
		sig.SetAttr("vin", text(v))
	case tlvRFID:
		if err := short(typ, v, 1); err != nil {
			return err
		}
		sig.SetAttr("driver_id", text(v[:len(v)-1]))
		sig.SetAttr("authorized", v[len(v)-1] != 0)
	case tlvEvent:
		if err := short(typ, v, 1); err != nil {
			return err
		}
		sig.SetAttr("event", int64(v[0]))
		if len(v) >= 5 {
			sig.SetAttr("event_mask", u32(v[1:]))
		}
	default:
		sig.SetAttr(fmt.Sprintf("block_%02x", typ), hex.EncodeToString(v))
	}
	return nil
}

// text keeps printable ASCII as is and anything else as hex, so the value
// is valid UTF-8 without NUL.
func text(v []byte) string {
	v = bytes.TrimRight(v, "\x00")
	for _, c := range v {
		if c < 0x20 || c > 0x7E {
			return hex.EncodeToString(v)
		}
	}
	return string(v)
}

var harshNames = [8]string{"rapid_acceleration", "rough_braking", "harsh_course", "no_warm_up", "long_idle", "fatigue_driving", "rough_terrain", "high_rpm"}

// alarmName is Traccar's reading of the alarm word: the first set bit of
// those it knows.
func alarmName(a int64) string {
	for _, b := range []struct {
		bit  uint
		name string
	}{{0, "power_off"}, {1, "movement"}, {2, "overspeed"}, {4, "geofence"}, {10, "sos"}} {
		if a&(1<<b.bit) != 0 {
			return b.name
		}
	}
	return ""
}

// decodeOBD reads OBD parameters: a byte whose high nibble is the
// parameter's length (this byte included) and low nibble the service
// (mode), then the rest: for mode 01 the PID and its data bytes, for mode
// 03 DTCs, two bytes each.
func decodeOBD(sig *signal.Signal, v []byte) error {
	for i := 0; i < len(v); {
		n := int(v[i] >> 4)
		mode := v[i] & 0x0F
		if n < 1 || i+n > len(v) {
			return fmt.Errorf("%w: OBD parameter of %d bytes at %d of %d", plugins.ErrMalformed, n, i, len(v))
		}
		p := v[i+1 : i+n]
		i += n
		switch mode {
		case obdModeData:
			if len(p) == 0 {
				return fmt.Errorf("%w: mode 01 parameter without a PID", plugins.ErrMalformed)
			}
			val, err := obd2.Decode(p[0], p[1:])
			if err != nil {
				return fmt.Errorf("%w: PID %02X with %d data bytes", plugins.ErrMalformed, p[0], len(p)-1)
			}
			val.Apply(sig)
		case obdModeCodes:
			codes, err := obd2.DTCs(p)
			if err != nil {
				return fmt.Errorf("%w: DTC list of %d bytes", plugins.ErrMalformed, len(p))
			}
			obd2.AddDTCs(sig, codes...)
		default:
			sig.SetAttr(fmt.Sprintf("obd_mode_%02x", mode), hex.EncodeToString(p))
		}
	}
	return nil
}

// decodeJ1708 reads J1708/J1587 parameters: a byte with the length (bits
// 0–5, the id byte included) and the kind (bits 6–7; 2 and 3 are PIDs,
// 3 in the second page), the PID, and the value, kept as hex under
// j1708_pid<id>.
func decodeJ1708(sig *signal.Signal, v []byte) error {
	for i := 0; i < len(v); {
		if len(v)-i < 2 {
			return fmt.Errorf("%w: J1708 parameter header at %d of %d", plugins.ErrMalformed, i, len(v))
		}
		n := int(v[i] & 0x3F)
		kind := v[i] >> 6
		id := int(v[i+1])
		if kind == 3 {
			id += 256
		}
		if n < 1 || i+1+n > len(v) {
			return fmt.Errorf("%w: J1708 parameter of %d bytes at %d of %d", plugins.ErrMalformed, n, i, len(v))
		}
		val := v[i+2 : i+1+n]
		i += 1 + n
		if kind == 2 || kind == 3 {
			sig.SetAttr("j1708_pid"+strconv.Itoa(id), hex.EncodeToString(val))
		}
	}
	return nil
}

// decodeText decodes "*TS<vv>,<imei>#" (a keep-alive: no record) or
// "*TS<vv>,<imei>,<hhmmss><ddmmyy>,<content>#" (a reply or report, kept as
// attr result at the device time). Both are acked with
// "*TS01,ACK:<CRC-16/XMODEM of the bytes between '*' and '#'>#".
func (s *Session) decodeText(frame []byte, recv time.Time) (plugins.Result, error) {
	res := plugins.Result{DeviceID: s.imei}
	if len(frame) < 7 || frame[len(frame)-1] != textEnd || !bytes.HasPrefix(frame, []byte("*TS")) {
		return res, fmt.Errorf("decoding ulbotech text: %w: not *TS…#", plugins.ErrMalformed)
	}
	inner := frame[1 : len(frame)-1]
	if bytes.IndexByte(inner, textEnd) >= 0 {
		return res, fmt.Errorf("decoding ulbotech text: %w: '#' inside the message", plugins.ErrMalformed)
	}
	parts := bytes.SplitN(inner[2:], []byte(","), 4)
	if len(parts) < 2 || len(parts[0]) != 2 || !digits(parts[0]) {
		return res, fmt.Errorf("decoding ulbotech text: %w: no version and device id", plugins.ErrMalformed)
	}
	id := parts[1]
	if len(id) != 15 || !digits(id) {
		return res, fmt.Errorf("decoding ulbotech text: %w: device id %q is not 15 digits", plugins.ErrMalformed, id)
	}
	imei := string(id)
	if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(imei) {
		return plugins.Result{DeviceID: imei}, fmt.Errorf("decoding ulbotech text: %w: %s", plugins.ErrUnauthorized, imei)
	}
	s.imei = imei
	res.DeviceID = imei
	ack := fmt.Appendf(nil, "*TS01,ACK:%04X#", CRC16XModem(inner))
	if len(parts) == 2 {
		res.Ack = ack
		return res, nil
	}
	if len(parts) < 4 {
		return res, fmt.Errorf("decoding ulbotech text: %w: time without content", plugins.ErrMalformed)
	}
	ts, err := textTime(parts[2])
	if err != nil {
		return res, fmt.Errorf("decoding ulbotech text: %w", err)
	}
	sig := signal.New(imei, ts)
	sig.SetAttr("version", int64((parts[0][0]-'0')*10+parts[0][1]-'0'))
	content := string(parts[3])
	if !utf8Clean(content) {
		content = hex.EncodeToString(parts[3])
	}
	sig.SetAttr("result", content)
	sig.Protocol = Name
	sig.Recv = recv.UTC()
	sig.Frame = append([]byte(nil), frame...)
	res.Signals = []signal.Signal{sig}
	res.Ack = ack
	return res, nil
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func utf8Clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

// textTime parses hhmmssddmmyy (UTC, 20yy).
func textTime(b []byte) (time.Time, error) {
	if len(b) != 12 || !digits(b) {
		return time.Time{}, fmt.Errorf("%w: time %q is not hhmmssddmmyy", plugins.ErrMalformed, b)
	}
	n := func(i int) int { return int(b[i]-'0')*10 + int(b[i+1]-'0') }
	h, mi, se, d, mo, y := n(0), n(2), n(4), n(6), n(8), n(10)
	t := time.Date(2000+y, time.Month(mo), d, h, mi, se, 0, time.UTC)
	if h > 23 || mi > 59 || se > 59 || t.Day() != d || int(t.Month()) != mo {
		return time.Time{}, fmt.Errorf("%w: time %q is not a valid date and time", plugins.ErrMalformed, b)
	}
	return t, nil
}

// CRC16XModem is CRC-16/XMODEM: polynomial 0x1021, initial value 0, no
// reflection, no final xor.
func CRC16XModem(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^c]
	}
	return crc
}

var crcTable = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()
