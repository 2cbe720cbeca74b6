// Package ruptela decodes the Ruptela protocol (FM-Eco4, FM-Pro4, FM-Tco4,
// Trace5, HCV5, LCV5 and the other Ruptela trackers): every packet carries
// a 2-byte length, the IMEI as a 64-bit integer, a command byte, the
// command's data and a CRC-16/Kermit. Records (command 1), extended records
// (68) with their IO and CAN/FMS values, DTCs (9), identification (15),
// heartbeat (16) and the replies to SMS-over-GPRS and configuration
// commands are decoded. See README.md for the layouts and the mapping.
package ruptela

import (
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
const Name = "ruptela"

// DefaultPort is Traccar's port for the protocol.
const DefaultPort = 5046

// Commands a device sends.
const (
	CmdRecords         = 1
	CmdConfiguration   = 2
	CmdVersion         = 3
	CmdFirmwareUpdate  = 4
	CmdSMSResponse     = 7
	CmdDTCs            = 9
	CmdIdentification  = 15
	CmdHeartbeat       = 16
	CmdSetIO           = 17
	CmdExtendedRecords = 68
)

const (
	defaultMaxFrame = 64 << 10
	// minLength is what the length field counts at least: IMEI and command.
	minLength = 9
	// ackOffset is added to a command to make the server's reply command
	// (DTCs 9 → 109, identification 15 → 115, heartbeat 16 → 116).
	ackOffset = 100
	// cmdRecordsAck answers records and extended records alike.
	cmdRecordsAck = 100
)

// Decoder is the Ruptela protocol. The zero value is ready to use. It is
// shared by every session: it remembers the receive time it gave each
// command reply without a device time (plugins.ServerTimes).
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
		Description: "Ruptela: records (1), extended records (68) with IO and CAN/FMS values, DTCs (9), identification, heartbeat; CRC-16/Kermit",
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
	return &Session{dec: d, cfg: cfg, log: log.Named(Name)}
}

// Session is one TCP connection.
type Session struct {
	dec  *Decoder
	cfg  plugins.SessionConfig
	log  hclog.Logger
	imei string // the last device the allow-list accepted
	id   uint64 // its IMEI as sent
}

var (
	_ plugins.Session          = (*Session)(nil)
	_ plugins.DeviceIdentifier = (*Session)(nil)
)

// DeviceID is the IMEI of the last accepted packet ("" before one).
func (s *Session) DeviceID() string { return s.imei }

// Frame returns the length of the packet at the start of buf: the 2-byte
// length field counts the IMEI, the command and its data; the field itself
// and the CRC add 4 bytes.
func (s *Session) Frame(buf []byte) (int, error) {
	if len(buf) < 2 {
		return 0, nil
	}
	total, err := s.frameLen(binary.BigEndian.Uint16(buf))
	if err != nil {
		return 0, fmt.Errorf("framing ruptela packet: %w", err)
	}
	if len(buf) < total {
		return 0, nil
	}
	return total, nil
}

func (s *Session) frameLen(n uint16) (int, error) {
	if n < minLength {
		return 0, fmt.Errorf("%w: length field %d is below %d (IMEI and command)", plugins.ErrMalformed, n, minLength)
	}
	total := int(n) + 4
	if total > s.cfg.MaxFrame {
		return 0, fmt.Errorf("%w: %d bytes, cap %d", plugins.ErrTooLarge, total, s.cfg.MaxFrame)
	}
	return total, nil
}

// Decode decodes one packet.
func (s *Session) Decode(frame []byte, recv time.Time) (plugins.Result, error) {
	res := plugins.Result{DeviceID: s.imei}
	if len(frame) < 2 {
		return res, fmt.Errorf("decoding ruptela packet: %w: %d bytes", plugins.ErrMalformed, len(frame))
	}
	total, err := s.frameLen(binary.BigEndian.Uint16(frame))
	if err != nil {
		return res, fmt.Errorf("decoding ruptela packet: %w", err)
	}
	if total != len(frame) {
		return res, fmt.Errorf("decoding ruptela packet: %w: length field says %d bytes, packet has %d", plugins.ErrMalformed, total, len(frame))
	}
	body := frame[2 : len(frame)-2]
	want := binary.BigEndian.Uint16(frame[len(frame)-2:])
	if got := CRC16(body); got != want {
		return res, fmt.Errorf("decoding ruptela packet: %w: CRC-16/Kermit is 0x%04x, packet says 0x%04x", plugins.ErrChecksum, got, want)
	}
	id := binary.BigEndian.Uint64(body)
	if id != s.id || s.imei == "" {
		imei := fmt.Sprintf("%015d", id)
		if s.cfg.AllowDevice != nil && !s.cfg.AllowDevice(imei) {
			s.log.Info("device refused", "imei", imei, "remote", s.cfg.RemoteAddr)
			return plugins.Result{DeviceID: imei}, fmt.Errorf("decoding ruptela packet: %w: IMEI %s", plugins.ErrUnauthorized, imei)
		}
		s.imei, s.id = imei, id
	}
	imei := s.imei
	res.DeviceID = imei
	cmd := body[8]
	data := body[9:]
	var sigs []signal.Signal
	switch cmd {
	case CmdRecords, CmdExtendedRecords:
		sigs, err = s.records(cmd, data)
		res.Ack = ack(cmdRecordsAck, 1)
	case CmdDTCs:
		sigs, err = s.dtcs(data)
		res.Ack = ack(ackOffset+CmdDTCs, 1)
	case CmdIdentification, CmdHeartbeat:
		res.Ack = ack(ackOffset+cmd, 1)
	case CmdConfiguration, CmdVersion, CmdFirmwareUpdate, CmdSMSResponse, CmdSetIO:
		sigs, err = s.reply(cmd, data, frame, recv)
	default:
		err = fmt.Errorf("%w: command %d", plugins.ErrUnsupported, cmd)
	}
	if err != nil {
		return plugins.Result{DeviceID: imei}, fmt.Errorf("decoding ruptela command %d: %w", cmd, err)
	}
	raw := append([]byte(nil), frame...)
	recv = recv.UTC()
	for i := range sigs {
		sigs[i].Protocol = Name
		sigs[i].Recv = recv
		sigs[i].Frame = raw
	}
	res.Signals = sigs
	return res, nil
}

// ack builds a server packet: length 2, the reply command and one byte
// (1 = accepted), CRC-16/Kermit.
func ack(cmd, v byte) []byte {
	b := []byte{0x00, 0x02, cmd, v}
	return binary.BigEndian.AppendUint16(b, CRC16(b[2:]))
}

// reader reads big-endian values and remembers the first overrun.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("%w: data ends at byte %d, %d more needed at %d", plugins.ErrMalformed, len(r.b), n, r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8() int {
	if b := r.take(1); b != nil {
		return int(b[0])
	}
	return 0
}

func (r *reader) u16() int {
	if b := r.take(2); b != nil {
		return int(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// records decodes command 1 (records) and 68 (extended records: a record
// extension byte, 2-byte event and IO ids).
func (s *Session) records(cmd byte, data []byte) ([]signal.Signal, error) {
	r := &reader{b: data}
	left := r.u8()
	count := r.u8()
	if r.err != nil {
		return nil, r.err
	}
	if count == 0 {
		return nil, fmt.Errorf("%w: records packet with no records", plugins.ErrMalformed)
	}
	ext := cmd == CmdExtendedRecords
	sigs := make([]signal.Signal, 0, count)
	for i := 0; i < count; i++ {
		sig, merge := s.record(r, ext)
		if r.err != nil {
			return nil, fmt.Errorf("reading record %d of %d: %w", i+1, count, r.err)
		}
		if err := sig.numbersErr; err != nil {
			return nil, fmt.Errorf("record %d of %d: %w", i+1, count, err)
		}
		if merge && len(sigs) > 0 {
			mergeInto(&sigs[len(sigs)-1], &sig.Signal)
			continue
		}
		sig.SetAttr("records_left", left)
		sigs = append(sigs, sig.Signal)
	}
	if r.off != len(data) {
		return nil, fmt.Errorf("%w: %d bytes left after %d records", plugins.ErrMalformed, len(data)-r.off, count)
	}
	return sigs, nil
}

// rec is a record being decoded and the first value that could not be
// stored.
type rec struct {
	signal.Signal
	numbersErr error
}

// record reads one record. merge reports an extended record that continues
// the previous one (record extension: current part > 0 of the merged
// count), whose values belong to the same moment.
func (s *Session) record(r *reader, ext bool) (rec, bool) {
	ts := r.u32()
	tsExt := r.u8()
	merge := false
	if ext {
		e := r.u8()
		total, cur := e>>4, e&0x0f
		merge = cur > 0 && cur <= total
	}
	sig := rec{Signal: signal.New(s.imei, time.Unix(int64(ts), 0))}
	if tsExt != 0 {
		sig.SetAttr("timestamp_ext", tsExt)
	}
	sig.SetAttr("priority", r.u8())
	lon := int32(r.u32())
	lat := int32(r.u32())
	alt := r.u16()
	course := r.u16()
	sats := r.u8()
	speed := r.u16()
	hdop := r.u8()
	if lon != math.MinInt32 && lat != math.MinInt32 {
		sig.Lat = float64(lat) / 1e7
		sig.Lon = float64(lon) / 1e7
		sig.Alt = float64(alt) / 10
		sig.Heading = float64(course) / 100
		sig.Sats = float64(sats)
		sig.Speed = float64(speed)
		sig.HDOP = float64(hdop) / 10
		sig.Valid = signal.True
	} else {
		sig.Valid = signal.False
	}
	if ext {
		sig.SetAttr("event", r.u16())
	} else {
		sig.SetAttr("event", r.u8())
	}
	for _, size := range [...]int{1, 2, 4, 8} {
		n := r.u8()
		for j := 0; j < n && r.err == nil; j++ {
			var id int
			if ext {
				id = r.u16()
			} else {
				id = r.u8()
			}
			if v := r.take(size); v != nil {
				sig.param(id, v)
			}
		}
	}
	sig.driver(126, 127)
	sig.driver(155, 156)
	if a, ok1 := sig.Attrs["io760"].(int64); ok1 {
		if b, ok2 := sig.Attrs["io761"].(int64); ok2 {
			delete(sig.Attrs, "io760")
			delete(sig.Attrs, "io761")
			sig.SetAttr("tag_id", strconv.FormatUint(uint64(a), 16)+strconv.FormatUint(uint64(b), 16))
		}
	}
	return sig, merge
}

// mergeInto adds a continuation record's values to the record it
// continues: its position and IO values are of the same moment.
func mergeInto(dst, src *signal.Signal) {
	for f := signal.FieldLat; f <= signal.FieldThrottle; f++ {
		if v := src.Number(f); !math.IsNaN(v) {
			dst.SetNumber(f, v)
		}
	}
	for k, v := range src.Attrs {
		if k == "priority" || k == "event" || k == "timestamp_ext" {
			continue
		}
		dst.SetAttr(k, v)
	}
}

// ioName is the attribute of an IO id without a known meaning.
func ioName(id int) string { return "io" + strconv.Itoa(id) }

func beUint(v []byte) uint64 {
	var x uint64
	for _, b := range v {
		x = x<<8 | uint64(b)
	}
	return x
}

func beInt(v []byte) int64 {
	x := beUint(v)
	shift := 64 - 8*uint(len(v))
	return int64(x<<shift) >> shift
}

// notAvailable reports the J1939/FMS "not available" marker: every bit
// set for the value's width.
func notAvailable(v []byte) bool {
	for _, b := range v {
		if b != 0xFF {
			return false
		}
	}
	return true
}

// canon sets a canonical field from a CAN/FMS value: the "not available"
// marker leaves it absent (the raw value is kept as io<ID>); a value
// outside the field's domain makes the record unstorable.
func (s *rec) canon(f signal.Field, id int, v []byte, x float64) {
	if notAvailable(v) {
		s.SetAttr(ioName(id), int64(beUint(v)))
		return
	}
	if d, ok := signal.DomainOf(f); ok && !d.Contains(x) && s.numbersErr == nil {
		s.numbersErr = fmt.Errorf("%w: IO %d gives %s %v, outside %v..%v", plugins.ErrMalformed, id, f, x, d.Min, d.Max)
		return
	}
	s.SetNumber(f, x)
}

// addAlarm appends to the comma-separated alarm attribute.
func (s *rec) addAlarm(a string) {
	if old, ok := s.Attrs["alarm"].(string); ok && old != "" {
		a = old + "," + a
	}
	s.SetAttr("alarm", a)
}

// param maps one IO value (Ruptela's IO id list; the CAN/FMS ids are the
// FMS-standard values the tracker reads from the vehicle bus).
func (s *rec) param(id int, v []byte) {
	u := beUint(v)
	x := float64(u)
	switch id {
	case 2, 3, 4, 5:
		s.SetAttr("din"+strconv.Itoa(id-1), int64(u))
	case 13, 173:
		s.SetAttr("motion", u > 0)
	case 20:
		s.SetAttr("adc3", int64(u))
	case 21:
		s.SetAttr("adc4", int64(u))
	case 22:
		s.SetAttr("adc1", int64(u))
	case 23:
		s.SetAttr("adc2", int64(u))
	case 29:
		s.canon(signal.FieldVoltage, id, v, x*0.001)
	case 30:
		s.SetAttr("battery_v", x*0.001)
	case 32:
		s.SetAttr("device_temp", beInt(v))
	case 34:
		s.SetAttr("driver_id", hex.EncodeToString(v))
	case 39:
		s.canon(signal.FieldEngineLoad, id, v, x)
	case 65:
		s.canon(signal.FieldOdometer, id, v, x/1000) // m
	case 74:
		s.SetAttr("temp3", float64(beInt(v))*0.1)
	case 78, 79, 80:
		s.SetAttr("temp"+strconv.Itoa(id-78), float64(beInt(v))*0.1)
	case 88:
		if u > 0 {
			s.addAlarm("jamming")
		}
	case 94:
		s.canon(signal.FieldRPM, id, v, x*0.25) // FMS engine speed, 0.125 rpm/bit over 2 bytes
	case 95:
		s.SetAttr("obd_speed", x)
	case 98:
		s.canon(signal.FieldFuel, id, v, x*100/255)
	case 100:
		s.SetAttr("fuel_consumption", x/20)
	case 134:
		if u > 0 {
			s.addAlarm("braking")
		}
	case 136:
		if u > 0 {
			s.addAlarm("acceleration")
		}
	case 150:
		s.SetAttr("operator", int64(u))
	case 163:
		s.canon(signal.FieldOdometer, id, v, x*5/1000) // 5 m steps
	case 164:
		s.SetAttr("trip_odometer_km", x*5/1000)
	case 165:
		s.SetAttr("obd_speed", x/256)
	case 166, 197:
		s.canon(signal.FieldRPM, id, v, x*0.125)
	case 170:
		s.SetAttr("charge", u > 0)
	case 205:
		s.canon(signal.FieldFuel, id, v, x)
	case 207:
		s.canon(signal.FieldFuel, id, v, x*0.4)
	case 208:
		s.SetAttr("fuel_used_l", x*0.5)
	case 251, 409:
		s.SetAttr("ignition", u > 0)
	case 410:
		if u > 0 {
			s.addAlarm("tow")
		}
	case 411:
		if u > 0 {
			s.addAlarm("accident")
		}
	case 415:
		if u == 0 {
			s.addAlarm("gps_antenna_cut")
		}
	case 645:
		s.SetAttr("obd_odometer_km", x)
	case 758:
		if u == 1 {
			s.addAlarm("tampering")
		}
	default:
		s.SetAttr(ioName(id), int64(u)) // 8-byte values keep their bits
	}
}

// driver joins the two 8-byte halves of a driver card number (CAN driver
// 126/127, tachograph driver 155/156) into attr driver_id: ASCII when the
// 16 bytes are printable (trailing NULs dropped), else hex.
func (s *rec) driver(a, b int) {
	hi, ok1 := s.Attrs[ioName(a)].(int64)
	lo, ok2 := s.Attrs[ioName(b)].(int64)
	if !ok1 || !ok2 {
		return
	}
	delete(s.Attrs, ioName(a))
	delete(s.Attrs, ioName(b))
	raw := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(hi)), uint64(lo))
	t := strings.TrimRight(string(raw), "\x00 ")
	if t == "" {
		return // no card
	}
	if printable(t) {
		s.SetAttr("driver_id", t)
		return
	}
	s.SetAttr("driver_id", hex.EncodeToString(raw))
}

func printable(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7E {
			return false
		}
	}
	return true
}

// dtcs decodes command 9: a count, then per code a reserved byte, the
// time, longitude, latitude, an archive flag (2 = archived) and the code
// as 5 ASCII characters.
func (s *Session) dtcs(data []byte) ([]signal.Signal, error) {
	r := &reader{b: data}
	count := r.u8()
	sigs := make([]signal.Signal, 0, count)
	for i := 0; i < count; i++ {
		r.u8()
		sig := signal.New(s.imei, time.Unix(int64(r.u32()), 0))
		lon := int32(r.u32())
		lat := int32(r.u32())
		archive := r.u8()
		code := r.take(5)
		if r.err != nil {
			return nil, fmt.Errorf("reading DTC %d of %d: %w", i+1, count, r.err)
		}
		if lon != math.MinInt32 && lat != math.MinInt32 {
			sig.Lat, sig.Lon = float64(lat)/1e7, float64(lon)/1e7
		}
		if archive == 2 {
			sig.SetAttr("archive", true)
		}
		c := strings.TrimRight(string(code), "\x00 ")
		if !printable(c) || c == "" {
			return nil, fmt.Errorf("%w: DTC %d is not text (%x)", plugins.ErrMalformed, i+1, code)
		}
		obd2.AddDTCs(&sig, c)
		sigs = append(sigs, sig)
	}
	if r.err == nil && r.off != len(data) {
		return nil, fmt.Errorf("%w: %d bytes left after %d DTCs", plugins.ErrMalformed, len(data)-r.off, count)
	}
	return sigs, r.err
}

// reply keeps a command reply (configuration, version, firmware update,
// SMS via GPRS, set IO) as a record with attr result. It carries no device
// time: the receive time of the packet's first copy is its ts
// (plugins.ServerTimes; a reply carries no sequence number, so an
// identical reply within the resend window is taken as a resend).
func (s *Session) reply(cmd byte, data, frame []byte, recv time.Time) ([]signal.Signal, error) {
	var result string
	if cmd == CmdSetIO {
		if len(data) < 1 {
			return nil, fmt.Errorf("%w: set-IO reply without a result byte", plugins.ErrMalformed)
		}
		result = strconv.Itoa(int(data[0]))
	} else {
		t := strings.TrimSpace(strings.TrimRight(string(data), "\x00"))
		if printable(t) {
			result = t
		} else {
			result = hex.EncodeToString(data)
		}
	}
	ts := s.dec.times.Stamp(s.imei, frame, recv.UTC().Truncate(time.Millisecond))
	sig := signal.New(s.imei, ts)
	sig.SetAttr("type", int(cmd))
	sig.SetAttr("result", result)
	sig.SetAttr("time_source", "server")
	return []signal.Signal{sig}, nil
}

// CRC16 is CRC-16/Kermit: polynomial 0x1021 reflected (0x8408), initial
// value 0, no final xor, as Ruptela computes it over the IMEI, command and
// data.
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
				crc = crc>>1 ^ 0x8408
			} else {
				crc >>= 1
			}
		}
		t[i] = crc
	}
	return t
}()
